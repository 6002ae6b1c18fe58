"""Marginal values: what one more unit of each limited resource is worth, from whichever method solved.

``exact`` and ``lp-fix`` price the rows with the duals of the LP relaxation (lp-fix reuses the
LP it solved; exact solves it here, on its small models); ``decompose`` with its converged
Lagrangian multipliers (:func:`allocator.optimize.decompose.row_prices`). Either is a supergradient of
a concave value function (the LP's optimum, or the Lagrangian bound min_u L(u), as a function
of the row bounds): one more unit buys at most this much, exactly this much where the value
is differentiable. The same table either way, one row per resource:

- ``money``: per 10,000 yuan more of a source in a year (its fund row; ``region_id`` names the
  counties it may pay, empty for all), through every budget window the money feeds and the
  disbursement pace it raises;
- ``cadre hours``: per hour more of a county's or township's personnel in a year;
- ``exit allowance``: per household more that a county may keep poor at its hat-off year (its
  threshold times its rural population; the hat-off row);
- ``annual target``: per household more that a target's region may keep poor at its year-end.

Values are in objective units: sustained expected exits plus the earliness credit, one
household of county or target shortfall counting as the penalty (summary ``marginal_values``),
so where a county is off schedule the values are driven by the deadline. On small models
(:data:`CHECK_MAX_INTEGER_COLUMNS`) a sample is checked against finite differences: the LP
relaxation re-solved with the row ±1 %; the slopes must bracket the value (concavity).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from allocator.inputs.names import label
from allocator.model.formulation import Formulation, budget_windows
from allocator.model.problem import Problem
from allocator.solvers import get_backend
from allocator.solvers.base import SolveOptions, Status

UNIT_YUAN = 10_000.0  # money values per this many yuan
CHECK_MAX_INTEGER_COLUMNS = 2000  # finite-difference re-solves only on models this small
CHECK_SAMPLE = 8  # rows checked, spread over the kinds
CHECK_STEP = 0.01  # ± this share of the row
CHECK_REL_TOL = 0.02  # relative slack of the check: decompose's prices come within about 2 % of the LP duals
LP_TOL = 1e-7  # relative accuracy of an LP optimum, in the check's slack
LP_DUAL = "LP dual"
MEANINGS = {
    LP_DUAL: "dual of the LP relaxation's row: objective gained per unit more of the row (a supergradient of the "
             "LP optimum; the MIP plan may gain less, in steps)",
    "Lagrangian multiplier": "decompose's converged price of the row: objective gained per unit more in its "
                             "Lagrangian bound (a supergradient of min_u L(u); close to the LP dual)",
}
OBJECTIVE = ("objective units: sustained expected exits plus the earliness credit; one household of county or "
             "target shortfall counts as the penalty")
COLUMNS = ["kind", "source_id", "region_id", "year", "unit", "amount", "value", "method", "meaning",
           "fd_down", "fd_up", "fd_check"]


@dataclass
class Direction:
    """How one unit more of a resource moves the model's row bounds: ``rows_hi`` by ``coef_hi``
    (<= rows), ``rows_lo`` by ``coef_lo`` (>= rows)."""

    rows_hi: np.ndarray
    coef_hi: np.ndarray
    rows_lo: np.ndarray
    coef_lo: np.ndarray

    def value(self, prices: np.ndarray) -> float:
        return float(prices[self.rows_hi] @ self.coef_hi + prices[self.rows_lo] @ self.coef_lo)

    def shifted(self, lo: np.ndarray, hi: np.ndarray, units: float) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = lo.copy(), hi.copy()
        hi[self.rows_hi] += units * self.coef_hi
        lo[self.rows_lo] += units * self.coef_lo
        return lo, hi


def fed_budget_rows(p: Problem, r: int) -> np.ndarray:
    """The budget rows (windows of :func:`budget_windows`) fund row ``r``'s money counts in:
    its own year's, and with carry-over the later windows its money may still pay."""
    s, t = p.fund_source[r], p.fund_year[r]
    recall = p.source_recall_years[s]
    fed = []
    for i, (source, a, b) in enumerate(budget_windows(p)):
        if source != s or not t <= b:
            continue
        first = a if not p.source_carry_over[s] else (max(a - recall, 0) if recall >= 0 else 0)
        if first <= t:
            fed.append(i)
    return np.array(fed, dtype=np.int64)


def personnel_region(p: Problem, r: int) -> str:
    """The county or township of personnel row ``r``."""
    return str(p.county_ids[p.pers_region[r]] if p.pers_is_county[r] else p.township_ids[p.pers_region[r]])


