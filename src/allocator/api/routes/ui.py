"""``GET /ui``: the planner's web page, in English or Chinese.

One server-rendered page and a little plain JavaScript (``allocator/api/static/ui.js``): the
planner signs in with an API key, which the page keeps in the tab's ``sessionStorage`` only
(no cookie, nothing stored by the server), and every action is a call to the JSON API with
``Authorization: Bearer KEY``: the plans of the key's region (``GET /v1/plans``, their
``/summary``, region names from ``/v1/regions``), a submission (``POST /v1/plans``, a preset
as JSON or the scenario YAML and tables as multipart), its progress (``GET /v1/plans/{id}``
polled), the report and the workbook (``/report`` and ``/export.xlsx`` in the page's language),
and two plans side by side. Errors shown are the API's own bodies (``detail`` and each issue).
Every word of the page is a message of the catalogue (``report/locale/*/allocator.po``).
"""

from __future__ import annotations

import html
import json
import secrets
from functools import cache
from importlib.resources import files
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse

from allocator.api.deps import SettingsDep
from allocator.api.routes.plans import chosen_language
from allocator.api.schemas import SCENARIO_EXAMPLE, Language
from allocator.api.settings import Settings
from allocator.report.html import HTML_LANG
from allocator.report.i18n import LANGUAGES, language, tr
from allocator.synth import PRESETS, PROVINCE_PRESETS

router = APIRouter(tags=["ui"])

LANGUAGE_NAMES = {"en": "English", "zh": "中文"}  # each in its own language, as a switch shows them
# Only the page's own script runs (its nonce) and talks only to this service; the report shown in the
# page (a blob: frame, sandboxed) keeps its inline style and data: charts.
POLICY = ("default-src 'none'; script-src 'nonce-{nonce}'; style-src 'unsafe-inline'; img-src data:; "
          "connect-src 'self'; frame-src blob:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
# The words the script writes (statuses, column titles, labels of numbers), by key; English is the message id.
SCRIPT_WORDS = {
    "status.queued": "queued", "status.running": "running", "status.done": "done", "status.failed": "failed",
    "status.cancelled": "cancelled",
    "plan_status.optimal": "optimal", "plan_status.feasible": "a plan, not proven best",
    "plan_status.infeasible": "no plan: the rules cannot all hold", "plan_status.error": "no plan found",
    "report": "Report", "workbook": "Workbook", "watch": "Watch", "busy": "Working…",
    "no_plans": "No plans yet in this key's region.",
    "no_answer": "The service did not answer; check the connection and try again.",
    "http_error": "The service answered with an error, status",
    "row": "row", "column": "column", "field": "field", "expected": "expected", "found": "found",
    "phase": "phase", "elapsed": "seconds", "submitted": "Submitted plan",
    "choose_two": "Choose two plans that have a solution.",
    "metric.expected_exits": "Expected exits", "metric.sustained_exits": "Sustained exits",
    "metric.counties_on_schedule": "Counties on schedule", "metric.total_shortfall": "Shortfall (households)",
    "metric.total_cost": "Money spent (yuan)", "metric.money_available": "Money in the funds (yuan)",
    "metric.gap": "Gap to the bound",
}


def page(lang: str, settings: Settings, nonce: str) -> str:
    """The page in ``lang``: its words from the catalogue, the presets this service accepts, its
    script marked with ``nonce`` (the only script the page's security policy lets run)."""
    with language(lang):
        return _page(lang, settings, nonce)


@router.get("/ui", response_class=HTMLResponse, include_in_schema=False)
def planner_page(settings: SettingsDep, lang: Annotated[Language | None, Query()] = None) -> HTMLResponse:
    """The planner's web page in ``lang`` (en or zh; default the service's ALLOCATOR_LANG);
    another language is a 422 like the API's."""
    nonce = secrets.token_urlsafe(16)
    return HTMLResponse(page(chosen_language(lang, settings), settings, nonce),
                        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer",
                                 "Content-Security-Policy": POLICY.format(nonce=nonce)})


@cache
def _static(name: str) -> str:
    return files("allocator.api").joinpath("static", name).read_text(encoding="utf-8")


def _t(text: str) -> str:
    """A message in the language in use, escaped for HTML."""
    return html.escape(tr(text))


def _presets(settings: Settings) -> str:
    """The presets' options, the small ones first: those within the service's household limit."""
    sizes = {name: spec["households"] for name, spec in {**PRESETS, **PROVINCE_PRESETS}.items()
             if spec["households"] <= settings.max_households}
    default, size = SCENARIO_EXAMPLE["generate"]["preset"], _t("about {households:,} households")
    return "".join(f"<option value='{html.escape(name)}'{' selected' if name == default else ''}>"
                   f"{html.escape(name)} ({size.format(households=households)})</option>"
                   for name, households in sorted(sizes.items(), key=lambda item: item[1]))


