"""Repair: make an integral plan keep its money and personnel rows, then fill it.

The price method's relaxed plan chooses a package and year per household and a project
schedule per village, but it only prices money, people and the county rule, so it may
spend more in a (county, category, year) than the funds can pay, or use more hours than a
region has. Repair, in whole-array steps:

1. **Drop** in every money cell the funds cannot pay in full the packages worth least per
   yuan until the rest is paid (optional projects, with the packages that need them, when
   packages alone do not free enough); in every personnel row over its hours the packages
   worth least per hour; then optional projects no chosen package needs.
2. **Fill** in rounds: every household without a package proposes its most profitable
   package at the prices whose projects are finished in time; a flow LP says how much more each cell can be
   paid (never less than it is paid now); each cell takes its best proposals that fit, then
   each personnel row keeps the best that fit its hours.
3. **Drop** again where the new mix of categories breaks a category share rule.

"Worth" is the value the prices give a package apart from its money: its exit gain,
weighted up by the county rule's price, less its hours at the personnel prices.

:func:`advance` works on any plan, not at prices: while an annual target or a county's
hat-off year is short, it swaps households' packages for ones that count more by the short
year-ends (and no less at any other), most exits toward the short rows per yuan first, within
the money the funds can still pay and the hours left.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import numpy as np
import scipy.sparse as sp

from allocator.model.formulation import Formulation, expand_ranges

FILL_ROUNDS = 30
DROP_ROUNDS = 50
TOL = 1e-7  # relative tolerance on money and hours
MANDATORY_WEIGHT = 1e3  # a yuan of a mandatory project's cell against one of another cell, when money is short


@dataclasses.dataclass
class PlanRows:
    """Where each package and project column sits in the money and personnel rows."""

    cell_x: np.ndarray  # money balance row of each x column (-1: costs nothing)
    cell_y: np.ndarray
    cost_x: np.ndarray
    cost_y: np.ndarray
    hours: sp.csr_matrix  # personnel rows x package columns
    hours_t: sp.csr_matrix  # its transpose (package columns x personnel rows)
    hours_cap: np.ndarray
    n_cells: int

    @classmethod
    def of(cls, fm: Formulation) -> PlanRows:
        m, p = fm.model, fm.problem
        money = m.A[fm.family("money_balance").rows][:, : fm.nx + fm.ny].tocsc()
        count = np.diff(money.indptr)
        cell = np.full(fm.nx + fm.ny, -1)
        cell[count > 0] = money.indices[money.indptr[:-1][count > 0]]
        pers = fm.family("personnel").rows
        hours = m.A[pers][:, : fm.nx].tocsr()
        return cls(cell[: fm.nx], cell[fm.nx:], p.pkg_cost[fm.x_pkg], p.proj_cost[fm.y_proj], hours,
                   hours.T.tocsr(), m.row_hi[pers], money.shape[0])

    def spend(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Spend per money cell of the chosen x and y columns."""
        paid_x, paid_y = x[self.cell_x[x] >= 0], y[self.cell_y[y] >= 0]
        return (np.bincount(self.cell_x[paid_x], self.cost_x[paid_x], minlength=self.n_cells)
                + np.bincount(self.cell_y[paid_y], self.cost_y[paid_y], minlength=self.n_cells))

    def used_hours(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.hours[:, x].sum(axis=1)).ravel()


