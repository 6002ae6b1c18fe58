"""Equity rules under every method: the max-min objective's first stage and the price of fairness.

The rules themselves are row families of the model (:mod:`allocator.model.formulation`:
``county_floor_per_poor``, ``exit_rate_low``, ``exit_rate_high``, ``exit_rate_spread``), so
``exact`` and ``lp-fix`` keep them as they keep every row, and ``decompose`` keeps the floor in
its flow LP and prices the exit-rate rows like the schedule's (its plans all pass through a
solve with every row, so a plan it returns keeps them).

**Max-min** (``policy.equity.objective: maxmin``) is lexicographic, in two stages: the chosen
method first maximises the lowest county exit rate (:meth:`Formulation.maxmin_model`), then
solves the usual objective with the lowest rate held at what stage 1 found
(:meth:`Formulation.with_lowest_rate`), started from stage 1's plan. ``exact`` proves stage 1
optimal; the heuristics' stage 1 is their best plan, and its bound is reported.

**Price of fairness**: the expected exits each rule in force costs. On models up to
:data:`RESOLVE_MAX_INTEGER_COLUMNS` integer columns (``auto``), or always with ``resolve``, the
problem is solved again without the rule with the same method and settings (so also on
larger models that exact or lp-fix solve whole: a re-solve costs one more solve), and the price
is the difference in expected exits (a heuristic's re-solve can make it slightly negative: it is
shown as found). Above it (or with ``duals``), an estimate from the rule's row prices (LP duals
or decompose's multipliers): sum over its rows of |price| x |row bound|, the first-order change
in the objective of dropping the rows, in objective units (about exits); an estimate, not a
bound, and said so. Heuristic runs (lp-fix, decompose) stop within their gap, so a rule
that does not bind can show a price of a few exits either way: the two plans' gaps say how
much of it is noise.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from allocator.inputs.scenario import EQUITY_RULES
from allocator.model.formulation import EQUITY_FAMILIES, Formulation
from allocator.solvers import get_backend
from allocator.solvers.base import SolveOptions

RESOLVE_MAX_INTEGER_COLUMNS = 150_000  # the lp-fix size: a re-solve per rule takes minutes at most
RATE_TOL = 1e-9  # stage 2 holds the lowest rate at stage 1's less this (solver tolerance)
RESOLVED = "re-solve without the rule"
ESTIMATED = "estimate from the rule's row prices (first order, not a bound)"


@dataclasses.dataclass
class MaxMinStage:
    """Stage 1 of the max-min objective: the lowest county exit rate found, its bound, and the plan."""

    rate: float | None
    bound: float | None
    x: np.ndarray | None
    seconds: float
    message: str


def maxmin_stage(fm: Formulation, method: str, methods: dict, backend: str, options: SolveOptions,
                 progress, **on_dask) -> MaxMinStage:
    """Maximise the lowest county exit rate with every rule kept, by ``method`` (exact: one
    branch and bound; lp-fix and decompose: the method on the stage's objective)."""
    progress("max-min: the lowest county exit rate first", counties=len(fm.problem.county_ids))
    stage = dataclasses.replace(fm, model=fm.maxmin_model(), penalty=0.0)  # the schedule is not priced here
    if method == "exact":
        result = get_backend(backend).solve(stage.model, options)
        bound = result.bound
    else:
        outcome = methods[method](stage, backend, options, progress, **on_dask)
        result, bound = outcome.result, outcome.bound
    if not result.status.has_solution:
        return MaxMinStage(None, None, None, result.solve_seconds, f"the max-min stage ended {result.status.value}")
    col = fm.rate_col(0)
    rate = float(result.x[col])
    progress("max-min stage done", lowest_exit_rate=rate, bound=bound)
    return MaxMinStage(rate, None if bound is None else float(min(bound, 1.0)), result.x, result.solve_seconds,
                       f"max-min stage: lowest county exit rate {rate:.6f}"
                       + ("" if bound is None else f" (bound {min(bound, 1.0):.6f})"))


def hold_lowest_rate(fm: Formulation, stage: MaxMinStage) -> Formulation:
    """Stage 2's formulation: the lowest county exit rate held at stage 1's (less a tolerance)."""
    return fm.with_lowest_rate(max(stage.rate - RATE_TOL * max(1.0, abs(stage.rate)), 0.0))


def estimate_from_prices(fm: Formulation, rule: str, prices: np.ndarray | None) -> float | None:
    """sum over the rule's rows of |price| x |bound| (the finite side), or None without prices."""
    if prices is None:
        return None
    total = 0.0
    for name in EQUITY_FAMILIES[rule]:
        rows = fm.family(name).rows
        lo, hi = fm.model.row_lo[rows], fm.model.row_hi[rows]
        bound = np.where(np.isfinite(lo), lo, np.where(np.isfinite(hi), hi, 0.0))
        price = np.nan_to_num(np.asarray(prices)[rows], nan=0.0)
        total += float(np.abs(price) @ np.abs(bound))
    return total


def use_resolve(fm: Formulation, method: str) -> bool:
    """Whether the price of fairness comes from re-solves: ``resolve``, or ``auto`` when the
    model is small (at most :data:`RESOLVE_MAX_INTEGER_COLUMNS` integer columns) or solved by a
    whole-model method (exact, lp-fix: a re-solve takes as long as the solve); ``auto`` with
    decompose on a larger model estimates it from row prices."""
    how = fm.problem.policy.equity.price_of_fairness
    small = int(fm.model.integrality.sum()) <= RESOLVE_MAX_INTEGER_COLUMNS
    return how == "resolve" or (how == "auto" and (small or method != "decompose"))


def rules_in_force(fm: Formulation) -> list[str]:
    """The equity rules in force, in :data:`EQUITY_RULES` order."""
    rules = fm.problem.policy.equity.rules
    return [rule for rule in EQUITY_RULES if rule in rules]


__all__ = ["ESTIMATED", "RESOLVED", "MaxMinStage", "estimate_from_prices", "hold_lowest_rate", "maxmin_stage",
           "rules_in_force", "use_resolve"]
