"use strict";
// The planner's page (GET /ui): every action is a call to the JSON API with the key, which is kept in
// this tab's sessionStorage only. Data is written with textContent, never as HTML.
const WORDS = JSON.parse(document.getElementById("words").textContent);
const LANG = document.documentElement.dataset.lang;
const LOCALE = document.documentElement.lang;
const KEY = "allocator.key";
const FINISHED = ["done", "failed", "cancelled"];
const POLL_MS = 1000;
const METRICS = ["expected_exits", "sustained_exits", "counties_on_schedule", "total_shortfall", "total_cost",
                 "money_available", "gap"];
const whole = new Intl.NumberFormat(LOCALE, {maximumFractionDigits: 0});
const share = new Intl.NumberFormat(LOCALE, {style: "percent", maximumFractionDigits: 2});
const $ = (id) => document.getElementById(id);
let regions = new Map();  // region id -> name
let summaries = new Map();  // plan id -> summary.json, for the plans that have one
let watched = null;  // the timer of the plan being watched

/** Calls the API with the key; a non-2xx answer is thrown as an Error carrying the API's detail and issues. */
async function api(path, options = {}) {
  let response;
  try {
    response = await fetch(path, {...options, headers: {...(options.headers || {}),
                                                        Authorization: `Bearer ${sessionStorage.getItem(KEY)}`}});
  } catch (_) {
    throw Object.assign(new Error(WORDS.no_answer), {issues: []});
  }
  if (response.ok) return response;
  let body = null;
  try { body = await response.json(); } catch (_) { /* not the API's JSON: say the status only */ }
  throw Object.assign(new Error(body && body.detail ? body.detail : `${WORDS.http_error} ${response.status}`),
                      {status: response.status, issues: (body && body.issues) || []});
}

/** One problem of a 422 as the API states it: where (file, row, column), what, and what was expected. */
function issueText(issue) {
  const where = [issue.file, issue.row != null && `${WORDS.row} ${issue.row}`,
                 issue.column && `${WORDS.column} ${issue.column}`, issue.key && `${WORDS.field} ${issue.key}`];
  const more = [issue.expected && `${WORDS.expected}: ${issue.expected}`, issue.found && `${WORDS.found}: ${issue.found}`];
  const said = more.filter(Boolean).join("; ");
  return `${where.filter(Boolean).join(", ")}: ${issue.message}${said ? ` (${said})` : ""}`;
}

function showError(error) {
  const box = $("error");
  const head = document.createElement("p");
  head.textContent = error.message;
  box.replaceChildren(head);
  if (error.issues && error.issues.length) {
    const list = document.createElement("ul");
    for (const issue of error.issues) list.append(cell("li", issueText(issue)));
    box.append(list);
  }
  box.hidden = false;
}

function clearError() { $("error").hidden = true; $("error").replaceChildren(); }

function cell(tag, text, className) {
  const element = document.createElement(tag);
  element.textContent = text == null ? "" : text;
  if (className) element.className = className;
  return element;
}

const regionText = (id) => (regions.get(id) ? `${regions.get(id)} (${id})` : id);
const planText = (plan) => `${plan.scenario} · ${plan.plan_id.slice(0, 8)}`;
const shown = (metric, value) => (value == null ? "–" : metric === "gap" ? share.format(value) : whole.format(value));
/** A change as shown (rounded as its values are), with its sign: "+2", "−735,080", "0". */
function signed(metric, value) {
  const rounded = metric === "gap" ? Math.round(value * 1e4) / 1e4 : Math.round(value);
  return (rounded > 0 ? "+" : rounded < 0 ? "−" : "") + shown(metric, Math.abs(rounded));
}

/** A button that runs ``action`` and shows the API's error if it fails; it is disabled meanwhile. */
function button(text, action) {
  const element = cell("button", text);
  element.type = "button";
  element.addEventListener("click", async () => {
    element.disabled = true;
    element.textContent = WORDS.busy;
    clearError();
    try { await action(); } catch (error) { showError(error); }
    element.disabled = false;
    element.textContent = text;
  });
  return element;
}

