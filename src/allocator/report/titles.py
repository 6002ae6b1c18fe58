"""The words and number formats of everything allocator shows a person: the report's page
(:mod:`allocator.report.html`), the Excel workbook (:mod:`allocator.report.workbook`) and the
command line's status line.

:data:`TITLES` is the one place column titles live (keyed by the plan's column names; sheet
names, summary lines and words in cells by prefix); :data:`FORMATS` the number format of each
column (Excel's codes; :func:`shown` writes the same as text). :func:`status_words` says what a
run's status means in a planner's words, and what to do next.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from allocator.report.i18n import current, tr

# Every word of the workbook and the report, by key: sheet names ("sheet."), column titles (the plan's column
# names), summary lines ("summary.") and the words written in cells ("word."). One language now
# (English); another is the same keys in a second mapping chosen by the caller.
TITLES: dict[str, str] = {
    "sheet.summary": "Summary", "sheet.path": "Path", "sheet.counties": "Counties", "sheet.villages": "Villages",
    "sheet.households": "Households", "sheet.projects": "Projects", "sheet.funding": "Funding",
    "sheet.budget_use": "Budget use", "sheet.difficulties": "Difficulties",
    "sheet.near_misses": "Counties near the threshold",
    # columns
    "item": "Item", "value": "Value",
    "year": "Year", "region_id": "Region", "region_name": "Region name",
    "registered_poor": "Registered poor households",
    "expected_poor": "Expected poor at year end", "still_poor_share": "Still poor (share)",
    "target": "Target (largest share still poor)", "shortfall": "Shortfall (households)",
    "county_id": "County", "county_name": "County name", "expected_exits": "Expected exits",
    "expected_incidence": "Expected incidence", "threshold": "Threshold", "on_schedule": "On schedule",
    "shortfall_households": "Shortfall (households)", "spend": "Spend (yuan)", "hat_off_year": "Hat-off year",
    "achieved_hat_off_year": "Hat-off year reached",
    "village_id": "Village", "village_name": "Village name", "township_id": "Township",
    "township_name": "Township name", "poor_village": "Poor village", "poor_households": "Poor households",
    "households_planned": "Households with a package", "projects_built": "Projects built",
    "household_id": "Household", "package_id": "Package", "measures": "Measures", "category": "Category",
    "start_year": "Start year", "exit_year": "Exit year", "cost": "Cost (yuan)",
    "exit_probability": "Exit probability", "sustained_probability": "Sustained exit probability",
    "poverty_probability": "Poverty probability",
    "responsible_cadre_id": "Responsible cadre",
    "project_id": "Project", "mandatory": "Mandatory",
    "source_id": "Fund source", "amount": "Amount (yuan)",
    "available": "Available (yuan)", "spent": "Spent (yuan)", "spent_share": "Spent (share of available)",
    "carried": "Carried to next year (yuan)", "recalled": "Recalled (yuan)", "carry_over": "Carry-over",
    "topic": "Topic", "sentence": "What the plan finds",
    # summary lines
    "summary.scenario": "Scenario", "summary.years": "Years", "summary.status": "Status",
    "summary.stopped_by": "Stopped by", "summary.message": "Message", "summary.method": "Method",
    "summary.backend": "Solver", "summary.expected_exits": "Expected exits",
    "summary.sustained_exits": "Sustained exits", "summary.sustained_share": "Sustained exits (share)",
    "summary.counties_on_schedule": "Counties on schedule", "summary.counties_total": "Counties",
    "summary.total_shortfall": "Shortfall (households)", "summary.total_cost": "Total cost (yuan)",
    "summary.money_available": "Money in the funds (yuan)",
    "summary.households_with_package": "Households with a package", "summary.projects_built": "Projects built",
    "summary.value": "Objective value", "summary.target_shortfall": "Shortfall against the targets (households)",
    "summary.bound": "Bound on the objective", "summary.gap": "Gap to the bound",
    "summary.solve_seconds": "Solve time (seconds)", "summary.scenario_file": "Scenario file",
    "summary.plan_fingerprint": "Plan fingerprint", "summary.allocator_version": "allocator version",
    # words in cells
    "word.whole": "whole scenario", "word.none": "none",
    "word.overall": "overall", "word.county": "county off schedule", "word.reason": "reason",
    "word.conflict": "conflict", "word.take": "what it would take", "word.earliest": "earliest deadline",
    "word.behind": "year behind target", "word.funds": "funds fully spent",
    "word.on_schedule": "every county is on schedule",
    "word.not_by_deadline": "not by the deadline",
    "word.run_explain": "not worked out yet: run `allocator explain PLAN_DIR`, then export again",
    # the report's own columns
    "target_poor": "Target (most still poor, households)", "national_path": "National path (NBS, rescaled)",
    "allowed_by_thresholds": "Allowed by the thresholds", "total": "Total (yuan)",
    "kind": "Kind", "unit": "Unit", "marginal_value": "Marginal value (per unit)",
    "fd_check": "Check by finite differences", "earliest_year": "Earliest deadline met",
    "label": "Measure", "margin_households": "Households from the line", "side": "Where",
    "section": "Section", "planned_hat_off_year": "Planned hat-off year",
    "observed_income": "Observed income (yuan per person)", "from_line": "From the line (yuan)",
    "compare.a": "A: this plan", "compare.b": "B: the other plan", "compare.change": "Change (B − A)",
}

MONEY, SHARE, PROBABILITY, HOUSEHOLDS, COUNT, YEAR = "#,##0", "0.0%", "0.000", "#,##0.0", "#,##0", "0"
FORMATS: dict[str, str] = {  # by column name; columns not named here are written as they are
    "cost": MONEY, "spend": MONEY, "amount": MONEY, "available": MONEY, "spent": MONEY, "carried": MONEY,
    "recalled": MONEY,
    "still_poor_share": SHARE, "target": SHARE, "expected_incidence": SHARE, "threshold": SHARE,
    "spent_share": SHARE,
    "exit_probability": PROBABILITY, "sustained_probability": PROBABILITY, "poverty_probability": PROBABILITY,
    "expected_poor": HOUSEHOLDS, "expected_exits": HOUSEHOLDS, "shortfall": HOUSEHOLDS,
    "shortfall_households": HOUSEHOLDS,
    "registered_poor": COUNT, "poor_households": COUNT, "households_planned": COUNT, "projects_built": COUNT,
    "year": YEAR, "start_year": YEAR, "exit_year": YEAR, "hat_off_year": YEAR, "achieved_hat_off_year": YEAR,
}

GENERAL = "General"  # Excel's own; on the page three significant digits, never in scientific notation
PYTHON_SPECS = {MONEY: ",.0f", SHARE: ".1%", PROBABILITY: ".3f", HOUSEHOLDS: ",.1f", COUNT: ",.0f", YEAR: ".0f",
                "0.00%": ".2%", "#,##0.00": ",.2f"}
FORMATS |= {"target_poor": HOUSEHOLDS, "national_path": HOUSEHOLDS, "allowed_by_thresholds": HOUSEHOLDS,
            "total": MONEY, "marginal_value": GENERAL, "earliest_year": YEAR, "planned_hat_off_year": YEAR,
            "margin_households": HOUSEHOLDS, "observed_income": MONEY, "from_line": MONEY}
FINGERPRINT_DIGITS = 12  # hex digits of a fingerprint shown on the page
HEX_RUN = re.compile(r"\b[0-9a-f]{32,}\b")


def shown(value, column: str = "") -> str:
    """``value`` as a person reads it in ``column``: the column's format (:data:`FORMATS`), else
    a number with thousands separators and at most one decimal; missing values empty; yes/no
    for booleans; a long hash cut to :data:`FINGERPRINT_DIGITS` hex digits."""
    if value is None or (not isinstance(value, str | list | tuple | dict) and pd.isna(value)):
        return ""
    if isinstance(value, bool | np.bool_):
        return tr("yes") if value else tr("no")
    if isinstance(value, int | float) or hasattr(value, "dtype"):
        code = FORMATS.get(column, "")
        if code == GENERAL and abs(value) < 1000:
            return np.format_float_positional(float(value), precision=3, fractional=False, trim="-")
        spec = PYTHON_SPECS.get(code)
        if spec is None:
            spec = ",.0f" if float(value) == int(value) or abs(value) >= 1000 else ",.1f"
        return format(float(value), spec)
    return HEX_RUN.sub(lambda m: m.group()[:FINGERPRINT_DIGITS], str(value))


def yuan(amount: float) -> str:
    """Money in words: ``714.6 million yuan`` from a million up, ``9,000 yuan`` below (in
    Chinese: 亿元 from a hundred million up, 万元 from ten thousand, else 元)."""
    if current() == "zh":
        return (f"{amount / 1e8:,.2f}亿元" if abs(amount) >= 1e8 else f"{amount / 1e4:,.1f}万元"
                if abs(amount) >= 1e4 else f"{amount:,.0f}元")
    return f"{amount / 1e6:,.1f} million yuan" if abs(amount) >= 1e6 else f"{amount:,.0f} yuan"


def status_words(summary: dict) -> tuple[str, str]:
    """A run's status (``summary.json``'s ``status`` and ``stopped_by``) in a planner's words,
    and the next step ('' when there is none). A run stopped with no plan at its time limit
    is not a crash: it found no plan in the time it had."""
    status, stopped = summary.get("status"), summary.get("stopped_by")
    explain = tr("run `allocator explain PLAN_DIR` to see which rules conflict")
    if status == "optimal":
        return (tr("optimal within the gap target") if stopped == "gap" else tr("optimal")), ""
    if status == "feasible":
        why = {"time_limit": tr("stopped by the time limit"),
               "other_limit": tr("stopped by a solver limit")}.get(stopped)
        return tr("a plan, not proven best") + (f" ({why})" if why else ""), ""
    if status == "infeasible":
        return tr("no plan: the rules cannot all hold"), explain
    if status == "error" and stopped == "time_limit":
        return (tr("no plan found within the time limit"),
                tr("{explain}, or give the solver more time (solver.time_limit in the scenario)").format(
                    explain=explain))
    if status == "error" and stopped == "other_limit":
        return (tr("no plan found within the solver's limits"),
                tr("{explain}, or raise the solver's limits").format(explain=explain))
    if status == "unbounded":
        return tr("no plan: the model is unbounded (a modelling error; please report it)"), ""
    return tr("no plan: the solver failed"), tr("see the message below, then {explain}").format(explain=explain)


SHORTFALL_SLACK = 0.5  # households: less shortfall above its bound than this is proven least


def shortfall_proven_least(summary: dict) -> bool:
    """Whether no plan has noticeably less shortfall than this one: within :data:`SHORTFALL_SLACK`
    households, or the gap target's share, of the shortfall bound. Only then is the value's
    bound (which holds for plans with at most this shortfall) a fair measure of the plan."""
    gap, bound = summary.get("shortfall_gap"), summary.get("shortfall_bound")
    if gap is None or bound is None:
        return False
    target = ((summary.get("manifest") or {}).get("options") or {}).get("mip_gap") or 0.0
    return gap <= max(SHORTFALL_SLACK, target * bound)


def shortfall_text(summary: dict) -> str:
    """The plan's shortfall in households, with the targets' part and, when not proven least,
    the least any plan could have (its bound)."""
    text = f"{summary['total_shortfall']:,.1f}"
    if summary.get("target_shortfall"):
        text += " " + tr("(targets {shortfall})").format(shortfall=f"{summary['target_shortfall']:,.1f}")
    if summary.get("shortfall_bound") is not None and not shortfall_proven_least(summary):
        text += "; " + tr("no plan has less than {bound}").format(bound=f"{summary['shortfall_bound']:,.1f}")
    return text


def unsolved_sentence(name: str) -> str:
    """Plan ``name`` of a comparison has no solution: what that leaves out, in the language in use."""
    return tr("{name} has no solution: its outcomes are missing, not zero, and its money, spending, counties and "
              "budgets are not compared.").format(name=name)


def title(key: str) -> str:
    """The title of a column (or any :data:`TITLES` key) in the language in use; an unknown key as it is."""
    return tr(TITLES.get(key, key))


def targeting_text(targeting: dict) -> str:
    """The plan's expected inclusion and exclusion errors (summary.json ``targeting``) in a line."""
    def share(key: str) -> str:
        return tr("n/a") if targeting.get(key) is None else format(targeting[key], ".1%")
    exclusion = targeting.get("expected_exclusion_error")
    return tr("inclusion {inclusion} households ({inclusion_share}), exclusion {exclusion}").format(
        inclusion=f"{targeting.get('expected_inclusion_error') or 0.0:,.1f}",
        inclusion_share=share("expected_inclusion_error_share"),
        exclusion=tr("n/a") if exclusion is None else tr("{count} households ({share})").format(
            count=f"{exclusion:,.1f}", share=share("expected_exclusion_error_share")))
