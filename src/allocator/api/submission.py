"""Turning a POST (JSON or multipart) into a queued job, for ``/v1/plans``, ``/v1/solve`` and
``/v1/plans/{id}/replan``; reading an uploaded progress record.

Order of the checks (:func:`create_job`): the body's shape (422); the Idempotency-Key (a
retry with the same request gets the first job back, a different request under a used key
422); queue room (503 or 429 with Retry-After); the tables and the household limit (422,
413); the key's region (403). Anything stored for a refused submission or a retry is removed.
"""

from __future__ import annotations

import hashlib
import shutil
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol, TypeVar

from fastapi import HTTPException, Request
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile
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
from allocator.progress import PROGRESS_SPECS

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


class Fingerprinted(Protocol):
    sha256: str  # the request's fingerprint, to tell a retry from a new request


ReceivedT = TypeVar("ReceivedT", bound=Fingerprinted)


@dataclass(frozen=True)
class Received:
    """A request body, its tables stored: the scenario mapping, the file name its issues use,
    whether tables came, the explain flag, and the request's fingerprint."""

    scenario: dict
    file: str
    uploaded: bool
    explain: bool
    sha256: str


async def create_job(*, key: ApiKey, store: JobStore, settings: Settings, dispatcher: Dispatcher, kind: str,
                     idempotency_key: str | None, receive: Callable[[Path], Awaitable[ReceivedT]],
                     admit: Callable[[str, Path, ReceivedT], Awaitable[NewJob]]) -> tuple[Job, bool]:
    """Queue a job of ``kind`` in a new input folder; returns the job and whether it is new
    (False: the job first made with the same Idempotency-Key). ``receive(folder)`` reads the
    request (storing what it carries) and ``admit(plan_id, folder, received)`` checks it and
    says what to store; admission runs only for a new request with room in the queue."""
    plan_id = uuid.uuid4().hex
    folder = settings.data_dir / "plans" / plan_id / "input"
    folder.mkdir(parents=True)
    job, created = None, False
    try:
        received = await receive(folder)
        if idempotency_key:
            job = await run_in_threadpool(store.job_by_idempotency, key.key_id, kind, idempotency_key)
            if job is not None and job.request_sha256 != received.sha256:
                raise InputError([Issue("request", "Idempotency-Key already used for a different request",
                                        key="Idempotency-Key", expected="a new key for a new request")])
        if job is None:
            await run_in_threadpool(_check_room, store, settings, key, kind)
            new = await admit(plan_id, folder, received)
            job, created = await run_in_threadpool(store.add_job, replace(
                new, idempotency_key=idempotency_key, request_sha256=received.sha256))
    finally:
        if not created:  # refused, a retry, or a concurrent retry that lost the race
            shutil.rmtree(folder.parent, ignore_errors=True)
    dispatcher.wake()
    return job, created


async def submit(request: Request, *, key: ApiKey, store: JobStore, settings: Settings, dispatcher: Dispatcher,
                 kind: str, idempotency_key: str | None) -> tuple[Job, bool]:
    """Queue the request's scenario as a job of ``kind`` (``plan`` or ``sync``); see :func:`create_job`."""
    sync = kind == "sync"

    async def receive(folder: Path) -> Received:
        received = await _receive(request, folder)
        if sync and received.explain:
            raise InputError([Issue("request", "explain re-solves the scenario and takes minutes", key="explain",
                                    expected="false here; submit to POST /v1/plans with explain: true")])
        return received

    async def admit_scenario(plan_id: str, folder: Path, received: Received) -> NewJob:
        admission = await run_in_threadpool(
            admit, received.scenario, folder, file=received.file, uploaded=received.uploaded,
            max_households=min(settings.max_households, settings.sync_max_households) if sync
            else settings.max_households,
            time_cap=settings.sync_time_limit * SYNC_SOLVER_SHARE if sync else settings.max_time_limit)
        if not key.sees(admission.region_path):
            where = " / ".join(admission.region_path) or "no single root region"
            raise HTTPException(403, f"this key is for region {key.region}; the data's counties lie under {where}")
        return NewJob(plan_id=plan_id, key_id=key.key_id, kind=kind, region_path=admission.region_path,
                      scenario_name=admission.scenario.name, households=admission.households, input_dir=str(folder),
                      explain=received.explain)

    return await create_job(key=key, store=store, settings=settings, dispatcher=dispatcher, kind=kind,
                            idempotency_key=idempotency_key, receive=receive, admit=admit_scenario)


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


async def _read_form(request: Request, fields: tuple[str, ...], files: int) -> FormData:
    """The multipart form, with at most ``files`` files and only ``fields``; a malformed body is
    bad input like any other."""
    try:
        form = await request.form(max_files=files, max_fields=len(fields) + files)
    except StarletteHTTPException as error:  # a malformed body, too many parts
        if error.status_code != 400:
            raise
        raise InputError([Issue("form", str(error.detail))]) from None
    unknown = sorted(set(form.keys()) - set(fields))
    if unknown:
        raise InputError([Issue("form", "unknown field", key=name, expected=", ".join(fields))
                          for name in unknown])
    return form


async def _save_tables(form: FormData, folder: Path, names: tuple[str, ...],
                       digest: hashlib._Hash | None = None) -> bool:
    """Store the form's ``tables`` files in ``folder``; True when there were any."""
    tables = form.getlist("tables")
    for table in tables:
        if not isinstance(table, UploadFile):
            raise InputError([Issue("form", "a table must be a file", key="tables",
                                    expected="a file named NAME.csv or NAME.parquet")])
        await run_in_threadpool(save_upload, table.file, upload_name(table.filename, names), folder, digest)
    return bool(tables)


async def _receive_form(request: Request, folder: Path) -> Received:
    form = await _read_form(request, FORM_FIELDS, len(TABLE_NAMES) + 1)
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
    uploaded = await _save_tables(form, folder, TABLE_NAMES, digest)
    return Received(read_scenario_yaml(content, file), file, uploaded, explain == "true", digest.hexdigest())


async def receive_progress(request: Request, folder: Path) -> None:
    """Store an uploaded progress record (multipart ``tables``: record, households, projects,
    disbursed as CSV or Parquet) in ``folder``; its cells are checked when it is read."""
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != "multipart/form-data":
        raise HTTPException(415, "send multipart/form-data: the progress tables as 'tables' files")
    form = await _read_form(request, ("tables",), len(PROGRESS_SPECS))
    if not await _save_tables(form, folder, tuple(PROGRESS_SPECS)):
        raise InputError([Issue("form", "missing field", key="tables",
                                expected="the progress tables record, households, projects (optional) and "
                                         "disbursed, each a file NAME.csv or NAME.parquet")])
