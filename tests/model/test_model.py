"""Each constraint family, where it binds and where it does not, on the tiny data set.

Every plan goes through the independent checker (tests/plan_checker.py) in ``solve_checked``.
"""

from __future__ import annotations

import pandas as pd
import pytest

RICH = 1e7


def make_rich(tables):
    tables["funds"] = pd.DataFrame(
        [["central", y, RICH, "*", "*", False] for y in (2016, 2017, 2018)],
        columns=["source_id", "year", "amount", "categories", "regions", "carry_over"])
    tables["personnel"] = tables["personnel"].iloc[0:0]
    return tables


def best_package(tables):
    """Each registered poor household's best package by exit probability (ignoring money)."""
    pk = tables["packages"].merge(tables["households"], on="household_id")
    pk = pk[pk["registered_poor"] & (pk["exit_probability"] > pk["baseline_exit_probability"])]
    return pk.sort_values("exit_probability").groupby("household_id").tail(1).set_index("household_id")


def test_money_not_binding_every_household_gets_its_best_package(tables, solve_checked):
    plan = solve_checked(make_rich(tables))
    best = best_package(tables)
    chosen = plan.households.set_index("household_id")
    for hh, row in best.iterrows():
        assert chosen.loc[hh, "package_id"] == row["package_id"]
    assert plan.status == "optimal"


def test_budget_binds_and_limits_spend(tables, solve_checked):
    rich = solve_checked(make_rich(tables.copy()))
    tables["funds"] = pd.DataFrame([["central", 2016, 7000, "*", "*", False]],
                                   columns=["source_id", "year", "amount", "categories", "regions", "carry_over"])
    tables["projects"]["mandatory"] = False
    plan = solve_checked(tables)
    assert plan.summary["total_cost"] <= 7000 + 1e-6
    assert plan.summary["expected_exits"] < rich.summary["expected_exits"]
    assert set(plan.households["start_year"].dropna()) <= {2016}


def test_carry_over_lets_early_money_pay_later(tables, solve_checked):
    # all money arrives in 2016; H2's job package (lag 1) and H4's housing (lag 1) fit any year
    base = tables["funds"].iloc[0:0]
    for carry in (False, True):
        tables["funds"] = pd.concat([base, pd.DataFrame(
            [["central", 2016, 30000, "*", "*", carry], ["central", 2017, 0, "*", "*", carry],
             ["central", 2018, 0, "*", "*", carry]], columns=base.columns)])
        plan = solve_checked(tables)
        years = set(plan.funding["year"])
        if carry:
            assert years - {2016}, "with carry-over the solver may pay in later years"
        else:
            assert years <= {2016}


def test_prerequisite_binds_when_project_cannot_finish(tables, solve_checked):
    tables = make_rich(tables)
    plan = solve_checked(tables)
    industry = plan.households[plan.households["package_id"] == "industry"]
    road = plan.projects[plan.projects["project_id"] == "road"]
    assert len(industry[industry["village_id"] == "V1"]) > 0 and len(road) == 1
    assert (industry[industry["village_id"] == "V1"]["start_year"] >= road["start_year"].iloc[0] + 1).all()
    tables["projects"].loc[tables["projects"]["project_id"] == "road", "duration_years"] = 3
    plan = solve_checked(tables)
    assert not ((plan.households["package_id"] == "industry") & (plan.households["village_id"] == "V1")).any()


def test_lag_beyond_deadline_is_never_planned(tables, solve_checked):
    tables = make_rich(tables)
    tables["packages"]["lag_years"] = 3  # nothing can count by 2018
    plan = solve_checked(tables)
    assert plan.households["package_id"].fillna("").eq("").all()
    assert plan.summary["expected_exits"] == pytest.approx(
        tables["households"].query("registered_poor")["baseline_exit_probability"].sum())


def test_category_share_binds(tables, solve_checked):
    tables = make_rich(tables)
    free = solve_checked(tables)
    spend = free.funding.groupby("category")["amount"].sum()
    assert spend.get("welfare", 0) / spend.sum() < 0.5
    plan = solve_checked(tables, policy={"max_category_share": {"industry": 0.2}})
    spend = plan.funding.groupby("category")["amount"].sum()
    assert spend.get("industry", 0) / spend.sum() <= 0.2 + 1e-9
    assert plan.summary["expected_exits"] <= free.summary["expected_exits"] + 1e-9


