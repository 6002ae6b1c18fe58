"""Near misses in the report: counties within k households of their threshold (--near-households),
and households within ¥N of the poverty line (--near-yuan) from a progress record monitored into
the plan folder; without one the report says why they are not shown."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from allocator.plan.context import load_plan_context
from allocator.report.html import build_report, near_line, near_misses
from tests.support.commands import run
from tests.support.tiny import starved_plan


@pytest.fixture(scope="module")
def plan_dir(tmp_path_factory) -> Path:
    """The starved tiny plan: C1 is 0.42 households short of its threshold at the deadline."""
    return starved_plan(tmp_path_factory.mktemp("near"))


@pytest.fixture(scope="module")
def monitored(plan_dir, tmp_path_factory) -> Path:
    """A copy of the plan with a progress record of mid-2017 monitored into it (its monitor/ folder)."""
    folder = tmp_path_factory.mktemp("monitored")
    copy = Path(shutil.copytree(plan_dir, folder / "plan"))
    assert run("simulate", copy, "--year", 2017, "--seed", 3, "--out", folder / "record", "--quiet").returncode == 0
    assert run("monitor", copy, folder / "record", "--quiet").returncode == 0
    return copy


def margins(plan_dir: Path) -> pd.Series:
    """Households between each county and its threshold at the deadline, from counties.csv and the
    rural population of regions.csv: the shortfall when off schedule, the room left when on it."""
    counties = pd.read_csv(plan_dir / "counties.csv").set_index("county_id")
    population = pd.read_csv(plan_dir.parent / "data" / "regions.csv").set_index("region_id")["rural_population"]
    room = (counties["threshold"] - counties["expected_incidence"]) * population.reindex(counties.index)
    return counties["shortfall_households"].where(~counties["on_schedule"], room)


def test_counties_within_k_households_of_their_threshold(plan_dir):
    context = load_plan_context(plan_dir)
    margin = margins(plan_dir)
    assert margin["C1"] == pytest.approx(0.42, abs=0.01)
    for k in (0.0, 0.5, 1.0, 2.0):
        near = near_misses(context.plan, context.problem, within=k)
        assert set(near["county_id"]) == set(margin[margin.between(0, k)].index), k
    near = near_misses(context.plan, context.problem, within=1.0).set_index("county_id")
    assert near.loc["C1", "side"] == "short of the threshold"
    assert near.loc["C1", "margin_households"] == pytest.approx(margin["C1"])


def test_the_report_option_sets_k(plan_dir, tmp_path):
    result = run("report", plan_dir, "--out", tmp_path / "near.html", "--near-households", 1)
    assert result.returncode == 0, result.stderr
    page = (tmp_path / "near.html").read_text()
    section = page.split("Counties within 1 households of their threshold at the deadline", 1)[1].split("<h", 1)[0]
    assert "C1" in section and "short of the threshold" in section
    result = run("report", plan_dir, "--out", tmp_path / "none.html", "--near-households", 0)
    assert result.returncode == 0, result.stderr
    assert "No county is within 0 households of its threshold." in (tmp_path / "none.html").read_text()
    assert "Counties within 5 households of their threshold" in build_report(plan_dir), "the default k"


def test_without_a_record_the_report_says_why_no_household_is_listed(plan_dir):
    assert near_line(plan_dir) is None
    page = build_report(plan_dir)
    assert "Households within 500 yuan of the poverty line" in page
    assert "Not shown: the plan&#x27;s tables carry no household incomes" in page
    assert "收入距贫困线不超过500元的户" in build_report(plan_dir, lang="zh")


def test_households_within_n_yuan_of_the_line_from_the_monitored_record(monitored):
    line = json.loads((monitored / "monitor" / "monitor.json").read_text())["poverty_line"]
    seen = pd.concat([pd.read_csv(monitored / "monitor" / name, dtype={"household_id": str})
                      for name in ("households_off_track.csv", "watch.csv")])
    income = seen.dropna(subset=["observed_income"]).drop_duplicates("household_id").set_index("household_id")[
        "observed_income"]
    assert len(income) >= 2
    gaps = (income - line).abs().sort_values()
    for within in (0.0, float(gaps.iloc[0]), float(gaps.iloc[-1]), 10_000.0):
        near = near_line(monitored, within)
        assert set(near["household_id"]) == set(gaps[gaps <= within].index), within
        assert (near["from_line"].abs() <= within).all()
    widest = near_line(monitored, 10_000.0).set_index("household_id")
    assert widest["from_line"].to_dict() == pytest.approx((income - line).to_dict())
    page = build_report(monitored, near_yuan=10_000.0)
    assert "Households within 10,000 yuan of the poverty line" in page and "From the line (yuan)" in page
    assert all(household in page for household in income.index)
