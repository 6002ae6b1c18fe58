"""The HTTP service as deployed: ``allocator serve`` (uvicorn) in a subprocess on 127.0.0.1.

The plan it makes equals the CLI's; a server killed with SIGKILL mid-solve loses no job (its
worker exits too, and the next server re-runs the job); a schemathesis run generated from
the OpenAPI schema finds no server error.
"""

from __future__ import annotations

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
from api_support import SLOW, TINY, upload, wait_for

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


def test_schemathesis_fuzz_finds_no_server_error(server, tmp_path):
    srv = server(sync_max_households=100, max_households=5000, queue_size=10_000, queue_per_key=10_000)
    admin = srv.key()
    run = subprocess.run(
        [BIN / "st", "run", f"{srv.client.base_url}/openapi.json",
         "--header", f"Authorization:{admin['Authorization']}",
         "--checks", "not_a_server_error,status_code_conformance,content_type_conformance,"
                     "response_schema_conformance,response_headers_conformance,negative_data_rejection",
         "--max-examples", "3", "--seed", "7", "--request-timeout", "30", "--no-color"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
