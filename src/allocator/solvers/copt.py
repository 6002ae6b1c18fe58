"""COPT (Cardinal Optimizer) through coptpy: the whole model in one ``loadMatrix`` call.

Build: ``loadMatrix`` takes the costs, the CSC matrix, the row and column bounds and the
column types as arrays; COPT's rows are ranged, so each row goes in once as it is. Infinite
bounds become ``±COPT.INFINITY`` (1e30).

The model is scaled first, as for HiGHS (:func:`allocator.solvers.highs.equilibrate`, powers of
2, so exactly), and the point and duals are mapped back. Unscaled, money rows in yuan beside
0-1 choices let COPT end "optimal" short of the optimum: on the tiny preset (seed 0, 2016-2018)
its MIP at 53.36027 instead of 53.37345; scaled, it matches HiGHS.

Options: ``time_limit`` is ``TimeLimit``, ``mip_gap`` ``RelGap``, ``threads`` ``Threads``,
``presolve=False`` ``Presolve=0``; ``start`` is loaded as a MIP start; ``extra`` is passed
verbatim as COPT parameters. COPT has no seed parameter: ``seed`` is not passed. COPT's log
goes to a callback: shown with ``verbose``, its licence lines kept for the error message. No
progress is reported and :data:`~allocator.solvers.base.STOP_SOLVES` is not watched.

=========================  ===========================================================
COPT status                Status (stopped_by)
=========================  ===========================================================
OPTIMAL                    OPTIMAL (GAP when a MIP stopped at a relative gap > 1e-9)
INFEASIBLE                 INFEASIBLE
INF_OR_UNB, UNBOUNDED      settled by a zero-objective re-solve: UNBOUNDED or INFEASIBLE
TIMEOUT                    FEASIBLE if a plan was found, else ERROR (TIME_LIMIT)
NODELIMIT, ITERLIMIT,      FEASIBLE if a plan was found, else ERROR (OTHER_LIMIT)
INTERRUPTED
IMPRECISE                  FEASIBLE with the plan (tolerances not met; the message says so)
anything else              ERROR (NUMERICAL, UNFINISHED, or a COPT error during the solve,
                           whose message is kept)
=========================  ===========================================================

``raw_status`` is COPT's status name. The offset is COPT's objective constant, so
``objective`` and ``bound`` include it once. ``bound`` is ``BestBnd`` for a MIP, the objective
for an LP solved to optimality. Row duals (d objective / d row bound) for LPs solved to optimality.

Licence: without a licence file COPT runs "with size limitations for non-commercial use":
LPs of up to 10,000 variables and 10,000 constraints, MIPs of up to 2,000 of each. A model
above the limit raises :class:`~allocator.errors.SolverUnavailable` with COPT's own lines.
The environment (one per process) checks the licence when it opens and prints the check on
stdout from C; it is opened with stdout closed.
"""

from __future__ import annotations

import os
import sys
import threading
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
    stdout_closed,
)
from allocator.solvers.highs import equilibrate

_LIMITS = {
    "TIMEOUT": StoppedBy.TIME_LIMIT,
    "NODELIMIT": StoppedBy.OTHER_LIMIT,
    "ITERLIMIT": StoppedBy.OTHER_LIMIT,
    "INTERRUPTED": StoppedBy.OTHER_LIMIT,
}
_STATUSES = ("UNSTARTED", "OPTIMAL", "INFEASIBLE", "UNBOUNDED", "INF_OR_UNB", "NUMERICAL", "NODELIMIT",
             "IMPRECISE", "TIMEOUT", "UNFINISHED", "INTERRUPTED", "ITERLIMIT")  # COPT's names of its statuses
_SETTLE = frozenset({"INF_OR_UNB", "UNBOUNDED"})  # re-solved without the objective
_LICENCE_ERROR = 4  # CoptError.retcode of a licence failure, e.g. a model above the size limit
SIZE_LIMITS = "without a licence file COPT solves LPs of up to 10,000 and MIPs of up to 2,000 variables and constraints"
LICENCE_HINT = "install a COPT licence, or choose another backend (highs)"


class CoptBackend(Backend):
    """COPT (simplex, barrier, branch and cut) via coptpy, where licensed or small enough."""

    name = "copt"
    package = "coptpy"
    supports_duals = True

    def solve(self, model: LinearModel, options: SolveOptions) -> SolveResult:
        """Load the scaled model from arrays in one call, run COPT and map its status.

        Raises
        ------
        SolverUnavailable
            When COPT has no usable licence here, or the model is above its size limit.
        ValueError
            When COPT rejects a parameter in ``options.extra``.
        """
        import coptpy

        start = time.perf_counter()
        row_scale, col_scale = equilibrate(model)
        copt = _environment().createModel("allocator")
        log = _log_callback(options.verbose)
        copt.setParam("Logging", 0)  # quiet while the callback replaces the console
        copt.setLogCallback(log)
        copt.setParam("Logging", 1)
        _set_parameters(copt, model, options)
        _load(copt, model.scaled(row_scale, col_scale))
        if options.start is not None and model.is_mip:
            copt.setMipStart(copt.getVars(), (np.asarray(options.start, dtype=np.float64) / col_scale).tolist())
            copt.loadMipStart()
        try:
            copt.solve()
        except coptpy.CoptError as error:
            if error.retcode == _LICENCE_ERROR:
                said = "; ".join(log.licence) or f"{error.message} ({SIZE_LIMITS})"
                raise SolverUnavailable(f"COPT cannot solve this model ({model.num_cols:,} columns, "
                                        f"{model.num_rows:,} rows): {said}; {LICENCE_HINT}") from None
            return SolveResult(Status.ERROR, raw_status=f"error {error.retcode}", backend=self.name,
                               message=f"COPT failed: {error.message}", solve_seconds=time.perf_counter() - start)
        result = _read_result(copt, model, row_scale, col_scale)
        if result.raw_status in _SETTLE:
            status, message = settle_infeasible_or_unbounded(self, model, options, time.perf_counter() - start)
            result = replace(result, status=status, message=message)
        result.solve_seconds = time.perf_counter() - start
        return result


