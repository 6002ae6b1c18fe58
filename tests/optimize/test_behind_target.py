"""The behind-target pass: a plan short of a target gets the packages that count sooner, when
money a rule lets it spend sits idle (issue 16's "no idle money while behind")."""

from __future__ import annotations

import numpy as np
import pytest

from allocator.inputs.scenario import Policy
from allocator.model.formulation import formulate
from allocator.model.problem import build_problem
from allocator.optimize.methods import (
    Outcome,
    behind_target_columns,
    close_behind_target,
    quiet,
    solve_exact,
    solve_restricted,
)
from allocator.solvers import SolveOptions, get_backend
from tests.model.test_schedule import rich
from tests.support.tiny import tiny_tables


def _fm():
    """The tiny tables with money enough for everything, nothing counting before 2017, county
    rules that do not bind, and at most 45 % of the poor still poor at the end of 2017."""
    tables = rich(tiny_tables())
    tables["regions"]["rural_population"] = [0, 1000, 1000, 0, 0]
    tables["packages"]["lag_years"] = 1
    policy = Policy.model_validate({"annual_targets": {2017: 0.45}})
    return formulate(build_problem(tables, name="t", start_year=2016, deadline_year=2018, policy=policy))


def _without_packages(fm, best: np.ndarray) -> Outcome:
    """The best plan's projects and no package at all: its money and shortfalls re-solved."""
    point = best.copy()
    point[fm.x_cols] = 0.0
    result = solve_restricted(fm, get_backend("highs"), point, np.zeros(fm.model.num_cols, dtype=bool),
                              SolveOptions(mip_gap=0.0))
    assert result.status.has_solution
    return Outcome(result, None, {}, [])


def test_a_plan_behind_its_target_gets_the_packages_that_count_sooner():
    fm = _fm()
    best = solve_exact(fm, "highs", SolveOptions(mip_gap=0.0), quiet).result
    empty = _without_packages(fm, best.x)
    assert fm.model.max_violation(empty.result.x) <= 1e-6  # a plan, only a poor one
    assert empty.result.x[fm.t_cols].sum() > 0
    opened = behind_target_columns(fm, empty.result.x)
    assert opened[fm.x_cols].any() and not opened[fm.y_cols].any()
    before = empty.result.objective
    closed = close_behind_target(fm, empty, "highs", SolveOptions(mip_gap=0.0), quiet)
    assert closed.result.x[fm.t_cols].sum() == pytest.approx(best.x[fm.t_cols].sum(), abs=1e-6)
    assert closed.result.objective > before + 1e-6
    assert "behind_target" in closed.phases and any("behind a target" in n for n in closed.notes)


def test_a_plan_on_target_is_left_as_it_is():
    fm = _fm()
    best = solve_exact(fm, "highs", SolveOptions(mip_gap=0.0), quiet)
    assert best.result.x[fm.t_cols].sum() == pytest.approx(0.0, abs=1e-9)
    assert not behind_target_columns(fm, best.result.x).any()
    before = best.result
    assert close_behind_target(fm, best, "highs", SolveOptions(), quiet).result is before
    assert "behind_target" not in best.phases
