"""Baselines: the plans the usual rules produce, under the same data and constraints.

- **proportional** (the "factor method"): every fund row (source, year) is split between the
  counties it may pay in proportion to their registered poor; within its county each
  household, first come first served (registry order), takes its best package the county's
  money, hours and projects allow.
- **greedy**: packages by cost-effectiveness (exit probability gained per yuan), best first,
  while the money and hours last.
- **practice** (how counties assigned measures): every household gets the catalogue's
  standard package for its causes of poverty and failing guarantees (the packages flagged
  ``practice``, from the catalogue's ``practice`` rules), villages served poor villages first,
  then by poverty incidence, households in registry order within a village, years in order,
  until the funds (with their scope, categories and the scenario's rules) are spent. Data
  without flagged packages (canonical tables made by hand) has no practice plan.

All start from the mandatory projects in their first possible year, build the projects
their packages need, and are made feasible by the same repair as the decompose method
(:mod:`allocator.optimize.repair`); the money flows follow the rule's own split of the funds, so a
baseline is a plan like any other and passes the same checker. Where the repair moves a
mandatory project the money of its first year cannot pay, the new year is the latest one at
which some flow paying the most of every cell's spend pays the project's cell in full
(:class:`FullPayment`: warm-started LPs on one HiGHS model, not a new flow LP per try). They
are heuristics for comparison: the optimised plan's uplift over each is the point, and a
baseline never beats what the optimum proves (tested).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import scipy.sparse as sp

from allocator.model.formulation import Formulation
from allocator.model.problem import Problem
from allocator.optimize.decompose import Flows
from allocator.optimize.repair import TOL, PlanRows, drop_unused_projects, prerequisites_met, repair
from allocator.plan.plan import Plan, make_plan
from allocator.solvers.highs import silence_banner, to_highs_lp, equilibrate

BASELINES = ("proportional", "greedy", "practice")
BASELINE_ROUNDS = 200  # fill rounds: a household whose best package is refused proposes its next one
PRACTICE_SLICES = 8  # slices of the service order per year: the money goes to the earlier slices first


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
    household = fm.x_household[cand]
    best = np.full(len(fm.problem.household_ids), -np.inf)
    np.maximum.at(best, household, score[cand])
    cand = cand[score[cand] == best[household]]  # each household's top score (ties kept): fewer to sort
    cand = cand[np.lexsort((fm.x_year[cand], -score[cand], fm.x_household[cand]))]
    return cand[np.flatnonzero(np.diff(fm.x_household[cand], prepend=-1))]


class FullPayment:
    """Whether the funds pay one money cell in full among the flows paying the most of every
    cell's spend: ``FullPayment(flows)(demand, cell)``.

    The flow LP (the flows' rows, each cell's payment at most its ``demand``) stays on one
    HiGHS model, so each question is a warm start from the last answer's basis: first the
    most that can be paid in all (if that flow pays ``cell`` in full, yes); then, keeping the
    total paid at that most, the most ``cell`` can be paid. A flow LP solved from scratch
    (:meth:`Flows.pay`) answers with one of its optimal flows, which may leave the cell short
    where another optimal one pays it; this asks whether any does. When a warm LP ends
    otherwise than optimal the answer comes from :meth:`Flows.pay` as before."""

    def __init__(self, flows: Flows):
        self.flows, self.h = flows, None  # the HiGHS model is built at the first question

    def _build(self) -> None:
        import highspy

        flows = self.flows
        m = flows.model
        self.cells = flows.cells.tocsr()
        self.n_rules, n_cells = m.num_rows, self.cells.shape[0]
        paid = np.asarray(self.cells.sum(axis=0)).ravel()  # what a yuan of each flow adds to the total paid
        finite = np.abs(np.concatenate([m.row_hi[np.isfinite(m.row_hi)], [1.0]]))
        self.scale = max(float(finite.max()), 1.0)  # money in units of the largest bound, as Flows does
        lp = dataclasses.replace(
            m, c=paid, A=sp.vstack([m.A, self.cells, sp.csr_matrix(paid)]).tocsr(),
            row_lo=np.concatenate([m.row_lo, np.full(n_cells + 1, -np.inf)]) / self.scale,
            row_hi=np.concatenate([m.row_hi, np.zeros(n_cells), [np.inf]]) / self.scale,
            col_lo=m.col_lo / self.scale, col_hi=m.col_hi / self.scale)
        self.row_scale, self.col_scale = equilibrate(lp)
        self.paid = paid * self.col_scale
        self.total_row = self.n_rules + n_cells
        self.demand = np.zeros(n_cells)
        silence_banner()  # HiGHS prints it once per process, on stdout
        self.h = highspy.Highs()
        self.h.setOptionValue("output_flag", False)
        self.h.setOptionValue("solver", "simplex")
        self.h.passModel(to_highs_lp(lp, self.row_scale, self.col_scale))
        self.cols = np.arange(m.num_cols, dtype=np.int32)

    def _run(self) -> np.ndarray | None:
        """The flows (yuan) of an optimal run, None when it is not optimal."""
        import highspy

        self.h.run()
        if self.h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
            return None
        return np.maximum(np.asarray(self.h.getSolution().col_value) * self.col_scale * self.scale, 0.0)

    def _paid(self, f: np.ndarray, cell: int) -> float:
        row = self.cells[cell]
        return float(row.data @ f[row.indices])

    def __call__(self, demand: np.ndarray, cell: int) -> bool:
        import highspy

        if self.flows.model.num_cols == 0:
            return self._fresh(demand, cell)
        if self.h is None:
            self._build()
        need = demand[cell] * (1 - TOL)
        h, changed = self.h, np.flatnonzero(demand != self.demand)
        if len(changed):
            r = (self.n_rules + changed).astype(np.int32)
            h.changeRowsBounds(len(r), r, np.full(len(r), -highspy.kHighsInf),
                               demand[changed] / self.scale * self.row_scale[r])
            self.demand = demand.copy()
        f = self._run()
        if f is None:
            return self._fresh(demand, cell)
        if self._paid(f, cell) >= need:
            return True
        total = float(h.getSolution().row_value[self.total_row])  # the most paid, in the model's units
        h.changeRowBounds(self.total_row, total - 1e-9 * max(abs(total), 1.0), highspy.kHighsInf)
        row = self.cells[cell]
        cost = np.zeros(len(self.cols))
        cost[row.indices] = row.data * self.col_scale[row.indices]
        h.changeColsCost(len(self.cols), self.cols, cost)
        f = self._run()
        h.changeColsCost(len(self.cols), self.cols, self.paid)
        h.changeRowBounds(self.total_row, -highspy.kHighsInf, highspy.kHighsInf)
        if f is None:
            return self._fresh(demand, cell)
        return bool(self._paid(f, cell) >= need)

    def _fresh(self, demand: np.ndarray, cell: int) -> bool:
        return bool(self.flows.pay(demand, None)[cell] >= demand[cell] * (1 - TOL))


def not_applicable(fm: Formulation, rule: str) -> str | None:
    """Why ``rule`` cannot plan this data (None when it can)."""
    if rule == "practice" and not (fm.problem.pkg_practice[fm.x_pkg] & (fm.x_gain > 0)).any():
        return ("the practice rule needs the households' standard packages (packages.practice), which "
                "targeting gives raw registry data from the catalogue's practice rules; these tables have none")
    return None


def practice_order(p: Problem) -> np.ndarray:
    """Each household's priority in practice, 1 for the first served down to near 0: poor villages
    first, then by poverty incidence (registered poor people over the population), then
    registry order."""
    villages = p.tables["villages"].set_index("village_id").reindex(p.village_ids)
    poor = villages["poor_village"].fillna(False).to_numpy(dtype=bool)
    size = p.tables["households"].set_index("household_id")["size"].reindex(p.household_ids).to_numpy(dtype=float)
    poor_people = np.bincount(p.household_village, weights=size, minlength=len(p.village_ids))
    incidence = poor_people / np.maximum(villages["population"].fillna(0).to_numpy(dtype=float), poor_people)
    village_rank = np.empty(len(p.village_ids), dtype=np.int64)
    village_rank[np.lexsort((-np.nan_to_num(incidence), ~poor))] = np.arange(len(p.village_ids))
    served = np.lexsort((np.arange(len(p.household_ids)), village_rank[p.household_village]))
    position = np.empty(len(served), dtype=np.int64)
    position[served] = np.arange(len(served))
    return 1.0 - position / max(len(served), 1)


def _practice_picks(fm: Formulation, open_: np.ndarray, household: np.ndarray, x: np.ndarray, y: np.ndarray,
                    t: int) -> tuple[np.ndarray, np.ndarray]:
    """Year ``t`` of practice: each household of the columns ``open_`` (ascending) not served
    yet, its standard package in the first year from ``t`` on that the projects of ``y``
    allow, or that projects started from ``t`` on allow; returns the picks and the projects
    they need that ``y`` lacks. ``household``: each x column's household."""
    served = np.zeros(len(fm.problem.household_ids), dtype=bool)
    served[household[x]] = True
    built = np.zeros(len(fm.problem.proj_ids), dtype=bool)
    built[fm.y_proj[y]] = True
    later = np.flatnonzero(~built[fm.y_proj] & (fm.y_year >= t))
    later = later[np.lexsort((fm.y_year[later], fm.y_proj[later]))]
    new = later[np.flatnonzero(np.diff(fm.y_proj[later], prepend=-1))]  # each missing project in its first year
    cand = open_[~served[household[open_]] & (fm.x_year[open_] >= t)]
    cand = cand[prerequisites_met(fm, cand, np.union1d(y, new))]
    cand = cand[np.lexsort((fm.x_year[cand], household[cand]))]
    picks = cand[np.flatnonzero(np.diff(household[cand], prepend=-1))]
    return picks, drop_unused_projects(fm, picks, new)


