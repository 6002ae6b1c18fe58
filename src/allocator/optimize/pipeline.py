"""The pipeline: load → check → build → solve → plan, each step public.

``auto`` picks the method (:mod:`allocator.optimize.methods`, :mod:`allocator.optimize.decompose`): see
:func:`choose_method`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import platform
import sys
import time

import numpy as np
import pandas as pd

from allocator.inputs.provenance import input_fingerprint, input_hashes, made_from, table_encodings
from allocator.inputs.raw import RAW_SPECS
from allocator.inputs.scenario import Scenario, SolverSettings
from allocator.model.formulation import Formulation, formulate
from allocator.model.problem import Problem, build_problem
from allocator.model.size import MODEL_MEMORY_LIMIT, ModelSize, estimate_size
from allocator.optimize.baselines import BASELINES, baseline_plan, compare_baselines, not_applicable
from allocator.optimize.decompose import solve_decompose
from allocator.optimize.equity import (
    ESTIMATED,
    RESOLVED,
    estimate_from_prices,
    hold_lowest_rate,
    maxmin_stage,
    rules_in_force,
    use_resolve,
)
from allocator.optimize.marginal import LP_DUAL, lp_prices, marginal_values, summarise
from allocator.optimize.methods import (
    Bounds,
    Outcome,
    ProgressCallback,
    close_behind_target,
    final_status,
    plan_bounds,
    quiet,
    solve_exact,
    solve_from_point,
    solve_lp_fix,
)
from allocator.optimize.parallel import dask_client
from allocator.plan.context import plan_vector
from allocator.plan.plan import Plan, make_plan, shortfall_vector
from allocator.solvers import get_backend
from allocator.solvers.base import SolveOptions, Status
from allocator.targeting.pipeline import load_tables
from allocator.version import __version__

RAW_TABLE_NAMES = tuple(RAW_SPECS)

EXACT_MAX_INTEGER_COLUMNS = 5000  # branch and bound beyond this takes minutes (benchmarks/README.md)
LP_FIX_MAX_INTEGER_COLUMNS = 150_000  # multi-year LPs beyond this take minutes (h10k-5y: 113k, 65-100 s)
METHODS = {"exact": solve_exact, "lp-fix": solve_lp_fix, "decompose": solve_decompose}



def options_from(settings: SolverSettings) -> SolveOptions:
    """Backend options from the scenario's solver settings."""
    return SolveOptions(time_limit=settings.time_limit, mip_gap=settings.mip_gap, threads=settings.threads,
                        seed=settings.seed, verbose=settings.verbose, group_columns=settings.group_columns)


def choose_method(fm: Formulation, settings: SolverSettings, estimate: ModelSize | None = None,
                  distributed: bool = False) -> str:
    """``decompose`` when the solve is to run on Dask (``distributed``) or one solver run on the
    whole model would take more than MODEL_MEMORY_LIMIT (``estimate``); else ``exact`` for small
    models (at most EXACT_MAX_INTEGER_COLUMNS integer columns), ``lp-fix`` for one-year models
    and others up to LP_FIX_MAX_INTEGER_COLUMNS, whose LP relaxation HiGHS solves in a minute
    or two, and ``decompose`` above (benchmarks/README.md)."""
    if settings.method != "auto":
        return settings.method
    if distributed or (estimate is not None and estimate.memory_bytes > MODEL_MEMORY_LIMIT):
        return "decompose"
    integer_columns = int(fm.model.integrality.sum())
    if integer_columns <= EXACT_MAX_INTEGER_COLUMNS:
        return "exact"
    if len(fm.problem.years) == 1 or integer_columns <= LP_FIX_MAX_INTEGER_COLUMNS:
        return "lp-fix"
    return "decompose"


