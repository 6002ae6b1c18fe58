"""HiGHS through highspy: the whole model in one ``passModel`` call, status read from the model.

``Highs.run()`` returns ``kOk`` even for an infeasible model, so the result is always
built from ``getModelStatus()`` and ``getInfo()``:

=========================  ===========================================================
HiGHS model status         Status (stopped_by)
=========================  ===========================================================
kOptimal                   OPTIMAL (GAP when a MIP stopped at a relative gap > 1e-9)
kInfeasible                INFEASIBLE
kUnbounded                 UNBOUNDED
kUnboundedOrInfeasible     settled by a zero-objective re-solve: UNBOUNDED or INFEASIBLE
kTimeLimit                 FEASIBLE if a primal feasible point exists, else ERROR
                           (TIME_LIMIT)
kIterationLimit,           FEASIBLE if a primal feasible point exists, else ERROR
kSolutionLimit,            (OTHER_LIMIT)
kObjectiveBound,
kObjectiveTarget,
kInterrupt, kHighsInterrupt
kUnknown                   FEASIBLE if a primal feasible point exists, else ERROR
kModelEmpty                OPTIMAL at the offset (no columns), INFEASIBLE if a row
                           excludes activity 0
anything else              ERROR (load, model, presolve, solve, postsolve or memory
                           failure)
=========================  ===========================================================

``raw_status`` is HiGHS' own text for the model status. The objective offset is passed
to HiGHS, so ``objective`` and ``bound`` both include it once. ``bound`` is the MIP dual
bound for a MIP, the objective for an LP solved to optimality, and ``None`` otherwise.
Row duals (d objective / d row bound, in the model's own sense) are returned for LPs
solved to optimality; a MIP has none.

HiGHS prints a two-line banner on stdout the first time a ``Highs`` object is created in
a process, whatever ``output_flag`` says.

The model is scaled before HiGHS sees it (:func:`equilibrate`): money rows in yuan beside
0-1 choices span a matrix range of 1e7 and bounds of 1e8, which HiGHS reports as badly scaled
(its interior point then ends "imprecise" and cleans up with simplex). Rows and continuous
columns are multiplied by powers of 2, so the scaling is exact, and the point, duals and
objective are mapped back: callers see the model they built.
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from allocator.model.linear import LinearModel
from allocator.solvers.base import (
    STOP_SOLVES,
    Backend,
    Conflict,
    SolveOptions,
    SolveResult,
    Status,
    StoppedBy,
    settle_infeasible_or_unbounded,
    solver_parameters,
    stdout_closed,
)

LP_METHODS = ("choose", "simplex", "ipm", "pdlp")

# HiGHS model status name -> why a run with or without a plan stopped early.
_LIMITS = {
    "kTimeLimit": StoppedBy.TIME_LIMIT,
    "kIterationLimit": StoppedBy.OTHER_LIMIT,
    "kSolutionLimit": StoppedBy.OTHER_LIMIT,
    "kObjectiveBound": StoppedBy.OTHER_LIMIT,
    "kObjectiveTarget": StoppedBy.OTHER_LIMIT,
    "kInterrupt": StoppedBy.OTHER_LIMIT,
    "kHighsInterrupt": StoppedBy.OTHER_LIMIT,
}
_FEASIBLE = 2  # HighsInfo.primal_solution_status / dual_solution_status: feasible point


class HighsBackend(Backend):
    """HiGHS (simplex, interior point, PDLP, branch-and-cut) via highspy."""

    name = "highs"
    package = "highspy"
    supports_duals = True
    supports_iis = True

    def iis(self, model: LinearModel, time_limit: float | None = None) -> Conflict:
        return highs_iis(model, time_limit)

    def solve(self, model: LinearModel, options: SolveOptions) -> SolveResult:
        """Pass ``model`` to HiGHS in one call, run it and map the model status.

        Raises
        ------
        ValueError
            When HiGHS rejects the model or an option in ``options.extra``.
        """
        import highspy

        start = time.perf_counter()
        silence_banner()
        h = highspy.Highs()
        _set_options(h, model, options)
        if options.progress is not None and model.is_mip:
            _report_progress(h, options.progress)
        row_scale, col_scale = equilibrate(model)
        if h.passModel(to_highs_lp(model, row_scale, col_scale)) == highspy.HighsStatus.kError:
            raise ValueError("HiGHS rejected the model (see its log with verbose=True)")
        if options.start is not None and model.is_mip:
            start_point = highspy.HighsSolution()
            start_point.col_value = np.asarray(options.start, dtype=np.float64) / col_scale
            start_point.value_valid = True
            h.setSolution(start_point)
        if options.threads is not None:
            # The thread pool belongs to the calling thread and keeps its first size;
            # rebuild it so this run gets the requested number of threads.
            highspy.Highs.resetThreadScheduler(True)
        h.run()
        result = _read_result(h, model, row_scale, col_scale)
        if h.getModelStatus() == highspy.HighsModelStatus.kUnboundedOrInfeasible:
            elapsed = time.perf_counter() - start
            status, message = settle_infeasible_or_unbounded(self, model, options, elapsed)
            result = replace(result, status=status, message=message)
        result.solve_seconds = time.perf_counter() - start
        return result


PROGRESS_EVERY = 2.0  # seconds between progress reports during branch and bound


def _report_progress(h, report) -> None:
    """Report incumbent, bound and gap during branch and bound, at most every PROGRESS_EVERY s;
    stop the solve (with its best point) once STOP_SOLVES is set."""
    last = [-np.inf]

    def finite(value: float) -> float | None:
        return float(value) if np.isfinite(value) else None

    def on_event(event) -> None:
        if STOP_SOLVES.is_set():
            event.data_in.user_interrupt = True
        data = event.data_out
        if data.running_time - last[0] < PROGRESS_EVERY:
            return
        last[0] = data.running_time
        report("branch and bound", incumbent=finite(data.mip_primal_bound), bound=finite(data.mip_dual_bound),
               gap=finite(data.mip_gap), seconds=float(data.running_time))

    h.cbMipInterrupt.subscribe(on_event)


def silence_banner() -> None:
    """Create the process's first Highs object with stdout closed, so its banner does not
    mix with a command's output."""
    global _BANNER_SILENCED
    if _BANNER_SILENCED:
        return
    import highspy

    _BANNER_SILENCED = True
    with stdout_closed():
        highspy.Highs()


