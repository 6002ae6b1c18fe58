"""The readable report: one self-contained HTML page per plan folder, charts embedded.

Each section is a table function (returning a DataFrame, usable on its own) and a chart drawn
from that same table: expected poor by year against the national path; counties against their
threshold by year (which take off the hat when); money by category, source and year; a village
map coloured by what the plan does there; difficulties and what it would take in plain
sentences; marginal values; baselines; and, when asked, a comparison with another plan. The
page has no external references (charts are PNG data URIs, the style is inline), so a
provincial office can open it offline.
"""

from __future__ import annotations

import base64
import html
import io
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

from allocator.explain.difficulties import difficulties, equity_section, marginal_section
from allocator.inputs.names import named, region_names, village_names
from allocator.inputs.provenance import plan_inputs
from allocator.inputs.scenario import NATIONAL_STILL_POOR
from allocator.messages import render
from allocator.messages import sentence as said
from allocator.model.problem import Problem
from allocator.optimize.baselines import money_idle
from allocator.plan.compare import compare_plans, inputs_sentence, solved, unsolved
from allocator.plan.context import PlanContext, load_plan_context
from allocator.plan.plan import Plan
from allocator.report.charts import (
    NOTHING,
    baselines_chart,
    chart_font,
    cjk_font,
    counties_against_threshold,
    incidence_chart,
    money_by_year,
    poor_by_year_chart,
    save_figure,
    village_map,
)
from allocator.report.i18n import check_language, current, language, tr
from allocator.report.near import MONITOR_FOLDER, NEAR_HOUSEHOLDS, NEAR_YUAN, near_line, near_misses
from allocator.report.titles import (
    FINGERPRINT_DIGITS,
    TITLES,
    shortfall_proven_least,
    shown,
    status_words,
    targeting_text,
    title,
    unsolved_sentence,
    yuan,
)
from allocator.targeting.catalog import load_catalog
from allocator.targeting.pipeline import is_raw_scenario

# Share of the end-2014 stock of rural poor still poor at the end of each year (DOMAIN.md §7.5,
# derived from NBS counts); the report rescales it to the stock at the start of the plan.
HTML_LANG = {"en": "en", "zh": "zh-CN"}  # the page's lang attribute, per language


def poor_by_year(plan: Plan, problem: Problem) -> pd.DataFrame:
    """Expected registered poor households still poor at the end of each year (``path.csv``,
    the whole scenario), against the plan's annual target, the national path rescaled to this
    plan's stock, and the most the county thresholds allow."""
    path = plan.path[plan.path["region_id"] == ""].sort_values("year")
    stock = float(problem.county_registered_poor.sum())
    base = NATIONAL_STILL_POOR.get(int(problem.years[0]) - 1)
    national = [stock * NATIONAL_STILL_POOR[y] / base if base and y in NATIONAL_STILL_POOR else np.nan
                for y in path["year"].astype(int)]
    allowed = float((problem.county_threshold * problem.county_rural_population).sum())
    return pd.DataFrame({"year": path["year"].astype(int).to_numpy(), "expected_poor": path["expected_poor"].to_numpy(),
                         "target_poor": (path["target"] * path["registered_poor"]).to_numpy(),
                         "national_path": national, "allowed_by_thresholds": allowed})


def county_incidence_by_year(plan: Plan, problem: Problem) -> pd.DataFrame:
    """Per county and year: expected poor at year end (``path.csv``), incidence, threshold,
    whether it is below, and the county's planned hat-off year."""
    counties = problem.county_ids.astype(str)
    long = plan.path[plan.path["region_id"].isin(counties)].rename(columns={"region_id": "county_id"})
    long = long[["county_id", "year", "expected_poor"]].reset_index(drop=True)
    population = pd.Series(problem.county_rural_population, index=counties)
    long["expected_incidence"] = long["expected_poor"] / long["county_id"].map(population.where(population > 0))
    long["threshold"] = long["county_id"].map(pd.Series(problem.county_threshold, index=counties))
    long["below_threshold"] = long["expected_incidence"] <= long["threshold"] + 1e-9
    long["hat_off_year"] = long["county_id"].map(pd.Series(problem.years[problem.county_hat_off], index=counties))
    return long[["county_id", "year", "expected_poor", "expected_incidence", "threshold", "below_threshold",
                 "hat_off_year"]]


def hat_off_years(incidence: pd.DataFrame) -> pd.DataFrame:
    """Per county, its planned hat-off year and the first year the plan has it below its
    threshold (NA: not by the deadline)."""
    below = incidence[incidence["below_threshold"]].groupby("county_id")["year"].min()
    counties = incidence.drop_duplicates("county_id")
    return pd.DataFrame({"county_id": counties["county_id"].to_numpy(),
                         "planned_hat_off_year": counties["hat_off_year"].to_numpy(),
                         "hat_off_year": below.reindex(counties["county_id"]).astype("Int64").to_numpy()})


def spend_table(plan: Plan, by: str) -> pd.DataFrame:
    """Money spent per year (rows) and ``by`` (``category`` or ``source_id``, columns), yuan."""
    return plan.funding.pivot_table(index="year", columns=by, values="amount", aggfunc="sum", fill_value=0.0)


