"""The sparse MIP of a :class:`Problem`: columns, then one function per constraint family.

Columns (each a block of numpy index arrays):

- ``x[p, t]`` binary: package p (of its household) starts in year t; only where its
  prerequisites can be finished first and some fund may pay for it, and — unless category
  share rules make any spend useful — where its exit counts (t + lag <= deadline) and beats
  the household's baseline;
- ``y[q, t]`` binary: project q starts in year t (mandatory: t + d - 1 <= deadline;
  others only when some package needs them);
- ``f[r, c, g]`` >= 0: fund row r (a source in a year) pays county c for category g;
- ``s[c]`` >= 0: shortfall of county c at its hat-off year, in households;
- ``s[k]`` >= 0: shortfall of annual target k (a region and a year-end), in households
  (both fixed at 0 when the deadline is hard);
- ``e`` in [0, 1], only with a spread cap or the max-min objective (``policy.equity``): the
  lowest and the highest county exit rate (expected exits at the deadline over registered
  poor), held by the rows ``exit_rate_low`` and ``exit_rate_high`` and capped by
  ``exit_rate_spread`` (hi - lo <= cap).

A household is out of poverty at the end of year t with its package's ``exit_probability``
once t >= start + lag, else with its baseline chance by then (:meth:`Problem.baseline_at`).

Objective (``Formulation.model``): maximise the plan's value minus a shortfall penalty,
V - penalty * (sum_c s_c + sum_k s_k), where V = sustained exits (each household's
``sustained_probability`` when its exit counts by the deadline, else its baseline) plus
``policy.earliness_weight`` x the expected household-years out of poverty at the year-ends
start..deadline; with ``policy.targeting_weights`` each household's part of V is weighed by
its ``poverty_probability`` q (a household poor with probability q contributes q x its exit
gain: money spent on a household that is not poor buys no exit). The county exit rows, the
annual targets and the exit-rate rows stay on the registered households, unweighted: the
registered poor count is the official yardstick for taking off the hat. The penalty is
above every possible gain in V (one household of shortfall outweighs everything else), so
the least total shortfall comes first, then sustained exits,
with earlier exits worth a little more. The exact method solves the lexicographic objective
in two stages instead (:meth:`Formulation.shortfall_model`, then
:meth:`Formulation.exits_model` with total shortfall capped).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import scipy.sparse as sp

from allocator.inputs.tables import CATEGORIES
from allocator.model.linear import LinearModel
from allocator.model.problem import KEEP_ANY_YEAR, Problem

G = len(CATEGORIES)


@dataclass
class RowFamily:
    """A named constraint family: rows ``rows`` of the matrix and their domain keys."""

    name: str
    title: str
    rows: slice
    keys: dict[str, np.ndarray]


@dataclass
class Block:
    """Triplets and bounds of one constraint family before stacking."""

    name: str
    title: str
    row: np.ndarray
    col: np.ndarray
    val: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    keys: dict[str, np.ndarray]


@dataclass
class Formulation:
    """The LinearModel of a problem plus the meaning of every column and row."""

    problem: Problem
    model: LinearModel
    x_pkg: np.ndarray
    x_year: np.ndarray
    y_proj: np.ndarray
    y_year: np.ndarray
    f_fund: np.ndarray
    f_county: np.ndarray
    f_category: np.ndarray
    families: list[RowFamily]
    penalty: float = 0.0  # objective units lost per household of county or target shortfall
    s_county: np.ndarray | None = None  # counties with a shortfall column (None: all, in order)
    t_target: np.ndarray | None = None  # annual targets with a shortfall column (None: all, in order)
    e_kind: np.ndarray | None = None  # exit-rate columns: 0 the lowest county rate, 1 the highest (None: none)

    @property
    def nx(self) -> int:
        return len(self.x_pkg)

    @property
    def ny(self) -> int:
        return len(self.y_proj)

    @property
    def nf(self) -> int:
        return len(self.f_fund)

    @property
    def x_cols(self) -> slice:
        return slice(0, self.nx)

    @property
    def y_cols(self) -> slice:
        return slice(self.nx, self.nx + self.ny)

    @property
    def f_cols(self) -> slice:
        return slice(self.nx + self.ny, self.nx + self.ny + self.nf)

    @property
    def shortfall_counties(self) -> np.ndarray:
        """The county of each county-shortfall column."""
        return np.arange(len(self.problem.county_ids)) if self.s_county is None else self.s_county

    @property
    def shortfall_targets(self) -> np.ndarray:
        """The annual target of each target-shortfall column."""
        return np.arange(len(self.problem.target_year)) if self.t_target is None else self.t_target

    @property
    def s_cols(self) -> slice:
        """County shortfall columns."""
        start = self.nx + self.ny + self.nf
        return slice(start, start + len(self.shortfall_counties))

    @property
    def t_cols(self) -> slice:
        """Annual-target shortfall columns (right after the county ones)."""
        start = self.s_cols.stop
        return slice(start, start + len(self.shortfall_targets))

    @property
    def equity_kinds(self) -> np.ndarray:
        """What each exit-rate column is: 0 the lowest county exit rate, 1 the highest."""
        return np.zeros(0, dtype=np.int64) if self.e_kind is None else self.e_kind

    @property
    def e_cols(self) -> slice:
        """Exit-rate columns (after the target shortfalls): lowest, then highest county rate."""
        start = self.t_cols.stop
        return slice(start, start + len(self.equity_kinds))

    def rate_col(self, kind: int) -> int | None:
        """The column of the lowest (0) or highest (1) county exit rate, or None."""
        hit = np.flatnonzero(self.equity_kinds == kind)
        return int(self.e_cols.start + hit[0]) if len(hit) else None

    @property
    def shortfall_cols(self) -> slice:
        """Every penalised shortfall column: counties', then targets'."""
        return slice(self.s_cols.start, self.t_cols.stop)

    @property
    def column_county(self) -> np.ndarray:
        """The county of every column: its household's, project's, flow's or shortfall's (a
        target's first county)."""
        p = self.problem
        t_county = np.argmax(p.target_county_ok[self.shortfall_targets], axis=1) if len(p.county_ids) else \
            np.zeros(len(self.shortfall_targets), dtype=np.int64)
        return np.concatenate([self.x_county, p.proj_county[self.y_proj], self.f_county, self.shortfall_counties,
                               t_county, np.zeros(len(self.equity_kinds), dtype=np.int64)])

    @property
    def x_household(self) -> np.ndarray:
        return self.problem.pkg_household[self.x_pkg]

    @property
    def x_county(self) -> np.ndarray:
        return self.problem.household_county[self.x_household]

    @property
    def x_exit_year(self) -> np.ndarray:
        """Year index from whose end each x column's exit counts (start + lag)."""
        return self.x_year + self.problem.pkg_lag[self.x_pkg]

    def x_exit_at(self, t: int | np.ndarray, cols: np.ndarray | None = None) -> np.ndarray:
        """Exit gain of each x column (of ``cols`` when given) over the baseline at the end of
        year index ``t`` (one per column, or a scalar); 0 where the exit does not count by then."""
        p = self.problem
        pkg, year = (self.x_pkg, self.x_year) if cols is None else (self.x_pkg[cols], self.x_year[cols])
        t = np.broadcast_to(np.asarray(t, dtype=np.int64), year.shape)
        base = p.baseline_of(p.pkg_household[pkg], t)
        return np.where(year + p.pkg_lag[pkg] <= t, p.pkg_exit[pkg] - base, 0.0)

    @property
    def x_gain(self) -> np.ndarray:
        """Exit gain of each x column over the baseline at the deadline; 0 where it would not count."""
        return self.x_exit_at(len(self.problem.years) - 1)

    @cached_property
    def _deadline_gain(self) -> np.ndarray:
        return self.x_gain

    def headline(self, x: np.ndarray) -> dict[str, float]:
        """What a planner reads in progress, of a solution vector: expected exits at the deadline
        and households of shortfall (the penalised objective mixes the two)."""
        exits = self.problem.household_baseline.sum() + self._deadline_gain @ np.clip(x[self.x_cols], 0.0, 1.0)
        return {"expected_exits": float(exits), "shortfall": float(np.maximum(x[self.shortfall_cols], 0.0).sum())}

    @property
    def x_value(self) -> np.ndarray:
        """Each x column's gain in the plan's value V: its sustained exit over the baseline at
        the deadline, plus the earliness weight times its household-years out of poverty."""
        p = self.problem
        counted = self.x_exit_year <= len(p.years) - 1
        value = np.where(counted, p.pkg_sustained[self.x_pkg] - p.household_baseline[self.x_household], 0.0)
        weight = p.policy.earliness_weight
        if weight:
            for t in range(len(p.years)):
                value = value + weight * self.x_exit_at(t)
        if p.policy.targeting_weights:  # a household poor with probability q gains q x its exits
            value = value * p.household_weight[self.x_household]
        return value

    def unstartable_mandatory(self) -> np.ndarray:
        """Mandatory projects without a start-year column (no year lets them finish and be paid)."""
        return np.setdiff1d(np.flatnonzero(self.problem.proj_mandatory), self.y_proj)

    def family(self, name: str) -> RowFamily:
        return next(f for f in self.families if f.name == name)

    def restrict(self, columns: np.ndarray, rows: np.ndarray, row_lo: np.ndarray, row_hi: np.ndarray) -> Formulation:
        """The formulation on a subset of columns and rows (both sorted index arrays), with
        these row bounds: the other columns are fixed at zero. Used for one county's model."""
        m = self.model
        nx, ny, nf = self.nx, self.ny, self.nf
        x, y = columns[columns < nx], columns[(columns >= nx) & (columns < nx + ny)] - nx
        f = columns[(columns >= nx + ny) & (columns < nx + ny + nf)] - nx - ny
        s = columns[(columns >= self.s_cols.start) & (columns < self.s_cols.stop)] - self.s_cols.start
        t = columns[(columns >= self.t_cols.start) & (columns < self.t_cols.stop)] - self.t_cols.start
        e = columns[columns >= self.e_cols.start] - self.e_cols.start
        families, start = [], 0
        for family in self.families:
            inside = rows[(rows >= family.rows.start) & (rows < family.rows.stop)]
            local = inside - family.rows.start
            families.append(RowFamily(family.name, family.title, slice(start, start + len(inside)),
                                      {key: value[local] for key, value in family.keys.items()}))
            start += len(inside)
        model = LinearModel(c=m.c[columns], A=m.A[rows][:, columns].tocsr(), row_lo=row_lo, row_hi=row_hi,
                            col_lo=m.col_lo[columns], col_hi=m.col_hi[columns], integrality=m.integrality[columns],
                            sense=m.sense, offset=0.0)
        return Formulation(self.problem, model, self.x_pkg[x], self.x_year[x], self.y_proj[y], self.y_year[y],
                           self.f_fund[f], self.f_county[f], self.f_category[f], families, self.penalty,
                           self.shortfall_counties[s], self.shortfall_targets[t],
                           self.equity_kinds[e] if self.e_kind is not None else None)

    def shortfall_model(self) -> LinearModel:
        """Stage 1 of the lexicographic objective: minimise total shortfall (maximise its negative)."""
        c = np.zeros(self.model.num_cols)
        c[self.shortfall_cols] = -1.0
        return dataclasses.replace(self.model, c=c, offset=0.0)

    def maxmin_model(self) -> LinearModel:
        """The max-min objective's first stage: maximise the lowest county exit rate, every rule kept."""
        c = np.zeros(self.model.num_cols)
        c[self.rate_col(0)] = 1.0
        return dataclasses.replace(self.model, c=c, offset=0.0)

    def with_lowest_rate(self, rate: float) -> Formulation:
        """The formulation with the lowest county exit rate held at least at ``rate`` (the max-min
        objective's second stage)."""
        col_lo = self.model.col_lo.copy()
        col_lo[self.rate_col(0)] = rate
        return dataclasses.replace(self, model=dataclasses.replace(self.model, col_lo=col_lo))

    def exits_model(self, shortfall_cap: float) -> LinearModel:
        """Stage 2: maximise the plan's value with total shortfall <= ``shortfall_cap``."""
        c = self.model.c.copy()
        c[self.shortfall_cols] = 0.0
        row_hi = self.model.row_hi.copy()
        row_hi[self.family("total_shortfall").rows] = shortfall_cap
        return dataclasses.replace(self.model, c=c, row_hi=row_hi)



def expand_ranges(starts: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate ranges [start, start + count): returns (owner index, value) per element."""
    counts = np.asarray(counts, dtype=np.int64)
    owner = np.repeat(np.arange(len(counts)), counts)
    offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    return owner, np.repeat(np.asarray(starts, dtype=np.int64), counts) + offsets


def fundable_grid(p: Problem) -> np.ndarray:
    """fundable[g, c, t]: some fund row of year t may pay category g in county c."""
    grid = np.zeros((G, len(p.county_ids), len(p.years)), dtype=bool)
    for t in range(len(p.years)):
        rows = p.fund_year == t
        if rows.any():
            grid[:, :, t] = (p.fund_category_ok[rows].T.astype(np.int64) @ p.fund_county_ok[rows].astype(np.int64)) > 0
    return grid


def package_columns(p: Problem, fundable: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Candidate (package, year index) pairs worth a column."""
    T = len(p.years)
    req_owner, req_flat = expand_ranges(p.pkg_req_ptr[:-1], np.diff(p.pkg_req_ptr))
    earliest = np.zeros(len(p.pkg_ids), dtype=np.int64)
    np.maximum.at(earliest, req_owner, p.proj_duration[p.pkg_req_project[req_flat]])
    t = np.arange(T)
    counted = p.years[None, :] + p.pkg_lag[:, None] <= p.deadline_year
    after_prereq = t[None, :] >= earliest[:, None]
    county = p.household_county[p.pkg_household]
    funded = (p.pkg_cost[:, None] == 0) | fundable[p.pkg_category, county, :]
    mask = after_prereq & funded
    if not has_share_rules(p):
        gain = p.pkg_exit - p.household_baseline[p.pkg_household]
        mask &= counted & (gain > 0)[:, None]
    return np.nonzero(mask)


def has_share_rules(p: Problem) -> bool:
    """Rules on spend — category shares (of all spend or of a source's), county floors, a
    disbursement pace — make any spend useful (it changes the shares or the pace), so nothing
    is pruned."""
    return bool(p.policy.min_category_share or p.policy.max_category_share or p.policy.has_source_shares
                or np.any(p.fund_min_spend > 0) or p.policy.equity.county_floor_per_poor)


def project_columns(p: Problem, fundable: np.ndarray, x_pkg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Candidate (project, year index) pairs: mandatory ones, and those a package may need
    (every project when category share rules are set)."""
    needed = np.zeros(len(p.proj_ids), dtype=bool)
    used_pkgs = np.unique(x_pkg)
    _, req_flat = expand_ranges(p.pkg_req_ptr[used_pkgs], np.diff(p.pkg_req_ptr)[used_pkgs])
    needed[p.pkg_req_project[req_flat]] = True
    finish = p.years[None, :] + p.proj_duration[:, None]
    in_time = np.where(p.proj_mandatory[:, None], finish - 1 <= p.deadline_year, finish <= p.deadline_year)
    funded = (p.proj_cost[:, None] == 0) | fundable[p.proj_category, p.proj_county, :]
    if has_share_rules(p):
        in_time |= ~p.proj_mandatory[:, None]
        needed[:] = True
    mask = in_time & funded & (p.proj_mandatory | needed)[:, None]
    return np.nonzero(mask)


def flow_columns(p: Problem, spend_possible: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Candidate flows (fund row, county, category) that could pay for something."""
    ok = p.fund_county_ok[:, :, None] & p.fund_category_ok[:, None, :]
    ok &= spend_possible[:, :, p.fund_year].transpose(2, 1, 0)
    return np.nonzero(ok)


def one_plan_per_household(fm: Formulation) -> Block:
    """One plan per household: sum_{k,t} x[h,k,t] <= 1."""
    hh = fm.x_household
    households, row = np.unique(hh, return_inverse=True)
    ones = np.ones(fm.nx)
    return Block("one_plan_per_household", "One plan per household", row, np.arange(fm.nx), ones,
                 np.full(len(households), -np.inf), np.ones(len(households)), {"household": households})


def project_at_most_once(fm: Formulation) -> Block:
    """Each project at most once; a mandatory one exactly once, finishing by the deadline."""
    p = fm.problem
    projects = np.union1d(fm.y_proj, np.flatnonzero(p.proj_mandatory))
    row = np.searchsorted(projects, fm.y_proj)
    lo = np.where(p.proj_mandatory[projects], 1.0, -np.inf)
    return Block("project_once", "Each project at most once; mandatory projects by the deadline", row,
                 fm.nx + np.arange(fm.ny), np.ones(fm.ny), lo, np.ones(len(projects)), {"project": projects})


def prerequisites(fm: Formulation) -> Block:
    """Prerequisites: for household h, required project r and year t,
    sum_{k requires r} sum_{t' <= t} x[h,k,t'] <= sum_{t'' <= t - d_r} y[r,t'']."""
    p = fm.problem
    T = len(p.years)
    Q = max(len(p.proj_ids), 1)
    counts = np.diff(p.pkg_req_ptr)[fm.x_pkg]
    xcol, req_flat = expand_ranges(p.pkg_req_ptr[fm.x_pkg], counts)
    proj = p.pkg_req_project[req_flat]
    pair_key = fm.x_household[xcol] * Q + proj
    pairs, pair_of = np.unique(pair_key, return_inverse=True)
    pair_proj = pairs % Q
    # x entries: each requirement of x[p,t] enters rows (pair, t') for t' >= t
    start = fm.x_year[xcol]
    owner, t_row = expand_ranges(start, T - start)
    x_rows = pair_of[owner] * T + t_row
    x_cols = xcol[owner]
    # y entries: y[r,t''] enters rows (pair, t') of every pair on r for t' >= t'' + d_r
    order = np.argsort(pair_proj, kind="stable")
    first = np.searchsorted(pair_proj[order], fm.y_proj, side="left")
    last = np.searchsorted(pair_proj[order], fm.y_proj, side="right")
    ycol, pos = expand_ranges(first, last - first)
    pair_y = order[pos]
    begin = fm.y_year[ycol] + p.proj_duration[fm.y_proj[ycol]]
    owner_y, t_row_y = expand_ranges(begin, np.maximum(T - begin, 0))
    y_rows = pair_y[owner_y] * T + t_row_y
    y_cols = fm.nx + ycol[owner_y]
    used, row_x = np.unique(x_rows, return_inverse=True)
    keep_y = np.isin(y_rows, used)
    row_y = np.searchsorted(used, y_rows[keep_y])
    row = np.concatenate([row_x, row_y])
    col = np.concatenate([x_cols, y_cols[keep_y]])
    val = np.concatenate([np.ones(len(row_x)), -np.ones(int(keep_y.sum()))])
    pair_idx = used // T
    return Block("prerequisites", "Projects finished before the packages that need them", row, col, val,
                 np.full(len(used), -np.inf), np.zeros(len(used)),
                 {"household": pairs[pair_idx] // Q, "project": pair_proj[pair_idx], "year": used % T})


def money_balance(fm: Formulation) -> Block:
    """Money balance: sum_s f[s,c,g,t] = spend[c,g,t] for every county, category and year."""
    p = fm.problem
    T = len(p.years)
    f_key = (fm.f_county * G + fm.f_category) * T + p.fund_year[fm.f_fund]
    keys, f_row = np.unique(f_key, return_inverse=True)
    x_paid = np.flatnonzero(p.pkg_cost[fm.x_pkg] > 0)
    x_key = (fm.x_county[x_paid] * G + p.pkg_category[fm.x_pkg[x_paid]]) * T + fm.x_year[x_paid]
    y_paid = np.flatnonzero(p.proj_cost[fm.y_proj] > 0)
    y_key = (p.proj_county[fm.y_proj[y_paid]] * G + p.proj_category[fm.y_proj[y_paid]]) * T + fm.y_year[y_paid]
    row = np.concatenate([f_row, np.searchsorted(keys, x_key), np.searchsorted(keys, y_key)])
    col = np.concatenate([fm.f_cols.start + np.arange(fm.nf), x_paid, fm.nx + y_paid])
    val = np.concatenate([np.ones(fm.nf), -p.pkg_cost[fm.x_pkg[x_paid]], -p.proj_cost[fm.y_proj[y_paid]]])
    zeros = np.zeros(len(keys))
    return Block("money_balance", "Spend paid by funds (county, category, year)", row, col, val, zeros, zeros,
                 {"county": keys // (G * T), "category": (keys // T) % G, "year": keys % T})


def budget_windows(p: Problem) -> list[tuple[int, int, int]]:
    """The (source, first year, last year) windows whose spend the source's money must cover.

    Without carry-over each year's spend is within its own amount: windows (t, t). With
    carry-over, money of year t may pay spend in years t .. t + R (R = ``carry_over_years``,
    infinite when never recalled). Spend can then be matched to money exactly when, for every
    window [a, b] of years, spend in it <= the money of years max(a - R, start) .. b (Hall's
    condition on an interval graph: windows suffice); windows with a - R <= start are implied
    by [start, b], so only a = start and a > start + R are kept."""
    T = len(p.years)
    windows = []
    for s in range(len(p.source_ids)):
        if not p.source_carry_over[s]:
            windows += [(s, t, t) for t in sorted(set(p.fund_year[p.fund_source == s].tolist()))]
            continue
        recall = p.source_recall_years[s]
        firsts = [0] + ([a for a in range(1, T) if a - recall > 0] if recall >= 0 else [])
        windows += [(s, a, b) for a in firsts for b in range(a, T)]
    return windows


def window_money(p: Problem, s: int, a: int, b: int) -> float:
    """The money of source ``s`` that may pay spend in years a..b (see :func:`budget_windows`)."""
    if not p.source_carry_over[s]:
        first = a
    else:
        recall = p.source_recall_years[s]
        first = max(a - recall, 0) if recall >= 0 else 0
    return float(p.fund_amount[(p.fund_source == s) & (p.fund_year >= first) & (p.fund_year <= b)].sum())


def source_budget(fm: Formulation) -> Block:
    """Source budget: spend of a source in each window of years <= the money that may pay it
    (:func:`budget_windows`: each year's own amount, cumulatively with carry-over, recalled
    after ``carry_over_years``)."""
    p = fm.problem
    rows, cols, limits, keys = [], [], [], []
    f_index = fm.f_cols.start + np.arange(fm.nf)
    f_source, f_year = p.fund_source[fm.f_fund], p.fund_year[fm.f_fund]
    for s, a, b in budget_windows(p):
        members = np.flatnonzero((f_source == s) & (f_year >= a) & (f_year <= b))
        rows.append(np.full(len(members), len(limits)))
        cols.append(f_index[members])
        limits.append(window_money(p, s, a, b))
        keys.append((s, a, b))
    n = len(limits)
    key = np.array(keys, dtype=np.int64).reshape(n, 3)
    row = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
    col = np.concatenate(cols) if cols else np.zeros(0, dtype=np.int64)
    return Block("source_budget", "Source budget (carry-over, recalled after its years)", row, col,
                 np.ones(len(row)), np.full(n, -np.inf), np.array(limits, dtype=float),
                 {"source": key[:, 0], "first_year": key[:, 1], "year": key[:, 2]})


def spend_pace(fm: Formulation) -> Block:
    """Disbursement pace: a source's spend through year t >= min_spend_share x its amount through t."""
    p = fm.problem
    rules = np.flatnonzero(p.fund_min_spend > 0)
    f_index = fm.f_cols.start + np.arange(fm.nf)
    f_source, f_year = p.fund_source[fm.f_fund], p.fund_year[fm.f_fund]
    rows, cols, need = [], [], []
    for i, r in enumerate(rules):
        s, t = p.fund_source[r], p.fund_year[r]
        members = np.flatnonzero((f_source == s) & (f_year <= t))
        rows.append(np.full(len(members), i))
        cols.append(f_index[members])
        need.append(p.fund_min_spend[r] * p.fund_amount[(p.fund_source == s) & (p.fund_year <= t)].sum())
    n = len(rules)
    return Block("spend_pace", "Disbursement pace of a source (spend through a year)",
                 np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64),
                 np.concatenate(cols) if cols else np.zeros(0, dtype=np.int64),
                 np.ones(sum(len(c) for c in cols)), np.array(need, dtype=float), np.full(n, np.inf),
                 {"fund": rules})


def _share_rows(fm: Formulation, groups: list[tuple[np.ndarray, np.ndarray, float, str]], name: str,
                title: str, keys: dict[str, np.ndarray]) -> Block:
    """Rows sum_{part} f - share * sum_{whole} f >= 0 (kind 'min') or <= 0 ('max'), one per
    (part mask, whole mask, share, kind) over the flow columns."""
    f_index = fm.f_cols.start + np.arange(fm.nf)
    rows, cols, vals = [], [], []
    for i, (part, whole, share, _kind) in enumerate(groups):
        members = np.flatnonzero(whole | part)
        rows.append(np.full(len(members), i))
        cols.append(f_index[members])
        vals.append(np.where(part[members], 1.0, 0.0) - np.where(whole[members], share, 0.0))
    n = len(groups)
    return Block(name, title, np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64),
                 np.concatenate(cols) if cols else np.zeros(0, dtype=np.int64),
                 np.concatenate(vals) if vals else np.zeros(0),
                 np.array([0.0 if g[3] == "min" else -np.inf for g in groups]).reshape(n),
                 np.array([np.inf if g[3] == "min" else 0.0 for g in groups]).reshape(n), keys)


def source_category_shares(fm: Formulation) -> Block:
    """Category shares of one source: min_g * spend_s <= spend_{s,g} <= max_g * spend_s, all years."""
    p = fm.problem
    source_index = {source: i for i, source in enumerate(p.source_ids)}
    f_source = p.fund_source[fm.f_fund]
    groups, key_source, key_category = [], [], []
    for kind, rules in (("min", p.policy.min_source_category_share), ("max", p.policy.max_source_category_share)):
        for source, shares in rules.items():
            whole = f_source == source_index[source]
            for category, share in shares.items():
                g = CATEGORIES.index(category)
                groups.append((whole & (fm.f_category == g), whole, share, kind))
                key_source.append(source_index[source])
                key_category.append(g)
    return _share_rows(fm, groups, "source_category_share", "Category share of a source's spend",
                       {"source": np.array(key_source, dtype=np.int64),
                        "category": np.array(key_category, dtype=np.int64),
                        "kind": np.array([g[3] for g in groups], dtype=object),
                        "share": np.array([g[2] for g in groups], dtype=float)})


def county_floors(fm: Formulation) -> Block:
    """County floors: each county a source can pay for something in gets >= share x the source's spend."""
    p = fm.problem
    source_index = {source: i for i, source in enumerate(p.source_ids)}
    f_source = p.fund_source[fm.f_fund]
    groups, key_source, key_county = [], [], []
    for source, share in p.policy.county_floor_share.items():
        whole = f_source == source_index[source]
        for c in np.unique(fm.f_county[whole]):
            groups.append((whole & (fm.f_county == c), whole, share, "min"))
            key_source.append(source_index[source])
            key_county.append(c)
    return _share_rows(fm, groups, "county_floor", "County floor: a county's share of a source's spend",
                       {"source": np.array(key_source, dtype=np.int64), "county": np.array(key_county, dtype=np.int64),
                        "share": np.array([g[2] for g in groups], dtype=float)})


def county_floor_per_poor(fm: Formulation) -> Block:
    """Equity floor: every county's spend over all sources and years (its flows) >=
    ``policy.equity.county_floor_per_poor`` x its registered poor households. A county no fund
    can pay gets an empty row with a positive bound: the model is then infeasible."""
    p = fm.problem
    floor = p.policy.equity.county_floor_per_poor
    C = len(p.county_ids) if floor is not None else 0
    members = np.flatnonzero(fm.f_county < C)
    need = (floor or 0.0) * p.county_registered_poor[:C].astype(float)
    return Block("county_floor_per_poor", "Equity floor: a county's spend per registered poor household",
                 fm.f_county[members], fm.f_cols.start + members, np.ones(len(members)), need, np.full(C, np.inf),
                 {"county": np.arange(C), "need": need})


def _rate_rows(fm: Formulation, kind: int, name: str, title: str) -> Block:
    """exits_c(deadline) - poor_c x e >= 0 (kind 0, e the lowest rate) or <= 0 (kind 1, the
    highest), in households: sum_x gain_x x - poor_c e >= (or <=) -baseline_c."""
    p = fm.problem
    col = fm.rate_col(kind)
    C = len(p.county_ids) if col is not None and (kind == 0 or p.policy.equity.max_exit_rate_spread is not None) \
        else 0
    if C == 0:
        return Block(name, title, np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0),
                     np.zeros(0), np.zeros(0), {"county": np.zeros(0, dtype=np.int64)})
    gain = fm.x_gain
    hit = np.flatnonzero(gain != 0)
    base = np.bincount(p.household_county, weights=p.household_baseline, minlength=C)
    poor = p.county_registered_poor.astype(float)
    row = np.concatenate([fm.x_county[hit], np.arange(C)])
    cols = np.concatenate([hit, np.full(C, col)])
    val = np.concatenate([gain[hit], -poor])
    bound = -base
    lo, hi = (bound, np.full(C, np.inf)) if kind == 0 else (np.full(C, -np.inf), bound)
    return Block(name, title, row, cols, val, lo, hi, {"county": np.arange(C)})


def exit_rate_low(fm: Formulation) -> Block:
    """The lowest county exit rate: lo <= exits_c / poor_c for every county."""
    return _rate_rows(fm, 0, "exit_rate_low", "Lowest county exit rate")


def exit_rate_high(fm: Formulation) -> Block:
    """The highest county exit rate (with a spread cap): exits_c / poor_c <= hi for every county."""
    return _rate_rows(fm, 1, "exit_rate_high", "Highest county exit rate")


def exit_rate_spread(fm: Formulation) -> Block:
    """Spread cap: hi - lo <= ``policy.equity.max_exit_rate_spread``."""
    cap = fm.problem.policy.equity.max_exit_rate_spread
    lo_col, hi_col = fm.rate_col(0), fm.rate_col(1)
    if cap is None or lo_col is None or hi_col is None:
        return Block("exit_rate_spread", "Spread of county exit rates", np.zeros(0, dtype=np.int64),
                     np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros(0), np.zeros(0), {})
    return Block("exit_rate_spread", "Spread of county exit rates", np.zeros(2, dtype=np.int64),
                 np.array([hi_col, lo_col]), np.array([1.0, -1.0]), np.array([-np.inf]), np.array([float(cap)]),
                 {"cap": np.array([float(cap)])})


def category_shares(fm: Formulation) -> Block:
    """Category shares: min_g * total <= spend_g <= max_g * total over all years and counties."""
    p = fm.problem
    rules = [(g, share, "min") for g, share in (
        (CATEGORIES.index(c), v) for c, v in p.policy.min_category_share.items())]
    rules += [(g, share, "max") for g, share in (
        (CATEGORIES.index(c), v) for c, v in p.policy.max_category_share.items())]
    rows, vals = [], []
    for i, (g, share, _kind) in enumerate(rules):
        rows.append(np.full(fm.nf, i))
        vals.append(np.where(fm.f_category == g, 1.0 - share, -share))
    n = len(rules)
    f_index = fm.f_cols.start + np.arange(fm.nf)
    return Block("category_share", "Category share of total spend",
                 np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64),
                 np.tile(f_index, n), np.concatenate(vals) if vals else np.zeros(0),
                 np.array([0.0 if k == "min" else -np.inf for _, _, k in rules]),
                 np.array([np.inf if k == "min" else 0.0 for _, _, k in rules]),
                 {"category": np.array([g for g, _, _ in rules], dtype=np.int64),
                  "kind": np.array([k for _, _, k in rules], dtype=object),
                  "share": np.array([s for _, s, _ in rules], dtype=float)})


def personnel_hours(fm: Formulation) -> Block:
    """Personnel: hours of packages started in year t in a county or township <= its hours."""
    p = fm.problem
    T = len(p.years)
    county_row = np.full((len(p.county_ids), T), -1)
    township_row = np.full((len(p.township_ids), T), -1)
    idx = np.arange(len(p.pers_hours))
    county_row[p.pers_region[p.pers_is_county], p.pers_year[p.pers_is_county]] = idx[p.pers_is_county]
    township_row[p.pers_region[~p.pers_is_county], p.pers_year[~p.pers_is_county]] = idx[~p.pers_is_county]
    hours = p.pkg_hours[fm.x_pkg]
    township = p.household_township[fm.x_household]
    rows, cols = [], []
    for lookup in (county_row[fm.x_county, fm.x_year], township_row[township, fm.x_year]):
        hit = np.flatnonzero((lookup >= 0) & (hours > 0))
        rows.append(lookup[hit])
        cols.append(hit)
    row, col = np.concatenate(rows), np.concatenate(cols)
    return Block("personnel", "Personnel hours per region and year", row, col, hours[col],
                 np.full(len(idx), -np.inf), p.pers_hours.copy(), {"personnel_row": idx})


def county_exit(fm: Formulation) -> Block:
    """County exit at its hat-off year H: poor_c - exits_c(H) <= threshold_c * population_c + s_c.
    Exits only grow with the years (a counted exit stays counted, the baseline rises), so the
    rule then holds at every later year-end too."""
    p = fm.problem
    C = len(p.county_ids)
    at = p.county_hat_off
    need = county_exit_need(p)
    gain = fm.x_exit_at(at[fm.x_county])
    hit = np.flatnonzero(gain != 0)
    row = np.concatenate([fm.x_county[hit], np.arange(C)])
    col = np.concatenate([hit, fm.s_cols.start + np.arange(C)])
    val = np.concatenate([gain[hit], np.ones(C)])
    return Block("county_exit", "County exit from its hat-off year", row, col, val, need, np.full(C, np.inf),
                 {"county": np.arange(C), "year": at.copy()})


def county_exit_need(p: Problem) -> np.ndarray:
    """Per county, the expected exits by its hat-off year that packages must add to the
    baseline's for its incidence to reach the threshold (<= 0: the baseline suffices)."""
    base = p.baseline_of(np.arange(len(p.household_ids)), p.county_hat_off[p.household_county])
    baseline = np.bincount(p.household_county, weights=base, minlength=len(p.county_ids))
    return p.county_registered_poor - baseline - p.county_threshold * p.county_rural_population


def annual_target(fm: Formulation) -> Block:
    """Annual target k (a region, a year-end t, a share m): its registered poor still poor at
    the end of t <= m x its registered poor at the start + s_k, i.e.
    sum_{h in k} exit_h(t) + s_k >= (1 - m) x poor_k."""
    p = fm.problem
    K = len(p.target_year)
    rows, cols, vals, need = [], [], [], []
    for k in range(K):
        covered = p.target_county_ok[k][fm.x_county]
        gain = np.where(covered, fm.x_exit_at(p.target_year[k]), 0.0)
        hit = np.flatnonzero(gain != 0)
        rows.append(np.full(len(hit) + 1, k))
        cols.append(np.append(hit, fm.t_cols.start + k))
        vals.append(np.append(gain[hit], 1.0))
        members = p.target_households(k)
        need.append((1.0 - p.target_share[k]) * members.sum() - p.baseline_at(p.target_year[k])[members].sum())
    return Block("annual_target", "Annual target: share still poor at a year-end",
                 np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64),
                 np.concatenate(cols) if cols else np.zeros(0, dtype=np.int64),
                 np.concatenate(vals) if vals else np.zeros(0), np.array(need, dtype=float), np.full(K, np.inf),
                 {"target": np.arange(K), "year": p.target_year.copy()})


def total_shortfall(fm: Formulation) -> Block:
    """Total shortfall cap: sum of county and target shortfalls <= cap (+inf here; the exact
    method's second stage sets it)."""
    cols = np.arange(fm.shortfall_cols.start, fm.shortfall_cols.stop)
    return Block("total_shortfall", "Total shortfall cap", np.zeros(len(cols), dtype=np.int64), cols,
                 np.ones(len(cols)), np.array([-np.inf]), np.array([np.inf]), {})


def baseline_value(p: Problem) -> float:
    """The plan's value V with no package: baseline exits, plus the earliness weight times
    the baseline household-years out of poverty."""
    if p.policy.targeting_weights:  # each household's part weighed by its poverty probability q
        q = p.household_weight
        years = float((p.baseline_at(np.arange(len(p.years))) * q).sum()) if len(p.household_ids) else 0.0
        return float(p.household_baseline @ q) + p.policy.earliness_weight * years
    years = float(p.baseline_at(np.arange(len(p.years))).sum()) if len(p.household_ids) else 0.0
    return float(p.household_baseline.sum()) + p.policy.earliness_weight * years


def keep_bonus(fm: Formulation) -> np.ndarray:
    """Stability bonus of each x and y column from ``problem.keep`` (set by
    :mod:`allocator.manage.replan`): its weight lambda and, per package and per project, the
    planned start-year index (-1: not planned; KEEP_ANY_YEAR: any year). A column that keeps its planned
    decision earns lambda, so the model maximises exits - lambda x (planned decisions changed),
    up to a constant; the shortfall penalty grows by the largest total bonus."""
    bonus = np.zeros(fm.nx + fm.ny)
    keep = fm.problem.keep
    if keep is None:
        return bonus
    for cols, index, year, planned in ((fm.x_cols, fm.x_pkg, fm.x_year, keep.package_year),
                                        (fm.y_cols, fm.y_proj, fm.y_year, keep.project_year)):
        wanted = np.asarray(planned)[index]
        bonus[cols] = keep.weight * ((wanted == year) | (wanted == KEEP_ANY_YEAR))
    return bonus


FAMILIES = (one_plan_per_household, project_at_most_once, prerequisites, money_balance, source_budget,
            category_shares, source_category_shares, county_floors, spend_pace, personnel_hours, county_exit,
            annual_target, total_shortfall, county_floor_per_poor, exit_rate_low, exit_rate_high, exit_rate_spread)
# families whose rows hold flow columns only (the money piece of decompose's relaxation)
FLOW_FAMILIES = ("source_budget", "category_share", "source_category_share", "county_floor", "spend_pace",
                 "county_floor_per_poor")
# the equity rules' families (policy.equity), by rule
EQUITY_FAMILIES = {"county_floor_per_poor": ("county_floor_per_poor",),
                   "max_exit_rate_spread": ("exit_rate_high", "exit_rate_spread"),
                   "maxmin": ("exit_rate_low",)}
# families of the exit-rate columns' rows (decompose prices those with package columns)
RATE_FAMILIES = ("exit_rate_low", "exit_rate_high")
# families with a penalised shortfall column per row, in the order of the shortfall columns
SHORTFALL_FAMILIES = ("county_exit", "annual_target")


def formulate(p: Problem) -> Formulation:
    """Build the sparse MIP of ``p``: columns first, then each constraint family in turn."""
    fundable = fundable_grid(p)
    x_pkg, x_year = package_columns(p, fundable)
    y_proj, y_year = project_columns(p, fundable, x_pkg)
    T = len(p.years)
    spend_possible = np.zeros((G, len(p.county_ids), T), dtype=bool)
    paid_x = p.pkg_cost[x_pkg] > 0
    x_paid_county = p.household_county[p.pkg_household[x_pkg[paid_x]]]
    spend_possible[p.pkg_category[x_pkg[paid_x]], x_paid_county, x_year[paid_x]] = True
    paid_y = p.proj_cost[y_proj] > 0
    spend_possible[p.proj_category[y_proj[paid_y]], p.proj_county[y_proj[paid_y]], y_year[paid_y]] = True
    f_fund, f_county, f_category = flow_columns(p, spend_possible)
    fm = Formulation(p, None, x_pkg, x_year, y_proj, y_year, f_fund, f_county, f_category, [])  # type: ignore[arg-type]
    if p.policy.equity.uses_rates:
        fm.e_kind = np.array([0, 1], dtype=np.int64)

    blocks = [build(fm) for build in FAMILIES]
    offsets = np.cumsum([0] + [len(b.lo) for b in blocks])
    n = fm.e_cols.stop
    A = sp.csr_matrix(
        (np.concatenate([b.val for b in blocks]),
         (np.concatenate([b.row + off for b, off in zip(blocks, offsets, strict=False)]),
          np.concatenate([b.col for b in blocks]))),
        shape=(int(offsets[-1]), n),
    )
    A.eliminate_zeros()
    fm.families = [RowFamily(b.name, b.title, slice(int(offsets[i]), int(offsets[i + 1])), b.keys)
                   for i, b in enumerate(blocks)]

    gain = fm.x_value
    bonus = keep_bonus(fm)  # a re-plan's stability option (allocator.manage.replan); zero otherwise
    best_gain = np.zeros(len(p.household_ids))
    np.maximum.at(best_gain, fm.x_household, gain + bonus[fm.x_cols])
    fm.penalty = float(np.ceil(best_gain.sum() + bonus[fm.y_cols].sum())) + 1.0
    c = np.zeros(n)
    c[fm.x_cols] = gain
    c[: fm.nx + fm.ny] += bonus
    c[fm.shortfall_cols] = -fm.penalty
    col_hi = np.ones(n)
    col_hi[fm.f_cols] = np.inf
    col_hi[fm.shortfall_cols] = 0.0 if p.policy.deadline == "hard" else np.inf
    integrality = np.zeros(n, dtype=bool)
    integrality[: fm.nx + fm.ny] = True
    fm.model = LinearModel(
        c=c, A=A, row_lo=np.concatenate([b.lo for b in blocks]), row_hi=np.concatenate([b.hi for b in blocks]),
        col_lo=np.zeros(n), col_hi=col_hi, integrality=integrality, sense="max",
        offset=baseline_value(p),
    )
    return fm