def _payable(rows: PlanRows, pay, x: np.ndarray, y: np.ndarray, new: np.ndarray) -> np.ndarray:
    """The projects of ``new`` the funds can pay on top of the plan (x, y): none in a cell they would overdraw."""
    now = rows.spend(x, y)
    want = rows.spend(x, np.union1d(y, new))
    short = want - pay(want, now) > TOL * np.maximum(want, 1.0)
    return new[(rows.cell_y[new] < 0) | ~short[np.maximum(rows.cell_y[new], 0)]]


def _practice(fm: Formulation, flows: Flows, allowed: np.ndarray, priority: np.ndarray, rows: PlanRows,
              pays_in_full: FullPayment) -> tuple[np.ndarray, ...]:
    """The practice rule's packages and projects: the mandatory projects first (in their first
    year the money allows); then, year by year and slice by slice of the service order, every
    household not yet served proposes its standard package, with the projects it needs
    started then where the money allows; the repair keeps what the funds can pay, dropping
    the households served last, never one served before."""
    p = fm.problem
    household = fm.x_household
    first = _first_year_projects(fm)
    none = np.zeros(fm.nx)
    x, y = repair(fm, flows.pay, np.zeros(0, dtype=np.int64), first[p.proj_mandatory[fm.y_proj[first]]], none,
                  none, fill_rounds=0, rows=rows, pays_in_full=pays_in_full)
    position = np.argsort(np.argsort(-priority[np.unique(household, return_index=True)[1]], kind="stable"))
    rank = np.zeros(len(p.household_ids), dtype=np.int64)
    rank[np.unique(household)] = position * PRACTICE_SLICES // max(len(position), 1)
    slices = [np.flatnonzero(allowed & (rank[household] == part)) for part in range(PRACTICE_SLICES)]
    cost = np.maximum(rows.cost_x, 1.0)
    for t in range(len(p.years)):
        for part in range(PRACTICE_SLICES):
            picks, new = _practice_picks(fm, slices[part], household, x, y, t)
            if not len(picks):
                continue
            y_try = np.union1d(y, _payable(rows, flows.pay, x, y, new))
            picks = picks[prerequisites_met(fm, picks, y_try)]
            served = np.zeros(fm.nx, dtype=bool)
            served[x] = True
            worth = np.where(served, 2.0 * cost, priority * cost)  # the served stay
            x, y = repair(fm, flows.pay, np.union1d(x, picks), y_try, worth, priority, fill_rounds=0, rows=rows,
                          pays_in_full=pays_in_full)
    return x, y


