""""As scheduled": earliness, annual targets, hat-off years, spending rules and sustained exits.

Each new constraint family gets a pair of tiny cases, one where it binds and one where it does
not; every plan goes through the independent checker (``solve_checked``), which re-derives the
path, the hat-off years, the recall of carried money, the pace, per-source shares and floors.
"""

from __future__ import annotations

import pandas as pd
import pytest

import allocator
from allocator.errors import InputError, ScenarioError
from tests.support.tiny import write_folder

RICH = 1e7
FUND_COLUMNS = ["source_id", "year", "amount", "categories", "regions", "carry_over"]


def rich(tables):
    tables["funds"] = pd.DataFrame([["central", y, RICH, "*", "*", False] for y in (2016, 2017, 2018)],
                                   columns=FUND_COLUMNS)
    tables["personnel"] = tables["personnel"].iloc[0:0]
    return tables


def one_household(tables, lag=0):
    """Only H6 (county C2) is registered poor, with one package; money in 2016 and 2017."""
    tables["households"]["registered_poor"] = tables["households"]["household_id"] == "H6"
    tables["packages"] = tables["packages"][tables["packages"]["household_id"] == "H6"].assign(lag_years=lag)
    tables["projects"] = tables["projects"].iloc[0:0]
    tables["funds"] = pd.DataFrame([["central", y, 4000, "*", "*", False] for y in (2016, 2017)],
                                   columns=FUND_COLUMNS)
    tables["personnel"] = tables["personnel"].iloc[0:0]
    return tables


def test_an_earlier_exit_beats_a_later_one_at_equal_deadline_exits(tables, solve_checked):
    plan = solve_checked(one_household(tables))
    assert plan.households.set_index("household_id").loc["H6", "start_year"] == 2016
    late = solve_checked(one_household(tables), policy={"earliness_weight": 0.0})
    assert late.summary["expected_exits"] == pytest.approx(plan.summary["expected_exits"])
    # the credit is worth the household-years it buys: 0.65 - baseline, three year-ends from 2016
    years = plan.path[plan.path["region_id"] == ""].set_index("year")["expected_poor"]
    assert years.loc[2016] == pytest.approx(1 - 0.65)
    assert plan.summary["value"] > late.summary["value"]


def test_annual_target_binds_the_path(tables, solve_checked):
    tables = rich(tables)
    tables["regions"]["rural_population"] = [0, 1000, 1000, 0, 0]  # the county rules do not bind here
    tables["packages"]["lag_years"] = 1  # nothing counts before 2017 ...
    free = solve_checked(tables)
    assert free.summary["target_shortfall"] == 0
    # ... so a target for 2016 cannot be met and is reported, and one for 2017 forces early starts
    plan = solve_checked(tables, policy={"annual_targets": {2016: 0.5, 2017: 0.45}})
    path = plan.path[plan.path["region_id"] == ""].set_index("year")
    assert path.loc[2016, "shortfall"] > 0 and path.loc[2017, "shortfall"] == pytest.approx(0, abs=1e-6)
    assert path.loc[2017, "expected_poor"] <= 0.45 * path.loc[2017, "registered_poor"] + 1e-6
    assert plan.summary["target_shortfall"] == pytest.approx(path["shortfall"].sum())
    loose = solve_checked(tables, policy={"annual_targets": {2017: 1.0}})
    assert loose.summary["target_shortfall"] == 0
    assert loose.summary["value"] == pytest.approx(free.summary["value"], rel=1e-9)


def test_target_per_county_from_the_targets_table(tables, solve_checked):
    tables = rich(tables)
    tables["targets"] = pd.DataFrame([["C2", 2016, 0.5]], columns=["region_id", "year", "max_poor_share"])
    plan = solve_checked(tables)
    c2 = plan.path[(plan.path["region_id"] == "C2") & (plan.path["year"] == 2016)].iloc[0]
    assert c2["target"] == 0.5 and c2["expected_poor"] <= 0.5 * c2["registered_poor"] + 1e-6


