"""Monitoring on crafted records whose answer is known, the command line, and the whole loop
(solve -> simulate -> monitor -> replan) on the county preset, checked by the independent checker."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import allocator
from allocator.manage.monitor import COLUMNS, MONITOR_FILES, monitor_progress
from allocator.manage.progress import EDGE_FACTOR
from allocator.plan.context import load_plan_context
from tests.support.commands import run
from tests.support.loop_helpers import as_planned
from tests.support.plan_checker import check_plan


def words(text: str) -> str:
    """Output with rich's line wrapping undone."""
    return " ".join(text.split())


def test_monitoring_names_who_is_off_track_and_whom_to_watch(tiny_plan, tmp_path):
    plan_dir, context = tiny_plan
    record = as_planned(plan_dir, 2018)
    hh = record.households
    line = context.scenario.poverty_line(2018)
    delivered = hh.index[hh["delivered"]]
    slipped, returned, exited, shocked = delivered[:4]
    hh.loc[slipped, ["delivered", "package_id", "start_year"]] = [False, "", np.nan]
    hh.loc[returned, ["exited", "returned", "exit_year"]] = [True, True, 2017.0]
    hh.loc[exited, ["exited", "exit_year", "observed_income"]] = [True, 2017.0, 1.2 * line]
    hh.loc[shocked, "shock"] = "illness"
    others = context.tables["households"][~context.tables["households"]["registered_poor"]]["household_id"]
    edge, fresh = others.iloc[0], others.iloc[1]
    extra = pd.DataFrame({"household_id": [edge, fresh], "new": [False, True],
                          "observed_income": [1.3 * line, 0.8 * line], "shock": ["", "disaster"]})
    record.households = pd.concat([hh, extra], ignore_index=True).fillna(
        {"delivered": False, "exited": False, "returned": False, "package_id": "", "guarantees": "", "shock": "",
         "village_id": ""})
    result = monitor_progress(context, record)
    reasons = result.off_track.set_index("household_id")["reasons"]
    ids = hh["household_id"]
    assert reasons[ids[slipped]] == "slipped"
    assert reasons[ids[returned]] == "returned"
    assert reasons[ids[shocked]] == "shock"
    assert reasons[fresh] == "new;shock" or reasons[fresh] == "shock;new"
    assert ids[exited] not in reasons.index  # exiting early is not off track...
    watch = result.watch.set_index("household_id")["category"]
    assert watch[ids[exited]] == "unstable_exited"  # ...but below 1.5 x the line it is watched
    assert watch[edge] == "marginal"
    assert fresh not in watch.index and ids[returned] not in watch.index  # they are demand, not prevention
    counties = result.counties.set_index("county_id")
    county = context.plan.households.set_index("household_id").loc[ids[slipped], "county_id"]
    short = counties["packages_due"] - counties["delivered_due"]
    assert short[county] == 1 and short.drop(index=county).eq(0).all()  # only the slipped one is missing
    assert counties["disbursed_to_date"].sum() == pytest.approx(counties["planned_to_date"].sum())
    assert counties["new_households"].sum() == 1 and counties["returned"].sum() == 1
    assert not counties["at_risk"].any()


def test_a_county_whose_households_fall_back_is_at_risk(tiny_plan, tmp_path):
    plan_dir, context = tiny_plan
    record = as_planned(plan_dir, 2018)
    hh = record.households
    county = context.plan.households.set_index("household_id")["county_id"]
    target = context.plan.counties["county_id"].iloc[0]
    back = hh["delivered"] & (hh["household_id"].map(county) == target)
    hh.loc[back, ["exited", "returned", "exit_year", "shock"]] = [True, True, 2017.0, "illness"]
    result = monitor_progress(context, record)
    counties = result.counties.set_index("county_id")
    assert counties.loc[target, "at_risk"]
    assert counties.loc[target, "shortfall_outlook"] > 0 == counties.loc[target, "shortfall_plan"]
    assert counties.loc[target, "incidence_outlook"] > counties.loc[target, "threshold"]
    assert not counties.drop(index=target)["at_risk"].any()
    folder = result.write(tmp_path / "monitor")
    summary = json.loads((folder / "monitor.json").read_text())
    assert summary["counties_at_risk"] == [target]
    name = context.tables["regions"].set_index("region_id").loc[target, "name"]
    assert name and any(f"Schedule at risk in {name} ({target}) (outlook" in sentence
                        for sentence in summary["sentences"]), "the county named beside its id"
    for name in MONITOR_FILES:
        assert (folder / name).is_file()
    for name, columns in COLUMNS.items():  # monitor.json describes every column of every table
        assert list(pd.read_csv(folder / name, nrows=0).columns) == list(columns)
        assert summary["files"][name]["columns"] == columns
    assert all({"key", "label", "message", "value", "unit"} == set(row) for row in summary["headline"])
    assert summary["monitoring_line"] == pytest.approx(EDGE_FACTOR * summary["poverty_line"])


