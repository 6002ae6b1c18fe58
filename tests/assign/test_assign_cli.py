"""allocator assign on a raw province: every planned household gets exactly one cadre within
capacities, every poor village one team; the plan folder is copied, never changed."""

from __future__ import annotations

import json

import pandas as pd
import yaml

from allocator.synth.canonical import write_tables
from allocator.synth.province import generate_province
from tests.support.commands import run


def test_assign_fills_the_plan_households(tmp_path):
    # twice the money: the schedule's targets are met and the solve ends by its gap after lp-fix
    # in seconds instead of running county improvement rounds to its time limit
    tables = generate_province(1500, counties=2, seed=7, money_scale=2.0)
    write_tables(tables, tmp_path / "raw")
    (tmp_path / "raw" / "scenario.yaml").write_text(yaml.safe_dump(
        {"name": "asg", "start_year": 2016, "deadline_year": 2020, "data": ".", "solver": {"time_limit": 60}}))
    assert run("solve", tmp_path / "raw" / "scenario.yaml", "--out", tmp_path / "plan", "--quiet").returncode == 0
    before = (tmp_path / "plan" / "households.csv").read_text()
    result = run("assign", tmp_path / "raw" / "scenario.yaml", "--plan", tmp_path / "plan", "--out",
                 tmp_path / "assigned", "--quiet")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "plan" / "households.csv").read_text() == before, "the user's plan is never changed"

    households = pd.read_csv(tmp_path / "assigned" / "households.csv", dtype=str, keep_default_na=False)
    cadres = pd.read_csv(tmp_path / "raw" / "cadres.csv", dtype={"cadre_id": str, "township_id": str})
    summary = json.loads((tmp_path / "assigned" / "assignment.json").read_text())
    assert households["household_id"].is_unique
    assigned = households[households["responsible_cadre_id"] != ""]
    assert len(assigned) == summary["households_assigned"] == len(households) - summary["households_unassigned"]
    load = assigned["responsible_cadre_id"].value_counts()
    capacity = cadres.set_index("cadre_id")["capacity"]
    assert (load <= capacity.reindex(load.index)).all(), "a cadre over capacity"
    if summary["households_unassigned"]:
        shortage = pd.read_csv(tmp_path / "assigned" / "shortage.csv")
        assert shortage["deficit"].sum() == summary["households_unassigned"]
    teams = pd.read_csv(tmp_path / "assigned" / "teams.csv", dtype=str, keep_default_na=False)
    assert teams["village_id"].is_unique and (teams["team_id"] != "").all()
    assert teams.loc[teams["team_id"] != "", "team_id"].is_unique, "one team per village"
