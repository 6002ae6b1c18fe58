"""allocator explain on crafted scenarios whose answer is known: a county starved of money, packages
that cannot reach the threshold, a mandatory project that cannot finish, a personnel bottleneck.
The "what it would take" money is checked by re-solving with it added to the input tables."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.support.commands import run
from tests.support.tiny import starved, tiny_tables, write_folder

POLICY = {"county_exit_threshold": {"default": 0.02, "western": 0.03}}


def solve_and_explain(tables, folder, policy=POLICY) -> tuple[dict, dict]:
    path = write_folder(tables, folder / "data", policy=policy)
    solved = run("solve", path, "--out", folder / "plan", "--quiet")
    assert solved.returncode in (0, 1), solved.stderr
    explained = run("explain", folder / "plan", "--quiet")
    assert explained.returncode == 0, explained.stderr
    summary = json.loads((folder / "plan" / "summary.json").read_text())
    return summary, json.loads((folder / "plan" / "difficulties.json").read_text())


def on_schedule_with(tables, extra: list[dict], share: float, folder) -> tuple[int, int]:
    funds = tables["funds"].copy()
    for row in extra:
        hit = (funds["source_id"] == row["source_id"]) & (funds["year"] == row["year"])
        funds.loc[hit, "amount"] += share * row["extra"]
    path = write_folder({**tables, "funds": funds}, folder / "data", policy=POLICY)
    result = run("solve", path, "--out", folder / "plan", "--quiet")
    assert result.returncode in (0, 1), result.stderr
    summary = json.loads((folder / "plan" / "summary.json").read_text())
    return summary["counties_on_schedule"], summary["counties_total"]


def test_a_starved_county_and_the_money_that_fixes_it(tmp_path):
    summary, found = solve_and_explain(starved(), tmp_path / "base")
    assert summary["counties_on_schedule"] == 1
    (county,) = found["counties_off_schedule"]
    assert county["county_id"] == "C1"
    assert {r["rule"] for r in county["reasons"]} == {"source budget"}
    take = found["what_it_would_take"]
    assert take["possible"] and take["verified"] and take["method"].startswith("MIP")
    assert take["total_extra"] > 0
    # independently: with that money in funds.csv every county is on schedule, with a little less not
    assert on_schedule_with(starved(), take["extra"], 1.0, tmp_path / "more") == (2, 2)
    assert on_schedule_with(starved(), take["extra"], 0.97, tmp_path / "less") == (1, 2)


def test_marginal_values_match_finite_differences(tmp_path):
    import dataclasses

    import allocator
    from allocator.optimize.marginal import LP_DUAL, lp_prices, marginal_values
    from allocator.solvers import get_backend
    from allocator.solvers.base import SolveOptions

    problem = allocator.build_problem(starved(), name="t", start_year=2016, deadline_year=2018,
                                      policy=allocator.Policy(**POLICY), validate=False)
    fm = allocator.formulate(problem)
    values = marginal_values(fm, lp_prices(fm), LP_DUAL).set_index(["kind", "source_id", "year"])["value"]
    lp = get_backend("highs").solve(allocator.formulate(problem).model.relaxed(), SolveOptions()).objective
    funds = problem.fund_amount
    for r, (source, year) in enumerate(zip(problem.source_ids[problem.fund_source],
                                           problem.years[problem.fund_year], strict=True)):
        more = dataclasses.replace(problem, fund_amount=funds + 10.0 * (np.arange(len(funds)) == r))
        step = get_backend("highs").solve(allocator.formulate(more).model.relaxed(), SolveOptions()).objective - lp
        value = values[("money", str(source), int(year))]
        # the LP value is concave in the money: a dual is a supergradient, exact where not degenerate
        assert step / 10.0 * 1e4 <= value * 1.02 + 0.01, (source, year)
        if funds[r] > 0:
            assert step / 10.0 * 1e4 == pytest.approx(value, rel=0.02, abs=0.01), (source, year)
    assert values[("money", "central", 2016)] > 0, "the starved county makes money worth something"


def test_explain_prints_marginal_values(tmp_path):
    _, found = solve_and_explain(starved(), tmp_path)
    money = [row for row in found["marginal_values"]["rows"] if row["kind"] == "money"]
    assert money and all(row["value"] >= -1e-9 for row in money)


def test_packages_that_cannot_reach_the_threshold(tmp_path):
    tables = starved()
    tables["regions"].loc[tables["regions"]["level"] == "county", "rural_population"] = 30
    tables["funds"]["amount"] = [1e6, 1e6, 1e6, 1e6, 1e6]
    _, found = solve_and_explain(tables, tmp_path)
    assert found["counties_off_schedule"]
    for county in found["counties_off_schedule"]:
        assert "packages" in {r["rule"] for r in county["reasons"]}
    assert found["what_it_would_take"]["possible"] is False


def test_a_mandatory_project_that_cannot_finish(tmp_path):
    tables = tiny_tables()
    tables["projects"].loc[tables["projects"]["project_id"] == "water", "duration_years"] = 4
    summary, found = solve_and_explain(tables, tmp_path)
    assert summary["status"] == "infeasible"
    assert "water" in found["sentence"] and "cannot finish" in found["sentence"]


def test_a_personnel_bottleneck(tmp_path):
    tables = starved()
    tables["funds"]["amount"] = [1e6, 0.0, 0.0, 0.0, 0.0]
    tables["regions"].loc[tables["regions"]["region_id"] == "C1", "rural_population"] = 60
    tables["personnel"] = tables["personnel"].iloc[:0]
    for year in (2016, 2017, 2018):
        tables["personnel"].loc[len(tables["personnel"])] = ["T1", year, 10.0]
    _, found = solve_and_explain(tables, tmp_path)
    reasons = {r["rule"]: r for c in found["counties_off_schedule"] for r in c["reasons"]}
    assert "personnel hours" in reasons and "T1" in reasons["personnel hours"]["regions"]


def test_explain_refuses_a_plan_whose_inputs_changed(tmp_path):
    path = write_folder(starved(), tmp_path / "data", policy=POLICY)
    assert run("solve", path, "--out", tmp_path / "plan", "--quiet").returncode == 0
    funds = tmp_path / "data" / "funds.csv"
    funds.write_text(funds.read_text().replace("6000", "7000"))
    result = run("explain", tmp_path / "plan")
    assert result.returncode == 2 and "changed since the plan was made" in result.stderr


@pytest.mark.parametrize("folder", ["nothing-here"])
def test_explain_needs_a_plan_folder(folder, tmp_path):
    result = run("explain", tmp_path / folder)
    assert result.returncode == 2 and "not a plan folder" in result.stderr


def test_a_hard_deadline_without_the_money_names_the_conflicting_rules(tmp_path):
    tables = starved()
    tables["funds"]["amount"] = [1000.0, 1000.0, 1000.0, 0.0, 0.0]
    summary, found = solve_and_explain(tables, tmp_path, {**POLICY, "deadline": "hard"})
    assert summary["status"] == "infeasible"
    rules = found["conflict"]["rules"]
    sentences = " ".join(r["sentence"] for r in rules)
    # both counties' exit rules, the central fund up to 2018 and the hard deadline are in it
    assert "county County 1 (C1) must be below 3%" in sentences
    assert "county County 2 (C2) must be below 2%" in sentences
    assert "fund central 2018 has 3,000 yuan" in sentences
    assert {r["rule"] for r in rules} >= {"County exit from its hat-off year", "Hard deadline"}
    # and the money that would fix it, verified by re-solving with the deadline still hard
    take = found["what_it_would_take"]
    assert take["possible"] and take["verified"]


def test_a_mandatory_project_that_cannot_finish_is_the_whole_conflict(tmp_path):
    tables = tiny_tables()
    tables["projects"].loc[tables["projects"]["project_id"] == "water", "duration_years"] = 4
    _, found = solve_and_explain(tables, tmp_path)
    (rule,) = found["conflict"]["rules"]
    assert rule["sentence"] == ("water in village Village 2 (V2) is mandatory and takes 4 years: it cannot finish by "
                                "2018 even if it starts in 2016")


def test_earliest_deadline_per_county(tmp_path):
    """Hand-derived: with money everywhere, C2 (allowed 2 of 3 poor left, baseline 0.15) needs 0.85
    more exits: H6 and H8 have packages that count at once (0.60 + 0.62), so 2016. C1 (allowed 1.8
    of 4, baseline 0.23) needs 1.97: in 2016 only its two welfare packages count (0.35 + 0.48);
    by 2017 the road (one year) lets industry start and the one-year-lag packages count, so 2017."""
    import allocator
    from allocator.explain.difficulties import earliest_deadlines
    from allocator.optimize.pipeline import solve_problem

    tables = tiny_tables()
    tables["funds"]["amount"] = [1e6, 1e6, 1e6, 1e6, 1e6]
    tables["regions"].loc[tables["regions"]["region_id"] == "C1", "rural_population"] = 60
    tables["regions"].loc[tables["regions"]["region_id"] == "C2", "rural_population"] = 100
    problem = allocator.build_problem(tables, name="t", start_year=2016, deadline_year=2018,
                                      policy=allocator.Policy(**POLICY), validate=False)
    seen = []
    for threads in (1, 3):  # the re-solves in parallel give the same answer, in year order
        table, runs = earliest_deadlines(problem, tables, lambda p: solve_problem(p, allocator.SolverSettings()),
                                         threads=threads, progress=lambda phase, **info: seen.append(info.get("done")))
        assert dict(zip(table["county_id"], table["earliest_year"], strict=True)) == {"C1": 2017, "C2": 2016}
        assert [r["counties_on_schedule"] for r in runs] == [1, 2, 2]
        assert [r["deadline"] for r in runs] == [2016, 2017, 2018]
    assert sorted(d for d in seen if d) == [1, 1, 2, 2, 3, 3]  # every re-solve reports when it is done


def test_counties_no_plan_can_save_need_no_re_solve(monkeypatch):
    """Packages that cannot reach the threshold (rural population 30): the LP screen at the
    deadline proves every county off schedule, so no year is re-solved, and the answer is the
    re-solves' own (with the screen off)."""
    import allocator
    from allocator.explain import difficulties as explain
    from allocator.optimize.pipeline import solve_problem

    tables = tiny_tables()
    tables["regions"].loc[tables["regions"]["level"] == "county", "rural_population"] = 30
    tables["funds"]["amount"] = [1e6, 1e6, 1e6, 1e6, 1e6]
    problem = allocator.build_problem(tables, name="t", start_year=2016, deadline_year=2018,
                                      policy=allocator.Policy(**POLICY), validate=False)

    def no_re_solve(changed):
        raise AssertionError("re-solved although the LP screen proves every county off schedule")

    table, runs = explain.earliest_deadlines(problem, tables, no_re_solve)
    assert table["earliest_year"].isna().all() and {r["by"] for r in runs} == {"LP screen"}
    monkeypatch.setattr(explain, "SCREEN_MAX_COUNTIES", 0)
    resolved, runs = explain.earliest_deadlines(problem, tables, lambda p: solve_problem(p, allocator.SolverSettings()))
    assert resolved["earliest_year"].isna().all() and [r["counties_on_schedule"] for r in runs] == [0, 0, 0]


