"""``POST /v1/solve``: a small scenario solved while the client waits, within a hard time limit.

It is a job like any other (stored, visible under ``/v1/plans``), run by the worker
processes kept for synchronous solves. The solver gets part of the limit as its own time
limit, so it normally stops in time with the best plan found; a job still unfinished at the
hard limit is cancelled: 503 when no worker was free, 504 when the solve was too slow.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from allocator.api.deps import DispatcherDep, IntakeDep, KeyDep, SettingsDep, StoreDep
from allocator.api.routes.plans import ERRORS, IdempotencyKey, read_json, read_table, table_records
from allocator.api.schemas import ErrorOut, SolveOut, plan_out
from allocator.api.store import FINISHED, Job
from allocator.api.submission import RETRY_AFTER_SECONDS, SUBMISSION_BODY, submit
from allocator.plan.plan import TABLES

router = APIRouter(prefix="/v1", tags=["solve"])

WAIT_STEP = 0.1  # seconds between looks at the job


@router.post("/solve", responses={**ERRORS, 504: {"model": ErrorOut}}, openapi_extra=SUBMISSION_BODY)
async def solve_now(request: Request, key: KeyDep, store: StoreDep, settings: SettingsDep, dispatcher: DispatcherDep,
                    intake: IntakeDep, idempotency_key: IdempotencyKey = None) -> SolveOut:
    """Solve a small scenario (at most ALLOCATOR_SYNC_MAX_HOUSEHOLDS households) and return
    the plan: its job, summary and tables."""
    started = time.monotonic()
    job, _ = await submit(request, key=key, store=store, settings=settings, dispatcher=dispatcher, gate=intake,
                          kind="sync", idempotency_key=idempotency_key)
    while job.status not in FINISHED:
        if time.monotonic() - started > settings.sync_time_limit:
            await run_in_threadpool(store.cancel, job.plan_id)
            dispatcher.wake()
            if job.status == "queued":
                raise HTTPException(503, "no worker was free within the time limit; retry, or submit to /v1/plans",
                                    headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
            raise HTTPException(504, f"no plan within {settings.sync_time_limit:g} s, so the solve was cancelled; "
                                     "submit the scenario to /v1/plans instead")
        await asyncio.sleep(WAIT_STEP)
        job = await run_in_threadpool(store.job, job.plan_id)
    if job.status == "failed" and job.error and job.error.get("issues"):
        return JSONResponse(ErrorOut(**job.error).model_dump(), status_code=422)
    return await run_in_threadpool(_solved, job)


def _solved(job: Job) -> SolveOut:
    if job.status != "done":
        return SolveOut(plan=plan_out(job))
    folder = Path(job.result_dir)
    tables = {name: table_records(read_table(folder / f"{name}.csv")) for name in TABLES}
    return SolveOut(plan=plan_out(job), summary=read_json(folder / "summary.json"), tables=tables)