_BANNER_SILENCED = False


def highs_lp_solve(
    model: LinearModel, options: SolveOptions | None = None, method: str = "choose"
) -> SolveResult:
    """Solve the LP relaxation of ``model`` with a chosen HiGHS LP algorithm.

    Integrality is dropped. ``method`` is HiGHS' ``solver`` option: ``"simplex"`` gives a
    vertex and exact duals, ``"ipm"`` (interior point, with crossover to a vertex unless
    ``options.extra`` turns ``run_crossover`` off) suits large sparse LPs, ``"pdlp"``
    (first-order) returns an approximate, possibly slightly infeasible point.
    """
    if method not in LP_METHODS:
        raise ValueError(f"method must be one of {', '.join(LP_METHODS)} (got {method!r})")
    options = options or SolveOptions()
    crossover = {"run_crossover": "on"} if method == "ipm" else {}
    extra = {**crossover, **options.extra, "solver": method}
    return HighsBackend().solve(model.relaxed(), replace(options, extra=extra))


def _set_options(h, model: LinearModel, options: SolveOptions) -> None:
    """Translate :class:`SolveOptions` to HiGHS options; ``extra`` goes through verbatim."""
    import highspy

    values = solver_parameters(model, options, ("time_limit", "mip_rel_gap", "threads", "presolve"), "off",
                               {"output_flag": options.verbose, "random_seed": options.seed})
    for key, value in values.items():
        if h.setOptionValue(key, value) == highspy.HighsStatus.kError:
            raise ValueError(f"HiGHS rejected option {key}={value!r}")


SCALE_PASSES = 4  # geometric scaling passes; measured on the README default's LP (benchmarks/README.md)
SCALE_LIMIT = 30  # no row or column is scaled by more than 2^30 either way


