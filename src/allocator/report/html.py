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
from pathlib import Path

import numpy as np
import pandas as pd

from allocator.explain.difficulties import difficulties, marginal_section
from allocator.inputs.scenario import NATIONAL_STILL_POOR
from allocator.model.problem import Problem
from allocator.optimize.baselines import money_idle
from allocator.plan.compare import compare_plans, inputs_sentence
from allocator.plan.context import PlanContext, load_plan_context
from allocator.plan.plan import Plan
from allocator.report.charts import (
    NOTHING,
    baselines_chart,
    counties_against_threshold,
    incidence_chart,
    money_by_year,
    poor_by_year_chart,
    save_figure,
    village_map,
)

# Share of the end-2014 stock of rural poor still poor at the end of each year (DOMAIN.md §7.5,
# derived from NBS counts); the report rescales it to the stock at the start of the plan.
MONITOR_FOLDER = "monitor"  # allocator monitor's default output inside the plan folder


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
                         "target": (path["target"] * path["registered_poor"]).to_numpy(),
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


def _png(fig) -> str:
    buffer = io.BytesIO()
    save_figure(fig, buffer, format="png", dpi=100)
    return f'<img alt="chart" src="data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()}">'


def _table(frame: pd.DataFrame, money: tuple[str, ...] = ()) -> str:
    shown = frame.copy()
    for column in shown.columns:
        if column in money or shown[column].dtype.kind == "f":
            digits = 0 if column in money else 3
            shown[column] = shown[column].map(lambda v, d=digits: "" if pd.isna(v) else f"{v:,.{d}f}")
    return shown.to_html(index=False, escape=True, border=0, classes="t")


def _esc(text) -> str:
    return html.escape(str(text))


