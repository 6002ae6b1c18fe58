"""``/v1/plans``: submit a scenario, follow its solve, read the plan folder, cancel or purge.

Also the helpers every route serving a plan's files uses: tables as JSON, CSV or Parquet,
JSON files, and the folder of a done plan."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import anyio
import pandas as pd
from fastapi import APIRouter, Header, HTTPException, Query, Request, Response
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from starlette.concurrency import run_in_threadpool

from allocator.api.deps import DispatcherDep, IntakeDep, KeyDep, ReportsDep, SettingsDep, StoreDep, VisibleJobDep
from allocator.api.schemas import JobStatus, Language, PlanList, PlanOut, PlanTable, PurgedOut, TableOut, plan_out
from allocator.api.settings import Settings
from allocator.api.store import FINISHED, Job
from allocator.api.submission import SUBMISSION_BODY, submit
from allocator.api.worker import STOP_GRACE, purge, render_report, render_workbook, run_in_worker

router = APIRouter(prefix="/v1/plans", tags=["plans"])

PARQUET_TYPES = ("application/vnd.apache.parquet", "application/x-parquet")
TEXT_COLUMNS = ("id", "before", "after")  # of diff.csv: ids, and decisions or amounts as written
IdempotencyKey = Annotated[str | None, Header(max_length=200, description="a retry with the same key and the "
                                                                            "same parsed request returns the first "
                                                                            "plan; an empty value is no key")]
LangQuery = Annotated[Language | None, Query(description="the language of its words: en or zh (default: the "
                                                         "service's ALLOCATOR_LANG, else en)")]
REPORT = "report.html"  # the rendered report, cached in the plan's folder (report.zh.html in Chinese)
WORKBOOK = "plan.xlsx"  # the plan's Excel workbook, cached beside the report (plan.zh.xlsx in Chinese)
PURGE_WAIT = 30.0  # seconds, beyond the stop grace, a purge waits for the dispatcher to stop a running worker
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
ERRORS = {code: {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}}}
          for code in (401, 403, 404, 409, 413, 422, 429, 503)}
TABLE_RESPONSES = {
    **ERRORS,
    200: {"content": {"text/csv": {}, PARQUET_TYPES[0]: {}}, "description": "JSON records (default), or the "
          "table as CSV or Parquet when the Accept header asks for text/csv or application/vnd.apache.parquet"}}


@router.post("", status_code=202, responses=ERRORS, openapi_extra=SUBMISSION_BODY)
async def submit_plan(request: Request, response: Response, key: KeyDep, store: StoreDep, settings: SettingsDep,
                      dispatcher: DispatcherDep, intake: IntakeDep, idempotency_key: IdempotencyKey = None) -> PlanOut:
    """Submit a scenario (JSON, or a multipart upload of the scenario YAML and its tables);
    202 with the plan id at once, the solve runs in a worker process."""
    job, _ = await submit(request, key=key, store=store, settings=settings, dispatcher=dispatcher, gate=intake,
                          kind="plan", idempotency_key=idempotency_key)
    response.headers["Location"] = f"/v1/plans/{job.plan_id}"
    return plan_out(job)


@router.get("", responses=ERRORS)
def list_plans(key: KeyDep, store: StoreDep, status: JobStatus | None = None,
               limit: Annotated[int, Query(ge=1, le=200)] = 50,
               offset: Annotated[int, Query(ge=0, le=10**9)] = 0) -> PlanList:
    """The plans of the key's region, newest first."""
    jobs = store.jobs(region=None if key.admin else key.region, status=status, limit=limit, offset=offset)
    return PlanList(plans=[plan_out(job) for job in jobs], limit=limit, offset=offset)


@router.get("/{plan_id}", responses=ERRORS)
async def get_plan(job: VisibleJobDep) -> PlanOut:
    """Status (queued, running, done, failed, cancelled), progress and timestamps."""
    return plan_out(job)


