"""Baselines: the proportional, greedy and practice rules give checked plans that never beat the
optimum; the proportional rule keeps every county within its share of every fund row; the
practice rule gives each cause of poverty its documented package and never spends more than a
fund allows."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import allocator
from allocator.inputs.tables import split_list
from allocator.optimize.baselines import BASELINES, FullPayment, baseline_plan, proportional_flows
from allocator.optimize.decompose import Flows
from allocator.optimize.repair import PlanRows
from allocator.synth import generate_preset
from tests.support.plan_checker import check_scenario_plan
from tests.support.tiny import write_folder


def _never_better(baseline: dict, optimum: dict) -> None:
    """Against what the optimum proves: never less shortfall than its shortfall bound; at its
    shortfall or more, never more exits than its exits bound."""
    assert baseline["total_shortfall"] >= optimum["shortfall_bound"] - 1e-6
    if baseline["total_shortfall"] <= optimum["total_shortfall"] + 1e-6:
        assert baseline["expected_exits"] <= optimum["bound"] + 1e-6


@pytest.mark.parametrize("seed, money_scale", [(0, 0.7), (0, 1.0), (1, 1.0), (2, 1.0), (3, 1.0)])
def test_baselines_are_checked_plans_below_the_proven_bound(seed, money_scale, tmp_path):
    tables = generate_preset("tiny", seed=seed, start_year=2016, deadline_year=2018, money_scale=money_scale)
    path = write_folder(tables, tmp_path / "data", solver={"method": "exact", "mip_gap": 1e-3, "time_limit": 10})
    plan = allocator.solve(allocator.load_scenario(path), baselines=True)
    assert plan.status in ("optimal", "feasible") and plan.summary["bound"] is not None
    folder = plan.write(tmp_path / "plan")
    rows = {row["baseline"]: row for row in plan.summary["baselines"]}
    assert rows["practice"]["status"] == "not applicable"  # hand-made canonical tables have no standard packages
    assert set(plan.baselines) == {"proportional", "greedy"}
    for rule in plan.baselines:
        baseline = plan.baselines[rule]
        if baseline.status == "infeasible":  # a rule may fail where the optimum does not, and says why
            assert f"the {rule} rule" in baseline.summary["message"]
            continue
        assert baseline.status == "feasible"
        assert check_scenario_plan(path, folder / "baselines" / rule) == []
        _never_better(baseline.summary, plan.summary)
    assert plan.baselines["greedy"].status == "feasible"
    assert rows["greedy"]["uplift_exits"] == pytest.approx(
        plan.summary["expected_exits"] - plan.baselines["greedy"].summary["expected_exits"])
    again = allocator.Plan.read(folder)
    assert set(again.baselines) == set(plan.baselines)


def test_proportional_keeps_each_county_within_its_share():
    tables = generate_preset("demo", seed=2)
    problem = allocator.build_problem(tables, name="demo", start_year=2016, deadline_year=2020,
                                      policy=allocator.Policy(), validate=False)
    proportional = baseline_plan(allocator.formulate(problem), "proportional")
    assert proportional.status == "feasible", proportional.summary.get("message")
    # recomputed from the input tables: the poor of each county, and which counties a fund may pay
    regions = tables["regions"].set_index("region_id")
    county_of_village = tables["villages"]["township_id"].map(regions["parent_id"])
    village_county = dict(zip(tables["villages"]["village_id"], county_of_village, strict=True))
    poor = tables["households"].query("registered_poor")["village_id"].map(village_county).value_counts()
    parent = regions["parent_id"].to_dict()

    def under(county: str, scope: list[str]) -> bool:
        node = county
        while node:
            if node in scope or "*" in scope:
                return True
            node = parent.get(node, "")
        return False

    paid = proportional.funding.groupby(["source_id", "year", "county_id"])["amount"].sum()
    for fund in tables["funds"].itertuples(index=False):
        scope = split_list(fund.regions)
        eligible = [c for c in poor.index if under(c, scope)]
        for county in eligible:
            share = poor[county] / poor[eligible].sum()
            spent = paid.get((fund.source_id, fund.year, county), 0.0)
            assert spent <= share * fund.amount * (1 + 1e-6) + 1e-3, (fund.source_id, fund.year, county)


def test_cli_solve_with_baselines(tmp_path):
    tables = generate_preset("tiny", seed=5, start_year=2016, deadline_year=2018)
    path = write_folder(tables, tmp_path / "data")
    result = subprocess.run([sys.executable, "-m", "allocator", "solve", str(path), "--out", str(tmp_path / "plan"),
                             "--baselines", "--quiet"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "usual rules" in result.stdout and "greedy" in result.stdout
    summary = json.loads((tmp_path / "plan" / "summary.json").read_text())
    assert [row["baseline"] for row in summary["baselines"]] == list(BASELINES)
    households = pd.read_csv(tmp_path / "plan" / "baselines" / "greedy" / "households.csv")
    assert len(households) == int(tables["households"]["registered_poor"].sum())
    # a second run without baselines into the same folder leaves no stale baseline behind
    again = subprocess.run([sys.executable, "-m", "allocator", "solve", str(path), "--out", str(tmp_path / "plan"),
                            "--quiet"], capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert not (tmp_path / "plan" / "baselines").exists()
    assert "baselines" not in json.loads((tmp_path / "plan" / "summary.json").read_text())


def test_baselines_beside_a_plan_with_no_solution(tmp_path):
    """A hard deadline the money cannot meet: no optimised plan, the baselines still report, no uplift."""
    tables = generate_preset("tiny", seed=5, start_year=2016, deadline_year=2018, money_scale=0.05)
    path = write_folder(tables, tmp_path / "data", policy={"deadline": "hard"})
    result = subprocess.run([sys.executable, "-m", "allocator", "solve", str(path), "--out", str(tmp_path / "plan"),
                             "--baselines", "--quiet"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 1, result.stderr
    summary = json.loads((tmp_path / "plan" / "summary.json").read_text())
    assert summary["status"] == "infeasible"
    assert all(row["uplift_exits"] is None and row["uplift_counties"] is None for row in summary["baselines"])


# --- practice: the standard package per cause ---------------------------------------------
# The documented rules (README, "Baselines"), written out by hand: household -> its package.
PRACTICE = {
    "HA": ("illness, an ill member", {"health_package"}),
    "HB": ("schooling, a child out of school", {"education_subsidy"}),
    "HC": ("no labour", {"dibao_topup"}),
    "HD": ("lack of funds, labour without income", {"industry_grant", "microcredit"}),
    "HE": ("lack of skills, labour without income", {"skills_training", "job_placement", "industry_grant"}),
    "HF": ("no labour, a dangerous house away from the relocation zone", {"dibao_topup", "housing_renovation"}),
    "HG": ("illness, a dangerous house in the relocation zone", {"health_package", "relocation"}),
    "HH": ("illness, schooling and lack of skills", {"health_package", "education_subsidy", "skills_training",
                                                     "job_placement"}),
}


def practice_registry() -> dict:
    """A hand-made registry: one household per cause (raw_fixture's villages: V1 lies in the
    relocation zone, V2 does not)."""
    from tests.support.raw_fixture import LINE, _typed, household, raw_tables

    raw = raw_tables()
    raw["funds"]["amount"] = 4e6  # ample: every standard package and its projects can be paid
    poor = {"registered_poor": True}
    raw["households_raw"] = _typed("households_raw", [
        household("HA", "V2", main_cause="illness", chronic_illness_members=1, **poor),
        household("HB", "V2", main_cause="schooling", children_out_of_school=1, **poor),
        household("HC", "V2", main_cause="lack_of_labour", labourers=0, household_type="dibao",
                  income_per_capita=0.8 * LINE, **poor),
        household("HD", "V2", main_cause="lack_of_funds", income_per_capita=0.5 * LINE, **poor),
        household("HE", "V2", main_cause="lack_of_skills", labourers=1, income_per_capita=0.7 * LINE, **poor),
        household("HF", "V2", main_cause="lack_of_labour", labourers=0, household_type="dibao", dangerous_house=True,
                  **poor),
        household("HG", "V1", main_cause="illness", chronic_illness_members=1, dangerous_house=True, **poor),
        household("HH", "V2", main_cause="illness", chronic_illness_members=1, labourers=1, children_out_of_school=1,
                  other_causes="schooling;lack_of_skills", **poor),
    ])
    return raw


def test_practice_gives_the_documented_package_for_each_cause():
    from allocator.targeting import identify
    from tests.support.raw_fixture import LINE, candidates_of

    raw = practice_registry()
    ident = identify(raw["regions"], raw["villages_raw"], raw["households_raw"], poverty_line=LINE,
                     registry_given=True)
    tables = candidates_of(raw, ident, basis="registry").tables
    packages = tables["packages"]
    standard = packages[packages["practice"]]
    assert standard["household_id"].is_unique
    got = {row.household_id: set(row.package_id.split("+")) for row in standard.itertuples()}
    assert got == {hid: measures for hid, (_, measures) in PRACTICE.items()}
    # with ample money the practice plan gives every household that package
    problem = allocator.build_problem(tables, name="practice", start_year=2016, deadline_year=2020,
                                      policy=allocator.Policy(), validate=False)
    plan = baseline_plan(allocator.formulate(problem), "practice")
    assert plan.status == "feasible", plan.summary.get("message")
    chosen = plan.households.set_index("household_id")
    for hid, (_, measures) in PRACTICE.items():
        assert set(chosen.loc[hid, "package_id"].split("+")) == measures, hid


@pytest.fixture(scope="module")
def scarce_raw(tmp_path_factory):
    """The province generator's raw data with 30 % of the money, through targeting to canonical tables."""
    from tests.targeting.test_targeting_e2e import raw_scenario, run

    folder = tmp_path_factory.mktemp("practice")
    path = raw_scenario(folder / "raw", households=1500, counties=2, money_scale=0.3)
    result = run("candidates", path, "--out", folder / "cand", "--quiet")
    assert result.returncode == 0, result.stderr
    return folder / "cand" / "scenario.yaml"


