"""The HTTP service as deployed: ``allocator serve`` (uvicorn) in a subprocess on 127.0.0.1.

The plan it makes equals the CLI's; a server killed with SIGKILL mid-solve loses no job (its
worker exits too, and the next server re-runs the job); a schemathesis run generated from
the OpenAPI schema finds no server error.
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
from api_support import SLOW, TINY, records, upload, wait_for

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
