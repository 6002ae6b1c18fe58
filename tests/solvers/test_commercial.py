"""The commercial backends (COPT, Gurobi) against HiGHS, on models within their free size limits:
objectives, LP duals, statuses, time limits, options, and the error above the size limit.

The registry-wide tests (test_solvers.py) and the scenario tests (test_optimality.py) run them
too; each test here skips, saying why, where the package is missing or has no licence."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from allocator.errors import SolverUnavailable
from allocator.solvers import LinearModel, SolveOptions, Status, StoppedBy, get_backend
from tests.solvers.test_solvers import INF, TOL, assert_plan, knapsack_mip, make_model
from tests.support.backends import COMMERCIAL, usable_backend

EXACT = SolveOptions(mip_gap=0.0)


@pytest.fixture(params=COMMERCIAL)
def backend(request):
    return usable_backend(request.param)


def random_model(seed: int, integer: bool) -> LinearModel:
    """Feasible and bounded (a box around a known point), with every kind of row: equality,
    ranged, upper only, lower only and free; with ``integer``, half the columns integer."""
    rng = np.random.default_rng(seed)
    n, m = 8, 7
    A = np.round(rng.normal(0, 3, (m, n)), 2)
    point = rng.integers(0, 4, n).astype(float)  # integral, so the MIP is feasible too
    activity = A @ point
    slack = rng.uniform(1, 5, m)
    row_lo = np.array([activity[0], activity[1] - slack[1], -INF, activity[3] - slack[3], activity[4] - slack[4],
                       -INF, -INF])
    row_hi = np.array([activity[0], activity[1] + slack[1], activity[2] + slack[2], INF, activity[4] + slack[4],
                       activity[5] + slack[5], INF])
    return make_model(np.round(rng.normal(0, 5, n), 2), A, row_lo, row_hi, [-2] * n, [6] * n,
                      [integer and j % 2 == 0 for j in range(n)], sense=str(rng.choice(["max", "min"])),
                      offset=float(rng.integers(-9, 10)))


@pytest.mark.parametrize("seed", range(4))
def test_lp_objective_and_duals_agree_with_highs(backend, seed):
    model = random_model(seed, integer=False)
    reference = get_backend("highs").solve(model, SolveOptions())
    result = backend.solve(model, SolveOptions())
    assert result.status is Status.OPTIMAL and result.stopped_by is None
    assert_plan(model, result, reference.objective)
    assert result.bound == pytest.approx(result.objective)
    np.testing.assert_allclose(result.duals, reference.duals, atol=1e-6)
    assert result.duals[6] == 0.0  # the free row is not passed to the solver


@pytest.mark.parametrize("seed", range(6))
def test_mip_objective_agrees_with_highs(backend, seed):
    model = random_model(seed, integer=True)
    reference = get_backend("highs").solve(model, EXACT)
    result = backend.solve(model, EXACT)
    assert result.status is Status.OPTIMAL and result.duals is None
    assert_plan(model, result, reference.objective)
    assert result.bound == pytest.approx(result.objective, abs=1e-6)
    assert np.all(np.abs(result.x[model.integrality] - np.round(result.x[model.integrality])) <= 1e-6)


@pytest.fixture(scope="module")
def yuan_model() -> LinearModel:
    """The tiny preset's model: money rows in yuan beside 0-1 choices (a matrix range of ~5e6)."""
    from allocator.model.formulation import formulate
    from allocator.model.problem import build_problem
    from allocator.synth import generate_preset

    tables = generate_preset("tiny", seed=0, start_year=2016, deadline_year=2018)
    return formulate(build_problem(tables, name="tiny", start_year=2016, deadline_year=2018)).model


def test_a_badly_scaled_model_is_solved_to_the_same_optimum_as_highs(backend, yuan_model):
    """Unscaled, Gurobi's LP ended "optimal" 1.4e-3 short (a bound that is no bound) and COPT's MIP
    1.3e-2 short; the backends scale the model as HiGHS does."""
    for model, options in ((yuan_model.relaxed(), SolveOptions()), (yuan_model, EXACT)):
        reference = get_backend("highs").solve(model, options)
        result = backend.solve(model, options)
        assert result.status is Status.OPTIMAL
        assert_plan(model, result, reference.objective)
        assert result.bound == pytest.approx(reference.bound, abs=1e-6)


