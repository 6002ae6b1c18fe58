"""Explanation: which counties miss the deadline, what binds them, and what it would take.

:func:`plan_vector` turns a plan's tables back into the model's solution vector, so every row
of the model can be read at the plan: a rule *binds* where the plan uses all it allows.
:func:`difficulties` names, per county off schedule, its shortfall and the binding rules that
reach it (fund rows that may pay there, its personnel rows, share rules, mandatory projects
that cannot finish, and whether even every household's best package would be enough).
:func:`what_it_would_take` finds the least extra money per source and year that puts every
county on schedule by solving that model (extra money as columns of the budget rows, no
shortfall allowed), then verifies it by re-solving the scenario with the money added: on large
models from that LP's point (its fractional households in a MIP), the method's own search only
when that rounding misses.
:func:`conflict` names the smallest set of rules that cannot hold together when there is no
plan at all (an IIS of the LP relaxation), and :func:`earliest_deadlines` the first year each
county could be on schedule with the money there is, by re-solving with earlier deadlines;
:func:`explain_plan` runs those beside what it would take.
"""

from __future__ import annotations

import dataclasses
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from allocator.explain.extra import ExtraMoney, check_extra, extra_money
from allocator.inputs.names import named, region_names, village_names
from allocator.inputs.provenance import output_folder
from allocator.inputs.tables import CATEGORIES
from allocator.messages import listed, say, words
from allocator.model.formulation import Formulation, budget_windows, county_exit_need, formulate
from allocator.model.linear import LinearModel
from allocator.model.problem import Problem, build_problem
from allocator.optimize.marginal import (
    LP_DUAL,
    fed_budget_rows,
    lp_prices,
    marginal_values,
    personnel_region,
    summarise,
)
from allocator.optimize.methods import quiet
from allocator.optimize.pipeline import EXACT_MAX_INTEGER_COLUMNS, LP_FIX_MAX_INTEGER_COLUMNS, solve_problem
from allocator.plan.context import load_plan_context, plan_vector
from allocator.plan.plan import Plan
from allocator.solvers import get_backend, iis_backend
from allocator.solvers.base import SolveOptions, Status

BACKEND_NAMES = {"highs": "HiGHS", "ortools": "OR-Tools", "pulp": "PuLP"}  # as a planner reads them
DIFFICULTIES = "difficulties.json"  # what explain found, in the plan folder
MONEY_UNIT = 1e6  # extra money columns are in million yuan, so the model stays well scaled
BINDING_TOL = 1e-6  # relative: a row binds when its activity is within this of its limit
VERIFY_MARGINS = (0.0, 0.01, 0.05, 0.2)  # for a relaxation's extra money: added on top until verified
VERIFY_SECONDS = 60.0  # a verifying re-solve from the extra-money LP's point: its MIP's time at most
EXPLAIN_THREADS = 2  # independent re-solves (earliest deadlines) at once, unless the scenario sets threads
# what a re-solve shows of its progress, labelled: its plans found and its bars (prices, county groups, rounds)
RESOLVE_PHASES = ("LP done", "MIP over the fractional rest", "prices", "counties", "improvement round", "plan ready")
SCREEN_MAX_COUNTIES = 20  # earliest deadlines: an LP per county first screens out those that cannot make it at all
SCREEN_TOL = 1e-4  # households of LP shortfall that prove a county off schedule (on schedule: at most 1e-6)
SCALE_TOLERANCE = 0.05  # the uniform-scale fallback stops when its bracket is this narrow (relative)
MAX_SCALE = 8.0  # ... and gives up when even this multiple of every fund does not put every county on schedule


def binding_rows(fm: Formulation, x: np.ndarray) -> np.ndarray:
    """Mask over the model's rows: activity at the upper (or lower) limit."""
    m = fm.model
    activity = m.A @ x
    scale = np.maximum(1.0, np.abs(np.where(np.isfinite(m.row_hi), m.row_hi, 0.0)))
    at_hi = np.isfinite(m.row_hi) & (activity >= m.row_hi - BINDING_TOL * scale)
    at_lo = np.isfinite(m.row_lo) & (activity <= m.row_lo + BINDING_TOL * scale) & ~np.isfinite(m.row_hi)
    return at_hi | at_lo