def budget_table(plan: Plan) -> pd.DataFrame:
    """Per fund source and year (``summary.json``'s ``budget_use``): the year's own amount, what
    was available with money carried in, spent, recalled (carried money unspent in time) and
    carried to the next year, yuan."""
    columns = ["source_id", "year", "amount", "available", "spent", "recalled", "carried"]
    return pd.DataFrame(plan.summary.get("budget_use") or [], columns=[*columns, "carry_over"])[columns]


def budget_sentence(table: pd.DataFrame) -> str:
    """'31 % of the 714.6 million yuan available is unspent (…)': the funds' money against what
    the plan spends, in words."""
    total, spent = float(table["amount"].sum()), float(table["spent"].sum())
    if total <= 0:
        return tr("The funds hold no money; the plan spends {spent}.").format(spent=yuan(spent))
    idle = max(total - spent, 0.0)
    last = table["year"].max() if len(table) else None
    recalled, left = float(table["recalled"].sum()), float(table.loc[table["year"] == last, "carried"].sum())
    lapsed = idle - recalled - left  # funds that do not carry over: unspent money ends with its year
    parts = [tr("{share} of the {total} available is unspent").format(share=shown(idle / total, "spent_share"),
                                                                       total=yuan(total)) if idle > 0.5
             else tr("All of the {total} available is spent").format(total=yuan(total))]
    details = ([tr("{money} lapsed at the end of its year").format(money=yuan(lapsed))] if lapsed > 0.5 else []) + (
        [tr("{money} recalled").format(money=yuan(recalled))] if recalled > 0.5 else []) + (
        [tr("{money} still carried at the end of {year}").format(money=yuan(left), year=int(last))]
        if left > 0.5 else [])
    return parts[0] + (f" ({tr(', ').join(details)})" if details else "") + tr(".")


def village_table(plan: Plan, villages: pd.DataFrame) -> pd.DataFrame:
    """Per village of the data: coordinates, poor households planned, projects built, spend,
    and the category that takes most of the village's money (``nothing planned`` if none)."""
    households = plan.households[plan.households["start_year"].notna()]
    spend = pd.concat([households[["village_id", "category", "cost"]],
                       plan.projects[["village_id", "category", "cost"]]])
    by_category = spend.groupby(["village_id", "category"])["cost"].sum().unstack(fill_value=0.0)
    main = by_category.idxmax(axis=1) if len(by_category) else pd.Series(dtype=object)
    frame = villages[["village_id", "latitude", "longitude"]].copy()
    frame["village_id"] = frame["village_id"].astype(str)
    frame["poor_households"] = frame["village_id"].map(plan.households["village_id"].value_counts()).fillna(0)
    frame["households_planned"] = frame["village_id"].map(households["village_id"].value_counts()).fillna(0)
    frame["projects_built"] = frame["village_id"].map(plan.projects["village_id"].value_counts()).fillna(0)
    frame["spend"] = frame["village_id"].map(spend.groupby("village_id")["cost"].sum()).fillna(0.0)
    frame["main_category"] = frame["village_id"].map(main).fillna(NOTHING)
    return frame


ASSET_ROWS = 200  # households listed in the asset-income section; the count covers them all


def asset_income_table(plan: Plan, packages: pd.DataFrame, measure_names: list[str]) -> pd.DataFrame:
    """The households whose chosen package holds one of ``measure_names`` (the catalogue's
    asset-income measures): household, village, county, package, start year and cost."""
    columns = ["household_id", "village_id", "county_id", "package_id", "start_year", "cost"]
    chosen = plan.households[plan.households["package_id"].astype(str) != ""]
    if not measure_names or chosen.empty or "measures" not in packages:
        return pd.DataFrame(columns=columns)
    names = set(measure_names)
    holds = packages["measures"].fillna("").astype(str).str.split("; ").map(lambda ms: bool(names & set(ms)))
    keys = set(zip(packages.loc[holds, "household_id"].astype(str), packages.loc[holds, "package_id"].astype(str),
                   strict=True))
    reached = [(h, p) in keys for h, p in zip(chosen["household_id"].astype(str), chosen["package_id"].astype(str),
                                                strict=True)]
    return chosen.loc[reached, columns].reset_index(drop=True)


def _asset_section(context: PlanContext) -> str:
    """Asset-income support: how many households the plan gives collective equity shares, and
    which (from the catalogue's measures naming a village asset column); nothing when the
    scenario's catalogue has no such measure."""
    if not is_raw_scenario(context.scenario):
        return ""
    catalog = load_catalog(context.scenario.catalog_path())
    names = [m.name for m in catalog.measures.values() if m.village_assets is not None]
    if not names:
        return ""
    table = asset_income_table(context.plan, context.tables["packages"], names)
    parts = [_heading("Asset-income support"),
             "<p>" + _esc(tr("Households given collective equity shares in hydropower, mining or PV projects on "
                             "their village's land: {count:,}").format(count=len(table))) + tr(".") + "</p>"]
    if table.empty:
        return "".join(parts)
    if len(table) > ASSET_ROWS:
        parts.append(_note(tr("The first {rows:,} are listed; households.csv of the plan folder holds them all.")
                           .format(rows=ASSET_ROWS)))
    return "".join(parts) + _table(with_names(table.head(ASSET_ROWS), context.tables))


