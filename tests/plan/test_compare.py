"""Comparing plans: input and outcome differences, recomputed from the plan folders."""

from __future__ import annotations

import os
import subprocess
import sys

import pandas as pd
import pytest

import allocator
from allocator.plan.compare import compare_plans, unsolved
from allocator.synth import generate_preset
from tests.support.tiny import write_folder


@pytest.fixture(scope="module")
def two_plans(tmp_path_factory):
    folder = tmp_path_factory.mktemp("compare")
    plans = {}
    for name, scale in (("rich", 1.0), ("poor", 0.8)):
        tables = generate_preset("tiny", seed=4, start_year=2016, deadline_year=2018, money_scale=scale)
        path = write_folder(tables, folder / name / "data", solver={"method": "exact", "mip_gap": 1e-2,
                                                                     "time_limit": 20})
        plans[name] = allocator.solve(allocator.load_scenario(path)).write(folder / name / "plan")
    return plans


def test_a_plan_against_itself_differs_in_nothing(two_plans):
    plan = allocator.Plan.read(two_plans["rich"])
    rows = compare_plans(plan, plan)
    assert not (rows["section"] == "inputs").any()
    numeric = rows["change"].dropna()
    assert (numeric.abs() < 1e-9).all()


def test_less_money_shows_in_inputs_and_outcomes(two_plans):
    rich, poor = allocator.Plan.read(two_plans["rich"]), allocator.Plan.read(two_plans["poor"])
    rows = compare_plans(rich, poor).set_index(["section", "item"])
    money = rows.loc["inputs"].filter(like="money ", axis=0)
    assert len(money) and (money["change"] < 0).all(), "every fund row shrank by 20 %"
    budget = pd.DataFrame(rich.summary["budget_use"]).set_index(["source_id", "year"])["amount"]
    for item, row in money.iterrows():
        source, year = item.removeprefix("money ").rsplit(" ", 1)
        assert row["a"] == pytest.approx(budget[(source, int(year))])
        assert row["b"] == pytest.approx(0.8 * budget[(source, int(year))], rel=1e-6, abs=1)
    exits = rows.loc[("outcomes", "expected_exits")]
    assert exits["change"] == pytest.approx(poor.expected_exits - rich.expected_exits)
    spend = rows.loc["spend by year"]
    assert spend["b"].sum() == pytest.approx(poor.funding["amount"].sum())


def test_cli_compare(two_plans, tmp_path):
    command = [sys.executable, "-m", "allocator", "compare", str(two_plans["rich"]), str(two_plans["poor"])]
    wide = {**os.environ, "COLUMNS": "200"}  # a terminal wide enough that no item folds
    result = subprocess.run(command + ["--out", str(tmp_path / "diff.csv")], capture_output=True, text=True,
                            timeout=120, env=wide)
    assert result.returncode == 0, result.stderr
    assert "expected_exits" in result.stdout and "money" in result.stdout
    assert len(pd.read_csv(tmp_path / "diff.csv")) > 5
    again = subprocess.run(command + ["--out", str(tmp_path / "diff.csv")], capture_output=True, text=True,
                           timeout=120)
    assert again.returncode == 2 and "exists" in again.stderr
    missing = subprocess.run([sys.executable, "-m", "allocator", "compare", str(tmp_path), str(two_plans["poor"])],
                             capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2 and "not a plan folder" in missing.stderr


def test_a_plan_with_no_solution_has_missing_outcomes_not_zeros(two_plans, tmp_path):
    tables = generate_preset("tiny", seed=4, start_year=2016, deadline_year=2018, money_scale=0.01)
    path = write_folder(tables, tmp_path / "data", policy={"deadline": "hard"},
                        solver={"method": "exact", "mip_gap": 1e-2, "time_limit": 20})
    none = allocator.solve(allocator.load_scenario(path))
    assert none.summary["expected_exits"] is None
    rich = allocator.Plan.read(two_plans["rich"])
    assert unsolved(rich, none) == ["B"] and unsolved(none, rich) == ["A"] and unsolved(rich, rich) == []
    rows = compare_plans(rich, none)
    assert set(rows["section"]) <= {"inputs", "outcomes"}, "no spend, county or budget rows against no solution"
    assert not rows["item"].str.startswith("money ").any(), "no funds read as zero"
    outcomes = rows[rows["section"] == "outcomes"].set_index("item")
    assert outcomes.loc["expected_exits", "a"] == pytest.approx(rich.expected_exits)
    for item in ("expected_exits", "total_cost", "counties_on_schedule"):
        assert outcomes.loc[item, "b"] is None and pd.isna(outcomes.loc[item, "change"]), item
