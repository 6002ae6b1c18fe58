"""Baselines: the proportional and greedy rules give checked plans that never beat the optimum;
the proportional rule keeps every county within its share of every fund row."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest

import allocator
from allocator.baselines import BASELINES, baseline_plan
from allocator.synth import generate_preset
from allocator.tables import split_list
from plan_checker import check_scenario_plan
from tiny import write_folder


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
    for rule in BASELINES:
        baseline = plan.baselines[rule]
        if baseline.status == "infeasible":  # a rule may fail where the optimum does not, and says why
            assert f"the {rule} rule" in baseline.summary["message"]
            continue
        assert baseline.status == "feasible"
        assert check_scenario_plan(path, folder / "baselines" / rule) == []
        _never_better(baseline.summary, plan.summary)
    assert plan.baselines["greedy"].status == "feasible"
    rows = {row["baseline"]: row for row in plan.summary["baselines"]}
    assert rows["greedy"]["uplift_exits"] == pytest.approx(
        plan.summary["expected_exits"] - plan.baselines["greedy"].summary["expected_exits"])
    again = allocator.Plan.read(folder)
    assert set(again.baselines) == set(BASELINES)


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