@router.delete("/{plan_id}", responses=ERRORS)
def cancel_plan(job: VisibleJobDep, store: StoreDep, settings: SettingsDep, dispatcher: DispatcherDep,
                purge_data: Annotated[bool, Query(alias="purge", description="also remove the plan's inputs, "
                                                  "results and progress records, and its record")] = False,
                ) -> PlanOut | PurgedOut:
    """Cancel a queued or running solve (its worker process is stopped); 409 once finished.
    With ``purge=true``: stop it if it runs, then remove everything stored of it (any stage)."""
    if purge_data:
        store.cancel(job.plan_id)
        dispatcher.wake()
        deadline = time.monotonic() + STOP_GRACE + PURGE_WAIT  # the worker must be gone before its folder goes
        while dispatcher.holds(job.plan_id) and time.monotonic() < deadline:
            time.sleep(0.05)
        if dispatcher.holds(job.plan_id):  # never remove a folder under a worker still writing it
            raise HTTPException(503, f"plan {job.plan_id} is still stopping; purge it again in a minute",
                                headers={"Retry-After": "60"})
        purge(store, settings, store.job(job.plan_id) or job)
        return PurgedOut(plan_id=job.plan_id, purged=True)
    if not store.cancel(job.plan_id):
        current = store.job(job.plan_id)
        if current.status != "cancelled":
            raise HTTPException(409, f"plan {job.plan_id} is already {current.status}")
    dispatcher.wake()
    return plan_out(store.job(job.plan_id))


@router.get("/{plan_id}/summary", responses=ERRORS)
def get_summary(job: VisibleJobDep) -> dict:
    """The plan folder's summary.json (status, KPIs, bounds, budget use, manifest)."""
    return read_json(result_dir(job) / "summary.json")


@router.get("/{plan_id}/tables/{name}", response_model=TableOut, responses=TABLE_RESPONSES)
def get_table(job: VisibleJobDep, name: PlanTable, request: Request) -> Response:
    """A table of the plan folder: households, projects, funding, counties or marginal_values
    (what one more unit of each resource is worth); for a re-plan also diff (every decision
    that differs from the plan it re-plans)."""
    path = result_dir(job) / f"{name}.csv"
    if not path.is_file():  # diff, in a plan that is not a re-plan; marginal values, in one without a solution
        raise HTTPException(404, f"plan {job.plan_id} has no marginal values (it has no solution)"
                            if name == "marginal_values" else
                            f"plan {job.plan_id} is not a re-plan, so it has no {name}")
    return table_response(path, request, {"plan_id": job.plan_id, "name": name})


@router.get("/{plan_id}/difficulties", responses=ERRORS)
def get_difficulties(job: VisibleJobDep) -> JSONResponse:
    """difficulties.json: why counties miss the deadline and what it would take. Computed
    only for plans submitted with ``explain: true`` (it re-solves, which takes minutes)."""
    path = result_dir(job) / "difficulties.json"
    if not path.is_file():
        raise HTTPException(404, "no difficulties for this plan: submit it with explain: true to have them computed")
    return JSONResponse(read_json(path))


@router.get("/{plan_id}/report", response_class=HTMLResponse, responses={
    **ERRORS, 200: {"content": {"text/html": {"schema": {"type": "string"}}},
                    "description": "a self-contained HTML page"}})
async def get_report(job: VisibleJobDep, slots: ReportsDep, settings: SettingsDep,
                     lang: LangQuery = None) -> FileResponse:
    """The plan's readable report (HTML with its charts) in ``lang``: rendered once per language,
    in a worker process, then served from the plan's folder."""
    return FileResponse(await rendered(job, slots, render_report, REPORT, "report", chosen_language(lang, settings)),
                        media_type="text/html")


@router.get("/{plan_id}/export.xlsx", response_class=FileResponse, responses={
    **ERRORS, 200: {"content": {XLSX_TYPE: {"schema": {"type": "string", "format": "binary"}}},
                    "description": "an Excel workbook"}})
