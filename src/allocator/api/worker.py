"""Solves run in worker processes, never in the server's event loop.

:class:`Dispatcher` is a thread in the server that starts one process per job (at most
``workers`` for submitted plans and ``sync_workers`` for POST /v1/solve), reaps them, and
stops the processes of cancelled jobs. Only one server process per job store dispatches:
it holds an exclusive lock on ``DATA_DIR/dispatcher.lock``, which the operating system
drops when the process dies, however it dies. Whoever takes the lock first re-queues the
jobs left ``running`` by a dead dispatcher (:meth:`JobStore.recover`).

:func:`run_job` is the worker process: it runs the library's pipeline
(:func:`allocator.solve`, :meth:`Plan.write`; for a re-plan job, whose input folder holds
REPLAN_REQUEST instead of a scenario, :func:`allocator.replan_from` and :meth:`Replan.write`)
and writes progress and the outcome into the store itself, so nothing is lost when the
server goes away. It exits when the server does: it holds the read end of a pipe whose only
write end the server keeps, and end of file on it means the server is gone (a worker's
parent is the forkserver, which outlives the server as long as any worker runs, so the
parent pid tells nothing).

:func:`run_in_worker` runs short work a waiting client needs (checking an upload, monitoring a
progress record, rendering a report: seconds of pandas) in a fresh process of the same
forkserver, so it neither holds the server's GIL against status calls nor leaves its memory
in the server.

Hard limits: a job's worker may run for its solves' time limit plus ``ALLOCATOR_HARD_LIMIT_GRACE``,
and never beyond ``ALLOCATOR_MAX_JOB_SECONDS``. At that limit the worker stops its own solves
(HiGHS ends as at a time limit, with its best plan), writes what it has and ends the job
``failed`` with the reason, the plan kept; a worker still running ``ALLOCATOR_HARD_STOP_GRACE``
seconds later is killed. A worker that dies without a result is re-queued once, as a server crash
re-queues it; the second death fails the job with the reason.

The dispatcher also sweeps the data folder when it starts and every SWEEP_SECONDS: plans
finished more than ``ALLOCATOR_RETENTION_DAYS`` ago are purged, and plan folders that no job
owns (an upload cut off by a crash) are removed.
"""

from __future__ import annotations

import fcntl
import io
import json
import logging
import math
import multiprocessing
import os
import re
import shutil
import signal
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from pathlib import Path

from allocator.api.settings import Settings
from allocator.api.store import FINISHED, Job, JobStore, open_store
from allocator.errors import InputError, SolverUnavailable
from allocator.solvers.base import STOP_SOLVES

log = logging.getLogger("allocator.api")

POLL_SECONDS = 0.25  # how often the dispatcher looks for new, finished and cancelled jobs
PROGRESS_EVERY = 0.5  # seconds between progress writes within one phase
STOP_GRACE = 5.0  # seconds a terminated worker gets before it is killed
WORKER_NICENESS = 10  # submitted plans yield the CPU to the server and to synchronous solves, whose
#                      clients are waiting: status calls stay fast while long solves run
REPLAN_REQUEST = "replan-request.json"  # a re-plan job's input: parent plan and record folders, options
SWEEP_SECONDS = 3600.0  # between sweeps for expired plans and orphaned folders
ORPHAN_SECONDS = 60.0  # a plan folder with no job and no receiving process is an orphan after this long
RECEIVING = ".receiving"  # see allocator.api.submission.receiving


def _context() -> multiprocessing.context.BaseContext:
    """forkserver where the platform has it (a worker starts in milliseconds with the library
    preloaded, and inherits nothing of the server's threads or sockets), else spawn."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["allocator.api.worker", "allocator.optimize.pipeline"])
        return context
    return multiprocessing.get_context("spawn")


def hard_limit(job: Job, settings: Settings) -> float:
    """Seconds a job's worker may run: its solves' time limit plus the grace, at most the
    service-wide maximum (an explain job, which re-solves as often as its counties need, and a
    job with no time limit get the maximum)."""
    if job.time_limit is None or job.explain:
        return settings.max_job_seconds
    return min(job.time_limit + settings.hard_limit_grace, settings.max_job_seconds)


def describe_exit(code: int | None) -> str:
    """A worker's exit code in words."""
    if code is not None and code < 0:
        name = signal.Signals(-code).name if -code in signal.valid_signals() else str(-code)
        hint = " (the system stops a process so when it runs out of memory)" if -code == signal.SIGKILL else ""
        return f"was killed by signal {name}{hint}"
    return f"ended with exit code {code}"