def test_plan_difficulties_in_memory_and_from_its_folder(tmp_path):
    import allocator

    path = write_folder(starved(), tmp_path / "data", policy=POLICY)
    from allocator.explain.difficulties import plan_difficulties

    plan = allocator.solve(allocator.load_scenario(path))
    found = plan_difficulties(plan)
    assert [c["county_id"] for c in found["counties_off_schedule"]] == ["C1"]
    plan.write(tmp_path / "plan")
    assert plan_difficulties(allocator.Plan.read(tmp_path / "plan")) == found



def test_uniform_scale_fallback_brackets_the_money(tmp_path):
    """The fallback for models whose extra-money LP is too slow: k times every fund puts every
    county on schedule and the bracket's lower end does not, checked by solving funds.csv."""
    import allocator
    from allocator.explain.difficulties import least_uniform_scale
    from allocator.optimize.pipeline import solve_problem

    problem = allocator.build_problem(starved(), name="t", start_year=2016, deadline_year=2018,
                                      policy=allocator.Policy(**POLICY), validate=False)
    take = least_uniform_scale(problem, lambda p: solve_problem(p, allocator.SolverSettings()))
    assert take["verified"] and 1 < take["scale"] <= 2 and 1 < take["scale_not_enough"] < take["scale"]
    assert take["scale"] / take["scale_not_enough"] - 1 <= 0.05
    assert on_schedule_with(starved(), take["extra"], 1.0, tmp_path / "enough") == (2, 2)
    funds = starved()["funds"]
    short = [{"source_id": s, "year": y, "extra": a * (take["scale_not_enough"] - 1)}
             for s, y, a in funds[["source_id", "year", "amount"]].itertuples(index=False)]
    assert on_schedule_with(starved(), short, 1.0, tmp_path / "short") == (1, 2)


