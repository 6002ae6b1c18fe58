"""``/v1/health`` and ``/v1/backends``: open to all, they say nothing about anyone's data."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from allocator import __version__
from allocator.api.deps import DispatcherDep, SettingsDep, StoreDep
from allocator.api.schemas import BackendOut, HealthOut
from allocator.solvers import BACKENDS

router = APIRouter(prefix="/v1", tags=["system"])


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
