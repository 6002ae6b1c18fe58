"""``/v1/plans/{id}/risk``: sample futures of a done plan, as ``allocator risk`` does.

The draws run in a fresh worker process (at most ``ALLOCATOR_SYNC_WORKERS`` renderings and risk
requests at once in each server process), without a Dask cluster of their own: the result is the
same for the same seed whatever runs it (:mod:`allocator.whatif.risk`). A result is kept beside the
plan (``DATA_DIR/plans/<id>/risk/<risk id>/``, risk.csv and risk.json) under a key of the request,
so the same request is answered from it."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import anyio
from fastapi import APIRouter, HTTPException
from starlette.concurrency import run_in_threadpool

from allocator.api.deps import ReportsDep, VisibleJobDep
from allocator.api.routes.plans import ERRORS, read_json, read_table, result_dir, table_records
from allocator.api.schemas import RiskOut, RiskRequest
from allocator.api.store import Job
from allocator.api.worker import compute_risk, run_in_worker
from allocator.errors import InputError

router = APIRouter(prefix="/v1/plans", tags=["plans"])


@router.post("/{plan_id}/risk", responses=ERRORS)
async def plan_risk(job: VisibleJobDep, body: RiskRequest, slots: ReportsDep) -> RiskOut:
    """Sample ``draws`` futures of a done plan: each county's chance to meet its hat-off year and
    the deadline, the poor at each year-end (mean, p10, p50, p90), and the money needed in the bad
    10 % of draws (with ``cost_overrun``) against the plan's spend. 409 for a plan without a
    solution; the same request again is answered from the first result."""
    plan_dir = await run_in_threadpool(_solved, job)
    risk_id = hashlib.sha256(json.dumps(body.model_dump(), sort_keys=True).encode()).hexdigest()[:32]
    folder = Path(job.input_dir).parent / "risk" / risk_id
    if not (folder / "risk.json").is_file():
        async with slots:
            if not (folder / "risk.json").is_file():
                folder.parent.mkdir(parents=True, exist_ok=True)
                problems = await anyio.to_thread.run_sync(
                    run_in_worker, compute_risk, str(plan_dir), str(folder), body.draws, body.seed,
                    body.cost_overrun, body.correlation)
                if problems is not None:
                    raise InputError(*problems)
    return await run_in_threadpool(_answer, job, risk_id, folder)


def _answer(job: Job, risk_id: str, folder: Path) -> RiskOut:
    summary = read_json(folder / "risk.json")
    summary["plan"] = job.plan_id  # the server's folder is no business of the client
    return RiskOut(plan_id=job.plan_id, risk_id=risk_id, summary=summary,
                   counties=table_records(read_table(folder / "risk.csv")))


def _solved(job: Job) -> Path:
    """The folder of a done plan that has a solution (409 otherwise)."""
    folder = result_dir(job)
    if read_json(folder / "summary.json").get("expected_exits") is None:
        raise HTTPException(409, f"plan {job.plan_id} has no solution ({job.plan_status}), so no futures to sample")
    return folder
