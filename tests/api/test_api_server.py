"""The HTTP service as deployed: ``allocator serve`` (uvicorn) in a subprocess on 127.0.0.1.

The plan it makes equals the CLI's; a server killed with SIGKILL mid-solve loses no job (its
worker exits too, and the next server re-runs the job); a solve that overruns is stopped at
its hard limit, and a stuck worker killed, each keeping its best plan; a killed worker's job is
retried once; an upload that overruns its checking process's memory is refused while the
server goes on; a schemathesis run generated from the OpenAPI schema finds no server error.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from allocator.api.store import SQLiteJobStore
from tests.support.api_support import SLOW, TINY, records, upload, wait_for

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    """``allocator serve`` on a free port with its own data folder; ``client`` talks to it."""

    def __init__(self, data_dir: Path, **settings):
        self.data_dir = data_dir
        self.env = {**os.environ, "ALLOCATOR_DATA_DIR": str(data_dir), "PYTHONUNBUFFERED": "1",
                    **{f"ALLOCATOR_{k.upper()}": str(v) for k, v in settings.items()}}
        self.process: subprocess.Popen | None = None
        self.client: httpx.Client | None = None

    def start(self) -> Server:
        port = free_port()
        self.log = open(self.data_dir.parent / f"server-{port}.log", "wb")  # noqa: SIM115 (closed in stop)
        self.process = subprocess.Popen([BIN / "allocator", "serve", "--port", str(port)], env=self.env,
                                        stdout=self.log, stderr=subprocess.STDOUT)
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
        deadline = time.monotonic() + 30
        while True:
            try:
                if self.client.get("/v1/health").status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            assert self.process.poll() is None, (self.data_dir.parent / f"server-{port}.log").read_text()
            assert time.monotonic() < deadline, "the server did not answer within 30 s"
            time.sleep(0.1)

    def key(self, region: str = "*") -> dict[str, str]:
        made = subprocess.run([BIN / "allocator", "keys", "create", "--region", region], env=self.env,
                              capture_output=True, text=True, check=True)
        return {"Authorization": f"Bearer {made.stdout.strip().splitlines()[-1]}"}

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        self.client.close()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.client.close()
        self.log.close()


@pytest.fixture
def server(tmp_path):
    """``server(**settings)`` starts ``allocator serve``; every one is stopped at the end."""
    started: list[Server] = []

    def start(**settings) -> Server:
        started.append(Server(tmp_path / "data", **settings).start())
        return started[-1]

    yield start
    for each in started:
        each.stop()


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([BIN / "allocator", *args], capture_output=True, text=True, check=True, cwd=cwd)


def test_submit_poll_read_equals_the_cli_plan(server, tmp_path):
    folder = tmp_path / "canonical"
    cli("generate", "canonical", str(folder), "--households", "200", "--years", "2016:2017", "--seed", "2")
    srv = server()
    admin = srv.key()
    submitted = srv.client.post("/v1/plans", files=upload(folder), headers=admin)
    assert submitted.status_code == 202, submitted.text
    plan_id = submitted.json()["plan_id"]
    done = wait_for(lambda path: srv.client.get(path, headers=admin), plan_id)
    assert done["status"] == "done", done

    cli("solve", str(folder / "scenario.yaml"), "--out", str(tmp_path / "cli-plan"), "--quiet")
    for name in ("households", "funding", "projects", "counties"):
        served = srv.client.get(f"/v1/plans/{plan_id}/tables/{name}", headers={**admin, "Accept": "text/csv"})
        assert served.text == (tmp_path / "cli-plan" / f"{name}.csv").read_text(), name
    summary = srv.client.get(f"/v1/plans/{plan_id}/summary", headers=admin).json()
    assert summary["status"] == "optimal" and summary["expected_exits"] > 0

    # a bad upload whose rows carry a name-like id: answered in full, logged nowhere
    households = (folder / "households.csv").read_text().replace("H0000002,", "Zhang-Wei-110105,", 1)
    bad = [(field, (name, households.replace(",true,", ",maybe,").encode(), kind) if name == "households.csv"
            else (name, content, kind)) for field, (name, content, kind) in upload(folder)]
    refused = srv.client.post("/v1/plans", files=bad, headers=admin)
    assert refused.status_code == 422 and "'maybe'" in refused.text
    logged = b"".join(path.read_bytes() for path in tmp_path.glob("server-*.log"))
    assert b"POST /v1/plans HTTP/1.1\" 422" in logged  # the log is written as it goes
    assert b"Zhang-Wei" not in logged and b"H000000" not in logged and b"maybe" not in logged


def processes_of(data_dir: Path) -> list[int]:
    """Pids of live processes started with this data folder in their environment (the server
    and its workers), so a test can see that none is left behind."""
    marker = f"ALLOCATOR_DATA_DIR={data_dir}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker in (entry / "environ").read_bytes().split(b"\0"):
                    state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
                    if state != "Z":
                        found.append(int(entry.name))
            except OSError:
                continue
    return found


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc to find leftover workers")
def test_kill_9_mid_solve_loses_no_job(server, tmp_path):
    srv = server(workers=1)
    admin = srv.key()
    scenario = {**SLOW, "solver": {**SLOW["solver"], "time_limit": 4}}
    plan_id = srv.client.post("/v1/plans", json={"scenario": scenario}, headers=admin).json()["plan_id"]
    running = wait_for(lambda path: srv.client.get(path, headers=admin), plan_id, statuses=("running",))
    assert running["attempt"] == 1
    time.sleep(1.0)  # into the solve proper
    srv.kill()

    store = SQLiteJobStore(tmp_path / "data" / "allocator.db")
    assert store.job(plan_id).status == "running"  # nobody cleaned up
    deadline = time.monotonic() + 10
    while processes_of(tmp_path / "data") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert processes_of(tmp_path / "data") == [], "a worker outlived its killed server"

    again = server(workers=1)
    done = wait_for(lambda path: again.client.get(path, headers=admin), plan_id, timeout=90)
    assert done["status"] == "done" and done["attempt"] == 2, done
    assert done["plan_status"] == "feasible"  # stopped by its time limit, with a plan
    assert again.client.get(f"/v1/plans/{plan_id}/tables/counties", headers=admin).json()["rows"] == 3
    tiny = again.client.post("/v1/solve", json={"scenario": TINY}, headers=admin)
    assert tiny.status_code == 200 and tiny.json()["plan"]["status"] == "done"


def stat_of(pid: int | str) -> tuple[str, int]:
    """A process's state letter and parent pid (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return fields[0], int(fields[1])