def solve_problem(problem: Problem, settings: SolverSettings, *, progress: ProgressCallback = quiet,
                  manifest: dict | None = None, baselines: bool = False, scheduler: str | None = None,
                  workers: int | None = None, client=None, warm: Plan | None = None,
                  point: np.ndarray | None = None, price_of_fairness: bool = True) -> Plan:
    """Estimate the model's size, formulate, solve with the chosen method and backend, and
    return the Plan; with ``baselines``, also the usual rules' plans (:mod:`allocator.optimize.baselines`)
    and the uplift. ``warm``: a plan of the same households and projects (another problem's,
    e.g. with more money) whose decisions start the search where the backend takes a start.
    ``point``: a vertex of this model's LP relaxation to fix and resolve from
    (:func:`~allocator.optimize.methods.solve_from_point`) instead of the method's own search.

    With ``client`` (a Dask client), ``scheduler`` (the address of a Dask scheduler) or
    ``workers`` (a new LocalCluster of that many processes), ``auto`` picks ``decompose`` and
    its groups of counties run as Dask tasks there (:func:`allocator.optimize.parallel.dask_client`).

    With equity rules in force (``policy.equity``), the max-min objective runs as a first stage
    and ``price_of_fairness`` (when true) re-solves without each rule or estimates its price
    (:mod:`allocator.optimize.equity`)."""
    estimate = estimate_size(problem)
    progress("estimate", rows=estimate.rows, columns=estimate.columns, nonzeros=estimate.nonzeros,
             memory_MB=round(estimate.memory_bytes / 1e6))
    started = time.perf_counter()
    progress("build model", **problem.sizes())
    fm = formulate(problem)
    build_seconds = time.perf_counter() - started
    progress("model built", columns=fm.model.num_cols, rows=fm.model.num_rows, nonzeros=fm.model.A.nnz,
             seconds=build_seconds)
    distributed = client is not None or scheduler is not None or workers is not None
    method_name = choose_method(fm, settings, estimate, distributed)
    options = dataclasses.replace(options_from(settings), progress=progress)
    if warm is not None and warm.summary.get("expected_exits") is not None:

        options = dataclasses.replace(options, start=plan_vector(fm, warm))
    backend = get_backend(settings.backend)
    where = None  # the Dask scheduler decompose runs on
    with contextlib.ExitStack() as stack:
        if method_name == "decompose" and distributed:
            if client is None:

                progress("start Dask", scheduler=scheduler, workers=None if scheduler else workers)
                client = stack.enter_context(dask_client(scheduler, workers))
                where = scheduler or f"LocalCluster (workers: {len(client.nthreads())})"
            else:
                where = client.scheduler.address
        solve_started = time.perf_counter()
        on_dask = {"client": client} if where else {}  # only decompose runs on Dask (``where`` is set)
        greedy = None
        stage = None
        if point is not None:
            outcome = solve_from_point(fm, settings.backend, point, options, progress)
            method_name = f"{method_name} (from a given LP point)"
        else:
            if problem.policy.equity.objective == "maxmin" and fm.rate_col(0) is not None:
                stage = maxmin_stage(fm, method_name, METHODS, settings.backend, options, progress, **on_dask)
                if stage.rate is not None:
                    fm = hold_lowest_rate(fm, stage)
                    options = dataclasses.replace(options, start=stage.x)
            from_rule = {}
            if method_name == "decompose" and not_applicable(fm, "greedy") is None:
                progress("greedy rule's plan: a start for decompose")
                rule_started = time.perf_counter()
                greedy = baseline_plan(fm, "greedy")
                if greedy.summary.get("expected_exits") is not None:
                    from_rule["incumbent"] = plan_vector(fm, greedy)
                if options.time_limit is not None:  # its seconds count in the method's time limit
                    options = dataclasses.replace(options, time_limit=max(
                        options.time_limit - (time.perf_counter() - rule_started), 1.0))
            outcome = METHODS[method_name](fm, settings.backend, options, progress, **on_dask, **from_rule)
        if stage is not None:
            outcome.notes.insert(0, stage.message)
            outcome.phases["maxmin_stage"] = round(stage.seconds, 4)
        outcome = close_behind_target(fm, outcome, settings.backend, options, progress)
        solve_seconds = time.perf_counter() - solve_started
    if distributed and where is None:
        outcome.notes.append(f"Dask is used by decompose only: {method_name} ran in this process")
    summary = {
        "scenario": problem.name,
        "status": None, "stopped_by": None,
        "backend": settings.backend, "method": method_name,
        "start_year": problem.start_year, "deadline_year": problem.deadline_year,
        "bound": None, "gap": None, "shortfall_bound": None, "shortfall_gap": None,
        "shortfall_penalty": fm.penalty, "objective_bound": outcome.bound,
        "build_seconds": round(build_seconds, 4), "solve_seconds": round(solve_seconds, 4),
        "phase_seconds": outcome.phases,
        "raw_status": outcome.result.raw_status,
        "message": "; ".join(outcome.notes + ([outcome.result.message] if outcome.result.message else [])),
    }
    x = outcome.result.x if outcome.result.status.has_solution else None
    plan = make_plan(fm, x, summary)
    plan.problem = problem
    bounds = Bounds(None, None, None, None)
    if x is not None:
        bounds = plan_bounds(fm, outcome, shortfall_vector(fm, plan), plan.summary["value"])
        plan.marginal_values = marginal_table(fm, outcome, progress)
        if plan.marginal_values is not None:
            plan.summary["marginal_values"] = summarise(plan.marginal_values, fm.penalty)
    status, stopped_by = final_status(outcome, bounds, options.mip_gap)
    gap = bounds.exits_gap
    plan.summary.update(status=status.value, stopped_by=stopped_by.value if stopped_by else None,
                        bound=bounds.exits_bound, gap=gap, shortfall_bound=bounds.shortfall_bound,
                        shortfall_gap=bounds.shortfall_gap)
    if status == Status.INFEASIBLE:
        plan.summary["message"] = "; ".join(filter(None, [plan.summary["message"], infeasibility_hint(fm)]))
    if stage is not None:
        plan.summary["equity"]["maxmin_stage"] = {"lowest_exit_rate": stage.rate, "bound": stage.bound}
    broken = plan.summary["equity"]["broken"]
    if broken:  # no method should leave one: said loudly if one does
        plan.summary["message"] = "; ".join(filter(None, [plan.summary["message"]] + [
            f"equity rule {b['rule']} broken: {b['message']} (by {b['by']:.6g})" for b in broken]))
    plan.summary["price_of_fairness"], plan.summary["price_of_fairness_method"] = {}, {}
    if price_of_fairness and x is not None and problem.policy.equity.price_of_fairness != "off":
        fairness_price(plan, fm, outcome, settings, method_name, progress)
    plan.summary["manifest"] = {
        "allocator_version": __version__, "backend": settings.backend, "backend_version": backend.version(),
        "python": sys.version.split()[0], "platform": platform.platform(),
        "options": options.to_dict(), "method": method_name, "scheduler": where, "estimate": estimate.as_dict(),
        "model": {"columns": fm.model.num_cols, "rows": fm.model.num_rows, "nonzeros": int(fm.model.A.nnz),
                  "integer_columns": int(fm.model.integrality.sum())},
        "problem": problem.sizes(),
        **(manifest or {}),
    }
    progress("plan ready", status=status.value, expected_exits=plan.summary.get("expected_exits"),
             sustained_exits=plan.summary.get("sustained_exits"), value=plan.summary.get("value"),
             bound=bounds.exits_bound, gap=gap, shortfall=plan.summary.get("total_shortfall"))
    if baselines:
        skipped = {rule: why for rule in BASELINES if (why := not_applicable(fm, rule))}
        for rule in (r for r in BASELINES if r not in skipped):
            plan.baselines[rule] = greedy if rule == "greedy" and greedy is not None else baseline_plan(fm, rule)
            plan.baselines[rule].summary["manifest"] = {**plan.summary["manifest"], "method": f"baseline:{rule}"}
            progress(f"baseline {rule}", expected_exits=plan.baselines[rule].summary.get("expected_exits"),
                     counties_on_schedule=plan.baselines[rule].summary.get("counties_on_schedule"))
        for rule, why in skipped.items():
            progress(f"baseline {rule}: not applicable", reason=why)
        plan.summary["baselines"] = compare_baselines(plan, plan.baselines, skipped)
    return plan