def resources(fm: Formulation) -> tuple[pd.DataFrame, list[Direction]]:
    """Every priced resource (kind, source, region, year, unit, amount in units) and its direction."""
    p = fm.problem
    none = np.zeros(0, dtype=np.int64)
    rows, directions = [], []
    budget = fm.family("source_budget").rows
    pace = fm.family("spend_pace")
    pace_fund = pace.keys["fund"]
    for r in range(len(p.fund_amount)):
        fed = fed_budget_rows(p, r)
        raised = np.flatnonzero((p.fund_source[pace_fund] == p.fund_source[r])
                                & (p.fund_year[pace_fund] >= p.fund_year[r]))
        directions.append(Direction(budget.start + fed, np.full(len(fed), UNIT_YUAN), pace.rows.start + raised,
                                    p.fund_min_spend[pace_fund[raised]] * UNIT_YUAN))
        where = "" if p.fund_county_ok[r].all() else ";".join(map(str, p.county_ids[p.fund_county_ok[r]]))
        rows.append(("money", str(p.source_ids[p.fund_source[r]]), where, int(p.years[p.fund_year[r]]),
                     "10,000 yuan", p.fund_amount[r] / UNIT_YUAN))
    personnel = fm.family("personnel").rows
    for r in range(personnel.stop - personnel.start):
        directions.append(Direction(np.array([personnel.start + r]), np.ones(1), none, np.zeros(0)))
        rows.append(("cadre hours", "", personnel_region(p, r), int(p.years[p.pers_year[r]]), "hour",
                     float(p.pers_hours[r])))
    exits = fm.family("county_exit").rows
    allowance = p.county_threshold * p.county_rural_population
    for c in range(exits.stop - exits.start):
        directions.append(Direction(none, np.zeros(0), np.array([exits.start + c]), -np.ones(1)))
        rows.append(("exit allowance", "", str(p.county_ids[c]), int(p.years[p.county_hat_off[c]]),
                     "household", float(allowance[c])))
    targets = fm.family("annual_target").rows
    for k in range(targets.stop - targets.start):
        directions.append(Direction(none, np.zeros(0), np.array([targets.start + k]), -np.ones(1)))
        rows.append(("annual target", "", str(p.target_region[k]), int(p.years[p.target_year[k]]), "household",
                     float(p.target_share[k] * p.target_households(k).sum())))
    return pd.DataFrame(rows, columns=["kind", "source_id", "region_id", "year", "unit", "amount"]), directions


def marginal_values(fm: Formulation, prices: np.ndarray, method: str, check: bool | None = None) -> pd.DataFrame:
    """The marginal value table (module docstring) of row prices ``prices`` (d objective / d
    row bound) that ``method`` produced; with ``check`` (default: on models up to
    CHECK_MAX_INTEGER_COLUMNS) a sample is compared with finite-difference re-solves."""
    table, directions = resources(fm)
    table["value"] = [d.value(prices) for d in directions]
    table["method"] = method
    table["meaning"] = MEANINGS[method]
    table["fd_down"] = table["fd_up"] = np.nan
    small = int(fm.model.integrality.sum()) <= CHECK_MAX_INTEGER_COLUMNS
    table["fd_check"] = "not sampled" if small else "not checked: the model is too large to re-solve here"
    if check if check is not None else small:
        table = check_finite_differences(fm, table, directions)
    return table[COLUMNS]


def check_finite_differences(fm: Formulation, table: pd.DataFrame, directions: list[Direction],
                             sample: int = CHECK_SAMPLE) -> pd.DataFrame:
    """Re-solve the LP relaxation with a sample of rows ±CHECK_STEP of their amount: the slopes
    below (``fd_down``) and above (``fd_up``) bracket every supergradient of its concave
    optimum, so ``fd_check`` says ``agrees`` when fd_up <= value <= fd_down (within tolerance).
    Decompose's multipliers are checked against the same LP: its Lagrangian bound is the LP
    optimum where the village pieces keep no prerequisite the LP would split."""
    value_of = _lp_value(fm)
    base = value_of(fm.model.row_lo, fm.model.row_hi)
    table = table.copy()
    for i in _sample(table, sample):
        step = CHECK_STEP * float(table.at[i, "amount"])
        slopes = []
        for sign in (-1.0, 1.0):
            lo, hi = directions[i].shifted(fm.model.row_lo, fm.model.row_hi, sign * step)
            moved = value_of(lo, hi)
            slopes.append(np.nan if moved is None or base is None else sign * (moved - base) / step)
        down, up = slopes
        value = float(table.at[i, "value"])
        slack = CHECK_REL_TOL * max(abs(value), abs(np.nan_to_num(down)), abs(np.nan_to_num(up))) \
            + LP_TOL * max(abs(base or 0.0), 1.0) / step
        if np.isnan(down) and np.isnan(up):
            verdict = "not checked: the re-solves found no optimum"
        else:
            agrees = (np.isnan(up) or up - slack <= value) and (np.isnan(down) or value <= down + slack)
            verdict = "agrees" if agrees else "differs"
        table.loc[i, ["fd_down", "fd_up", "fd_check"]] = [down, up, verdict]
    return table