def children(pid: int) -> list[int]:
    """Live (not zombie) child processes of ``pid``."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (state := stat_of(entry.name))[1] == pid and state[0] != "Z":
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def job_workers(srv: Server) -> list[int]:
    """Pids of the server's worker processes: the children of its forkserver (while no upload is
    being checked, only the jobs' workers)."""
    forkservers = [pid for pid in children(srv.process.pid)
                   if b"forkserver" in Path(f"/proc/{pid}/cmdline").read_bytes()]
    return [pid for forkserver in forkservers for pid in children(forkserver)]


def new_worker(srv: Server, plan_id: str, attempt: int, admin: dict, known: tuple[int, ...] = ()) -> int:
    """The pid of the worker running ``attempt`` of the plan (the one worker not in ``known``)."""
    deadline = time.monotonic() + 30
    while True:
        status = srv.client.get(f"/v1/plans/{plan_id}", headers=admin).json()
        fresh = [pid for pid in job_workers(srv) if pid not in known]
        if status["status"] == "running" and status["attempt"] == attempt and len(fresh) == 1:
            return fresh[0]
        assert time.monotonic() < deadline, f"attempt {attempt} did not start: {status}, workers {fresh}"
        time.sleep(0.05)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds the workers in /proc")
def test_hard_limits_stop_an_overrunning_solve_and_kill_a_stuck_worker(server):
    """No grace beyond the time limit: a solve whose worker needs more than its 4 s time limit
    (it also builds the model) stops itself at the hard limit of 4 s and keeps its best plan; an
    explain job (hard limit ALLOCATOR_MAX_JOB_SECONDS=6) whose worker is stuck after writing its
    plan (SIGSTOP while it explains) is killed ALLOCATOR_HARD_STOP_GRACE later, and keeps that plan."""
    srv = server(workers=2, hard_limit_grace=0, max_job_seconds=6, hard_stop_grace=3)
    admin = srv.key()
    get = lambda path: srv.client.get(path, headers=admin)  # noqa: E731
    stuck = srv.client.post("/v1/plans", json={"scenario": TINY, "explain": True}, headers=admin).json()["plan_id"]
    stuck_pid = new_worker(srv, stuck, 1, admin)
    deadline = time.monotonic() + 20
    while (status := get(f"/v1/plans/{stuck}").json())["progress"].get("phase") != "explain":  # its plan written
        assert status["status"] == "running" and time.monotonic() < deadline, status
        time.sleep(0.02)
    assert status["plan_status"] == "optimal", status
    os.kill(stuck_pid, signal.SIGSTOP)
    overrun = {**SLOW, "solver": {**SLOW["solver"], "time_limit": 4}}
    overrun = srv.client.post("/v1/plans", json={"scenario": overrun}, headers=admin).json()["plan_id"]
    overrun_pid = new_worker(srv, overrun, 1, admin, known=(stuck_pid,))

    stopped = wait_for(get, overrun, timeout=30)
    assert stopped["status"] == "failed" and "stopped at the hard limit of 4 s" in stopped["error"]["detail"], stopped
    assert "best plan found by then is kept" in stopped["error"]["detail"] and stopped["plan_status"] == "feasible"
    assert get(f"/v1/plans/{overrun}/tables/counties").json()["rows"] == 3
    killed = wait_for(get, stuck, timeout=30)
    assert killed["status"] == "failed" and "killed at the hard limit of 6 s" in killed["error"]["detail"], killed
    assert "the plan written before is kept" in killed["error"]["detail"] and killed["plan_status"] == "optimal"
    for plan_id in (stopped["plan_id"], killed["plan_id"]):
        assert get(f"/v1/plans/{plan_id}/summary").json()["expected_exits"] > 0
    assert not {stuck_pid, overrun_pid} & set(job_workers(srv))


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds the workers in /proc")
def test_a_killed_worker_is_retried_once_then_the_job_fails(server):
    srv = server(workers=1)
    admin = srv.key()
    get = lambda path: srv.client.get(path, headers=admin)  # noqa: E731
    short = {**SLOW, "solver": {**SLOW["solver"], "time_limit": 2}}
    plan_id = srv.client.post("/v1/plans", json={"scenario": short}, headers=admin).json()["plan_id"]
    os.kill(first := new_worker(srv, plan_id, 1, admin), signal.SIGKILL)
    new_worker(srv, plan_id, 2, admin, known=(first,))
    retried = wait_for(get, plan_id, timeout=30)
    assert retried["status"] == "done" and retried["attempt"] == 2 and retried["plan_status"] == "feasible", retried

    plan_id = srv.client.post("/v1/plans", json={"scenario": SLOW}, headers=admin).json()["plan_id"]
    os.kill(first := new_worker(srv, plan_id, 1, admin), signal.SIGKILL)
    os.kill(new_worker(srv, plan_id, 2, admin, known=(first,)), signal.SIGKILL)
    failed = wait_for(get, plan_id, timeout=30)
    assert failed["status"] == "failed" and failed["attempt"] == 2, failed
    assert "killed by signal SIGKILL" in failed["error"]["detail"]


