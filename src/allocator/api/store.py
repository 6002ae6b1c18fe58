"""The job store: plans (jobs), the regions that may see them, API keys and the region registry.

:class:`JobStore` is the interface the service uses; :class:`SQLiteJobStore` implements it
with the standard library's sqlite3 (WAL mode, so the server and its worker processes read
and write the same file at once). The SQL is plain and portable: a PostgreSQL store is the
same statements with ``%s`` placeholders behind the same methods, chosen by
:func:`open_store` from the URL's scheme.

A job's ``attempt`` is its run token: each start increments it, and a worker may only report
progress or finish while the job is still ``running`` under its own attempt. So a worker
left over from a killed server, or a cancelled one, can never overwrite a newer outcome.

The region registry is the authoritative region tree an admin loads (``allocator regions
load``, ``PUT /v1/regions``): a submission's regions must match it, and scope is decided on it.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

JOB_STATUSES = ("queued", "running", "done", "failed", "cancelled")
FINISHED = ("done", "failed", "cancelled")
ADMIN_REGION = "*"
REQUEUED = "status = 'queued', progress = '{}', result_dir = NULL, plan_status = NULL"  # a job put back in the queue


def now() -> str:
    """The current UTC time as ISO 8601 text (sorts as it reads)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class ApiKey:
    """An API key as stored: its public id and region; the secret itself is only hashed."""

    key_id: str
    region: str
    name: str
    created_at: str
    revoked_at: str | None = None

    @property
    def admin(self) -> bool:
        """An admin key (region ``*``) sees and may submit every region."""
        return self.region == ADMIN_REGION

    def sees(self, region_path: list[str]) -> bool:
        """True when the plan's region path (root first) lies in this key's subtree."""
        return self.admin or self.region in region_path


@dataclass(frozen=True)
class NewJob:
    """What a submission adds to the store."""

    plan_id: str
    key_id: str
    kind: str  # "plan" (POST /v1/plans) or "sync" (POST /v1/solve)
    region_path: list[str]  # root first; the last one is the lowest region holding every county
    scenario_name: str
    households: int
    input_dir: str
    explain: bool = False
    idempotency_key: str | None = None
    request_sha256: str | None = None  # fingerprint of the request, to tell a retry from a new request
    parent_plan_id: str | None = None  # a re-plan: the plan it re-plans
    time_limit: float | None = None  # seconds the job's solves may take in all (None: no own limit)


@dataclass(frozen=True)
class Region:
    """A region of the registry: its parent ('' at a root), level and name."""

    region_id: str
    parent_id: str
    level: str
    name: str = ""


@dataclass(frozen=True)
class Job:
    """A plan's job as stored: status, progress, outcome and timestamps."""

    plan_id: str
    key_id: str
    kind: str
    status: str
    region_path: list[str]
    scenario_name: str
    households: int
    explain: bool
    input_dir: str
    result_dir: str | None
    attempt: int
    progress: dict = field(default_factory=dict)
    plan_status: str | None = None
    error: dict | None = None
    idempotency_key: str | None = None
    request_sha256: str | None = None
    created_at: str = ""
    started_at: str | None = None
    finished_at: str | None = None
    updated_at: str = ""
    parent_plan_id: str | None = None
    time_limit: float | None = None
    deaths: int = 0  # attempts whose worker process died without a result

    @property
    def region(self) -> str:
        return self.region_path[-1] if self.region_path else ""