def difficulties(fm: Formulation, plan: Plan) -> dict:
    """Counties off schedule, with their shortfall and the rules that bind them, in planner words."""
    p = fm.problem
    if plan.summary.get("expected_exits") is None:  # no plan: the solve's own words say why
        return {"status": plan.status, **_no_plan_sentence(plan.summary),
                "counties_off_schedule": [], "counties_total": len(p.county_ids), "binding_funds": []}
    x = plan_vector(fm, plan)
    binding = binding_rows(fm, x)
    budget = fm.family("source_budget")
    binding_funds = np.flatnonzero(binding[budget.rows] & (fm.model.row_hi[budget.rows] > 0))  # empty funds: no news
    windows = budget_windows(p)
    personnel = fm.family("personnel")
    binding_people = np.flatnonzero(binding[personnel.rows])
    shares = fm.family("category_share")
    binding_shares = np.flatnonzero(binding[shares.rows])
    best = np.zeros(len(p.household_ids))
    np.maximum.at(best, fm.x_household, fm.x_exit_at(p.county_hat_off[fm.x_county]))
    best_by_county = np.bincount(p.household_county, weights=best, minlength=len(p.county_ids))
    need = county_exit_need(p)
    unstartable = fm.unstartable_mandatory()
    regions, villages = region_names(p.tables), village_names(p.tables)
    counties = []
    off = plan.counties[~plan.counties["on_schedule"].astype(bool)]
    for row in off.itertuples(index=False):
        c = int(np.flatnonzero(p.county_ids == str(row.county_id))[0])
        reasons = []
        hat_off = int(p.years[p.county_hat_off[c]])
        achieved = getattr(row, "achieved_hat_off_year", None)
        achieved = None if achieved is None or pd.isna(achieved) else int(achieved)
        county = named(row.county_id, regions)
        schedule = say("{county} is to take off its hat at the end of {year} and is {households:,.1f} households "
                       "above its threshold then; {reached}", county=county, year=hat_off,
                       households=float(row.shortfall_households),
                       reached=words("the plan gets it there by {year}", year=achieved) if achieved is not None
                       else words("the plan does not get it there by the deadline"))
        if best_by_county[c] < need[c] - 1e-9:
            reasons.append({"rule": "packages", **say(
                "even if every poor household of {county} took its best package in time, {households:,.1f} "
                "households would still be above the threshold at the end of {year}: more money cannot fix this; "
                "better packages or more time can", county=county, households=float(need[c] - best_by_county[c]),
                year=hat_off)})
        funds = [r for r in binding_funds if _window_pays(p, windows[r], c)]
        if funds:
            names = ", ".join(_window_name(p, windows[r]) for r in funds)
            reasons.append({"rule": "source budget", "funds": names, **say(
                "funds that may pay in {county} are fully spent: {funds}", county=county, funds=names)})
        people = [r for r in binding_people if _personnel_in_county(p, r, c)]
        if people:
            names = ", ".join(f"{named(personnel_region(p, r), regions)} {p.years[p.pers_year[r]]}" for r in people)
            reasons.append({"rule": "personnel hours", "regions": names, **say(
                "cadre hours are fully used in: {regions}", regions=names)})
        for r in binding_shares:
            reasons.append({"rule": "category share", **say(
                "the category share rule {rule} binds (it limits what the money may buy everywhere)",
                rule=_share_name(fm, r))})
        for q in unstartable[p.proj_county[unstartable] == c]:
            reasons.append({"rule": "mandatory project timing", **say(
                "mandatory project {project} in village {village} takes {years} years and cannot finish by "
                "{deadline}", project=str(p.proj_ids[q]), village=named(p.village_ids[p.proj_village[q]], villages),
                years=int(p.proj_duration[q]), deadline=int(p.deadline_year))})
        counties.append({"county_id": str(row.county_id), "county_name": regions.get(str(row.county_id), ""),
                         "hat_off_year": hat_off, "achieved_hat_off_year": achieved,
                         **schedule, "shortfall_households": float(row.shortfall_households),
                         "expected_incidence": float(row.expected_incidence), "threshold": float(row.threshold),
                         "reasons": reasons})
    return {"counties_off_schedule": counties, "counties_total": len(plan.counties),
            "years_behind_target": _behind_target(plan, regions),
            "binding_funds": [{"source_id": str(p.source_ids[windows[r][0]]), "first_year": int(p.years[windows[r][1]]),
                               "year": int(p.years[windows[r][2]])} for r in binding_funds]}


def equity_section(plan: Plan) -> dict:
    """The plan's equity in planner words (``difficulties.json``'s ``equity``): the range of county
    exit rates, and per equity rule in force what it costs in expected exits (the price of
    fairness, by re-solve or estimated from row prices) and whether the plan breaks it."""
    facts = plan.summary.get("equity") or {}
    prices = plan.summary.get("price_of_fairness") or {}
    how = plan.summary.get("price_of_fairness_method") or {}
    policy = ((plan.summary.get("manifest") or {}).get("policy") or {}).get("equity") or {}
    low, high = facts.get("min_exit_rate"), facts.get("max_exit_rate")
    found = {"min_exit_rate": low, "max_exit_rate": high, "rules": []}
    if low is not None:
        found.update(say("county exit rates range from {low:.1%} to {high:.1%} (spread {spread:.1%})",
                         low=float(low), high=float(high), spread=float(high) - float(low)))
    names = {"county_floor_per_poor": words("the county floor of {floor:,.0f} yuan per registered poor household",
                                            floor=float(policy.get("county_floor_per_poor") or 0.0)),
             "max_exit_rate_spread": words("the cap of {cap:.1%} on the spread of county exit rates",
                                           cap=float(policy.get("max_exit_rate_spread") or 0.0)),
             "maxmin": words("the max-min objective (the lowest county exit rate first)")}
    for rule in facts.get("rules") or []:
        price = prices.get(rule)
        method = how.get(rule, "")
        if price is None:
            text = say("{rule}: its price was not computed", rule=names[rule])
        elif method.startswith("re-solve"):
            text = say("{rule} costs {exits:,.2f} expected exits (a re-solve without it)", rule=names[rule],
                       exits=float(price))
        else:
            text = say("{rule} costs about {exits:,.2f} in the objective (estimated from its row prices, "
                       "not a bound)", rule=names[rule], exits=float(price))
        found["rules"].append({"rule": rule, "exits_lost": price, "method": method, **text})
    for broken in facts.get("broken") or []:
        found["rules"].append({"rule": broken["rule"], "broken": broken["by"],
                               **say("the plan breaks {rule}: {why}", rule=names.get(broken["rule"], broken["rule"]),
                                     why=broken["message"])})
    return found