def equilibrate(model: LinearModel, passes: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Row and column factors, powers of 2, that bring each row's and each continuous column's
    entries around 1 (geometric scaling: the factor is 1 / sqrt(largest x smallest entry),
    rows then columns, ``passes`` times, default :data:`SCALE_PASSES`; 0 = no scaling).
    Integer columns keep factor 1, so a 0-1 choice stays one; empty rows and columns too."""
    passes = SCALE_PASSES if passes is None else passes
    rows, cols = np.zeros(model.num_rows), np.zeros(model.num_cols)
    if model.A.nnz == 0 or passes <= 0:
        return np.ones(model.num_rows), np.ones(model.num_cols)
    by_row, by_col = model.matrix("csr"), model.matrix("csc")

    def log_size(data: np.ndarray) -> np.ndarray:
        size = np.abs(data)
        return np.where(size > 0, np.log2(np.where(size > 0, size, 1.0)), np.nan)  # explicit zeros ignored

    def centre(values: np.ndarray, indptr: np.ndarray) -> np.ndarray:
        """-(max + min) / 2 of each segment's finite values; 0 for an empty segment."""
        starts = np.minimum(indptr[:-1], len(values) - 1)
        high, low = np.fmax.reduceat(values, starts), np.fmin.reduceat(values, starts)
        mid = np.where(np.diff(indptr) > 0, -(high + low) / 2, 0.0)
        return np.nan_to_num(mid, nan=0.0)

    row_logs, col_logs = log_size(by_row.data), log_size(by_col.data)
    scalable = ~np.asarray(model.integrality, dtype=bool)
    for _ in range(passes):
        rows = np.clip(centre(row_logs + cols[by_row.indices], by_row.indptr), -SCALE_LIMIT, SCALE_LIMIT)
        cols = np.where(scalable, np.clip(centre(col_logs + rows[by_col.indices], by_col.indptr),
                                          -SCALE_LIMIT, SCALE_LIMIT), 0.0)
    rows, cols = np.exp2(np.round(rows)), np.exp2(np.round(cols))
    if not _representable(model, rows, cols):
        return np.ones(model.num_rows), np.ones(model.num_cols)
    return rows, cols


def _representable(model: LinearModel, rows: np.ndarray, cols: np.ndarray) -> bool:
    """Whether every scaled finite bound, cost and entry stays finite to HiGHS (below its 1e20
    "infinite" and its 1e15 largest matrix value): scaling must never turn a rule into none."""
    def fits(values: np.ndarray, scaled: np.ndarray, limit: float) -> bool:
        finite = np.isfinite(values)
        return bool(np.all(np.abs(scaled[finite]) < limit))

    entries = model.matrix("csr")
    scaled = entries.data * rows[np.repeat(np.arange(model.num_rows), np.diff(entries.indptr))] * cols[entries.indices]
    return (fits(model.row_lo, model.row_lo * rows, 1e19) and fits(model.row_hi, model.row_hi * rows, 1e19)
            and fits(model.col_lo, model.col_lo / cols, 1e19) and fits(model.col_hi, model.col_hi / cols, 1e19)
            and fits(model.c, model.c * cols, 1e19) and fits(entries.data, scaled, 1e14))


def to_highs_lp(model: LinearModel, row_scale: np.ndarray | None = None, col_scale: np.ndarray | None = None):
    """Build a ``HighsLp`` from the model's arrays (column-wise matrix, offset included),
    rows and columns multiplied by ``row_scale`` and ``col_scale`` (default: unscaled)."""
    import highspy

    rows = np.ones(model.num_rows) if row_scale is None else row_scale
    cols = np.ones(model.num_cols) if col_scale is None else col_scale
    A = model.matrix("csc")
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = model.num_cols, model.num_rows
    lp.col_cost_ = np.asarray(model.c, dtype=np.float64) * cols
    lp.col_lower_ = np.asarray(model.col_lo, dtype=np.float64) / cols
    lp.col_upper_ = np.asarray(model.col_hi, dtype=np.float64) / cols
    lp.row_lower_ = np.asarray(model.row_lo, dtype=np.float64) * rows
    lp.row_upper_ = np.asarray(model.row_hi, dtype=np.float64) * rows
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.num_col_, lp.a_matrix_.num_row_ = model.num_cols, model.num_rows
    lp.a_matrix_.start_ = A.indptr
    lp.a_matrix_.index_ = A.indices
    lp.a_matrix_.value_ = A.data * rows[A.indices] * np.repeat(cols, np.diff(A.indptr))
    lp.sense_ = highspy.ObjSense.kMaximize if model.sense == "max" else highspy.ObjSense.kMinimize
    lp.offset_ = float(model.offset)
    if model.is_mip:
        kinds = np.array([highspy.HighsVarType.kContinuous, highspy.HighsVarType.kInteger])
        lp.integrality_ = kinds[np.asarray(model.integrality, dtype=bool).astype(np.intp)].tolist()
    return lp


def _read_result(h, model: LinearModel, row_scale: np.ndarray, col_scale: np.ndarray) -> SolveResult:
    """Map HiGHS' model status, info and solution to a :class:`SolveResult`, the point and the
    duals back in the model's own units."""
    import highspy

    model_status = h.getModelStatus()
    info = h.getInfo()
    has_point = info.primal_solution_status == _FEASIBLE
    result = SolveResult(
        status=Status.ERROR, raw_status=h.modelStatusToString(model_status),
        backend=HighsBackend.name,
    )
    if model_status == highspy.HighsModelStatus.kModelEmpty:
        return _empty_model_result(model, result)
    if model_status == highspy.HighsModelStatus.kInfeasible:
        result.status = Status.INFEASIBLE
        return result
    if model_status == highspy.HighsModelStatus.kUnbounded:
        result.status = Status.UNBOUNDED
        return result
    if model_status == highspy.HighsModelStatus.kOptimal:
        result.status = Status.OPTIMAL
    elif model_status.name in _LIMITS or model_status == highspy.HighsModelStatus.kUnknown:
        result.stopped_by = _LIMITS.get(model_status.name)
        result.status = Status.FEASIBLE if has_point else Status.ERROR
    if not result.status.has_solution:
        return result

    solution = h.getSolution()
    result.x = np.asarray(solution.col_value, dtype=np.float64) * col_scale
    result.objective = float(info.objective_function_value)
    if model.is_mip:
        result.set_mip_bound(float(info.mip_dual_bound))
    elif result.status is Status.OPTIMAL:
        result.bound = result.objective
        if info.dual_solution_status == _FEASIBLE:
            result.duals = np.asarray(solution.row_dual, dtype=np.float64) * row_scale
    return result


def _empty_model_result(model: LinearModel, result: SolveResult) -> SolveResult:
    """A model without columns: optimal at the offset if every row admits activity 0."""
    x = np.zeros(0)
    if model.max_violation(x) > 0:
        result.status = Status.INFEASIBLE
        return result
    result.status, result.x = Status.OPTIMAL, x
    result.objective = result.bound = float(model.offset)
    return result


_IIS_SIDES = {1: "free", 2: "lower", 3: "upper", 4: "boxed"}


def highs_iis(model: LinearModel, time_limit: float | None = None) -> Conflict:
    """An IIS of the LP relaxation of ``model`` (HiGHS ``getIis``, irreducible strategy); an
    empty one when the relaxation is feasible, the search ran out of time, or HiGHS found none.

    An IIS is a smallest-by-inclusion set of rules that cannot hold together: drop any one
    of them and the rest can."""
    import highspy

    silence_banner()
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("iis_strategy", int(highspy._core.IisStrategy.kIisStrategyIrreducible))
    if time_limit is not None:
        h.setOptionValue("time_limit", float(time_limit))
    h.passModel(to_highs_lp(model.relaxed()))
    h.run()
    lp_status = h.modelStatusToString(h.getModelStatus())
    none = Conflict(np.zeros(0, dtype=np.int64), [], np.zeros(0, dtype=np.int64), [], lp_status)
    if h.getModelStatus() not in (highspy.HighsModelStatus.kInfeasible,
                                  highspy.HighsModelStatus.kUnboundedOrInfeasible):
        return none
    status, iis = h.getIis()
    if status != highspy.HighsStatus.kOk or not iis.valid_:
        return none
    return Conflict(np.asarray(iis.row_index_, dtype=np.int64), [_IIS_SIDES.get(b, "boxed") for b in iis.row_bound_],
                    np.asarray(iis.col_index_, dtype=np.int64), [_IIS_SIDES.get(b, "boxed") for b in iis.col_bound_],
                    lp_status)