class JobStore(ABC):
    """Where jobs and keys live; every method is one short transaction."""

    # --- keys ------------------------------------------------------------------------------
    @abstractmethod
    def add_key(self, key_id: str, token_sha256: str, region: str, name: str = "") -> ApiKey:
        """Store a new key by the hash of its secret."""

    @abstractmethod
    def key_by_hash(self, token_sha256: str) -> ApiKey | None:
        """The key whose secret hashes to ``token_sha256``, unless revoked."""

    @abstractmethod
    def keys(self) -> list[ApiKey]:
        """Every key, revoked ones included, oldest first."""

    @abstractmethod
    def revoke_key(self, key_id: str) -> bool:
        """Revoke a key; False when there is no such active key."""

    # --- jobs ------------------------------------------------------------------------------
    @abstractmethod
    def add_job(self, new: NewJob) -> tuple[Job, bool]:
        """Queue a job; with an idempotency key already used by the same API key for the same
        kind, return the earlier job and False instead."""

    @abstractmethod
    def job(self, plan_id: str) -> Job | None:
        """One job by id."""

    @abstractmethod
    def job_by_idempotency(self, key_id: str, kind: str, idempotency_key: str) -> Job | None:
        """The job of ``kind`` an API key submitted under ``idempotency_key``."""

    @abstractmethod
    def jobs(self, region: str | None = None, status: str | None = None, limit: int = 50,
             offset: int = 0) -> list[Job]:
        """Jobs newest first; with ``region``, only those whose region path holds it."""

    @abstractmethod
    def count(self, status: str, key_id: str | None = None, kind: str | None = None) -> int:
        """How many jobs have ``status`` (optionally of one key, or of one kind)."""

    @abstractmethod
    def claim_next(self, kind: str) -> Job | None:
        """Mark the oldest queued job of ``kind`` running (attempt + 1) and return it."""

    @abstractmethod
    def report_progress(self, plan_id: str, attempt: int, progress: dict) -> bool:
        """Record progress of a running attempt; False when the job moved on (cancelled, re-run)."""

    @abstractmethod
    def finish(self, plan_id: str, attempt: int, status: str, *, plan_status: str | None = None,
               result_dir: str | None = None, error: dict | None = None) -> bool:
        """Record the outcome of a running attempt; False when the job moved on."""

    @abstractmethod
    def cancel(self, plan_id: str) -> bool:
        """Cancel a queued or running job; False when it had already finished."""

    @abstractmethod
    def requeue(self, plan_id: str, attempt: int) -> bool:
        """Put a running attempt back in the queue (its worker was stopped, not finished)."""

    @abstractmethod
    def keep_result(self, plan_id: str, attempt: int, result_dir: str, plan_status: str) -> bool:
        """Record the plan folder a running attempt has written (kept if the attempt is stopped later)."""

    @abstractmethod
    def lost(self, plan_id: str, attempt: int, max_attempts: int, error: dict) -> bool | None:
        """A running attempt's worker died: re-queue the job the first time (True), fail it with
        ``error`` after that or once started ``max_attempts`` times (False); None when it moved on."""

    @abstractmethod
    def delete_job(self, plan_id: str) -> bool:
        """Remove a job and its region rows; False when there was none."""

    @abstractmethod
    def finished_before(self, stamp: str) -> list[str]:
        """Ids of jobs that finished before ``stamp`` (ISO 8601 UTC)."""

    @abstractmethod
    def counts(self) -> dict[str, int]:
        """How many jobs are in each status."""

    @abstractmethod
    def solve_seconds(self) -> tuple[int, float]:
        """Finished attempts that ran (count) and their wall-clock seconds in all."""

    # --- region registry -------------------------------------------------------------------
    @abstractmethod
    def registry(self) -> dict[str, Region]:
        """The registered regions by id (empty when none is loaded)."""

    @abstractmethod
    def add_regions(self, regions: list[Region]) -> int:
        """Register new regions, update names of known ones; returns how many were new. The
        caller has checked that no known region changes parent or level."""

    @abstractmethod
    def recover(self, max_attempts: int) -> tuple[list[str], list[str]]:
        """After a server stopped without cleaning up: re-queue every running job, or fail it
        once it has been started ``max_attempts`` times; returns (re-queued, failed) ids."""