async function loadRegions() {
  const body = await (await api("/v1/regions")).json();
  regions = new Map(body.regions.map((region) => [region.region_id, region.name]));
}

async function summaryOf(plan) {
  if (!["done", "failed"].includes(plan.status)) return null;
  if (!summaries.has(plan.plan_id)) {
    try {
      const summary = await (await api(`/v1/plans/${plan.plan_id}/summary`)).json();
      const budget = summary.budget_use || [];  // the funds' own amounts, as allocator sweep counts them
      summary.money_available = budget.length ? budget.reduce((sum, row) => sum + row.amount, 0) : null;
      summaries.set(plan.plan_id, summary);
    } catch (_) {
      return null;  // a failed plan that kept no plan folder
    }
  }
  return summaries.get(plan.plan_id);
}

/** The plans of the key's region with their headline numbers; fills the table and the compare lists. */
async function loadPlans() {
  const plans = (await (await api("/v1/plans?limit=50")).json()).plans;
  const found = await Promise.all(plans.map(summaryOf));
  const rows = plans.map((plan, index) => planRow(plan, found[index]));
  $("plan-table").tBodies[0].replaceChildren(...rows);
  $("no-plans").textContent = WORDS.no_plans;
  $("no-plans").hidden = plans.length > 0;
  const solved = plans.filter((plan, index) => found[index] && found[index].expected_exits != null);
  for (const [id, pick] of [["plan-a", 1], ["plan-b", 0]]) {
    const chosen = $(id).value;
    $(id).replaceChildren(...solved.map((plan) => Object.assign(cell("option", planText(plan)), {value: plan.plan_id})));
    $(id).value = solved.some((plan) => plan.plan_id === chosen) ? chosen : (solved[Math.min(pick, solved.length - 1)] || {}).plan_id || "";
  }
}

function planRow(plan, summary) {
  const row = document.createElement("tr");
  row.dataset.plan = plan.plan_id;
  const numbers = summary || plan.progress;
  const status = WORDS[`status.${plan.status}`] || plan.status;
  const outcome = plan.plan_status ? ` (${WORDS[`plan_status.${plan.plan_status}`] || plan.plan_status})` : "";
  const failure = plan.error ? ` – ${plan.error.detail}` : "";  // the API's own words for why it failed
  row.append(cell("td", planText(plan)), cell("td", regionText(plan.region)),
             cell("td", status + outcome + failure, "status"),
             cell("td", whole.format(plan.households), "n"),
             cell("td", shown("expected_exits", numbers.expected_exits), "n"),
             cell("td", shown("gap", numbers.gap), "n"),
             cell("td", shown("total_cost", summary && summary.total_cost), "n"),
             cell("td", plan.created_at.replace("T", " ").slice(0, 16)));
  const actions = cell("td", "", "actions");
  if (summary && summary.expected_exits != null) {
    actions.append(button(WORDS.report, () => openReport(plan.plan_id)),
                   button(WORDS.workbook, () => downloadWorkbook(plan.plan_id)));
  } else if (!FINISHED.includes(plan.status)) {
    actions.append(button(WORDS.watch, () => watch(plan.plan_id)));
  }
  row.append(actions);
  return row;
}

/** Polls the plan's status until it is finished, showing its phase and numbers so far. */
async function watch(planId) {
  clearTimeout(watched);
  $("watch").hidden = false;
  let plan;
  try {
    plan = await (await api(`/v1/plans/${planId}`)).json();
  } catch (error) {
    showError(error);
    return;
  }
  const progress = plan.progress;
  $("watch-plan").textContent = `${WORDS.submitted}: ${planText(plan)} · ${regionText(plan.region)}`;
  const parts = [WORDS[`status.${plan.status}`] || plan.status,
                 progress.phase && `${WORDS.phase}: ${progress.phase}`,
                 progress.elapsed != null && `${whole.format(progress.elapsed)} ${WORDS.elapsed}`,
                 progress.expected_exits != null && `${WORDS["metric.expected_exits"]}: ${shown("expected_exits", progress.expected_exits)}`,
                 progress.gap != null && `${WORDS["metric.gap"]}: ${shown("gap", progress.gap)}`];
  $("watch-status").textContent = parts.filter(Boolean).join(" · ");
  $("watch").dataset.status = plan.status;
  if (FINISHED.includes(plan.status)) {
    $("watch-bar").value = 1;
    if (plan.error) showError(Object.assign(new Error(plan.error.detail), {issues: plan.error.issues}));
    await loadPlans().catch(showError);
  } else {
    $("watch-bar").removeAttribute("value");
    watched = setTimeout(() => watch(planId), POLL_MS);
  }
}