async def get_workbook(job: VisibleJobDep, slots: ReportsDep, settings: SettingsDep,
                       lang: LangQuery = None) -> FileResponse:
    """The plan as one Excel workbook (as ``allocator export --xlsx``) in ``lang``: summary, path,
    counties, villages, households, projects, funding, budget use and difficulties, names beside
    ids. Written once per language, in a worker process, then served from the plan's folder."""
    cached = await rendered(job, slots, render_workbook, WORKBOOK, "workbook", chosen_language(lang, settings))
    return FileResponse(cached, media_type=XLSX_TYPE, filename=f"plan-{job.plan_id}.xlsx")


def chosen_language(lang: str | None, settings: Settings) -> str:
    """The language a request asks for, else the service's (ALLOCATOR_LANG)."""
    return lang or settings.lang


async def rendered(job, slots, render, name: str, what: str, lang: str) -> Path:
    """The plan's ``name`` (its report or workbook) in ``lang`` beside its folder, made once per
    language by ``render`` in a worker process; a second request for the same plan waits on
    ``slots``, then finds it. 404 for a plan without a solution."""
    folder = result_dir(job)
    if (await run_in_threadpool(read_json, folder / "summary.json")).get("expected_exits") is None:
        raise HTTPException(404, f"plan {job.plan_id} has no solution ({job.plan_status}), so no {what}")
    stem, suffix = name.split(".", 1)
    cached = Path(job.input_dir).parent / (name if lang == "en" else f"{stem}.{lang}.{suffix}")
    if not cached.is_file():
        async with slots:
            if not cached.is_file():
                await anyio.to_thread.run_sync(run_in_worker, render, str(folder), str(cached), lang)
    return cached


def table_response(path: Path, request: Request, about: dict) -> Response:
    """A served CSV table: JSON records after ``about`` (default), or the file as CSV or Parquet
    when the Accept header asks for it."""
    wanted = _negotiate(request.headers.get("accept"))
    if wanted == "csv":
        return FileResponse(path, media_type="text/csv", filename=path.name)
    frame = read_table(path)
    if wanted == "parquet":
        return Response(frame.to_parquet(index=False), media_type=PARQUET_TYPES[0],
                        headers={"Content-Disposition": f'attachment; filename="{path.stem}.parquet"'})
    return JSONResponse({**about, "columns": list(frame.columns), "rows": len(frame),
                         "records": table_records(frame)})


def read_table(path: Path) -> pd.DataFrame:
    """A served CSV table, its ids (columns named *_id, and the diff's id, before and after) kept as text."""
    header = pd.read_csv(path, nrows=0).columns
    return pd.read_csv(path, dtype={column: str for column in header
                                    if column.endswith("_id") or column in TEXT_COLUMNS})


def table_records(frame: pd.DataFrame) -> list[dict]:
    """Rows as JSON-ready dicts: Python scalars at full precision, missing cells as null."""
    return frame.astype(object).where(frame.notna(), None).to_dict("records")


def read_json(path: Path) -> dict:
    """A JSON file of the plan folder, with NaN and infinities (which JSON lacks) as null."""
    return json.loads(path.read_text(), parse_constant=lambda _: None)


def result_dir(job: Job) -> Path:
    """The plan folder of a done job, or of a failed one that kept its best plan (stopped at its
    hard limit); 409 otherwise."""
    if job.status not in ("done", "failed") or not job.result_dir:
        state = job.status if job.status not in FINISHED else f"{job.status}, so it has no results"
        raise HTTPException(409, f"plan {job.plan_id} is {state}" + ("" if job.status in FINISHED else
                                                                       "; results come when it is done"))
    return Path(job.result_dir)


def _negotiate(accept: str | None) -> str:
    """csv or parquet when the Accept header names one of them first, else json (other types are
    disregarded, as HTTP allows, rather than refused)."""
    for part in (accept or "").split(","):
        media = part.split(";")[0].strip().lower()
        if media == "text/csv":
            return "csv"
        if media in PARQUET_TYPES:
            return "parquet"
        if media in ("application/json", "*/*", "application/*"):
            return "json"
    return "json"