def test_each_re_solve_shows_its_prices_and_rounds_as_bars_of_its_own(tmp_path):
    """Explain's re-solves with decompose (one per deadline year) report their prices, county
    groups and improvement rounds (under the time limit), labelled with what they test: one bar each."""
    from allocator.explain.difficulties import explain_plan
    from tests.support.progress import Recorder, check_counted, check_drawn, check_timed

    path = write_folder(starved(), tmp_path / "data", policy=POLICY,
                        solver={"method": "decompose", "mip_gap": 0.0, "time_limit": 5})
    assert run("solve", path, "--out", tmp_path / "plan", "--quiet").returncode == 0
    seen = Recorder()
    explain_plan(tmp_path / "plan", money=False, progress=seen)
    labelled = sorted({phase for phase, info in seen.events if phase.endswith(": prices")})
    assert labelled == ["deadline 2016: prices", "deadline 2017: prices"]  # 2018 is the plan's own
    for year in (2016, 2017):
        for phase in (f"deadline {year}: prices", f"deadline {year}: improvement round"):
            check_timed(seen.of(phase))
            check_drawn(seen.events, phase, timed=True)
        assert check_counted(seen.of(f"deadline {year}: counties")) == 1
        check_drawn(seen.events, f"deadline {year}: counties")


def test_the_relaxation_s_money_is_the_same_from_its_point_as_from_cold_re_solves():
    """On models too large for the exact minimum, the verifying re-solves start from the
    extra-money LP's point, then (none verifying, as on these eight households) re-solve cold:
    the same answer as cold re-solves alone."""
    import allocator
    from allocator.explain.difficulties import what_it_would_take
    from allocator.optimize.pipeline import solve_problem

    problem = allocator.build_problem(starved(), name="t", start_year=2016, deadline_year=2018,
                                      policy=allocator.Policy(**POLICY), validate=False)
    settings = allocator.SolverSettings(method="lp-fix")
    methods = []

    def from_point(changed, point=None):
        plan = solve_problem(changed, settings, point=point)
        methods.append(plan.summary["method"])
        return plan

    warm = what_it_would_take(problem, from_point, exact_up_to=0)
    cold = what_it_would_take(problem, lambda changed, point=None: solve_problem(changed, settings), exact_up_to=0)
    assert warm["method"].startswith("LP relaxation") and warm["total_extra"] > 0
    assert {k: warm.get(k) for k in ("verified", "margin", "total_extra", "extra")} == {
        k: cold.get(k) for k in ("verified", "margin", "total_extra", "extra")}
    tries = len(methods) // 2
    assert methods == ["lp-fix (from a given LP point)"] * tries + ["lp-fix"] * tries


