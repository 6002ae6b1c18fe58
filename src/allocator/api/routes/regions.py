"""``/v1/regions``: the region registry scope is decided on (see :mod:`allocator.api.regions`)."""

from __future__ import annotations

import anyio
from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from allocator.api.deps import AdminDep, KeyDep, StoreDep
from allocator.api.regions import read_region_records, register, subtree
from allocator.api.routes.plans import ERRORS
from allocator.api.schemas import RegionRecord, RegionsIn, RegionsOut
from allocator.api.store import JobStore, Region

router = APIRouter(prefix="/v1", tags=["regions"])


@router.get("/regions", responses=ERRORS)
def get_regions(key: KeyDep, store: StoreDep) -> RegionsOut:
    """The registered region tree: all of it for an admin key; for a region key its subtree
    and the regions above it."""
    registry = store.registry()
    shown = list(registry.values()) if key.admin else subtree(registry, key.region)
    return RegionsOut(regions=[RegionRecord(**region.__dict__) for region in shown], total=len(registry))


@router.put("/regions", responses=ERRORS)
async def put_regions(body: RegionsIn, admin: AdminDep, store: StoreDep) -> RegionsOut:
    """Register the region tree (admin key only): 422 naming each row whose parent or level
    differs from the registry, or that breaks the tree (unknown parent, cycle, level order)."""
    records = [record.model_dump() for record in body.regions]
    regions = await anyio.to_thread.run_sync(_checked, store, records)
    added = await run_in_threadpool(store.add_regions, regions)
    total = len(await run_in_threadpool(store.registry))
    return RegionsOut(regions=[RegionRecord(**region.__dict__) for region in regions], added=added, total=total)


def _checked(store: JobStore, records: list[dict]) -> list[Region]:
    return register(store.registry(), read_region_records(records))