def plan_difficulties(plan: Plan) -> dict:
    """:func:`difficulties` of a plan, from the problem solved or, for a plan read from a
    folder, the problem its scenario rebuilds (:func:`allocator.plan.context.load_plan_context`)."""
    if plan.problem is not None:
        return difficulties(formulate(plan.problem), plan)
    if plan.folder is not None:
        return difficulties(load_plan_context(plan.folder).formulation(), plan)
    raise ValueError("this plan was neither solved here nor read from a folder: nothing to explain it with")


def _behind_target(plan: Plan, regions: pd.Series) -> list[dict]:
    """The annual targets the plan misses: region (named by ``regions``), year, expected poor against the target."""
    path = plan.path
    if not len(path) or "shortfall" not in path:
        return []
    behind = path[path["shortfall"].fillna(0.0) > 1e-6]
    rows = []
    for r in behind.itertuples(index=False):
        where = words("the whole scenario") if r.region_id == "" else named(r.region_id, regions)
        rows.append({"region_id": str(r.region_id), "year": int(r.year), "expected_poor": float(r.expected_poor),
                     "target_share": float(r.target), "shortfall_households": float(r.shortfall),
                     **say("{where} is behind its {year} target: {poor:,.0f} of its {registered:,} poor households "
                           "are expected to be still poor against at most {share:.1%} ({allowed:,.0f}), "
                           "{short:,.1f} households short", where=where, year=int(r.year),
                           poor=float(r.expected_poor), registered=int(r.registered_poor), share=float(r.target),
                           allowed=float(r.target * r.registered_poor), short=float(r.shortfall))})
    return rows


def _window_pays(p: Problem, window: tuple[int, int, int], c: int) -> bool:
    """Some fund row of the window's source may pay in county ``c``."""
    return bool(p.fund_county_ok[p.fund_source == window[0], c].any())


def _window_name(p: Problem, window: tuple[int, int, int]) -> str:
    """A budget row in words: 'central 2018' (that year, or up to it with carry-over), or
    'central 2018-2020' for a window after a recall."""
    s, a, b = window
    if a == b or a == 0:
        return f"{p.source_ids[s]} {p.years[b]}"
    return f"{p.source_ids[s]} {p.years[a]}-{p.years[b]}"


def _no_plan_sentence(summary: dict) -> dict:
    """Why a solve has no plan: proven impossible, or stopped before it found one (:func:`say`)."""
    if summary.get("status") == "infeasible":
        return say("no plan satisfies every rule (proven): {why}",
                   why=summary.get("message") or words("see the conflicting rules"))
    stopped = words(", stopped by its {limit}", limit=summary["stopped_by"].replace("_", " ")) \
        if summary.get("stopped_by") else ""
    return say("the solve ended {status}{stopped} without a plan; it is not proven that none exists ({message})",
               status=summary.get("status"), stopped=stopped, message=summary.get("message") or words("no message"))


def _personnel_in_county(p: Problem, r: int, c: int) -> bool:
    region = p.pers_region[r]
    return bool(region == c) if p.pers_is_county[r] else bool(p.township_county[region] == c)


def _share_name(fm: Formulation, r: int) -> str:
    keys = fm.family("category_share").keys
    return ", ".join(f"{k}={v[r]}" for k, v in keys.items()) if keys else str(r)


def extra_money_model(fm: Formulation) -> LinearModel:
    """The model with one extra-money column per fund row (million yuan, at least 0) in the
    budget rows it feeds, no shortfall allowed, maximising minus the extra money."""
    m, p = fm.model, fm.problem
    budget = fm.family("source_budget")
    n_funds = len(p.fund_amount)
    rows, cols = [], []
    for r in range(n_funds):
        hit = fed_budget_rows(p, r)
        rows.append(budget.rows.start + hit)
        cols.append(np.full(len(hit), r))
    extra = sp.csr_matrix((np.full(sum(map(len, rows)), -MONEY_UNIT), (np.concatenate(rows), np.concatenate(cols))),
                          shape=(m.num_rows, n_funds))
    c = np.concatenate([np.zeros(m.num_cols), -np.ones(n_funds)])
    col_hi = m.col_hi.copy()
    col_hi[fm.shortfall_cols] = 0.0
    return LinearModel(c=c, A=sp.hstack([m.A, extra]).tocsr(), row_lo=m.row_lo, row_hi=m.row_hi,
                       col_lo=np.concatenate([m.col_lo, np.zeros(n_funds)]),
                       col_hi=np.concatenate([col_hi, np.full(n_funds, np.inf)]),
                       integrality=np.concatenate([m.integrality, np.zeros(n_funds, dtype=bool)]), sense="max")


