"""PuLP with its bundled CBC: object-per-variable, the slow reference backend.

Build: one ``LpVariable`` per column (``prob.add_variable``), one ``LpConstraint`` per
finite row side from the CSR rows (an ``LpAffineExpression`` built from (variable,
coefficient) pairs; a ranged row becomes two constraints sharing the expression). Every
column enters the objective, even with a zero cost, so CBC returns a value for it.

PuLP reports "Optimal" for a run stopped by a time limit with a plan, so the status is
read from ``prob.sol_status`` and CBC's own "Result -" line in its log:

======================================  ==============================================
PuLP sol_status (CBC result line)       Status (stopped_by)
======================================  ==============================================
LpSolutionOptimal                       OPTIMAL (GAP when CBC stopped "within gap
                                        tolerance" at a gap > 1e-9)
LpSolutionIntegerFeasible               FEASIBLE (TIME_LIMIT when CBC "Stopped on
                                        time", else OTHER_LIMIT)
LpSolutionInfeasible                    INFEASIBLE
LpSolutionUnbounded                     UNBOUNDED
LpSolutionNoSolutionFound               ERROR (TIME_LIMIT when CBC "Stopped on time")
======================================  ==============================================

``raw_status`` is "<LpStatus> / <LpSolution>" with CBC's result line. ``objective`` is
``c @ x + offset`` from the returned point. ``bound``: PuLP does not return CBC's best
bound, so it is read from CBC's log ("Upper bound" when maximising, "Lower bound" when
minimising), accepted only when CBC's printed objective matches ``c @ x`` and the bound
lies on the right side, and widened by half a unit of its last printed decimal so the
rounding cannot make it dishonest; a proven optimum (LP, or CBC's plain "Optimal
solution found") has bound = objective; otherwise ``bound`` is ``None``. No duals.
``options.seed`` is not passed (CBC's seed 0 means "time of day"); CBC's fixed default
keeps runs repeatable. ``PULP_CBC_CMD`` is deprecated for PuLP 4.0 (which drops the
bundled binary); its deprecation warning is silenced here.
"""

from __future__ import annotations

import math
import re
import sys
import tempfile
import time
import warnings
from decimal import Decimal
from pathlib import Path

import numpy as np

from allocator.model.linear import LinearModel
from allocator.solvers.base import Backend, SolveOptions, SolveResult, Status, StoppedBy

_RESULT = re.compile(r"^Result - (.+?)\s*$", re.MULTILINE)
_OBJECTIVE = re.compile(r"^Objective value:\s+(\S+)\s*$", re.MULTILINE)
_BOUND = re.compile(r"^(Lower|Upper) bound:\s+(\S+)\s*$", re.MULTILINE)
_MATCH_TOL = 1e-6  # relative agreement needed between CBC's objective and c @ x


class PulpBackend(Backend):
    """PuLP modelling with the CBC binary bundled in the PuLP wheel."""

    name = "pulp"
    package = "pulp"

    def solve(self, model: LinearModel, options: SolveOptions) -> SolveResult:
        """Build the PuLP problem row by row, run CBC and map its status."""
        import pulp

        start = time.perf_counter()
        prob, cols = _to_pulp(model)
        with tempfile.TemporaryDirectory(prefix="allocator-cbc-") as tmp:
            log_path = Path(tmp) / "cbc.log"
            prob.solve(_cbc(options, log_path))
            log = log_path.read_text(errors="replace")
        if options.verbose:
            sys.stdout.write(log)

        found = _RESULT.search(log)
        result_line = found[1] if found else ""
        raw = f"{pulp.LpStatus[prob.status]} / {pulp.LpSolution[prob.sol_status]}"
        result = SolveResult(
            status=Status.ERROR, raw_status=f"{raw} (cbc: {result_line})" if result_line else raw,
            backend=self.name,
        )
        on_time = result_line.startswith("Stopped on time")
        if prob.sol_status == pulp.LpSolutionOptimal:
            result.status = Status.OPTIMAL
        elif prob.sol_status == pulp.LpSolutionIntegerFeasible:
            result.status = Status.FEASIBLE
            result.stopped_by = StoppedBy.TIME_LIMIT if on_time else StoppedBy.OTHER_LIMIT
        elif prob.sol_status == pulp.LpSolutionInfeasible:
            result.status = Status.INFEASIBLE
        elif prob.sol_status == pulp.LpSolutionUnbounded:
            result.status = Status.UNBOUNDED
        elif on_time:
            result.stopped_by = StoppedBy.TIME_LIMIT

        if result.status.has_solution:
            result.x = np.array([v.varValue for v in cols], dtype=np.float64)
            result.objective = model.objective_value(result.x)
            proven = not model.is_mip or result_line == "Optimal solution found"
            if result.status is Status.OPTIMAL and proven:
                result.bound = result.objective
            elif model.is_mip:
                result.bound = _bound_from_log(log, model, result.objective)
            result.note_gap_stop()
        result.solve_seconds = time.perf_counter() - start
        return result