def _page(lang: str, settings: Settings, nonce: str) -> str:
    words = json.dumps({key: tr(text) for key, text in SCRIPT_WORDS.items()}, ensure_ascii=False).replace("</", "<\\/")
    switch = " · ".join(f"<b>{LANGUAGE_NAMES[code]}</b>" if code == lang else
                        f"<a href='?lang={code}' lang='{HTML_LANG[code]}'>{LANGUAGE_NAMES[code]}</a>"
                        for code in LANGUAGES)
    example = SCENARIO_EXAMPLE
    columns = "".join(f"<th>{_t(text)}</th>" for text in (
        "Plan", "Region", "Status", "Households", "Expected exits", "Gap to the bound", "Money spent (yuan)",
        "Submitted", ""))
    return f"""<!DOCTYPE html>
<html lang="{HTML_LANG[lang]}" data-lang="{lang}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_t("allocator: plans")}</title><style>{_static("ui.css")}</style></head><body>
<header><h1>{_t("allocator: plans")}</h1><nav id="languages">{switch}</nav>
<button id="sign-out" type="button" hidden>{_t("Sign out")}</button></header>
<div id="error" role="alert" hidden></div>
<section id="sign-in"><h2>{_t("Sign in")}</h2>
<p class="muted">{_t("Give your API key. The page keeps it in this browser tab only, until you sign out or close "
                     "the tab.")}</p>
<form id="sign-in-form"><label>{_t("API key")} <input id="key" type="password" autocomplete="off" required
 size="60"></label> <button type="submit">{_t("Sign in")}</button></form></section>
<main id="signed-in" hidden>
<section id="plans"><h2>{_t("Plans of your region")}</h2>
<button id="refresh" type="button">{_t("Refresh")}</button>
<table id="plan-table"><thead><tr>{columns}</tr></thead><tbody></tbody></table>
<p id="no-plans" class="muted" hidden></p></section>
<section id="submit"><h2>{_t("Submit a scenario")}</h2>
<form id="preset-form"><fieldset><legend>{_t("A synthetic preset")}</legend>
<label>{_t("Preset")} <select id="preset">{_presets(settings)}</select></label>
<label>{_t("Seed")} <input id="seed" type="number" value="{example['generate']['seed']}" min="0" required></label>
<label>{_t("Start year")} <input id="start-year" type="number" value="{example['start_year']}" required></label>
<label>{_t("Deadline year")} <input id="deadline-year" type="number" value="{example['deadline_year']}"
 required></label>
<label>{_t("Solver time limit (seconds)")} <input id="time-limit" type="number"
 value="{example['solver']['time_limit']}" min="1" required></label>
<button type="submit">{_t("Submit the preset")}</button></fieldset></form>
<form id="upload-form"><fieldset><legend>{_t("Your scenario and tables")}</legend>
<label>{_t("Scenario YAML")} <input id="scenario-file" type="file" accept=".yaml,.yml"></label>
<label>{_t("Tables (NAME.csv or NAME.parquet)")} <input id="table-files" type="file" accept=".csv,.parquet"
 multiple></label>
<label><input id="explain" type="checkbox"> {_t("Also explain the plan (slower: it re-solves)")}</label>
<button type="submit">{_t("Upload and submit")}</button></fieldset></form></section>
<section id="watch" hidden><h2>{_t("Progress")}</h2><p id="watch-plan"></p>
<progress id="watch-bar"></progress><p id="watch-status" aria-live="polite"></p></section>
<section id="compare"><h2>{_t("Compare two plans")}</h2>
<p class="muted">{_t("Each change is B − A: negative where plan B has less than plan A.")}</p>
<form id="compare-form"><label>{_t("Plan A")} <select id="plan-a"></select></label>
<label>{_t("Plan B")} <select id="plan-b"></select></label>
<button type="submit">{_t("Compare")}</button></form>
<table id="compare-table" hidden><thead><tr><th></th><th>A</th><th>B</th><th>B − A</th></tr></thead>
<tbody></tbody></table></section>
<section id="report" hidden><h2>{_t("Report")}</h2><p><a id="report-link">{_t("Download the report (HTML)")}</a></p>
<iframe id="report-frame" title="{_t('Report')}" sandbox></iframe></section>
</main>
<script type="application/json" id="words">{words}</script>
<script nonce="{nonce}">{_static("ui.js")}</script>
</body></html>
"""