def fairness_price(plan: Plan, fm: Formulation, outcome: Outcome, settings: SolverSettings, method: str,
                   progress: ProgressCallback) -> None:
    """``price_of_fairness`` in the plan's summary: per equity rule in force, the expected exits
    it costs, by a re-solve without it with the same method, or estimated from its row prices
    (:mod:`allocator.optimize.equity`); ``price_of_fairness_method`` says which."""
    problem = fm.problem
    resolve = use_resolve(fm, method)
    prices = outcome.row_prices
    if not resolve and prices is None and int(fm.model.integrality.sum()) <= LP_FIX_MAX_INTEGER_COLUMNS:
        prices = lp_prices(fm)
    same = settings.model_copy(update={"method": method})
    for rule in rules_in_force(fm):
        if resolve:
            progress("price of fairness: re-solve without the rule", rule=rule)
            policy = problem.policy.model_copy(update={"equity": problem.policy.equity.without(rule)})
            other = solve_problem(dataclasses.replace(problem, policy=policy), same, price_of_fairness=False)
            exits = other.summary.get("expected_exits")
            lost = None if exits is None else float(exits) - float(plan.summary["expected_exits"])
            plan.summary["price_of_fairness"][rule] = lost
            plan.summary["price_of_fairness_method"][rule] = RESOLVED
            plan.summary["equity"].setdefault("without", {})[rule] = {
                "expected_exits": exits, "status": other.summary.get("status"),
                "min_exit_rate": other.summary["equity"]["min_exit_rate"],
                "max_exit_rate": other.summary["equity"]["max_exit_rate"]}
            progress("price of fairness", rule=rule, exits_lost=lost)
        else:
            plan.summary["price_of_fairness"][rule] = estimate_from_prices(fm, rule, prices)
            plan.summary["price_of_fairness_method"][rule] = ESTIMATED


