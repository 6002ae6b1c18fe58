"""Solve methods: how a Formulation becomes a plan, with honest bounds.

- ``exact``: branch and bound on the whole MIP (audit mode, small instances), in two
  lexicographic stages: least total shortfall, then most exits with total shortfall capped
  at stage 1's; each stage's bound is the solver's, so both statements below are exact;
- ``lp-fix``: the LP relaxation gives the bound; every household and project whose LP
  values are integral is fixed and a MIP decides the fractional rest
  (relaxation-induced fix-and-resolve, :func:`fix_and_resolve`; only the open columns
  go to the solver, :func:`solve_restricted`). If that MIP is infeasible, up to
  ``WIDER_HOUSEHOLDS`` households spending where the fractional projects do are freed too;
  if there is still no plan (possible with a hard deadline or tight share rules), the whole
  MIP is solved in the time left. While the gap is above the target and time is left,
  improvement rounds re-open one county at a time (the households where LP and plan
  differ plus a seeded sample of the rest, up to ``NEIGHBOURHOOD_HOUSEHOLDS``), every
  other decision fixed at the plan, and re-solve from the plan (a local search that never
  makes the plan worse). ``decompose`` (:mod:`allocator.optimize.decompose`) reuses both.

The model maximises W = V - penalty * shortfall, where V is the plan's value (sustained
exits plus the earliness credit, :mod:`allocator.model.formulation`) and shortfall sums the
county exit rows' and the annual targets'; the solver proves a bound B_W on W (the MIP dual
bound, or the LP optimum). From it, :func:`plan_bounds` states two facts a planner can read:

- ``shortfall_bound``: no plan has less total shortfall than
  (V_min - B_W) / penalty, where V_min is the least value any plan can have;
- ``bound`` on the value: no plan with at most this plan's shortfall in every county and
  target has more than B_W + sum_r y_r s_r, where y_r is the price of shortfall row r
  (its LP dual, at most the penalty; the penalty itself when no duals are known).
  This follows from Lagrangian duality: for every plan, V - sum_r y_r s_r <= B_W.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import numpy as np

from allocator.model.formulation import SHORTFALL_FAMILIES, Formulation, expand_ranges
from allocator.solvers import get_backend
from allocator.solvers.base import SolveOptions, SolveResult, Status, StoppedBy

INTEGRAL_TOL = 1e-6
NEIGHBOURHOOD_HOUSEHOLDS = 600
ROUND_SECONDS = 10.0
WIDER_HOUSEHOLDS = 2000  # households freed when the restricted MIP is infeasible
STALE_ROUNDS = 3  # improvement rounds stop after this many (at least one per county) fail in a row
BEHIND_HOUSEHOLDS = 3000  # households the behind-target pass re-opens at most, the largest gains first
BEHIND_SECONDS = 30.0  # its time: it runs after a method's own time limit, so a limited plan gets it too
# progress(phase, **facts) of a solve; not the progress record (manage). Facts a display draws as a bar:
# done/of (ints) for a phase that counts its steps; seconds/budget for a phase bounded by time, which
# may end sooner (its last report then says finished=True)
ProgressCallback = Callable[..., None]


def quiet(phase: str, **info) -> None:
    """Default progress sink: say nothing."""


@dataclasses.dataclass
class Outcome:
    """A finished solve: the final backend result, the proven bound on the model objective,
    the prices of the shortfall rows (county exit rows, then annual targets: LP duals or
    Lagrangian prices) when known, and what happened. ``row_prices`` holds every row's price
    (d objective / d row bound; NaN where the method prices no row) and ``price_method`` what
    they are, for the marginal values (:mod:`allocator.optimize.marginal`)."""

    result: SolveResult
    bound: float | None
    phases: dict[str, float]
    notes: list[str]
    shortfall_prices: np.ndarray | None = None
    # proven directly by a lexicographic solve (exact method); None: derive from ``bound``
    exits_bound: float | None = None
    shortfall_bound: float | None = None
    row_prices: np.ndarray | None = None
    price_method: str | None = None


def time_left(options: SolveOptions, started: float) -> float | None:
    """Seconds left of the time limit (at least 1), or None without a limit."""
    if options.time_limit is None:
        return None
    return max(options.time_limit - (time.perf_counter() - started), 1.0)


def solve_exact(fm: Formulation, backend: str, options: SolveOptions, progress: ProgressCallback) -> Outcome:
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
    shortfall = float(least.x[fm.shortfall_cols].sum())
    shortfall_bound = max(-least.bound, 0.0) if least.bound is not None else None
    cap = shortfall + max(1e-7, 1e-9 * shortfall)
    progress("branch and bound: most exits", shortfall=shortfall)
    exits = solver.solve(fm.exits_model(cap), dataclasses.replace(
        options, time_limit=time_left(options, started), start=least.x))
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


def solve_lp_fix(fm: Formulation, backend: str, options: SolveOptions, progress: ProgressCallback) -> Outcome:
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
    if lp.duals is not None:  # d objective / d need <= 0 for the >= county exit and target rows
        prices = np.clip(-np.concatenate([lp.duals[fm.family(name).rows] for name in SHORTFALL_FAMILIES]),
                         0.0, fm.penalty)
    progress("LP done", **fm.headline(lp.x), seconds=lp.solve_seconds)
    outcome = fix_and_resolve(fm, solver, lp.x, lp.objective, prices, options, started, progress, phases, [])
    if lp.duals is not None:  # the marginal values, from the LP already solved
        outcome.row_prices, outcome.price_method = lp.duals, "LP dual"
    return outcome


def solve_from_point(fm: Formulation, backend: str, point: np.ndarray, options: SolveOptions,
                     progress: ProgressCallback) -> Outcome:
    """lp-fix's second half from a given point of the LP relaxation (a vertex, e.g. ``explain``'s
    least-money LP point, which is a point of this model's relaxation): the MIP over the columns
    it leaves fractional, no improvement rounds. The point optimises something else, so no bound
    is known: the plan is feasible, never proven optimal."""
    started = time.perf_counter()
    outcome = fix_and_resolve(fm, get_backend(backend), point, np.inf, None, options, started, progress, {},
                              ["started from a given point of the LP relaxation, with no bound"], polish=False)
    outcome.bound = None
    return outcome


def fix_and_resolve(fm: Formulation, solver, point: np.ndarray, bound: float, prices: np.ndarray | None,
                    options: SolveOptions, started: float, progress: ProgressCallback, phases: dict,
                    notes: list[str], polish: bool = True) -> Outcome:
    """Fix what ``point`` (a relaxation's optimum, proven to be at most ``bound``) has integral
    and solve a MIP over the rest; with ``polish``, solve the whole MIP when that has no plan,
    and run county improvement rounds."""
    model = fm.model
    free = free_columns(fm, point)
    n_free = len(np.unique(fm.x_household[free[fm.x_cols]]))
    if not free.any():  # the relaxation's optimum is integral: it is the plan
        x = point.copy()
        x[model.integrality] = np.round(x[model.integrality])
        plan = solve_restricted(fm, solver, x, free, dataclasses.replace(options, time_limit=time_left(options,
                                                                                                       started)))
        if plan.status.has_solution:
            return Outcome(plan, bound, phases, notes + ["the relaxation's optimum was integral"], prices)
    progress("MIP over the fractional rest", fractional_households=n_free, free_columns=int(free.sum()))
    equity = polish and has_equity_rows(fm)
    first = time_left(options, started)
    if equity:  # leave time for a second try with room for rounding (:func:`equity_room`)
        first = EQUITY_FIRST_SECONDS if first is None else max(EQUITY_FIRST_SHARE * first, 1.0)
    sub = solve_restricted(fm, solver, point, free, dataclasses.replace(options, time_limit=first))
    phases["restricted_mip"] = round(sub.solve_seconds, 4)
    notes = notes + [f"{n_free} households fractional in the relaxation; the rest fixed at its values"]
    if equity and not sub.status.has_solution:  # an equity-first plan, else room for rounding
        sub = equity_first(fm, solver, options, started, progress, phases, notes, sub)
        if not sub.status.has_solution:
            sub = equity_room(fm, solver, options, started, progress, phases, notes, sub)
    if sub.status == Status.INFEASIBLE:  # a fractional project can need the money fixed households use
        wider = free | money_neighbours(fm, point, free)
        progress("restricted MIP infeasible; freeing households that share its projects' money",
                 free_columns=int(wider.sum()))
        sub = solve_restricted(fm, solver, point, wider, dataclasses.replace(options, time_limit=time_left(
            options, started)))
        phases["wider_mip"] = round(sub.solve_seconds, 4)
        notes.append("the restricted MIP was infeasible: households sharing the fractional projects' money "
                     "were freed")
    if not sub.status.has_solution and polish:
        progress("restricted MIP has no plan; solving the whole MIP", status=sub.status.value)
        sub = solver.solve(model, dataclasses.replace(options, time_limit=time_left(options, started)))
        phases["full_mip"] = round(sub.solve_seconds, 4)
        notes.append("the restricted MIP had no plan: the whole MIP was solved instead")
        if sub.bound is not None and sub.bound < bound:
            bound, prices = sub.bound, None
    if sub.status.has_solution:
        progress("plan from the MIP", **fm.headline(sub.x),
                 **({"gap": (bound - sub.objective) / max(abs(sub.objective), 1.0)} if np.isfinite(bound) else {}))
    if sub.status.has_solution and polish:
        sub = improve_by_county(fm, sub, point, bound, solver, options, started, progress, phases, notes)
    return Outcome(sub, bound, phases, notes, prices)


EQUITY_FIRST_SHARE = 0.25  # of the time left, for the first MIP over the fractional rest when equity rows exist
EQUITY_FIRST_SECONDS = 120.0  # ... and without a time limit
EQUITY_ROOM = 0.1  # the spread cap tightened by this share, the floors raised by a fifth of it


def lp_options(solver, options: SolveOptions, started: float) -> SolveOptions:
    """Options of an LP relaxation in the time left (HiGHS: interior point, as lp-fix's own LP)."""
    return dataclasses.replace(options, mip_gap=None, progress=None, time_limit=time_left(options, started),
                               extra={"solver": "ipm", **options.extra} if solver.name == "highs" else options.extra)


def has_equity_rows(fm: Formulation) -> bool:
    """Whether the model has equity rows a rounding can break (floors, the spread cap, the
    max-min stage's lowest rate)."""
    names = {f.name for f in fm.families}
    rows = sum(fm.family(n).rows.stop - fm.family(n).rows.start
               for n in ("county_floor_per_poor", "exit_rate_spread", "exit_rate_low") if n in names)
    return rows > 0


def _lp_then_fix(fm: Formulation, model, solver, options: SolveOptions, started: float, phases: dict,
                 name: str) -> SolveResult | str:
    """``model``'s LP relaxation, then the MIP of ``fm`` over the columns it leaves fractional
    (phases ``name``_lp and ``name``_mip); the LP's status when it is not optimal."""
    lp = solver.solve(model.relaxed(), lp_options(solver, options, started))
    phases[f"{name}_lp"] = round(lp.solve_seconds, 4)
    if lp.status != Status.OPTIMAL:
        return lp.status.value
    sub = solve_restricted(fm, solver, lp.x, free_columns(fm, lp.x),
                           dataclasses.replace(options, time_limit=time_left(options, started)))
    phases[f"{name}_mip"] = round(sub.solve_seconds, 4)
    return sub


def equity_room(fm: Formulation, solver, options: SolveOptions, started: float, progress: ProgressCallback,
                phases: dict, notes: list[str], failed: SolveResult) -> SolveResult:
    """A second MIP over the fractional rest, from the LP relaxation with room for rounding: the
    spread cap tightened by :data:`EQUITY_ROOM`, the floors raised by a fifth of it. The LP's
    optimum sits on the equity rows, and the households it leaves whole can pin a county's rate
    or spend where no rounding of the rest keeps the row; the room lets one. The bound stays the
    first LP's (this LP is only a guide)."""
    model = fm.model
    row_lo, row_hi = model.row_lo.copy(), model.row_hi.copy()
    floors, spread = fm.family("county_floor_per_poor").rows, fm.family("exit_rate_spread").rows
    row_lo[floors] = row_lo[floors] * (1.0 + EQUITY_ROOM / 5)
    row_hi[spread] = row_hi[spread] * (1.0 - EQUITY_ROOM)
    progress("MIP over the fractional rest has no plan: LP relaxation with room for the equity rules")
    roomy = dataclasses.replace(model, row_lo=row_lo, row_hi=row_hi)
    sub = _lp_then_fix(fm, roomy, solver, options, started, phases, "equity_room")
    if isinstance(sub, str):
        notes.append(f"the LP with room for the equity rules ended {sub}")
        return failed
    notes.append("the MIP over the fractional rest had no plan: it was solved again from an LP with room for "
                 f"rounding the equity rules (spread cap {1 - EQUITY_ROOM:.0%} of its value, floors "
                 f"{1 + EQUITY_ROOM / 5:.0%})" + ("" if sub.status.has_solution else ", without a plan either"))
    return sub if sub.status.has_solution else failed


def equity_first(fm: Formulation, solver, options: SolveOptions, started: float, progress: ProgressCallback,
                 phases: dict, notes: list[str], failed: SolveResult) -> SolveResult:
    """A plan that keeps the equity rules, found with them as the objective: the lowest county
    exit rate (with rate rows) plus the money spent over all the money (with floors), by the LP
    relaxation and a MIP over its fractional rest. Its rates are as even and its spend as high as
    that finds, so the spread cap and the floors have room; the caller's improvement rounds then
    raise its exits with every rule kept. ``failed`` when it finds none (then
    :func:`equity_room` tries)."""
    c = np.zeros(fm.model.num_cols)
    low = fm.rate_col(0)
    if low is not None:
        c[low] = 1.0
    if fm.family("county_floor_per_poor").rows.stop > fm.family("county_floor_per_poor").rows.start:
        c[fm.f_cols] = 1.0 / max(float(fm.problem.fund_amount.sum()), 1.0)
    stage = dataclasses.replace(fm, model=dataclasses.replace(fm.model, c=c, offset=0.0), penalty=0.0)
    progress("no plan yet: a plan with the equity rules first (even rates, money spent)")
    sub = _lp_then_fix(stage, stage.model, solver, options, started, phases, "equity_first")
    if isinstance(sub, str):
        notes.append(f"the equity-first LP ended {sub}")
        return failed
    if not sub.status.has_solution:
        notes.append("the equity-first plan was not found either")
        return failed
    notes.append("a plan with the equity rules first (even county exit rates, money spent) started the search")
    return dataclasses.replace(sub, objective=fm.model.objective_value(sub.x), bound=None,
                               stopped_by=None if sub.stopped_by is None else sub.stopped_by)


def behind_target_columns(fm: Formulation, x: np.ndarray, tol: float = 1e-6) -> np.ndarray:
    """Package columns that would lower a shortfall the plan ``x`` leaves: for every annual
    target or county exit rule short at ``x``, each household it covers and each of its packages
    that counts more by that year-end than the household's package does (with the chosen
    packages of those households, so the MIP may drop them). At most
    :data:`BEHIND_HOUSEHOLDS` households, those with the largest gain first."""
    p = fm.problem
    chosen = x[fm.x_cols] > 0.5
    household = fm.x_household
    # the counties each year-end's short rows cover: a year's gain is computed once, for all its rows
    short = np.zeros((len(p.years), len(p.county_ids)), dtype=bool)
    targets = fm.shortfall_targets[x[fm.t_cols] > tol]
    np.logical_or.at(short, p.target_year[targets], p.target_county_ok[targets])
    counties = fm.shortfall_counties[x[fm.s_cols] > tol]
    short[p.county_hat_off[counties], counties] = True
    gain = np.zeros(fm.nx)
    for year in np.flatnonzero(short.any(axis=1)):
        at = fm.x_exit_at(year)
        now = np.zeros(len(p.household_ids))
        now[household[chosen]] = at[chosen]
        gain = np.maximum(gain, np.where(short[year][fm.x_county], at - now[household], 0.0))
    better = gain > tol
    best = np.zeros(len(p.household_ids))
    np.maximum.at(best, household[better], gain[better])
    households = np.flatnonzero(best > 0)
    households = households[np.argsort(-best[households], kind="stable")[:BEHIND_HOUSEHOLDS]]
    opened = np.zeros(len(p.household_ids), dtype=bool)
    opened[households] = True
    free = np.zeros(fm.model.num_cols, dtype=bool)
    free[fm.x_cols] = opened[household] & (better | chosen)
    return free


def close_behind_target(fm: Formulation, outcome: Outcome, backend: str, options: SolveOptions,
                        progress: ProgressCallback) -> Outcome:
    """The schedule's "no idle money" rule on a finished plan: while an annual target or a
    county's hat-off year is short, re-open the packages that would count more by then (see
    :func:`behind_target_columns`) and re-solve that MIP from the plan, with every money,
    share, floor and personnel row, for at most :data:`BEHIND_SECONDS`; keep it if better. A plan
    whose shortfall the method's bound proves least is left alone."""
    result = outcome.result
    if not result.status.has_solution:
        return outcome
    shortfalls = np.maximum(result.x[fm.shortfall_cols], 0.0)
    least = plan_bounds(fm, outcome, shortfalls, 0.0).shortfall_bound
    if least is not None and shortfalls.sum() <= least + 1e-6:  # proven least already: nothing to win
        return outcome
    free = behind_target_columns(fm, result.x)
    if not free.any():
        return outcome
    started = time.perf_counter()
    households = len(np.unique(fm.x_household[free[fm.x_cols]]))
    progress("behind target", households=households, seconds=0.0, budget=BEHIND_SECONDS, **fm.headline(result.x))
    # presolve off: HiGHS' MIP presolve can run far past the time limit (as in solve_decompose's whole MIP); on
    # a re-plan of the README default it ran this 30-s pass for over 9 minutes
    trial = solve_restricted(fm, get_backend(backend), result.x, free, dataclasses.replace(
        options, time_limit=BEHIND_SECONDS, start=result.x, progress=None, presolve=False))
    seconds = time.perf_counter() - started
    outcome.phases["behind_target"] = round(seconds, 4)
    improved = trial.status.has_solution and trial.objective > result.objective + 1e-9
    if improved:
        trial.stopped_by = result.stopped_by
        outcome.result = trial
        outcome.notes.append(f"{households} households behind a target re-opened after the method: "
                             "the plan improved")
    progress("behind target", seconds=seconds, budget=BEHIND_SECONDS, finished=True, improved=improved,
             **fm.headline(outcome.result.x))
    return outcome


def money_neighbours(fm: Formulation, point: np.ndarray, free: np.ndarray) -> np.ndarray:
    """Package columns of up to WIDER_HOUSEHOLDS households, least gain per yuan first, that
    spend in the county and years of the projects ``free`` opens: their money can let the MIP
    pick one start year for a project the relaxation spread over several."""
    p = fm.problem
    T = len(p.years)
    cells = np.zeros((len(p.county_ids), T), dtype=bool)
    y_free = np.flatnonzero(free[fm.y_cols] & (point[fm.y_cols] > INTEGRAL_TOL))
    cells[p.proj_county[fm.y_proj[y_free]], fm.y_year[y_free]] = True
    chosen = np.flatnonzero((point[fm.x_cols] > 0.5) & cells[fm.x_county, fm.x_year] & ~free[fm.x_cols])
    density = fm.model.c[chosen] / np.maximum(p.pkg_cost[fm.x_pkg[chosen]], 1.0)
    households = fm.x_household[chosen[np.argsort(density, kind="stable")[:WIDER_HOUSEHOLDS]]]
    return household_columns(fm, households) & fm.model.integrality


def solve_restricted(fm: Formulation, solver, point: np.ndarray, free: np.ndarray,
                     options: SolveOptions) -> SolveResult:
    """The MIP with every integer column outside ``free`` fixed at its rounded value in ``point``.

    Only the open columns and the rows they touch go to the solver, with row bounds shifted
    by the fixed columns' activity; the result is mapped back to every column."""
    model = fm.model
    fixed = model.integrality & ~free
    values = np.where(fixed, np.round(point), 0.0)
    activity = model.A @ values
    open_cols = np.flatnonzero(~fixed)
    touched = model.A[:, open_cols].getnnz(axis=1) > 0
    slack = np.maximum(model.row_lo - activity, activity - model.row_hi)[~touched]
    if np.any(slack > 1e-6 * np.maximum(1.0, np.abs(activity[~touched]))):
        return SolveResult(Status.INFEASIBLE, raw_status="the fixed columns break a row", backend=solver.name)
    rows = np.flatnonzero(touched)
    sub = fm.restrict(open_cols, rows, model.row_lo[rows] - activity[rows], model.row_hi[rows] - activity[rows])
    start = None if options.start is None else np.asarray(options.start)[open_cols]
    # the fixed columns' objective is the offset, so objective, bound and progress are the whole model's
    restricted = dataclasses.replace(sub.model, offset=model.objective_value(values))
    result = solver.solve(restricted, dataclasses.replace(options, start=start))
    if not result.status.has_solution:
        return result
    values[open_cols] = result.x
    return dataclasses.replace(result, x=values, duals=None)


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
                      options: SolveOptions, started: float, progress: ProgressCallback, phases: dict,
                      notes: list[str]) -> SolveResult:
    """Re-open one county's neighbourhood at a time and re-solve from the incumbent.

    The rounds stop at the gap target, after a run of rounds that do not help, or at the time
    limit, so no count of rounds is known ahead: with a time limit each round reports, as it
    begins, the seconds spent of the time left when the rounds began (an upper bound on their
    length; ``finished`` at the end); a round that improves the plan is reported with it."""
    target = options.mip_gap or 0.0
    rng = np.random.default_rng(options.seed)
    p = fm.problem
    x_county = fm.x_county
    counties = np.unique(x_county)
    differs = np.zeros(len(p.household_ids), dtype=bool)
    rounds = improved = 0
    round_started = time.perf_counter()
    budget = time_left(options, started)
    stale = 0
    while len(counties) and stale < max(len(counties), STALE_ROUNDS):
        gap = (bound - incumbent.objective) / max(abs(incumbent.objective), 1.0)
        remaining = time_left(options, started)
        if gap <= target:
            break
        if remaining is not None and remaining <= 2.0:  # the time limit, not the method, ended the search
            incumbent.stopped_by = StoppedBy.TIME_LIMIT
            break
        differs[:] = False
        x_diff = np.abs(x_lp[fm.x_cols] - incumbent.x[fm.x_cols]) > INTEGRAL_TOL
        differs[fm.x_household[x_diff]] = True
        county = counties[rounds % len(counties)]
        if budget is not None:  # as the round begins: a round can take ROUND_SECONDS
            progress("improvement round", round=rounds + 1, county=str(p.county_ids[county]),
                     seconds=time.perf_counter() - round_started, budget=budget)
        members = np.unique(fm.x_household[x_county == county])
        first = rng.permutation(members[differs[members]])
        others = members[~differs[members]]
        room = max(NEIGHBOURHOOD_HOUSEHOLDS - len(first), 0)
        sample = rng.choice(others, min(room, len(others)), replace=False) if len(others) else others
        open_cols = household_columns(fm, np.concatenate([first[:NEIGHBOURHOOD_HOUSEHOLDS], sample]))
        limit = ROUND_SECONDS if remaining is None else min(ROUND_SECONDS, remaining - 1.0)
        # no presolve: on these small neighbourhoods HiGHS 1.16's MIP presolve can loop past
        # its time limit (seen on a 600-household round; ERGO-Code/HiGHS#2226, #3074), and
        # without it a round takes seconds
        trial = solve_restricted(fm, solver, incumbent.x, open_cols, dataclasses.replace(
            options, time_limit=limit, start=incumbent.x, progress=None, presolve=False))
        rounds += 1
        if trial.status.has_solution and trial.objective > incumbent.objective + 1e-9:
            trial.stopped_by = incumbent.stopped_by
            incumbent = trial
            improved += 1
            stale = 0
            progress("improvement round", round=rounds, county=str(p.county_ids[county]), **fm.headline(incumbent.x),
                     gap=(bound - incumbent.objective) / max(abs(incumbent.objective), 1.0),
                     seconds=time.perf_counter() - round_started, budget=budget)
        else:
            stale += 1
    if rounds and budget is not None:  # the plan now, for a log that shows the rounds' last report only
        progress("improvement round", round=rounds, improved=improved, **fm.headline(incumbent.x),
                 gap=(bound - incumbent.objective) / max(abs(incumbent.objective), 1.0),
                 seconds=time.perf_counter() - round_started, budget=budget, finished=True)
    if rounds:
        phases["improvement_rounds"] = round(time.perf_counter() - round_started, 4)
        notes.append(f"{rounds} county improvement rounds, {improved} improved the plan")
    return incumbent


@dataclasses.dataclass
class Bounds:
    """What is proven about a plan: exits bound and gap, shortfall bound and gap."""

    exits_bound: float | None
    exits_gap: float | None  # (exits_bound - exits) / max(exits, 1)
    shortfall_bound: float | None
    shortfall_gap: float | None  # total shortfall - shortfall_bound, in households


def plan_bounds(fm: Formulation, outcome: Outcome, shortfalls: np.ndarray, value: float) -> Bounds:
    """The value and shortfall bounds of a plan whose shortfalls (per county exit row, then per
    annual target) are ``shortfalls`` and whose value V is ``value`` (module docstring)."""
    total = float(shortfalls.sum())
    if outcome.exits_bound is not None or outcome.shortfall_bound is not None:
        exits_bound = None if outcome.exits_bound is None else max(outcome.exits_bound, value)
        return Bounds(exits_bound, None if exits_bound is None else (exits_bound - value) / max(abs(value), 1.0),
                      outcome.shortfall_bound,
                      None if outcome.shortfall_bound is None else max(total - outcome.shortfall_bound, 0.0))
    if outcome.bound is None:
        return Bounds(None, None, None, None)
    prices = outcome.shortfall_prices if outcome.shortfall_prices is not None else np.full(len(shortfalls),
                                                                                          fm.penalty)
    exits_bound = max(outcome.bound + float(prices @ shortfalls), value)
    worst = np.zeros(len(fm.problem.household_ids))
    np.minimum.at(worst, fm.x_household, fm.model.c[fm.x_cols])
    least_value = float(fm.model.offset + worst.sum())
    shortfall_bound = max((least_value - outcome.bound) / fm.penalty, 0.0)
    return Bounds(exits_bound, (exits_bound - value) / max(abs(value), 1.0), shortfall_bound,
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


__all__ = ["Bounds", "Outcome", "behind_target_columns", "close_behind_target", "final_status", "fix_and_resolve",
           "plan_bounds", "solve_exact", "solve_from_point", "solve_lp_fix",
           "time_left"]
