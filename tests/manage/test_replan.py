"""Re-planning: pinned decisions stay, spent money is not spent again, no deviation means no change,
new demand gets an answer, the diff explains every change, and the stability option."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import allocator
from allocator.errors import InputError
from allocator.manage.replan import REASONS, replan_from
from allocator.manage.simulate import simulate_progress
from allocator.plan.context import load_plan_context
from tests.support.loop_helpers import POLICY, as_planned, decisions, solve_preset
from tests.support.plan_checker import check_plan


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    plan_dir = solve_preset(tmp_path_factory.mktemp("tiny"))
    return plan_dir, load_plan_context(plan_dir)


@pytest.fixture(scope="module")
def replanned(tiny, tmp_path_factory):
    """A simulated record of mid-2018 and the re-plan from 2018, written."""
    plan_dir, context = tiny
    record = simulate_progress(context, 2018, seed=13)
    result = replan_from(context, record)
    out = result.write(tmp_path_factory.mktemp("replan") / "new")
    return record, result, out


def test_the_remaining_plan_passes_the_independent_checker(replanned):
    _, result, out = replanned
    assert result.remaining.status == "optimal"
    assert check_plan(out / "remaining" / "data", out / "remaining", start_year=2018, deadline_year=2020,
                      policy=POLICY) == []
    assert allocator.Plan.read(out).summary["replan"]["from_year"] == 2018


def test_pinned_decisions_never_change(tiny, replanned):
    plan_dir, context = tiny
    record, result, out = replanned
    new = pd.read_csv(out / "households.csv", dtype={"household_id": str, "package_id": str}).set_index(
        "household_id")
    delivered = record.households[record.households["delivered"] & ~record.households["returned"]]
    assert len(delivered) > 5
    got = new.loc[delivered["household_id"]]
    planned = context.plan.households.set_index("household_id").loc[delivered["household_id"]]
    assert (got["package_id"].to_numpy() == planned["package_id"].to_numpy()).all()
    assert (got["start_year"].to_numpy() == delivered["start_year"].to_numpy()).all()
    assert (got["state"] == "settled").all()
    remaining = pd.read_csv(out / "remaining" / "data" / "packages.csv", dtype=str)
    assert not remaining["household_id"].isin(delivered["household_id"]).any()  # nothing left to choose
    started = record.projects[record.projects["started"]]
    built = pd.read_csv(out / "projects.csv", dtype=str).set_index(["village_id", "project_id"])
    assert len(started) > 0
    years = built.loc[pd.MultiIndex.from_arrays([started["village_id"], started["project_id"]]), "start_year"]
    assert (years.astype(int).to_numpy() == started["start_year"].to_numpy()).all()
    # the stability option changes nothing pinned either
    stable = replan_from(context, record, stability=0.2)
    again = stable.plan.households.set_index("household_id").loc[delivered["household_id"]]
    assert (again["package_id"].to_numpy() == planned["package_id"].to_numpy()).all()
    assert (again["start_year"].to_numpy() == delivered["start_year"].to_numpy()).all()


def _spent_within_budgets(funds: pd.DataFrame, funding: pd.DataFrame) -> list[str]:
    """Per source and year: money used <= amount (cumulatively with carry-over)."""
    used = funding.groupby(["source_id", "year"])["amount"].sum()
    b = funds.set_index(["source_id", "year"])[["amount", "carry_over"]].join(used.rename("used")).fillna(
        {"used": 0.0}).reset_index().sort_values(["source_id", "year"])
    b["cum_amount"] = b.groupby("source_id")["amount"].cumsum()
    b["cum_used"] = b.groupby("source_id")["used"].cumsum()
    over = np.where(b["carry_over"], b["cum_used"] > b["cum_amount"] + 0.01, b["used"] > b["amount"] + 0.01)
    return [f"{r.source_id} {r.year}: {r.used:,.2f} of {r.amount:,.2f}" for r in b[over].itertuples()]


def test_a_replan_never_spends_money_already_spent(tiny):
    plan_dir, context = tiny
    record = as_planned(plan_dir, 2018)
    funds = context.tables["funds"]
    # the record says most of the carry-over central money left went out in the first half of 2018
    central = funds[funds["source_id"] == "central"]
    left = central.loc[central["year"] <= 2018, "amount"].sum() - record.disbursed.loc[
        record.disbursed["source_id"] == "central", "amount"].sum()
    extra = pd.DataFrame({"source_id": ["central"], "county_id": [context.plan.counties["county_id"].iloc[0]],
                          "category": ["housing"], "year": [2018], "amount": [0.9 * left]})
    record.disbursed = pd.concat([record.disbursed, extra]).groupby(
        ["source_id", "county_id", "category", "year"], as_index=False)["amount"].sum()
    result = replan_from(context, record)
    assert result.remaining.status == "optimal"
    assert _spent_within_budgets(funds, result.plan.funding) == []
    remaining = result.tables["funds"].set_index(["source_id", "year"])["amount"]
    assert remaining[("central", 2018)] == pytest.approx(0.1 * left, abs=0.01)
    amounts = funds.set_index(["source_id", "year"])["amount"]
    assert remaining[("central", 2019)] == amounts[("central", 2019)]
    spent = result.remaining.funding.query("source_id == 'central' and year == 2018")["amount"].sum()
    assert spent <= 0.1 * left + 0.01
    # and the disbursed history is in the new plan as it was paid
    history = result.plan.funding[result.plan.funding["year"] < 2018].set_index(
        ["source_id", "county_id", "category", "year"])["amount"]
    paid = record.disbursed.set_index(["source_id", "county_id", "category", "year"])["amount"]
    pd.testing.assert_series_equal(history.sort_index(), paid[paid.index.get_level_values("year") < 2018]
                                   .sort_index(), check_names=False)


def test_with_no_deviation_the_replan_is_the_rest_of_the_plan(tiny, tmp_path):
    plan_dir, context = tiny
    record = as_planned(plan_dir, 2018)
    free = replan_from(context, record)
    assert free.remaining.status == "optimal"
    assert free.plan.summary["expected_exits"] == pytest.approx(context.plan.summary["expected_exits"], abs=1e-6)
    assert free.plan.summary["total_shortfall"] == pytest.approx(context.plan.summary["total_shortfall"], abs=1e-6)
    # ties broken towards the plan: the same decisions, the same spend per county, category and year
    stable = replan_from(context, record, stability=1e-3)
    out = stable.write(tmp_path / "new")
    assert stable.summary["stability"]["changes_with"] == 0
    assert stable.summary["stability"]["exits_cost"] == pytest.approx(0.0, abs=1e-6)
    before, after = decisions(plan_dir), decisions(out)
    assert (before == after.reindex(before.index)).all(), pd.concat([before, after], axis=1)[before != after]
    key = ["village_id", "project_id", "start_year"]
    assert sorted(map(tuple, context.plan.projects[key].to_numpy())) == sorted(
        map(tuple, stable.plan.projects[key].to_numpy()))
    spend = ["county_id", "category", "year"]
    a = context.plan.funding.groupby(spend)["amount"].sum()
    b = stable.plan.funding.groupby(spend)["amount"].sum()
    pd.testing.assert_series_equal(a, b.reindex(a.index), check_names=False, atol=0.01)
    assert set(stable.diff["kind"]) <= {"money"}  # only which source pays may differ (ties)


def test_returns_and_shocks_increase_demand_and_the_plan_responds(tiny):
    plan_dir, context = tiny
    calm = as_planned(plan_dir, 2018)
    base = replan_from(context, calm)
    stormy = as_planned(plan_dir, 2018)
    hh = stormy.households
    delivered = hh.index[hh["delivered"]]
    back = delivered[::2][:6]
    hh.loc[back, ["exited", "returned", "exit_year"]] = [True, True, 2017.0]
    hit = hh.index[~hh["delivered"]][:6]
    hh.loc[hit, "shock"] = "illness"
    result = replan_from(context, stormy)

    def need(r):  # households above the deadline's threshold with no further package
        households = r.tables["households"][r.tables["households"]["registered_poor"]]
        return (1 - households["baseline_exit_probability"]).sum()

    assert need(result) > need(base) + 3
    new = result.plan.households.set_index("household_id")
    returned = hh.loc[back, "household_id"]
    assert (new.loc[returned, "state"] == "returned").all()
    gets = new.loc[returned]
    assert (gets["package_id"].fillna("") != "").sum() >= 4  # the plan answers the new demand
    assert (gets["start_year"].dropna() >= 2018).all()
    delivered_before = context.plan.households.set_index("household_id").loc[returned, "package_id"]
    assert (gets["package_id"].to_numpy() != delivered_before.to_numpy()).all()  # not the failed package again
    later = lambda plan: plan.funding.loc[plan.funding["year"] >= 2018, "amount"].sum()  # noqa: E731
    assert later(result.plan) > later(base.plan)
    reasons = result.diff.set_index("id")["reason"]
    assert (reasons.reindex(returned) == "returned").all()


def test_the_diff_explains_every_change(tiny, replanned):
    plan_dir, context = tiny
    record, result, out = replanned
    diff = pd.read_csv(out / "diff.csv", dtype=str, keep_default_na=False)
    assert set(diff["reason"]) <= set(REASONS) and (diff["sentence"] != "").all()
    before, after = decisions(plan_dir), decisions(out)
    changed = set(after.index[before.reindex(after.index).fillna("") != after])
    listed = set(diff.loc[diff["kind"] == "household", "id"])
    assert changed and changed == listed
    old = pd.read_csv(plan_dir / "projects.csv", dtype=str).set_index(["village_id", "project_id"])["start_year"]
    new = pd.read_csv(out / "projects.csv", dtype=str).set_index(["village_id", "project_id"])["start_year"]
    both = old.index.union(new.index)
    moved = {f"{v}/{j}" for v, j in both[old.reindex(both).fillna("") != new.reindex(both).fillna("")]}
    projects = diff[diff["kind"] == "project"]
    assert moved == set(projects.loc[projects["change"] != "delayed", "id"])
    duration = context.tables["projects"].set_index(["village_id", "project_id"])["duration_years"]
    started = record.projects[record.projects["started"] & ~record.projects["finished"]]
    due = started["start_year"].to_numpy() + duration.reindex(
        pd.MultiIndex.from_arrays([started["village_id"], started["project_id"]])).to_numpy() <= 2018
    late = {f"{v}/{j}" for v, j in started.loc[due, ["village_id", "project_id"]].to_numpy()}
    assert late == set(projects.loc[projects["change"] == "delayed", "id"])
    key = ["source_id", "county_id", "category", "year"]
    money_old = pd.read_csv(plan_dir / "funding.csv").groupby(key)["amount"].sum()
    money_new = pd.read_csv(out / "funding.csv").groupby(key)["amount"].sum()
    both = money_old.index.union(money_new.index)
    delta = money_new.reindex(both, fill_value=0.0) - money_old.reindex(both, fill_value=0.0)
    flows = {f"{s} -> {c} {g} {y}" for s, c, g, y in delta.index[delta.abs() > 0.5]}
    assert flows == set(diff.loc[diff["kind"] == "money", "id"])
    assert "disbursed" in set(diff["reason"])  # the simulated history paid less than planned somewhere


def test_stability_trades_changes_for_exits_and_says_how_many(tiny):
    plan_dir, context = tiny
    record = simulate_progress(context, 2018, seed=13)
    result = replan_from(context, record, stability=0.05)
    info = result.summary["stability"]
    assert info["changes_with"] < info["changes_without"]  # ties and tiny gains no longer churn the plan
    assert info["exits_cost"] == pytest.approx(info["expected_exits_without"] - info["expected_exits_with"])
    assert info["value_cost"] == pytest.approx(info["value_without"] - info["value_with"])
    assert info["value_cost"] >= -1e-6  # the model trades value (sustained exits, earliness) for kept decisions
    assert info["value_cost"] <= 0.05 * (info["changes_without"] - info["changes_with"]) + 1e-6
    assert result.remaining.summary["stability"]["objective_gap"] <= 1e-4 + 1e-9  # the scenario's gap


def test_the_replan_year_must_follow_the_record(tiny):
    plan_dir, context = tiny
    with pytest.raises(InputError, match="between the record's year and the deadline"):
        replan_from(context, as_planned(plan_dir, 2018), from_year=2017)


def test_new_households_of_raw_data_get_candidates_from_the_targeting_code(tmp_path):
    import yaml

    from allocator.synth.canonical import write_tables
    from tests.support.raw_fixture import LINE, raw_tables

    write_tables(raw_tables(), tmp_path / "data")
    path = tmp_path / "data" / "scenario.yaml"
    path.write_text(yaml.safe_dump({"name": "raw", "start_year": 2016, "deadline_year": 2020, "data": ".",
                                    "solver": {"mip_gap": 0.0}}))
    plan_dir = allocator.solve(allocator.load_scenario(path)).write(tmp_path / "plan")
    record = as_planned(plan_dir, 2018)
    assert "H08" not in set(record.households["household_id"])  # an edge household, not in the plan
    new = pd.DataFrame({"household_id": ["H08"], "village_id": ["V2"], "new": [True], "delivered": [False],
                        "package_id": [""], "start_year": [np.nan], "observed_income": [0.5 * LINE * 2995 / 2855],
                        "guarantees": [""], "exited": [False], "exit_year": [np.nan], "returned": [False],
                        "shock": ["illness"]})
    record.households = pd.concat([record.households, new], ignore_index=True)
    result = replan_from(plan_dir, record)
    packages = result.tables["packages"]
    assert (packages["household_id"] == "H08").sum() >= 1
    assert result.tables["households"].set_index("household_id").loc["H08", "registered_poor"]
    row = result.plan.households.set_index("household_id").loc["H08"]
    assert row["state"] == "new"
    assert row["package_id"] != ""  # money is plentiful here: the new household is helped
    assert result.diff.set_index("id").loc["H08", "reason"] == "new_demand"
