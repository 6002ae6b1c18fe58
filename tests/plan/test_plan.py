"""The Plan object: tables agree with each other, round-trip through a plan folder."""

from __future__ import annotations

import pandas as pd
import pytest

import allocator
from allocator.report.charts import write_plan_folder


def test_plan_folder_round_trip_and_spend_views(tables, solve_checked, tmp_path):
    plan = solve_checked(tables)
    again = allocator.Plan.read(plan.write(tmp_path / "plan"))
    for key in ("status", "expected_exits", "bound", "gap", "total_cost", "counties_on_schedule", "budget_use"):
        assert again.summary[key] == plan.summary[key]
    pd.testing.assert_frame_equal(again.counties.reset_index(drop=True), plan.counties.reset_index(drop=True),
                                  check_dtype=False)
    by_year = plan.spend_by("year")
    assert by_year["amount"].sum() == pytest.approx(plan.summary["total_cost"])
    by_two = plan.spend_by(["year", "category"])
    assert set(by_two.columns) == {"year", "category", "amount"}
    assert plan.counties["spend"].sum() == pytest.approx(plan.summary["total_cost"])
    budget = pd.DataFrame(plan.summary["budget_use"])
    assert (budget["spent"] <= budget["available"] + 1e-6).all()


def test_charts_are_written_even_without_spend(tables, solve_checked, tmp_path):
    tables["funds"]["amount"] = 0.0
    tables["projects"]["mandatory"] = False
    plan = solve_checked(tables)
    assert plan.funding.empty
    folder = write_plan_folder(plan, tmp_path / "plan")
    for name in ("money_by_year.png", "counties.png"):
        assert (folder / name).read_bytes()[:4] == b"\x89PNG"
