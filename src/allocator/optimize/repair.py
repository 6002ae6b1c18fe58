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
"""

from __future__ import annotations

import dataclasses
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
           worth: np.ndarray, profit: np.ndarray, fill_rounds: int = FILL_ROUNDS) -> tuple[np.ndarray, np.ndarray]:
    """A plan (chosen x and y columns) that the funds and personnel can carry, from ``x``, ``y``.

    ``worth`` is each package column's value apart from money, ``profit`` its value at the
    money price too (the order of the fill). ``pay(demand, floor, weight)`` returns what the
    funds can pay per money cell of ``demand``, at least ``floor``. Raises ValueError when even
    dropping every optional choice leaves a cell unpaid (mandatory projects the money cannot
    carry). ``fill_rounds`` caps the fill's rounds (each proposes one package per household)."""
    rows = PlanRows.of(fm)
    density = worth / np.maximum(rows.cost_x, 1.0)
    x, y = np.unique(x), np.unique(y)
    x = x[prerequisites_met(fm, x, y)]
    x, y = _drop_unpaid(fm, rows, pay, x, y, density)
    x = _drop_over_hours(rows, x, worth)
    y = drop_unused_projects(fm, x, y)
    x = _fill(fm, rows, pay, x, y, worth, profit, fill_rounds)
    # dropping and filling change the category mix: drop again where share rules now leave a cell unpaid
    return _drop_unpaid(fm, rows, pay, x, y, density)


def _drop_unpaid(fm: Formulation, rows: PlanRows, pay, x: np.ndarray, y: np.ndarray,
                 density: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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
        drop = _cheapest_cover(rows.cell_x[in_over], rows.cost_x[in_over], density[in_over], over)
        freed = np.bincount(rows.cell_x[in_over[drop]], rows.cost_x[in_over[drop]], minlength=rows.n_cells)
        x = np.setdiff1d(x, in_over[drop])
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
            moved = _move_mandatory(fm, rows, pay, x, y, stuck)
            if moved is None:
                raise ValueError("the funds cannot pay for the mandatory projects in some county, category and year")
            y = moved
            x = x[prerequisites_met(fm, x, y)]
    raise ValueError("repair did not settle within its rounds")


def _move_mandatory(fm: Formulation, rows: PlanRows, pay, x: np.ndarray, y: np.ndarray,
                    stuck: np.ndarray) -> np.ndarray | None:
    """Move each mandatory project paid from a ``stuck`` cell to the latest other start year
    at which the funds pay everything in its new cell (None when one cannot move)."""
    for col in y[(rows.cell_y[y] >= 0) & stuck[np.maximum(rows.cell_y[y], 0)]]:
        options = np.flatnonzero((fm.y_proj == fm.y_proj[col]) & (fm.y_year != fm.y_year[col]))
        for option in options[np.argsort(-fm.y_year[options], kind="stable")]:
            moved = np.union1d(np.setdiff1d(y, [col]), [option])
            spend = rows.spend(x, moved)
            cell = rows.cell_y[option]
            if cell < 0 or pay(spend, None)[cell] >= spend[cell] * (1 - TOL):
                y = moved
                break
        else:
            return None
    return y


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
    """Add the most profitable packages that the money left and the hours left can carry, in rounds."""
    hh = fm.x_household
    available = worth > 0
    available[x] = False
    for _ in range(rounds):
        taken = np.zeros(len(fm.problem.household_ids), dtype=bool)
        taken[hh[x]] = True
        cand = np.flatnonzero(available & ~taken[hh])
        cand = cand[prerequisites_met(fm, cand, y)]
        if not len(cand):
            break
        cand = cand[np.lexsort((-profit[cand], hh[cand]))]
        cand = cand[np.flatnonzero(np.diff(hh[cand], prepend=-1))]  # each household's best
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
        available[np.setdiff1d(cand, accepted)] = False  # a rejected column may leave room for another
        x = np.union1d(x, accepted)
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


__all__ = ["drop_unused_projects", "prerequisites_met", "repair"]