NAMED = (("county_id", "county_name", region_names), ("region_id", "region_name", region_names),
         ("village_id", "village_name", village_names))  # id columns, their name columns, where the names are


def with_names(frame: pd.DataFrame, tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """``frame`` with each county, region and village id column followed by its names from the
    input ``tables`` (a column left out when no id has a name; a missing name empty)."""
    frame = frame.copy()
    for key, column, names in NAMED:
        if key in frame.columns and column not in frame.columns:
            found = frame[key].astype(str).map(names(tables))
            if found.notna().any():
                frame.insert(frame.columns.get_loc(key) + 1, column, found.fillna(""))
    return frame


def _png(fig) -> str:
    buffer = io.BytesIO()
    save_figure(fig, buffer, format="png", dpi=100)
    return f'<img alt="chart" src="data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()}">'


def _table(frame: pd.DataFrame, money: tuple = ()) -> str:
    """A table as a person reads it: human column titles (:data:`TITLES`), each value in its
    column's format (:func:`shown`; the columns in ``money`` as yuan)."""
    cells = "".join(f"<th>{_esc(title(str(c)))}</th>" for c in frame.columns)
    formats = ["total" if c in money else str(c) for c in frame.columns]
    rows = "".join("<tr>" + "".join(f"<td{_align(v)}>{_esc(shown(v, f))}</td>"
                                    for v, f in zip(row, formats, strict=True)) + "</tr>"
                   for row in frame.itertuples(index=False))
    return f'<table class="t"><thead><tr>{cells}</tr></thead><tbody>{rows}</tbody></table>'


def _align(value) -> str:
    """Numbers right-aligned, words left."""
    return ' class="n"' if isinstance(value, int | float | np.number) and not isinstance(value, bool) else ""


def _esc(text) -> str:
    return html.escape(str(text))


def _words(text) -> str:
    """Text escaped, with `commands` set as code."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", _esc(text))


def _heading(text: str, level: int = 2) -> str:
    """A section heading in the language in use."""
    return f"<h{level}>{_esc(tr(text))}</h{level}>"


def _note(text: str) -> str:
    """A muted line saying why a section is not there and what adds it."""
    return f"<p class='muted note'>{_words(text)}</p>"


STYLE = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1000px;color:#222}
h1{margin-bottom:0}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
.cards{display:flex;flex-wrap:wrap;gap:.8em}.card{background:#f4f6f8;border-radius:6px;padding:.6em 1em;min-width:9em}
.card b{display:block;font-size:1.4em}.muted{color:#666}.bad{color:#b00}.good{color:#070}
table.t{border-collapse:collapse;font-size:.85em;margin:.5em 0}table.t td,table.t th{padding:.2em .6em;
border-bottom:1px solid #eee;text-align:left}table.t th{vertical-align:bottom}table.t td.n{text-align:right}
img{max-width:100%}li{margin:.3em 0}
.step{background:#fff4e5;border-left:4px solid #e69500;padding:.4em .8em}.note{font-style:italic}"""


def _next_step(summary: dict, folder: Path) -> str:
    """The status's next step (:func:`status_words`) with this plan's folder in the command."""
    return status_words(summary)[1].replace("PLAN_DIR", str(folder))


def _headline(plan: Plan, problem: Problem, folder: Path) -> str:
    s = plan.summary
    words = status_words(s)[0]
    if s.get("expected_exits") is not None:
        cards = [("status", words), ("expected exits", shown(s["expected_exits"], "expected_exits")),
                 ("counties on schedule", tr("{part:,} of {whole:,}").format(part=s["counties_on_schedule"],
                                                                             whole=s["counties_total"])),
                 ("shortfall (households)", shown(s.get("total_shortfall"), "shortfall")),
                 ("money spent", yuan(s["total_cost"])),
                 ("households with a package", shown(s.get("households_with_package"), "households_planned")),
                 ("projects built", shown(s.get("projects_built"), "projects_built"))]
        if s.get("gap") is not None and shortfall_proven_least(s):
            cards.append(("gap to the bound", f"{s['gap']:.2%}"))
        elif s.get("shortfall_bound") is not None:  # the value's bound says little until the shortfall is least
            cards.append(("least shortfall any plan can have", shown(s["shortfall_bound"], "shortfall")))
    else:  # no plan: what it was given, not a row of empty cards
        cards = [("status", words), ("counties", f"{len(problem.county_ids):,}"),
                 ("households", f"{len(problem.household_ids):,}"),
                 ("money in the funds", yuan(float(problem.fund_amount.sum())))]
    step = _next_step(s, folder)
    step_line = f"<p class='step'><b>{_esc(tr('Next step:'))}</b> {_words(step)}{tr('.')}</p>" if step else ""
    return ('<div class="cards">' + "".join(f'<div class="card">{_esc(tr(k))}<b>{_esc(v)}</b></div>' for k, v in cards)
            + "</div>" + step_line)


def _budget_section(plan: Plan) -> str:
    """Money available, spent, recalled and carried by source and year, with its sentence."""
    table = budget_table(plan)
    if table.empty:
        return _heading("Money available and spent") + _note(tr("The plan records no budget use (no fund rows)."))
    return (_heading("Money available and spent") + f"<p>{_esc(budget_sentence(table))}</p>" + _table(table)
            + "<p class='muted'>" + tr("Available is the year's own amount and the money carried in from earlier "
                                       "years; recalled is carried money not spent in time.") + "</p>")


def _no_solution_section(context: PlanContext) -> str:
    """A plan with no solution: what it was given (scenario, sizes, money) and what to do next."""
    s, problem = context.plan.summary, context.problem
    sizes = problem.sizes()
    money = pd.DataFrame({"source_id": problem.source_ids[problem.fund_source].astype(str),
                          "year": problem.years[problem.fund_year].astype(int), "amount": problem.fund_amount})
    money = money.groupby(["source_id", "year"], as_index=False)["amount"].sum()
    given = tr("Scenario {scenario}, {start}–{deadline}: {counties:,} counties, {villages:,} villages, "
               "{households:,} households with {packages:,} packages, {projects:,} projects, {money} in "
               "{fund_rows:,} fund rows.").format(scenario=s.get("scenario"), start=s.get("start_year"),
                                                  deadline=s.get("deadline_year"), money=yuan(float(
                                                      problem.fund_amount.sum())), **sizes)
    step = "" if _next_step(s, context.folder) else (
        "<b>" + tr("Next step:") + "</b> " + tr("run `allocator explain {folder}`. ").format(folder=context.folder))
    return (_heading("No plan: what it was given")
            + f"<p>{_esc(given)}</p>" + _table(money)
            + f"<p>{_words(step)}" + _esc(tr("The sections on years, counties, money spent, villages, marginal "
                                           "values and the usual rules need a plan and are left out.")) + "</p>")


def _difficulties_section(found: dict, from_file: bool, folder: Path, tables: dict[str, pd.DataFrame]) -> str:
    """What explain found (or the plan alone shows), counties named from the input ``tables``."""
    regions = region_names(tables)
    parts = [_heading("What stands in the way")]
    if not from_file:
        parts.append('<p class="muted">' + _words(tr(
            "From the plan alone. Run `allocator explain {folder}` to add what it would take, the earliest deadline "
            "per county and marginal values.").format(folder=folder)) + "</p>")
    items = []
    if found.get("sentence"):
        items.append(said(found, tr))
    if found.get("conflict"):
        items.append(said(found["conflict"], tr))
    for county in found.get("counties_off_schedule", []):
        why = tr("; ").join(said(r, tr) for r in county["reasons"]) or tr("no single rule binds it alone")
        if county.get("sentence"):  # the shortfall is at its hat-off year, the incidence at the deadline
            why = why + tr("; ") + said(county, tr)
        items.append(tr("{county} is {households} households short (expected incidence {incidence} against "
                        "{threshold}): {why}").format(county=named(county["county_id"], regions),
                                                      households=f"{county['shortfall_households']:,.1f}",
                                                      incidence=f"{county['expected_incidence']:.1%}",
                                                      threshold=f"{county['threshold']:.1%}", why=why))
    if not items:
        items.append(tr("every county is on schedule ({part} of {whole})").format(part=found.get("counties_total"),
                                                                                   whole=found.get("counties_total")))
    parts.append("<ul>" + "".join(f"<li>{_esc(i)}</li>" for i in items) + "</ul>")
    take = found.get("what_it_would_take")
    if take:
        verified = tr("verified by re-solving with the money added") if take.get("verified") else tr("not verified")
        parts.append(_heading("What it would take", 3) + f"<p>{_esc(said(take, tr))} <span class='muted'>("
                     f"{_esc(verified)}; {_esc(take.get('method'))})</span></p>")
    elif from_file and found.get("counties_off_schedule") and "what_it_would_take" not in found:
        parts.append(_heading("What it would take", 3) + _note(tr("Not worked out: `allocator explain` ran with "
                                                              "--no-money or --extra; run it without them to add it.")))
    earliest = found.get("earliest_deadlines")
    if from_file and not earliest:
        parts.append(_heading("Earliest deadline each county can meet", 3) + _note(tr(
            "Not worked out: `allocator explain` ran with --no-earliest or --extra; run it without them to add it.")))
    if earliest:
        table = pd.DataFrame(earliest["counties"])
        table["earliest_year"] = table["earliest_year"].map(lambda y: title("word.not_by_deadline") if y is None
                                                            else str(int(y)))
        runs = tr("; ").join(tr("{part:,} of {whole} on schedule by {deadline}").format(
            part=r["counties_on_schedule"], whole=found.get("counties_total", "?"), deadline=r["deadline"])
            for r in earliest["runs"])
        parts.append(_heading("Earliest deadline each county can meet with the money there is", 3)
                     + "<p class='muted'>" + _esc(tr("Re-solved with each year as the deadline: {runs}.").format(
                         runs=runs)) + "</p>" + _table(with_names(table, tables)))
    return "".join(parts)


def _marginal_section(values: dict, folder: Path, tables: dict[str, pd.DataFrame]) -> str:
    """The marginal values (:mod:`allocator.optimize.marginal`): the largest, with their method and
    check, regions named from the input ``tables``."""
    rows = pd.DataFrame(values.get("rows", []))
    if rows.empty:
        why = values.get("note") or tr("not computed for this plan")
        return _heading("Marginal values") + _note(
            f"{why[:1].upper()}{why[1:]}" + tr(". `allocator explain {folder}` adds them where the model is small "
                                               "enough.").format(folder=folder))
    checked = (tr(" {agree} of {checked} checked against finite differences (the LP relaxation re-solved with the "
                  "row ±1 %) agree.").format(agree=values["agree"], checked=values["checked"])
               if values.get("checked") else "")
    head = (_heading("Marginal values: where the next unit does most") + "<p class='muted'>"
            + _esc(tr("{method}: {meaning}. In {objective} ({penalty:,.0f}).{checked} All {rows} rows: {file}.")
                   ).format(
                method=_esc(values.get("method")), meaning=_esc(tr(values.get("meaning") or "")),
                objective=_esc(tr(values.get("objective") or "")), penalty=values.get("penalty", 0),
                checked=_esc(checked), rows=len(rows), file=_esc(values.get("file"))) + "</p>")
    rows = rows[rows["value"].abs() > 1e-9].sort_values("value", ascending=False, kind="stable").head(15)
    if rows.empty:
        return head + "<p>" + _esc(tr("No limited resource binds: one more unit of any of them buys nothing.")) + "</p>"
    rows = rows.rename(columns={"value": "marginal_value"})
    for words in ("kind", "unit", "fd_check"):  # words of the catalogue in the language in use
        rows[words] = rows[words].map(lambda word: tr(word) if isinstance(word, str) else word)
    return head + _table(with_names(rows[["kind", "source_id", "region_id", "year", "unit", "marginal_value",
                                          "fd_check"]], tables))


BASELINE_LINES = (("expected exits", "expected_exits", ",.1f"), ("counties on schedule", "counties_on_schedule", "d"),
                  ("shortfall (households)", "total_shortfall", ",.1f"), ("money spent (yuan)", "total_cost", ",.0f"),
                  ("money left idle (yuan)", "money_idle", ",.0f"),
                  ("uplift in exits (optimised − rule)", "uplift_exits", "+,.1f"),
                  ("uplift in counties on schedule", "uplift_counties", "+d"),
                  ("idle money put to work (rule − optimised, yuan)", "uplift_idle", "+,.0f"))


def baselines_table(plan: Plan) -> pd.DataFrame:
    """The optimised plan and each usual rule side by side: one column each, one line per measure."""
    s = plan.summary
    mine = {"expected_exits": s.get("expected_exits"), "counties_on_schedule": s.get("counties_on_schedule"),
            "total_shortfall": s.get("total_shortfall"), "total_cost": s.get("total_cost"),
            "money_idle": money_idle(s)}
    columns = {"optimised": mine} | {row["baseline"]: row for row in s["baselines"]}
    table = {"": [tr(label) for label, _, _ in BASELINE_LINES]}
    for name, values in columns.items():
        table[name] = [(tr("not applicable") if values.get("status") == "not applicable" else "")
                       if values.get(key) is None else format(values[key], spec) for _, key, spec in BASELINE_LINES]
    return pd.DataFrame(table)


def _baselines_section(plan: Plan) -> str:
    rows = plan.summary.get("baselines")
    if plan.summary.get("expected_exits") is None:
        return ""
    if not rows:
        return _heading("Against the usual rules") + _note(tr(
            "Not computed: solve with `allocator solve SCENARIO --baselines` to plan the same data by the usual rules "
            "(proportional, greedy, practice) and compare."))
    skipped = "".join(f"<p class='muted'>{_esc(r['baseline'])}: {_esc(r['message'])}</p>" for r in rows
                      if r["status"] == "not applicable")
    return (_heading("Against the usual rules") + "<p>" + (tr(
        "The same data and constraints planned by the rules used before: proportional (the factor method: each fund "
        "split between counties by their registered poor), greedy (cost-effectiveness, best first) and practice "
        "(each household the catalogue's standard package for its causes of poverty, poor villages first, then by "
        "incidence, years in order, until the funds are spent):")) + "</p>"
            + _png(baselines_chart(rows, plan.summary["expected_exits"])) + _table(baselines_table(plan))
            + skipped)


def _equity_section(plan: Plan) -> str:
    """The range of county exit rates and, per equity rule in force, what it costs (the price of
    fairness, :func:`allocator.explain.difficulties.equity_section`)."""
    found = equity_section(plan)
    if found.get("min_exit_rate") is None:
        return ""
    head = _heading("Equity and the price of fairness") + f"<p>{_esc(said(found, tr))}{tr('.')}</p>"
    if not found["rules"]:
        return head + _note(tr("No equity rule in force: `policy.equity` sets a county floor per registered poor "
                               "household, a cap on the spread of county exit rates or the max-min objective."))
    items = "".join(f"<li>{_esc(said(rule, tr))}</li>" for rule in found["rules"])
    return head + f"<ul>{items}</ul>"


def _targeting_section(plan: Plan) -> str:
    """The registry's expected targeting errors (summary.json ``targeting``) and whether the
    objective weighs exits by the households' poverty probability."""
    facts = plan.summary.get("targeting") or {}
    if not facts.get("expected_inclusion_error") and facts.get("expected_exclusion_error") is None:
        return ""
    weights = tr("Exits are weighed by each household's poverty probability (policy.targeting_weights).") \
        if facts.get("weights") else tr("Exits are not weighed by the poverty probability: every registered "
                                       "household counts as poor (policy.targeting_weights is off).")
    return (_heading("Targeting error") + "<p>" + _esc(tr("Expected targeting error: {text}.").format(
        text=targeting_text(facts))) + " " + _esc(weights) + "</p>")


def _monitor_section(folder: Path) -> str:
    """The plan-against-actual section, from ``allocator monitor``'s self-describing monitor.json."""
    summary = json.loads((folder / "monitor.json").read_text())
    headline = pd.DataFrame(summary.get("headline", []))
    heading = render(summary["title_message"], tr) if summary.get("title_message") else summary.get(
        "title", tr("Plan against actual"))
    sentences = summary.get("messages") or summary.get("sentences", [])
    parts = [f"<h2>{_esc(heading)}</h2>",
             "<ul>" + "".join(f"<li>{_esc(render(s, tr))}</li>" for s in sentences) + "</ul>"]
    if not headline.empty:  # each value in its unit's format: shares as %, yuan whole
        unit_format = {"share": "spent_share", "yuan": "spend"}
        headline["value"] = [shown(v, unit_format.get(u, "")) for v, u in zip(headline["value"], headline["unit"],
                                                                              strict=True)]
        if "message" in headline:
            headline["label"] = [said({"sentence": label, "message": message}, tr) for label, message in
                                 zip(headline["label"], headline["message"], strict=True)]
        headline["unit"] = headline["unit"].replace({"share": ""}).map(lambda unit: tr(unit) if unit else unit)
        parts.append(_table(headline[["label", "value", "unit"]]))
    for chart in summary.get("charts", []):
        path = folder / chart["file"]
        if path.is_file():
            data = base64.b64encode(path.read_bytes()).decode()
            parts.append(f'<img alt="{_esc(chart.get("title", "chart"))}" src="data:image/png;base64,{data}">')
    parts.append("<p class='muted'>" + _esc(tr("Tables in {folder}: households to watch (watch.csv), households off "
                                               "track, villages and counties.").format(folder=folder)) + "</p>")
    return "".join(parts)


COMPARE_PERCENT = ("gap", "sustained_share")


def _compare_item(section: str, item: str, regions: pd.Series) -> str:
    """A compare row's item in words: summary keys by their title, file hashes as fingerprints,
    counties named by ``regions``."""
    if section == "county on schedule":
        return named(item, regions)
    if item == "input_fingerprint":
        return tr("input data fingerprint (first {digits} hex digits)").format(digits=FINGERPRINT_DIGITS)
    if item.startswith("inputs."):
        return tr("fingerprint of {file}").format(file=item.removeprefix("inputs."))
    if item.startswith("money "):
        return tr("fund {fund} (yuan)").format(fund=item.removeprefix("money "))
    if f"summary.{item}" in TITLES and section in ("inputs", "outcomes"):
        return title(f"summary.{item}")
    return item.replace("_", " ").replace(".", ": ", 1).replace(".", ", ")


def _compare_cell(section: str, item: str, value, signed: bool = False, solved: bool = True) -> str:
    """A compare value (``signed``: a change, with its sign) in the format its row reads in; a
    missing outcome of a plan with no solution (``solved`` false) says so."""
    if isinstance(value, bool):
        return tr("yes") if value else tr("no")
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "" if signed else tr("none") if solved or section != "outcomes" else tr("no solution")
    if not isinstance(value, int | float):
        return tr(value) if item == "status" else shown(value)
    sign = "+" if signed and value != 0 else ""
    value = 0 if value == 0 else value  # no "−0"
    if item in COMPARE_PERCENT:
        return format(value, f"{sign}.2%")
    if section.startswith("spend") or item.startswith("money ") or item == "total_cost":
        return format(value, f"{sign},.0f")
    if isinstance(value, int) or float(value).is_integer():
        return format(value, f"{sign},.0f")
    small = item.startswith(("policy", "options")) or abs(value) < 0.05  # a threshold, or a change below 0.1
    return format(value, f"{sign}.3g" if small else f"{sign},.1f")


def _compare_section(plan: Plan, other: Plan, this_name: str, other_name: str, regions: pd.Series) -> str:
    """Every input and outcome that differs (:func:`compare_plans`, A = this plan, B = the
    other): each change is B − A, so a B with less money shows a negative change in money. A
    plan with no solution is said to have none: its outcomes are missing, never zeros."""
    rows = compare_plans(plan, other)
    sentence = inputs_sentence(plan, other, ("A", "B"), digits=FINGERPRINT_DIGITS, translate=tr)
    money = [sum(r["amount"] for r in p.summary.get("budget_use") or []) for p in (plan, other)]
    money_text = (" " + tr("A's funds hold {a}, B's {b}: B − A = {sign}{change}.").format(
        a=yuan(money[0]), b=yuan(money[1]), sign="+" if money[1] >= money[0] else "−",
        change=yuan(abs(money[1] - money[0]))) if all(m > 0 for m in money) else "")
    missing = unsolved(plan, other)
    missing_text = "".join(f"<p class='bad'>{_esc(unsolved_sentence(name))}</p>" for name in missing)
    has = {"A": solved(plan), "B": solved(other)}
    head = "".join(f"<th>{_esc(title(h))}</th>" for h in ("section", "item", "compare.a", "compare.b",
                                                          "compare.change"))
    body = "".join(
        f"<tr><td>{_esc(tr(r.section))}</td><td>{_esc(_compare_item(r.section, r.item, regions))}</td>"
        f"<td{_align(r.a)}>{_esc(_compare_cell(r.section, r.item, r.a, solved=has['A']))}</td>"
        f"<td{_align(r.b)}>{_esc(_compare_cell(r.section, r.item, r.b, solved=has['B']))}</td>"
        f"<td class='n'>{_esc(_compare_cell(r.section, r.item, r.change, signed=True).replace('-', '−'))}</td></tr>"
        for r in rows.astype(object).where(rows.notna(), None).itertuples(index=False))
    return ("<h2>" + _esc(tr("Compared with {other}: B − A").format(other=other_name)) + "</h2><p>"
            + tr("<b>A</b> is this plan ({this}); <b>B</b> is the other plan ({other}). Each change is B − A: negative "
                 "where B has less than this plan.").format(this=_esc(this_name), other=_esc(other_name))
            + f"{_esc(money_text)}</p>{missing_text}<p>{_esc(sentence)}{tr('.')}</p><p class='muted'>"
            + _esc(tr("Inputs and outcomes that differ.")) + "</p>"
            f'<table class="t"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>')


def build_report(plan_dir: str | Path, *, compare_with: str | Path | None = None,
                 context: PlanContext | None = None, lang: str = "en", near_households: float = NEAR_HOUSEHOLDS,
                 near_yuan: float = NEAR_YUAN) -> str:
    """The report of a plan folder as one self-contained HTML page, in ``lang`` (``en`` or
    ``zh``; :class:`ValueError` for another). Near misses: counties within ``near_households``
    households of their threshold, households within ``near_yuan`` yuan of the poverty line
    (:func:`near_line`: when a progress record was monitored into the folder).

    Reads ``difficulties.json`` when ``allocator explain`` wrote it; otherwise works out the
    difficulties from the plan alone (no re-solves). Adds the plan-against-actual section when
    ``allocator monitor`` wrote ``monitor/monitor.json`` into the plan folder. Raises :class:`InputError` when the
    folder is not a plan or its scenario changed since it was made. Charts in Chinese need a CJK
    font (:func:`cjk_font`); without one their labels stay English and the page says so."""
    lang = check_language(lang)
    font = cjk_font() if lang != "en" else None
    charts = lang if lang == "en" or font else "en"
    with language(lang, charts=charts), chart_font(font):
        return _build(plan_dir, compare_with, context, no_font=lang != charts, near_households=near_households,
                      near_yuan=near_yuan)


def _near_line_section(folder: Path, within: float, tables: dict[str, pd.DataFrame]) -> str:
    """Households within ``within`` yuan of the poverty line (:func:`near_line`), villages and
    counties named from the input ``tables``, or a note why not."""
    heading = "<h3>" + _esc(tr("Households within {within} of the poverty line").format(within=yuan(within))) + "</h3>"
    near = near_line(folder, within)
    if near is None:
        return heading + _note(tr(
            "Not shown: the plan's tables carry no household incomes. `allocator monitor {folder} RECORD_DIR` reads a "
            "progress record's observed incomes into the plan folder; the report then lists these households.")
            .format(folder=folder))
    if near.empty:
        return heading + "<p>" + _esc(tr("No household's observed income is within {within} of the line.").format(
            within=yuan(within))) + "</p>"
    return heading + _table(with_names(near, tables))


def _build(plan_dir: str | Path, compare_with: str | Path | None, context: PlanContext | None, no_font: bool,
           near_households: float, near_yuan: float) -> str:
    context = context or load_plan_context(plan_dir)
    plan, problem = context.plan, context.problem
    regions = region_names(context.tables)
    path = context.folder / "difficulties.json"
    from_file = path.is_file()
    found = json.loads(path.read_text()) if from_file else difficulties(context.formulation(), plan)
    s = plan.summary
    heading = tr("allocator plan: {scenario}").format(scenario=s.get("scenario"))
    fingerprint = plan_inputs(s)[:1]
    parts = [f"<!DOCTYPE html><html lang='{HTML_LANG[current()]}'><head><meta charset='utf-8'>"
             f"<title>{_esc(heading)}</title><style>{STYLE}</style></head><body><h1>{_esc(heading)}</h1>"
             "<p class='muted'>" + _esc(tr("{start}–{deadline}, method {method} on {backend}, from {source}")).format(
                 start=_esc(s.get("start_year")), deadline=_esc(s.get("deadline_year")), method=_esc(s.get("method")),
                 backend=_esc(s.get("backend")), source=_esc(context.scenario.source))
             + (_esc(tr("; input data fingerprint {fingerprint}")).format(
                 fingerprint=_esc(fingerprint[0][:FINGERPRINT_DIGITS])) if fingerprint else "")
             + "</p>", _headline(plan, problem, context.folder)]
    if no_font:
        parts.insert(1, _note(tr("No font with Chinese characters was found on this machine, so the charts are "
                                 "labelled in English. Install one (on Debian: apt-get install fonts-noto-cjk).")))
    if s.get("message"):
        message = str(s["message"]).rstrip(".")
        parts.append(f"<p>{_esc(message[:1].upper() + message[1:])}{tr('.')}</p>")
    if s.get("expected_exits") is None:
        parts.append(_no_solution_section(context))
    else:
        path_table = poor_by_year(plan, problem)
        incidence = county_incidence_by_year(plan, problem)
        hats = hat_off_years(incidence)
        by_year = hats["hat_off_year"].value_counts().sort_index()
        hat_text = tr("; ").join(tr("{count:,} in {year}").format(count=n, year=int(y)) for y, n in by_year.items())
        missing = int(hats["hat_off_year"].isna().sum())
        reached = hats.dropna(subset=["hat_off_year"])
        late = int((reached["hat_off_year"].astype(int) > reached["planned_hat_off_year"].astype(int)).sum())
        sustained = s.get("sustained_share")
        near = near_misses(plan, problem, near_households)
        spend = spend_table(plan, "category").rename_axis(columns=None)
        spend["total"] = spend.sum(axis=1)
        parts += [_budget_section(plan),
                  _heading("Expected poor by year against the targets"), _png(poor_by_year_chart(path_table)),
                  _table(path_table.dropna(axis=1, how="all")),  # no empty target column without targets
                  "<p>" + tr("Sustained exits (still out {years} years after the deadline): {sustained} of {exits} "
                             "expected exits").format(years=problem.policy.sustain_years,
                                                      sustained=shown(s["sustained_exits"], "expected_exits"),
                                                      exits=shown(s["expected_exits"], "expected_exits"))
                  + (f" ({shown(sustained, 'still_poor_share')})" if sustained is not None else "") + tr(".") + "</p>",
                  _heading("Counties against their threshold"),
                  "<p>" + _esc(tr("Counties taking off the hat, by year: {years}").format(
                      years=hat_text or tr("none")))
                  + (tr("; ") + "<span class='bad'>" + _esc(tr("{count:,} not by {deadline}").format(
                      count=missing, deadline=problem.deadline_year)) + "</span>" if missing else "")
                  + (tr("; ") + "<span class='bad'>" + _esc(tr("{count:,} after their planned year").format(
                      count=late)) + "</span>" if late else "")
                  + tr(".") + "</p>", _png(incidence_chart(incidence, regions)),
                  _png(counties_against_threshold(plan.counties, names=regions)),
                  "<h3>" + _esc(tr("Counties within {within:.0f} households of their threshold at the deadline")
                                .format(within=near_households)) + "</h3>"
                  + (_table(with_names(near, context.tables)) if len(near) else
                     "<p>" + _esc(tr("No county is within {within:.0f} households of its threshold.").format(
                         within=near_households)) + "</p>"),
                  _near_line_section(context.folder, near_yuan, context.tables),
                  _asset_section(context),
                  _equity_section(plan), _targeting_section(plan),
                  _heading("Money spent"), _png(money_by_year(plan.funding)),
                  _png(money_by_year(plan.funding, by="source_id")),
                  _table(spend.reset_index(), money=tuple(spend.columns)),
                  _heading("Villages"), _png(village_map(village_table(plan, context.tables["villages"])))]
    values = found.get("marginal_values") or marginal_section(plan)
    solved = s.get("expected_exits") is not None
    parts += [_difficulties_section(found, from_file, context.folder, context.tables),
              _marginal_section(values, context.folder, context.tables) if solved else "", _baselines_section(plan)]
    if (context.folder / MONITOR_FOLDER / "monitor.json").is_file():
        parts.append(_monitor_section(context.folder / MONITOR_FOLDER))
    elif s.get("expected_exits") is not None:
        parts.append(_heading("Plan against actual") + _note(tr(
            "No progress record yet: `allocator monitor {folder} RECORD_DIR` adds how the plan is going.").format(
            folder=context.folder)))
    if compare_with is not None:
        parts.append(_compare_section(plan, Plan.read(compare_with), str(context.folder), str(compare_with),
                                      regions))
    parts.append("</body></html>")
    return "\n".join(parts)

__all__ = ["asset_income_table", "budget_sentence", "budget_table", "build_report", "county_incidence_by_year",
           "hat_off_years", "near_line", "near_misses", "poor_by_year", "spend_table", "village_table", "with_names"]