STYLE = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1000px;color:#222}
h1{margin-bottom:0}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
.cards{display:flex;flex-wrap:wrap;gap:.8em}.card{background:#f4f6f8;border-radius:6px;padding:.6em 1em;min-width:9em}
.card b{display:block;font-size:1.4em}.muted{color:#666}.bad{color:#b00}.good{color:#070}
table.t{border-collapse:collapse;font-size:.85em;margin:.5em 0}table.t td,table.t th{padding:.2em .6em;
border-bottom:1px solid #eee;text-align:right}img{max-width:100%}li{margin:.3em 0}"""


def _headline(plan: Plan) -> str:
    s = plan.summary

    def number(key: str, spec: str = ",.0f") -> str:
        return "n/a" if s.get(key) is None else format(s[key], spec)

    gap = "n/a" if s.get("gap") is None else f"{s['gap']:.2%}"
    on = "n/a" if s.get("counties_on_schedule") is None else f"{s['counties_on_schedule']} of {s['counties_total']}"
    cards = [("status", s["status"] + (f" (stopped by {s['stopped_by']})" if s.get("stopped_by") else "")),
             ("expected exits", number("expected_exits")), ("bound / gap", f"{number('bound')} / {gap}"),
             ("counties on schedule", on), ("shortfall (households)", number("total_shortfall", ",.1f")),
             ("money spent (yuan)", number("total_cost")),
             ("households with a package", number("households_with_package", ",")),
             ("projects built", number("projects_built", ","))]
    return '<div class="cards">' + "".join(f'<div class="card">{_esc(k)}<b>{_esc(v)}</b></div>'
                                           for k, v in cards) + "</div>"


def _difficulties_section(found: dict, from_file: bool) -> str:
    parts = ["<h2>What stands in the way</h2>"]
    if not from_file:
        parts.append('<p class="muted">From the plan alone. Run <code>allocator explain PLAN_DIR</code> to add what it '
                     "would take, the earliest deadline per county and marginal values.</p>")
    items = []
    if found.get("sentence"):
        items.append(found["sentence"])
    if found.get("conflict"):
        items.append(found["conflict"]["sentence"])
    for county in found.get("counties_off_schedule", []):
        why = "; ".join(r["sentence"] for r in county["reasons"]) or "no single rule binds it alone"
        items.append(f"{county['county_id']} is {county['shortfall_households']:,.1f} households short (expected "
                     f"incidence {county['expected_incidence']:.2%} against {county['threshold']:.0%}): {why}")
    if not items:
        items.append(f"every county is on schedule ({found.get('counties_total')} of {found.get('counties_total')})")
    parts.append("<ul>" + "".join(f"<li>{_esc(i)}</li>" for i in items) + "</ul>")
    take = found.get("what_it_would_take")
    if take:
        verified = "verified by re-solving with the money added" if take.get("verified") else "not verified"
        parts.append(f"<h3>What it would take</h3><p>{_esc(take['sentence'])} <span class='muted'>({_esc(verified)}; "
                     f"{_esc(take.get('method'))})</span></p>")
    earliest = found.get("earliest_deadlines")
    if earliest:
        table = pd.DataFrame(earliest["counties"])
        table["earliest_year"] = table["earliest_year"].map(lambda y: "not by the deadline" if y is None else int(y))
        runs = "; ".join(f"{r['counties_on_schedule']} counties by {r['deadline']}" for r in earliest["runs"])
        parts.append(f"<h3>Earliest deadline each county can meet with the money there is</h3>"
                     f"<p class='muted'>Re-solved with each year as the deadline: {_esc(runs)}.</p>" + _table(table))
    return "".join(parts)


def _marginal_section(values: dict) -> str:
    """The marginal values (:mod:`allocator.optimize.marginal`): the largest, with their method and check."""
    rows = pd.DataFrame(values.get("rows", []))
    if rows.empty:
        return ""
    checked = (f" {values['agree']} of {values['checked']} checked against finite differences (the LP relaxation "
               "re-solved with the row ±1 %) agree." if values.get("checked") else "")
    head = (f"<h2>Marginal values: where the next unit does most</h2><p class='muted'>{_esc(values.get('method'))}: "
            f"{_esc(values.get('meaning'))}. In {_esc(values.get('objective'))} ({values.get('penalty', 0):,.0f})."
            f"{_esc(checked)} All {len(rows)} rows: {_esc(values.get('file'))}.</p>")
    rows = rows[rows["value"].abs() > 1e-9].sort_values("value", ascending=False, kind="stable").head(15)
    if rows.empty:
        return head + "<p>No limited resource binds: one more unit of any of them buys nothing.</p>"
    return head + _table(rows[["kind", "source_id", "region_id", "year", "unit", "value", "fd_check"]])


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
    table = {"": [label for label, _, _ in BASELINE_LINES]}
    for name, values in columns.items():
        table[name] = [("n/a" if values.get("status") == "not applicable" else "") if values.get(key) is None
                       else format(values[key], spec) for _, key, spec in BASELINE_LINES]
    return pd.DataFrame(table)


def _baselines_section(plan: Plan) -> str:
    rows = plan.summary.get("baselines")
    if not rows or plan.summary.get("expected_exits") is None:
        return ""
    skipped = "".join(f"<p class='muted'>{_esc(r['baseline'])}: {_esc(r['message'])}</p>" for r in rows
                      if r["status"] == "not applicable")
    return ("<h2>Against the usual rules</h2><p>The same data and constraints planned by the rules used before: "
            "proportional (the factor method: each fund split between counties by their registered poor), greedy "
            "(cost-effectiveness, best first) and practice (each household the catalogue's standard package for "
            "its causes of poverty, poor villages first, then by incidence, years in order, until the funds are "
            "spent):</p>" + _png(baselines_chart(rows, plan.summary["expected_exits"])) + _table(baselines_table(plan))
            + skipped)


def _monitor_section(folder: Path) -> str:
    """The plan-against-actual section, from ``allocator monitor``'s self-describing monitor.json."""
    summary = json.loads((folder / "monitor.json").read_text())
    headline = pd.DataFrame(summary.get("headline", []))
    parts = [f"<h2>{_esc(summary.get('title', 'Plan against actual'))}</h2>",
             "<ul>" + "".join(f"<li>{_esc(s)}</li>" for s in summary.get("sentences", [])) + "</ul>"]
    if not headline.empty:
        parts.append(_table(headline[["label", "value", "unit"]]))
    for chart in summary.get("charts", []):
        path = folder / chart["file"]
        if path.is_file():
            data = base64.b64encode(path.read_bytes()).decode()
            parts.append(f'<img alt="{_esc(chart.get("title", "chart"))}" src="data:image/png;base64,{data}">')
    parts.append(f"<p class='muted'>Tables in {_esc(folder)}: households to watch (watch.csv), households off "
                 "track, villages and counties.</p>")
    return "".join(parts)


def _compare_section(plan: Plan, other: Plan, other_name: str) -> str:

    table = compare_plans(plan, other).rename(columns={"a": "this plan", "b": other_name})
    sentence = inputs_sentence(plan, other, ("This plan", other_name))
    return (f"<h2>Compared with {_esc(other_name)}</h2><p>{_esc(sentence)}.</p>"
            "<p class='muted'>Inputs and outcomes that differ.</p>"
            + table.to_html(index=False, escape=True, border=0, classes="t"))


def build_report(plan_dir: str | Path, *, compare_with: str | Path | None = None,
                 context: PlanContext | None = None) -> str:
    """The report of a plan folder as one self-contained HTML page.

    Reads ``difficulties.json`` when ``allocator explain`` wrote it; otherwise works out the
    difficulties from the plan alone (no re-solves). Adds the plan-against-actual section when
    ``allocator monitor`` wrote ``monitor/monitor.json`` into the plan folder. Raises :class:`InputError` when the
    folder is not a plan or its scenario changed since it was made."""
    context = context or load_plan_context(plan_dir)
    plan, problem = context.plan, context.problem
    path = context.folder / "difficulties.json"
    from_file = path.is_file()
    found = json.loads(path.read_text()) if from_file else difficulties(context.formulation(), plan)
    s = plan.summary
    title = f"allocator plan: {s.get('scenario')}"
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{_esc(title)}</title>"
             f"<style>{STYLE}</style></head><body><h1>{_esc(title)}</h1>"
             f"<p class='muted'>{_esc(s.get('start_year'))}–{_esc(s.get('deadline_year'))}, method "
             f"{_esc(s.get('method'))} on {_esc(s.get('backend'))}, from {_esc(context.scenario.source)}</p>",
             _headline(plan)]
    if s.get("message"):
        parts.append(f"<p>{_esc(s['message'])}</p>")
    if s.get("expected_exits") is not None:
        path_table = poor_by_year(plan, problem)
        incidence = county_incidence_by_year(plan, problem)
        hats = hat_off_years(incidence)
        by_year = hats["hat_off_year"].value_counts().sort_index()
        hat_text = "; ".join(f"{n} in {y}" for y, n in by_year.items())
        missing = int(hats["hat_off_year"].isna().sum())
        late = int((hats["hat_off_year"].fillna(problem.deadline_year + 1) > hats["planned_hat_off_year"]).sum())
        sustained = s.get("sustained_share")
        parts += ["<h2>Expected poor by year against the targets</h2>", _png(poor_by_year_chart(path_table)),
                  _table(path_table, money=("expected_poor", "target", "national_path", "allowed_by_thresholds")),
                  f"<p>Sustained exits (still out {problem.policy.sustain_years} years after the deadline): "
                  f"{s['sustained_exits']:,.0f} of {s['expected_exits']:,.0f} expected exits"
                  + (f" ({sustained:.1%})" if sustained is not None else "") + ".</p>",
                  "<h2>Counties against their threshold</h2>",
                  f"<p>Counties taking off the hat, by year: {_esc(hat_text or 'none')}"
                  + (f"; <span class='bad'>{missing} not by {problem.deadline_year}</span>" if missing else "")
                  + (f"; <span class='bad'>{late} after their planned year</span>" if late else "")
                  + ".</p>", _png(incidence_chart(incidence)), _png(counties_against_threshold(plan.counties)),
                  "<h2>Money</h2>", _png(money_by_year(plan.funding)),
                  _png(money_by_year(plan.funding, by="source_id")),
                  _table(spend_table(plan, "category").reset_index(), money=tuple(plan.funding["category"].unique())),
                  "<h2>Villages</h2>", _png(village_map(village_table(plan, context.tables["villages"])))]
    values = found.get("marginal_values") or marginal_section(plan)
    parts += [_difficulties_section(found, from_file), _marginal_section(values), _baselines_section(plan)]
    if (context.folder / MONITOR_FOLDER / "monitor.json").is_file():
        parts.append(_monitor_section(context.folder / MONITOR_FOLDER))
    if compare_with is not None:
        parts.append(_compare_section(plan, Plan.read(compare_with), str(compare_with)))
    parts.append("</body></html>")
    return "\n".join(parts)


__all__ = ["build_report", "county_incidence_by_year", "hat_off_years", "poor_by_year", "spend_table",
           "village_table"]
