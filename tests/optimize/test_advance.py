"""Swaps toward the schedule (``repair.advance``): a plan behind an annual target, with money
a rule lets it spend idle, takes packages that count sooner; a plan on target is left alone;
every swap keeps the money, share and personnel rows."""

from __future__ import annotations

import numpy as np
import pytest

from allocator.optimize.decompose import Flows
from allocator.optimize.methods import quiet, solve_exact, solve_restricted
from allocator.optimize.repair import ScheduleRows, advance
from allocator.solvers import SolveOptions, get_backend
from tests.optimize.test_behind_target import _fm, _without_packages


def _chosen(fm, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    point = np.zeros(fm.model.num_cols)
    point[x] = 1.0
    point[fm.nx + y] = 1.0
    return point


def test_a_plan_behind_its_target_swaps_in_packages_that_count_sooner():
    fm = _fm()
    best = solve_exact(fm, "highs", SolveOptions(mip_gap=0.0), quiet).result
    empty = _without_packages(fm, best.x).result
    y = np.flatnonzero(empty.x[fm.y_cols] > 0.5)
    sched = ScheduleRows.of(fm)
    none = np.zeros(0, dtype=np.int64)
    assert sched.shortfall(fm, none, none).sum() == pytest.approx(empty.x[fm.shortfall_cols].sum(), abs=1e-6)
    moved = advance(fm, Flows.of(fm).pay, none, y, seconds=30.0)
    assert len(moved)
    left = sched.shortfall(fm, moved, fm.x_county[moved]).sum()
    assert left < empty.x[fm.shortfall_cols].sum() - 1e-6
    # the swapped plan is a plan: its flows and shortfalls re-solve with every row kept
    plan = solve_restricted(fm, get_backend("highs"), _chosen(fm, moved, y), np.zeros(fm.model.num_cols, dtype=bool),
                            SolveOptions(mip_gap=0.0))
    assert plan.status.has_solution and fm.model.max_violation(plan.x) <= 1e-6
    assert plan.x[fm.shortfall_cols].sum() == pytest.approx(left, abs=1e-6)
    assert plan.objective > empty.objective + 1e-6


def _delayed(fm, x: np.ndarray) -> np.ndarray:
    """Each chosen package moved to its last start year."""
    last = np.zeros(len(fm.problem.pkg_ids), dtype=np.int64)
    np.maximum.at(last, fm.x_pkg, np.arange(fm.nx))  # columns of a package run in year order
    return np.unique(last[fm.x_pkg[x]])


def test_a_swap_only_replaces_a_package_with_one_that_counts_at_least_as_much_every_year():
    fm = _fm()
    best = solve_exact(fm, "highs", SolveOptions(mip_gap=0.0), quiet).result
    y = np.flatnonzero(best.x[fm.y_cols] > 0.5)
    late = _delayed(fm, np.flatnonzero(best.x[fm.x_cols] > 0.5))
    sched = ScheduleRows.of(fm)
    assert sched.shortfall(fm, late, fm.x_county[late]).sum() > 0
    moved = advance(fm, Flows.of(fm).pay, late, y, seconds=30.0)
    swapped = np.setdiff1d(moved, late)
    assert len(swapped)
    old = dict(zip(fm.x_household[late].tolist(), late.tolist(), strict=True))
    for column in swapped:
        before = old.get(int(fm.x_household[column]))
        for t in range(len(fm.problem.years)):
            was = 0.0 if before is None else float(fm.x_exit_at(t, np.array([before]))[0])
            assert fm.x_exit_at(t, np.array([column]))[0] >= was - 1e-12
    assert len(np.unique(fm.x_household[moved])) == len(moved)  # still one package per household


def test_a_plan_on_target_is_not_changed():
    fm = _fm()
    best = solve_exact(fm, "highs", SolveOptions(mip_gap=0.0), quiet).result
    x, y = np.flatnonzero(best.x[fm.x_cols] > 0.5), np.flatnonzero(best.x[fm.y_cols] > 0.5)
    assert best.x[fm.shortfall_cols].sum() == pytest.approx(0.0, abs=1e-9)
    assert np.array_equal(advance(fm, Flows.of(fm).pay, x, y, seconds=30.0), x)


def test_no_paid_swap_when_the_funds_pay_nothing_more():
    fm = _fm()
    best = solve_exact(fm, "highs", SolveOptions(mip_gap=0.0), quiet).result
    y = np.flatnonzero(_without_packages(fm, best.x).result.x[fm.y_cols] > 0.5)
    none = np.zeros(0, dtype=np.int64)
    moved = advance(fm, lambda demand, floor=None, weight=None: np.zeros_like(demand), none, y, seconds=30.0)
    assert (fm.problem.pkg_cost[fm.x_pkg[moved]] == 0).all()