def what_it_would_take(problem: Problem, solve, *, exact_up_to: int, time_limit: float | None = None) -> dict:
    """The least extra money per source and year that puts every county on schedule, verified.

    ``solve(problem, point=None) -> Plan`` re-solves a problem (the scenario's own settings), from
    ``point`` (a vertex of its LP relaxation) when given. Models with at most ``exact_up_to``
    integer columns get the exact MIP minimum; larger ones the LP relaxation's minimum (a lower
    bound), then margins on top until a re-solve from that LP's point verifies it.
    When that LP does not finish within ``time_limit``, :func:`least_uniform_scale` answers
    instead (an upper bound, verified). Re-solves use a soft deadline whatever the scenario
    says: every county on schedule in a soft plan is exactly a plan for the hard deadline, and
    the soft model always has a plan to show."""
    problem = _soft(problem)
    fm = formulate(problem)
    model = extra_money_model(fm)
    exact = int(fm.model.integrality.sum()) <= exact_up_to
    if not exact:
        model = model.relaxed()
    # the relaxation by interior point, as lp-fix solves its LP relaxation of the same size
    result = get_backend("highs").solve(model, SolveOptions(time_limit=time_limit, mip_gap=1e-6,
                                                            extra={} if exact else {"solver": "ipm"}))
    method = "MIP (exact minimum)" if exact else "LP relaxation (a lower bound on the money needed)"
    if result.status in (Status.INFEASIBLE,):
        return {"possible": False, "method": method, **say(
            "no amount of extra money puts every county on schedule: packages, personnel hours, mandatory "
            "project timing or share rules stand in the way (see the reasons per county)")}
    if not result.status.has_solution:
        return least_uniform_scale(problem, solve, why=f"the extra-money LP ended {result.status.value} "
                                   f"({result.raw_status})")
    extra = np.maximum(result.x[fm.model.num_cols:], 0.0) * MONEY_UNIT
    extra = np.where(extra > 1.0, np.ceil(extra), 0.0)  # whole yuan, and no crumbs
    lower_bound = -float(result.bound) * MONEY_UNIT if result.bound is not None else None
    point = None if exact else result.x[:fm.model.num_cols]  # the relaxation's plan with the extra money
    # re-solves from that point first (its fractional households in a MIP), margins on top until one
    # verifies; only when none does, the method's own searches, as cold re-solves
    for start in ((point, None) if point is not None else (None,)):
        for margin in (VERIFY_MARGINS if not exact else (0.0,)):
            added = np.ceil(extra * (1 + margin))
            plan = solve(dataclasses.replace(problem, fund_amount=problem.fund_amount + added), point=start)
            if on_schedule(plan):
                return {"possible": True, "method": method, "verified": True, "margin": margin,
                        "total_extra": float(added.sum()), "lower_bound": lower_bound,
                        "extra": _extra_rows(problem, added), "verified_plan": _kpis(plan),
                        **_sentence(problem, added)}
    return {"possible": True, "method": method, "verified": False, "total_extra": float(added.sum()),
            "lower_bound": lower_bound, "extra": _extra_rows(problem, added), "verified_plan": _kpis(plan),
            **say("the extra money found did not verify: re-solving with it left counties off schedule or years "
                  "behind their target")}


def on_schedule(plan: Plan) -> bool:
    """Every county on its hat-off year and every annual target met."""
    summary = plan.summary
    return (summary.get("counties_on_schedule") == summary.get("counties_total")
            and (summary.get("target_shortfall") or 0.0) <= 1e-6)


def least_uniform_scale(problem: Problem, solve, why: str = "") -> dict:
    """The least k (within SCALE_TOLERANCE) such that k times every fund puts every county on
    schedule, by doubling then bisecting with re-solves: an upper bound on the least extra money,
    verified by the re-solve that found it, for models whose extra-money LP is too slow."""
    problem = _soft(problem)

    def attempt(scale: float) -> tuple[np.ndarray, Plan, bool]:
        added = np.ceil(problem.fund_amount * (scale - 1.0))
        plan = solve(dataclasses.replace(problem, fund_amount=problem.fund_amount + added))
        return added, plan, on_schedule(plan)

    method = "least uniform scale of every fund, by bisection with re-solves (an upper bound on the money needed)"
    low, high = 1.0, 2.0
    found = attempt(high)
    while not found[2]:
        if high >= MAX_SCALE:
            return {"possible": None, "method": method, "note": why, **say(
                "even {scale:g} times every fund does not put every county on schedule in a re-solve: packages, "
                "hours, timing or share rules stand in the way, or the re-solves stop before they find such a plan",
                scale=MAX_SCALE)}
        low, high = high, 2 * high
        found = attempt(high)
    while high / low - 1 > SCALE_TOLERANCE:
        middle = (low * high) ** 0.5
        trial = attempt(middle)
        low, high, found = (low, middle, trial) if trial[2] else (middle, high, found)
    added, plan, _ = found
    return {"possible": True, "method": method, "note": why, "verified": True, "scale": high,
            "scale_not_enough": low if low > 1 else None, "total_extra": float(added.sum()), "lower_bound": None,
            "extra": _extra_rows(problem, added), "verified_plan": _kpis(plan),
            **say("{scale:.2f} times every fund would put every county on schedule ({money:,.0f} yuan more in all; "
                  "verified by re-solving{not_enough}). The least money, spent where it binds, may be lower",
                  scale=high, money=float(added.sum()),
                  not_enough=words("; {scale:.2f} times was not enough", scale=low) if low > 1 else "")}