def test_hat_off_year_binds_the_county_earlier(tables, solve_checked):
    tables["funds"] = pd.DataFrame([["central", y, 6000, "*", "*", False] for y in (2016, 2017, 2018)],
                                   columns=FUND_COLUMNS)
    tables["projects"]["mandatory"] = False
    tables["regions"]["rural_population"] = [0, 40, 100, 0, 0]  # C2 may keep 3 % x 100 = ... 2 % x 100 = 2 poor
    free = solve_checked(tables)
    c2 = free.counties.set_index("county_id").loc["C2"]
    assert c2["hat_off_year"] == 2018
    tables["regions"]["hat_off_year"] = pd.array([pd.NA, pd.NA, 2016, pd.NA, pd.NA], dtype="Int64")
    plan = solve_checked(tables)
    c2 = plan.counties.set_index("county_id").loc["C2"]
    assert c2["hat_off_year"] == 2016
    c2_2016 = plan.path[(plan.path["region_id"] == "C2") & (plan.path["year"] == 2016)].iloc[0]
    allowed = 0.02 * 100
    assert c2["on_schedule"] == (c2_2016["expected_poor"] <= allowed + 1e-6)
    if c2["on_schedule"]:
        assert c2["achieved_hat_off_year"] <= 2016
    else:  # reported, with the rule's shortfall at 2016
        assert c2["shortfall_households"] == pytest.approx(c2_2016["expected_poor"] - allowed)


def test_carried_money_is_recalled_after_its_years(tables, solve_checked):
    tables["projects"].loc[tables["projects"]["project_id"] == "road", "duration_years"] = 2  # industry in V1: 2018
    tables["projects"]["mandatory"] = False
    tables["personnel"] = tables["personnel"].iloc[0:0]
    tables["households"]["registered_poor"] = tables["households"]["village_id"] == "V1"
    tables["packages"] = tables["packages"][tables["packages"]["package_id"] == "industry"]
    funds = pd.DataFrame([["central", 2016, 30000, "*", "*", True], ["central", 2017, 0, "*", "*", True],
                          ["central", 2018, 0, "*", "*", True]], columns=FUND_COLUMNS)
    tables["funds"] = funds
    kept = solve_checked(tables)
    assert (kept.funding["year"] == 2018).any(), "never recalled: 2016 money pays the 2018 packages"
    tables["funds"] = funds.assign(carry_over_years=1)
    plan = solve_checked(tables)
    assert not (plan.funding["year"] == 2018).any()
    use = pd.DataFrame(plan.summary["budget_use"]).set_index("year")
    assert use.loc[2017, "recalled"] == pytest.approx(30000 - use.loc[2016, "spent"] - use.loc[2017, "spent"])


def test_disbursement_pace_binds(tables, solve_checked):
    tables["funds"] = pd.DataFrame([["central", 2016, 20000, "*", "*", True], ["central", 2017, 20000, "*", "*", True],
                                    ["central", 2018, 20000, "*", "*", True]], columns=FUND_COLUMNS)
    free = solve_checked(tables)
    tables["funds"]["min_spend_share"] = [0.9, 0.0, 0.0]
    plan = solve_checked(tables)
    spent_2016 = plan.funding.loc[plan.funding["year"] == 2016, "amount"].sum()
    assert spent_2016 >= 0.9 * 20000 - 1e-6
    assert plan.summary["value"] <= free.summary["value"] + 1e-9


def test_source_category_share_binds_only_that_source(tables, solve_checked):
    tables = rich(tables)
    tables["funds"] = pd.concat([tables["funds"], pd.DataFrame([["east", 2016, 5000, "*", "*", False]],
                                                               columns=FUND_COLUMNS)])
    free = solve_checked(tables)
    central = free.funding[free.funding["source_id"] == "central"]
    assert central.loc[central["category"] == "welfare", "amount"].sum() < 0.5 * central["amount"].sum()
    plan = solve_checked(tables, policy={"min_source_category_share": {"central": {"welfare": 0.5}}})
    central = plan.funding[plan.funding["source_id"] == "central"]
    assert central.loc[central["category"] == "welfare", "amount"].sum() >= 0.5 * central["amount"].sum() - 1e-6
    loose = solve_checked(tables, policy={"max_source_category_share": {"central": {"welfare": 1.0}}})
    assert loose.summary["value"] == pytest.approx(free.summary["value"], rel=1e-9)


