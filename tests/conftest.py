"""Shared fixtures: the tiny data set, a solve helper that always runs the independent checker."""

from __future__ import annotations

from pathlib import Path

import pytest

import allocator
from tests.support.plan_checker import check_scenario_plan
from tests.support.tiny import tiny_tables, write_folder


@pytest.fixture
def tables():
    """A fresh copy of the tiny tables, to be changed by the test."""
    return tiny_tables()


@pytest.fixture
def solve_checked(tmp_path):
    """Write tables + scenario, solve, write the plan, run the independent checker on it."""
    counter = {"n": 0}

    def run(tables, *, policy=None, solver=None, start_year=2016, deadline_year=2018, check=True):
        counter["n"] += 1
        folder = tmp_path / f"case{counter['n']}"
        path = write_folder(tables, folder / "data", policy=policy, start_year=start_year,
                            deadline_year=deadline_year, solver=solver)
        scenario = allocator.load_scenario(path)
        plan = allocator.solve(scenario)
        plan_dir = plan.write(folder / "plan")
        if check:
            violations = check_scenario_plan(path, plan_dir)
            assert violations == [], "independent checker:\n" + "\n".join(violations[:20])
        return plan

    return run


README_SCENARIO = Path(__file__).parents[1] / "scenarios" / "demo.yaml"


@pytest.fixture(scope="session")
def county_plan(tmp_path_factory):
    """The README default scenario (the raw county preset) solved once per session: the scenario,
    the plan and its folder, for tests that only read them. Decompose in 30 s rather than the
    file's lp-fix (~140 s, which .ci/run's first command and the slow test of the schedule run):
    these tests need a plan of the default's data, not its best one; its priced shortfall keeps
    the gap open, so the solve ends by its time limit."""
    scenario = allocator.load_scenario(README_SCENARIO, overrides={"solver.time_limit": 30,
                                                                   "solver.method": "decompose"})
    plan = allocator.solve(scenario)
    assert plan.status in ("optimal", "feasible"), plan.summary["message"]
    return scenario, plan, plan.write(tmp_path_factory.mktemp("county") / "plan")


@pytest.fixture(scope="module")
def tiny_plan(tmp_path_factory):
    """The tiny preset's plan (2016-2020) and its context, once per test module."""
    from allocator.plan.context import load_plan_context
    from tests.support.loop_helpers import solve_preset

    plan_dir = solve_preset(tmp_path_factory.mktemp("tiny"))
    return plan_dir, load_plan_context(plan_dir)
