"""Solver backends against known answers and brute force, parametrised over the registry."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from allocator.errors import NoSolution, SolverUnavailable
from allocator.solvers import (
    BACKENDS,
    LinearModel,
    SolveOptions,
    Status,
    StoppedBy,
    available_backends,
    get_backend,
)
from allocator.solvers.highs import highs_lp_solve
from allocator.solvers.pulp import PulpBackend
from tests.support.backends import usable_backend

INF = np.inf
TOL = 1e-6
EXACT = SolveOptions(mip_gap=0.0)


@pytest.fixture(params=sorted(BACKENDS))
def backend(request):
    return usable_backend(request.param)


def make_model(c, A, row_lo, row_hi, col_lo, col_hi, integer, sense="max", offset=0.0) -> LinearModel:
    """A LinearModel from plain lists (``A`` dense, one list per row)."""
    n = len(c)
    return LinearModel(
        c=np.array(c, dtype=float), A=sp.csr_matrix(np.array(A, dtype=float).reshape(len(row_lo), n)),
        row_lo=np.array(row_lo, dtype=float), row_hi=np.array(row_hi, dtype=float),
        col_lo=np.array(col_lo, dtype=float), col_hi=np.array(col_hi, dtype=float),
        integrality=np.array(integer, dtype=bool), sense=sense, offset=offset,
    )


def brute_force_binary(model: LinearModel) -> float | None:
    """Best objective over every 0/1 point of an all-binary model; ``None`` if none is feasible."""
    n = model.num_cols
    points = ((np.arange(2**n)[:, None] >> np.arange(n)) & 1).astype(float)
    activity = points @ model.A.T.toarray()
    feasible = np.all((activity >= model.row_lo - TOL) & (activity <= model.row_hi + TOL), axis=1)
    if not feasible.any():
        return None
    values = points[feasible] @ model.c + model.offset
    return float(values.max() if model.sense == "max" else values.min())


def assert_plan(model: LinearModel, result, objective: float) -> None:
    """The result has a feasible point whose objective is the expected one."""
    assert result.status.has_solution, result
    assert model.max_violation(result.x) <= TOL
    assert result.objective == pytest.approx(objective, abs=TOL)
    assert model.objective_value(result.x) == pytest.approx(result.objective, abs=1e-5)


def tiny_lp(offset: float = 0.0) -> LinearModel:
    """max 3x + 2y: x + y <= 4 (binds, dual 2), x + 3y <= 9 (slack), 0 <= x <= 3: x=3, y=1, 11."""
    return make_model([3, 2], [[1, 1], [1, 3]], [-INF, -INF], [4, 9], [0, 0], [3, INF], [0, 0], offset=offset)


def knapsack_mip() -> LinearModel:
    """Binaries a, b, c, d; integer z >= -5; free continuous w. Optimum a=b=1, z=2, w=-0.5: 13.5.

    max 5a + 4b + 3c + 2z - w  s.t.  2a + 3b + c <= 5,  a + b + c + d == 2,
    1 <= z + a <= 3 (ranged),  w - z >= -2.5.
    """
    return make_model(
        c=[5, 4, 3, 0, 2, -1],
        A=[[2, 3, 1, 0, 0, 0], [1, 1, 1, 1, 0, 0], [1, 0, 0, 0, 1, 0], [0, 0, 0, 0, -1, 1]],
        row_lo=[-INF, 2, 1, -2.5], row_hi=[5, 2, 3, INF],
        col_lo=[0, 0, 0, 0, -5, -INF], col_hi=[1, 1, 1, 1, INF, INF],
        integer=[1, 1, 1, 1, 1, 0],
    )


def multi_knapsack(n: int = 60, k: int = 5, seed: int = 1) -> LinearModel:
    """A seeded multi-constraint 0/1 knapsack, correlated values: hard to close exactly."""
    rng = np.random.default_rng(seed)
    weights = rng.integers(5, 60, (k, n))
    values = rng.integers(10, 100, n) + weights.sum(axis=0) // 3
    return make_model(values, weights, [-INF] * k, weights.sum(axis=1) // 2, [0] * n, [1] * n, [1] * n)


def test_tiny_lp(backend):
    model = tiny_lp()
    result = backend.solve(model, SolveOptions())
    assert result.status is Status.OPTIMAL and result.stopped_by is None
    assert_plan(model, result, 11.0)
    np.testing.assert_allclose(result.x, [3, 1], atol=TOL)
    assert result.bound == pytest.approx(11.0) and result.gap == pytest.approx(0.0)
    if result.duals is not None:  # d objective / d row bound, in the model's sense
        np.testing.assert_allclose(result.duals, [2, 0], atol=TOL)


def test_mip_with_equality_ranged_rows_and_infinite_bounds(backend):
    model = knapsack_mip()
    result = backend.solve(model, EXACT)
    assert result.status is Status.OPTIMAL
    assert_plan(model, result, 13.5)
    np.testing.assert_allclose(result.x, [1, 1, 0, 0, 2, -0.5], atol=TOL)


def min_mip() -> LinearModel:
    """min 2x + 3y s.t. x + y >= 4, x - y <= 1, integer x, y >= 0: x=y=2, 10 (LP: x=2.5, y=1.5, 9.5)."""
    return make_model([2, 3], [[1, 1], [1, -1]], [4, -INF], [INF, 1], [0, 0], [INF, INF], [1, 1], sense="min")


def test_min_sense(backend):
    model = min_mip()
    result = backend.solve(model, EXACT)
    assert result.status is Status.OPTIMAL
    assert_plan(model, result, 10.0)
    assert result.bound is None or result.bound <= result.objective + TOL
    relaxed = backend.solve(model.relaxed(), SolveOptions())
    assert_plan(model.relaxed(), relaxed, 9.5)


@pytest.mark.parametrize("integer", [0, 1], ids=["lp", "mip"])
def test_infeasible_is_a_result(backend, integer):
    model = make_model([1, 1], [[1, 1]], [5], [INF], [0, 0], [2, 2], [integer] * 2)
    result = backend.solve(model, SolveOptions())
    assert result.status is Status.INFEASIBLE
    assert result.x is None and result.objective is None and result.gap is None
    with pytest.raises(NoSolution):
        result.solution()


def test_unbounded_lp(backend):
    model = make_model([1, 1], [[1, -1]], [-INF], [1], [0, 0], [INF, INF], [0, 0])
    assert backend.solve(model, SolveOptions()).status is Status.UNBOUNDED


def test_offset_counted_once(backend):
    lp = backend.solve(tiny_lp(offset=100.0), SolveOptions())
    assert lp.objective == pytest.approx(111.0) and lp.bound == pytest.approx(111.0)
    mip = tiny_lp(offset=-7.0)
    mip.integrality[:] = True
    result = backend.solve(mip, EXACT)
    assert result.objective == pytest.approx(4.0)
    assert result.bound is None or result.bound == pytest.approx(4.0, abs=1e-3)


def test_duplicate_matrix_entries_are_summed(backend):
    """A CSR row holding column 0 twice means 2 x0 <= 3: x0 = 1 for an integer x0."""
    A = sp.csr_matrix((np.array([1.0, 1.0]), np.array([0, 0]), np.array([0, 2])), shape=(1, 1))
    model = LinearModel(np.ones(1), A, np.array([-INF]), np.array([3.0]), np.zeros(1), np.array([5.0]),
                        np.ones(1, dtype=bool))
    result = backend.solve(model, EXACT)
    assert result.objective == pytest.approx(1.0)


@pytest.mark.parametrize("seed", range(20))
def test_random_binary_mips_match_brute_force(backend, seed):
    rng = np.random.default_rng(seed)
    n, m = 8, int(rng.integers(2, 5))
    A = rng.integers(-3, 10, (m, n))
    model = make_model(
        c=rng.integers(-10, 11, n), A=A, row_lo=[-INF] * m, row_hi=rng.integers(0, 4 * n, m),
        col_lo=[0] * n, col_hi=[1] * n, integer=[1] * n, sense=str(rng.choice(["max", "min"])),
        offset=float(rng.integers(-5, 6)),
    )
    expected = brute_force_binary(model)
    result = backend.solve(model, EXACT)
    if expected is None:
        assert result.status is Status.INFEASIBLE
    else:
        assert result.status is Status.OPTIMAL
        assert_plan(model, result, expected)


def test_time_limit_returns_a_plan_and_an_honest_bound(backend):
    model = multi_knapsack()
    result = backend.solve(model, SolveOptions(time_limit=0.5, mip_gap=0.0))
    assert result.status in (Status.OPTIMAL, Status.FEASIBLE)
    assert np.isfinite(result.objective) and model.max_violation(result.x) <= TOL
    assert result.solve_seconds < 10
    if result.status is Status.FEASIBLE:
        assert result.stopped_by is StoppedBy.TIME_LIMIT
    if backend.name == "highs":
        assert result.bound is not None
    if result.bound is not None:
        assert result.bound >= result.objective - TOL


def test_gap_target_stops_with_a_bound_within_it(backend):
    result = backend.solve(multi_knapsack(), SolveOptions(mip_gap=0.05, time_limit=5))
    assert result.status.has_solution
    if result.gap is not None:
        assert result.bound >= result.objective - TOL
        if result.status is Status.OPTIMAL:
            assert result.gap <= 0.05 + 1e-6
            assert (result.stopped_by is StoppedBy.GAP) == (result.gap > 1e-9)


@pytest.mark.parametrize("method", ["choose", "simplex", "ipm", "pdlp"])
def test_highs_lp_methods(method):
    if not BACKENDS["highs"].is_available():
        pytest.skip("highspy is not installed")
    result = highs_lp_solve(min_mip(), SolveOptions(), method=method)  # solves the relaxation
    assert result.status is Status.OPTIMAL
    assert result.objective == pytest.approx(9.5, rel=1e-4)
    np.testing.assert_allclose(result.x, [2.5, 1.5], atol=1e-3)
    with pytest.raises(ValueError, match="method"):
        highs_lp_solve(tiny_lp(), method="barrier")


def test_unknown_backend_lists_installed():
    with pytest.raises(SolverUnavailable, match="unknown solver backend 'cplex'") as info:
        get_backend("cplex")
    for name in available_backends():
        assert name in str(info.value)


def test_missing_package_says_what_to_install(monkeypatch):
    monkeypatch.setattr(PulpBackend, "is_available", classmethod(lambda cls: False))
    with pytest.raises(SolverUnavailable, match="pip install pulp"):
        get_backend("pulp")
    assert "pulp" not in available_backends()


def test_bad_backend_options_are_errors():
    if BACKENDS["highs"].is_available():
        with pytest.raises(ValueError, match="no_such_option"):
            get_backend("highs").solve(tiny_lp(), SolveOptions(extra={"no_such_option": 1}))
    if BACKENDS["ortools"].is_available():
        with pytest.raises(ValueError, match="ignores integrality"):
            get_backend("ortools").solve(knapsack_mip(), SolveOptions(extra={"solver": "glop"}))


def test_threads_seed_and_verbose_options(backend, capfd):
    """Typed options reach the solver: changing the thread count between runs is fine."""
    model = knapsack_mip()
    for threads in (1, 2):
        result = backend.solve(model, SolveOptions(mip_gap=0.0, threads=threads, seed=3, verbose=True))
        assert result.status is Status.OPTIMAL and result.objective == pytest.approx(13.5)
    out, err = capfd.readouterr()
    assert out or err  # the solver's log was shown


# ---------------------------------------------------------------- HiGHS' scaling
def _money_model(integer: bool) -> LinearModel:
    """Two yuan-sized packages on a 0-1 choice each, paid by a flow column from a budget of 9e6:
    max 0.9 x1 + 0.5 x2 s.t. 7e6 x1 + 3e6 x2 - f = 0, f <= 9e6, x1 + x2 <= 2."""
    return make_model([0.9, 0.5, 0.0], [[7e6, 3e6, -1.0], [0, 0, 1], [1, 1, 0]], [0, -INF, -INF],
                      [0, 9e6, 2], [0, 0, 0], [1, 1, INF], [integer, integer, False])


def test_scaling_factors_are_powers_of_two_and_leave_integer_columns_alone():
    from allocator.solvers.highs import equilibrate

    model = _money_model(integer=True)
    rows, cols = equilibrate(model)
    assert np.all(np.log2(rows) == np.round(np.log2(rows))) and np.all(np.log2(cols) == np.round(np.log2(cols)))
    assert cols[0] == cols[1] == 1.0 and cols[2] != 1.0  # the flow column is scaled, the choices are not
    scaled = np.abs(model.matrix("csc").multiply(rows[:, None]).multiply(cols[None, :]).data)
    assert scaled.max() / scaled.min() < 7e6 / 1.0  # the range shrinks
    unscaled = equilibrate(model, passes=0)
    assert np.all(unscaled[0] == 1.0) and np.all(unscaled[1] == 1.0)


def test_scaled_solves_answer_in_the_models_own_units(monkeypatch):
    import allocator.solvers.highs as highs

    lp = _money_model(integer=False)
    results = {}
    for passes in (0, highs.SCALE_PASSES):
        monkeypatch.setattr(highs, "SCALE_PASSES", passes)
        results[passes] = highs.HighsBackend().solve(lp, SolveOptions())
    plain, scaled = results[0], results[highs.SCALE_PASSES]
    # x2 gives more per yuan: x2 = 1 (3e6), then x1 = 6e6 / 7e6; the budget's dual is 0.9 / 7e6 per yuan
    assert scaled.objective == pytest.approx(0.5 + 0.9 * 6 / 7, abs=1e-9)
    assert np.allclose(scaled.x, [6 / 7, 1.0, 9e6], rtol=1e-9)
    assert np.allclose(scaled.x, plain.x, rtol=1e-9)
    assert np.allclose(scaled.duals, plain.duals, rtol=1e-6, atol=1e-15)
    assert abs(scaled.duals[1]) == pytest.approx(0.9 / 7e6, rel=1e-6)
    mip = highs.HighsBackend().solve(_money_model(integer=True), SolveOptions(mip_gap=0.0, start=np.array([1, 0, 7e6])))
    assert_plan(_money_model(integer=True), mip, 0.9)  # x1 alone: both cost 10e6 > 9e6


def test_a_scaled_model_is_the_same_model_in_other_units():
    """What the COPT and Gurobi backends pass their solver: the optimum, point and duals map back."""
    from allocator.solvers.highs import HighsBackend, equilibrate

    model = _money_model(integer=False)
    rows, cols = equilibrate(model)
    assert not np.all(rows == 1.0) and not np.all(cols == 1.0)
    plain, scaled = (HighsBackend().solve(m, SolveOptions()) for m in (model, model.scaled(rows, cols)))
    assert scaled.objective == pytest.approx(plain.objective, abs=1e-12)
    assert np.allclose(scaled.x * cols, plain.x, rtol=1e-9)
    assert np.allclose(scaled.duals * rows, plain.duals, rtol=1e-6, atol=1e-15)


def test_scaling_that_would_push_a_bound_past_what_highs_holds_finite_is_not_done():
    from allocator.solvers.highs import HighsBackend, equilibrate

    # a micro-coefficient row with a huge bound: scaling the row up would turn 1e18 into "infinite"
    model = make_model([1.0], [[1e-6]], [-INF], [1e18], [0], [10], [False])
    rows, cols = equilibrate(model)
    assert np.all(rows == 1.0) and np.all(cols == 1.0)
    assert HighsBackend().solve(model, SolveOptions()).x[0] == pytest.approx(10.0)
    # factors stay within 2^30 either way however small an entry is
    tiny = make_model([1.0, 1.0], [[1e-40, 1.0]], [-INF], [1.0], [0, 0], [1, 1], [False, False])
    rows, cols = equilibrate(tiny)
    assert np.all(np.abs(np.log2(rows)) <= 30) and np.all(np.abs(np.log2(cols)) <= 30)
