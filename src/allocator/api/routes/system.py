"""``/v1/health``, ``/v1/backends`` and ``/metrics``: open to all, they say nothing about anyone's data."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, SummaryMetricFamily
from starlette.concurrency import run_in_threadpool

from allocator.api.deps import DispatcherDep, SettingsDep, StoreDep
from allocator.api.schemas import BackendOut, HealthOut
from allocator.solvers import BACKENDS
from allocator.version import __version__

router = APIRouter(prefix="/v1", tags=["system"])
metrics_router = APIRouter(tags=["system"])


class ServiceCollector:
    """The service's Prometheus metrics, read from the job store at each scrape (so every
    server process on one store reports the same numbers) and from this process's gates."""

    def __init__(self, app):
        self.app = app

    def collect(self):
        state = self.app.state
        counts = state.store.counts()
        jobs = GaugeMetricFamily("allocator_jobs", "Jobs (plans) by state", labels=["state"])
        for status, count in counts.items():
            jobs.add_metric([status], count)
        yield jobs
        yield GaugeMetricFamily("allocator_queue_length", "Plans waiting for a worker", value=counts["queued"])
        uploads = GaugeMetricFamily("allocator_uploads_in_progress", "Uploads being checked or waiting in this "
                                    "server process", labels=["kind"])
        uploads.add_metric(["submission"], state.intake.inside)
        uploads.add_metric(["progress"], state.monitoring.inside)
        yield uploads
        count, seconds = state.store.solve_seconds()
        yield SummaryMetricFamily("allocator_solve_seconds", "Wall-clock seconds of finished jobs, from the start "
                                  "of their last attempt to their end", count_value=count, sum_value=seconds)


@metrics_router.get("/metrics", response_class=Response, responses={
    200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "Prometheus text format"}})
async def metrics(request: Request) -> Response:
    """Jobs by state, queue length, uploads in progress and solve seconds, in the Prometheus
    text format; no key needed."""
    if not hasattr(request.app.state, "metrics"):
        registry = CollectorRegistry(auto_describe=False)
        registry.register(ServiceCollector(request.app))
        request.app.state.metrics = registry
    body = await run_in_threadpool(generate_latest, request.app.state.metrics)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


@router.get("/health")
async def health(settings: SettingsDep, store: StoreDep, dispatcher: DispatcherDep) -> HealthOut:
    """The service answers; how many plans wait and run, and whether this process runs solves."""
    queued, running = await run_in_threadpool(lambda: (store.count("queued"), store.count("running")))
    return HealthOut(status="ok", version=__version__, dispatching=dispatcher.dispatching,
                     workers=settings.workers, sync_workers=settings.sync_workers, queued=queued, running=running)


@router.get("/backends")
def backends() -> list[BackendOut]:
    """The solver backends a scenario's ``solver.backend`` may name, and which are installed."""
    return [BackendOut(name=name, available=cls.is_available(), version=cls.version() if cls.is_available() else None,
                       package=cls.package, supports_mip=cls.supports_mip, supports_duals=cls.supports_duals)
            for name, cls in BACKENDS.items()]
