"""Solve methods: how a Formulation becomes a plan, with an honest bound.

- ``exact``: branch and bound on the whole MIP (audit mode, small instances);
- ``lp-fix``: the LP relaxation gives the bound; every household and project whose LP
  values are integral is fixed and a MIP decides the fractional rest
  (relaxation-induced fix-and-resolve). If that restricted MIP has no plan (possible with
  a hard deadline or tight share rules), the whole MIP is solved in the time left.

Both report the bound on the objective (expected exits minus the shortfall penalty) that
the solver proved: the MIP dual bound, or the LP relaxation's optimum.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import numpy as np

from allocator.model.formulation import Formulation
from allocator.solvers import get_backend
from allocator.solvers.base import SolveOptions, SolveResult, Status, StoppedBy, relative_gap

INTEGRAL_TOL = 1e-6
Progress = Callable[..., None]


@dataclasses.dataclass
class Outcome:
    """A finished solve: the final backend result, the proven bound and what happened."""

    result: SolveResult
    bound: float | None
    phases: dict[str, float]
    notes: list[str]


def _remaining(options: SolveOptions, started: float) -> float | None:
    if options.time_limit is None:
        return None
    return max(options.time_limit - (time.perf_counter() - started), 1.0)


def solve_exact(fm: Formulation, backend: str, options: SolveOptions, progress: Progress) -> Outcome:
    """Branch and bound on the whole MIP."""
    progress("branch and bound", columns=fm.model.num_cols, rows=fm.model.num_rows)
    result = get_backend(backend).solve(fm.model, options)
    return Outcome(result, result.bound, {"mip": round(result.solve_seconds, 4)}, [])


def free_columns(fm: Formulation, x_lp: np.ndarray) -> np.ndarray:
    """Integer columns left free after the LP: all columns of households and projects with
    any fractional LP value, and the projects those households could need."""
    model = fm.model
    frac = model.integrality & (np.abs(x_lp - np.round(x_lp)) > INTEGRAL_TOL)
    p = fm.problem
    free_hh = np.zeros(len(p.household_ids), dtype=bool)
    free_hh[fm.x_household[frac[fm.x_cols]]] = True
    free = np.zeros(model.num_cols, dtype=bool)
    free[fm.x_cols] = free_hh[fm.x_household]
    free_proj = np.zeros(len(p.proj_ids), dtype=bool)
    free_proj[fm.y_proj[frac[fm.y_cols]]] = True
    free_pkgs = np.unique(fm.x_pkg[free[fm.x_cols]])
    counts = np.diff(p.pkg_req_ptr)[free_pkgs]
    starts = p.pkg_req_ptr[free_pkgs]
    idx = np.repeat(starts, counts) + (np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts))
    free_proj[p.pkg_req_project[idx]] = True
    free[fm.y_cols] = free_proj[fm.y_proj]
    return free


def solve_lp_fix(fm: Formulation, backend: str, options: SolveOptions, progress: Progress) -> Outcome:
    """LP relaxation for the bound, then a MIP over the columns the LP left fractional."""
    started = time.perf_counter()
    solver = get_backend(backend)
    model = fm.model
    progress("LP relaxation", columns=model.num_cols, rows=model.num_rows)
    lp = solver.solve(model.relaxed(), dataclasses.replace(options, mip_gap=None, progress=None,
                                                          extra={"solver": "ipm", **options.extra}
                                                          if backend == "highs" else options.extra))
    phases = {"lp": round(lp.solve_seconds, 4)}
    if lp.status != Status.OPTIMAL:
        return Outcome(lp, None, phases, [f"LP relaxation ended {lp.status.value}"])
    free = free_columns(fm, lp.x)
    fixed = model.integrality & ~free
    n_free = len(np.unique(fm.x_household[free[fm.x_cols]]))
    progress("LP done", bound=lp.objective, seconds=lp.solve_seconds, fractional_households=n_free)
    lo, hi = model.col_lo.copy(), model.col_hi.copy()
    lo[fixed] = hi[fixed] = np.round(lp.x[fixed])
    progress("MIP over the fractional rest", free_columns=int(free.sum()))
    sub = solver.solve(model.with_bounds(lo, hi), dataclasses.replace(options, time_limit=_remaining(options, started)))
    phases["restricted_mip"] = round(sub.solve_seconds, 4)
    notes = [f"{n_free} households fractional in the LP relaxation; the rest fixed at their LP values"]
    bound = lp.objective
    if not sub.status.has_solution:
        progress("restricted MIP has no plan; solving the whole MIP", status=sub.status.value)
        sub = solver.solve(model, dataclasses.replace(options, time_limit=_remaining(options, started)))
        phases["full_mip"] = round(sub.solve_seconds, 4)
        notes.append("the restricted MIP had no plan: the whole MIP was solved instead")
        if sub.bound is not None:
            bound = min(bound, sub.bound)
    return Outcome(sub, bound, phases, notes)


METHODS = {"exact": solve_exact, "lp-fix": solve_lp_fix}


def final_status(outcome: Outcome, objective: float | None, exits: float | None,
                 mip_gap: float | None) -> tuple[Status, StoppedBy | None, float | None]:
    """Status, why it stopped, and the gap: optimal only when the gap to the proven bound,
    measured in expected exits, is within ``mip_gap``."""
    result = outcome.result
    if not result.status.has_solution or objective is None:
        return result.status, None, None
    gap = exits_gap(objective, outcome.bound, exits)
    if gap is not None and gap <= (mip_gap or 0.0) + 1e-12:
        return Status.OPTIMAL, (StoppedBy.GAP if gap > 1e-9 else None), gap
    if result.stopped_by in (StoppedBy.TIME_LIMIT, StoppedBy.OTHER_LIMIT):
        return Status.FEASIBLE, result.stopped_by, gap
    return Status.FEASIBLE, None, gap


def exits_gap(objective: float, bound: float | None, exits: float | None) -> float | None:
    """(bound - objective) / max(exits, 1): the gap in expected exits (0 when proven)."""
    if bound is None or exits is None:
        return None
    return max(bound - objective, 0.0) / max(abs(exits), 1.0)


__all__ = ["METHODS", "Outcome", "final_status", "relative_gap"]
