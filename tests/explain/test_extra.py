"""allocator explain --extra: the re-solve with more money equals a cold solve of the scenario with
that money in funds.csv, says where it went, and bad --extra input exits 2 naming the flag."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from allocator.errors import InputError
from allocator.explain.extra import SOURCE, parse_extra
from tests.support.commands import run
from tests.support.tiny import starved, write_folder

POLICY = {"county_exit_threshold": {"default": 0.02, "western": 0.03}}


@pytest.fixture(scope="module")
def plan(tmp_path_factory):
    folder = tmp_path_factory.mktemp("extra")
    path = write_folder(starved(), folder / "data", policy=POLICY)
    assert run("solve", path, "--out", folder / "plan", "--quiet").returncode == 0
    return folder / "plan"


def cold(funds: pd.DataFrame, folder) -> dict:
    path = write_folder({**starved(), "funds": funds}, folder / "data", policy=POLICY)
    assert run("solve", path, "--out", folder / "plan", "--quiet").returncode == 0
    return json.loads((folder / "plan" / "summary.json").read_text())


# county1 pays industry in C1 only, whose packages need a road (infrastructure): its money buys nothing
@pytest.mark.parametrize(("source", "year", "amount", "buys"), [("central", 2017, 3000.0, True),
                                                                ("county1", 2016, 4000.0, False)])
def test_the_extra_re_solve_equals_a_cold_solve_with_the_money_added(plan, tmp_path, source, year, amount, buys):
    explained = run("explain", plan, "--extra", f"{source}:{year}:{amount:g}", "--quiet")
    assert explained.returncode == 0, explained.stderr
    found = json.loads((plan / "difficulties.json").read_text())
    assert "what_it_would_take" not in found and "earliest_deadlines" not in found  # --extra alone: its re-solve
    more = found["extra_money"]
    funds = starved()["funds"]
    hit = (funds["source_id"] == source) & (funds["year"] == year)
    if hit.any():
        funds.loc[hit, "amount"] += amount
    else:  # county1 has no 2016 row: a new one like its 2017 row
        funds = pd.concat([funds, funds[(funds["source_id"] == source) & (funds["year"] == year + 1)]
                           .assign(year=year, amount=amount)], ignore_index=True)
    summary = cold(funds, tmp_path)
    assert more["expected_exits"]["with_extra"] == pytest.approx(summary["expected_exits"], rel=1e-9)
    before = json.loads((plan / "summary.json").read_text())
    assert more["exits_bought"] == pytest.approx(summary["expected_exits"] - before["expected_exits"], rel=1e-9)
    assert (more["exits_bought"] > 0 and more["extra_spend"] > 0) is buys
    assert sum(c["extra_spend"] for c in more["counties"]) == pytest.approx(more["extra_spend"])
    names = starved()["regions"].set_index("region_id")["name"]
    assert more["counties"] or not buys
    for county in more["counties"]:  # each county printed with its name beside its id
        assert f"    {names[county['county_id']]} ({county['county_id']}): " in explained.stdout
    if hit.any():  # the marginal value of a fund row the plan had bounds what its money buys
        assert more["predicted_by"] == "LP dual" and more["predicted_value"] >= more["value_bought"] - 1e-6


@pytest.mark.parametrize(("extra", "words"), [
    ("nowhere:2017:1000", "unknown source 'nowhere'"), ("central:2030:1000", "outside the plan's horizon"),
    ("central:2017:-1000", "positive number"), ("central:2017:lots", "not a number"),
    ("central:twenty:1000", "whole number"), ("central-2017", "not SOURCE:YEAR:AMOUNT")])
def test_bad_extra_input_exits_2_naming_the_flag(plan, extra, words):
    result = run("explain", plan, "--extra", extra, "--quiet")
    assert result.returncode == 2 and "--extra" in result.stderr and words in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_the_library_speaks_its_own_words():
    with pytest.raises(InputError) as error:
        parse_extra("central:2017:0")
    assert error.value.issues[0].file == SOURCE
    assert parse_extra("central:2017:1e7").amount == 1e7