def memory_kib(pid: int, field: str) -> int:
    """A /proc/PID/status field in KiB: VmRSS (now) or VmHWM (the peak so far)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise KeyError(field)


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the server's memory from /proc")
def test_an_upload_is_parsed_outside_the_server(server, tmp_path):
    """A 15 MiB JSON upload (20,000 households) is streamed to disk and checked in a worker
    process: the server's peak memory grows by far less than the parse needs (the old server,
    parsing it itself, grew by about 9 times the body)."""
    folder = tmp_path / "big"
    cli("generate", "canonical", str(folder), "--households", "20000", "--years", "2016:2017", "--seed", "2")
    body = json.dumps({"scenario": {"name": "big", "start_year": 2016, "deadline_year": 2017},
                       "tables": records(folder)}).encode()
    assert len(body) > 14 * 2**20
    srv = server(max_households=1000)  # checked in full, then refused: nothing big is solved
    admin = srv.key()
    assert srv.client.post("/v1/solve", json={"scenario": TINY}, headers=admin).status_code == 200  # warm up
    before = memory_kib(srv.process.pid, "VmRSS")
    refused = srv.client.post("/v1/plans", content=body, headers={**admin, "Content-Type": "application/json"})
    assert refused.status_code == 413 and "21,500 households" in refused.json()["detail"], refused.text
    growth_mib = (memory_kib(srv.process.pid, "VmHWM") - before) / 1024
    assert growth_mib < 40, f"the server grew by {growth_mib:.0f} MiB for a {len(body) / 2**20:.0f} MiB upload"


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the server's memory from /proc")
def test_an_upload_over_the_checking_memory_cap_is_413_and_the_server_goes_on(server):
    """A 90 MiB JSON body of a million small records needs more than ALLOCATOR_INTAKE_MEMORY_MB=1024
    to parse (the checking process starts at about 500 MiB of address space): 413 naming the
    setting, the server's memory flat, and the next submission accepted."""
    record = b'{"household_id":"H0000001","village_id":"V0001","size":3,"poor":true,"income":1234.5,"note":null}'
    body = (b'{"scenario":{"name":"big","start_year":2016,"deadline_year":2017},"tables":{"households":['
            + b",".join([record] * 1_000_000) + b"]}}")
    srv = server(intake_memory_mb=1024)
    admin = srv.key()
    before = memory_kib(srv.process.pid, "VmRSS")
    refused = srv.client.post("/v1/plans", content=body, headers={**admin, "Content-Type": "application/json"})
    assert refused.status_code == 413 and "ALLOCATOR_INTAKE_MEMORY_MB" in refused.json()["detail"], refused.text
    assert (memory_kib(srv.process.pid, "VmHWM") - before) / 1024 < 200
    assert srv.client.get("/v1/health").status_code == 200
    assert srv.client.post("/v1/plans", json={"scenario": TINY}, headers=admin).status_code == 202
    assert [path.name for path in (srv.data_dir / "plans").iterdir()] == [srv.client.get(
        "/v1/plans", headers=admin).json()["plans"][0]["plan_id"]]  # nothing of the refused upload is kept


@pytest.mark.parametrize(("region", "phases"), [("*", "examples,fuzzing,stateful"), ("P1", "examples,coverage")])
def test_schemathesis_fuzz_finds_no_server_error(server, tmp_path, region, phases):
    """Every route, generated from the OpenAPI schema, with an admin key (edge and negative
    cases: empty headers, wrong types) and with a region key (random and stateful sequences)."""
    srv = server(sync_max_households=100, max_households=5000, queue_size=10_000, queue_per_key=10_000)
    key = srv.key(region)
    run = subprocess.run(
        [BIN / "st", "run", f"{srv.client.base_url}/openapi.json",
         "--header", f"Authorization:{key['Authorization']}", "--phases", phases,
         "--checks", "not_a_server_error,status_code_conformance,content_type_conformance,"
                     "response_schema_conformance,response_headers_conformance,negative_data_rejection",
         "--max-examples", "3", "--seed", "7", "--request-timeout", "30", "--no-color"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    routes = sum(len(methods) for methods in srv.client.get("/openapi.json").json()["paths"].values())
    assert f"Tested: {routes}" in run.stdout, run.stdout[-3000:]