def _soft(problem: Problem) -> Problem:
    return dataclasses.replace(problem, policy=problem.policy.model_copy(update={"deadline": "soft"}))


def _extra_rows(p: Problem, added: np.ndarray) -> list[dict]:
    return [{"source_id": str(p.source_ids[p.fund_source[r]]), "year": int(p.years[p.fund_year[r]]),
             "extra": float(added[r])} for r in np.flatnonzero(added > 0)]


def _kpis(plan: Plan) -> dict:
    return {k: plan.summary.get(k) for k in ("status", "expected_exits", "sustained_exits", "counties_on_schedule",
                                              "counties_total", "target_shortfall", "total_shortfall")}


def _sentence(p: Problem, added: np.ndarray) -> dict:
    """The extra money per source and year in words (:func:`say`)."""
    if not added.any():
        return say("no extra money is needed: every county can be on schedule with the money there is")
    parts = [words("{money:,.0f} yuan more {source} money in {year}", money=float(added[r]),
                   source=str(p.source_ids[p.fund_source[r]]), year=int(p.years[p.fund_year[r]]))
             for r in np.flatnonzero(added > 0)]
    return say("{money:,.0f} yuan in all would put every county on schedule: {parts}", money=float(added.sum()),
               parts=listed(parts))


def explain_plan(folder: str | Path, *, money: bool = True, earliest: bool = True, extra: ExtraMoney | None = None,
                 progress=None) -> dict:
    """Everything ``allocator explain`` tells about a plan folder (the caller that owns the
    folder writes it there: :func:`write_difficulties`): the difficulties per county, for a
    plan with no solution the conflicting rules, marginal values (the plan's
    :func:`marginal_section`), with ``money`` what it would take (when a county is off
    schedule or there is no plan), with ``earliest`` the earliest deadline per county (one
    re-solve per year), and with ``extra`` where that money would go (:func:`extra_money`,
    checked before any re-solve)."""
    progress = progress or quiet
    progress("rebuild the model")
    context = load_plan_context(folder)
    plan, settings, problem = context.plan, context.scenario.solver, context.problem
    if extra is not None:
        check_extra(problem, extra)
    fm = context.formulation()
    found = difficulties(fm, plan)
    if plan.summary.get("expected_exits") is None:
        progress("smallest conflicting set of rules (IIS of the LP relaxation)")
        found["conflict"] = conflict(fm, time_limit=settings.time_limit)
    if plan.summary.get("expected_exits") is not None:
        found["marginal_values"] = marginal_section(plan, fm, LP_FIX_MAX_INTEGER_COLUMNS, progress)
        found["equity"] = equity_section(plan)

    def resolve(changed: Problem, label: str, warm: Plan | None = None, point: np.ndarray | None = None) -> Plan:
        """A re-solve with the scenario's settings, its progress labelled."""
        def report(phase: str, **info) -> None:
            if phase in RESOLVE_PHASES:
                progress(f"{label}: {phase}", **info)

        limited = settings if point is None else settings.model_copy(update={"time_limit": min(
            settings.time_limit or VERIFY_SECONDS, VERIFY_SECONDS)})
        return solve_problem(changed, limited, progress=report, warm=warm, point=point, price_of_fairness=False)

    def more_money(changed: Problem, point: np.ndarray | None = None) -> Plan:
        """The plan stays feasible with more money: it starts the search, or ``point`` does (its MIP
        for at most VERIFY_SECONDS: with a household short its gap, at the shortfall's penalty, never closes)."""
        return resolve(changed, "what it would take", warm=plan, point=point)

    def trial_deadline(changed: Problem) -> Plan:
        return resolve(changed, f"deadline {changed.deadline_year}")

    def earliest_years() -> dict:
        solved = plan.counties if plan.summary.get("expected_exits") is not None else None
        table, runs = earliest_deadlines(problem, context.tables, trial_deadline, at_deadline=solved,
                                         threads=settings.threads or EXPLAIN_THREADS, progress=progress)
        return {"counties": table.astype(object).where(table.notna(), None).to_dict("records"), "runs": runs}

    # the earliest deadlines do not depend on what it would take: they run beside it, in a thread
    # (HiGHS releases the GIL), so their LP screen and re-solves overlap its LP and verification
    with ThreadPoolExecutor(max_workers=1) as beside:
        if earliest:
            progress("earliest deadline per county: a re-solve per year")
            earliest_job = beside.submit(earliest_years)
        if money and (found["counties_off_schedule"] or plan.summary.get("expected_exits") is None):
            progress("what it would take: least extra money, then a re-solve to verify it")
            found["what_it_would_take"] = what_it_would_take(problem, more_money,
                                                             exact_up_to=EXACT_MAX_INTEGER_COLUMNS,
                                                             time_limit=settings.time_limit)
        if earliest:
            found["earliest_deadlines"] = earliest_job.result()
    if extra is not None:
        progress("extra money: a re-solve from the plan", extra=f"{extra.source_id}:{extra.year}:{extra.amount:,.0f}")
        found["extra_money"] = extra_money(context, extra)
    return found