def _sample(table: pd.DataFrame, size: int) -> list[int]:
    """Rows to check: the largest values of each kind in turn, among rows that hold something."""
    held = table[table["amount"] > 0]
    by_kind = [group.reindex(group["value"].abs().sort_values(ascending=False, kind="stable").index).index.tolist()
               for _, group in held.groupby("kind", sort=True)]
    picked = []
    for rank in range(size):
        for rows in by_kind:
            if rank < len(rows) and len(picked) < size:
                picked.append(rows[rank])
    return sorted(picked)


def _lp_value(fm: Formulation):
    """The LP relaxation's optimum as a function of the row bounds (None without an optimum)."""
    relaxed = fm.model.relaxed()
    solver = get_backend("highs")

    def value(lo: np.ndarray, hi: np.ndarray) -> float | None:
        result = solver.solve(dataclasses.replace(relaxed, row_lo=lo, row_hi=hi), SolveOptions())
        return result.objective if result.status == Status.OPTIMAL else None

    return value


def lp_prices(fm: Formulation) -> np.ndarray | None:
    """The LP relaxation's row duals (for exact, which solves no LP), or None."""
    result = get_backend("highs").solve(fm.model.relaxed(), SolveOptions())
    return result.duals if result.status == Status.OPTIMAL else None


def _same(text: str) -> str:
    return text


WHAT = {  # what one more unit is of, by kind (English: the message ids of the report's catalogue)
    "money": "{source} money in {year}", "cadre hours": "cadre hours of {region} in {year}",
    "exit allowance": "exit allowance of {region} at its hat-off year {year}",
    "annual target": "allowance of the {year} target of {region}",
}
UNITS = {"10,000 yuan": "10,000 yuan", "hour": "one hour", "household": "one household"}


def sentence(row: dict, translate: Callable[[str], str] = _same) -> str:
    """One marginal value in words, e.g. '10,000 yuan more of central money in 2017 is worth 0.042',
    its region as ``Name (ID)`` when the row has a ``region_name``; ``translate`` puts the words
    (English, the message ids) in the reader's language."""
    region = label(row["region_id"], row.get("region_name")) if row.get("region_id") else translate(
        "the whole scenario")
    what = translate(WHAT[row["kind"]]).format(source=row["source_id"], year=row["year"], region=region)
    if row["kind"] == "money" and row.get("region_id"):
        what += translate(" (for {region})").format(region=region)
    check = row.get("fd_check")
    checked = translate("; finite differences: {check}").format(check=translate(check)) \
        if check in ("agrees", "differs") else ""
    unit = translate(UNITS.get(row["unit"], row["unit"] if row["unit"][0].isdigit() else f"one {row['unit']}"))
    return translate("{unit} more of {what} is worth {value} ({method}{checked})").format(
        unit=unit, what=what, value=f"{row['value']:,.4g}", method=row["method"], checked=checked)


def summarise(table: pd.DataFrame, penalty: float) -> dict:
    """The summary.json entry: method, meaning, units, the check's tally and the top values."""
    method = str(table["method"].iloc[0]) if len(table) else None
    checked = table["fd_check"].isin(["agrees", "differs"])
    top = table[table["value"] > 1e-9].sort_values("value", ascending=False, kind="stable").head(10)
    return {"file": "marginal_values.csv", "method": method, "meaning": MEANINGS.get(method), "objective": OBJECTIVE,
            "penalty": penalty, "count": int(len(table)), "checked": int(checked.sum()),
            "agree": int((table["fd_check"] == "agrees").sum()),
            "top": top.drop(columns=["meaning"]).astype(object).where(top.drop(columns=["meaning"]).notna(), None)
            .to_dict("records")}


__all__ = ["COLUMNS", "MEANINGS", "UNIT_YUAN", "check_finite_differences", "fed_budget_rows", "lp_prices",
           "marginal_values", "personnel_region", "resources", "sentence", "summarise"]