def test_a_plan_from_a_point_of_the_relaxation_keeps_every_rule_and_claims_no_bound(tmp_path):
    import dataclasses

    import allocator
    from allocator.model.formulation import formulate
    from allocator.optimize.pipeline import solve_problem
    from allocator.solvers import get_backend
    from allocator.solvers.base import SolveOptions
    from tests.support.plan_checker import check_plan

    path = write_folder(tiny_tables(), tmp_path / "data", policy=POLICY)
    problem = allocator.build_problem(tiny_tables(), name="t", start_year=2016, deadline_year=2018,
                                      policy=allocator.Policy(**POLICY), validate=False)
    relaxed = formulate(problem).model.relaxed()
    least_money = dataclasses.replace(relaxed, c=np.zeros(relaxed.num_cols), offset=0.0)  # any vertex will do
    point = get_backend("highs").solve(least_money, SolveOptions(extra={"solver": "ipm"})).x
    plan = solve_problem(problem, allocator.SolverSettings(method="lp-fix"), point=point)
    assert plan.summary["method"] == "lp-fix (from a given LP point)" and plan.summary["status"] == "feasible"
    assert plan.summary["bound"] is None and plan.summary["gap"] is None
    plan.write(tmp_path / "plan")
    assert check_plan(path.parent, tmp_path / "plan", start_year=2016, deadline_year=2018, policy=POLICY) == []