def marginal_table(fm: Formulation, outcome: Outcome, progress: ProgressCallback = quiet) -> pd.DataFrame | None:
    """The marginal values of a solve (:mod:`allocator.optimize.marginal`): from the method's own row
    prices (lp-fix's LP duals, decompose's multipliers), else (exact) the LP relaxation's duals
    on models up to LP_FIX_MAX_INTEGER_COLUMNS; None when there are none."""
    prices, method = outcome.row_prices, outcome.price_method
    if prices is None and int(fm.model.integrality.sum()) <= LP_FIX_MAX_INTEGER_COLUMNS:
        progress("marginal values: LP relaxation")
        prices, method = lp_prices(fm), LP_DUAL
    if prices is None:
        return None
    progress("marginal values", method=method)
    return marginal_values(fm, prices, method)


def infeasibility_hint(fm: Formulation) -> str:
    """Plain words for the infeasibilities that can be seen without a solver."""
    p = fm.problem
    no_start = fm.unstartable_mandatory()
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
    floor = p.policy.equity.county_floor_per_poor
    if floor:
        need = floor * p.county_registered_poor.astype(float)
        money = float(p.fund_amount.sum())
        payable = (p.fund_county_ok.astype(float).T @ p.fund_amount) if len(p.fund_amount) else \
            np.zeros(len(p.county_ids))
        short = np.flatnonzero(payable < need - 1e-6)
        if need.sum() > money + 1e-6:
            hints.append(f"policy.equity.county_floor_per_poor: {floor:,.0f} yuan per registered poor household "
                         f"asks {need.sum():,.0f} yuan in all, above the {money:,.0f} yuan of every fund")
        for c in short[:5]:
            hints.append(f"policy.equity.county_floor_per_poor: county {p.county_ids[c]} needs {need[c]:,.0f} yuan "
                         f"and its funds hold {payable[c]:,.0f}")
        if not hints:
            hints.append(f"policy.equity.county_floor_per_poor ({floor:,.0f} yuan per registered poor household) "
                         "may not be payable with these packages, projects and rules")
    if p.policy.deadline == "hard" and not hints:
        hints.append("the deadline is hard: no plan puts every county on schedule with this money, "
                     "these personnel hours and these rules")
    return "; ".join(hints)


def solve(scenario: Scenario, *, progress: ProgressCallback = quiet, backend: str | None = None,
          settings: SolverSettings | None = None, baselines: bool = False, scheduler: str | None = None,
          workers: int | None = None, client=None) -> Plan:
    """Run a whole scenario: load and check its tables, build, solve and return the Plan
    (``scheduler``, ``workers`` and ``client``: on Dask, see :func:`solve_problem`)."""
    settings = settings or scenario.solver
    if backend is not None:
        settings = settings.model_copy(update={"backend": backend})
    get_backend(settings.backend)  # fail fast on an unknown or missing backend
    progress("read and check tables")
    tables = load_tables(scenario)
    problem = build_problem(tables, name=scenario.name, start_year=scenario.start_year,
                            deadline_year=scenario.deadline_year, policy=scenario.policy, validate=False)
    hashes = input_hashes(scenario)
    derived = made_from(scenario)
    manifest = {"inputs": hashes, "input_fingerprint": input_fingerprint(scenario, hashes),
                **({"made_from": derived} if derived else {}), "encodings": table_encodings(scenario),
                "seed": settings.seed,
                "policy": scenario.policy.model_dump(mode="json"),
                "scenario_file": str(scenario.source) if scenario.source is not None else None,
                "generate": scenario.generate.model_dump() if scenario.generate else None,
                "money_scale": scenario.money_scale, "money": scenario.money,
                **({"overrides": scenario.overrides} if scenario.overrides else {})}
    return solve_problem(problem, settings, progress=progress, manifest=manifest, baselines=baselines,
                         scheduler=scheduler, workers=workers, client=client)
