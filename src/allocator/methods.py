"""Solve methods: how a Formulation becomes a plan, with honest bounds.

- ``exact``: branch and bound on the whole MIP (audit mode, small instances), in two
  lexicographic stages: least total shortfall, then most exits with total shortfall capped
  at stage 1's; each stage's bound is the solver's, so both statements below are exact;
- ``lp-fix``: the LP relaxation gives the bound; every household and project whose LP
  values are integral is fixed and a MIP decides the fractional rest
  (relaxation-induced fix-and-resolve). If that restricted MIP has no plan (possible with
  a hard deadline or tight share rules), the whole MIP is solved in the time left.
  While the gap is above the target and time is left, improvement rounds re-open one
  county at a time (the households where LP and plan differ plus a seeded sample of the
  rest, up to ``NEIGHBOURHOOD_HOUSEHOLDS``), every other decision fixed at the plan,
  and re-solve from the plan (a local search that never makes the plan worse).

The model maximises W = exits - penalty * shortfall; the solver proves a bound B_W on W
(the MIP dual bound, or the LP optimum). From it, :func:`plan_bounds` states two facts
a planner can read:

- ``shortfall_bound``: no plan has less total shortfall than
  (E_min - B_W) / penalty, where E_min is the fewest exits any plan can have;
- ``bound`` on exits: no plan with at most this plan's shortfall in every county has more
  than B_W + sum_c y_c s_c expected exits, where y_c is the price of county c's exit row
  (its LP dual, at most the penalty; the penalty itself when no duals are known).
  This follows from Lagrangian duality: for every plan, exits - sum_c y_c s_c <= B_W.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import numpy as np

from allocator.model.formulation import Formulation, expand_ranges
from allocator.solvers import get_backend
from allocator.solvers.base import SolveOptions, SolveResult, Status, StoppedBy

INTEGRAL_TOL = 1e-6
NEIGHBOURHOOD_HOUSEHOLDS = 600
ROUND_SECONDS = 10.0
Progress = Callable[..., None]


@dataclasses.dataclass
class Outcome:
    """A finished solve: the final backend result, the proven bound on the model objective,
    the county exit-row prices (LP duals) when known, and what happened."""

    result: SolveResult
    bound: float | None
    phases: dict[str, float]
    notes: list[str]
    county_prices: np.ndarray | None = None
    # proven directly by a lexicographic solve (exact method); None: derive from ``bound``
    exits_bound: float | None = None
    shortfall_bound: float | None = None


def _remaining(options: SolveOptions, started: float) -> float | None:
    if options.time_limit is None:
        return None
    return max(options.time_limit - (time.perf_counter() - started), 1.0)


def solve_exact(fm: Formulation, backend: str, options: SolveOptions, progress: Progress) -> Outcome:
    """Branch and bound: least total shortfall, then most exits at that shortfall."""
    started = time.perf_counter()
    solver = get_backend(backend)
    if fm.problem.policy.deadline == "hard":  # shortfall is fixed at 0: one stage
        progress("branch and bound", columns=fm.model.num_cols, rows=fm.model.num_rows)
        result = solver.solve(fm.model, options)
        return Outcome(result, result.bound, {"mip": round(result.solve_seconds, 4)}, [],
                       exits_bound=result.bound, shortfall_bound=0.0 if result.bound is not None else None)
    progress("branch and bound: least shortfall", columns=fm.model.num_cols, rows=fm.model.num_rows)
    least = solver.solve(fm.shortfall_model(), options)
    phases = {"mip_shortfall": round(least.solve_seconds, 4)}
    if not least.status.has_solution:
        return Outcome(least, None, phases, ["the least-shortfall stage found no plan"])
    shortfall = float(least.x[fm.s_cols].sum())
    shortfall_bound = max(-least.bound, 0.0) if least.bound is not None else None
    cap = shortfall + max(1e-7, 1e-9 * shortfall)
    progress("branch and bound: most exits", shortfall=shortfall)
    exits = solver.solve(fm.exits_model(cap), dataclasses.replace(
        options, time_limit=_remaining(options, started), start=least.x))
    phases["mip_exits"] = round(exits.solve_seconds, 4)
    if not exits.status.has_solution:
        return Outcome(least, None, phases, ["the most-exits stage found no plan: the least-shortfall plan is shown"],
                       shortfall_bound=shortfall_bound)
    if least.stopped_by is not None and exits.stopped_by is None:
        exits.stopped_by = least.stopped_by
    return Outcome(exits, None, phases, [], exits_bound=exits.bound, shortfall_bound=shortfall_bound)


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
    _, idx = expand_ranges(p.pkg_req_ptr[free_pkgs], np.diff(p.pkg_req_ptr)[free_pkgs])
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
    prices = None
    if lp.duals is not None:  # d objective / d need_c <= 0 for the >= county exit rows
        prices = np.clip(-lp.duals[fm.family("county_exit").rows], 0.0, fm.penalty)
    free = free_columns(fm, lp.x)
    fixed = model.integrality & ~free
    n_free = len(np.unique(fm.x_household[free[fm.x_cols]]))
    progress("LP done", bound=lp.objective, seconds=lp.solve_seconds, fractional_households=n_free)
    if not free.any():  # the LP optimum is integral: it is the plan, proven optimal
        x = lp.x.copy()
        x[model.integrality] = np.round(x[model.integrality])
        plan = dataclasses.replace(lp, x=x, objective=model.objective_value(x), bound=lp.objective, duals=None)
        return Outcome(plan, lp.objective, phases, ["the LP relaxation was integral"], prices)
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
        if sub.bound is not None and sub.bound < bound:
            bound, prices = sub.bound, None
    if sub.status.has_solution:
        sub = improve_by_county(fm, sub, lp.x, bound, solver, options, started, progress, phases, notes)
    return Outcome(sub, bound, phases, notes, prices)


def household_columns(fm: Formulation, households: np.ndarray) -> np.ndarray:
    """Integer columns (x of these households, y of projects in their villages) as a mask."""
    p = fm.problem
    mask = np.zeros(fm.model.num_cols, dtype=bool)
    chosen = np.zeros(len(p.household_ids), dtype=bool)
    chosen[households] = True
    mask[fm.x_cols] = chosen[fm.x_household]
    villages = np.zeros(len(p.village_ids), dtype=bool)
    villages[p.household_village[households]] = True
    mask[fm.y_cols] = villages[p.proj_village[fm.y_proj]]
    return mask


def improve_by_county(fm: Formulation, incumbent: SolveResult, x_lp: np.ndarray, bound: float, solver,
                      options: SolveOptions, started: float, progress: Progress, phases: dict,
                      notes: list[str]) -> SolveResult:
    """Re-open one county's neighbourhood at a time and re-solve from the incumbent."""
    model = fm.model
    target = options.mip_gap or 0.0
    rng = np.random.default_rng(options.seed)
    p = fm.problem
    hh_county = p.household_county
    differs = np.zeros(len(p.household_ids), dtype=bool)
    rounds = improved = 0
    round_started = time.perf_counter()
    stale = 0
    while stale < len(p.county_ids):
        gap = (bound - incumbent.objective) / max(abs(incumbent.objective), 1.0)
        remaining = _remaining(options, started)
        if gap <= target or (remaining is not None and remaining <= 2.0):
            break
        differs[:] = False
        x_diff = np.abs(x_lp[fm.x_cols] - incumbent.x[fm.x_cols]) > INTEGRAL_TOL
        differs[fm.x_household[x_diff]] = True
        county = rounds % len(p.county_ids)
        members = np.flatnonzero(hh_county == county)
        first = members[differs[members]]
        others = members[~differs[members]]
        room = max(NEIGHBOURHOOD_HOUSEHOLDS - len(first), 0)
        sample = rng.choice(others, min(room, len(others)), replace=False) if len(others) else others
        open_cols = household_columns(fm, np.concatenate([first[:NEIGHBOURHOOD_HOUSEHOLDS], sample]))
        fixed = model.integrality & ~open_cols
        lo, hi = model.col_lo.copy(), model.col_hi.copy()
        lo[fixed] = hi[fixed] = np.round(incumbent.x[fixed])
        limit = ROUND_SECONDS if remaining is None else min(ROUND_SECONDS, remaining - 1.0)
        trial = solver.solve(model.with_bounds(lo, hi), dataclasses.replace(
            options, time_limit=limit, start=incumbent.x, progress=None))
        rounds += 1
        if trial.status.has_solution and trial.objective > incumbent.objective + 1e-9:
            trial.stopped_by = incumbent.stopped_by
            incumbent = trial
            improved += 1
            stale = 0
            progress("improvement round", county=str(p.county_ids[county]), incumbent=incumbent.objective,
                     bound=bound, gap=(bound - incumbent.objective) / max(abs(incumbent.objective), 1.0))
        else:
            stale += 1
    if rounds:
        phases["improvement_rounds"] = round(time.perf_counter() - round_started, 4)
        notes.append(f"{rounds} county improvement rounds, {improved} improved the plan")
    return incumbent


