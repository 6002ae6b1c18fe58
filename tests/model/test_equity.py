"""Equity rules (policy.equity) and the price of fairness, on the tiny data set.

Each rule binds on its case (its price is positive), holds in the plan of every method (the
independent checker re-derives it from the output tables, ``solve_checked``), and its price is
the difference of a re-solve without it. The checker catches a plan that breaks a rule.
"""

from __future__ import annotations

import json
import time

import pandas as pd
import pytest

import allocator
from allocator.errors import ScenarioError
from allocator.explain.difficulties import explain_plan
from allocator.inputs.scenario import Policy
from allocator.model.formulation import formulate
from allocator.model.problem import build_problem
from allocator.optimize.methods import equity_first, equity_room, has_equity_rows
from allocator.solvers import get_backend
from allocator.solvers.base import SolveOptions, SolveResult, Status
from tests.support.commands import run
from tests.support.plan_checker import check_plan
from tests.support.tiny import tiny_tables, write_folder

METHODS = ("exact", "lp-fix", "decompose")


def money(tables, scale):
    tables["funds"]["amount"] = tables["funds"]["amount"] * scale
    return tables


# rule: (money scale, policy.equity, its price in expected exits (exact re-solve difference))
CASES = {
    "county_floor_per_poor": (0.5, {"county_floor_per_poor": 1500}, 0.35),
    "max_exit_rate_spread": (0.5, {"max_exit_rate_spread": 0.1}, 0.30),
    "maxmin": (0.35, {"objective": "maxmin"}, 0.15),
}


def rates(plan) -> pd.Series:
    c = plan.counties.set_index("county_id")
    return c["expected_exits"] / c["registered_poor"]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("rule", list(CASES))
def test_each_rule_holds_in_the_plan_of_each_method(tables, solve_checked, rule, method):
    scale, equity, _ = CASES[rule]
    solver = {"method": method, "mip_gap": 0.0, "time_limit": 30}
    plan = solve_checked(money(tables, scale), policy={"equity": equity}, solver=solver)
    assert plan.status in ("optimal", "feasible"), plan.summary["message"]
    facts = plan.summary["equity"]
    assert facts["rules"] == [rule] and facts["broken"] == []
    assert facts["min_exit_rate"] == pytest.approx(rates(plan).min())
    assert facts["max_exit_rate"] == pytest.approx(rates(plan).max())
    if rule == "county_floor_per_poor":
        c = plan.counties.set_index("county_id")
        assert (c["spend"] >= 1500 * c["registered_poor"] - 1e-6).all()
    if rule == "max_exit_rate_spread":
        assert rates(plan).max() - rates(plan).min() <= 0.1 + 1e-9
    if rule == "maxmin":  # the lowest rate at least stage 1's, which is at least the usual plan's
        stage = facts["maxmin_stage"]["lowest_exit_rate"]
        assert rates(plan).min() >= stage - 1e-6
        assert stage >= facts["without"]["maxmin"]["min_exit_rate"] - 1e-6
    assert list(plan.summary["price_of_fairness"]) == [rule]
    assert plan.summary["price_of_fairness_method"][rule].startswith("re-solve")


@pytest.mark.parametrize("rule", list(CASES))
def test_the_price_of_fairness_is_the_re_solve_difference(tables, solve_checked, rule):
    scale, equity, price = CASES[rule]
    fair = solve_checked(money(tables, scale), policy={"equity": equity})
    free = solve_checked(money(tiny_tables(), scale))
    lost = free.summary["expected_exits"] - fair.summary["expected_exits"]
    assert fair.status == free.status == "optimal"
    assert fair.summary["price_of_fairness"][rule] == pytest.approx(lost, abs=1e-9)
    assert lost == pytest.approx(price, abs=1e-6) and lost > 0  # the rule binds here
    assert free.summary["price_of_fairness"] == {}
    assert free.summary["equity"]["rules"] == [] and free.summary["equity"]["min_exit_rate"] is not None


def test_all_rules_at_once_each_priced(tables, solve_checked):
    equity = {"county_floor_per_poor": 1000, "max_exit_rate_spread": 0.2, "objective": "maxmin"}
    plan = solve_checked(money(tables, 0.5), policy={"equity": equity})
    assert plan.status == "optimal"
    assert sorted(plan.summary["price_of_fairness"]) == sorted(["county_floor_per_poor", "max_exit_rate_spread",
                                                                 "maxmin"])
    assert all(v is not None and v >= -1e-9 for v in plan.summary["price_of_fairness"].values())


def test_the_checker_catches_a_plan_that_breaks_an_equity_rule(tables, tmp_path):
    path = write_folder(money(tables, 0.5), tmp_path / "data")
    plan_dir = allocator.solve(allocator.load_scenario(path)).write(tmp_path / "plan")
    check = lambda equity: check_plan(tmp_path / "data", plan_dir, start_year=2016, deadline_year=2018,  # noqa: E731
                                      policy={"equity": equity})
    assert check({}) == []
    floor = check({"county_floor_per_poor": 1500})  # C2 gets 4,000 yuan for 3 registered poor households
    assert any("rule 14 equity floor: county C2" in m for m in floor), floor
    spread = check({"max_exit_rate_spread": 0.1})  # the rates are 0.275 and 0.4
    assert any("rule 14 equity spread" in m for m in spread), spread
    assert any("price_of_fairness names" in m for m in spread)
    summary = json.loads((plan_dir / "summary.json").read_text())
    summary["equity"]["min_exit_rate"] = 0.5
    (plan_dir / "summary.json").write_text(json.dumps(summary))
    assert any("equity.min_exit_rate" in m for m in check({}))