def test_practice_never_spends_more_than_a_fund_allows_and_passes_the_checker(scarce_raw, tmp_path):
    scenario = allocator.load_scenario(scarce_raw)
    tables = allocator.load_tables(scenario)
    problem = allocator.build_problem(tables, name="scarce", start_year=2016, deadline_year=2020,
                                      policy=scenario.policy, validate=False)
    plan = baseline_plan(allocator.formulate(problem), "practice")
    assert plan.status == "feasible", plan.summary.get("message")
    folder = plan.write(tmp_path / "practice")
    assert check_scenario_plan(scarce_raw, folder) == []
    # recomputed from the input tables: each source's spend through each year within its money through that year
    funds = tables["funds"].groupby(["source_id", "year"])["amount"].sum()
    spent = plan.funding.groupby(["source_id", "year"])["amount"].sum().reindex(funds.index, fill_value=0.0)
    assert (spent.groupby(level=0).cumsum() <= funds.groupby(level=0).cumsum() * (1 + 1e-9) + 1e-3).all()
    assert spent.sum() < funds.sum()  # scarce, yet the rule leaves some money it cannot use
    # every package given is the household's standard one
    packages = tables["packages"].set_index(["household_id", "package_id"])["practice"]
    given = pd.MultiIndex.from_frame(plan.households.dropna(subset=["package_id"])[["household_id", "package_id"]])
    assert len(given) and packages.reindex(given).all()
    # money is short: households of poor villages are served at least as often as the others
    poor_village = tables["villages"].set_index("village_id")["poor_village"]
    served = plan.households.assign(poor=lambda f: f["village_id"].map(poor_village),
                                    served=lambda f: f["package_id"].notna())
    share = served.groupby("poor")["served"].mean()
    assert share[True] >= share[False]


