"""How large the model of a problem will be, estimated before it is built.

:func:`estimate_size` counts columns, rows and nonzeros the way
:func:`allocator.model.formulation.formulate` makes them, from per-package and per-project
arithmetic (first and last allowed start year, the fundable years in between) instead of
per-column arrays: memory O(packages + requirements), no matrix. Package and project columns
are exact; flows, prerequisite rows and entries and personnel entries are estimates (every
year of a range taken as used, personnel rows spread evenly over the years), exact on the
presets and within 30 % on irregular tables (``tests/model/test_model_size.py``). The memory estimate is what
one solver run on the whole model takes at its peak, calibrated on HiGHS' interior point
method (benchmarks/README.md): ``auto`` splits the model (``decompose``) above
:data:`MODEL_MEMORY_LIMIT`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from allocator.model.formulation import G, budget_windows, expand_ranges, fundable_grid, has_share_rules
from allocator.model.problem import Problem

BYTES_PER_NONZERO = 160  # the model's triplets and CSR, HiGHS' copy, presolve and IPM factors
BYTES_PER_LINE = 250  # per row and column: bounds, costs, names, solver work vectors
MODEL_MEMORY_LIMIT = 4 * 2**30  # above this estimate, auto decomposes (h655k-5y: 8.5 GB for its LP)


@dataclass(frozen=True)
class ModelSize:
    """Estimated size of a problem's model: rows, columns (integer ones apart), nonzeros and
    the peak memory of one solver run on it."""

    rows: int
    columns: int
    integer_columns: int
    nonzeros: int
    memory_bytes: int

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def _years_in(cumulative: np.ndarray, first: np.ndarray, last: np.ndarray) -> np.ndarray:
    """Per item, the sum over years t in [first, last] of a per-year count whose cumulative
    sums (one row per item, a leading zero column) are ``cumulative``; 0 when last < first."""
    items = np.arange(len(first))
    top = cumulative.shape[1] - 1
    lo, hi = np.clip(first, 0, top), np.clip(last + 1, 0, top)
    return np.where(last >= first, cumulative[items, hi] - cumulative[items, lo], 0)


def _cumulative(per_year: np.ndarray) -> np.ndarray:
    """Cumulative sums over the last axis, with a leading zero."""
    zeros = np.zeros((*per_year.shape[:-1], 1), dtype=np.int64)
    return np.concatenate([zeros, np.cumsum(per_year, axis=-1, dtype=np.int64)], axis=-1)


def estimate_size(p: Problem) -> ModelSize:
    """Columns, rows and nonzeros of ``formulate(p)`` and the memory of a solve, without building it."""
    T, C, Q = len(p.years), len(p.county_ids), len(p.proj_ids)
    last_year = T - 1
    shares = has_share_rules(p)
    fundable = fundable_grid(p)  # (category, county, year)
    spans = np.arange(T, 0, -1)  # a prerequisite entry of a column of year t spans T - t rows

    # package columns: fundable start years from the prerequisites' durations to the last counted one
    req_owner, req_flat = expand_ranges(p.pkg_req_ptr[:-1], np.diff(p.pkg_req_ptr))
    earliest = np.zeros(len(p.pkg_ids), dtype=np.int64)
    np.maximum.at(earliest, req_owner, p.proj_duration[p.pkg_req_project[req_flat]])
    counted_last = last_year - p.pkg_lag
    gain = p.pkg_exit - p.household_baseline[p.pkg_household]
    latest = np.full(len(p.pkg_ids), last_year) if shares else np.where(gain > 0, counted_last, -1)
    county = p.household_county[p.pkg_household]
    free = p.pkg_cost == 0  # paid by nobody: every year allowed
    years_ok = fundable[p.pkg_category, county]
    years_ok[free] = True
    allowed = _cumulative(years_ok)
    n_x = _years_in(allowed, earliest, latest)
    hat_off = p.county_hat_off[county]  # county exit entries: columns counted by the county's hat-off year
    n_exit = _years_in(allowed, earliest, np.minimum(latest, hat_off - p.pkg_lag))
    n_target = np.zeros(len(p.pkg_ids), dtype=np.int64)  # annual target entries: counted by the target's year
    for k in range(len(p.target_year)):
        covered = p.target_county_ok[k][county]
        n_target += np.where(covered, _years_in(allowed, earliest, np.minimum(latest, p.target_year[k] - p.pkg_lag)), 0)
    span = _years_in(_cumulative(years_ok * spans), earliest, latest)
    has_x = n_x > 0

    # personnel entries: a column meets its county's and its township's row of its year, if any
    township = p.household_township[p.pkg_household]
    county_rows = np.bincount(p.pers_region[p.pers_is_county], minlength=C) / T
    town_rows = np.bincount(p.pers_region[~p.pers_is_county], minlength=len(p.township_ids)) / T
    personnel = (p.pkg_hours > 0) * (county_rows[county] + town_rows[township])

    # projects: mandatory ones, and those a package with columns needs (all with share rules)
    needed = np.zeros(Q, dtype=bool)
    needed[p.pkg_req_project[req_flat[has_x[req_owner]]]] = True
    if shares:
        needed[:] = True
    proj_last = np.where(p.proj_mandatory, last_year - p.proj_duration + 1, last_year - p.proj_duration)
    if shares:
        proj_last = np.where(p.proj_mandatory, proj_last, last_year)
    proj_last = np.where(p.proj_mandatory | needed, np.minimum(proj_last, last_year), -1)  # duration 0: any year
    proj_years = fundable[p.proj_category, p.proj_county]
    proj_years[p.proj_cost == 0] = True
    n_y = _years_in(_cumulative(proj_years), np.zeros(Q, dtype=np.int64), proj_last)

    # flows: fund row x county x category where some paid column spends in that year
    spend = np.zeros((G, C, T, T), dtype=bool)  # (category, county, first, last) of paid columns
    paid = has_x & ~free
    spend[p.pkg_category[paid], county[paid], earliest[paid], latest[paid]] = True
    paid_y = (n_y > 0) & (p.proj_cost > 0)
    spend[p.proj_category[paid_y], p.proj_county[paid_y], 0, proj_last[paid_y]] = True
    possible = np.zeros((G, C, T), dtype=bool)
    for first in range(T):
        for last in range(first, T):
            possible[:, :, first:last + 1] |= spend[:, :, first, last][:, :, None]
    possible &= fundable
    flows_per_fund = np.einsum("rc,rg,rgc->r", p.fund_county_ok.astype(np.int64), p.fund_category_ok.astype(np.int64),
                               possible[:, :, p.fund_year].transpose(2, 0, 1).astype(np.int64))
    windows = np.array(budget_windows(p), dtype=np.int64).reshape(-1, 3)
    budget_rows_per_flow = ((windows[None, :, 0] == p.fund_source[:, None])
                            & (windows[None, :, 1] <= p.fund_year[:, None])
                            & (windows[None, :, 2] >= p.fund_year[:, None])).sum(axis=1)
    n_f = int(flows_per_fund.sum())
    flows_of_source = np.bincount(p.fund_source, weights=flows_per_fund, minlength=len(p.source_ids))
    source = {name: i for i, name in enumerate(p.source_ids)}
    pol = p.policy
    share_rules = [(source[s_], len(rules)) for s_, rules in (*pol.min_source_category_share.items(),
                                                              *pol.max_source_category_share.items())]
    floor_rules = [(source[s_], C) for s_ in pol.county_floor_share]  # at most one row per county
    source_rows = sum(n for _, n in share_rules + floor_rules)
    source_nonzeros = int(sum(flows_of_source[s_] * n for s_, n in share_rules + floor_rules))
    pace = np.flatnonzero(p.fund_min_spend > 0)
    earlier = (p.fund_source[pace, None] == p.fund_source[None, :]) & (p.fund_year[None, :] <= p.fund_year[pace, None])
    pace_nonzeros = int((earlier * flows_per_fund[None, :]).sum())

    # prerequisite rows: per (household, project) pair, the years from its earliest start on
    pair = p.pkg_household[req_owner] * max(Q, 1) + p.pkg_req_project[req_flat]
    keep = has_x[req_owner]
    pairs, first_pair = np.unique(pair[keep], return_inverse=True)
    pair_start = np.full(len(pairs), T)
    np.minimum.at(pair_start, first_pair, earliest[req_owner[keep]])
    pair_project = pairs % max(Q, 1)
    prereq_rows = int((T - pair_start).sum())
    y_prereq = 0
    for t in range(T):  # y[q, t] enters the pair's rows from t + duration on
        starts = np.maximum(t + p.proj_duration[pair_project], pair_start)
        y_prereq += int(np.where(t <= proj_last[pair_project], np.clip(T - starts, 0, None), 0).sum())

    n_req = np.diff(p.pkg_req_ptr)
    rules = len(p.policy.min_category_share) + len(p.policy.max_category_share)
    x_nonzeros = n_x * (1 + ~free + personnel) + n_exit + n_target + span * n_req
    K = len(p.target_year)
    nonzeros = (int(x_nonzeros.sum()) + int(n_y.sum()) + int((n_y * (p.proj_cost > 0)).sum()) + y_prereq
                + int(flows_per_fund @ budget_rows_per_flow) + n_f * (1 + rules) + source_nonzeros + pace_nonzeros
                + 2 * (C + K))
    money_rows = int(possible.sum())
    mandatory_or_built = int(((n_y > 0) | p.proj_mandatory).sum())
    rows = (int(np.unique(p.pkg_household[has_x]).size) + mandatory_or_built + prereq_rows + money_rows
            + len(windows) + rules + source_rows + len(pace) + len(p.pers_hours) + C + K + 1)
    # equity rules (policy.equity): the floor's row per county over its flows; the exit-rate rows
    # (lowest; highest with a spread cap) over the package columns, the cap and two rate columns
    equity = p.policy.equity
    rate_families = (equity.objective == "maxmin" or equity.max_exit_rate_spread is not None) + (
        equity.max_exit_rate_spread is not None)
    if equity.county_floor_per_poor is not None:
        rows, nonzeros = rows + C, nonzeros + n_f
    rows += rate_families * C + (equity.max_exit_rate_spread is not None)
    nonzeros += rate_families * (int(n_x.sum()) + C) + 2 * (equity.max_exit_rate_spread is not None)
    integer = int(n_x.sum() + n_y.sum())
    columns = integer + n_f + C + K + (2 if equity.uses_rates else 0)
    memory = nonzeros * BYTES_PER_NONZERO + (rows + columns) * BYTES_PER_LINE
    return ModelSize(rows, columns, integer, nonzeros, memory)


__all__ = ["MODEL_MEMORY_LIMIT", "ModelSize", "estimate_size"]