@dataclass
class _Running:
    kind: str
    attempt: int
    process: multiprocessing.process.BaseProcess
    lifeline: Connection  # the write end; closing it (or the server dying) ends the worker
    limit: float = math.inf  # hard wall-clock limit (s)
    started: float = field(default_factory=time.monotonic)

    def end(self, grace: float = STOP_GRACE) -> None:
        """Terminate the worker, kill it if it does not stop within ``grace`` seconds (at once
        when 0)."""
        if self.process.is_alive() and grace > 0:
            self.process.terminate()
            self.process.join(grace)
        if self.process.is_alive():
            self.process.kill()
        self.process.join()
        self.lifeline.close()


class Dispatcher:
    """Starts queued jobs in worker processes, reaps them and stops cancelled ones."""

    def __init__(self, store: JobStore, settings: Settings):
        self.store = store
        self.settings = settings
        self.slots = {"plan": settings.workers, "sync": settings.sync_workers}
        self.running: dict[str, _Running] = {}
        self._wake = threading.Event()
        self._starting = threading.Lock()  # held from claiming a job until its worker is in ``running``
        self._stop = threading.Event()
        self._lock_file: io.BufferedWriter | None = None
        self._thread = threading.Thread(target=self._loop, name="allocator-dispatcher", daemon=True)
        self._context = _context()
        self._swept = -math.inf

    @property
    def dispatching(self) -> bool:
        """True when this server process holds the dispatcher lock."""
        return self._lock_file is not None

    def holds(self, plan_id: str) -> bool:
        """True while a worker runs the plan or is being started for it (a purge waits on this)."""
        with self._starting:
            return plan_id in self.running

    def start(self) -> None:
        """Take the dispatcher lock now, when no other server holds it (so a health call right
        after start-up says who dispatches), then dispatch in the background."""
        try:
            self._take_lock()
        except Exception:  # as in the loop: a busy database is retried there
            log.exception("dispatcher lock at start-up failed; retrying")
        self._thread.start()

    def wake(self) -> None:
        """Look at the queue now (a job was added or cancelled)."""
        self._wake.set()

    def stop(self) -> None:
        """Stop dispatching; running workers are stopped and their jobs put back in the queue,
        so the next server start runs them again."""
        self._stop.set()
        self._wake.set()
        self._thread.join()
        for plan_id, run in list(self.running.items()):
            run.end()
            if self.store.requeue(plan_id, run.attempt):
                log.info("plan %s re-queued at shutdown", plan_id)
        self.running.clear()
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                if self._lock_file is None:
                    self._take_lock()
                if self._lock_file is not None:
                    self._reap()
                    self._stop_cancelled()
                    self._stop_overdue()
                    self._start_queued()
                    if time.monotonic() - self._swept > SWEEP_SECONDS:
                        self._sweep()
            except Exception:  # the dispatcher must outlive a busy database or a failed fork
                log.exception("dispatcher step failed; retrying")
            self._wake.wait(POLL_SECONDS)
            self._wake.clear()

    def _take_lock(self) -> None:
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        handle = open(self.settings.data_dir / "dispatcher.lock", "wb")  # noqa: SIM115 (held while dispatching)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return
        self._lock_file = handle
        requeued, failed = self.store.recover(self.settings.max_attempts)
        for plan_id in requeued:
            log.info("plan %s was running when the last dispatcher stopped: re-queued", plan_id)
        for plan_id in failed:
            log.warning("plan %s failed: started %d times without finishing", plan_id, self.settings.max_attempts)

    def _reap(self) -> None:
        for plan_id, run in list(self.running.items()):
            if run.process.is_alive():
                continue
            run.end()
            del self.running[plan_id]
            how = describe_exit(run.process.exitcode)
            retried = self.store.lost(plan_id, run.attempt, self.settings.max_attempts, error={
                "detail": f"the worker process {how} without a result, and again when the plan was run once more; "
                          "submit it again, with more memory or a smaller scenario"})
            if retried is not None:
                log.warning("plan %s: worker %s without a result; %s", plan_id, how,
                            "re-queued" if retried else "failed")

    def _stop_overdue(self) -> None:
        """Kill the workers still running ``hard_stop_grace`` seconds past their hard limit (by
        then a worker has stopped its solves and written its best plan, unless it is stuck); a
        plan it wrote before (ahead of explain) stays the job's result."""
        for plan_id, run in list(self.running.items()):
            if time.monotonic() - run.started < run.limit + self.settings.hard_stop_grace:
                continue
            run.end(grace=0)  # it had its grace to stop itself
            del self.running[plan_id]
            job = self.store.job(plan_id)
            kept = "the plan written before is kept" if job is not None and job.result_dir else "no plan was written"
            if self.store.finish(plan_id, run.attempt, "failed", error={
                    "detail": f"the worker was killed at the hard limit of {run.limit:g} s (the solver time limit "
                              f"plus ALLOCATOR_HARD_LIMIT_GRACE, at most ALLOCATOR_MAX_JOB_SECONDS) and "
                              f"ALLOCATOR_HARD_STOP_GRACE; {kept}"}):
                log.warning("plan %s: worker killed at its hard limit of %g s", plan_id, run.limit)

    def _sweep(self) -> None:
        """Purge plans past the retention time; remove plan folders no job owns."""
        self._swept = time.monotonic()
        if self.settings.retention_days is not None:
            cutoff = datetime.now(UTC) - timedelta(days=self.settings.retention_days)
            for plan_id in self.store.finished_before(cutoff.isoformat(timespec="milliseconds")):
                job = self.store.job(plan_id)
                if job is not None and job.status in FINISHED:
                    purge(self.store, self.settings, job)
                    log.info("plan %s purged: finished more than %g days ago", plan_id,
                             self.settings.retention_days)
        for home in remove_orphans(self.store, self.settings):
            log.info("removed %s: no job owns it (an upload cut off)", home.name)

    def _stop_cancelled(self) -> None:
        for plan_id, run in list(self.running.items()):
            job = self.store.job(plan_id)
            if job is not None and job.attempt == run.attempt and job.status != "cancelled":
                continue  # still running, or finished and about to exit by itself
            run.end()
            del self.running[plan_id]
            log.info("plan %s: worker stopped (%s)", plan_id, job.status if job else "gone")

    def _start_queued(self) -> None:
        for kind, slots in self.slots.items():
            while sum(1 for run in self.running.values() if run.kind == kind) < slots:
                with self._starting:
                    job = self.store.claim_next(kind)
                    if job is None:
                        break
                    lifeline_in, lifeline_out = self._context.Pipe(duplex=False)
                    limit = hard_limit(job, self.settings)
                    process = self._context.Process(  # daemon: never outlives the server's interpreter
                        target=run_job, name=f"allocator-plan-{job.plan_id}", daemon=True,
                        args=(self.settings.database_url(), job.plan_id, job.attempt, job.input_dir, job.explain,
                              kind == "sync", lifeline_in, limit))
                    process.start()
                    lifeline_in.close()
                    self.running[job.plan_id] = _Running(kind, job.attempt, process, lifeline_out, limit)
                log.info("plan %s: attempt %d started in process %s", job.plan_id, job.attempt, process.pid)


