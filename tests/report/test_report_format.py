"""The report as a planner reads it: formatted numbers and human titles in the rendered text,
the threshold drawn for one county, the comparison's direction (B − A), budget use in words,
notes where a section is absent, and a plan with no solution showing what it was given."""

from __future__ import annotations

import html
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import allocator
from allocator.report.charts import counties_against_threshold, pyplot
from allocator.report.html import budget_sentence, build_report
from allocator.report.titles import TITLES, shortfall_proven_least, shortfall_text, shown, status_words
from tests.support.tiny import starved, tiny_tables, write_folder

POLICY = {"county_exit_threshold": {"default": 0.02, "western": 0.03}}
HEX_RUN = re.compile(r"[0-9a-f]{64}")


def _solve(tables: dict, folder: Path, **options) -> Path:
    path = write_folder(tables, folder / "data", policy=options.pop("policy", POLICY))
    allocator.solve(allocator.load_scenario(path)).write(folder / "plan")
    return folder / "plan"


def visible(page: str) -> str:
    """The text a person sees: no style, no image data, no tags, entities decoded."""
    page = re.sub(r"<style>.*?</style>", " ", page, flags=re.S)
    page = re.sub(r"<[^>]+>", " ", page)
    return re.sub(r"\s+", " ", html.unescape(page))


def assert_readable(text: str) -> None:
    assert not re.search(r"\de[+-]\d", text), "a number in scientific notation"
    assert not re.search(r"\b(NaN|nan|None|NaT|<NA>)\b", text), re.search(r".{40}\b(NaN|nan|None)\b.{40}", text)
    assert not HEX_RUN.search(text), "a raw 64-character hash"
    assert "n/a" not in text


@pytest.fixture(scope="module")
def plans(tmp_path_factory) -> dict[str, Path]:
    """The tiny data with its money (rich) and with too little (starved: C1 misses)."""
    folder = tmp_path_factory.mktemp("format")
    return {"rich": _solve(tiny_tables(), folder / "rich"), "starved": _solve(starved(), folder / "starved")}


def test_every_visible_number_is_formatted_and_every_table_titled(plans):
    text = visible(build_report(plans["starved"], compare_with=plans["rich"]))
    assert_readable(text)
    # human titles, never the plan's column names
    for raw in ("expected_poor", "national_path", "allowed_by_thresholds", "source_id", "fd_check", "county_id",
                "shortfall_households"):
        assert raw not in text, raw
    for title in ("Expected poor at year end", "Fund source", "Available (yuan)", "Recalled (yuan)",
                  "Carried to next year (yuan)", TITLES["compare.change"]):
        assert title in text, title
    # exits to one decimal, shares as %, yuan with separators
    summary = json.loads((plans["starved"] / "summary.json").read_text())
    assert f"expected exits {summary['expected_exits']:.1f}" in text
    assert "expected incidence 3.4% against 3.0%" in text and "9,000 yuan" in text


def test_budget_use_is_a_table_and_a_sentence_near_the_headline(plans):
    page = build_report(plans["rich"])
    text = visible(page)
    assert page.index("Money available and spent") < page.index("Expected poor by year")
    use = pd.DataFrame(json.loads((plans["rich"] / "summary.json").read_text())["budget_use"])
    total, spent = use["amount"].sum(), use["spent"].sum()
    assert f"{(total - spent) / total:.1%} of the {total:,.0f} yuan available is unspent" in text
    table = pd.DataFrame({"source_id": ["central", "central"], "year": [2016, 2017], "amount": [500e6, 214.6e6],
                          "spent": [492.8e6, 0.0], "recalled": [0.0, 0.0], "carried": [7.2e6, 221.8e6]})
    assert budget_sentence(table).startswith("31.0% of the 714.6 million yuan available is unspent")


def test_the_threshold_line_is_drawn_for_a_single_county():
    one = pd.DataFrame({"county_id": ["C1"], "expected_incidence": [0.034], "threshold": [0.03],
                        "on_schedule": [False]})
    fig = counties_against_threshold(one)
    try:
        ax = fig.axes[0]
        levels = [segment[:, 1] for collection in ax.collections for segment in collection.get_segments()]
        assert any(np.allclose(level, 3.0) for level in levels), levels  # 3 % across the bar
        assert "threshold" in [text.get_text() for text in ax.get_legend().get_texts()]
    finally:
        pyplot().close(fig)


def test_the_comparison_says_b_minus_a_and_less_money_is_negative(plans):
    page = build_report(plans["rich"], compare_with=plans["starved"])
    section = page[page.index("<h2>Compared with"):]
    text = visible(section)
    assert "B − A" in text and f"A is this plan ({plans['rich']})" in text
    assert f"B is the other plan ({plans['starved']})" in text
    rows = [[html.unescape(re.sub(r"<[^>]+>", "", cell)) for cell in re.findall(r"<td[^>]*>(.*?)</td>", row)]
            for row in re.findall(r"<tr>(.*?)</tr>", section) if "<td" in row]
    money = [row for row in rows if row[1].startswith("fund ")]
    assert money and all(row[4].startswith("−") for row in money if row[2] != row[3]), money
    cost = next(row for row in rows if row[1] == TITLES["summary.total_cost"])
    assert cost[4].startswith("−"), cost
    assert "B − A = −" in text  # the funds' totals
    assert [row[1:4] for row in rows if row[0] == "county on schedule"] == [["County 2 (C2)", "no", "yes"]]


