"""Turning a POST (JSON or multipart) into a queued job, for ``/v1/plans`` and ``/v1/solve``.

Order of the checks: the body's shape (422); the Idempotency-Key (a retry with the same
request gets the first job back, a different request under a used key 422); queue room (503
or 429 with Retry-After); the tables and the household limit (422, 413); the key's region
(403). Anything stored for a refused submission or a retry is removed.
"""

from __future__ import annotations

import hashlib
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

from fastapi import HTTPException, Request
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from allocator.api.intake import (
    SCENARIO_FILE,
    TABLE_NAMES,
    admit,
    read_scenario_yaml,
    save_upload,
    upload_name,
    write_records,
)
from allocator.api.schemas import PlanRequest
from allocator.api.settings import Settings
from allocator.api.store import ApiKey, Job, JobStore, NewJob
from allocator.api.worker import Dispatcher
from allocator.errors import InputError, Issue

RETRY_AFTER_SECONDS = 30
SYNC_SOLVER_SHARE = 0.6  # of the synchronous hard limit, left to the solver; the rest reads, builds, writes
FORM_FIELDS = ("scenario", "tables", "explain")

SUBMISSION_BODY = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": {"$ref": "#/components/schemas/PlanRequest"}},
    "multipart/form-data": {"schema": {
        "type": "object", "required": ["scenario"], "additionalProperties": False,
        "properties": {
            "scenario": {"type": "string", "format": "binary", "description": "the scenario YAML"},
            "tables": {"type": "array", "items": {"type": "string", "format": "binary"},
                       "description": "contract tables, each a file named NAME.csv or NAME.parquet"},
            "explain": {"type": "boolean", "default": False},
        }}}}}}


@dataclass(frozen=True)
class Received:
    """A request body, its tables stored: the scenario mapping, the file name its issues use,
    whether tables came, the explain flag, and the request's fingerprint."""

    scenario: dict
    file: str
    uploaded: bool
    explain: bool
    sha256: str


async def submit(request: Request, *, key: ApiKey, store: JobStore, settings: Settings, dispatcher: Dispatcher,
                 kind: str, idempotency_key: str | None) -> tuple[Job, bool]:
    """Queue the request's scenario as a job of ``kind`` (``plan`` or ``sync``); returns the job
    and whether it is new (False: the job first made with the same Idempotency-Key)."""
    plan_id = uuid.uuid4().hex
    folder = settings.data_dir / "plans" / plan_id / "input"
    folder.mkdir(parents=True)
    sync = kind == "sync"
    job, created = None, False
    try:
        received = await _receive(request, folder)
        if sync and received.explain:
            raise InputError([Issue("request", "explain re-solves the scenario and takes minutes", key="explain",
                                    expected="false here; submit to POST /v1/plans with explain: true")])
        if idempotency_key:
            job = await run_in_threadpool(store.job_by_idempotency, key.key_id, kind, idempotency_key)
            if job is not None and job.request_sha256 != received.sha256:
                raise InputError([Issue("request", "Idempotency-Key already used for a different request",
                                        key="Idempotency-Key", expected="a new key for a new request")])
        if job is None:
            await run_in_threadpool(_check_room, store, settings, key, kind)
            admission = await run_in_threadpool(
                admit, received.scenario, folder, file=received.file, uploaded=received.uploaded,
                max_households=min(settings.max_households, settings.sync_max_households) if sync
                else settings.max_households,
                time_cap=settings.sync_time_limit * SYNC_SOLVER_SHARE if sync else settings.max_time_limit)
            if not key.sees(admission.region_path):
                where = " / ".join(admission.region_path) or "no single root region"
                raise HTTPException(403, f"this key is for region {key.region}; the data's counties lie under {where}")
            job, created = await run_in_threadpool(store.add_job, NewJob(
                plan_id=plan_id, key_id=key.key_id, kind=kind, region_path=admission.region_path,
                scenario_name=admission.scenario.name, households=admission.households, input_dir=str(folder),
                explain=received.explain, idempotency_key=idempotency_key, request_sha256=received.sha256))
    finally:
        if not created:  # refused, a retry, or a concurrent retry that lost the race
            shutil.rmtree(folder.parent, ignore_errors=True)
    dispatcher.wake()
    return job, created


def _check_room(store: JobStore, settings: Settings, key: ApiKey, kind: str) -> None:
    """503 when the queue is full, 429 when this key already has its share queued."""
    retry = {"Retry-After": str(RETRY_AFTER_SECONDS)}
    if store.count("queued", kind=kind) >= settings.queue_size:
        raise HTTPException(503, f"the queue is full ({settings.queue_size} plans waiting); retry later",
                            headers=retry)
    if store.count("queued", key_id=key.key_id) >= settings.queue_per_key:
        raise HTTPException(429, f"this key already has {settings.queue_per_key} plans waiting; retry later",
                            headers=retry)


async def _receive(request: Request, folder: Path) -> Received:
    """Store the body's tables in ``folder`` and read its scenario."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "multipart/form-data":
        return await _receive_form(request, folder)
    if content_type not in ("application/json", ""):
        raise HTTPException(415, "send application/json or multipart/form-data")
    raw = await request.body()
    try:
        body = PlanRequest.model_validate_json(raw)
    except ValidationError as error:
        raise InputError([Issue("request body", err["msg"], key=".".join(map(str, err["loc"])) or None)
                          for err in error.errors()[:20]]) from None
    if body.tables:
        await run_in_threadpool(write_records, body.tables, folder)
    return Received(body.scenario, SCENARIO_FILE, bool(body.tables), body.explain, hashlib.sha256(raw).hexdigest())


async def _receive_form(request: Request, folder: Path) -> Received:
    try:
        form = await request.form(max_files=len(TABLE_NAMES) + 1, max_fields=len(FORM_FIELDS) + len(TABLE_NAMES))
    except StarletteHTTPException as error:  # a malformed body, too many parts: bad input like any other
        if error.status_code != 400:
            raise
        raise InputError([Issue("form", str(error.detail))]) from None
    unknown = sorted(set(form.keys()) - set(FORM_FIELDS))
    if unknown:
        raise InputError([Issue("form", "unknown field", key=name, expected="scenario, tables, explain")
                          for name in unknown])
    scenario = form.get("scenario")
    if scenario is None:
        raise InputError([Issue("form", "missing field", key="scenario", expected="the scenario YAML")])
    file = Path(scenario.filename or SCENARIO_FILE).name if isinstance(scenario, UploadFile) else SCENARIO_FILE
    content = await scenario.read() if isinstance(scenario, UploadFile) else scenario.encode("utf-8")
    explain = str(form.get("explain", "false")).strip().lower()
    if explain not in ("true", "false"):
        raise InputError([Issue("form", "not a boolean", key="explain", expected="true or false",
                                found=repr(explain))])
    digest = hashlib.sha256(content + b"\0" + explain.encode() + b"\0")
    tables = form.getlist("tables")
    for table in tables:
        if not isinstance(table, UploadFile):
            raise InputError([Issue("form", "a table must be a file", key="tables",
                                    expected="a file named NAME.csv or NAME.parquet")])
        await run_in_threadpool(save_upload, table.file, upload_name(table.filename), folder, digest)
    return Received(read_scenario_yaml(content, file), file, bool(tables), explain == "true", digest.hexdigest())
