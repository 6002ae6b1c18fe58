"""Price, repair, split: a Lagrangian bound and a plan without the whole LP relaxation.

The LP relaxation of a five-year province does not finish in minutes (benchmarks/README.md),
so this method never solves it:

1. **Prices.** The rows that tie households to money, people and the county rule — money
   balance, personnel, county exit — are relaxed with prices u. What is left falls apart
   into independent pieces: every village (its households' plans and its projects, with
   prerequisites), solved exactly by enumerating the start years of the projects its
   packages need; the money flows (source budgets, category shares), a small LP; the
   shortfalls. Their optimum L(u) bounds the weighted objective of every plan (weak
   duality: a plan satisfies the relaxed rows, so their priced slack is >= 0). L is convex;
   box-step cutting planes lower it (:func:`find_prices`), starting from one money price
   found by bisection. The master's duals weigh the relaxed plans into a fractional plan
   (Dantzig-Wolfe): close to an optimum of the LP relaxation on small models, but at
   province scale far over the money rows (benchmarks/README.md), hence steps 2 and 3.
2. **Repair.** That plan, rounded, is made to keep money and personnel rows
   (:mod:`allocator.optimize.repair`): a feasible plan at once, whatever the size. Where it
   leaves an annual target or a hat-off year short, packages are swapped for ones that count
   sooner with the money still payable (:func:`advance_plan`); again after step 4.
3. **Groups of counties.** The province-wide rows are split between groups of counties by
   what the weighted relaxed plans' flows use there (:func:`county_shares`; a scenario-wide
   annual target by the exits they add there, :func:`target_shares`), and ``lp-fix``
   (on as many groups as the time left gives :data:`GROUP_SECONDS` each, those furthest
   behind first: :func:`groups_to_run`)
   runs per group on the columns the relaxed plans or the plan use (:func:`county_plans`), in
   parallel threads or, given a Dask client, as one Dask task per
   group (:func:`run_groups`); their plan replaces the repaired one when it is better. If the
   repair fails, the whole MIP is solved in the time left.
4. **Rounds.** County improvement rounds while time is left. The bound is the best L(u).
"""

from __future__ import annotations

import dataclasses
import itertools
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import scipy.sparse as sp

from allocator.model.formulation import FLOW_FAMILIES, RATE_FAMILIES, SHORTFALL_FAMILIES, Formulation, expand_ranges
from allocator.model.linear import LinearModel
from allocator.model.problem import Problem
from allocator.optimize.methods import (
    Outcome,
    ProgressCallback,
    fix_and_resolve,
    improve_by_county,
    quiet,
    solve_restricted,
    time_left,
)
from allocator.optimize.repair import advance, repair
from allocator.solvers import get_backend
from allocator.solvers.base import SolveOptions, SolveResult, Status, StoppedBy

# the county exit-rate rows (equity) are priced like the schedule's; the shortfall rows last
RELAXED_FAMILIES = ("money_balance", "personnel") + RATE_FAMILIES + SHORTFALL_FAMILIES
INDEX = np.int32  # the village pieces' index arrays: half the memory of int64 (a province has > 10^8 entries)
PAIR_CHUNK = 1 << 23  # entries gathered at once when pricing the (schedule, household) pairs
MAX_SCHEDULES = 4096  # project start-year combinations enumerated per village
PRICING_SHARE = 0.4  # share of the time limit spent on prices
PRICING_SECONDS = 120.0  # ... and without a time limit
MAX_ITERATIONS = 500
# of the largest flow bound: how far a "payable" floor may miss in a re-solve (HiGHS' scaled tolerance, with margin)
FLOOR_SLACK = 1e-6
PRICE_TOL = 1e-5  # relative distance of the best L(u) to the cutting-plane lower estimate that ends the search
NULL_SHRINK = 0.9  # the box shrinks by this after a step that does not lower L enough
BOX_START = 0.01  # first box half-width, relative to |L(u0)|
BOX_END = 1e-9  # ... and the half-width, relative to |L|, at which the search ends
CUT_MEMORY = 50  # a cut unused by the master for this many steps is dropped
INITIAL_BISECTIONS = 16  # steps of the search for one money price that spends the funds
COUNTY_SHARE = 0.8  # of the time left, for the county lp-fix runs
COUNTY_THREADS = 2  # county groups solved at once (options.threads overrides)
GROUP_SECONDS = 25.0  # per GROUP_COLUMNS kept columns: a group's LP of 60,000 columns takes 10-20 s, 100,000 over 22
LAGRANGIAN = "Lagrangian multiplier"  # what decompose's row prices are
GROUP_COLUMNS = 60_000  # kept columns per group of counties: an LP HiGHS solves in seconds
ADVANCE_SHARE = 0.05  # of the time limit, for each pass of swaps toward the schedule
ADVANCE_SECONDS = 60.0  # ... and without a time limit