class ProgressReporter:
    """The library's progress callback, written into the store: at each new phase, and at
    most every PROGRESS_EVERY seconds within a phase."""

    KEPT = ("incumbent", "bound", "gap", "expected_exits", "shortfall")

    def __init__(self, store: JobStore, plan_id: str, attempt: int):
        self.store, self.plan_id, self.attempt = store, plan_id, attempt
        self.phase: str | None = None
        self.last = 0.0
        self.kept: dict = {}

    def __call__(self, phase: str, **info) -> None:
        moment = time.monotonic()
        if phase == self.phase and moment - self.last < PROGRESS_EVERY:
            return
        self.phase, self.last = phase, moment
        for key in self.KEPT:  # a later phase without a value keeps the last one known
            value = _plain(info.get(key))
            if isinstance(value, int | float) and not isinstance(value, bool):
                self.kept[key] = float(value)
        details = {k: _plain(v) for k, v in info.items() if k not in self.KEPT and _plain(v) is not None}
        self.store.report_progress(self.plan_id, self.attempt, {"phase": phase, **self.kept, "details": details})


def _plain(value):
    """A JSON-safe scalar (finite number, text or boolean), or None."""
    if hasattr(value, "item"):  # numpy scalars
        value = value.item()
    if isinstance(value, bool | str):
        return value
    if isinstance(value, int | float):
        return value if math.isfinite(value) else None
    return None


def _exit_with_server(lifeline: Connection) -> None:
    """Exit as soon as the server is gone (end of file on the lifeline), so a job the next
    server re-queues is not solved twice."""

    def watch() -> None:
        try:
            lifeline.recv_bytes()  # the server never writes: this returns only at end of file
        except (EOFError, OSError):
            pass
        os._exit(70)

    threading.Thread(target=watch, name="server-watch", daemon=True).start()


