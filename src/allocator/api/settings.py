"""Service settings, read from ``ALLOCATOR_*`` environment variables (pydantic-settings).

Settings live only at the edge: the library takes explicit arguments, the service reads
these once in :func:`allocator.api.create_app` and passes them down.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from allocator.api.schemas import Language


class Settings(BaseSettings):
    """Where jobs are kept, how many solve at once, and the limits on what a client may send."""

    model_config = SettingsConfigDict(env_prefix="ALLOCATOR_", extra="ignore")

    data_dir: Path = Field(Path("allocator-data"), description="stored inputs and results, one folder per plan")
    db_url: str | None = Field(None, description="job store; default sqlite:///DATA_DIR/allocator.db")
    workers: int = Field(1, ge=1, le=64, description="worker processes for submitted plans")
    sync_workers: int = Field(1, ge=1, le=64, description="worker processes kept for POST /v1/solve")
    queue_size: int = Field(20, ge=1, description="queued plans in all; beyond it 503 with Retry-After")
    queue_per_key: int = Field(5, ge=1, description="queued plans per key; beyond it 429 with Retry-After")
    max_request_bytes: int = Field(100 * 2**20, ge=1024, description="largest request body (bytes)")
    max_households: int = Field(200_000, ge=1, description="most households (rows) a submission may hold")
    max_time_limit: float = Field(3600.0, gt=0, description="solver time limit cap for submitted plans (s)")
    sync_max_households: int = Field(2_000, ge=1, description="most households for POST /v1/solve")
    sync_time_limit: float = Field(30.0, gt=0, description="hard limit of POST /v1/solve (s), queueing included")
    max_attempts: int = Field(3, ge=1, description="starts of one plan (restarts included) before it fails")
    hard_limit_grace: float = Field(300.0, ge=0, description="seconds a job may run beyond its solver time "
                                                            "limit before its worker is stopped")
    hard_stop_grace: float = Field(30.0, ge=0, description="seconds a worker gets, after its hard limit, to "
                                                         "write its best plan before it is killed")
    max_job_seconds: float = Field(6 * 3600.0, gt=0, description="hard wall-clock limit of any job's worker (s)")
    intake_workers: int = Field(1, ge=1, le=64, description="uploads parsed and checked at once, each in its "
                                                            "own process")
    intake_queue: int = Field(8, ge=0, description="uploads waiting for a checking process; beyond it 429")
    intake_memory_mb: int = Field(4096, ge=1024, description="address space of a process checking an upload (MiB)")
    progress_queue: int = Field(4, ge=0, description="progress uploads waiting to be monitored; beyond it 429")
    retention_days: float | None = Field(None, gt=0, description="finished plans older than this are purged "
                                                                 "(default: kept)")
    audit_log: Path | None = Field(None, description="JSON-lines audit log; default DATA_DIR/audit.log")
    lang: Language = Field("en", description="language of reports, workbooks and the web page when a request "
                                             "names none (as the command line's ALLOCATOR_LANG)")

    @field_validator("data_dir")
    @classmethod
    def _absolute(cls, folder: Path) -> Path:
        """Stored job paths must not depend on the folder the server was started from."""
        return folder.expanduser().resolve()

    def audit_path(self) -> Path:
        """The audit log file: ``audit_log`` or ``audit.log`` inside ``data_dir``."""
        return self.audit_log or self.data_dir / "audit.log"

    def database_url(self) -> str:
        """The job store URL: ``db_url`` or a SQLite file inside ``data_dir``."""
        return self.db_url or f"sqlite:///{self.data_dir / 'allocator.db'}"