def test_min_category_share_binds(tables, solve_checked):
    plan = solve_checked(tables, policy={"min_category_share": {"welfare": 0.5}})
    spend = plan.funding.groupby("category")["amount"].sum()
    assert spend.get("welfare", 0) / spend.sum() >= 0.5 - 1e-9


def test_personnel_binds(tables, solve_checked):
    tables = make_rich(tables)
    tables["personnel"] = pd.DataFrame([["T1", y, 6.0] for y in (2016, 2017, 2018)],
                                       columns=["region_id", "year", "hours"])
    plan = solve_checked(tables)
    t1 = plan.households[plan.households["village_id"].isin(["V1", "V2"])]
    hours = tables["packages"].set_index(["household_id", "package_id"])["personnel_hours"]
    used = t1.dropna(subset=["start_year"]).apply(
        lambda r: (r["start_year"], hours[(r["household_id"], r["package_id"])]), axis=1)
    per_year = pd.DataFrame(used.tolist(), columns=["year", "hours"]).groupby("year")["hours"].sum()
    assert (per_year <= 6.0).all()
    # without the rule, T1 households take packages of 20-30 hours
    free = solve_checked(make_rich(tiny_tables_copy()))
    assert (free.households[free.households["village_id"] == "V1"]["package_id"] == "industry").any()


def tiny_tables_copy():
    from tests.support.tiny import tiny_tables

    return tiny_tables()


def test_soft_deadline_reports_shortfall_and_hard_deadline_is_infeasible(tables, solve_checked):
    poor = tables["funds"].copy()
    poor["amount"] = 100.0
    tables["funds"] = poor
    tables["projects"]["mandatory"] = False
    soft = solve_checked(tables)
    assert soft.summary["total_shortfall"] > 0
    assert soft.summary["counties_on_schedule"] < soft.summary["counties_total"]
    hard = solve_checked(tables, policy={"deadline": "hard"})
    assert hard.status == "infeasible"
    assert "deadline is hard" in hard.summary["message"]


def test_county_exit_rule_met_when_population_is_large(tables, solve_checked):
    tables["regions"]["rural_population"] = [0, 4000, 3000, 0, 0]
    plan = solve_checked(tables, policy={"deadline": "hard"})
    assert plan.status == "optimal"
    assert plan.counties["on_schedule"].all()


def test_shortfall_minimised_before_exits(tables, solve_checked):
    """Lexicographic: with little money, spend it where it puts counties on schedule first."""
    plan = solve_checked(tables)
    counties = plan.counties.set_index("county_id")
    assert plan.summary["total_shortfall"] == pytest.approx(counties["shortfall_households"].sum())


def test_mandatory_project_that_cannot_finish_is_infeasible_with_reason(tables, solve_checked):
    tables["projects"].loc[tables["projects"]["project_id"] == "water", "duration_years"] = 4
    plan = solve_checked(tables)
    assert plan.status == "infeasible"
    assert "water" in plan.summary["message"] and "V2" in plan.summary["message"]


def test_mandatory_project_is_built_in_time(tables, solve_checked):
    tables["projects"].loc[tables["projects"]["project_id"] == "water", "duration_years"] = 2
    plan = solve_checked(tables)
    water = plan.projects[plan.projects["project_id"] == "water"]
    assert len(water) == 1 and water["start_year"].iloc[0] + 2 - 1 <= 2018


def test_fund_scope_by_region_and_category(tables, solve_checked):
    tables = make_rich(tables)
    tables["funds"]["regions"] = "C2"
    tables["projects"]["mandatory"] = False
    plan = solve_checked(tables)
    assert set(plan.funding["county_id"]) <= {"C2"}
    assert plan.households.query("county_id == 'C1'")["package_id"].fillna("").eq("").all()
    tables["funds"]["regions"] = "*"
    tables["funds"]["categories"] = "welfare;ability"
    plan = solve_checked(tables)
    assert set(plan.funding["category"]) <= {"welfare", "ability"}


def test_non_registered_households_are_not_planned(tables, solve_checked):
    plan = solve_checked(make_rich(tables))
    assert "H5" not in set(plan.households["household_id"])