def write_difficulties(folder: str | Path, found: dict) -> Path:
    """Write what :func:`explain_plan` found into the plan folder's ``difficulties.json``. The
    folder must be allocator's own: check it before the work
    (:func:`allocator.inputs.provenance.check_output_folder`)."""
    folder = Path(folder)
    with output_folder(folder):
        (folder / DIFFICULTIES).write_text(json.dumps(found, indent=2, default=str))
    return folder / DIFFICULTIES


def marginal_section(plan: Plan, fm: Formulation | None = None, lp_up_to: int = 0, progress=quiet) -> dict:
    """The plan's marginal values (its ``marginal_values.csv``, :mod:`allocator.optimize.marginal`) as
    difficulties.json holds them; a plan written without them gets, given its formulation
    ``fm``, its LP relaxation's duals on models up to ``lp_up_to`` integer columns. Given ``fm``,
    each row has its region's name (``region_name``) for the sentences."""
    table = plan.marginal_values
    if table is None and fm is not None and int(fm.model.integrality.sum()) <= lp_up_to:
        progress("marginal values: duals of the LP relaxation")
        prices = lp_prices(fm)
        table = None if prices is None else marginal_values(fm, prices, LP_DUAL)
    if table is None:
        return {"method": None, "rows": [], "note": "not computed: the plan has no marginal values and the model is "
                "too large for its LP relaxation here; solve it again to have them"}
    if fm is not None:
        table = table.assign(region_name=table["region_id"].astype(str).map(region_names(fm.problem.tables))
                             .astype(object).fillna(""))
    rows = table.astype(object).where(table.notna(), None).to_dict("records")
    return {**summarise(table, plan.summary.get("shortfall_penalty", fm.penalty if fm else 0.0)), "rows": rows}


def conflict(fm: Formulation, time_limit: float | None = None) -> dict:
    """The smallest set of rules that cannot hold together, in planner words; without rules,
    and saying why, when the LP relaxation is feasible (then only whole-number decisions stand
    in the way) or the search found none in time.

    It is an IIS of the LP relaxation (HiGHS ``getIis``): drop any one rule of it and the
    rest can hold. Rows that only route money (spend paid by funds) and the bounds of single
    decisions are the model's plumbing: they are counted, not listed."""
    backend = iis_backend()
    found = backend.iis(fm.model, time_limit)
    method = f"IIS of the LP relaxation ({BACKEND_NAMES.get(backend.name, backend.name)})"
    if not found.found:
        why = (say("the LP relaxation has a solution: only whole-number decisions (a package or a project is taken "
                   "or not) stand in the way, so no set of rules conflicts on its own")
               if found.lp_status == "Optimal" else
               say("no conflicting set of rules was found (the LP relaxation ended: {status})", status=found.lp_status))
        return {"method": method, "rules": [], "plumbing": 0, **why}
    p = fm.problem
    regions = region_names(p.tables)
    rules = []
    plumbing = 0
    for r in found.rows:
        family = next(f for f in fm.families if f.rows.start <= r < f.rows.stop)
        i = int(r - family.rows.start)
        sentence = _rule_sentence(fm, family.name, {k: v[i] for k, v in family.keys.items()}, i, regions)
        if sentence is None:
            plumbing += 1
        else:
            rules.append({"rule": family.title, **sentence})
    hard = np.flatnonzero((found.cols >= fm.shortfall_cols.start) & (found.cols < fm.shortfall_cols.stop))
    if len(hard):
        counties, targets = p.county_ids[fm.shortfall_counties], fm.shortfall_targets
        names = listed([named(counties[j - fm.s_cols.start], regions) if j < fm.s_cols.stop else
                        _target_name(p, targets[j - fm.t_cols.start], regions) for j in found.cols[hard]], ", ")
        rules.append({"rule": "Hard deadline", **say("the deadline is hard: no shortfall is allowed in {names}",
                                                      names=names)})
    plumbing += len(found.cols) - len(hard)
    return {"method": method, "rules": rules, "plumbing": plumbing,
            **say("these rules cannot all hold together (drop any one and the rest can): {rules}",
                  rules=listed([rule["message"] for rule in rules]))}