@pytest.mark.parametrize("change, where", [
    (lambda rules: rules[2].update(measures=["health_package", "free_lunch"]),
     "row 3, key 'practice.measures': unknown measure; expected a key of 'measures' (found free_lunch)"),
    (lambda rules: rules[4].update(cause="bad_luck"), "row 5, key 'practice.cause': unknown cause"),
    (lambda rules: rules[0].pop("source"), "row 1, key 'practice.source': Field required"),
    (lambda rules: rules[1].update(measures=["safety_net"]),
     "row 2, key 'practice.measures': the safety net backs every package by itself"),
])
def test_bad_practice_rules_are_refused_naming_file_row_and_key(change, where, tmp_path):
    import yaml

    from allocator.targeting.catalog import DEFAULT_CATALOG
    from tests.targeting.test_targeting_e2e import raw_scenario, run

    catalog = yaml.safe_load(DEFAULT_CATALOG.read_text())
    change(catalog["practice"])
    path = raw_scenario(tmp_path / "raw", households=200, counties=1, targeting={"catalog": "bad.yaml"})
    (tmp_path / "raw" / "bad.yaml").write_text(yaml.safe_dump(catalog, allow_unicode=True))
    result = run("solve", path, "--out", tmp_path / "plan", "--baselines", "--quiet")
    assert result.returncode == 2, result.stderr
    assert f"bad.yaml {where}" in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