async function submitted(response) {
  const plan = await response.json();
  await loadPlans();
  await watch(plan.plan_id);
}

async function openReport(planId) {
  const page = await (await api(`/v1/plans/${planId}/report?lang=${LANG}`)).blob();
  const url = URL.createObjectURL(new Blob([page], {type: "text/html"}));
  const link = $("report-link");
  if (link.href) URL.revokeObjectURL(link.href);
  link.href = url;
  link.download = `report-${planId}.html`;
  $("report-frame").src = url;
  $("report").hidden = false;
  $("report").scrollIntoView();
}

async function downloadWorkbook(planId) {
  const book = await (await api(`/v1/plans/${planId}/export.xlsx?lang=${LANG}`)).blob();
  const link = Object.assign(document.createElement("a"), {href: URL.createObjectURL(book),
                                                           download: `plan-${planId}.xlsx`});
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 60000);
}

async function compare() {
  const [a, b] = [$("plan-a").value, $("plan-b").value];
  if (!a || !b) throw Object.assign(new Error(WORDS.choose_two), {issues: []});
  const [first, second] = [summaries.get(a), summaries.get(b)];
  const rows = METRICS.map((metric) => {
    const row = document.createElement("tr");
    const [x, y] = [first[metric], second[metric]];
    row.append(cell("th", WORDS[`metric.${metric}`]), cell("td", shown(metric, x), "n"), cell("td", shown(metric, y), "n"),
               cell("td", x == null || y == null ? "–" : signed(metric, y - x), "n"));
    return row;
  });
  $("compare-table").tBodies[0].replaceChildren(...rows);
  $("compare-table").hidden = false;
}

/** Runs a form's action on submit, showing the API's error if it fails. */
function onSubmit(id, action) {
  $(id).addEventListener("submit", async (event) => {
    event.preventDefault();
    const submit = event.target.querySelector("button[type=submit]");
    submit.disabled = true;
    clearError();
    try { await action(); } catch (error) { showError(error); }
    submit.disabled = false;
  });
}

async function enter() {
  await loadRegions();
  await loadPlans();
  $("sign-in").hidden = true;
  $("signed-in").hidden = false;
  $("sign-out").hidden = false;
}

onSubmit("sign-in-form", async () => {
  sessionStorage.setItem(KEY, $("key").value.trim());
  try {
    await enter();
  } catch (error) {
    sessionStorage.removeItem(KEY);
    throw error;
  }
  $("key").value = "";
});

onSubmit("preset-form", async () => {
  const scenario = {name: $("preset").value, start_year: Number($("start-year").value),
                    deadline_year: Number($("deadline-year").value),
                    generate: {preset: $("preset").value, seed: Number($("seed").value)},
                    solver: {time_limit: Number($("time-limit").value)}};
  await submitted(await api("/v1/plans", {method: "POST", headers: {"Content-Type": "application/json"},
                                          body: JSON.stringify({scenario})}));
});

onSubmit("upload-form", async () => {
  const form = new FormData();
  if ($("scenario-file").files.length) form.append("scenario", $("scenario-file").files[0]);
  for (const table of $("table-files").files) form.append("tables", table);
  form.append("explain", $("explain").checked ? "true" : "false");
  await submitted(await api("/v1/plans", {method: "POST", body: form}));
  $("upload-form").reset();
});

onSubmit("compare-form", compare);

$("refresh").addEventListener("click", () => { clearError(); loadPlans().catch(showError); });

$("sign-out").addEventListener("click", () => {
  sessionStorage.removeItem(KEY);
  window.location.reload();
});

if (sessionStorage.getItem(KEY)) {
  enter().catch((error) => { sessionStorage.removeItem(KEY); showError(error); });
}
