"""Compare two plans: what differs in their inputs, and what differs in their outcomes.

Reads only the two plan folders (summary.json and the tables), so any two plans compare:
two scenarios, two solver settings, an optimised plan and a baseline. Each difference is a
row ``(section, item, a, b, change)``; :func:`compare_plans` returns them as one table.

A plan with no solution has no outcomes and no budget use to compare: its outcome values are
missing (never zeros), the rows that need both solutions (money, spend, counties, budgets) are
left out, and :func:`unsolved` names it so the reader is told why.
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from allocator.inputs.provenance import SHORT, plan_inputs, short
from allocator.plan.plan import Plan

BINDING_SHARE = 1 - 1e-6  # a budget is binding when this share of what was available is spent
OUTCOME_KEYS = ("status", "expected_exits", "sustained_exits", "value", "bound", "gap", "counties_on_schedule",
                "counties_total", "target_shortfall", "total_shortfall", "total_cost", "households_with_package",
                "projects_built")


def _row(section: str, item: str, a, b) -> dict:
    change = b - a if isinstance(a, int | float) and isinstance(b, int | float) and not isinstance(a, bool) else None
    return {"section": section, "item": item, "a": a, "b": b, "change": change}


def _differs(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return abs(a - b) > 1e-9 * max(abs(a), abs(b), 1.0)
    return a != b


def _flatten(prefix: str, value, out: dict) -> None:
    if isinstance(value, dict):
        for key, inner in value.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), inner, out)
    else:
        out[prefix] = value


def input_rows(a: Plan, b: Plan) -> list[dict]:
    """Scenario, years, policy, solver options, problem sizes, money available and input files."""
    rows = []
    for key in ("scenario", "start_year", "deadline_year", "method", "backend"):
        if _differs(a.summary.get(key), b.summary.get(key)):
            rows.append(_row("inputs", key, a.summary.get(key), b.summary.get(key)))
    flat_a, flat_b = {}, {}
    for part in ("input_fingerprint", "policy", "options", "problem", "inputs", "generate"):
        _flatten(part, a.summary.get("manifest", {}).get(part), flat_a)
        _flatten(part, b.summary.get("manifest", {}).get(part), flat_b)
    for key in sorted(set(flat_a) | set(flat_b)):
        if _differs(flat_a.get(key), flat_b.get(key)):
            rows.append(_row("inputs", key, flat_a.get(key), flat_b.get(key)))
    if unsolved(a, b):  # a plan with no solution records no money: its funds would read as zeros
        return rows
    money_a, money_b = _money(a, "amount"), _money(b, "amount")
    for key in sorted(set(money_a) | set(money_b)):
        if _differs(money_a.get(key, 0.0), money_b.get(key, 0.0)):
            rows.append(_row("inputs", f"money {key[0]} {key[1]}", money_a.get(key, 0.0), money_b.get(key, 0.0)))
    return rows


def solved(plan: Plan) -> bool:
    """Whether the plan has a solution (outcomes, spend, budget use)."""
    return plan.summary.get("expected_exits") is not None


def unsolved(a: Plan, b: Plan, names: tuple[str, str] = ("A", "B")) -> list[str]:
    """The names of the plans (of ``a`` and ``b``) that have no solution."""
    return [name for name, plan in zip(names, (a, b), strict=True) if not solved(plan)]


def _money(plan: Plan, field: str) -> dict:
    return {(row["source_id"], row["year"]): float(row[field]) for row in plan.summary.get("budget_use", [])}


def _binding(plan: Plan) -> set:
    return {(row["source_id"], row["year"]) for row in plan.summary.get("budget_use", [])
            if row["available"] > 0 and row["spent"] >= BINDING_SHARE * row["available"]}


def outcome_rows(a: Plan, b: Plan) -> list[dict]:
    """KPIs, spend by category, source and year, counties whose schedule differs, binding budgets
    (with a plan that has no solution: the KPIs only, its own missing)."""
    rows = [_row("outcomes", key, a.summary.get(key), b.summary.get(key)) for key in OUTCOME_KEYS]
    if unsolved(a, b):
        return rows
    for by in ("category", "source_id", "year"):
        spend_a = a.funding.groupby(by)["amount"].sum() if len(a.funding) else pd.Series(dtype=float)
        spend_b = b.funding.groupby(by)["amount"].sum() if len(b.funding) else pd.Series(dtype=float)
        for key in sorted(set(spend_a.index) | set(spend_b.index), key=str):
            rows.append(_row(f"spend by {by.removesuffix('_id')}", str(key), float(spend_a.get(key, 0.0)),
                             float(spend_b.get(key, 0.0))))
    on_a = a.counties.set_index("county_id")["on_schedule"] if len(a.counties) else pd.Series(dtype=bool)
    on_b = b.counties.set_index("county_id")["on_schedule"] if len(b.counties) else pd.Series(dtype=bool)
    for county in sorted(set(on_a.index) | set(on_b.index)):
        if on_a.get(county) != on_b.get(county):
            rows.append(_row("county on schedule", str(county), _bool_or_none(on_a.get(county)),
                             _bool_or_none(on_b.get(county))))
    binding_a, binding_b = _binding(a), _binding(b)
    for key in sorted(binding_a ^ binding_b):
        rows.append(_row("budget fully spent", f"{key[0]} {key[1]}", key in binding_a, key in binding_b))
    return rows


def _bool_or_none(value) -> bool | None:
    return None if value is None else bool(value)


def _same(text: str) -> str:
    return text


def inputs_sentence(a: Plan, b: Plan, names: tuple[str, str] = ("A", "B"), digits: int = SHORT,
                    translate: Callable[[str], str] = _same) -> str:
    """Whether the two plans were made from the same input data (their input fingerprints,
    :mod:`allocator.inputs.provenance`, shown to ``digits`` hex digits), in words: plans of
    different data compare as two scenarios. ``translate`` puts the words (English, the
    message ids) in the reader's language."""
    fa, fb = (plan_inputs(plan.summary)[:1] or (None,) for plan in (a, b))
    if fa[0] is not None and fa == fb:
        return translate("{a} and {b} were made from the same input data (inputs {inputs})").format(
            a=names[0], b=names[1], inputs=short(fa[0])[:digits])
    return translate("{a} and {b} were made from different input data (inputs {inputs_a} and {inputs_b}): this "
                     "compares two scenarios").format(a=names[0], b=names[1], inputs_a=short(fa[0])[:digits],
                                                      inputs_b=short(fb[0])[:digits])


def compare_plans(a: Plan, b: Plan) -> pd.DataFrame:
    """Every input and outcome difference between plan ``a`` and plan ``b``, one row each."""
    return pd.DataFrame(input_rows(a, b) + outcome_rows(a, b), columns=["section", "item", "a", "b", "change"])


__all__ = ["compare_plans", "input_rows", "inputs_sentence", "outcome_rows", "solved", "unsolved"]
