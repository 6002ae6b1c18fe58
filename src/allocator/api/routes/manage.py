"""``/v1/plans/{id}/progress`` and ``/v1/plans/{id}/replan``: monitor a running plan, re-plan it.

A progress record of a done plan is stored with it (``DATA_DIR/plans/<id>/progress/<progress
id>/record/``), then checked and monitored against the plan while the client waits: that
takes seconds, so it runs in a fresh worker process (at most ``ALLOCATOR_SYNC_WORKERS`` at
once in each server process), neither in the event loop nor in a server thread, where its
pandas work would hold the GIL against status calls and its memory would stay in the server.
Its tables go to ``.../monitor/``; a record with problems is removed and answered 422.

A re-plan is a new plan job (the parent's region, ``parent_plan_id`` recorded) whose input
folder holds the request instead of a scenario; the dispatcher queues, cancels and resumes it
after a restart like any other plan, and its folder is served by the plan routes.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import anyio
from fastapi import APIRouter, HTTPException, Request, Response
from fastapi import Path as PathParam
from starlette.concurrency import run_in_threadpool

from allocator.api.deps import DispatcherDep, KeyDep, MonitoringDep, SettingsDep, StoreDep, VisibleJobDep
from allocator.api.routes.plans import (
    ERRORS,
    TABLE_RESPONSES,
    IdempotencyKey,
    read_json,
    result_dir,
    table_response,
)
from allocator.api.schemas import (
    MonitorTable,
    PlanOut,
    ProgressOut,
    ProgressTableOut,
    ReplanRequest,
    plan_out,
    progress_out,
)
from allocator.api.settings import Settings
from allocator.api.store import Job, NewJob
from allocator.api.submission import create_job, receive_progress
from allocator.api.worker import REPLAN_REQUEST, monitor_record, run_in_worker
from allocator.errors import InputError, Issue
from allocator.inputs.provenance import check_record_plan
from allocator.manage.progress import record_fingerprints

router = APIRouter(prefix="/v1/plans", tags=["manage"])

RECORD, MONITOR = "record", "monitor"  # a progress record's folders: the uploaded tables, the monitoring
ProgressId = Annotated[str, PathParam(pattern="^[0-9a-f]{32}$", description="the id POST .../progress answered")]
PROGRESS_BODY = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["tables"], "additionalProperties": False,
    "properties": {"tables": {"type": "array", "items": {"type": "string", "format": "binary"},
                              "description": "the progress tables, each a file NAME.csv or NAME.parquet: record, "
                                             "households, projects (optional) and disbursed"}}}}}}}


@dataclass(frozen=True)
class _Replan:
    """A checked re-plan request: what the worker reads, the first year planned again, the fingerprint."""

    request: dict
    from_year: int
    sha256: str
    time_limit: float | None  # of the re-plan's solves in all (two with a stability penalty)


@router.post("/{plan_id}/progress", status_code=201, responses={**ERRORS, 415: ERRORS[422]},
             openapi_extra=PROGRESS_BODY)
async def upload_progress(job: VisibleJobDep, request: Request, response: Response,
                          gate: MonitoringDep) -> ProgressOut:
    """Upload a progress record of a done plan (multipart ``tables``); it is checked against the
    plan and monitored at once: 201 with its id and the monitoring summary, 422 with every
    problem of the record, 409 when it names another plan (its fingerprints); 429 when
    ALLOCATOR_PROGRESS_QUEUE uploads already wait."""
    plan_dir = await run_in_threadpool(_solved, job)
    async with gate.enter() as slots:
        return await _monitor(job, plan_dir, request, response, slots)


async def _monitor(job: Job, plan_dir: Path, request: Request, response: Response,
                   slots: anyio.CapacityLimiter) -> ProgressOut:
    progress_id = uuid.uuid4().hex
    folder = _progress_folder(job, progress_id)
    (folder / RECORD).mkdir(parents=True)
    try:
        await receive_progress(request, folder / RECORD)
        await run_in_threadpool(_check_record, job, plan_dir, folder / RECORD)
        problems = await anyio.to_thread.run_sync(run_in_worker, monitor_record, str(plan_dir),
                                                  str(folder / RECORD), str(folder / MONITOR), limiter=slots)
        if problems is not None:
            raise InputError(*problems)
        summary = await run_in_threadpool(read_json, folder / MONITOR / "monitor.json")
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    response.headers["Location"] = f"/v1/plans/{job.plan_id}/progress/{progress_id}"
    return progress_out(job.plan_id, progress_id, summary)


@router.get("/{plan_id}/progress/{progress_id}", responses=ERRORS)
def get_progress(job: VisibleJobDep, progress_id: ProgressId) -> ProgressOut:
    """The monitoring summary of a progress record (monitor.json)."""
    return progress_out(job.plan_id, progress_id, read_json(_monitoring(job, progress_id) / "monitor.json"))


@router.get("/{plan_id}/progress/{progress_id}/tables/{name}", response_model=ProgressTableOut,
            responses=TABLE_RESPONSES)
def get_progress_table(job: VisibleJobDep, progress_id: ProgressId, name: MonitorTable, request: Request) -> Response:
    """A monitoring table: watch (households to watch: prevention), households_off_track,
    villages or counties."""
    return table_response(_monitoring(job, progress_id) / f"{name}.csv", request,
                          {"plan_id": job.plan_id, "progress_id": progress_id, "name": name})


@router.post("/{plan_id}/replan", status_code=202, responses=ERRORS)
async def replan(job: VisibleJobDep, body: ReplanRequest, response: Response, key: KeyDep, store: StoreDep,
                 settings: SettingsDep, dispatcher: DispatcherDep,
                 idempotency_key: IdempotencyKey = None) -> PlanOut:
    """Re-plan a done plan from one of its progress records: 202 with the new plan's id at once
    (same region, ``parent_plan_id`` set); delivered, started and paid are pinned, the remaining
    years re-optimised in a worker process. Its tables, diff included, come from the plan routes."""

    async def receive(folder: Path) -> _Replan:
        return await run_in_threadpool(_check_replan, job, body, settings)

    async def admit(plan_id: str, folder: Path, received: _Replan) -> NewJob:
        await run_in_threadpool((folder / REPLAN_REQUEST).write_text, json.dumps(received.request))
        return NewJob(plan_id=plan_id, key_id=key.key_id, kind="plan", region_path=job.region_path,
                      scenario_name=f"{job.scenario_name}-from-{received.from_year}", households=job.households,
                      input_dir=str(folder), parent_plan_id=job.plan_id, time_limit=received.time_limit)

    new, _ = await create_job(key=key, store=store, settings=settings, dispatcher=dispatcher, kind="plan",
                              idempotency_key=idempotency_key, receive=receive, admit=admit)
    response.headers["Location"] = f"/v1/plans/{new.plan_id}"
    return plan_out(new)


@router.get("/{plan_id}/replan", responses=ERRORS)
def get_replan(job: VisibleJobDep) -> dict:
    """replan.json of a re-plan: the changes per reason, the headline numbers and, with a
    stability penalty, what it kept and cost."""
    if not job.parent_plan_id:
        raise HTTPException(404, f"plan {job.plan_id} is not a re-plan: POST to /v1/plans/{job.plan_id}/replan "
                                 "makes one")
    return read_json(result_dir(job) / "replan.json")


def _check_replan(job: Job, body: ReplanRequest, settings: Settings) -> _Replan:
    """422 unless the record is one of the plan's and the year lies between the record's and the
    deadline (409 until the plan is done, or when the record names another plan); the time limit
    is capped as a submission's is."""
    plan_dir = result_dir(job)
    record = _progress_folder(job, body.progress_id)
    if not (record / MONITOR / "monitor.json").is_file():
        raise InputError([Issue("request body", "no progress record of this plan", key="progress_id",
                                expected=f"an id answered by POST /v1/plans/{job.plan_id}/progress",
                                found=repr(body.progress_id))])
    _check_record(job, plan_dir, record / RECORD)
    record_year = read_json(record / MONITOR / "monitor.json")["record_year"]
    deadline = read_json(plan_dir / "summary.json")["deadline_year"]
    year = record_year if body.from_year is None else body.from_year
    if not record_year <= year <= deadline:
        raise InputError([Issue("request body", "the re-plan year must lie between the record's year and the "
                                "deadline", key="from_year", expected=f"a year in {record_year}..{deadline}",
                                found=str(year))])
    time_limit = None if body.time_limit is None else min(body.time_limit, settings.max_time_limit)
    request = {"plan_dir": str(plan_dir), "record_dir": str(record / RECORD), "from_year": year,
               "stability": body.stability, "time_limit": time_limit}
    fingerprint = json.dumps({"plan_id": job.plan_id, **body.model_dump()}, sort_keys=True)
    each = time_limit if time_limit is not None else job.time_limit
    total = None if each is None else each * (2 if body.stability > 0 else 1)
    return _Replan(request, year, hashlib.sha256(fingerprint.encode()).hexdigest(), total)


def _check_record(job: Job, plan_dir: Path, record: Path) -> None:
    """InputMismatch (409) when the record's fingerprints name another plan or other inputs."""
    plan_fp, inputs_fp = record_fingerprints(record)
    check_record_plan(plan_fp, inputs_fp, read_json(plan_dir / "summary.json"), record="the progress record",
                      plan=f"plan {job.plan_id}")


def _solved(job: Job) -> Path:
    """The folder of a done plan that has a solution (409 otherwise): what a record is read against."""
    folder = result_dir(job)
    if read_json(folder / "summary.json").get("expected_exits") is None:
        raise HTTPException(409, f"plan {job.plan_id} has no solution ({job.plan_status}), so nothing to monitor")
    return folder


def _progress_folder(job: Job, progress_id: str) -> Path:
    return Path(job.input_dir).parent / "progress" / progress_id


def _monitoring(job: Job, progress_id: str) -> Path:
    """The monitoring folder of one of the plan's progress records; 404 when there is none."""
    folder = _progress_folder(job, progress_id) / MONITOR
    if not (folder / "monitor.json").is_file():
        raise HTTPException(404, f"no progress record {progress_id!r} of plan {job.plan_id}")
    return folder