@pytest.mark.parametrize("method", METHODS)
def test_a_floor_no_budget_can_pay_is_a_named_infeasibility(tables, tmp_path, method):
    path = write_folder(money(tables, 0.5), tmp_path / "data", policy={"equity": {"county_floor_per_poor": 6000}},
                        solver={"method": method, "mip_gap": 0.0, "time_limit": 20})
    plan = allocator.solve(allocator.load_scenario(path))
    assert plan.status == "infeasible"
    assert "policy.equity.county_floor_per_poor" in plan.summary["message"]
    assert plan.summary["price_of_fairness"] == {}
    found = explain_plan(plan.write(tmp_path / "plan"), money=False, earliest=False)
    assert "policy.equity.county_floor_per_poor" in found["sentence"]
    assert any("per registered poor household" in rule["sentence"] for rule in found["conflict"]["rules"])


@pytest.mark.parametrize(("key", "value"), [("county_floor_per_poor", -1), ("max_exit_rate_spread", -0.01),
                                            ("objective", "fairest")])
def test_bad_equity_input_names_its_key(tables, tmp_path, key, value):
    path = write_folder(tables, tmp_path / "data", policy={"equity": {key: value}})
    with pytest.raises(ScenarioError) as error:
        allocator.load_scenario(path)
    assert [issue.key for issue in error.value.issues] == [f"policy.equity.{key}"]
    good = write_folder(tables, tmp_path / "good")
    with pytest.raises(ScenarioError) as error:
        allocator.load_scenario(good, overrides={f"policy.equity.{key}": value})
    assert [issue.key for issue in error.value.issues] == [f"policy.equity.{key}"]
    result = run("validate", path)
    assert result.returncode == 2 and f"policy.equity.{key}" in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


def test_equity_from_the_command_line_and_library_overrides(tables, tmp_path):
    path = write_folder(money(tables, 0.5), tmp_path / "data", policy={"equity": {"max_exit_rate_spread": 0.1}})
    result = run("solve", path, "--out", tmp_path / "plan", "--quiet")
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "plan" / "summary.json").read_text())
    assert summary["equity"]["max_exit_rate"] - summary["equity"]["min_exit_rate"] <= 0.1 + 1e-9
    assert summary["price_of_fairness"]["max_exit_rate_spread"] == pytest.approx(0.30, abs=1e-6)
    scenario = allocator.load_scenario(path, overrides={"policy.equity.county_floor_per_poor": 1500,
                                                        "policy.equity.max_exit_rate_spread": None})
    assert scenario.policy.equity.rules == ["county_floor_per_poor"]
    plan = allocator.solve(scenario)
    assert plan.summary["price_of_fairness"]["county_floor_per_poor"] == pytest.approx(0.35, abs=1e-6)


def test_the_price_can_be_estimated_from_row_prices_or_skipped(tables, solve_checked):
    plan = solve_checked(money(tables, 0.5), policy={"equity": {"county_floor_per_poor": 1500,
                                                                "price_of_fairness": "duals"}})
    assert plan.summary["price_of_fairness_method"]["county_floor_per_poor"].startswith("estimate")
    assert plan.summary["price_of_fairness"]["county_floor_per_poor"] >= 0
    off = solve_checked(tiny_tables(), policy={"equity": {"county_floor_per_poor": 100,
                                                               "price_of_fairness": "off"}})
    assert off.summary["price_of_fairness"] == {} and off.summary["equity"]["rules"] == ["county_floor_per_poor"]


@pytest.mark.parametrize("fallback, equity, note", [
    (equity_room, {"max_exit_rate_spread": 0.1}, "room for rounding"),
    (equity_first, {"max_exit_rate_spread": 0.1}, "equity rules first"),
    (equity_first, {"county_floor_per_poor": 1500}, "equity rules first")])
def test_lp_fix_falls_back_to_plans_that_keep_the_equity_rules(tables, fallback, equity, note):
    """When the MIP over the LP's fractional rest has no plan (the LP sits on the spread cap or a
    floor), lp-fix tries again: from an LP with the cap tightened and the floors raised
    (``equity_room``), then, before the whole MIP, from a plan with the equity rules as the
    objective (``equity_first``: even rates, money spent; a heuristic: with both rules on this
    tiny case it finds none, and the whole MIP decides). Each keeps every row and is worth the
    usual objective's value."""
    fm = formulate(build_problem(money(tables, 0.5), name="t", start_year=2016, deadline_year=2018,
                                 policy=Policy(equity=equity)))
    assert has_equity_rows(fm)
    failed = SolveResult(Status.ERROR, raw_status="no plan", backend="highs")
    notes: list[str] = []
    result = fallback(fm, get_backend("highs"), SolveOptions(), time.perf_counter(), lambda *a, **k: None, {},
                      notes, failed)
    assert result.status.has_solution and note in notes[-1]
    m = fm.model
    activity = m.A @ result.x
    assert (activity >= m.row_lo - 1e-6).all() and (activity <= m.row_hi + 1e-6).all()
    assert result.objective == pytest.approx(m.objective_value(result.x))
