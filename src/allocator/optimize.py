"""The pipeline: load → check → build → solve → plan, each step public.

Methods:

- ``exact``: the whole MIP by the backend's branch and bound (audit mode, small instances);
- ``lp-fix``: LP relaxation (the honest bound), then households and projects whose LP
  values are integral are fixed and a small MIP decides the fractional rest
  (relaxation-induced fix-and-resolve). The gap is always measured against the LP bound;
- ``auto``: ``exact`` up to ``EXACT_MAX_HOUSEHOLDS`` registered poor households, else ``lp-fix``.
"""

from __future__ import annotations

import dataclasses
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from allocator import __version__
from allocator.model.formulation import Formulation, formulate
from allocator.model.problem import Problem, build_problem
from allocator.plan import Plan, make_plan
from allocator.scenario import Scenario, SolverSettings, file_sha256
from allocator.solvers import get_backend
from allocator.solvers.base import SolveOptions, SolveResult, Status, StoppedBy, relative_gap
from allocator.tables import read_tables, table_path

EXACT_MAX_HOUSEHOLDS = 1500
INTEGRAL_TOL = 1e-6

Progress = Callable[..., None]


def _quiet(phase: str, **info) -> None:
    """Default progress sink: say nothing."""


def load_tables(scenario: Scenario) -> dict[str, pd.DataFrame]:
    """The scenario's contract tables: read from its data folder or generated from its preset."""
    if scenario.generate is not None:
        from allocator.synth import generate_preset

        overrides = {k: v for k, v in scenario.generate.model_dump().items()
                     if k not in ("preset", "seed") and v is not None}
        return generate_preset(scenario.generate.preset, seed=scenario.generate.seed,
                               start_year=scenario.start_year, deadline_year=scenario.deadline_year, **overrides)
    return read_tables(scenario.data_dir())


def input_hashes(scenario: Scenario) -> dict[str, str]:
    """SHA-256 of the scenario file and every input table file, for the run manifest."""
    hashes = {}
    if scenario.source is not None:
        hashes[scenario.source.name] = file_sha256(scenario.source)
    folder = scenario.data_dir()
    if folder is not None:
        for name in ("regions", "villages", "households", "packages", "projects", "funds", "personnel"):
            path = table_path(Path(folder), name)
            if path is not None:
                hashes[path.name] = file_sha256(path)
    return hashes


def options_from(settings: SolverSettings, time_limit: float | None = None) -> SolveOptions:
    """Backend options from the scenario's solver settings."""
    return SolveOptions(time_limit=time_limit if time_limit is not None else settings.time_limit,
                        mip_gap=settings.mip_gap, threads=settings.threads, seed=settings.seed,
                        verbose=settings.verbose)


def choose_method(problem: Problem, settings: SolverSettings) -> str:
    """``exact`` for small problems, ``lp-fix`` above EXACT_MAX_HOUSEHOLDS."""
    if settings.method != "auto":
        return settings.method
    return "exact" if len(problem.household_ids) <= EXACT_MAX_HOUSEHOLDS else "lp-fix"


@dataclasses.dataclass
class MethodResult:
    """What a method returns: the backend result of the final solve, with the honest bound."""

    result: SolveResult
    bound: float | None
    phases: dict[str, float]
    note: str = ""


def _remaining(options: SolveOptions, started: float) -> float | None:
    if options.time_limit is None:
        return None
    return max(options.time_limit - (time.perf_counter() - started), 1.0)


def solve_exact(fm: Formulation, backend_name: str, options: SolveOptions, progress: Progress) -> MethodResult:
    """Branch and bound on the whole MIP."""
    progress("solve MIP", columns=fm.model.num_cols, rows=fm.model.num_rows)
    result = get_backend(backend_name).solve(fm.model, options)
    progress("MIP done", status=result.status.value, incumbent=result.objective, bound=result.bound,
             gap=result.gap, seconds=result.solve_seconds)
    return MethodResult(result, result.bound, {"mip": result.solve_seconds})


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