def test_county_floor_binds(tables, solve_checked):
    tables["funds"] = pd.DataFrame([["central", 2016, 9000, "*", "*", False]], columns=FUND_COLUMNS)
    tables["regions"]["rural_population"] = [0, 1000, 1000, 0, 0]  # exits, not the county rules, decide
    tables["projects"]["mandatory"] = False
    free = solve_checked(tables)
    by_county = free.funding.groupby("county_id")["amount"].sum()
    low = by_county.min() / by_county.sum() if len(by_county) == 2 else 0.0
    floor = round(float(low) + 0.05, 2)
    plan = solve_checked(tables, policy={"county_floor_share": {"central": floor}})
    by_county = plan.funding.groupby("county_id")["amount"].sum()
    assert len(by_county) == 2 and (by_county >= floor * by_county.sum() - 1e-6).all()
    assert plan.summary["value"] <= free.summary["value"] + 1e-9


def test_sustained_probability_steers_the_choice(tables, solve_checked):
    tables = one_household(tables)
    tables["packages"] = pd.concat([tables["packages"], tables["packages"].assign(
        package_id="dibao", category="welfare", exit_probability=0.8)])
    plan = solve_checked(tables)
    assert plan.households.set_index("household_id").loc["H6", "package_id"] == "dibao"
    tables["packages"]["sustained_probability"] = [0.6, 0.3]  # the transfer stops once the household is out
    plan = solve_checked(tables)
    row = plan.households.set_index("household_id").loc["H6"]
    assert row["package_id"] == "industry" and row["sustained_probability"] == 0.6
    assert plan.summary["sustained_exits"] == pytest.approx(0.6)
    assert plan.summary["sustained_share"] == pytest.approx(0.6 / 0.65)


@pytest.mark.parametrize("method", ["lp-fix", "decompose"])
def test_methods_agree_with_every_rule_on(tables, solve_checked, method):
    tables["funds"] = pd.DataFrame([["central", 2016, 12000, "*", "*", True, 1, 0.5],
                                    ["central", 2017, 9000, "*", "*", True, 1, 0.0],
                                    ["central", 2018, 9000, "*", "*", True, 1, 0.0],
                                    ["county1", 2017, 5000, "industry", "C1", False, pd.NA, 0.0]],
                                   columns=FUND_COLUMNS + ["carry_over_years", "min_spend_share"])
    tables["regions"]["hat_off_year"] = pd.array([pd.NA, 2017, pd.NA, pd.NA, pd.NA], dtype="Int64")
    policy = {"annual_targets": {2017: 0.6}, "min_source_category_share": {"central": {"industry": 0.2}},
              "county_floor_share": {"central": 0.2}}
    exact = solve_checked(tables, policy=policy, solver={"method": "exact", "mip_gap": 0.0})
    other = solve_checked(tables, policy=policy, solver={"method": method, "mip_gap": 0.0})
    assert exact.status == "optimal"
    assert other.summary["total_shortfall"] >= exact.summary["total_shortfall"] - 1e-6
    if other.summary["total_shortfall"] <= exact.summary["total_shortfall"] + 1e-6:
        assert other.summary["value"] <= exact.summary["value"] + 1e-6
        assert other.summary["bound"] >= exact.summary["value"] - 1e-6  # the bound stays a bound


def _issues(tables, tmp_path, policy=None):
    path = write_folder(tables, tmp_path / "data", policy=policy)
    with pytest.raises((InputError, ScenarioError)) as err:
        allocator.load_tables(allocator.load_scenario(path))
    return err.value.issues


def test_bad_schedule_input_names_the_cell(tables, tmp_path):
    tables["targets"] = pd.DataFrame([["C1", 2016, 1.5], ["C9", 2017, 0.5], ["", 2025, 0.1]],
                                     columns=["region_id", "year", "max_poor_share"])
    tables["regions"]["hat_off_year"] = pd.array([pd.NA, 2030, 2015, pd.NA, pd.NA], dtype="Int64")
    tables["funds"]["carry_over_years"] = pd.array([-1, pd.NA, pd.NA, 2, pd.NA], dtype="Int64")
    found = {(i.file, i.row, i.column, i.message) for i in _issues(tables, tmp_path)}
    assert ("targets.csv", 1, "max_poor_share", "out of range") in found
    assert ("regions.csv", 2, "hat_off_year", "hat-off year outside the scenario") in found
    assert ("regions.csv", 3, "hat_off_year", "hat-off year outside the scenario") in found
    assert ("funds.csv", 1, "carry_over_years", "out of range") in found
    assert any(f == "targets.csv" and r == 2 and c == "region_id" for f, r, c, _ in found)
    assert any(f == "targets.csv" and r == 3 and c == "year" for f, r, c, _ in found)
    assert any(f == "funds.csv" and r == 4 and c == "carry_over_years" for f, r, c, _ in found)  # no carry-over