def run_job(db_url: str, plan_id: str, attempt: int, input_dir: str, explain: bool, sync: bool,
            lifeline: Connection, limit: float = math.inf) -> None:
    """Worker process: solve the job's stored scenario (or re-plan as its stored request says),
    write the plan folder, record the outcome. At ``limit`` seconds its solves are stopped and
    the job ends ``failed``, keeping the best plan found by then."""
    import allocator
    from allocator.report.charts import write_plan_folder

    os.umask(0o077)
    _exit_with_server(lifeline)
    if not sync:
        os.nice(WORKER_NICENESS)
    if math.isfinite(limit):
        timer = threading.Timer(limit, STOP_SOLVES.set)
        timer.daemon = True
        timer.start()
    store = open_store(db_url)
    result_dir = Path(input_dir).parent / f"result-{attempt}"
    report = ProgressReporter(store, plan_id, attempt)
    overrun = {"detail": f"stopped at the hard limit of {limit:g} s (the solver time limit plus "
                         "ALLOCATOR_HARD_LIMIT_GRACE, at most ALLOCATOR_MAX_JOB_SECONDS)"}
    try:
        request = Path(input_dir) / REPLAN_REQUEST
        if request.is_file():
            plan = _replan(json.loads(request.read_text()), result_dir, report)
        else:
            plan = allocator.solve(allocator.load_scenario(Path(input_dir) / "scenario.yaml"), progress=report)
            write_plan_folder(plan, result_dir)
        if plan.expected_exits is not None:  # kept should the worker be stopped from here on
            store.keep_result(plan_id, attempt, str(result_dir), plan.status)
        if explain and not STOP_SOLVES.is_set():
            report("explain")
            _explain(plan_id, result_dir)
    except (InputError, SolverUnavailable) as error:
        issues = [issue.to_dict() for issue in getattr(error, "issues", [])]
        detail = f"{len(issues)} problem(s) in the input" if issues else str(error)
        data_dir = Path(input_dir).parents[2]
        store.finish(plan_id, attempt, "failed", error=scrub({"detail": detail, "issues": issues}, data_dir))
        log.info("plan %s failed: %s", plan_id, scrub(detail, data_dir))
        return
    except Exception as error:  # any crash is recorded; its message may quote data, so it is not logged
        detail = overrun["detail"] if STOP_SOLVES.is_set() else f"the solve failed ({type(error).__name__})"
        store.finish(plan_id, attempt, "failed", error={"detail": f"{detail}; the server log has the location"})
        log.error("plan %s: solve failed with %s at %s", plan_id, type(error).__name__, where_raised(error))
        return
    if STOP_SOLVES.is_set():
        kept = plan.expected_exits is not None
        store.finish(plan_id, attempt, "failed", plan_status=plan.status if kept else None,
                     result_dir=str(result_dir) if kept else None,
                     error={"detail": overrun["detail"] + ("; the best plan found by then is kept" if kept else
                                                           "; no plan had been found by then")})
        log.warning("plan %s stopped at its hard limit of %g s", plan_id, limit)
        return
    store.finish(plan_id, attempt, "done", plan_status=plan.status, result_dir=str(result_dir))


def purge(store: JobStore, settings: Settings, job: Job) -> None:
    """Remove a finished job: its folder (inputs, plan folders, progress records and their
    monitoring, cached report and workbook) and its record."""
    home = Path(job.input_dir).parent
    if home.parent == settings.data_dir / "plans":  # never anything outside the plans folder
        shutil.rmtree(home, ignore_errors=True)
    store.delete_job(job.plan_id)


def remove_orphans(store: JobStore, settings: Settings) -> list[Path]:
    """Remove the plan folders that no job owns and no process is filling; returns them."""
    plans = settings.data_dir / "plans"
    removed = [home for home in (sorted(plans.iterdir()) if plans.is_dir() else []) if _orphan(store, home)]
    for home in removed:
        shutil.rmtree(home, ignore_errors=True)
    return removed