def baseline_plan(fm: Formulation, rule: str) -> Plan:
    """The plan of one usual rule (``proportional``, ``greedy`` or ``practice``) on this model.

    Every household first takes the package the rule prefers (greedy: most exit probability
    per yuan; proportional: its best package), with every project built in its first year;
    the repair then drops what the (county's share of the) money and the hours cannot carry
    — greedy the least cost-effective first, proportional the latest in registry order — and
    fills what is left in the rule's order. Practice goes year by year (:func:`_practice`),
    dropping the households served last where the money is short."""
    if rule not in BASELINES:
        raise ValueError(f"unknown baseline {rule!r}; expected one of {', '.join(BASELINES)}")
    p = fm.problem
    gain = fm.x_gain
    cost = np.maximum(p.pkg_cost[fm.x_pkg], 1.0)
    if rule == "greedy":
        flows, worth, profit, wish = Flows.of(fm), gain, gain / cost, gain / cost
    elif rule == "practice":
        allowed, flows = p.pkg_practice[fm.x_pkg] & (gain > 0), Flows.of(fm)
    else:
        flows = proportional_flows(fm)
        order = 1.0 - fm.x_household / max(len(p.household_ids), 1)  # registry order: first come first served
        worth = np.where(gain > 0, cost * order, 0.0)
        profit, wish = order + 1e-6 * gain, gain
    summary = {"scenario": p.name, "method": f"baseline:{rule}", "backend": "highs", "status": None,
               "stopped_by": None, "start_year": p.start_year, "deadline_year": p.deadline_year,
               "bound": None, "gap": None}  # a rule proves nothing
    projects = _first_year_projects(fm)
    rows, full = PlanRows.of(fm), FullPayment(flows)
    try:
        x, y = _practice(fm, flows, allowed, practice_order(p)[fm.x_household], rows, full) if rule == "practice" \
            else repair(fm, flows.pay, _each_households_pick(fm, projects, wish), projects, worth, profit,
                        fill_rounds=BASELINE_ROUNDS, rows=rows, pays_in_full=full)
    except ValueError as exc:
        summary.update(status="infeasible", message=f"the {rule} rule finds no plan: {exc}")
        return make_plan(fm, None, summary)
    spend = rows.spend(x, y)
    try:  # the rule's own money split pays the spend: the funding table shows the rule, not a solver's choice
        f = flows.flows_for(spend, floor=spend)
    except RuntimeError as exc:
        summary.update(status="infeasible", message=f"the {rule} rule's choices cannot be paid ({exc})")
        return make_plan(fm, None, summary)
    if not flows.meets_rules(f):
        summary.update(status="infeasible", message=f"the {rule} rule's choices cannot be paid within the funds' "
                                                    "rules (a disbursement pace asks for more spend than they make)")
        return make_plan(fm, None, summary)
    unpaid = spend - flows.cells @ f
    if np.any(unpaid > TOL * np.maximum(spend, 1.0)):
        summary.update(status="infeasible", message=f"the {rule} rule's choices cannot be paid "
                                                    f"({float(unpaid.max()):,.0f} yuan short in one cell)")
        return make_plan(fm, None, summary)
    vector = np.zeros(fm.model.num_cols)
    vector[x] = 1.0
    vector[fm.nx + y] = 1.0
    vector[fm.f_cols] = f
    summary.update(status="feasible", message=f"the {rule} rule (a heuristic baseline; nothing is proven)")
    return make_plan(fm, vector, summary)


