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

:func:`run_in_worker` runs short work a waiting client needs (monitoring a progress record:
seconds of pandas) in a fresh process of the same forkserver, so it neither holds the
server's GIL against status calls nor leaves its memory in the server.
"""

from __future__ import annotations

import fcntl
import io
import json
import logging
import math
import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

from allocator.api.settings import Settings
from allocator.api.store import JobStore, open_store

log = logging.getLogger("allocator.api")

POLL_SECONDS = 0.25  # how often the dispatcher looks for new, finished and cancelled jobs
PROGRESS_EVERY = 0.5  # seconds between progress writes within one phase
STOP_GRACE = 5.0  # seconds a terminated worker gets before it is killed
WORKER_NICENESS = 10  # submitted plans yield the CPU to the server and to synchronous solves, whose
#                      clients are waiting: status calls stay fast while long solves run
REPLAN_REQUEST = "replan-request.json"  # a re-plan job's input: parent plan and record folders, options


def _context() -> multiprocessing.context.BaseContext:
    """forkserver where the platform has it (a worker starts in milliseconds with the library
    preloaded, and inherits nothing of the server's threads or sockets), else spawn."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["allocator.api.worker", "allocator.optimize"])
        return context
    return multiprocessing.get_context("spawn")


@dataclass
class _Running:
    kind: str
    attempt: int
    process: multiprocessing.process.BaseProcess
    lifeline: Connection  # the write end; closing it (or the server dying) ends the worker

    def end(self) -> None:
        """Terminate the worker, kill it if it does not stop within STOP_GRACE seconds."""
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(STOP_GRACE)
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
        self._stop = threading.Event()
        self._lock_file: io.BufferedWriter | None = None
        self._thread = threading.Thread(target=self._loop, name="allocator-dispatcher", daemon=True)
        self._context = _context()

    @property
    def dispatching(self) -> bool:
        """True when this server process holds the dispatcher lock."""
        return self._lock_file is not None

    def start(self) -> None:
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
                    self._start_queued()
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
            code = run.process.exitcode
            if self.store.finish(plan_id, run.attempt, "failed", error={
                    "detail": f"the worker process ended without a result (exit code {code}); it may have run "
                              "out of memory"}):
                log.warning("plan %s: worker ended with exit code %s and no result", plan_id, code)

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
                job = self.store.claim_next(kind)
                if job is None:
                    break
                lifeline_in, lifeline_out = self._context.Pipe(duplex=False)
                process = self._context.Process(  # daemon: never outlives the server's interpreter
                    target=run_job, name=f"allocator-plan-{job.plan_id}", daemon=True,
                    args=(self.settings.database_url(), job.plan_id, job.attempt, job.input_dir, job.explain,
                          kind == "sync", lifeline_in))
                process.start()
                lifeline_in.close()
                self.running[job.plan_id] = _Running(kind, job.attempt, process, lifeline_out)
                log.info("plan %s: attempt %d started in process %s", job.plan_id, job.attempt, process.pid)


class ProgressReporter:
    """The library's progress callback, written into the store: at each new phase, and at
    most every PROGRESS_EVERY seconds within a phase."""

    KEPT = ("incumbent", "bound", "gap", "expected_exits")

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
            lifeline: Connection) -> None:
    """Worker process: solve the job's stored scenario (or re-plan as its stored request says),
    write the plan folder, record the outcome."""
    import allocator
    from allocator.errors import InputError, SolverUnavailable

    _exit_with_server(lifeline)
    if not sync:
        os.nice(WORKER_NICENESS)
    store = open_store(db_url)
    result_dir = Path(input_dir).parent / f"result-{attempt}"
    report = ProgressReporter(store, plan_id, attempt)
    try:
        request = Path(input_dir) / REPLAN_REQUEST
        if request.is_file():
            plan = _replan(json.loads(request.read_text()), result_dir, report)
        else:
            plan = allocator.solve(allocator.load_scenario(Path(input_dir) / "scenario.yaml"), progress=report)
            plan.write(result_dir)
        if explain:
            report("explain")
            _explain(plan_id, result_dir)
    except (InputError, SolverUnavailable) as error:
        issues = [issue.to_dict() for issue in getattr(error, "issues", [])]
        detail = f"{len(issues)} problem(s) in the input" if issues else str(error)
        store.finish(plan_id, attempt, "failed", error={"detail": detail, "issues": issues})
        log.info("plan %s failed: %s", plan_id, detail)
        return
    except Exception as error:  # any crash is recorded; its message may quote data, so it is not logged
        store.finish(plan_id, attempt, "failed", error={"detail": f"the solve failed ({type(error).__name__}); "
                                                                  "the server log has the location"})
        log.error("plan %s: solve failed with %s at %s", plan_id, type(error).__name__, where_raised(error))
        return
    store.finish(plan_id, attempt, "done", plan_status=plan.status, result_dir=str(result_dir))


def _replan(request: dict, result_dir: Path, report: ProgressReporter):
    """Re-plan the parent plan folder with the stored record, as ``allocator replan`` does; write
    the new plan folder (with diff.csv, replan.json and remaining/) and return the new plan."""
    import allocator
    from allocator.explain import load_plan_context

    context = load_plan_context(request["plan_dir"])
    settings = context.scenario.solver
    if request["time_limit"] is not None:
        settings = settings.model_copy(update={"time_limit": request["time_limit"]})
    result = allocator.replan_from(context, request["record_dir"], from_year=request["from_year"],
                                   stability=request["stability"], settings=settings, progress_cb=report)
    result.write(result_dir)
    return result.plan


def monitor_record(plan_dir: str, record_dir: str, out_dir: str) -> tuple[list, bool] | None:
    """Worker process of a progress upload: monitor the record against the plan and write the
    monitoring folder; returns the record's problems and whether they were cut short (an
    InputError does not survive pickling), or None when it was written."""
    import allocator
    from allocator.errors import InputError

    try:
        allocator.monitor_progress(plan_dir, record_dir).write(out_dir)
    except InputError as error:
        return error.issues, error.truncated
    return None


def run_in_worker(function, *args):
    """``function(*args)`` in a fresh worker process (the library preloaded); its result, or its
    exception raised here. Blocks: call it from a thread, never in the event loop."""
    with ProcessPoolExecutor(max_workers=1, mp_context=_context()) as pool:
        return pool.submit(function, *args).result()


def _explain(plan_id: str, plan_dir: Path) -> None:
    """Write ``difficulties.json`` as ``allocator explain`` does."""
    from allocator.explain import explain_plan

    try:
        explain_plan(plan_dir)
    except Exception as error:  # the plan stands without its explanation
        log.warning("plan %s: explain failed with %s at %s", plan_id, type(error).__name__, where_raised(error))


def where_raised(error: BaseException) -> str:
    """File and line where an exception was raised (no message, no values)."""
    tb = error.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return f"{Path(tb.tb_frame.f_code.co_filename).name}:{tb.tb_lineno}" if tb else "unknown"
