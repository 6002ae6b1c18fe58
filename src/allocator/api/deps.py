"""Dependencies of the routes: settings, store, dispatcher, work gates, the caller's key and a visible plan."""

from __future__ import annotations

from typing import Annotated

import anyio
from fastapi import Depends, HTTPException, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from allocator.api.auth import find_key
from allocator.api.settings import Settings
from allocator.api.store import ApiKey, Job, JobStore
from allocator.api.submission import Gate
from allocator.api.worker import Dispatcher

bearer = HTTPBearer(auto_error=False, description="an API key made by `allocator keys create --region R`")


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_store(request: Request) -> JobStore:
    return request.app.state.store


async def get_dispatcher(request: Request) -> Dispatcher:
    return request.app.state.dispatcher


async def get_intake(request: Request) -> Gate:
    return request.app.state.intake


async def get_monitoring(request: Request) -> Gate:
    return request.app.state.monitoring


async def get_reports(request: Request) -> anyio.CapacityLimiter:
    return request.app.state.reports


SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[JobStore, Depends(get_store)]
DispatcherDep = Annotated[Dispatcher, Depends(get_dispatcher)]
IntakeDep = Annotated[Gate, Depends(get_intake)]
MonitoringDep = Annotated[Gate, Depends(get_monitoring)]
ReportsDep = Annotated[anyio.CapacityLimiter, Depends(get_reports)]
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


def authenticate(request: Request, credentials: HTTPAuthorizationCredentials | None, store: JobStore) -> ApiKey:
    """The caller's active key (its id noted for the audit log); 401 without one."""
    key = find_key(store, credentials.credentials) if credentials is not None else None
    if key is None:
        raise HTTPException(401, "an API key is needed: send 'Authorization: Bearer KEY'",
                            headers={"WWW-Authenticate": "Bearer"})
    request.state.key_id = key.key_id
    return key


def get_key(request: Request, credentials: Credentials, store: StoreDep) -> ApiKey:
    return authenticate(request, credentials, store)


KeyDep = Annotated[ApiKey, Depends(get_key)]


def get_admin(key: KeyDep) -> ApiKey:
    """The caller's key when it is an admin key; 403 otherwise."""
    if not key.admin:
        raise HTTPException(403, f"this key is for region {key.region}; only an admin key ('*') may do this")
    return key


AdminDep = Annotated[ApiKey, Depends(get_admin)]


def get_visible_job(request: Request, plan_id: Annotated[str, Path(max_length=64)], credentials: Credentials,
                    store: StoreDep) -> Job:
    """The plan, when the caller's key may see it: it exists and lies in the key's region;
    else 404, the same answer for both, so no key learns which ids other regions hold. (Key
    and plan are read in one go: the status poll is the busiest call.)"""
    key = authenticate(request, credentials, store)
    job = store.job(plan_id)
    if job is None or not key.sees(job.region_path):
        raise HTTPException(404, f"no plan {plan_id!r}")
    return job


VisibleJobDep = Annotated[Job, Depends(get_visible_job)]
