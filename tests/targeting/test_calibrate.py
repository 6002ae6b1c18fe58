"""benchmarks/calibrate.py: its tables, re-derived here from the plan and the canonical tables."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from allocator.report.html import poor_by_year
from allocator.targeting import load_catalog
from allocator.targeting.pipeline import load_tables

SCRIPT = Path(__file__).parents[2] / "benchmarks" / "calibrate.py"


def _module():
    spec = importlib.util.spec_from_file_location("calibrate", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def solved(county_plan):
    """The README default's plan, solved once per session (conftest.county_plan)."""
    scenario, plan, plan_dir = county_plan
    return _module(), scenario, load_tables(scenario), plan, plan_dir


def test_path_matches_the_report_and_the_rescaled_national_path(solved):
    cal, scenario, tables, plan, plan_dir = solved
    table = cal.path_table(cal.read_plan(plan_dir), tables, scenario)
    expected = poor_by_year(plan, plan.problem)
    stock = tables["households"]["registered_poor"].sum()
    np.testing.assert_allclose(table["plan still poor"], expected["expected_poor"] / stock, atol=1e-6)
    assert table["national (NBS)"].round(3).tolist() == [0.785, 0.544, 0.304, 0.101, 0.0]
    assert table["target"].tolist()[:4] == [0.785, 0.544, 0.304, 0.101]
    assert np.isnan(table["target"].iloc[4])  # at the deadline the county rules are the target


def test_path_csv_is_used_when_the_plan_has_it(solved, tmp_path):
    cal, scenario, tables, _, plan_dir = solved
    plan = cal.read_plan(plan_dir)
    stock = tables["households"]["registered_poor"].sum()
    plan["path"] = pd.DataFrame({"year": scenario.years, "region_id": [np.nan] * 5,
                                 "expected_poor": [0.5 * stock] * 5, "target": [0.0] * 5, "shortfall": [0.0] * 5})
    assert cal.path_table(plan, tables, scenario)["plan still poor"].tolist() == [0.5] * 5


def test_exits_and_headlines_add_up(solved):
    cal, scenario, tables, plan, plan_dir = solved
    chosen = plan.households[plan.households["start_year"].notna()]
    packages = tables["packages"].set_index(["household_id", "package_id"])
    rows = packages.loc[list(zip(chosen["household_id"], chosen["package_id"], strict=True))]
    text = cal.report(cal.read_plan(plan_dir), tables, scenario, load_catalog())
    exits = cal.exits_table(cal.chosen_packages(cal.read_plan(plan_dir), tables), load_catalog())
    assert exits["share of exits"].sum() == pytest.approx(1.0)
    assert exits["households"].sum() == len(chosen)
    assert exits["expected exits"].sum() == pytest.approx(rows["exit_probability"].sum())
    sustained = rows["sustained_probability"].sum() / rows["exit_probability"].sum()
    assert f"| sustained share of exits (sustained / expected exits) | {sustained:,.3f} |" in text
    for heading in ("Share still poor", "Counties by hat-off year", "Spend by category", "Exits by kind of measure",
                    "Headline figures"):
        assert f"### {heading}" in text


def test_hat_off_table_counts_every_scheduled_county(solved):
    cal, scenario, tables, _, plan_dir = solved
    table = cal.hat_off_table(cal.read_plan(plan_dir), tables, scenario)
    scheduled = tables["regions"]["hat_off_year"].notna().sum()
    years = table[table["year"].isin(scenario.years)]
    assert years["planned"].sum() == years["real batches (scaled)"].sum() == scheduled
    assert years["achieved (scheduled counties)"].sum() + table.iloc[len(scenario.years)][
        "achieved (scheduled counties)"] == scheduled