def _to_pulp(model: LinearModel):
    """The PuLP problem and its variables (column order), one object per column and row side."""
    import pulp

    prob = pulp.LpProblem("allocator", pulp.LpMaximize if model.sense == "max" else pulp.LpMinimize)
    lo = [v if math.isfinite(v) else None for v in np.asarray(model.col_lo, dtype=float).tolist()]
    hi = [v if math.isfinite(v) else None for v in np.asarray(model.col_hi, dtype=float).tolist()]
    cat = [pulp.LpInteger if i else pulp.LpContinuous for i in np.asarray(model.integrality, bool).tolist()]
    cols = [prob.add_variable(f"x{j}", lo[j], hi[j], cat[j]) for j in range(model.num_cols)]
    prob.setObjective(pulp.LpAffineExpression(
        zip(cols, np.asarray(model.c, dtype=float).tolist(), strict=True), constant=float(model.offset)
    ))

    A = model.matrix("csr")
    indptr, indices, data = A.indptr.tolist(), A.indices.tolist(), A.data.tolist()
    row_lo = np.asarray(model.row_lo, dtype=float).tolist()
    row_hi = np.asarray(model.row_hi, dtype=float).tolist()
    for i in range(model.num_rows):
        s, e = indptr[i], indptr[i + 1]
        expr = pulp.LpAffineExpression(zip([cols[k] for k in indices[s:e]], data[s:e], strict=True))
        if row_lo[i] == row_hi[i]:
            prob.addConstraint(pulp.LpConstraint(expr, pulp.LpConstraintEQ, f"r{i}", row_lo[i]))
            continue
        if math.isfinite(row_lo[i]):
            prob.addConstraint(pulp.LpConstraint(expr, pulp.LpConstraintGE, f"r{i}_lo", row_lo[i]))
        if math.isfinite(row_hi[i]):
            prob.addConstraint(pulp.LpConstraint(expr, pulp.LpConstraintLE, f"r{i}_hi", row_hi[i]))
    return prob, cols


def _cbc(options: SolveOptions, log_path: Path):
    """The bundled-CBC command for the typed options (its log goes to ``log_path``)."""
    import pulp

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return pulp.PULP_CBC_CMD(
            msg=False, timeLimit=options.time_limit, gapRel=options.mip_gap,
            threads=options.threads, logPath=str(log_path),
        )


def _bound_from_log(log: str, model: LinearModel, objective: float) -> float | None:
    """CBC's best bound from its log, in the model's terms; ``None`` unless it checks out."""
    obj_match, bound_match = _OBJECTIVE.search(log), _BOUND.search(log)
    if obj_match is None or bound_match is None:
        return None
    kind, text = bound_match.groups()
    cbc_objective, cbc_bound = float(obj_match[1]), float(text)
    maximise = model.sense == "max"
    if kind != ("Upper" if maximise else "Lower"):
        return None
    if abs(cbc_objective - (objective - model.offset)) > _MATCH_TOL * max(1.0, abs(cbc_objective)):
        return None
    rounding = 0.5 * 10.0 ** Decimal(text).as_tuple().exponent  # half a unit of the last digit
    distance = (cbc_bound - cbc_objective) if maximise else (cbc_objective - cbc_bound)
    if distance < -rounding:
        return None  # the "bound" cuts off the plan CBC returned
    distance = max(distance, 0.0) + rounding
    return objective + distance if maximise else objective - distance
