"""Where would more money go? A plan re-solved with extra money of one source in one year.

:func:`parse_extra` reads ``SOURCE:YEAR:AMOUNT`` (yuan), :func:`check_extra` holds it against
the plan's problem (a known source, a year of the horizon), and :func:`extra_money` re-solves
the scenario with the money added to that fund row (a new row, like the source's nearest
one, when the source has none that year), starting from the plan's decisions (they stay
feasible: more money only loosens the budget rows), and says where the money went —
counties, categories, households reached — and what it bought against what the marginal
values predicted (the value per 10,000 yuan times the amount: an upper bound for the LP
relaxation, which a MIP plan meets in steps).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import pandas as pd

from allocator.errors import InputError, Issue
from allocator.inputs.names import region_names
from allocator.messages import say, words
from allocator.model.problem import Problem, build_problem
from allocator.optimize.marginal import UNIT_YUAN
from allocator.optimize.pipeline import solve_problem
from allocator.plan.plan import Plan

SOURCE = "extra money"  # the issues' "file": the CLI names its flag instead
FORMAT = "SOURCE:YEAR:AMOUNT, e.g. central:2017:10000000 (yuan)"


@dataclass(frozen=True)
class ExtraMoney:
    """``amount`` yuan more of source ``source_id`` in ``year``."""

    source_id: str
    year: int
    amount: float


def parse_extra(text: str) -> ExtraMoney:
    """``SOURCE:YEAR:AMOUNT`` as :class:`ExtraMoney`; InputError when it is not that, or the
    amount is not a positive finite number of yuan."""
    parts = str(text).rsplit(":", 2)
    if len(parts) != 3 or not parts[0]:
        raise InputError([Issue(SOURCE, "not SOURCE:YEAR:AMOUNT", expected=FORMAT, found=repr(text))])
    source, year, amount = parts
    try:
        year_value = int(year)
    except ValueError:
        raise InputError([Issue(SOURCE, "the year is not a whole number", expected=FORMAT, found=repr(year))]) from None
    try:
        money = float(amount)
    except ValueError:
        raise InputError([Issue(SOURCE, "the amount is not a number", expected=FORMAT, found=repr(amount))]) from None
    if not math.isfinite(money) or money <= 0:
        raise InputError([Issue(SOURCE, "the amount must be a positive number of yuan", expected=FORMAT,
                                found=repr(amount))])
    return ExtraMoney(source, year_value, money)


def check_extra(problem: Problem, extra: ExtraMoney) -> None:
    """InputError unless the source is one of the scenario's and the year within its horizon."""
    issues = []
    if extra.source_id not in set(problem.source_ids):
        issues.append(Issue(SOURCE, f"unknown source {extra.source_id!r}",
                            expected="one of " + ", ".join(map(str, problem.source_ids))))
    if not problem.start_year <= extra.year <= problem.deadline_year:
        issues.append(Issue(SOURCE, f"year {extra.year} is outside the plan's horizon",
                            expected=f"a year from {problem.start_year} to {problem.deadline_year}"))
    if issues:
        raise InputError(issues)


def with_extra(tables: dict[str, pd.DataFrame], extra: ExtraMoney) -> dict[str, pd.DataFrame]:
    """The tables with the extra money in funds: added to the source's row of that year, or a
    new row copying the source's nearest year (its categories, regions and carry-over rules)."""
    funds = tables["funds"].copy()
    mine = funds["source_id"].astype(str) == extra.source_id
    hit = mine & (funds["year"] == extra.year)
    if hit.any():
        funds.loc[hit, "amount"] = funds.loc[hit, "amount"] + extra.amount
    else:
        nearest = (funds.loc[mine, "year"] - extra.year).abs().sort_values(kind="stable").index[0]
        row = funds.loc[[nearest]].assign(year=extra.year, amount=extra.amount)
        if "min_spend_share" in row:
            row["min_spend_share"] = 0.0
        funds = pd.concat([funds, row], ignore_index=True)
    return {**tables, "funds": funds}


