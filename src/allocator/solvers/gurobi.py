"""Gurobi through gurobipy: the columns in one ``addMVar`` call, the rows in one ``addMConstr`` call.

Build: ``addMVar`` takes the column bounds, costs and types as arrays. Gurobi's linear rows
have one side, so ``addMConstr`` gets the CSR rows that have a finite side, each once per side:
an equality row once ("="), a row with one finite side once ("<" or ">"), a ranged row twice,
a free row not at all. A row's dual is the sum of its sides' duals.

The model is scaled first, as for HiGHS (:func:`allocator.solvers.highs.equilibrate`, powers of
2, so exactly), and the point and duals are mapped back. Unscaled, money rows in yuan beside
0-1 choices let Gurobi end "optimal" short of the optimum: on the tiny preset (seed 0,
2016-2018) its LP relaxation at 53.38374 instead of 53.38510 (so a bound that was no bound)
and its MIP at 53.37336 instead of 53.37345; scaled, it matches HiGHS.

Options: ``time_limit`` is ``TimeLimit``, ``mip_gap`` ``MIPGap``, ``threads`` ``Threads``,
``seed`` ``Seed``, ``presolve=False`` ``Presolve=0``, ``verbose`` ``OutputFlag``; ``start`` is
the columns' ``Start`` (a MIP start); ``extra`` is passed verbatim as Gurobi parameters.
No progress is reported and :data:`~allocator.solvers.base.STOP_SOLVES` is not watched: the run
goes to its own limits.

=========================  ===========================================================
Gurobi status              Status (stopped_by)
=========================  ===========================================================
OPTIMAL                    OPTIMAL (GAP when a MIP stopped at a relative gap > 1e-9)
INFEASIBLE                 INFEASIBLE
INF_OR_UNBD, UNBOUNDED     settled by a zero-objective re-solve: UNBOUNDED or INFEASIBLE
                           (Gurobi's UNBOUNDED proves a ray, not a feasible point)
TIME_LIMIT                 FEASIBLE if a plan was found, else ERROR (TIME_LIMIT)
ITERATION_LIMIT,           FEASIBLE if a plan was found, else ERROR (OTHER_LIMIT)
NODE_LIMIT, SOLUTION_
LIMIT, INTERRUPTED,
USER_OBJ_LIMIT, WORK_
LIMIT, MEM_LIMIT, CUTOFF
SUBOPTIMAL                 FEASIBLE with the plan (tolerances not met; the message says so)
anything else              ERROR (NUMERIC, or a Gurobi error during the solve, whose
                           message is kept)
=========================  ===========================================================

``raw_status`` is Gurobi's status name. The offset is Gurobi's ``ObjCon``, so ``objective``
and ``bound`` include it once. ``bound`` is ``ObjBound`` for a MIP, the objective for an LP
solved to optimality. Row duals (``Pi``: d objective / d row bound) for LPs solved to optimality.

Licence: the gurobipy wheel carries a size-limited licence (2,000 variables and 2,000 linear
constraints, for non-production use). A model above the limit, or no usable licence at all,
raises :class:`~allocator.errors.SolverUnavailable` with Gurobi's message: the backend cannot
solve this model here, which says nothing about the plan.
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from allocator.errors import SolverUnavailable
from allocator.model.linear import LinearModel
from allocator.solvers.base import (
    Backend,
    SolveOptions,
    SolveResult,
    Status,
    StoppedBy,
    settle_infeasible_or_unbounded,
    solver_parameters,
)
from allocator.solvers.highs import equilibrate

_LIMITS = {
    "TIME_LIMIT": StoppedBy.TIME_LIMIT,
    "ITERATION_LIMIT": StoppedBy.OTHER_LIMIT,
    "NODE_LIMIT": StoppedBy.OTHER_LIMIT,
    "SOLUTION_LIMIT": StoppedBy.OTHER_LIMIT,
    "INTERRUPTED": StoppedBy.OTHER_LIMIT,
    "USER_OBJ_LIMIT": StoppedBy.OTHER_LIMIT,
    "WORK_LIMIT": StoppedBy.OTHER_LIMIT,
    "MEM_LIMIT": StoppedBy.OTHER_LIMIT,
    "CUTOFF": StoppedBy.OTHER_LIMIT,
}
_SETTLE = frozenset({"INF_OR_UNBD", "UNBOUNDED"})  # re-solved without the objective
_LICENCE_ERRORS = frozenset({10009, 10010})  # GRB.Error.NO_LICENSE, GRB.Error.SIZE_LIMIT_EXCEEDED
LICENCE_HINT = ("the gurobipy wheel's own licence solves models of up to 2,000 variables and 2,000 constraints; "
                "install a Gurobi licence, or choose another backend (highs)")


class GurobiBackend(Backend):
    """Gurobi (simplex, barrier, branch and cut) via gurobipy, where licensed."""

    name = "gurobi"
    package = "gurobipy"
    supports_duals = True

    def solve(self, model: LinearModel, options: SolveOptions) -> SolveResult:
        """Build the scaled model from arrays in two calls, run Gurobi and map its status.

        Raises
        ------
        SolverUnavailable
            When Gurobi has no licence here, or the model is above its licence's size limit.
        ValueError
            When Gurobi rejects a parameter in ``options.extra``.
        """
        import gurobipy as gp

        start = time.perf_counter()
        row_scale, col_scale = equilibrate(model)
        with gp.Env(empty=True) as env:
            env.setParam("OutputFlag", int(options.verbose))  # before start: no licence banner unless verbose
            try:
                env.start()
            except gp.GurobiError as error:
                raise SolverUnavailable(f"Gurobi could not start: {error}; {LICENCE_HINT}") from None
            with gp.Model(env=env) as grb:
                x, sides, constraints = _build(grb, model.scaled(row_scale, col_scale))
                _set_parameters(grb, model, options)
                if options.start is not None and model.is_mip:
                    x.Start = np.asarray(options.start, dtype=np.float64) / col_scale
                try:
                    grb.optimize()
                except gp.GurobiError as error:
                    if error.errno in _LICENCE_ERRORS:
                        raise SolverUnavailable(
                            f"Gurobi cannot solve this model ({model.num_cols:,} columns, {model.num_rows:,} rows): "
                            f"{error}; {LICENCE_HINT}") from None
                    return SolveResult(Status.ERROR, raw_status=f"error {error.errno}", backend=self.name,
                                       message=f"Gurobi failed: {error}", solve_seconds=time.perf_counter() - start)
                result = _read_result(grb, x, sides, constraints, model, row_scale, col_scale)
        if result.raw_status in _SETTLE:
            status, message = settle_infeasible_or_unbounded(self, model, options, time.perf_counter() - start)
            result = replace(result, status=status, message=message)
        result.solve_seconds = time.perf_counter() - start
        return result


def _one_sided_rows(model: LinearModel) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row index, sense, right-hand side) of each finite row side: equality rows once as "=",
    then every other finite upper side as "<" and lower side as ">"."""
    lo, hi = np.asarray(model.row_lo, dtype=np.float64), np.asarray(model.row_hi, dtype=np.float64)
    equal = lo == hi
    upper, lower = np.isfinite(hi) & ~equal, np.isfinite(lo) & ~equal
    rows = np.concatenate([np.flatnonzero(equal), np.flatnonzero(upper), np.flatnonzero(lower)])
    senses = np.repeat(np.array(["=", "<", ">"]), [equal.sum(), upper.sum(), lower.sum()])
    return rows, senses, np.concatenate([lo[equal], hi[upper], lo[lower]])