def group_argmax(values: np.ndarray, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Max and the index of the first maximum of ``values`` in each group; groups are the
    non-empty ranges [starts[i], starts[i + 1])."""
    best = np.maximum.reduceat(values, starts)
    group = np.repeat(np.arange(len(starts)), np.diff(np.append(starts, len(values))))
    hits = np.flatnonzero(values == best[group])
    _, first = np.unique(group[hits], return_index=True)
    return best, hits[first]


@dataclasses.dataclass
class Relaxation:
    """The relaxed rows: their matrix, right-hand sides, price bounds and sizes."""

    rows: np.ndarray
    A: sp.csr_matrix
    AT: sp.csr_matrix
    rhs: np.ndarray
    u_lo: np.ndarray
    u_hi: np.ndarray
    magnitude: np.ndarray  # the size of each row, to step in relative units
    exit_rows: np.ndarray  # positions of the county exit and annual target rows within ``rows``

    @classmethod
    def of(cls, fm: Formulation) -> Relaxation:
        m = fm.model
        rows = np.concatenate([np.arange(fm.family(name).rows.start, fm.family(name).rows.stop)
                               for name in RELAXED_FAMILIES])
        lo, hi = m.row_lo[rows], m.row_hi[rows]
        le, ge = np.isinf(lo) & np.isfinite(hi), np.isfinite(lo) & np.isinf(hi)
        eq = lo == hi
        if not np.all(le | ge | eq):
            raise ValueError("the relaxed rows must be <=, >= or = rows")
        A = m.A[rows].tocsr()
        rhs = np.where(le, hi, lo)
        u_lo = np.where(le, 0.0, -np.inf)
        u_hi = np.where(ge, 0.0, np.inf)
        n_exit = sum(fm.family(name).rows.stop - fm.family(name).rows.start for name in SHORTFALL_FAMILIES)
        exit_rows = np.arange(len(rows) - n_exit, len(rows))
        if np.isinf(m.col_hi[fm.shortfall_cols]).any():  # a price above the penalty would make shortfall pay
            u_lo[exit_rows] = -fm.penalty
        row_sum = np.asarray(abs(A).sum(axis=1)).ravel()
        empty = np.diff(A.indptr) == 0  # a constant row: nothing to price
        u_lo[empty] = u_hi[empty] = 0.0
        magnitude = np.maximum(np.maximum(np.abs(rhs), row_sum / 10.0), 1.0)
        return cls(rows, A, A.T.tocsr(), rhs, u_lo, u_hi, magnitude, exit_rows)


@dataclasses.dataclass
class Villages:
    """The village pieces of the relaxed problem, set up once for every price.

    Package columns without prerequisites ("free") are chosen per household. For every
    village whose packages need projects, every combination of those projects' start years
    (or none, for optional ones) is a schedule; a (schedule, household) pair lists the
    household's constrained columns that the schedule allows. Projects no package needs
    here are chosen alone (mandatory: their cheapest year)."""

    free_cols: np.ndarray  # free x columns sorted by household
    free_starts: np.ndarray
    free_households: np.ndarray
    entry_cols: np.ndarray  # x column of each (pair, column) entry, grouped by pair
    pair_starts: np.ndarray
    pair_household: np.ndarray
    pair_schedule: np.ndarray
    schedule_starts: np.ndarray  # first schedule of each enumerated village
    schedule_ycols: np.ndarray  # y columns of each schedule, grouped by schedule
    schedule_yowner: np.ndarray
    pairs_of_schedule: np.ndarray  # first pair of each schedule (pairs grouped by schedule)
    alone_ycols: np.ndarray  # y columns of projects chosen alone, grouped by project
    alone_starts: np.ndarray
    alone_mandatory: np.ndarray
    n_households: int
    relaxed_villages: int  # villages with more than MAX_SCHEDULES schedules (prerequisites dropped)

    @classmethod
    def of(cls, fm: Formulation) -> Villages:
        p = fm.problem
        counts = np.diff(p.pkg_req_ptr)[fm.x_pkg]
        constrained = np.flatnonzero(counts > 0)
        owner, flat = expand_ranges(p.pkg_req_ptr[fm.x_pkg[constrained]], counts[constrained])
        req_col, req_proj = constrained[owner], p.pkg_req_project[flat]
        hh = fm.x_household
        H = len(p.household_ids)
        village_of_col = p.household_village[hh]
        y_first = np.searchsorted(fm.y_proj, np.arange(len(p.proj_ids)))
        y_last = np.searchsorted(fm.y_proj, np.arange(len(p.proj_ids)), side="right")

        free_mask = counts == 0
        enumerated_proj = np.zeros(len(p.proj_ids), dtype=bool)
        parts = {key: [] for key in ("entry", "pair_start", "pair_hh", "pair_sched", "ycol", "yowner",
                                     "sched_start", "pairs_of_sched")}
        n_sched = n_pairs = n_entries = 0
        relaxed = 0
        order = np.argsort(village_of_col[constrained], kind="stable")
        cons_sorted = constrained[order]
        bounds = np.flatnonzero(np.diff(village_of_col[cons_sorted])) + 1
        req_order = np.argsort(req_col, kind="stable")
        req_col_s, req_proj_s = req_col[req_order], req_proj[req_order]
        for cols in np.split(cons_sorted, bounds) if len(cons_sorted) else []:
            lo, hi = np.searchsorted(req_col_s, cols), np.searchsorted(req_col_s, cols, side="right")
            o, idx = expand_ranges(lo, hi - lo)
            projects, q_of = np.unique(req_proj_s[idx], return_inverse=True)
            options = []
            for q in projects:
                ycols = np.arange(y_first[q], y_last[q])
                finish = fm.y_year[ycols] + p.proj_duration[q]
                if not p.proj_mandatory[q]:
                    ycols, finish = np.append(ycols, -1), np.append(finish, np.iinfo(np.int64).max)
                options.append((ycols, finish))
            if np.prod([float(len(o_[0])) for o_ in options]) > MAX_SCHEDULES:
                relaxed += 1
                free_mask[cols] = True
                continue
            enumerated_proj[projects] = True
            combos = np.array(list(itertools.product(*[range(len(o_[0])) for o_ in options])), dtype=np.int64)
            S = len(combos)
            finish = np.stack([options[k][1][combos[:, k]] for k in range(len(projects))], axis=1)  # S x Q
            ycols = np.stack([options[k][0][combos[:, k]] for k in range(len(projects))], axis=1)
            needs = np.zeros((len(cols), len(projects)), dtype=bool)
            needs[o, q_of] = True
            years = fm.x_year[cols]
            allowed = np.all(~needs[None] | (finish[:, None, :] <= years[None, :, None]), axis=2)  # S x J
            s_idx, j_idx = np.nonzero(allowed)
            key = s_idx * H + hh[cols[j_idx]]
            srt = np.argsort(key, kind="stable")
            key, j_idx = key[srt], j_idx[srt]
            new_pair = np.flatnonzero(np.diff(key, prepend=-1))
            parts["entry"].append(cols[j_idx].astype(INDEX))
            parts["pair_start"].append((n_entries + new_pair).astype(INDEX))
            parts["pair_hh"].append((key[new_pair] % H).astype(INDEX))
            pair_sched = key[new_pair] // H
            parts["pair_sched"].append((n_sched + pair_sched).astype(INDEX))
            parts["pairs_of_sched"].append(n_pairs + np.searchsorted(pair_sched, np.arange(S)))
            used = ycols >= 0
            parts["ycol"].append(ycols[used])
            parts["yowner"].append(n_sched + np.nonzero(used)[0])
            parts["sched_start"].append(np.array([n_sched]))
            n_sched += S
            n_pairs += len(new_pair)
            n_entries += len(j_idx)

        if max(n_entries, fm.model.num_cols, n_sched) >= np.iinfo(INDEX).max:
            raise ValueError(f"the village pieces need {n_entries:,} entries over {n_sched:,} schedules: "
                             f"more than {np.dtype(INDEX).name} indices hold")

        def cat(name: str) -> np.ndarray:
            return np.concatenate(parts[name]) if parts[name] else np.zeros(0, dtype=np.int64)

        free_cols = np.flatnonzero(free_mask)
        free_cols = free_cols[np.argsort(hh[free_cols], kind="stable")]
        new_hh = np.flatnonzero(np.diff(hh[free_cols], prepend=-1))
        alone = np.setdiff1d(np.unique(fm.y_proj), np.flatnonzero(enumerated_proj))
        alone_ycols = expand_ranges(y_first[alone], y_last[alone] - y_first[alone])[1]
        alone_starts = np.cumsum(np.append(0, y_last[alone] - y_first[alone]))[:-1]
        return cls(free_cols, new_hh, hh[free_cols[new_hh]], cat("entry"), cat("pair_start"), cat("pair_hh"),
                   cat("pair_sched"), cat("sched_start"), cat("ycol"), cat("yowner"), cat("pairs_of_sched"),
                   alone_ycols, alone_starts, p.proj_mandatory[alone], H, relaxed)

    def solve(self, d_x: np.ndarray, d_y: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        """The best value of every village at these reduced profits, and the chosen x and y columns."""
        best_free = np.zeros(self.n_households)
        pick = np.full(self.n_households, -1)  # each household's column
        if len(self.free_cols):
            top, arg = group_argmax(d_x[self.free_cols], self.free_starts)
            take = top > 0
            best_free[self.free_households[take]] = top[take]
            pick[self.free_households[take]] = self.free_cols[arg[take]]
        value = float(best_free.sum())
        chosen_y = []
        if len(self.schedule_starts):
            pair_top = self._pair_top(d_x)
            pair_gain = np.maximum(pair_top - best_free[self.pair_household], 0.0)
            n_sched = len(self.pairs_of_schedule)
            sched_value = np.bincount(self.pair_schedule, pair_gain, minlength=n_sched)
            sched_value += np.bincount(self.schedule_yowner, d_y[self.schedule_ycols], minlength=n_sched)
            top, chosen = group_argmax(sched_value, self.schedule_starts)
            value += float(top.sum())
            chosen_y.append(self.schedule_ycols[np.isin(self.schedule_yowner, chosen)])
            ends = np.append(self.pairs_of_schedule[1:], len(self.pair_starts))
            _, pairs = expand_ranges(self.pairs_of_schedule[chosen], ends[chosen] - self.pairs_of_schedule[chosen])
            pairs = pairs[pair_gain[pairs] > 0]
            if len(pairs):
                entry_end = np.append(self.pair_starts[1:], len(self.entry_cols))
                owner, entries = expand_ranges(self.pair_starts[pairs], entry_end[pairs] - self.pair_starts[pairs])
                starts = np.flatnonzero(np.diff(owner, prepend=-1))
                _, arg = group_argmax(d_x[self.entry_cols[entries]], starts)
                pick[self.pair_household[pairs]] = self.entry_cols[entries[arg]]
        if len(self.alone_ycols):
            top, arg = group_argmax(d_y[self.alone_ycols], self.alone_starts)
            take = self.alone_mandatory | (top > 0)
            value += float(top[take].sum())
            chosen_y.append(self.alone_ycols[arg[take]])
        y = np.concatenate(chosen_y) if chosen_y else np.zeros(0, dtype=np.int64)
        return value, pick[pick >= 0], y

    def _pair_top(self, d_x: np.ndarray) -> np.ndarray:
        """Each (schedule, household) pair's best reduced profit, ``PAIR_CHUNK`` entries at a
        time: a province has over 10^8 entries, and one gather of them all costs a gigabyte."""
        top = np.empty(len(self.pair_starts))
        cuts = np.unique(np.append(np.searchsorted(self.pair_starts, np.arange(0, len(self.entry_cols), PAIR_CHUNK)),
                                   len(self.pair_starts)))
        for lo, hi in itertools.pairwise(cuts):
            first = self.pair_starts[lo]
            last = self.pair_starts[hi] if hi < len(self.pair_starts) else len(self.entry_cols)
            top[lo:hi] = np.maximum.reduceat(d_x[self.entry_cols[first:last]], self.pair_starts[lo:hi] - first)
        return top


def _slack(bounds: np.ndarray) -> float:
    """``FLOOR_SLACK`` of the largest finite bound (yuan): what a flow LP's scaled tolerance allows."""
    return FLOOR_SLACK * max(float(np.abs(bounds[np.isfinite(bounds)]).max(initial=1.0)), 1.0)


@dataclasses.dataclass
class Flows:
    """The money-flow piece: f >= 0 within the source budget and category share rows."""

    model: LinearModel  # over the flow columns only
    cells: sp.csr_matrix  # money balance rows x flow columns: which (county, category, year) a flow pays

    @classmethod
    def of(cls, fm: Formulation) -> Flows:
        m = fm.model
        rows = np.concatenate([np.arange(fm.family(name).rows.start, fm.family(name).rows.stop)
                               for name in FLOW_FAMILIES])
        cols = fm.f_cols
        model = LinearModel(c=np.zeros(fm.nf), A=m.A[rows][:, cols].tocsr(), row_lo=m.row_lo[rows],
                            row_hi=m.row_hi[rows], col_lo=m.col_lo[cols], col_hi=m.col_hi[cols],
                            integrality=np.zeros(fm.nf, dtype=bool))
        return cls(model, m.A[fm.family("money_balance").rows][:, cols].tocsr())

    def solve(self, d_f: np.ndarray) -> tuple[float, np.ndarray]:
        """Best flows at these prices."""
        if self.model.num_cols == 0 or np.all(d_f <= 0):
            return 0.0, np.zeros(self.model.num_cols)
        f, _ = self._solve(self.model, d_f)
        return float(d_f @ f), f

    def duals(self, d_f: np.ndarray) -> np.ndarray:
        """The flow rows' duals at these reduced profits: what one more unit of each row's
        bound adds to the flow piece's value (so to L(u))."""
        if self.model.num_cols == 0 or np.all(d_f <= 0):
            return np.zeros(self.model.num_rows)
        return self._solve(self.model, d_f)[1]

    def pay(self, demand: np.ndarray, floor: np.ndarray | None = None, weight: np.ndarray | None = None) -> np.ndarray:
        """What the funds can pay of each money cell's ``demand``: paid per cell (see :meth:`flows_for`)."""
        return self.cells @ self.flows_for(demand, floor, weight) if self.model.num_cols else np.zeros(len(demand))

    def flows_for(self, demand: np.ndarray, floor: np.ndarray | None = None,
                  weight: np.ndarray | None = None) -> np.ndarray:
        """Flows paying the most of each money cell's ``demand`` together (a yuan of a cell
        counted ``weight`` times), and at least ``floor`` in each cell.

        ``floor`` is what an earlier flow LP found payable, so it holds only within that LP's
        feasibility tolerance, which is absolute in scaled units (``FLOOR_SLACK`` of the largest
        bound). When the floor misses by that slack, it is lowered by it, then dropped: the
        caller then sees a cell paid less than its floor and treats it as short of money.
        When ``demand`` is below what a disbursement pace requires to be spent, no flows pay it
        within the pace: then the pace is left out (it asks for more spend, never for less
        payment), and the plan's own solve, or :meth:`meets_rules`, holds it to the pace."""
        m = self.model
        if m.num_cols == 0:
            return np.zeros(0)
        key = tuple(None if a is None else np.asarray(a, dtype=float).tobytes() for a in (demand, floor, weight))
        last = self.__dict__.get("_last")  # (key, flows) of the last call: the same question gets the same answer
        if last is not None and last[0] == key:
            return last[1].copy()
        f = self._flows_for(demand, floor, weight)
        self.__dict__["_last"] = (key, f.copy())
        return f

    def _flows_for(self, demand: np.ndarray, floor: np.ndarray | None, weight: np.ndarray | None) -> np.ndarray:
        m = self.model
        c = np.ones(m.num_cols) if weight is None else self.cells.T @ weight
        stacked = self.__dict__.get("_stacked")
        if stacked is None:
            stacked = self.__dict__["_stacked"] = sp.vstack([m.A, self.cells]).tocsr()
        row_hi = np.append(m.row_hi, demand)

        def solve_with(lo: np.ndarray, rules_lo: np.ndarray = m.row_lo) -> np.ndarray:
            capped = dataclasses.replace(m, A=stacked, row_lo=np.append(rules_lo, lo), row_hi=row_hi)
            return self._solve(capped, c)[0]

        unfloored = np.full(len(demand), -np.inf)
        if floor is not None:
            slack = _slack(row_hi)
            for lo in (floor * (1 - 1e-9), np.maximum(floor - slack, 0.0)):
                try:
                    return solve_with(lo)
                except RuntimeError:
                    continue
        try:
            return solve_with(unfloored)
        except RuntimeError:
            if not np.any(m.row_lo > 0):
                raise
            return solve_with(unfloored, np.minimum(m.row_lo, 0.0))

    def feasible(self) -> bool:
        """Whether some flows keep every flow row (budgets, shares, floors, pace) at all."""
        if self.model.num_rows == 0:
            return True
        if self.model.num_cols == 0:
            return bool(np.all((self.model.row_lo <= 0) & (self.model.row_hi >= 0)))
        try:
            self._solve(self.model, np.zeros(self.model.num_cols))
        except RuntimeError:
            return False
        return True

    def meets_rules(self, f: np.ndarray) -> bool:
        """Whether flows ``f`` keep every flow row (budgets, shares, floors, pace) within tolerance."""
        if self.model.num_cols == 0:
            return True
        lo, hi, slack = self.model.row_lo, self.model.row_hi, _slack(self.model.row_hi)
        activity = self.model.A @ f
        return bool(np.all((activity >= lo - slack) & (activity <= hi + slack)))

    @staticmethod
    def _solve(model: LinearModel, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Maximise c f: the flows and the row duals. Money is in yuan and its prices are tiny, so
        the LP is solved in scaled units (flows per ``scale`` yuan, profits relative to the
        largest) within HiGHS' tolerances; the duals are scaled back (by ``weight``)."""
        finite = np.abs(np.concatenate([model.row_hi[np.isfinite(model.row_hi)], [1.0]]))
        scale = max(float(finite.max()), 1.0)
        weight = max(float(np.abs(c).max()), 1e-300)
        scaled = dataclasses.replace(model, c=c / weight, row_lo=model.row_lo / scale, row_hi=model.row_hi / scale,
                                     col_lo=model.col_lo / scale, col_hi=model.col_hi / scale)
        result = get_backend("highs").solve(scaled, SolveOptions(extra={"solver": "simplex"}))
        if result.status != Status.OPTIMAL:
            raise RuntimeError(f"the flow LP ended {result.status.value} ({result.raw_status})")
        duals = result.duals * weight if result.duals is not None else np.full(model.num_rows, np.nan)
        return np.maximum(result.x * scale, 0.0), duals


@dataclasses.dataclass
class Pricing:
    """What the price search found: the bound, its prices, and the weighted relaxed plans."""

    bound: float
    u: np.ndarray
    point: np.ndarray  # weighted x and y of the relaxed plans (fractional), zeros elsewhere
    iterations: int
    seconds: float
    stopped_by: StoppedBy | None


def relaxed_plan(fm: Formulation, relax: Relaxation, villages: Villages, flows: Flows,
                 u: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """L(u), the relaxed plan reaching it, and the reduced profits."""
    m = fm.model
    d = m.c - relax.AT @ u
    value, x_cols, y_cols = villages.solve(d[fm.x_cols], d[fm.y_cols])
    flow_value, f = flows.solve(d[fm.f_cols])
    z = np.zeros(m.num_cols)
    z[x_cols] = 1.0
    z[fm.nx + y_cols] = 1.0
    z[fm.f_cols] = f
    d_s = d[fm.shortfall_cols]
    s_hi = m.col_hi[fm.shortfall_cols]
    # not rounding noise at a price equal to the penalty
    pays = d_s > 1e-9 * np.maximum(np.abs(m.c[fm.shortfall_cols]), 1.0)
    z[fm.shortfall_cols] = np.where(pays, s_hi, 0.0)
    s_value = float(d_s[pays] @ s_hi[pays])
    e_value, z[fm.e_cols] = rate_piece(fm, d[fm.e_cols])
    return value + flow_value + s_value + e_value + float(u @ relax.rhs) + m.offset, z, d


def rate_piece(fm: Formulation, d_e: np.ndarray) -> tuple[float, np.ndarray]:
    """The exit-rate columns' piece of L(u): the best vertex of their box [col_lo, col_hi] cut by
    the spread cap (hi - lo <= cap), at reduced profits ``d_e`` (a tiny LP solved by its vertices)."""
    n = len(fm.equity_kinds)
    if n == 0:
        return 0.0, np.zeros(0)
    m = fm.model
    lo_b, hi_b = m.col_lo[fm.e_cols], m.col_hi[fm.e_cols]
    cap = fm.problem.policy.equity.max_exit_rate_spread
    values = [np.array(v, dtype=float) for v in itertools.product(*zip(lo_b, hi_b, strict=True))]
    if cap is not None and n == 2:  # (lo, hi): the cap's edge meets the box where hi = lo + cap
        for low in (lo_b[0], hi_b[0]):
            values.append(np.array([low, low + cap]))
        for high in (lo_b[1], hi_b[1]):
            values.append(np.array([high - cap, high]))
        values = [v for v in values if lo_b[0] - 1e-12 <= v[0] <= hi_b[0] + 1e-12
                  and lo_b[1] - 1e-12 <= v[1] <= hi_b[1] + 1e-12 and v[1] - v[0] <= cap + 1e-12]
    best = max(values, key=lambda v: float(d_e @ v))
    return float(d_e @ best), best


def initial_prices(fm: Formulation, relax: Relaxation, villages: Villages) -> np.ndarray:
    """One price for all money, found by bisection (in log scale) so that the relaxed plans
    spend what the funds hold; people and the county rule start unpriced."""
    u = np.zeros(len(relax.rows))
    n_money = fm.family("money_balance").rows.stop - fm.family("money_balance").rows.start
    money = float(fm.problem.fund_amount.sum())
    if n_money == 0 or money <= 0:
        return u
    spend_of = -relax.A[:n_money, : fm.nx + fm.ny].sum(axis=0).A1  # each column's spend (its cost)
    lo, hi = -12.0, 0.0  # log10 of exits per yuan
    for _ in range(INITIAL_BISECTIONS):
        mid = (lo + hi) / 2
        u[:n_money] = -(10.0 ** mid)
        d = fm.model.c - relax.AT @ u
        _, x_cols, y_cols = villages.solve(d[fm.x_cols], d[fm.y_cols])
        spend = spend_of[x_cols].sum() + spend_of[fm.nx + y_cols].sum()
        lo, hi = (mid, hi) if spend > money else (lo, mid)
    u[:n_money] = -(10.0 ** ((lo + hi) / 2))
    return np.clip(u, relax.u_lo, relax.u_hi)


def find_prices(fm: Formulation, relax: Relaxation, villages: Villages, flows: Flows, seconds: float,
                progress: ProgressCallback) -> Pricing:
    """Box-step cutting planes on L(u), in prices scaled by each row's size (w = u * magnitude).

    Every relaxed plan z_k gives a cut L(w) >= L_k + g_k (w - w_k) (L is convex). The next
    prices minimise the cuts inside a box around the best prices so far (a small LP); the box
    doubles after a step to its edge that lowers L by a tenth of the predicted decrease and
    shrinks a little after one that does not. When the minimum of the cuts lies inside the
    box it is a lower bound on min L, so the search stops once the best L is within
    ``PRICE_TOL`` of it. The master's duals weigh the relaxed plans into :attr:`Pricing.point`.

    The search ends at that tolerance, after ``MAX_ITERATIONS`` steps or after ``seconds``,
    whichever comes first; which one is not known ahead, so every tenth step reports the seconds
    spent of at most ``seconds`` (the step of at most ``MAX_ITERATIONS``, the best L and the
    cuts' estimate beside them), and the last step says ``finished``.
    """
    started = time.perf_counter()
    size = relax.magnitude
    w_lo, w_hi = relax.u_lo * size, relax.u_hi * size
    u = initial_prices(fm, relax, villages)
    cuts: list[dict] = []
    weights = np.zeros(0)
    best, best_u, box, predicted, inside = np.inf, u, 0.0, -np.inf, False
    stopped_by = None
    iteration = 0
    for iteration in range(1, MAX_ITERATIONS + 1):
        value, z, _ = relaxed_plan(fm, relax, villages, flows, u)
        g = (relax.rhs - relax.A @ z) / size
        cuts.append({"g": g, "c": value - g @ (u * size), "x": np.flatnonzero(z[fm.x_cols] > 0.5).astype(np.int32),
                     "y": np.flatnonzero(z[fm.y_cols] > 0.5).astype(np.int32), "weight": 0.0, "used": iteration})
        if iteration == 1:
            box = max(BOX_START * abs(value), 1e-3)
            best, best_u = value, u
        elif value < best - 0.1 * max(best - predicted, 0.0):
            if not inside:
                box = min(box * 2.0, 1e3 * max(abs(value), 1.0))
            best, best_u = value, u
        else:
            box *= NULL_SHRINK
        if iteration % 10 == 0:
            progress("prices", step=iteration, max_steps=MAX_ITERATIONS, bound=best, lower=predicted,
                     seconds=time.perf_counter() - started, budget=seconds)
        if time.perf_counter() - started > seconds:
            stopped_by = StoppedBy.TIME_LIMIT
            break
        center = best_u * size
        lo, hi = np.maximum(w_lo, center - box), np.minimum(w_hi, center + box)
        master = _master(np.array([c["g"] for c in cuts]), np.array([c["c"] for c in cuts]), lo, hi, w_lo, w_hi)
        if master is None:  # the master LP failed: keep the best prices found so far
            break
        w_next, predicted, weights, inside = master
        for cut, weight in zip(cuts, weights, strict=True):
            cut["weight"] = weight
            if weight > 0:
                cut["used"] = iteration
        if best - predicted <= PRICE_TOL * max(abs(best), 1.0) and (inside or box < BOX_END * max(abs(best), 1.0)):
            break
        cuts = [c for c in cuts if iteration - c["used"] <= CUT_MEMORY]
        u = w_next / size
    progress("prices", step=iteration, max_steps=MAX_ITERATIONS, bound=best, lower=predicted,
             seconds=time.perf_counter() - started, budget=seconds, finished=True)
    return Pricing(best, best_u, _weighted_point(fm, cuts), iteration, time.perf_counter() - started, stopped_by)


def _weighted_point(fm: Formulation, cuts: list[dict]) -> np.ndarray:
    """The relaxed plans' x and y weighted by the last master's duals (the newest plan if none)."""
    weights = np.array([c["weight"] for c in cuts])
    if weights.sum() <= 0:
        weights = np.zeros(len(cuts))
        weights[-1] = 1.0
    weights = weights / weights.sum()
    point = np.zeros(fm.model.num_cols)
    for cut, weight in zip(cuts, weights, strict=True):
        if weight > 0:
            point[cut["x"]] += weight
            point[fm.nx + cut["y"]] += weight
    return point


def _master(gradients: np.ndarray, constants: np.ndarray, lo: np.ndarray, hi: np.ndarray, w_lo: np.ndarray,
            w_hi: np.ndarray) -> tuple[np.ndarray, float, np.ndarray, bool] | None:
    """min eta s.t. eta >= c_k + g_k w for every cut, lo <= w <= hi: the prices, the predicted
    minimum, the cut weights (duals) and whether the box was not binding; None if it fails."""
    k, n = gradients.shape
    A = sp.csr_matrix(np.hstack([-gradients, np.ones((k, 1))]))
    c = np.zeros(n + 1)
    c[-1] = 1.0
    model = LinearModel(c=c, A=A, row_lo=constants, row_hi=np.full(k, np.inf), col_lo=np.append(lo, -np.inf),
                        col_hi=np.append(hi, np.inf), integrality=np.zeros(n + 1, dtype=bool), sense="min")
    result = get_backend("highs").solve(model, SolveOptions(extra={"solver": "simplex"}))
    if result.status != Status.OPTIMAL:
        return None
    w = result.x[:n]
    tol = 1e-9 * np.maximum(np.abs(w), 1.0)
    inside = bool(np.all(((w > lo + tol) | (lo <= w_lo)) & ((w < hi - tol) | (hi >= w_hi))))
    weights = np.abs(result.duals) if result.duals is not None else np.zeros(k)
    return w, float(result.objective), weights, inside


def row_prices(fm: Formulation, relax: Relaxation, flows: Flows, u: np.ndarray) -> np.ndarray:
    """Every row's price at prices ``u`` (d L / d row bound): ``u`` on the relaxed rows, the
    flow LP's duals at these prices on the flow rows (budgets, shares, pace), NaN on the rows
    the villages keep (one plan per household, projects, prerequisites)."""
    prices = np.full(fm.model.num_rows, np.nan)
    prices[relax.rows] = u
    rows = np.concatenate([np.arange(fm.family(name).rows.start, fm.family(name).rows.stop)
                           for name in FLOW_FAMILIES])
    try:
        prices[rows] = flows.duals((fm.model.c - relax.AT @ u)[fm.f_cols])
    except RuntimeError:  # the flow LP failed at these prices: its rows stay unpriced, the solve goes on
        pass
    return prices


def round_point(fm: Formulation, point: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each household's heaviest column where its weight in ``point`` totals at least 1/2; each
    project's heaviest start year likewise (always for a mandatory one): chosen x and y columns."""
    def heaviest(weights: np.ndarray, owner: np.ndarray, always: np.ndarray) -> np.ndarray:
        if not len(weights):
            return np.zeros(0, dtype=np.int64)
        order = np.lexsort((-weights, owner))
        starts = np.flatnonzero(np.diff(owner[order], prepend=-1))
        total = np.add.reduceat(weights[order], starts)
        pick = order[starts]
        return pick[(total >= 0.5) | always[owner[pick]]]

    x = heaviest(point[fm.x_cols], fm.x_household, np.zeros(len(fm.problem.household_ids), dtype=bool))
    y = heaviest(point[fm.y_cols], fm.y_proj, fm.problem.proj_mandatory)
    return x, y


def solve_decompose(fm: Formulation, backend: str, options: SolveOptions, progress: ProgressCallback, *,
                    client=None, incumbent: np.ndarray | None = None) -> Outcome:
    """Prices (the bound), the weighted relaxed plans rounded and repaired into a plan, groups
    of counties (as tasks on ``client``, a Dask client, when given), then improvement rounds
    (module docstring). ``incumbent``: another plan's solution vector (the pipeline passes the
    greedy rule's): the search goes on from it when it is better than the repaired plan."""
    started = time.perf_counter()
    model = fm.model
    solver = get_backend(backend)
    missing = len(fm.unstartable_mandatory())
    if missing:
        return Outcome(SolveResult(Status.INFEASIBLE, raw_status="mandatory project without a start year",
                                   backend=backend), None, {}, [f"{missing} mandatory projects cannot start in time"])
    progress("prices: setting up", households=len(fm.problem.household_ids))
    relax, villages, flows = Relaxation.of(fm), Villages.of(fm), Flows.of(fm)
    if not flows.feasible():  # budgets, shares, floors and pace cannot all hold, whatever is planned
        return Outcome(SolveResult(Status.INFEASIBLE, raw_status="the money rules cannot all hold",
                                   backend=backend), None, {}, ["the money rules (source budgets, category shares, "
                                                                "county floors, pace) cannot all hold"])
    phases = {"setup": round(time.perf_counter() - started, 4)}
    budget = PRICING_SECONDS if options.time_limit is None else PRICING_SHARE * options.time_limit
    pricing = find_prices(fm, relax, villages, flows, budget, progress)
    phases["prices"] = round(pricing.seconds, 4)
    notes = [f"prices: {pricing.iterations} cutting-plane steps, Lagrangian bound {pricing.bound:.6g}"]
    if villages.relaxed_villages:
        notes.append(f"{villages.relaxed_villages} villages have over {MAX_SCHEDULES} project schedules: "
                     "the bound ignores their prerequisites")
    prices = np.clip(-pricing.u[relax.exit_rows], 0.0, fm.penalty)
    rows = row_prices(fm, relax, flows, pricing.u)

    repair_started = time.perf_counter()
    n_money = fm.family("money_balance").rows.stop - fm.family("money_balance").rows.start
    worth = model.c[fm.x_cols] - relax.AT[fm.x_cols][:, n_money:] @ pricing.u[n_money:]
    profit = model.c[fm.x_cols] - relax.AT[fm.x_cols] @ pricing.u
    try:
        x, y = repair(fm, flows.pay, *round_point(fm, pricing.point), worth, profit)
        chosen = np.zeros(model.num_cols)
        chosen[x] = 1.0
        chosen[fm.nx + y] = 1.0
        plan = solve_restricted(fm, solver, chosen, np.zeros(model.num_cols, dtype=bool),
                                dataclasses.replace(options, progress=None))
        failure = None if plan.status.has_solution else f"the repaired plan ended {plan.status.value}"
    except ValueError as exc:
        failure = f"the relaxed plan could not be repaired: {exc}"
    phases["repair"] = round(time.perf_counter() - repair_started, 4)
    start = "repaired plan"
    if incumbent is not None:
        if failure is None:
            progress(start, **fm.headline(plan.x))
        better = better_start(fm, solver, None if failure is not None else plan, incumbent, options)
        if better is not None:
            plan, failure, start = better, None, "greedy rule's plan, better: the start"
            notes.append("the greedy rule's plan was better than the repaired relaxed plan: the search went on "
                         "from it")
    if failure is not None:  # a heuristic's failure proves nothing: the whole MIP decides, in the time left
        progress("repair failed; solving the whole MIP", reason=failure)
        # presolve off: HiGHS 1.16's MIP presolve ignored a 60 s limit for 4 minutes on the default
        # county with 30 % of its money and a hard deadline (scenarios/demo-hard.yaml); off, it stops in time
        whole = solver.solve(model, dataclasses.replace(options, time_limit=time_left(options, started),
                                                        presolve=False))
        phases["full_mip"] = round(whole.solve_seconds, 4)
        bound = pricing.bound
        if whole.bound is not None and whole.bound < bound:  # the exit prices belong to L(u), not to this bound
            bound, prices = whole.bound, None
        return Outcome(whole, bound if whole.status.has_solution else None, phases,
                       notes + [failure, "the whole MIP was solved instead"], prices, row_prices=rows,
                       price_method=LAGRANGIAN)
    progress(start, **fm.headline(plan.x), gap=(pricing.bound - plan.objective) / max(abs(plan.objective), 1.0))
    plan = advance_plan(fm, flows, plan, solver, options, started, progress, phases, notes)
    plan = county_plans(fm, pricing.point, plan, solver, options, started, progress, phases, notes, client)
    plan = improve_by_county(fm, plan, pricing.point, pricing.bound, solver, options, started, progress, phases,
                             notes)
    plan = advance_plan(fm, flows, plan, solver, options, started, progress, phases, notes)
    if pricing.stopped_by is not None and plan.stopped_by is None:
        plan.stopped_by = pricing.stopped_by
    return Outcome(plan, pricing.bound, phases, notes, prices, row_prices=rows, price_method=LAGRANGIAN)


def better_start(fm: Formulation, solver, plan: SolveResult | None, incumbent: np.ndarray,
                 options: SolveOptions) -> SolveResult | None:
    """``incumbent``'s packages and projects with the money flows solved again under every rule,
    when that is a plan better than ``plan`` (or there is none); else None."""
    trial = solve_restricted(fm, solver, incumbent, np.zeros(fm.model.num_cols, dtype=bool),
                             dataclasses.replace(options, progress=None, start=None))
    if not trial.status.has_solution or (plan is not None and trial.objective <= plan.objective):
        return None
    return trial


def advance_plan(fm: Formulation, flows: Flows, plan: SolveResult, solver, options: SolveOptions, started: float,
                 progress: ProgressCallback, phases: dict, notes: list[str]) -> SolveResult:
    """``plan`` with swaps toward the schedule (:func:`allocator.optimize.repair.advance`) when
    it leaves an annual target or a hat-off year short; kept only if it is better."""
    if plan.x[fm.shortfall_cols].sum() <= 1e-6:
        return plan
    pass_started = time.perf_counter()
    budget = ADVANCE_SECONDS if options.time_limit is None else ADVANCE_SHARE * options.time_limit
    left = time_left(options, started)
    seconds = budget if left is None else max(min(budget, left), 1.0)
    x, y = np.flatnonzero(plan.x[fm.x_cols] > 0.5), np.flatnonzero(plan.x[fm.y_cols] > 0.5)
    moved = advance(fm, flows.pay, x, y, seconds)
    if np.array_equal(moved, x):
        return plan
    chosen = np.zeros(fm.model.num_cols)
    chosen[moved] = 1.0
    chosen[fm.nx + y] = 1.0
    trial = solve_restricted(fm, solver, chosen, np.zeros(fm.model.num_cols, dtype=bool),
                             dataclasses.replace(options, progress=None, start=None))
    phases["advance"] = round(phases.get("advance", 0.0) + time.perf_counter() - pass_started, 4)
    if not trial.status.has_solution or trial.objective <= plan.objective:
        return plan
    changed = len(np.setdiff1d(moved, x))
    notes.append(f"{changed} packages swapped for ones that count earlier toward a short target")
    progress("swaps toward the schedule", swapped=changed, **fm.headline(trial.x))
    return dataclasses.replace(plan, x=trial.x, objective=trial.objective)


def county_rows(fm: Formulation, column_county: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The county of every row whose columns all lie in one county (-1 for the others), and
    the rows with columns in several counties (source budgets, shares, the shortfall cap)."""
    A = fm.model.A
    counties = column_county[A.indices]
    nonempty = np.diff(A.indptr) > 0
    starts = A.indptr[:-1][nonempty]
    lo = np.full(A.shape[0], -1)
    hi = np.full(A.shape[0], -1)
    lo[nonempty] = np.minimum.reduceat(counties, starts)
    hi[nonempty] = np.maximum.reduceat(counties, starts)
    local = nonempty & (lo == hi)
    return np.where(local, lo, -1), np.flatnonzero(nonempty & ~local)


def county_shares(fm: Formulation, plan: np.ndarray, point: np.ndarray, column_group: np.ndarray,
                  rows: np.ndarray, n_groups: int) -> tuple[np.ndarray, np.ndarray]:
    """Split each province-wide row between groups of counties: each keeps what ``plan``
    uses there, and the slack goes by the group's spend in ``point``. Lower and upper bounds
    per (row, group); they sum to the row's own, and ``plan`` keeps every group's."""
    m = fm.model
    A = m.A[rows].tocoo()
    use = np.zeros((len(rows), n_groups))
    np.add.at(use, (A.row, column_group[A.col]), A.data * plan[A.col])
    spend = np.zeros(n_groups)
    cost = np.concatenate([fm.problem.pkg_cost[fm.x_pkg], fm.problem.proj_cost[fm.y_proj]])
    np.add.at(spend, column_group[: fm.nx + fm.ny], cost * point[: fm.nx + fm.ny])
    weight = spend / spend.sum() if spend.sum() > 0 else np.full(n_groups, 1.0 / n_groups)
    total = use.sum(axis=1, keepdims=True)
    lo, hi = m.row_lo[rows][:, None], m.row_hi[rows][:, None]
    with np.errstate(invalid="ignore"):
        upper = np.where(np.isfinite(hi), use + np.maximum(hi - total, 0.0) * weight, np.inf)
        lower = np.where(np.isfinite(lo), use - np.maximum(total - lo, 0.0) * weight, -np.inf)
    return lower, upper


def county_groups(fm: Formulation, keep: np.ndarray, column_county: np.ndarray, group_columns: int) -> np.ndarray:
    """Consecutive counties grouped so that each group's model has about ``group_columns`` kept
    columns (one group when the whole model is that small): the group of every column."""
    counties = len(fm.problem.county_ids)
    size = np.bincount(column_county[keep], minlength=counties)
    group_of_county = np.cumsum(size) // group_columns
    _, group_of_county = np.unique(group_of_county, return_inverse=True)
    return group_of_county[column_county]


def solve_group(sub: Formulation, problem: Problem | None, backend: str,
                options: SolveOptions) -> tuple[str, np.ndarray | None]:
    """lp-fix on one group of counties, in a thread or as a Dask task: the LP relaxation, then
    a MIP over what it leaves fractional. The LP's status and the group's plan (None if none).

    ``problem`` replaces ``sub.problem`` when given: a Dask task gets the group's model alone
    and the problem's arrays once per worker."""
    if problem is not None:
        sub = dataclasses.replace(sub, problem=problem)
    solver = get_backend(backend)
    started = time.perf_counter()
    lp = solver.solve(sub.model.relaxed(), dataclasses.replace(
        options, mip_gap=None, extra={"solver": "ipm", **options.extra} if backend == "highs" else options.extra))
    if lp.status != Status.OPTIMAL:
        return lp.status.value, None
    left = None if options.time_limit is None else max(options.time_limit - (time.perf_counter() - started), 1.0)
    outcome = fix_and_resolve(sub, solver, lp.x, lp.objective, None, dataclasses.replace(options, time_limit=left),
                              time.perf_counter(), quiet, {}, [], polish=False)
    return lp.status.value, outcome.result.x if outcome.result.status.has_solution else None


def run_groups(group_model: Callable[[int], tuple[np.ndarray, Formulation]], groups: dict[int, float | None],
               problem: Problem, backend: str, options: SolveOptions, threads: int, progress: ProgressCallback,
               client=None) -> tuple[list[tuple[np.ndarray, np.ndarray | None]], str, list[str]]:
    """Each group's (columns, plan or None), for ``groups`` (group: its time limit) in that
    order, where they ran, and the groups whose Dask task failed. The groups run as tasks on
    ``client`` (Dask) when given, else in ``threads`` threads (HiGHS releases the GIL).

    A Dask task gets its group's model only; the problem's arrays (without its tables) go to
    every worker once. Groups are submitted as they are built, so the first ones already run."""
    done = [0]

    def report(g: int, columns: np.ndarray, lp: str, plan: np.ndarray | None) -> None:
        done[0] += 1
        progress("counties", group=g + 1, done=done[0], of=len(groups), columns=len(columns), lp=lp,
                 plan=plan is not None)

    if client is None:
        def one(g: int) -> tuple[np.ndarray, np.ndarray | None]:
            cols, sub = group_model(g)
            lp, plan = solve_group(sub, None, backend, dataclasses.replace(options, time_limit=groups[g]))
            report(g, cols, lp, plan)
            return cols, plan

        with ThreadPoolExecutor(max_workers=threads) as pool:
            return list(pool.map(one, groups)), f"in threads, {threads} at a time", []

    from distributed import as_completed

    shared = client.scatter(dataclasses.replace(problem, tables={}), broadcast=True, hash=False)
    tag = uuid.uuid4().hex[:8]
    futures, columns = {}, {}
    for g in groups:
        cols, sub = group_model(g)
        columns[g] = cols
        futures[client.submit(solve_group, dataclasses.replace(sub, problem=None), shared, backend,
                              dataclasses.replace(options, time_limit=groups[g]), key=f"allocator-group-{g + 1}-{tag}",
                              pure=False)] = g
    plans: dict[int, np.ndarray | None] = {}
    failed = []
    for future in as_completed(futures):
        g = futures[future]
        try:
            lp, plans[g] = future.result()
        except Exception as error:  # noqa: BLE001 - a lost task leaves its counties to the repaired plan
            lp = "error"
            failed.append(f"group {g + 1}: {type(error).__name__}: {error}")
        report(g, columns[g], lp, plans[g])
    where = f"as {len(groups)} Dask tasks, workers: {len(client.nthreads())}, scheduler {client.scheduler.address}"
    return [(columns[g], plans[g]) for g in groups], where, failed


def group_exits(fm: Formulation, x: np.ndarray, column_group: np.ndarray, rows: np.ndarray,
                n_groups: int) -> np.ndarray:
    """What the packages of ``x`` add to each schedule row in ``rows``, per (row, group)."""
    A = fm.model.A[rows][:, fm.x_cols].tocoo()
    use = np.zeros((len(rows), n_groups))
    np.add.at(use, (A.row, column_group[A.col]), A.data * x[A.col])
    return use


def groups_to_run(behind: np.ndarray, needs: np.ndarray, seconds: float | None,
                  workers: int) -> tuple[np.ndarray, np.ndarray | None]:
    """The groups lp-fix runs on in ``seconds`` with ``workers`` at once, in group order, and
    each one's time limit: all when the time covers every group's ``needs`` (seconds), else
    those furthest ``behind`` the schedule first while their needs fit (at least one; a group
    stopped before its LP ends wastes its time). The time is shared in proportion to the needs."""
    if seconds is None:
        return np.arange(len(behind)), None
    order = np.argsort(-behind, kind="stable")
    fits = max(int(np.searchsorted(np.cumsum(needs[order]), seconds * workers * (1 + 1e-9), side="right")), 1)
    run = np.sort(order[:fits])
    return run, np.maximum(needs[run] * seconds * workers / needs[run].sum(), 2.0)


def target_shares(fm: Formulation, point: np.ndarray, column_group: np.ndarray, rows: np.ndarray,
                  n_groups: int) -> np.ndarray:
    """Split each scenario-wide schedule row's need (exits packages must add by its year-end)
    between groups of counties by what the weighted relaxed plans (``point``) add there: the
    lower bound per (row, group). They sum to the row's need; a group meets its share or pays
    the row's shortfall penalty for the rest."""
    use = group_exits(fm, point, column_group, rows, n_groups)
    reach = group_exits(fm, np.ones(fm.model.num_cols), column_group, rows, n_groups)
    weight = np.where(use.sum(axis=1, keepdims=True) > 0, use, reach)
    weight = weight / np.maximum(weight.sum(axis=1, keepdims=True), 1e-300)
    return fm.model.row_lo[rows][:, None] * weight


def county_plans(fm: Formulation, point: np.ndarray, incumbent: SolveResult, solver, options: SolveOptions,
                 started: float, progress: ProgressCallback, phases: dict, notes: list[str],
                 client=None) -> SolveResult:
    """A better plan group of counties by group, when one is found.

    Each group of counties gets the share of the province-wide rows that ``incumbent`` uses
    there plus a share of the slack by the spend of the weighted relaxed plans (``point``)
    (:func:`county_shares`), and lp-fix runs on the group's package columns that ``point``
    or ``incumbent`` use (:func:`solve_group`), groups in parallel threads or as Dask tasks
    (:func:`run_groups`). A scenario-wide schedule row (an annual target over several
    counties) is split too, by what ``point`` adds in each group (:func:`target_shares`), and
    every group gets the row's shortfall column, so a group that cannot meet its share pays
    the penalty for the rest instead of having no plan. The groups' packages and projects
    then get their flows and shortfalls from one LP over the continuous columns; a group
    without a plan keeps its part of ``incumbent``, and the incumbent stays if the mix is
    not better."""
    model = fm.model
    keep = np.ones(model.num_cols, dtype=bool)
    used = (point[fm.x_cols] > 1e-9) | (incumbent.x[fm.x_cols] > 0.5)
    # every start year of a package used: the years are where prices and the earliness credit trade off
    used_pkgs = np.zeros(len(fm.problem.pkg_ids), dtype=bool)
    used_pkgs[fm.x_pkg[used]] = True
    keep[fm.x_cols] = used_pkgs[fm.x_pkg]
    group = county_groups(fm, keep, fm.column_county, options.group_columns or GROUP_COLUMNS)
    n_groups = int(group.max()) + 1
    row_group, global_rows = county_rows(fm, group)
    # shares of what the incumbent (feasible) uses: any mix of group plans and its parts keeps every shared row
    lower, upper = county_shares(fm, incumbent.x, point, group, global_rows, n_groups)
    schedule = np.zeros(model.num_rows, dtype=bool)
    for name in SHORTFALL_FAMILIES:
        schedule[fm.family(name).rows] = True
    split = schedule[global_rows]
    lower[split] = target_shares(fm, point, group, global_rows[split], n_groups)
    penalised = model.A[global_rows][:, fm.shortfall_cols].tocsr()  # each schedule row's shortfall column
    threads = options.threads or COUNTY_THREADS
    slots = sum(client.nthreads().values()) if client is not None else threads
    if not slots:  # a scheduler without workers would hold the tasks until some join
        notes.append("the Dask scheduler has no workers: the groups ran in threads")
        client, slots = None, threads
    workers = max(1, min(slots, n_groups))
    remaining = None if options.time_limit is None else options.time_limit - (time.perf_counter() - started)
    budget = None if remaining is None else COUNTY_SHARE * remaining
    # how far the incumbent is behind in each group: its county shortfalls and the target shares it misses
    behind = np.bincount(group[fm.s_cols], incumbent.x[fm.s_cols], minlength=n_groups)
    behind += np.maximum(lower[split] - group_exits(fm, incumbent.x, group, global_rows[split], n_groups), 0.0).sum(
        axis=0)
    needs = GROUP_SECONDS * np.maximum(np.bincount(group[keep], minlength=n_groups) / GROUP_COLUMNS, 0.1)
    run, limits = groups_to_run(behind, needs, budget, workers)
    if len(run) < n_groups:
        notes.append(f"the time left gives {len(run)} of {n_groups} groups of counties the time their size needs "
                     f"({GROUP_SECONDS:.0f} s per {GROUP_COLUMNS:,} columns): lp-fix ran on those furthest behind "
                     "the schedule")
    county_options = dataclasses.replace(options, progress=None, threads=None, start=None)
    county_started = time.perf_counter()

    def group_model(g: int) -> tuple[np.ndarray, Formulation]:
        cols = np.flatnonzero(keep & (group == g))
        touched = np.asarray(model.A[global_rows][:, cols].getnnz(axis=1)).ravel() > 0
        cols = np.union1d(cols, fm.shortfall_cols.start + penalised[touched & split].indices)
        g_rows = global_rows[touched]
        rows = np.union1d(np.flatnonzero(row_group == g), g_rows)
        lo, hi = model.row_lo[rows].copy(), model.row_hi[rows].copy()
        at = np.searchsorted(rows, g_rows)
        lo[at], hi[at] = lower[touched, g], upper[touched, g]
        return cols, fm.restrict(cols, rows, lo, hi)

    limit_of = dict(zip(run.tolist(), [None] * len(run) if limits is None else limits.tolist(), strict=True))
    groups, where, failed = run_groups(group_model, limit_of, fm.problem, solver.name, county_options, workers,
                                       progress, client)
    z = incumbent.x.copy()
    found = 0
    for cols, plan in groups:
        if plan is not None:
            z[cols] = plan
            found += 1
    phases["counties"] = round(time.perf_counter() - county_started, 4)
    if failed:
        notes.append(f"{len(failed)} group tasks failed and keep the repaired plan's part ({failed[0]})")
    z[model.integrality] = np.round(z[model.integrality])
    mixed = solve_restricted(fm, solver, z, np.zeros(model.num_cols, dtype=bool),
                             dataclasses.replace(options, progress=None, start=None))
    objective = mixed.objective if mixed.status.has_solution else -np.inf
    if objective <= incumbent.objective:
        why = "was not better" if mixed.status.has_solution else f"ended {mixed.status.value}"
        notes.append(f"lp-fix on {len(groups)} groups of counties ({where}) found plans for {found}; their mix with "
                     f"the repaired plan {why}: the repaired plan is kept")
        return incumbent
    notes.append(f"lp-fix on {len(groups)} groups of counties ({where}), on their shares of the province-wide rows, "
                 f"found plans for {found}")
    progress("county plans mixed", **fm.headline(mixed.x))
    return dataclasses.replace(incumbent, x=mixed.x, objective=objective)


__all__ = ["LAGRANGIAN", "row_prices", "solve_decompose"]