def _rule_sentence(fm: Formulation, family: str, key: dict, row: int, regions: pd.Series) -> dict | None:
    """One row of a conflict in planner words (:func:`say`), regions named by ``regions``; None for the
    model's plumbing."""
    p = fm.problem
    if family == "county_exit":
        c = int(key["county"])
        need = p.county_registered_poor[c] - p.county_threshold[c] * p.county_rural_population[c]
        return say("county {county} must be below {threshold:.0%} incidence by the end of {year}: at least "
                   "{need:,.1f} of its {poor:,.0f} poor households must exit", county=named(p.county_ids[c], regions),
                   threshold=float(p.county_threshold[c]), year=int(p.years[p.county_hat_off[c]]), need=float(need),
                   poor=float(p.county_registered_poor[c]))
    if family == "annual_target":
        k = int(key["target"])
        return say("{target}: at most {share:.1%} of its {members:,} poor households may still be poor at the end "
                   "of {year}", target=_target_name(p, k, regions), share=float(p.target_share[k]),
                   members=int(p.target_households(k).sum()), year=int(p.years[p.target_year[k]]))
    if family == "source_budget":
        window = budget_windows(p)[row]
        total = fm.model.row_hi[fm.family("source_budget").rows.start + row]
        s, a, b = window
        carried = (words(" (with carry-over, up to that year)") if a == 0 and p.source_carry_over[s] else
                   words(" (money older than its carry-over years is recalled)") if a > 0 else "")
        return say("fund {fund} has {money:,.0f} yuan{carried}", fund=_window_name(p, window), money=float(total),
                   carried=carried)
    if family == "spend_pace":
        r = int(key["fund"])
        return say("source {source} must have spent {share:.0%} of its money by the end of {year}",
                   source=str(p.source_ids[p.fund_source[r]]), share=float(p.fund_min_spend[r]),
                   year=int(p.years[p.fund_year[r]]))
    if family == "source_category_share":
        text = ("at least {share:.0%} of source {source}'s spend goes to {category}" if key["kind"] == "min" else
                "at most {share:.0%} of source {source}'s spend goes to {category}")
        return say(text, share=float(key["share"]), source=str(p.source_ids[int(key["source"])]),
                   category=words(CATEGORIES[int(key["category"])]))
    if family == "county_floor":
        return say("county {county} gets at least {share:.0%} of source {source}'s spend",
                   county=named(p.county_ids[int(key["county"])], regions), share=float(key["share"]),
                   source=str(p.source_ids[int(key["source"])]))
    if family == "county_floor_per_poor":
        c = int(key["county"])
        return say("county {county} gets at least {floor:,.0f} yuan per registered poor household over all sources "
                   "and years ({need:,.0f} yuan for {poor:,.0f} households; policy.equity.county_floor_per_poor)",
                   county=named(p.county_ids[c], regions), floor=float(p.policy.equity.county_floor_per_poor or 0.0),
                   need=float(key["need"]), poor=float(p.county_registered_poor[c]))
    if family in ("exit_rate_low", "exit_rate_high"):
        c = int(key["county"])
        low = "county {county}'s exit rate is at least the lowest county exit rate held by the max-min objective"
        high = ("county {county}'s exit rate is within the spread cap of the others "
                "(policy.equity.max_exit_rate_spread)")
        text = low if family == "exit_rate_low" else high
        return say(text, county=named(p.county_ids[c], regions))
    if family == "exit_rate_spread":
        return say("county exit rates differ by at most {cap:.1%} (policy.equity.max_exit_rate_spread)",
                   cap=float(key["cap"]))
    if family == "project_once":
        q = int(key["project"])
        if not p.proj_mandatory[q]:
            return None
        latest = p.deadline_year - int(p.proj_duration[q]) + 1
        timing = (words("it cannot finish by {deadline} if it starts after {latest}", deadline=int(p.deadline_year),
                        latest=int(latest)) if latest >= p.start_year else
                  words("it cannot finish by {deadline} even if it starts in {start}", deadline=int(p.deadline_year),
                        start=int(p.start_year)))
        return say("{project} in village {village} is mandatory and takes {years} years: {timing}",
                   project=str(p.proj_ids[q]), village=named(p.village_ids[p.proj_village[q]],
                                                             village_names(p.tables)),
                   years=int(p.proj_duration[q]), timing=timing)
    if family == "personnel":
        return say("cadres in {region} have {hours:,.0f} hours in {year}", region=named(personnel_region(p, row),
                                                                                      regions),
                   hours=float(p.pers_hours[row]), year=int(p.years[p.pers_year[row]]))
    if family == "category_share":
        return say("the category share rule {rule} holds", rule=_share_name(fm, row))
    if family == "prerequisites":
        return say("household {household}'s package needs project {project} finished first",
                   household=str(p.household_ids[int(key["household"])]),
                   project=str(p.proj_ids[int(key["project"])]))
    return None


def _target_name(p: Problem, k: int, regions: pd.Series) -> dict:
    """An annual target in words (a message: :func:`words`), its region named by ``regions``."""
    region = str(p.target_region[k])
    return words("the {year} target of {region}", year=int(p.years[p.target_year[k]]),
                 region=words("the whole scenario") if region == "" else named(region, regions))