def _build(grb, model: LinearModel):
    """The columns (an MVar), the row of each one-sided constraint and the constraints (an MConstr)."""
    from gurobipy import GRB

    x = grb.addMVar(model.num_cols, lb=np.asarray(model.col_lo, dtype=np.float64),
                    ub=np.asarray(model.col_hi, dtype=np.float64), obj=np.asarray(model.c, dtype=np.float64),
                    vtype=np.where(np.asarray(model.integrality, dtype=bool), GRB.INTEGER, GRB.CONTINUOUS))
    rows, senses, rhs = _one_sided_rows(model)
    constraints = grb.addMConstr(model.matrix("csr")[rows], x, senses, rhs)
    grb.ModelSense = GRB.MAXIMIZE if model.sense == "max" else GRB.MINIMIZE
    grb.ObjCon = float(model.offset)
    return x, rows, constraints


def _set_parameters(grb, model: LinearModel, options: SolveOptions) -> None:
    """Translate :class:`SolveOptions` to Gurobi parameters; ``extra`` goes through verbatim."""
    import gurobipy as gp

    values = solver_parameters(model, options, ("TimeLimit", "MIPGap", "Threads", "Presolve"), 0,
                               {"Seed": int(options.seed)})
    for key, value in values.items():
        try:
            grb.setParam(key, value)
        except (gp.GurobiError, TypeError, ValueError) as error:
            raise ValueError(f"Gurobi rejected parameter {key}={value!r}: {error}") from None


def _read_result(grb, x, sides: np.ndarray, constraints, model: LinearModel, row_scale: np.ndarray,
                 col_scale: np.ndarray) -> SolveResult:
    """Map Gurobi's status, point, bound and duals to a :class:`SolveResult`, the point and the
    duals back in the model's own units."""
    from gurobipy import GRB

    names = {getattr(GRB.Status, n): n for n in dir(GRB.Status) if n.isupper()}
    name = names.get(grb.Status, str(grb.Status))
    result = SolveResult(status=Status.ERROR, raw_status=name, backend=GurobiBackend.name)
    has_point = grb.SolCount > 0
    if name == "OPTIMAL":
        result.status = Status.OPTIMAL
    elif name == "INFEASIBLE":
        result.status = Status.INFEASIBLE
    elif name in _LIMITS:
        result.stopped_by = _LIMITS[name]
        result.status = Status.FEASIBLE if has_point else Status.ERROR
    elif name == "SUBOPTIMAL" and has_point:
        result.status = Status.FEASIBLE
        result.message = "Gurobi could not reach its optimality tolerances; its best plan is kept"
    if not (result.status.has_solution and has_point):
        return result

    result.x = np.asarray(x.X, dtype=np.float64) * col_scale
    result.objective = float(grb.ObjVal)
    if model.is_mip:
        result.set_mip_bound(float(grb.ObjBound))
    elif result.status is Status.OPTIMAL:
        result.bound = result.objective
        result.duals = np.bincount(sides, weights=np.asarray(constraints.Pi, dtype=np.float64),
                                   minlength=model.num_rows) * row_scale
    return result