def money_idle(summary: dict) -> float | None:
    """Money of the funds the plan leaves unspent (yuan): their amounts less the spend."""
    if summary.get("expected_exits") is None:
        return None
    use = summary.get("budget_use") or []
    return float(sum(r["amount"] for r in use) - sum(r["spent"] for r in use))


def compare_baselines(plan: Plan, baselines: dict[str, Plan], skipped: dict[str, str] | None = None) -> list[dict]:
    """Per baseline: its expected exits, counties on schedule, cost and money left idle, and the
    optimised plan's uplift; a rule in ``skipped`` (rule: why) is listed as not applicable."""
    rows = []
    s0 = plan.summary
    exits, on_schedule, idle = s0.get("expected_exits"), s0.get("counties_on_schedule"), money_idle(s0)

    def less(mine, theirs):
        return None if mine is None or theirs is None else mine - theirs

    for rule, other in baselines.items():
        s = other.summary
        rows.append({
            "baseline": rule, "status": s["status"], "expected_exits": s.get("expected_exits"),
            "counties_on_schedule": s.get("counties_on_schedule"), "total_shortfall": s.get("total_shortfall"),
            "total_cost": s.get("total_cost"), "money_idle": money_idle(s),
            "uplift_exits": less(exits, s.get("expected_exits")),
            "uplift_counties": less(on_schedule, s.get("counties_on_schedule")),
            "uplift_idle": less(money_idle(s), idle),
        })
    for rule, why in (skipped or {}).items():
        rows.append({"baseline": rule, "status": "not applicable", "message": why, "expected_exits": None,
                     "counties_on_schedule": None, "total_shortfall": None, "total_cost": None, "money_idle": None,
                     "uplift_exits": None, "uplift_counties": None, "uplift_idle": None})
    order = {rule: i for i, rule in enumerate(BASELINES)}
    return sorted(rows, key=lambda row: order.get(row["baseline"], len(order)))


__all__ = ["BASELINES", "baseline_plan", "compare_baselines", "money_idle", "not_applicable", "practice_order",
           "proportional_flows"]