def hopeless_counties(problem: Problem) -> np.ndarray:
    """Mask of the counties that no plan puts on schedule at ``problem``'s deadline: the LP
    relaxation, spending for that county alone (least shortfall of its exit row), leaves it
    short. The trial problems of :func:`earliest_deadlines` are nested (an earlier deadline has
    less money, fewer hours, less time, exits counted earlier), so such a county is off schedule
    at every earlier deadline too."""
    fm = formulate(problem)
    relaxed = fm.model.relaxed()
    hopeless = np.zeros(len(problem.county_ids), dtype=bool)
    for i, c in enumerate(fm.shortfall_counties):
        objective = np.zeros(relaxed.num_cols)
        objective[fm.s_cols.start + i] = -1.0
        result = get_backend("highs").solve(dataclasses.replace(relaxed, c=objective, offset=0.0),
                                            SolveOptions(extra={"solver": "ipm"}))
        hopeless[c] = result.status == Status.OPTIMAL and -result.objective > SCREEN_TOL
    return hopeless


def earliest_deadlines(problem: Problem, tables: dict[str, pd.DataFrame], solve,
                       at_deadline: pd.DataFrame | None = None, threads: int = 1,
                       progress=quiet) -> tuple[pd.DataFrame, list[dict]]:
    """Per county, the earliest year it can be on schedule with the money there is.

    For each year d from the start to the deadline, the scenario is solved again as if d
    were the deadline: only the money and cadre hours of the years up to d, exits counted
    only when they come by d, and mandatory projects not required to finish by d (they are
    due at the real deadline). ``solve(problem) -> Plan`` uses the scenario's own settings;
    each re-solve (with a soft deadline, whatever the scenario says) maximises the counties on
    schedule by d, then exits. A county's earliest
    year is the first d whose plan has it on schedule (missing: not even by the deadline).
    ``at_deadline``, the counties table of a plan already solved for the real deadline (with
    no earlier hat-off years and no annual targets), saves the last re-solve. The re-solves are
    independent: ``threads`` of them run at once (HiGHS releases the GIL), each reported to
    ``progress`` when done. With at most SCREEN_MAX_COUNTIES counties, an LP per county at the
    deadline comes first (:func:`hopeless_counties`): when none can make it, no re-solve runs.
    Returns that table and one row per year (deadline, counties on schedule)."""
    problem = _soft(problem)  # which counties can, not whether all can
    # each county judged at the trial deadline, without the schedule's targets
    policy = problem.policy.model_copy(update={"annual_targets": {}})
    plain = not len(problem.target_year) and bool(np.all(problem.county_hat_off == len(problem.years) - 1))

    def trimmed(year: int) -> Problem:
        trimmed = {**tables,
                   "funds": tables["funds"][tables["funds"]["year"] <= year],
                   "personnel": tables["personnel"][tables["personnel"]["year"] <= year],
                   "projects": tables["projects"].assign(mandatory=False),
                   "regions": tables["regions"].assign(hat_off_year=pd.NA).astype({"hat_off_year": "Int64"}),
                   "targets": tables["targets"].iloc[0:0] if "targets" in tables else None}
        return build_problem({k: v for k, v in trimmed.items() if v is not None}, name=problem.name,
                             start_year=int(problem.years[0]), deadline_year=int(year), policy=policy, validate=False)

    def trial(year: int) -> Problem | None:
        if year == problem.deadline_year and (plain or at_deadline is None):
            return None if at_deadline is not None else dataclasses.replace(
                problem, policy=policy, county_hat_off=np.full(len(problem.county_ids), len(problem.years) - 1),
                target_region=problem.target_region[:0], target_year=problem.target_year[:0],
                target_share=problem.target_share[:0], target_county_ok=problem.target_county_ok[:0])
        return trimmed(year)

    years = [int(y) for y in problem.years]
    if len(problem.county_ids) <= SCREEN_MAX_COUNTIES:
        progress("earliest deadline: LP screen at the deadline", counties=len(problem.county_ids))
        if hopeless_counties(trimmed(years[-1])).all():  # then at no earlier deadline either: no re-solve
            earliest = pd.Series(pd.NA, index=pd.Index(problem.county_ids, name="county_id"), dtype="Int64")
            return earliest.reset_index(name="earliest_year"), [
                {"deadline": year, "counties_on_schedule": 0, "by": "LP screen"} for year in years]
    done = []

    def counties_by(year: int) -> pd.DataFrame:
        changed = trial(year)
        counties = at_deadline if changed is None else solve(changed).counties
        done.append(year)
        progress("earliest deadline", deadline=str(year), done=len(done), of=len(years))
        return counties

    with ThreadPoolExecutor(max_workers=max(1, min(threads, len(years)))) as pool:
        solved = list(pool.map(counties_by, years))
    earliest = pd.Series(pd.NA, index=pd.Index(problem.county_ids, name="county_id"), dtype="Int64")
    runs = []
    for year, counties in zip(years, solved, strict=True):
        on = counties.loc[counties["on_schedule"].astype(bool), "county_id"].astype(str)
        runs.append({"deadline": year, "counties_on_schedule": int(len(on))})
        fresh = earliest.index.isin(on) & earliest.isna().to_numpy()
        earliest[fresh] = year
    return earliest.reset_index(name="earliest_year"), runs


__all__ = ["binding_rows", "conflict", "difficulties", "earliest_deadlines", "explain_plan",
           "extra_money_model",
           "least_uniform_scale", "marginal_section", "plan_difficulties", "what_it_would_take",
           "write_difficulties"]