METHODS = {"exact": solve_exact, "lp-fix": solve_lp_fix}


@dataclasses.dataclass
class Bounds:
    """What is proven about a plan: exits bound and gap, shortfall bound and gap."""

    exits_bound: float | None
    exits_gap: float | None  # (exits_bound - exits) / max(exits, 1)
    shortfall_bound: float | None
    shortfall_gap: float | None  # total shortfall - shortfall_bound, in households


def plan_bounds(fm: Formulation, outcome: Outcome, county_shortfall: np.ndarray, exits: float) -> Bounds:
    """The exits and shortfall bounds of a plan (see the module docstring for the proofs)."""
    total = float(county_shortfall.sum())
    if outcome.exits_bound is not None or outcome.shortfall_bound is not None:
        exits_bound = None if outcome.exits_bound is None else max(outcome.exits_bound, exits)
        return Bounds(exits_bound, None if exits_bound is None else (exits_bound - exits) / max(abs(exits), 1.0),
                      outcome.shortfall_bound,
                      None if outcome.shortfall_bound is None else max(total - outcome.shortfall_bound, 0.0))
    if outcome.bound is None:
        return Bounds(None, None, None, None)
    prices = outcome.county_prices if outcome.county_prices is not None else np.full(len(county_shortfall),
                                                                                      fm.penalty)
    exits_bound = max(outcome.bound + float(prices @ county_shortfall), exits)
    p = fm.problem
    worst = np.zeros(len(p.household_ids))
    np.minimum.at(worst, fm.x_household, fm.x_gain)
    fewest_exits = float(p.household_baseline.sum() + worst.sum())
    shortfall_bound = max((fewest_exits - outcome.bound) / fm.penalty, 0.0)
    return Bounds(exits_bound, (exits_bound - exits) / max(abs(exits), 1.0), shortfall_bound,
                  max(total - shortfall_bound, 0.0))


def final_status(outcome: Outcome, bounds: Bounds, mip_gap: float | None) -> tuple[Status, StoppedBy | None]:
    """Optimal only when exits are proven within ``mip_gap`` of the bound and total shortfall
    within ``mip_gap`` (relative, at least 1e-6 households) of the least possible."""
    result = outcome.result
    if not result.status.has_solution:
        return result.status, result.stopped_by
    target = mip_gap or 0.0
    if (bounds.exits_gap is not None and bounds.exits_gap <= target + 1e-12 and bounds.shortfall_gap is not None
            and bounds.shortfall_gap <= max(1e-6, target * (bounds.shortfall_bound or 0.0))):
        return Status.OPTIMAL, (StoppedBy.GAP if bounds.exits_gap > 1e-9 else None)
    if result.stopped_by in (StoppedBy.TIME_LIMIT, StoppedBy.OTHER_LIMIT):
        return Status.FEASIBLE, result.stopped_by
    return Status.FEASIBLE, None


__all__ = ["METHODS", "Bounds", "Outcome", "final_status", "plan_bounds"]
