"""Marginal values (allocator.optimize.marginal): decompose's Lagrangian multipliers against the LP duals,
both against finite differences of the LP relaxation computed here from the problem itself
(not from the model rows the table moves), and the table in the plan folder, explain, the report."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

import allocator
from allocator.inputs.scenario import SolverSettings
from allocator.optimize.pipeline import solve_problem
from allocator.solvers import get_backend
from allocator.solvers.base import SolveOptions
from allocator.synth import generate_preset
from tests.support.commands import run
from tests.support.tiny import starved, write_folder

POLICY = {"county_exit_threshold": {"default": 0.02, "western": 0.03}}
STEP = 0.01  # of the resource, as the table's own check
# decompose's multipliers come from a cutting-plane search that stops within PRICE_TOL of its
# bound, not of its prices: on these instances they are within 2 % (relative) of the LP duals
# where those are unique (1.4 % on a category-restricted fund), as the table's own check allows
PRICE_AGREEMENT = 0.02


def instances() -> dict:
    generated = {f"generated x{scale}": allocator.build_problem(
        generate_preset("tiny", seed=1, start_year=2016, deadline_year=2018, money_scale=scale), name="g",
        start_year=2016, deadline_year=2018, policy=allocator.Policy(), validate=False) for scale in (0.6, 1.0)}
    return {"starved": allocator.build_problem(starved(), name="s", start_year=2016, deadline_year=2018,
                                               policy=allocator.Policy(**POLICY), validate=False), **generated}


def lp_value(problem) -> float:
    result = get_backend("highs").solve(allocator.formulate(problem).model.relaxed(), SolveOptions())
    return result.objective


def moved(problem, row: pd.Series, units: float):
    """The problem with ``units`` more of the table row's resource, changed in the problem's own arrays."""
    p = problem
    if row["kind"] == "money":
        r = np.flatnonzero((p.source_ids[p.fund_source] == row["source_id"]) & (p.years[p.fund_year] == row["year"]))
        hit = np.isin(np.arange(len(p.fund_amount)), r)
        return dataclasses.replace(p, fund_amount=p.fund_amount + units * 1e4 * hit)
    if row["kind"] == "cadre hours":
        regions = np.array([p.county_ids[r] if county else p.township_ids[r]
                            for r, county in zip(p.pers_region, p.pers_is_county, strict=True)])
        hit = (regions == row["region_id"]) & (p.years[p.pers_year] == row["year"])
        return dataclasses.replace(p, pers_hours=p.pers_hours + units * hit)
    assert row["kind"] == "exit allowance"
    c = np.flatnonzero(p.county_ids == row["region_id"])[0]
    population = p.county_rural_population.astype(float).copy()
    population[c] += units / p.county_threshold[c]
    return dataclasses.replace(p, county_rural_population=population)


def slopes(problem, row: pd.Series, base: float) -> tuple[float, float]:
    step = STEP * row["amount"]
    return (base - lp_value(moved(problem, row, -step))) / step, (lp_value(moved(problem, row, step)) - base) / step


@pytest.mark.parametrize("name", ["starved", "generated x0.6", "generated x1.0"])
def test_decompose_prices_match_the_lp_duals_and_both_match_finite_differences(name):
    problem = instances()[name]
    lp = solve_problem(problem, SolverSettings(method="exact")).marginal_values
    lagrange = solve_problem(problem, SolverSettings(method="decompose")).marginal_values
    assert set(lp["method"]) == {"LP dual"} and set(lagrange["method"]) == {"Lagrangian multiplier"}
    pd.testing.assert_frame_equal(lp[["kind", "source_id", "region_id", "year"]],
                                  lagrange[["kind", "source_id", "region_id", "year"]])
    base = lp_value(problem)
    held = lp[lp["amount"] > 0]
    assert len(held) >= 5 and (held["value"].abs() > 1e-6).any()
    for i, row in held.iterrows():
        down, up = slopes(problem, row, base)
        slack = PRICE_AGREEMENT * max(abs(down), abs(up)) + 1e-6
        for values in (lp, lagrange):  # a supergradient of the concave LP optimum lies between the slopes
            value = values.at[i, "value"]
            assert up - slack <= value <= down + slack, (name, row.to_dict(), down, up, value)
        if abs(down - up) <= 1e-6 * max(abs(down), 1.0):  # differentiable: the price is unique
            assert lagrange.at[i, "value"] == pytest.approx(lp.at[i, "value"], rel=PRICE_AGREEMENT, abs=1e-6)


def test_the_tables_own_check_agrees_and_catches_wrong_prices():
    from allocator.optimize.marginal import LP_DUAL, lp_prices, marginal_values

    problem = instances()["generated x0.6"]
    fm = allocator.formulate(problem)
    prices = lp_prices(fm)
    table = marginal_values(fm, prices, LP_DUAL)
    checked = table[table["fd_check"].isin(["agrees", "differs"])]
    assert len(checked) >= 5 and set(checked["kind"]) == {"money", "cadre hours", "exit allowance"}
    assert (checked["fd_check"] == "agrees").all(), checked
    wrong = marginal_values(fm, prices * 1.5, LP_DUAL)
    assert (wrong["fd_check"] == "differs").any()


@pytest.mark.parametrize("method", ["exact", "decompose"])
def test_the_plan_folder_explain_and_report_show_them(tmp_path, method):
    from allocator.inputs.provenance import foreign_files

    path = write_folder(starved(), tmp_path / "data", policy=POLICY, solver={"method": method})
    assert run("solve", path, "--out", tmp_path / "plan", "--quiet").returncode == 0
    folder = tmp_path / "plan"
    table = pd.read_csv(folder / "marginal_values.csv")
    assert not foreign_files(folder)  # listed in the plan folder's manifest
    summary = json.loads((folder / "summary.json").read_text())["marginal_values"]
    expected = {"exact": "LP dual", "decompose": "Lagrangian multiplier"}[method]
    assert summary["method"] == expected and summary["count"] == len(table)
    assert summary["agree"] == summary["checked"] > 0
    money = table[table["kind"] == "money"].set_index(["source_id", "year"])["value"]
    assert money[("central", 2016)] > 0  # the starved county makes money worth something
    assert run("report", folder).returncode == 0  # before explain: from the table alone
    assert "Marginal values: where the next unit does most" in (folder / "report.html").read_text()
    explained = run("explain", folder, "--no-money", "--no-earliest")
    assert explained.returncode == 0, explained.stderr
    assert "central money in 2016 is worth" in explained.stdout and expected in explained.stdout
    found = json.loads((folder / "difficulties.json").read_text())["marginal_values"]
    assert len(found["rows"]) == len(table) and found["method"] == expected