@pytest.mark.parametrize("policy, key", [
    ({"county_floor_share": {"central": 1.5}}, "policy.county_floor_share.central"),
    ({"county_floor_share": {"central": 0.6}}, "policy.county_floor_share.central"),  # 2 counties x 0.6 > 1
    ({"min_source_category_share": {"nowhere": {"industry": 0.5}}}, "policy.min_source_category_share.nowhere"),
    ({"min_source_category_share": {"central": {"roads": 0.5}}}, "policy.min_source_category_share.central.roads"),
    ({"annual_targets": {2016: -0.1}}, "policy.annual_targets.2016"),
    ({"annual_targets": {2030: 0.1}}, None),
])
def test_bad_schedule_policy_names_the_key(tables, tmp_path, policy, key):
    issues = _issues(tables, tmp_path, policy)
    text = " ".join(str(i) for i in issues)
    assert (key in text) if key else ("2030" in text and "outside" in text)


def test_bad_schedule_input_exits_2_from_the_cli(tables, tmp_path):
    import subprocess
    import sys

    tables["targets"] = pd.DataFrame([["C1", 2016, 1.5]], columns=["region_id", "year", "max_poor_share"])
    path = write_folder(tables, tmp_path / "data")
    result = subprocess.run([sys.executable, "-m", "allocator", "validate", str(path)], capture_output=True, text=True)
    assert result.returncode == 2 and "targets.csv row 1, column 'max_poor_share'" in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_a_cost_split_that_does_not_add_up_names_the_cell(tables, tmp_path):
    """packages.cost_by_category must read as category:yuan;... and add up to the cost."""
    n = len(tables["packages"])
    cost = tables["packages"]["cost"].to_numpy()
    split = [f"industry:{c:.0f}" for c in cost]
    split[0] = "roads:5"  # unknown category
    split[1] = f"industry:{cost[1] / 2:.0f};housing:1"  # does not add up
    split[2] = f"industry:{cost[2]:.0f};ability:x"  # not a number
    tables["packages"]["cost_by_category"] = split
    rows = {i.row for i in _issues(tables, tmp_path) if i.column == "cost_by_category"}
    assert n >= 3 and rows == {1, 2, 3}
    tables["packages"]["cost_by_category"] = [f"industry:{c:.0f}" for c in cost]
    path = write_folder(tables, tmp_path / "good", policy=None)
    allocator.load_tables(allocator.load_scenario(path))  # a split that adds up reads


def test_a_demand_below_the_pace_is_paid_and_the_pace_is_checked_apart(tables):
    """The repair asks what the funds can pay of a spend; a disbursement pace asks for more
    spend, so below it the flows pay without the pace, and ``meets_rules`` says the pace is missed."""
    import numpy as np

    from allocator.optimize.decompose import Flows

    tables["funds"] = pd.DataFrame([["central", 2016, 12000, "*", "*", True, 1, 0.5],
                                    ["central", 2017, 9000, "*", "*", True, 1, 0.0]],
                                   columns=FUND_COLUMNS + ["carry_over_years", "min_spend_share"])
    problem = allocator.build_problem(tables, name="t", start_year=2016, deadline_year=2018, validate=False)
    flows = Flows.of(allocator.formulate(problem))
    little = np.zeros(flows.cells.shape[0])
    little[np.flatnonzero(flows.cells.getnnz(axis=1))[0]] = 100.0  # far below 0.5 x 12,000 in 2016
    f = flows.flows_for(little, floor=little)
    assert flows.cells @ f == pytest.approx(little, abs=1e-6)
    assert not flows.meets_rules(f)
    plenty = np.where(flows.cells.getnnz(axis=1) > 0, 1e5, 0.0)
    assert flows.meets_rules(flows.flows_for(plenty))