def _environment():
    """This process's COPT environment, opened once with stdout closed (its licence check prints)."""
    import coptpy

    with _ENVIRONMENT_LOCK:
        env = _ENVIRONMENTS.get(os.getpid())  # a forked worker opens its own
        if env is None:
            config = coptpy.EnvrConfig()
            config.set("nobanner", "1")
            try:
                with stdout_closed():
                    env = coptpy.Envr(config)
            except coptpy.CoptError as error:
                raise SolverUnavailable(f"COPT could not start: {error.message} ({SIZE_LIMITS}); "
                                        f"{LICENCE_HINT}") from None
            _ENVIRONMENTS[os.getpid()] = env
    return env


_ENVIRONMENTS: dict[int, object] = {}
_ENVIRONMENT_LOCK = threading.Lock()


def _log_callback(verbose: bool):
    """A COPT log callback that keeps the lines about the licence and its size limit, and shows
    every line on stdout when ``verbose``."""
    import coptpy

    class Log(coptpy.LogCallback):
        def __init__(self) -> None:
            super().__init__()
            self.licence: list[str] = []

        def Display(self, msg: str) -> None:  # COPT's name for the method it calls per line
            if "licen" in msg.lower() or "size limit" in msg.lower():
                self.licence.append(msg.strip().rstrip("."))
            if verbose:
                sys.stdout.write(msg + "\n")

    return Log()


def _set_parameters(copt, model: LinearModel, options: SolveOptions) -> None:
    """Translate :class:`SolveOptions` to COPT parameters; ``extra`` goes through verbatim."""
    import coptpy

    values = solver_parameters(model, options, ("TimeLimit", "RelGap", "Threads", "Presolve"), 0)
    for key, value in values.items():
        try:
            copt.setParam(key, value)
        except (coptpy.CoptError, AttributeError, TypeError, ValueError) as error:
            raise ValueError(f"COPT rejected parameter {key}={value!r}: {error}") from None


def _load(copt, model: LinearModel) -> None:
    """The model's arrays into COPT in one ``loadMatrix`` call, then its sense and offset."""
    from coptpy import COPT

    def bounded(values: np.ndarray) -> np.ndarray:
        return np.clip(np.asarray(values, dtype=np.float64), -COPT.INFINITY, COPT.INFINITY)

    kinds = np.where(np.asarray(model.integrality, dtype=bool), COPT.INTEGER, COPT.CONTINUOUS).tolist()
    copt.loadMatrix(np.asarray(model.c, dtype=np.float64), model.matrix("csc"), bounded(model.row_lo),
                    bounded(model.row_hi), bounded(model.col_lo), bounded(model.col_hi), kinds)
    copt.setObjSense(COPT.MAXIMIZE if model.sense == "max" else COPT.MINIMIZE)
    copt.setObjConst(float(model.offset))


def _read_result(copt, model: LinearModel, row_scale: np.ndarray, col_scale: np.ndarray) -> SolveResult:
    """Map COPT's status, point, bound and duals to a :class:`SolveResult`, the point and the
    duals back in the model's own units."""
    from coptpy import COPT

    names = {getattr(COPT, n): n for n in _STATUSES}
    name = names.get(copt.status, str(copt.status))
    result = SolveResult(status=Status.ERROR, raw_status=name, backend=CoptBackend.name)
    has_point = bool(copt.getAttr("HasMipSol" if model.is_mip else "HasLpSol"))
    if name == "OPTIMAL":
        result.status = Status.OPTIMAL
    elif name == "INFEASIBLE":
        result.status = Status.INFEASIBLE
    elif name in _LIMITS:
        result.stopped_by = _LIMITS[name]
        result.status = Status.FEASIBLE if has_point else Status.ERROR
    elif name == "IMPRECISE" and has_point:
        result.status = Status.FEASIBLE
        result.message = "COPT could not reach its tolerances; its best plan is kept"
    if not (result.status.has_solution and has_point):
        return result

    result.x = np.asarray(copt.getValues(), dtype=np.float64) * col_scale
    if model.is_mip:
        result.objective = float(copt.getAttr("BestObj"))
        result.set_mip_bound(float(copt.getAttr("BestBnd")))
    else:
        result.objective = float(copt.getAttr("LpObjVal"))
        if result.status is Status.OPTIMAL:
            result.bound = result.objective
            result.duals = np.asarray(copt.getDuals(), dtype=np.float64) * row_scale
    return result
