"""Baselines: the plans the usual rules produce, under the same data and constraints.

- **proportional** (the "factor method"): every fund row (source, year) is split between the
  counties it may pay in proportion to their registered poor; within its county each
  household, first come first served (registry order), takes its best package the county's
  money, hours and projects allow.
- **greedy**: packages by cost-effectiveness (exit probability gained per yuan), best first,
  while the money and hours last.

Both start from the mandatory projects in their first possible year, build the projects
their packages need, and are made feasible by the same repair as the decompose method
(:mod:`allocator.repair`); the money flows follow the rule's own split of the funds, so a
baseline is a plan like any other and passes the same checker. They are heuristics for
comparison: the optimised plan's uplift over each is the point, and a baseline never beats
what the optimum proves (tested).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import scipy.sparse as sp

from allocator.decompose import Flows
from allocator.model.formulation import Formulation
from allocator.plan import Plan, make_plan
from allocator.repair import PlanRows, prerequisites_met, repair

BASELINES = ("proportional", "greedy")
BASELINE_ROUNDS = 200  # fill rounds: a household whose best package is refused proposes its next one


def _first_year_projects(fm: Formulation) -> np.ndarray:
    """Every project at its earliest possible start (repair drops those nobody needs)."""
    order = np.lexsort((fm.y_year, fm.y_proj))
    first = np.flatnonzero(np.diff(fm.y_proj[order], prepend=-1))
    return np.sort(order[first])


def proportional_flows(fm: Formulation) -> Flows:
    """The flow piece with each fund row capped per county at its share of the row's amount,
    shares in proportion to the registered poor of the counties the fund may pay."""
    flows = Flows.of(fm)
    p = fm.problem
    poor = p.county_registered_poor.astype(float)
    pair = fm.f_fund * len(p.county_ids) + fm.f_county
    pairs, column_pair = np.unique(pair, return_inverse=True)
    fund, county = pairs // len(p.county_ids), pairs % len(p.county_ids)
    eligible_poor = np.bincount(fund, weights=poor[county], minlength=len(p.fund_amount))
    share = np.where(eligible_poor[fund] > 0, poor[county] / np.maximum(eligible_poor[fund], 1e-300), 0.0)
    caps = sp.csr_matrix((np.ones(fm.nf), (column_pair, np.arange(fm.nf))), shape=(len(pairs), fm.nf))
    m = flows.model
    capped = dataclasses.replace(m, A=sp.vstack([m.A, caps]).tocsr(),
                                 row_lo=np.append(m.row_lo, np.full(len(pairs), -np.inf)),
                                 row_hi=np.append(m.row_hi, share * p.fund_amount[fund]))
    return Flows(capped, flows.cells)


def _each_households_pick(fm: Formulation, y: np.ndarray, score: np.ndarray) -> np.ndarray:
    """Per household, the package column of highest ``score`` (earliest year on ties) whose
    projects are finished in time with ``y`` built: the rule's wish list before money."""
    cand = np.flatnonzero(fm.x_gain > 0)
    cand = cand[prerequisites_met(fm, cand, y)]
    cand = cand[np.lexsort((fm.x_year[cand], -score[cand], fm.x_household[cand]))]
    return cand[np.flatnonzero(np.diff(fm.x_household[cand], prepend=-1))]


def baseline_plan(fm: Formulation, rule: str) -> Plan:
    """The plan of one usual rule (``proportional`` or ``greedy``) on this model.

    Every household first takes the package the rule prefers (greedy: most exit probability
    per yuan; proportional: its best package), with every project built in its first year;
    the repair then drops what the (county's share of the) money and the hours cannot carry
    — greedy the least cost-effective first, proportional the latest in registry order — and
    fills what is left in the rule's order."""
    if rule not in BASELINES:
        raise ValueError(f"unknown baseline {rule!r}; expected one of {', '.join(BASELINES)}")
    p = fm.problem
    gain = fm.x_gain
    cost = np.maximum(p.pkg_cost[fm.x_pkg], 1.0)
    if rule == "greedy":
        flows, worth, profit, wish = Flows.of(fm), gain, gain / cost, gain / cost
    else:
        flows = proportional_flows(fm)
        order = 1.0 - fm.x_household / max(len(p.household_ids), 1)  # registry order: first come first served
        worth = np.where(gain > 0, cost * order, 0.0)
        profit, wish = order + 1e-6 * gain, gain
    summary = {"scenario": p.name, "method": f"baseline:{rule}", "backend": "highs", "status": None,
               "stopped_by": None, "start_year": p.start_year, "deadline_year": p.deadline_year,
               "bound": None, "gap": None}  # a rule proves nothing
    projects = _first_year_projects(fm)
    try:
        x, y = repair(fm, flows.pay, _each_households_pick(fm, projects, wish), projects, worth, profit,
                      fill_rounds=BASELINE_ROUNDS)
    except ValueError as exc:
        summary.update(status="infeasible", message=f"the {rule} rule finds no plan: {exc}")
        return make_plan(fm, None, summary)
    spend = PlanRows.of(fm).spend(x, y)
    try:  # the rule's own money split pays the spend: the funding table shows the rule, not a solver's choice
        f = flows.flows_for(spend, floor=spend)
    except RuntimeError as exc:
        summary.update(status="infeasible", message=f"the {rule} rule's choices cannot be paid ({exc})")
        return make_plan(fm, None, summary)
    vector = np.zeros(fm.model.num_cols)
    vector[x] = 1.0
    vector[fm.nx + y] = 1.0
    vector[fm.f_cols] = f
    summary.update(status="feasible", message=f"the {rule} rule (a heuristic baseline; nothing is proven)")
    return make_plan(fm, vector, summary)


def compare_baselines(plan: Plan, baselines: dict[str, Plan]) -> list[dict]:
    """Per baseline: its expected exits, counties on schedule and cost, and the optimised plan's uplift."""
    rows = []
    exits, on_schedule = plan.summary.get("expected_exits"), plan.summary.get("counties_on_schedule")
    for rule, other in baselines.items():
        s = other.summary
        rows.append({
            "baseline": rule, "status": s["status"], "expected_exits": s.get("expected_exits"),
            "counties_on_schedule": s.get("counties_on_schedule"), "total_shortfall": s.get("total_shortfall"),
            "total_cost": s.get("total_cost"),
            "uplift_exits": None if s.get("expected_exits") is None or exits is None else exits - s["expected_exits"],
            "uplift_counties": None if s.get("counties_on_schedule") is None or on_schedule is None
            else on_schedule - s["counties_on_schedule"],
        })
    return rows


__all__ = ["BASELINES", "baseline_plan", "compare_baselines", "proportional_flows"]
