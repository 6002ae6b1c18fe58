"""allocator report: the tables behind the report recomputed independently from the plan and
input tables, a self-contained page with every section, and a render in headless Chromium."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.report.test_report_format import assert_readable, visible
from tests.support.commands import run
from tests.support.tiny import starved, write_folder

POLICY = {"county_exit_threshold": {"default": 0.02, "western": 0.03}}
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def planned(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("report")
    path = write_folder(starved(), folder / "data", policy=POLICY)
    assert run("solve", path, "--out", folder / "plan", "--quiet", "--baselines").returncode == 0
    return folder


def test_yearly_tables_agree_with_the_plan_and_the_packages(planned):
    from allocator.plan.context import load_plan_context
    from allocator.report.html import county_incidence_by_year, hat_off_years, poor_by_year

    context = load_plan_context(planned / "plan")
    plan = context.plan
    # independently: a package counts from start + lag (packages.csv); before, and without one,
    # the household's baseline (households.csv) reached at a constant yearly rate by the deadline
    packages = pd.read_csv(planned / "data" / "packages.csv", dtype=str)
    lag = packages.set_index(["household_id", "package_id"])["lag_years"].astype(int)
    baseline = pd.read_csv(planned / "data" / "households.csv", dtype={"household_id": str}).set_index(
        "household_id")["baseline_exit_probability"]
    households = plan.households
    chosen = households["start_year"].notna()
    exit_year = pd.Series(9999, index=households.index)
    exit_year[chosen] = [int(s) + lag[(h, k)] for h, k, s in
                         households.loc[chosen, ["household_id", "package_id", "start_year"]].itertuples(index=False)]
    b = households["household_id"].map(baseline)
    regions = pd.read_csv(planned / "data" / "regions.csv", dtype={"region_id": str}).set_index("region_id")
    incidence = county_incidence_by_year(plan, context.problem).set_index(["county_id", "year"])
    for county in ("C1", "C2"):
        here = households["county_id"] == county
        for year in (2016, 2017, 2018):
            out = np.where(exit_year <= year, households["exit_probability"], 1 - (1 - b) ** ((year - 2015) / 3))
            left = here.sum() - out[here.to_numpy()].sum()
            row = incidence.loc[(county, year)]
            assert row["expected_poor"] == pytest.approx(left)
            assert row["expected_incidence"] == pytest.approx(left / regions.loc[county, "rural_population"])
    # the deadline year agrees with counties.csv, and the hat comes off where the plan says on schedule
    last = incidence.xs(2018, level="year")
    counties = plan.counties.set_index("county_id")
    assert np.allclose(last["expected_incidence"], counties.loc[last.index, "expected_incidence"])
    hats = hat_off_years(incidence.reset_index()).set_index("county_id")["hat_off_year"]
    assert hats.notna().to_dict() == counties["on_schedule"].astype(bool).to_dict()
    path = poor_by_year(plan, context.problem)
    assert path["expected_poor"].iloc[-1] == pytest.approx(len(households) - plan.summary["expected_exits"])
    assert path["expected_poor"].is_monotonic_decreasing


def test_the_report_is_self_contained_and_has_every_section(planned):
    assert run("explain", planned / "plan", "--quiet").returncode == 0
    result = run("report", planned / "plan")
    assert result.returncode == 0, result.stderr
    page = (planned / "plan" / "report.html").read_text()
    for heading in ("Expected poor by year", "Counties against their threshold", "Money", "Villages",
                    "What stands in the way", "What it would take", "Earliest deadline", "Marginal values",
                    "Against the usual rules"):
        assert heading in page, heading
    assert "County 1 (C1) is 0.4 households short" in page and "verified by re-solving" in page
    assert_readable(visible(page))  # with explain's and the baselines' sections too
    sources = re.findall(r'(?:src|href)="([^"]*)"', page)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    assert "http://" not in page and "https://" not in page


def test_the_report_of_a_plan_with_no_solution_says_why(tmp_path):
    tables = starved()
    tables["funds"]["amount"] = [1000.0, 1000.0, 1000.0, 0.0, 0.0]
    path = write_folder(tables, tmp_path / "data", policy={**POLICY, "deadline": "hard"})
    assert run("solve", path, "--out", tmp_path / "plan", "--quiet").returncode == 1
    assert run("explain", tmp_path / "plan", "--quiet", "--no-earliest").returncode == 0
    assert run("report", tmp_path / "plan").returncode == 0
    page = (tmp_path / "plan" / "report.html").read_text()
    assert "cannot all hold together" in page and "fund central 2018 has 3,000 yuan" in page


def test_report_compares_and_refuses_to_overwrite(planned, tmp_path):
    other = tmp_path / "other.html"
    other.write_text("mine")
    result = run("report", planned / "plan", "--out", other)
    assert result.returncode == 2 and "file exists" in result.stderr and other.read_text() == "mine"
    assert run("report", planned / "plan", "--out", tmp_path / "r.txt").returncode == 2
    assert run("report", planned / "plan", "--compare", tmp_path / "nowhere").returncode == 2
    baseline = planned / "plan" / "baselines" / "greedy"
    result = run("report", planned / "plan", "--out", tmp_path / "vs.html", "--compare", baseline)
    assert result.returncode == 0, result.stderr
    page = (tmp_path / "vs.html").read_text()
    assert f"Compared with {baseline}: B − A" in page
    assert_readable(visible(page))


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (.ci/run installs it where it can)")
def test_the_report_renders_in_headless_chromium(planned, tmp_path):
    """Every chart decodes as an image in Chromium: a copy of the page counts the loaded images."""
    assert run("report", planned / "plan", "--out", tmp_path / "report.html").returncode == 0
    page = (tmp_path / "report.html").read_text()
    images = page.count("<img ")
    probe = tmp_path / "probe.html"
    probe.write_text(page.replace("</body>", "<script>document.body.dataset.loaded = [...document.images]"
                                  ".filter(i => i.complete && i.naturalWidth > 0).length;</script></body>"))
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([CHROMIUM, *flags, "--virtual-time-budget=5000", "--dump-dom", probe.as_uri()],
                         capture_output=True, text=True, timeout=120).stdout
    assert images >= 6 and f'data-loaded="{images}"' in dom


def test_the_report_shows_plan_against_actual_when_monitored(planned, tmp_path):
    plan = tmp_path / "plan"
    shutil.copytree(planned / "plan", plan)
    assert run("simulate", plan, "--year", 2017, "--seed", 1, "--out", tmp_path / "record").returncode == 0
    assert run("monitor", plan, tmp_path / "record").returncode == 0
    assert run("report", plan).returncode == 0
    page = (plan / "report.html").read_text()
    assert "Plan against actual, mid-2017" in page and "households to watch for prevention" in page