def _orphan(store: JobStore, home: Path) -> bool:
    """No job owns ``home`` and no request is filling it (its RECEIVING marker is not locked; a
    folder without a marker must be ORPHAN_SECONDS old, as a request makes the marker just after it)."""
    try:
        with open(home / RECEIVING, "rb") as marker:
            fcntl.flock(marker, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return store.job(home.name) is None
    except FileNotFoundError:
        return store.job(home.name) is None and time.time() - home.stat().st_mtime > ORPHAN_SECONDS
    except OSError:  # locked: a request is filling it
        return False


def scrub(value, data_dir: Path):
    """``value`` (text, or a JSON-like structure of it) without the server's paths: anything
    under the data folder becomes 'the upload', so no error body shows where data lives."""
    pattern = re.compile(re.escape(str(data_dir)) + r"(/[^\s'\",;)]*)?")
    if isinstance(value, str):
        return pattern.sub("the upload", value)
    if isinstance(value, dict):
        return {key: scrub(item, data_dir) for key, item in value.items()}
    if isinstance(value, list):
        return [scrub(item, data_dir) for item in value]
    return value


def _replan(request: dict, result_dir: Path, report: ProgressReporter):
    """Re-plan the parent plan folder with the stored record, as ``allocator replan`` does; write
    the new plan folder (with diff.csv, replan.json and remaining/) and return the new plan."""
    from allocator.manage.replan import replan_folder

    result = replan_folder(request["plan_dir"], request["record_dir"], from_year=request["from_year"],
                           stability=request["stability"], time_limit=request["time_limit"], progress=report)
    result.write(result_dir)
    return result.plan


def monitor_record(plan_dir: str, record_dir: str, out_dir: str) -> tuple[list, bool] | None:
    """Worker process of a progress upload: monitor the record against the plan and write the
    monitoring folder; returns the record's problems and whether they were cut short (an
    InputError does not survive pickling), or None when it was written."""
    import allocator

    os.umask(0o077)
    try:
        allocator.monitor_progress(plan_dir, record_dir).write(out_dir)
    except InputError as error:
        return error.issues, error.truncated
    return None


def compute_risk(plan_dir: str, target: str, draws: int, seed: int, cost_overrun: float,
                 correlation: float) -> tuple[list, bool] | None:
    """Worker process of a risk request: sample the plan's futures in this process (no Dask
    cluster inside the service) and write risk.csv and risk.json into ``target`` (written whole,
    then moved into place); returns the problems, as :func:`monitor_record`, or None."""
    from allocator.whatif.risk import plan_risk

    os.umask(0o077)
    partial = Path(f"{target}.{os.getpid()}.part")
    try:
        plan_risk(plan_dir, draws, seed=seed, cost_overrun=cost_overrun, correlation=correlation,
                  workers=0).write(partial)
    except InputError as error:
        shutil.rmtree(partial, ignore_errors=True)
        return error.issues, error.truncated
    try:
        partial.rename(target)
    except OSError:  # another request wrote the same result first
        shutil.rmtree(partial, ignore_errors=True)
    return None


def render_report(plan_dir: str, target: str, lang: str) -> None:
    """Worker process: render the plan's HTML report in ``lang`` once, into ``target`` (written
    whole, then moved into place, so a reader never sees half a page)."""
    from allocator.report.html import build_report

    os.umask(0o077)
    partial = Path(f"{target}.{os.getpid()}.part")
    partial.write_text(build_report(Path(plan_dir), lang=lang))
    partial.replace(target)


def render_workbook(plan_dir: str, target: str, lang: str) -> None:
    """Worker process: write the plan's Excel workbook in ``lang`` once, into ``target`` (written
    whole, then moved into place, as the report)."""
    from allocator.report.workbook import write_workbook

    os.umask(0o077)
    write_workbook(Path(plan_dir), target, lang=lang)


def run_in_worker(function, *args, **kwargs):
    """``function(*args, **kwargs)`` in a fresh worker process (the library preloaded); its
    result, or its exception raised here. Blocks: call it from a thread, never in the event loop."""
    with ProcessPoolExecutor(max_workers=1, mp_context=_context()) as pool:
        return pool.submit(function, *args, **kwargs).result()


def _explain(plan_id: str, plan_dir: Path) -> None:
    """Write ``difficulties.json`` as ``allocator explain`` does."""
    from allocator.explain.difficulties import explain_plan, write_difficulties

    try:
        write_difficulties(plan_dir, explain_plan(plan_dir))
    except Exception as error:  # the plan stands without its explanation
        log.warning("plan %s: explain failed with %s at %s", plan_id, type(error).__name__, where_raised(error))


def where_raised(error: BaseException) -> str:
    """File and line where an exception was raised (no message, no values)."""
    tb = error.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return f"{Path(tb.tb_frame.f_code.co_filename).name}:{tb.tb_lineno}" if tb else "unknown"