class SQLiteJobStore(JobStore):
    """:class:`JobStore` on one SQLite file; one connection per thread."""

    SCHEMA = """
    CREATE TABLE IF NOT EXISTS api_keys (
        key_id TEXT PRIMARY KEY,
        token_sha256 TEXT NOT NULL UNIQUE,
        region TEXT NOT NULL,
        name TEXT NOT NULL DEFAULT '',
        created_at TEXT NOT NULL,
        revoked_at TEXT
    );
    CREATE TABLE IF NOT EXISTS plans (
        plan_id TEXT PRIMARY KEY,
        key_id TEXT NOT NULL,
        idempotency_key TEXT,
        request_sha256 TEXT,
        kind TEXT NOT NULL,
        status TEXT NOT NULL,
        region_path TEXT NOT NULL,
        scenario_name TEXT NOT NULL,
        households INTEGER NOT NULL,
        explain INTEGER NOT NULL DEFAULT 0,
        input_dir TEXT NOT NULL,
        result_dir TEXT,
        attempt INTEGER NOT NULL DEFAULT 0,
        progress TEXT NOT NULL DEFAULT '{}',
        plan_status TEXT,
        error TEXT,
        created_at TEXT NOT NULL,
        started_at TEXT,
        finished_at TEXT,
        updated_at TEXT NOT NULL,
        parent_plan_id TEXT,
        time_limit REAL,
        deaths INTEGER NOT NULL DEFAULT 0,
        UNIQUE (key_id, kind, idempotency_key)
    );
    CREATE INDEX IF NOT EXISTS plans_by_status ON plans (status, kind, created_at);
    CREATE TABLE IF NOT EXISTS plan_regions (
        region_id TEXT NOT NULL,
        plan_id TEXT NOT NULL REFERENCES plans (plan_id),
        PRIMARY KEY (region_id, plan_id)
    );
    CREATE TABLE IF NOT EXISTS registry (
        region_id TEXT PRIMARY KEY,
        parent_id TEXT NOT NULL,
        level TEXT NOT NULL,
        name TEXT NOT NULL DEFAULT ''
    );
    """
    ADDED_COLUMNS = {"parent_plan_id": "TEXT", "time_limit": "REAL", "deaths": "INTEGER NOT NULL DEFAULT 0"}

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))  # the keys' hashes: owner only
        self._local = threading.local()
        db = self._db()
        db.execute("PRAGMA journal_mode=WAL")
        db.executescript(self.SCHEMA)
        with self._transaction() as db:  # a store made by an earlier version: add the columns it lacks
            present = {row["name"] for row in db.execute("PRAGMA table_info(plans)")}
            for name, kind in self.ADDED_COLUMNS.items():
                if name not in present:
                    db.execute(f"ALTER TABLE plans ADD COLUMN {name} {kind}")

    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA busy_timeout = 30000")
            db.execute("PRAGMA synchronous = NORMAL")
            self._local.db = db
        return db

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    # --- keys ------------------------------------------------------------------------------
    def add_key(self, key_id: str, token_sha256: str, region: str, name: str = "") -> ApiKey:
        key = ApiKey(key_id, region, name, now())
        self._db().execute("INSERT INTO api_keys (key_id, token_sha256, region, name, created_at) "
                           "VALUES (?, ?, ?, ?, ?)", (key_id, token_sha256, region, name, key.created_at))
        return key

    def key_by_hash(self, token_sha256: str) -> ApiKey | None:
        row = self._db().execute("SELECT key_id, region, name, created_at, revoked_at FROM api_keys "
                                 "WHERE token_sha256 = ? AND revoked_at IS NULL", (token_sha256,)).fetchone()
        return ApiKey(**row) if row else None

    def keys(self) -> list[ApiKey]:
        rows = self._db().execute("SELECT key_id, region, name, created_at, revoked_at FROM api_keys "
                                  "ORDER BY created_at, key_id").fetchall()
        return [ApiKey(**row) for row in rows]

    def revoke_key(self, key_id: str) -> bool:
        cursor = self._db().execute("UPDATE api_keys SET revoked_at = ? WHERE key_id = ? AND revoked_at IS NULL",
                                    (now(), key_id))
        return cursor.rowcount == 1

    # --- jobs ------------------------------------------------------------------------------
    def add_job(self, new: NewJob) -> tuple[Job, bool]:
        stamp = now()
        try:
            with self._transaction() as db:
                db.execute(
                    "INSERT INTO plans (plan_id, key_id, idempotency_key, request_sha256, kind, status, region_path, "
                    "scenario_name, households, explain, input_dir, created_at, updated_at, parent_plan_id, "
                    "time_limit) VALUES (?, ?, ?, ?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (new.plan_id, new.key_id, new.idempotency_key, new.request_sha256, new.kind,
                     json.dumps(new.region_path), new.scenario_name, new.households, int(new.explain),
                     new.input_dir, stamp, stamp, new.parent_plan_id, new.time_limit))
                db.executemany("INSERT INTO plan_regions (region_id, plan_id) VALUES (?, ?)",
                               [(region, new.plan_id) for region in dict.fromkeys(new.region_path)])
        except sqlite3.IntegrityError:
            earlier = new.idempotency_key and self.job_by_idempotency(new.key_id, new.kind, new.idempotency_key)
            if not earlier:
                raise
            return earlier, False
        return self.job(new.plan_id), True

    def job(self, plan_id: str) -> Job | None:
        row = self._db().execute("SELECT * FROM plans WHERE plan_id = ?", (plan_id,)).fetchone()
        return _job(row) if row else None

    def job_by_idempotency(self, key_id: str, kind: str, idempotency_key: str) -> Job | None:
        row = self._db().execute("SELECT * FROM plans WHERE key_id = ? AND kind = ? AND idempotency_key = ?",
                                 (key_id, kind, idempotency_key)).fetchone()
        return _job(row) if row else None

    def jobs(self, region: str | None = None, status: str | None = None, limit: int = 50,
             offset: int = 0) -> list[Job]:
        rows = self._db().execute(
            "SELECT * FROM plans p WHERE (? IS NULL OR p.status = ?) AND (? IS NULL OR EXISTS "
            "(SELECT 1 FROM plan_regions r WHERE r.plan_id = p.plan_id AND r.region_id = ?)) "
            "ORDER BY p.created_at DESC, p.plan_id LIMIT ? OFFSET ?",
            (status, status, region, region, limit, offset)).fetchall()
        return [_job(row) for row in rows]

    def count(self, status: str, key_id: str | None = None, kind: str | None = None) -> int:
        return self._db().execute(
            "SELECT COUNT(*) FROM plans WHERE status = ? AND (? IS NULL OR key_id = ?) AND (? IS NULL OR kind = ?)",
            (status, key_id, key_id, kind, kind)).fetchone()[0]

    def claim_next(self, kind: str) -> Job | None:
        with self._transaction() as db:
            row = db.execute("SELECT plan_id FROM plans WHERE status = 'queued' AND kind = ? "
                             "ORDER BY created_at, plan_id LIMIT 1", (kind,)).fetchone()
            if row is None:
                return None
            stamp = now()
            db.execute("UPDATE plans SET status = 'running', attempt = attempt + 1, started_at = ?, updated_at = ?, "
                       "progress = ? WHERE plan_id = ?",
                       (stamp, stamp, json.dumps({"phase": "starting"}), row["plan_id"]))
        return self.job(row["plan_id"])

    def report_progress(self, plan_id: str, attempt: int, progress: dict) -> bool:
        cursor = self._db().execute(
            "UPDATE plans SET progress = ?, updated_at = ? WHERE plan_id = ? AND attempt = ? AND status = 'running'",
            (json.dumps(progress), now(), plan_id, attempt))
        return cursor.rowcount == 1

    def finish(self, plan_id: str, attempt: int, status: str, *, plan_status: str | None = None,
               result_dir: str | None = None, error: dict | None = None) -> bool:
        if status not in FINISHED:
            raise ValueError(f"finish with one of {FINISHED} (got {status!r})")
        stamp = now()
        cursor = self._db().execute(
            "UPDATE plans SET status = ?, plan_status = COALESCE(?, plan_status), "
            "result_dir = COALESCE(?, result_dir), error = ?, finished_at = ?, updated_at = ? "
            "WHERE plan_id = ? AND attempt = ? AND status = 'running'",
            (status, plan_status, result_dir, json.dumps(error) if error is not None else None, stamp, stamp,
             plan_id, attempt))
        return cursor.rowcount == 1

    def cancel(self, plan_id: str) -> bool:
        stamp = now()
        cursor = self._db().execute(
            "UPDATE plans SET status = 'cancelled', finished_at = ?, updated_at = ? "
            "WHERE plan_id = ? AND status IN ('queued', 'running')", (stamp, stamp, plan_id))
        return cursor.rowcount == 1

    def requeue(self, plan_id: str, attempt: int) -> bool:
        cursor = self._db().execute(
            f"UPDATE plans SET {REQUEUED}, updated_at = ? WHERE plan_id = ? AND attempt = ? AND status = 'running'",
            (now(), plan_id, attempt))
        return cursor.rowcount == 1

    def keep_result(self, plan_id: str, attempt: int, result_dir: str, plan_status: str) -> bool:
        cursor = self._db().execute(
            "UPDATE plans SET result_dir = ?, plan_status = ?, updated_at = ? "
            "WHERE plan_id = ? AND attempt = ? AND status = 'running'",
            (result_dir, plan_status, now(), plan_id, attempt))
        return cursor.rowcount == 1

    def lost(self, plan_id: str, attempt: int, max_attempts: int, error: dict) -> bool | None:
        stamp = now()
        with self._transaction() as db:
            row = db.execute("SELECT deaths FROM plans WHERE plan_id = ? AND attempt = ? AND status = 'running'",
                             (plan_id, attempt)).fetchone()
            if row is None:
                return None
            if row["deaths"] == 0 and attempt < max_attempts:
                db.execute(f"UPDATE plans SET {REQUEUED}, deaths = deaths + 1, updated_at = ? WHERE plan_id = ?",
                           (stamp, plan_id))
                return True
            db.execute("UPDATE plans SET status = 'failed', deaths = deaths + 1, error = ?, finished_at = ?, "
                       "updated_at = ? WHERE plan_id = ?", (json.dumps(error), stamp, stamp, plan_id))
            return False

    def delete_job(self, plan_id: str) -> bool:
        with self._transaction() as db:
            db.execute("DELETE FROM plan_regions WHERE plan_id = ?", (plan_id,))
            return db.execute("DELETE FROM plans WHERE plan_id = ?", (plan_id,)).rowcount == 1

    def finished_before(self, stamp: str) -> list[str]:
        rows = self._db().execute("SELECT plan_id FROM plans WHERE finished_at IS NOT NULL AND finished_at < ? "
                                  "AND status IN ('done', 'failed', 'cancelled')", (stamp,)).fetchall()
        return [row["plan_id"] for row in rows]

    def counts(self) -> dict[str, int]:
        rows = self._db().execute("SELECT status, COUNT(*) AS n FROM plans GROUP BY status").fetchall()
        return {status: 0 for status in JOB_STATUSES} | {row["status"]: row["n"] for row in rows}

    def solve_seconds(self) -> tuple[int, float]:
        row = self._db().execute(
            "SELECT COUNT(*) AS n, COALESCE(SUM((julianday(finished_at) - julianday(started_at)) * 86400.0), 0) AS s "
            "FROM plans WHERE started_at IS NOT NULL AND finished_at IS NOT NULL").fetchone()
        return row["n"], max(float(row["s"]), 0.0)

    # --- region registry -------------------------------------------------------------------
    def registry(self) -> dict[str, Region]:
        rows = self._db().execute("SELECT region_id, parent_id, level, name FROM registry").fetchall()
        return {row["region_id"]: Region(**row) for row in rows}

    def add_regions(self, regions: list[Region]) -> int:
        with self._transaction() as db:
            before = db.execute("SELECT COUNT(*) FROM registry").fetchone()[0]
            db.executemany("INSERT INTO registry (region_id, parent_id, level, name) VALUES (?, ?, ?, ?) "
                           "ON CONFLICT (region_id) DO UPDATE SET name = excluded.name",
                           [(r.region_id, r.parent_id, r.level, r.name) for r in regions])
            return db.execute("SELECT COUNT(*) FROM registry").fetchone()[0] - before

    def recover(self, max_attempts: int) -> tuple[list[str], list[str]]:
        stamp = now()
        error = json.dumps({"detail": f"the plan was started {max_attempts} times and its worker was lost each "
                                      "time (server restarts or crashes); submit it again"})
        with self._transaction() as db:
            running = db.execute("SELECT plan_id, attempt FROM plans WHERE status = 'running'").fetchall()
            failed = [row["plan_id"] for row in running if row["attempt"] >= max_attempts]
            requeued = [row["plan_id"] for row in running if row["attempt"] < max_attempts]
            db.executemany("UPDATE plans SET status = 'failed', error = ?, finished_at = ?, updated_at = ? "
                           "WHERE plan_id = ?", [(error, stamp, stamp, plan_id) for plan_id in failed])
            db.executemany(f"UPDATE plans SET {REQUEUED}, updated_at = ? WHERE plan_id = ?",
                           [(stamp, plan_id) for plan_id in requeued])
        return requeued, failed


def _job(row: sqlite3.Row) -> Job:
    values = dict(row)
    values["region_path"] = json.loads(values["region_path"])
    values["progress"] = json.loads(values["progress"])
    values["error"] = json.loads(values["error"]) if values["error"] else None
    values["explain"] = bool(values["explain"])
    return Job(**values)


def open_store(url: str) -> JobStore:
    """The store behind ``url``: ``sqlite:///relative.db`` or ``sqlite:////absolute.db``."""
    if url.startswith("sqlite:///"):
        return SQLiteJobStore(Path(url.removeprefix("sqlite:///")))
    scheme = url.split(":", 1)[0]
    raise ValueError(f"unsupported job store URL scheme {scheme!r}: use sqlite:///PATH (a PostgreSQL store "
                     "implements allocator.api.store.JobStore with the same SQL)")