def solve_lp_fix(fm: Formulation, backend_name: str, options: SolveOptions, progress: Progress) -> MethodResult:
    """LP relaxation for the bound, then a MIP over the columns the LP left fractional."""
    started = time.perf_counter()
    backend = get_backend(backend_name)
    model = fm.model
    progress("solve LP relaxation", columns=model.num_cols, rows=model.num_rows)
    lp = backend.solve(model.relaxed(), dataclasses.replace(options, mip_gap=None))
    phases = {"lp": lp.solve_seconds}
    if lp.status != Status.OPTIMAL:
        progress("LP done", status=lp.status.value, seconds=lp.solve_seconds)
        return MethodResult(lp, None, phases, note=f"LP relaxation ended {lp.status.value}")
    bound = lp.objective
    x_lp = lp.x
    free = free_columns(fm, x_lp)
    fixed = model.integrality & ~free
    progress("LP done", bound=bound, seconds=lp.solve_seconds,
             fractional_households=int(len(np.unique(fm.x_household[free[fm.x_cols]]))))
    lo, hi = model.col_lo.copy(), model.col_hi.copy()
    lo[fixed] = hi[fixed] = np.round(x_lp[fixed])
    sub_options = dataclasses.replace(options, time_limit=_remaining(options, started))
    progress("solve restricted MIP", free_columns=int(free.sum()))
    sub = backend.solve(model.with_bounds(lo, hi), sub_options)
    phases["restricted_mip"] = sub.solve_seconds
    note = f"{int(free.sum())} integer columns left free after the LP"
    if not sub.status.has_solution:
        progress("restricted MIP found no plan; solving the full MIP", status=sub.status.value)
        sub = backend.solve(model, dataclasses.replace(options, time_limit=_remaining(options, started)))
        phases["full_mip"] = sub.solve_seconds
        note += "; restricted MIP had no plan, full MIP solved instead"
        bound = min(bound, sub.bound) if sub.bound is not None else bound
    progress("MIP done", status=sub.status.value, incumbent=sub.objective, bound=bound,
             gap=relative_gap(sub.objective, bound))
    return MethodResult(sub, bound, phases, note)


METHODS = {"exact": solve_exact, "lp-fix": solve_lp_fix}


def final_status(method: MethodResult, objective: float | None, mip_gap: float | None) -> tuple[Status, StoppedBy | None]:
    """Status of the whole run: optimal only when the gap to the honest bound is proven small."""
    result = method.result
    if not result.status.has_solution:
        return result.status, None
    gap = relative_gap(objective, method.bound)
    target = mip_gap or 0.0
    if gap is not None and gap <= target + 1e-12:
        return Status.OPTIMAL, (StoppedBy.GAP if gap > 1e-9 else None)
    if result.stopped_by in (StoppedBy.TIME_LIMIT, StoppedBy.OTHER_LIMIT):
        return Status.FEASIBLE, result.stopped_by
    return Status.FEASIBLE, None