def test_three_rules_side_by_side_in_the_summary_and_the_report(scarce_raw, tmp_path):
    from allocator.report.html import baselines_table

    scenario = allocator.load_scenario(scarce_raw)
    settings = scenario.solver.model_copy(update={"time_limit": 10})
    plan = allocator.solve(scenario, settings=settings, baselines=True)
    assert plan.status in ("optimal", "feasible")
    rows = {row["baseline"]: row for row in plan.summary["baselines"]}
    assert list(rows) == list(BASELINES) and all(row["status"] == "feasible" for row in rows.values())
    budget = allocator.load_tables(scenario)["funds"]["amount"].sum()
    for rule, row in rows.items():
        other = plan.baselines[rule].summary
        _never_better(other, plan.summary)
        assert row["money_idle"] == pytest.approx(budget - other["total_cost"], abs=1.0)
        assert row["uplift_idle"] == pytest.approx(plan.summary["total_cost"] - other["total_cost"], abs=1.0)
        assert row["uplift_counties"] == plan.summary["counties_on_schedule"] - other["counties_on_schedule"]
    table = baselines_table(plan).set_index("")
    assert list(table.columns) == ["optimised", *BASELINES]
    assert table.loc["uplift in exits (optimised − rule)", "practice"] == f"{rows['practice']['uplift_exits']:+,.1f}"
    assert table.loc["money left idle (yuan)", "optimised"] == f"{budget - plan.summary['total_cost']:,.0f}"


@pytest.mark.parametrize("rule", ["greedy", "proportional"])
def test_full_payment_agrees_with_a_flow_lp_that_pays_the_cell(rule):
    """The warm-started check of a moved mandatory project's cell: yes whenever a flow LP solved
    from scratch pays the cell in full (that flow pays the most in all), and a yes is a flow
    paying the most in all that pays it."""
    tables = generate_preset("tiny", seed=1, start_year=2016, deadline_year=2018, money_scale=0.4)
    problem = allocator.build_problem(tables, name="tiny", start_year=2016, deadline_year=2018,
                                      policy=allocator.Policy(), validate=False)
    fm = allocator.formulate(problem)
    flows = proportional_flows(fm) if rule == "proportional" else Flows.of(fm)
    check, rows = FullPayment(flows), PlanRows.of(fm)
    rng = np.random.default_rng(0)
    answers = []
    for _ in range(40):
        x = np.flatnonzero(rng.random(fm.nx) < 0.3)
        demand = rows.spend(x, np.zeros(0, dtype=np.int64)) * rng.uniform(1.0, 30.0)  # from ample to overdrawn
        cell = int(rng.choice(np.flatnonzero(demand > 0)))
        full = check(demand, cell)
        paid = flows.cells @ flows.flows_for(demand)
        if paid[cell] >= demand[cell] * (1 - 1e-7):
            assert full
        if full:  # some flow pays the most in all and the cell in full: the cell weighed a little more finds one
            weight = np.ones(len(demand))
            weight[cell] = 1.0 + 1e-6
            best = flows.cells @ flows.flows_for(demand, None, weight)
            assert best[cell] >= demand[cell] * (1 - 1e-6)
            assert best.sum() >= paid.sum() * (1 - 1e-7)
        answers.append(full)
    assert any(answers) and not all(answers)