def test_the_command_line_runs_the_loop_and_refuses_bad_input(tiny_plan, tmp_path):
    plan_dir, _ = tiny_plan
    rec, mon, new = tmp_path / "rec", tmp_path / "mon", tmp_path / "new"
    result = run("simulate", plan_dir, "--year", 2018, "--seed", 13, "--out", rec, "--quiet")
    assert result.returncode == 0, result.stderr
    assert "packages delivered" in words(result.stdout)
    result = run("monitor", plan_dir, rec, "--out", mon, "--quiet")
    assert result.returncode == 0, result.stderr
    assert (mon / "watch.csv").is_file() and "Plan against actual" in words(result.stdout)
    result = run("replan", plan_dir, rec, "--from-year", 2018, "--out", new, "--stability", 0.05, "--quiet")
    assert result.returncode == 0, result.stderr
    assert (new / "diff.csv").is_file() and (new / "remaining" / "scenario.yaml").is_file()
    assert "Re-plan from 2018" in words(result.stdout) and "stability penalty" in words(result.stdout)
    # the re-planned remaining years solve again as an ordinary scenario, to the same plan
    again = run("solve", new / "remaining" / "scenario.yaml", "--out", tmp_path / "again", "--quiet")
    assert again.returncode == 0, again.stderr
    first = json.loads((new / "remaining" / "summary.json").read_text())
    second = json.loads((tmp_path / "again" / "summary.json").read_text())
    assert second["expected_exits"] == pytest.approx(first["stability"]["expected_exits_without"], abs=1e-6)
    # a re-plan can itself be monitored
    assert run("monitor", new, rec, "--quiet").returncode == 0
    # bad input: exit code 2 and the problems listed, never a traceback
    (rec / "record.csv").write_text("year\n2031\n")
    bad = run("monitor", plan_dir, rec, "--out", tmp_path / "mon2")
    assert bad.returncode == 2 and "record year outside the plan" in words(bad.stderr)
    assert "Traceback" not in bad.stderr
    assert run("replan", plan_dir, rec, "--out", mon).returncode == 2  # a folder that is not a re-plan
    year = run("simulate", plan_dir, "--year", 2030, "--out", tmp_path / "rec2")
    assert year.returncode == 2 and "--year" in year.stderr


def test_the_whole_loop_on_the_county_preset(county_plan, tmp_path):
    """solve -> simulate -> monitor -> replan on the raw county preset (the README default, solved
    once per session): the remaining years pass the independent checker, pinned decisions stay,
    and new demand is planned for."""
    scenario, _, plan_dir = county_plan
    context = load_plan_context(plan_dir)
    record = allocator.simulate_progress(context, 2018, seed=2)
    assert record.households["new"].sum() > 0 and record.households["returned"].sum() > 0
    watch = monitor_progress(context, record)
    assert len(watch.off_track) > 0 and len(watch.watch) > 0
    result = allocator.replan_from(context, record)
    out = result.write(tmp_path / "new")
    assert result.remaining.status in ("optimal", "feasible")
    assert check_plan(out / "remaining" / "data", out / "remaining", start_year=2018, deadline_year=2020,
                      policy=scenario.policy.model_dump(mode="json")) == []
    new = result.plan.households.set_index("household_id")
    got = record.households[record.households["delivered"] & ~record.households["returned"]]
    assert (new.loc[got["household_id"], "package_id"].to_numpy() == got["package_id"].to_numpy()).all()
    fresh = record.households.loc[record.households["new"], "household_id"]
    assert (new.loc[fresh, "state"] == "new").all()
    assert (result.tables["packages"]["household_id"].isin(fresh)).any()  # candidates from the targeting code
