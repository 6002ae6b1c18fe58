"""Turning a POST (JSON or multipart) into a queued job, for ``/v1/plans``, ``/v1/solve`` and
``/v1/plans/{id}/replan``; reading an uploaded progress record.

Order of the checks (:func:`create_job`): room for the upload (429 when the checking
processes and their waiting line are full); the body's shape (422); the Idempotency-Key (a
retry with the same parsed request gets the first job back, a different request under a used
key 422; an empty key is no key); queue room (503 or 429 with Retry-After); the tables and
the household limit (422, 413); the region registry (422) and the key's region (403).
Anything stored for a refused submission or a retry is removed.
"""

from __future__ import annotations

import fcntl
import shutil
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures.process import BrokenProcessPool
from contextlib import asynccontextmanager, contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Protocol, TypeVar

import anyio
from fastapi import HTTPException, Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from allocator.api.intake import (
    REQUEST_BODY,
    SCENARIO_FILE,
    SCENARIO_UPLOAD,
    TABLE_NAMES,
    Checked,
    TooLarge,
    check_upload,
    copy_file,
    save_upload,
    upload_name,
)
from allocator.api.regions import ancestry, check_submission, outside
from allocator.api.settings import Settings
from allocator.api.store import ApiKey, Job, JobStore, NewJob, Region
from allocator.api.worker import Dispatcher, run_in_worker
from allocator.errors import InputError, Issue
from allocator.manage.progress import PROGRESS_SPECS

RETRY_AFTER_SECONDS = 30
SYNC_SOLVER_SHARE = 0.6  # of the synchronous hard limit, left to the solver; the rest reads, builds, writes
FORM_FIELDS = ("scenario", "tables", "explain")
NO_REGISTRY = ("no region registry is loaded, so region keys cannot submit yet: an admin loads it with "
               "'allocator regions load FILE' or PUT /v1/regions")
STREAM_BLOCK = 1 << 20  # bytes of a JSON body gathered before each write to disk

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


RECEIVING = ".receiving"  # in a plan's folder while a request fills it; locked by the receiving process


class Fingerprinted(Protocol):
    sha256: str | None  # the parsed request's fingerprint, to tell a retry from a new request


ReceivedT = TypeVar("ReceivedT", bound=Fingerprinted)