def extra_money(context, extra: ExtraMoney, progress=None) -> dict:
    """Re-solve the plan's scenario (a :class:`allocator.plan.context.PlanContext`) with ``extra``
    and report where the money went and what it bought, against the marginal values."""
    check_extra(context.problem, extra)
    p, scenario, plan = context.problem, context.scenario, context.plan
    problem = build_problem(with_extra(context.tables, extra), name=p.name, start_year=p.start_year,
                            deadline_year=p.deadline_year, policy=p.policy, validate=False)
    started = time.perf_counter()
    new = solve_problem(problem, scenario.solver, progress=progress or (lambda *a, **k: None), warm=plan,
                        price_of_fairness=False)
    seconds = time.perf_counter() - started
    predicted = _predicted(plan, extra)
    out = {"source_id": extra.source_id, "year": extra.year, "amount": extra.amount,
           "seconds": round(seconds, 2), "method": new.summary.get("method"), "status": new.summary.get("status"),
           "gap": new.summary.get("gap"), "predicted_value": predicted[0], "predicted_by": predicted[1]}
    if new.summary.get("expected_exits") is None or plan.summary.get("expected_exits") is None:
        return {**out, **say("the re-solve with the extra money ended {status} without a plan to compare",
                             status=new.summary.get("status"))}
    exits = new.summary["expected_exits"] - plan.summary["expected_exits"]
    value = new.summary["objective"] - plan.summary["objective"]
    spent = new.summary["total_cost"] - plan.summary["total_cost"]
    counties = _difference(plan.funding, new.funding, "county_id", "amount", "extra_spend")
    exits_by_county = _difference(plan.counties, new.counties, "county_id", "expected_exits", "exits")
    counties = counties.merge(exits_by_county, on="county_id", how="outer").fillna(0.0)
    counties = counties[(counties["extra_spend"].abs() > 0.5) | (counties["exits"].abs() > 1e-9)]
    counties.insert(1, "county_name", counties["county_id"].astype(str).map(region_names(context.tables)).fillna(""))
    categories = _difference(plan.funding, new.funding, "category", "amount", "extra_spend")
    categories = categories[categories["extra_spend"].abs() > 0.5]
    before = plan.households.set_index("household_id")[["package_id", "start_year"]]
    after = new.households.set_index("household_id")[["package_id", "start_year"]].reindex(before.index)
    had = before["package_id"].fillna("").astype(str) != ""
    has = after["package_id"].fillna("").astype(str) != ""
    changed = (before["package_id"].fillna("").astype(str) != after["package_id"].fillna("").astype(str)) | \
        (before["start_year"].astype("Int64").fillna(-1) != after["start_year"].astype("Int64").fillna(-1))
    on_schedule = (new.summary.get("counties_on_schedule"), plan.summary.get("counties_on_schedule"))
    sentence = say("{amount:,.0f} yuan more {source} money in {year}: the re-solve spends {spent:,.0f} yuan more, "
                   "reaches {reached:,} more household(s) ({changed:,} decision(s) change) and buys {exits:,.2f} "
                   "expected exits ({value:,.4g} objective units{predicted}); counties on schedule {before} → {after}",
                   amount=extra.amount, source=extra.source_id, year=extra.year, spent=float(spent),
                   reached=int((has & ~had).sum()), changed=int(changed.sum()), exits=float(exits), value=float(value),
                   predicted=words(" against {value:,.4g} the marginal values predicted", value=predicted[0])
                   if predicted[0] is not None else "", before=on_schedule[1], after=on_schedule[0])
    return {**out, "exits_bought": exits, "value_bought": value, "extra_spend": spent,
            "households_reached": int((has & ~had).sum()), "households_changed": int(changed.sum()),
            "counties_on_schedule": {"plan": on_schedule[1], "with_extra": on_schedule[0]},
            "expected_exits": {"plan": plan.summary["expected_exits"], "with_extra": new.summary["expected_exits"]},
            "counties": counties.to_dict("records"), "categories": categories.to_dict("records"),
            **sentence}


def _difference(before: pd.DataFrame, after: pd.DataFrame, by: str, column: str, name: str) -> pd.DataFrame:
    """``column`` summed by ``by``: after minus before, as column ``name``."""
    old = before.groupby(by)[column].sum()
    new = after.groupby(by)[column].sum()
    diff = new.sub(old, fill_value=0.0).rename(name)
    return diff.reset_index().sort_values(name, ascending=False, kind="stable")


def _predicted(plan: Plan, extra: ExtraMoney) -> tuple[float | None, str | None]:
    """What the plan's marginal values say the money is worth (objective units), and by what."""
    table = plan.marginal_values
    if table is None:
        return None, None
    row = table[(table["kind"] == "money") & (table["source_id"].astype(str) == extra.source_id)
                & (table["year"] == extra.year)]
    if row.empty or pd.isna(row["value"].iloc[0]):
        return None, None

    return float(row["value"].iloc[0]) * extra.amount / UNIT_YUAN, str(row["method"].iloc[0])


__all__ = ["ExtraMoney", "check_extra", "extra_money", "parse_extra", "with_extra"]