def repair(fm: Formulation, pay: Callable[..., np.ndarray], x: np.ndarray, y: np.ndarray,
           worth: np.ndarray, profit: np.ndarray, fill_rounds: int = FILL_ROUNDS, *, rows: PlanRows | None = None,
           pays_in_full: Callable[[np.ndarray, int], bool] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A plan (chosen x and y columns) that the funds and personnel can carry, from ``x``, ``y``.

    ``worth`` is each package column's value apart from money, ``profit`` its value at the
    money price too (the order of the fill). ``pay(demand, floor, weight)`` returns what the
    funds can pay per money cell of ``demand``, at least ``floor``. Raises ValueError when even
    dropping every optional choice leaves a cell unpaid (mandatory projects the money cannot
    carry). ``fill_rounds`` caps the fill's rounds (each proposes one package per household).
    ``rows``: :meth:`PlanRows.of` of ``fm`` when the caller has it (repeated repairs build it once).
    ``pays_in_full(demand, cell)``: whether the funds can pay ``cell`` in full among the flows paying
    the most of ``demand`` (a moved mandatory project's new cell); default: in the flows ``pay`` finds."""
    rows = PlanRows.of(fm) if rows is None else rows
    x, y = sorted_unique(x), sorted_unique(y)
    x = x[prerequisites_met(fm, x, y)]
    x, y = _drop_unpaid(fm, rows, pay, x, y, worth, pays_in_full)
    x = _drop_over_hours(rows, x, worth)
    y = drop_unused_projects(fm, x, y)
    x = _fill(fm, rows, pay, x, y, worth, profit, fill_rounds)
    # dropping and filling change the category mix: drop again where share rules now leave a cell unpaid
    return _drop_unpaid(fm, rows, pay, x, y, worth, pays_in_full)


def _drop_unpaid(fm: Formulation, rows: PlanRows, pay, x: np.ndarray, y: np.ndarray, worth: np.ndarray,
                 pays_in_full=None) -> tuple[np.ndarray, np.ndarray]:
    """Drop the packages (then optional projects) worth least per yuan from cells the funds cannot pay."""
    p = fm.problem
    for _ in range(DROP_ROUNDS):
        mandatory = y[p.proj_mandatory[fm.y_proj[y]] & (rows.cell_y[y] >= 0)]
        weight = np.ones(rows.n_cells)
        weight[rows.cell_y[mandatory]] = MANDATORY_WEIGHT  # pay the mandatory projects' cells first
        spend = rows.spend(x, y)
        over = spend - pay(spend, None, weight)
        over[over <= TOL * np.maximum(spend, 1.0)] = 0.0
        if not over.any():
            return x, y
        in_over = x[(rows.cell_x[x] >= 0) & (over[np.maximum(rows.cell_x[x], 0)] > 0)]
        density = worth[in_over] / np.maximum(rows.cost_x[in_over], 1.0)  # value per yuan
        drop = _cheapest_cover(rows.cell_x[in_over], rows.cost_x[in_over], density, over)
        freed = np.bincount(rows.cell_x[in_over[drop]], rows.cost_x[in_over[drop]], minlength=rows.n_cells)
        x = np.setdiff1d(x, in_over[drop], assume_unique=True)  # x stays sorted and unique
        still = over - freed > TOL * np.maximum(spend, 1.0)
        optional = y[(rows.cell_y[y] >= 0) & ~p.proj_mandatory[fm.y_proj[y]]]
        optional = optional[still[np.maximum(rows.cell_y[optional], 0)]]
        if len(optional):
            gone = optional[_cheapest_cover(rows.cell_y[optional], rows.cost_y[optional], -rows.cost_y[optional],
                                            np.where(still, over - freed, 0.0))]
            freed = freed + np.bincount(rows.cell_y[gone], rows.cost_y[gone], minlength=rows.n_cells)  # stays float
            y = np.setdiff1d(y, gone)
            x = x[prerequisites_met(fm, x, y)]
        stuck = over - freed > TOL * np.maximum(spend, 1.0)  # only mandatory projects left to pay there
        if stuck.any():
            moved = _move_mandatory(fm, rows, pay, x, y, stuck, pays_in_full)
            if moved is None:
                raise ValueError("the funds cannot pay for the mandatory projects in some county, category and year")
            y = moved
            x = x[prerequisites_met(fm, x, y)]
    raise ValueError("repair did not settle within its rounds")


def _move_mandatory(fm: Formulation, rows: PlanRows, pay, x: np.ndarray, y: np.ndarray,
                    stuck: np.ndarray, pays_in_full=None) -> np.ndarray | None:
    """Move each mandatory project paid from a ``stuck`` cell to the latest other start year
    at which the funds pay everything in its new cell (None when one cannot move); whether
    they do is ``pays_in_full(spend, cell)`` when given, else the cell is paid in full in the
    flows ``pay`` finds."""
    paid_x = x[rows.cell_x[x] >= 0]  # the packages stay: their spend once (rows.spend adds the projects' to it)
    spend_x = np.bincount(rows.cell_x[paid_x], rows.cost_x[paid_x], minlength=rows.n_cells)
    y = np.unique(y)
    for col in y[(rows.cell_y[y] >= 0) & stuck[np.maximum(rows.cell_y[y], 0)]]:
        options = np.flatnonzero((fm.y_proj == fm.y_proj[col]) & (fm.y_year != fm.y_year[col]))
        for option in options[np.argsort(-fm.y_year[options], kind="stable")]:
            moved = np.delete(y, np.searchsorted(y, col))  # y sorted and unique: y without col, with option
            at = np.searchsorted(moved, option)
            if at == len(moved) or moved[at] != option:
                moved = np.insert(moved, at, option)
            paid_y = moved[rows.cell_y[moved] >= 0]
            spend = spend_x + np.bincount(rows.cell_y[paid_y], rows.cost_y[paid_y], minlength=rows.n_cells)
            cell = rows.cell_y[option]
            if cell < 0 or (pays_in_full(spend, int(cell)) if pays_in_full is not None
                            else pay(spend, None)[cell] >= spend[cell] * (1 - TOL)):
                y = moved
                break
        else:
            return None
    return y


def sorted_unique(a: np.ndarray) -> np.ndarray:
    """``np.unique(a)`` of a 1-d integer array, by a stable sort (fast on the mostly sorted
    column lists the repair merges)."""
    a = np.sort(np.asarray(a), kind="stable")
    return a[np.flatnonzero(np.diff(a, prepend=a[:1] - 1) != 0)] if len(a) else a


def _cheapest_cover(cell: np.ndarray, cost: np.ndarray, density: np.ndarray, need: np.ndarray) -> np.ndarray:
    """Per cell, the items of least density whose cost first reaches the cell's need (positions)."""
    order = np.lexsort((density, cell))
    c, k = cell[order], cost[order]
    before = running_total(c, k) - k  # cost of the cell's earlier items
    return order[before < need[c] - 1e-9]


def running_total(group: np.ndarray, value: np.ndarray) -> np.ndarray:
    """Cumulative sum of ``value`` restarting at every group (``group`` sorted)."""
    csum = np.cumsum(value)
    first = np.searchsorted(group, group)
    return csum - (csum[first] - value[first])


def _drop_over_hours(rows: PlanRows, x: np.ndarray, worth: np.ndarray) -> np.ndarray:
    """Drop the packages worth least per hour from personnel rows over their hours."""
    for _ in range(DROP_ROUNDS):
        over = rows.used_hours(x) - rows.hours_cap
        over[over <= TOL * np.maximum(rows.hours_cap, 1.0)] = 0.0
        if not over.any():
            return x
        entries = rows.hours[np.flatnonzero(over > 0)][:, x].tocoo()
        row = np.flatnonzero(over > 0)[entries.row]
        item = x[entries.col]
        drop = _cheapest_cover(row, entries.data, worth[item] / np.maximum(entries.data, 1e-9), over)
        x = np.setdiff1d(x, item[drop])
    raise ValueError("repair did not settle the personnel rows within its rounds")


def _project_start(fm: Formulation, y: np.ndarray) -> np.ndarray:
    """Start year index of each project in the plan (a large number where it is not chosen)."""
    start = np.full(len(fm.problem.proj_ids), 1 << 30)
    start[fm.y_proj[y]] = fm.y_year[y]
    return start


def prerequisites_met(fm: Formulation, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Mask over ``x``: every project the package needs is chosen and finished by its start."""
    p = fm.problem
    pkg = fm.x_pkg[x]
    owner, flat = expand_ranges(p.pkg_req_ptr[pkg], np.diff(p.pkg_req_ptr)[pkg])
    q = p.pkg_req_project[flat]
    late = _project_start(fm, y)[q] + p.proj_duration[q] > fm.x_year[x][owner]
    ok = np.ones(len(x), dtype=bool)
    ok[owner[late]] = False
    return ok


def drop_unused_projects(fm: Formulation, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Keep mandatory projects and those a chosen package needs."""
    p = fm.problem
    pkg = fm.x_pkg[x]
    _, flat = expand_ranges(p.pkg_req_ptr[pkg], np.diff(p.pkg_req_ptr)[pkg])
    needed = np.zeros(len(p.proj_ids), dtype=bool)
    needed[p.pkg_req_project[flat]] = True
    needed |= p.proj_mandatory
    return y[needed[fm.y_proj[y]]]


def _fill(fm: Formulation, rows: PlanRows, pay, x: np.ndarray, y: np.ndarray, worth: np.ndarray,
          profit: np.ndarray, rounds: int) -> np.ndarray:
    """Add the most profitable packages that the money left and the hours left can carry, in rounds.

    Each round every household without a package proposes its most profitable column still
    available (earliest column on ties) whose projects ``y`` finishes in time. ``y`` does not
    change here and columns only leave, so the candidates are found and ordered once (by
    household, then profit) and each round keeps those still open."""
    if rounds <= 0:
        return x
    hh = fm.x_household
    available = worth > 0
    available[x] = False
    taken = np.zeros(len(fm.problem.household_ids), dtype=bool)
    taken[hh[x]] = True
    open_ = np.flatnonzero(available & ~taken[hh])
    open_ = open_[prerequisites_met(fm, open_, y)]
    open_ = open_[np.lexsort((-profit[open_], hh[open_]))]
    for _ in range(rounds):
        taken = np.zeros(len(fm.problem.household_ids), dtype=bool)
        taken[hh[x]] = True
        open_ = open_[available[open_] & ~taken[hh[open_]]]
        if not len(open_):
            break
        cand = open_[np.flatnonzero(np.diff(hh[open_], prepend=-1))]  # each household's best
        spend = rows.spend(x, y)
        extra = rows.spend(cand, np.zeros(0, dtype=np.int64))
        room = pay(spend + extra, spend) - spend
        paid = rows.cell_x[cand] >= 0
        cell = np.where(paid, rows.cell_x[cand], rows.n_cells)
        room = np.append(room, np.inf)
        order = np.lexsort((-profit[cand], cell))
        c, k = cell[order], np.where(paid, rows.cost_x[cand], 0.0)[order]
        within = running_total(c, k) <= room[c] * (1 - TOL) + 1e-9
        accepted = cand[order[within]]
        accepted = _within_hours(rows, x, accepted, profit)
        available[cand[order[~within]]] = False
        available[cand] = False  # a rejected column may leave room for another
        available[accepted] = True
        x = sorted_unique(np.concatenate([x, accepted]))
    return x


def _within_hours(rows: PlanRows, x: np.ndarray, accepted: np.ndarray, profit: np.ndarray) -> np.ndarray:
    """The accepted packages that fit every personnel row's hours left, most profitable first."""
    if rows.hours.shape[0] == 0 or not len(accepted):
        return accepted
    left = rows.hours_cap - rows.used_hours(x)
    entries = rows.hours_t[accepted].tocoo()
    item, row, h = entries.row, entries.col, entries.data
    order = np.lexsort((-profit[accepted[item]], row))
    r = row[order]
    fits = running_total(r, h[order]) <= left[r] * (1 - TOL) + 1e-9
    bad = np.zeros(len(accepted), dtype=bool)
    bad[item[order[~fits]]] = True
    return accepted[~bad]


@dataclasses.dataclass
class ScheduleRows:
    """The rows a plan can fall short on (annual targets, then county exits): the year index
    each is counted at, the counties it covers, and the exits packages must add by then."""

    year: np.ndarray
    covers: np.ndarray  # rows x counties
    need: np.ndarray

    @classmethod
    def of(cls, fm: Formulation) -> ScheduleRows:
        p, m = fm.problem, fm.model
        targets, counties = fm.family("annual_target"), fm.family("county_exit")
        k, c = targets.keys["target"], counties.keys["county"]
        covers = np.zeros((len(c), len(p.county_ids)), dtype=bool)
        covers[np.arange(len(c)), c] = True
        return cls(np.concatenate([p.target_year[k], counties.keys["year"]]).astype(np.int64),
                   np.vstack([p.target_county_ok[k].reshape(len(k), len(p.county_ids)), covers]),
                   np.concatenate([m.row_lo[targets.rows], m.row_lo[counties.rows]]))

    def shortfall(self, fm: Formulation, x: np.ndarray, county: np.ndarray) -> np.ndarray:
        """How far the chosen package columns ``x`` (in ``county``) leave each row short (0 where it holds)."""
        short = np.maximum(self.need, 0.0)
        for t in np.unique(self.year):
            by_county = np.bincount(county, fm.x_exit_at(t, x), minlength=self.covers.shape[1])
            at = self.year == t
            short[at] = np.maximum(self.need[at] - self.covers[at] @ by_county, 0.0)
        return short


def advance(fm: Formulation, pay: Callable[..., np.ndarray], x: np.ndarray, y: np.ndarray, seconds: float,
            rounds: int = FILL_ROUNDS) -> np.ndarray:
    """Chosen package columns that leave the schedule rows less short than ``x`` does, by swaps.

    In rounds, while a row is short and time is left: every household a short row covers
    proposes its package (start year included) that adds most exits to the short rows per yuan,
    among those that count at least as much as its current one at every schedule year-end and
    the deadline and whose projects ``y`` builds in time; proposals are kept, best first, while
    a short row they count for is still short before them; each money cell takes those the funds
    can still pay (the freed money of the replaced packages waits for the next round), each
    personnel row those its hours fit. Swaps in a cell the funds then cannot pay with the share
    rules are undone."""
    rows, sched = PlanRows.of(fm), ScheduleRows.of(fm)
    p = fm.problem
    household, county, exit_year = fm.x_household, fm.x_county, fm.x_exit_year
    c = fm.model.c[fm.x_cols]
    years = np.union1d(sched.year, [len(p.years) - 1])
    available = np.ones(fm.nx, dtype=bool)
    available[x] = False
    started = time.perf_counter()
    for _ in range(rounds):
        short = sched.shortfall(fm, x, county[x])
        live = np.flatnonzero(short > TOL * np.maximum(np.abs(sched.need), 1.0))
        if not len(live) or time.perf_counter() - started > seconds:
            break
        old = np.full(len(p.household_ids), -1)
        old[household[x]] = x
        reach = sched.covers[live].any(axis=0)
        cand = np.flatnonzero(available & reach[county] & (exit_year <= sched.year[live].max()))
        cand = cand[prerequisites_met(fm, cand, y)]
        was = old[household[cand]]
        ok = np.ones(len(cand), dtype=bool)
        credit = np.zeros(len(cand))
        delta = {}
        for t in years:
            now = np.where(was >= 0, fm.x_exit_at(t, np.maximum(was, 0)), 0.0)
            delta[t] = fm.x_exit_at(t, cand) - now
            ok &= delta[t] >= -1e-12
            counted = sched.covers[live[sched.year[live] == t]].sum(axis=0)
            credit += np.maximum(delta[t], 0.0) * counted[county[cand]]
        ok &= credit > 1e-9
        priority = credit / np.maximum(rows.cost_x[cand], 1.0)
        gain = c[cand] - np.where(was >= 0, c[np.maximum(was, 0)], 0.0)
        order = np.flatnonzero(ok)[np.lexsort((-gain[ok], -priority[ok], household[cand[ok]]))]
        order = order[np.flatnonzero(np.diff(household[cand[order]], prepend=-1))]  # each household's best
        order = order[np.argsort(-priority[order], kind="stable")]
        needed = np.zeros(len(order), dtype=bool)
        for r in live:  # kept while a short row it counts for is still short before it
            d = np.where(sched.covers[r][county[cand[order]]], delta[sched.year[r]][order], 0.0)
            counts = np.flatnonzero(d > 0)
            needed[counts[np.cumsum(d[counts]) - d[counts] < short[r]]] = True
        order = order[needed]
        proposals, score = cand[order], np.zeros(fm.nx)
        score[proposals] = priority[order]
        spend = rows.spend(x, y)
        room = np.append(pay(spend + rows.spend(proposals, np.zeros(0, dtype=np.int64)), spend) - spend, np.inf)
        cell = np.where(rows.cell_x[proposals] >= 0, rows.cell_x[proposals], rows.n_cells)
        by_cell = np.lexsort((-score[proposals], cell))
        cost = np.where(cell < rows.n_cells, rows.cost_x[proposals], 0.0)[by_cell]
        fits = running_total(cell[by_cell], cost) <= room[cell[by_cell]] * (1 - TOL) + 1e-9
        accepted = _within_hours(rows, x, proposals[by_cell[fits]], score)
        available[proposals] = False  # taken, or rejected: the next round proposes the next best
        x = _swap_payable(rows, pay, x, y, accepted, old[household[accepted]])
        if not len(accepted):
            break
    return x


def _swap_payable(rows: PlanRows, pay, x: np.ndarray, y: np.ndarray, new: np.ndarray, old: np.ndarray) -> np.ndarray:
    """``x`` with each ``old`` column (-1: none) replaced by its ``new`` one, undoing the swaps
    whose cells the funds cannot pay in full (the share rules can refuse a mix each cell's room allowed)."""
    keep = np.ones(len(new), dtype=bool)
    for _ in range(DROP_ROUNDS):
        swapped = np.union1d(np.setdiff1d(x, old[keep & (old >= 0)]), new[keep])
        spend = rows.spend(swapped, y)
        over = spend - pay(spend)
        over = over > TOL * np.maximum(spend, 1.0)
        if not over.any():
            return swapped
        cell = rows.cell_x[new]
        undo = keep & (cell >= 0) & over[np.maximum(cell, 0)]
        keep &= ~undo if undo.any() else False
    return x


__all__ = ["ScheduleRows", "advance", "drop_unused_projects", "prerequisites_met", "repair"]