def test_unbounded_and_infeasible_mips(backend):
    unbounded = make_model([1, 1], [[1, -1]], [-INF], [1], [0, 0], [INF, INF], [1, 1])
    assert backend.solve(unbounded, SolveOptions()).status is Status.UNBOUNDED
    # the LP relaxation is feasible (x = 0.5); no integer x is, and the objective is unbounded without row 0
    odd = make_model([1, 1], [[2, 0], [0, 1]], [1, -INF], [1, 0], [0, 0], [INF, INF], [1, 1])
    result = backend.solve(odd, SolveOptions())
    assert result.status is Status.INFEASIBLE and result.x is None


def market_split(seed: int = 0, slack: bool = True) -> LinearModel:
    """A Cornuéjols-Dawande market split: 6 equality rows over 50 binaries, hard to close in any
    solver. With ``slack``, min the deviations (any 0-1 point is a plan); without, find a point."""
    rng = np.random.default_rng(seed)
    m, n = 6, 50
    a = rng.integers(0, 100, (m, n)).astype(float)
    target = a.sum(axis=1) // 2
    if not slack:
        return make_model(np.zeros(n), a, target, target, [0] * n, [1] * n, [1] * n, sense="min")
    return make_model(np.r_[np.zeros(n), np.ones(2 * m)], np.hstack([a, np.eye(m), -np.eye(m)]), target, target,
                      [0] * (n + 2 * m), [1] * n + [INF] * (2 * m), [1] * n + [0] * (2 * m), sense="min")


def test_time_limit_with_a_plan_is_feasible_and_says_so(backend):
    model = market_split()
    result = backend.solve(model, SolveOptions(time_limit=0.5, threads=1, mip_gap=0.0))
    assert result.status is Status.FEASIBLE and result.stopped_by is StoppedBy.TIME_LIMIT
    assert model.max_violation(result.x) <= TOL
    assert result.bound is not None and result.bound <= result.objective + TOL  # min: a lower bound
    assert result.solve_seconds < 10


def test_time_limit_without_a_plan_is_an_error_that_says_so(backend):
    result = backend.solve(market_split(slack=False), SolveOptions(time_limit=0.5, threads=1))
    assert result.status is Status.ERROR and result.stopped_by is StoppedBy.TIME_LIMIT
    assert result.x is None and result.solve_seconds < 10


def test_start_presolve_and_extra_options(backend):
    model = knapsack_mip()
    optimum = np.array([1, 1, 0, 0, 2, -0.5])
    for start in (optimum, np.zeros(6)):  # a plan, and a point that breaks a row
        result = backend.solve(model, SolveOptions(mip_gap=0.0, start=start, presolve=False))
        assert result.status is Status.OPTIMAL
        assert_plan(model, result, 13.5)
    with pytest.raises(ValueError, match="NoSuchParameter"):
        backend.solve(model, SolveOptions(extra={"NoSuchParameter": 1}))


def test_above_the_size_limit_is_unavailable_with_the_solvers_message(backend):
    """2,001 binaries: above both free licences' MIP limit (2,000 variables)."""
    n = 2001
    model = make_model(np.ones(n), np.ones((1, n)), [-INF], [5], [0] * n, [1] * n, [1] * n)
    try:
        result = backend.solve(model, SolveOptions())
    except SolverUnavailable as error:
        message = str(error)
        assert "cannot solve this model (2,001 columns, 1 rows)" in message
        assert "limit" in message.lower() and "choose another backend (highs)" in message
        return
    assert result.status is Status.OPTIMAL  # licensed without a size limit: nothing to refuse
    pytest.skip(f"{backend.name} is licensed here without a size limit")


QUIET_SOLVE = """
import numpy as np, scipy.sparse as sp
from allocator.solvers import LinearModel, SolveOptions, get_backend
model = LinearModel(np.ones(1), sp.csr_matrix(np.ones((1, 1))), np.array([-np.inf]), np.ones(1), np.zeros(1),
                    np.ones(1), np.ones(1, dtype=bool))
assert get_backend({name!r}).solve(model, SolveOptions()).objective == 1.0
"""


def test_a_quiet_solve_prints_nothing(backend):
    """Neither licence checks nor banners reach a command's output unless verbose."""
    done = subprocess.run([sys.executable, "-c", QUIET_SOLVE.format(name=backend.name)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "" and done.stderr == ""