def solve_problem(problem: Problem, settings: SolverSettings, *, progress: Progress = _quiet,
                  manifest: dict | None = None) -> Plan:
    """Formulate, solve with the chosen method and backend, and return the Plan."""
    started = time.perf_counter()
    progress("build model", **problem.sizes())
    fm = formulate(problem)
    build_seconds = time.perf_counter() - started
    progress("model built", columns=fm.model.num_cols, rows=fm.model.num_rows, nonzeros=fm.model.A.nnz,
             seconds=build_seconds)
    method_name = choose_method(problem, settings)
    options = options_from(settings)
    backend = get_backend(settings.backend)
    solve_started = time.perf_counter()
    method = METHODS[method_name](fm, settings.backend, options, progress)
    solve_seconds = time.perf_counter() - solve_started
    x = method.result.x if method.result.status.has_solution else None
    summary = {
        "scenario": problem.name,
        "status": None, "stopped_by": None,
        "backend": settings.backend, "method": method_name,
        "start_year": problem.start_year, "deadline_year": problem.deadline_year,
        "bound": method.bound, "gap": None,
        "build_seconds": round(build_seconds, 4), "solve_seconds": round(solve_seconds, 4),
        "phase_seconds": {k: round(v, 4) for k, v in method.phases.items()},
        "raw_status": method.result.raw_status,
        "message": "; ".join(m for m in (method.note, method.result.message) if m),
        "shortfall_penalty": fm.penalty,
    }
    plan = make_plan(fm, x, summary)
    status, stopped_by = final_status(method, plan.summary.get("objective"), options.mip_gap)
    plan.summary["status"] = status.value
    plan.summary["stopped_by"] = stopped_by.value if stopped_by else None
    plan.summary["gap"] = relative_gap(plan.summary.get("objective"), method.bound)
    if status == Status.INFEASIBLE:
        plan.summary["message"] = "; ".join(filter(None, [plan.summary["message"], infeasibility_hint(fm)]))
    plan.summary["manifest"] = {
        "allocator_version": __version__, "backend": settings.backend, "backend_version": backend.version(),
        "python": sys.version.split()[0], "platform": platform.platform(),
        "options": dataclasses.asdict(options), "method": method_name,
        "model": {"columns": fm.model.num_cols, "rows": fm.model.num_rows, "nonzeros": int(fm.model.A.nnz),
                  "integer_columns": int(fm.model.integrality.sum())},
        "problem": problem.sizes(),
        **(manifest or {}),
    }
    progress("plan ready", status=status.value, expected_exits=plan.summary.get("expected_exits"),
             bound=method.bound, gap=plan.summary["gap"])
    return plan


def infeasibility_hint(fm: Formulation) -> str:
    """Plain words for the infeasibilities that can be seen without a solver."""
    p = fm.problem
    mandatory = np.flatnonzero(p.proj_mandatory)
    no_start = np.setdiff1d(mandatory, fm.y_proj)
    hints = []
    for q in no_start[:5]:
        latest = p.deadline_year - int(p.proj_duration[q]) + 1
        hints.append(f"mandatory project {p.proj_ids[q]} in village {p.village_ids[p.proj_village[q]]} takes "
                     f"{p.proj_duration[q]} years: it must start by {latest} to finish by {p.deadline_year}, "
                     "and no fund can pay for it in a year that allows that" if latest >= p.start_year else
                     f"mandatory project {p.proj_ids[q]} in village {p.village_ids[p.proj_village[q]]} takes "
                     f"{p.proj_duration[q]} years and cannot finish by {p.deadline_year} "
                     f"even if started in {p.start_year}")
    if len(no_start) > 5:
        hints.append(f"and {len(no_start) - 5} more mandatory projects")
    if p.policy.deadline == "hard" and not hints:
        hints.append("the deadline is hard: no plan puts every county on schedule with this money, "
                     "these personnel hours and these rules")
    return "; ".join(hints)


def solve(scenario: Scenario, *, progress: Progress = _quiet, backend: str | None = None,
          settings: SolverSettings | None = None) -> Plan:
    """Run a whole scenario: load and check its tables, build, solve and return the Plan."""
    settings = settings or scenario.solver
    if backend is not None:
        settings = settings.model_copy(update={"backend": backend})
    get_backend(settings.backend)  # fail fast on an unknown or missing backend
    progress("read tables")
    tables = load_tables(scenario)
    progress("check tables")
    problem = build_problem(tables, name=scenario.name, start_year=scenario.start_year,
                            deadline_year=scenario.deadline_year, policy=scenario.policy)
    manifest = {"inputs": input_hashes(scenario), "seed": settings.seed,
                "generate": scenario.generate.model_dump() if scenario.generate else None}
    return solve_problem(problem, settings, progress=progress, manifest=manifest)