def test_absent_sections_say_why(plans, tmp_path):
    folder = tmp_path / "plan"
    shutil.copytree(plans["starved"], folder)
    (folder / "marginal_values.csv").unlink()
    text = visible(build_report(folder))
    assert "From the plan alone. Run allocator explain" in text
    assert "Marginal values" in text and "allocator explain" in text.split("Marginal values", 1)[1]
    assert "Against the usual rules Not computed: solve with allocator solve SCENARIO --baselines" in text
    assert "No progress record yet" in text


@pytest.fixture(scope="module")
def no_solution(tmp_path_factory) -> Path:
    tables = starved()
    tables["funds"]["amount"] = [1000.0, 1000.0, 1000.0, 0.0, 0.0]
    return _solve(tables, tmp_path_factory.mktemp("none"), policy={**POLICY, "deadline": "hard"})


def test_a_plan_with_no_solution_shows_its_inputs_and_the_next_step(no_solution):
    text = visible(build_report(no_solution))
    assert_readable(text)
    assert "no plan: the rules cannot all hold" in text
    assert "Scenario tiny, 2016–2018: 2 counties, 3 villages, 7 households" in text
    assert "money in the funds 3,000 yuan" in text
    assert f"Next step: run allocator explain {no_solution} to see which rules conflict" in text


def test_no_plan_within_the_time_limit_is_not_a_crash(no_solution, tmp_path):
    folder = tmp_path / "plan"
    shutil.copytree(no_solution, folder)
    summary = json.loads((folder / "summary.json").read_text())
    summary.update(status="error", stopped_by="time_limit", message="stopped at the time limit without a plan")
    (folder / "summary.json").write_text(json.dumps(summary))
    text = visible(build_report(folder))
    assert "no plan found within the time limit" in text and f"allocator explain {folder}" in text
    assert "solver failed" not in text
    assert status_words({"status": "error", "stopped_by": None})[0] == "no plan: the solver failed"
    assert status_words({"status": "feasible", "stopped_by": "time_limit"})[0].startswith("a plan")


def test_values_as_a_person_reads_them():
    assert shown(12_345_678.9, "spend") == "12,345,679"
    assert shown(0.0342, "expected_incidence") == "3.4%"
    assert shown(1.78, "expected_exits") == "1.8"
    assert shown(float("nan"), "spend") == "" and shown(None) == "" and shown(pd.NA) == ""
    assert shown(np.bool_(True)) == "yes"
    assert shown("a" * 64) == "a" * 12


def test_a_shortfall_not_proven_least_shows_its_bound_not_the_value_gap():
    """A plan 20 households above the least shortfall: its value's bound (for plans with at most its
    shortfall, at the penalty's price) is no measure of it, the shortfall bound is."""
    behind = {"total_shortfall": 2611.8, "target_shortfall": 1883.8, "shortfall_bound": 2591.2,
              "shortfall_gap": 20.6, "manifest": {"options": {"mip_gap": 0.001}}}
    assert not shortfall_proven_least(behind)
    assert shortfall_text(behind) == "2,611.8 (targets 1,883.8); no plan has less than 2,591.2"
    least = {**behind, "shortfall_bound": 2611.6, "shortfall_gap": 0.2}
    assert shortfall_proven_least(least) and shortfall_text(least) == "2,611.8 (targets 1,883.8)"
    large = {**behind, "total_shortfall": 300_000.0, "shortfall_bound": 299_800.0, "shortfall_gap": 200.0}
    assert shortfall_proven_least(large)  # within the 0.1 % gap target
    assert not shortfall_proven_least({"total_shortfall": 0.0, "shortfall_bound": None, "shortfall_gap": None})


def test_a_comparison_with_a_plan_that_has_no_solution_says_so(plans, no_solution):
    text = visible(build_report(plans["starved"], compare_with=no_solution))
    assert_readable(text)
    assert "B has no solution: its outcomes are missing, not zero" in text
    table = text.split("Inputs and outcomes that differ.", 1)[1]
    assert "Expected exits 1.8 no solution" in table and "spend by" not in table and "fund central" not in table
    backwards = visible(build_report(no_solution, compare_with=plans["starved"]))
    assert "A has no solution" in backwards and "Expected exits no solution 1.8" in backwards
    chinese = visible(build_report(plans["starved"], compare_with=no_solution, lang="zh"))
    assert "B无解：其结果为缺失而非零" in chinese and "预计脱贫户数 1.8 无解" in chinese