class Gate:
    """Work that runs in worker processes, at most ``slots`` at once with ``waiting`` more in
    line; a request beyond that is refused at once with 429, before its body is read."""

    def __init__(self, slots: int, waiting: int, what: str):
        self.limiter = anyio.CapacityLimiter(slots)
        self.room, self.what, self.inside = slots + waiting, what, 0

    @asynccontextmanager
    async def enter(self) -> AsyncIterator[anyio.CapacityLimiter]:
        if self.inside >= self.room:
            raise HTTPException(429, f"{self.inside} {self.what} are being checked or waiting; retry later",
                                headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
        self.inside += 1
        try:
            yield self.limiter
        finally:
            self.inside -= 1


@contextmanager
def receiving(home: Path):
    """Mark ``home`` as being filled by this process (an exclusive lock on its RECEIVING file,
    which the system drops if the process dies), so the orphan sweep leaves it alone."""
    with open(home / RECEIVING, "wb") as marker:
        fcntl.flock(marker, fcntl.LOCK_EX)
        try:
            yield
        finally:
            (home / RECEIVING).unlink(missing_ok=True)


async def create_job(*, key: ApiKey, store: JobStore, settings: Settings, dispatcher: Dispatcher, kind: str,
                     idempotency_key: str | None, receive: Callable[[Path], Awaitable[ReceivedT]],
                     admit: Callable[[str, Path, ReceivedT], Awaitable[NewJob]]) -> tuple[Job, bool]:
    """Queue a job of ``kind`` in a new input folder; returns the job and whether it is new
    (False: the job first made with the same Idempotency-Key). ``receive(folder)`` reads the
    request (storing what it carries) and ``admit(plan_id, folder, received)`` checks it and
    says what to store; admission runs only for a new request with room in the queue."""
    idempotency_key = (idempotency_key or "").strip() or None  # an empty header is no key
    plan_id = uuid.uuid4().hex
    home = settings.data_dir / "plans" / plan_id
    folder = home / "input"
    folder.mkdir(parents=True)
    job, created = None, False
    try:
        with receiving(home):
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
            shutil.rmtree(home, ignore_errors=True)
    dispatcher.wake()
    return job, created


async def submit(request: Request, *, key: ApiKey, store: JobStore, settings: Settings, dispatcher: Dispatcher,
                 gate: Gate, kind: str, idempotency_key: str | None) -> tuple[Job, bool]:
    """Queue the request's scenario as a job of ``kind`` (``plan`` or ``sync``); see :func:`create_job`.
    The body is streamed to disk, then parsed and checked in a worker process behind ``gate``."""
    sync = kind == "sync"

    async def receive(folder: Path) -> Checked:
        file, digests, explain = await _receive(request, folder)
        try:
            checked = await anyio.to_thread.run_sync(
                lambda: run_in_worker(check_upload, str(folder), file, digests, explain,
                                      max_households=min(settings.max_households, settings.sync_max_households)
                                      if sync else settings.max_households,
                                      time_cap=settings.sync_time_limit * SYNC_SOLVER_SHARE if sync
                                      else settings.max_time_limit, memory_mb=settings.intake_memory_mb),
                limiter=limiter)
        except BrokenProcessPool:  # the checking process died: killed, or out of memory in C code
            raise TooLarge(f"the process checking this upload died; it may need more than "
                           f"{settings.intake_memory_mb:,} MiB (ALLOCATOR_INTAKE_MEMORY_MB)") from None
        if checked.sha256 is None:  # the body itself could not be read: malformed, or out of memory parsing it
            raise TooLarge(checked.too_large) if checked.too_large else InputError(checked.issues or [])
        if sync and checked.explain:
            raise InputError([Issue("request", "explain re-solves the scenario and takes minutes", key="explain",
                                    expected="false here; submit to POST /v1/plans with explain: true")])
        return checked

    async def admit_scenario(plan_id: str, folder: Path, checked: Checked) -> NewJob:
        if checked.too_large:
            raise TooLarge(checked.too_large)
        if checked.issues:
            raise InputError(checked.issues, checked.truncated)
        registry = await run_in_threadpool(store.registry)
        _check_regions(key, registry, checked)
        return NewJob(plan_id=plan_id, key_id=key.key_id, kind=kind, region_path=list(checked.region_path),
                      scenario_name=checked.scenario_name, households=checked.households, input_dir=str(folder),
                      explain=checked.explain, time_limit=checked.time_limit)

    if not key.admin and not await run_in_threadpool(store.registry):
        raise HTTPException(403, NO_REGISTRY)  # before the body is read: nothing to check it against
    async with gate.enter() as limiter:
        return await create_job(key=key, store=store, settings=settings, dispatcher=dispatcher, kind=kind,
                                idempotency_key=idempotency_key, receive=receive, admit=admit_scenario)


def _check_regions(key: ApiKey, registry: dict[str, Region], checked: Checked) -> None:
    """The data's regions against the registry (422 naming the rows that differ) and the key's
    scope (403): every region lies under the key's region, or above it on its path. Without a
    registry only an admin key may submit."""
    where = " / ".join(checked.region_path) or "no single root region"
    if not registry:
        if not key.admin:
            raise HTTPException(403, NO_REGISTRY)
        return
    check_submission(registry, list(checked.regions), checked.regions_file)
    if key.admin:
        return
    above = set(ancestry(registry, key.region))
    stray = [region for region in outside(registry, [row[0] for row in checked.regions], key.region)
             if region not in above]
    if stray or key.region not in checked.region_path:
        example = f" ({stray[0]} lies under {' / '.join(ancestry(registry, stray[0])[::-1])})" if stray else ""
        raise HTTPException(403, f"this key is for region {key.region}; the data's counties lie under {where}{example}")


def _check_room(store: JobStore, settings: Settings, key: ApiKey, kind: str) -> None:
    """503 when the queue is full, 429 when this key already has its share queued."""
    retry = {"Retry-After": str(RETRY_AFTER_SECONDS)}
    if store.count("queued", kind=kind) >= settings.queue_size:
        raise HTTPException(503, f"the queue is full ({settings.queue_size} plans waiting); retry later",
                            headers=retry)
    if store.count("queued", key_id=key.key_id) >= settings.queue_per_key:
        raise HTTPException(429, f"this key already has {settings.queue_per_key} plans waiting; retry later",
                            headers=retry)


async def _receive(request: Request, folder: Path) -> tuple[str, dict[str, str] | None, bool]:
    """Stream the body to ``folder``: a JSON body as REQUEST_BODY, a multipart's scenario as
    SCENARIO_UPLOAD and its tables as they are. Returns the scenario's file name, the tables'
    SHA-256 by name (None for JSON) and the multipart's explain flag."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "multipart/form-data":
        return await _receive_form(request, folder)
    if content_type not in ("application/json", ""):
        raise HTTPException(415, "send application/json or multipart/form-data")
    with open(folder / REQUEST_BODY, "wb") as target:
        buffer = bytearray()
        async for chunk in request.stream():
            buffer += chunk
            if len(buffer) >= STREAM_BLOCK:
                await run_in_threadpool(target.write, bytes(buffer))
                buffer.clear()
        target.write(buffer)
    return SCENARIO_FILE, None, False


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


async def _save_tables(form: FormData, folder: Path, names: tuple[str, ...]) -> dict[str, str]:
    """Store the form's ``tables`` files in ``folder``; the SHA-256 of each by stored name."""
    digests = {}
    for table in form.getlist("tables"):
        if not isinstance(table, UploadFile):
            raise InputError([Issue("form", "a table must be a file", key="tables",
                                    expected="a file named NAME.csv or NAME.parquet")])
        name = upload_name(table.filename, names)
        digests[name] = await run_in_threadpool(save_upload, table.file, name, folder)
    return digests


async def _receive_form(request: Request, folder: Path) -> tuple[str, dict[str, str], bool]:
    form = await _read_form(request, FORM_FIELDS, len(TABLE_NAMES) + 1)
    scenario = form.get("scenario")
    if scenario is None:
        raise InputError([Issue("form", "missing field", key="scenario", expected="the scenario YAML")])
    if isinstance(scenario, UploadFile):
        file = Path(scenario.filename or SCENARIO_FILE).name
        await run_in_threadpool(copy_file, scenario.file, folder / SCENARIO_UPLOAD)
    else:  # a plain field, which the form parser keeps below its part size limit
        file = SCENARIO_FILE
        (folder / SCENARIO_UPLOAD).write_bytes(scenario.encode("utf-8"))
    explain = str(form.get("explain", "false")).strip().lower()
    if explain not in ("true", "false"):
        raise InputError([Issue("form", "not a boolean", key="explain", expected="true or false",
                                found=repr(explain))])
    return file, await _save_tables(form, folder, TABLE_NAMES), explain == "true"


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
