"""Load on the HTTP service: status polls at a fixed rate while solves run.

Starts ``allocator serve`` on 127.0.0.1 (a free port, a fresh data folder, two solve
workers), makes an admin key, submits two solves that each run for the whole measurement,
then sends ``GET /v1/plans/{id}`` at ``--rate`` requests per second for ``--duration``
seconds (open loop: each request leaves at its scheduled time, so a slow server cannot slow
the load down, and latency counts from that time). Prints p50/p95/p99/max latency, errors
and the achieved rate, then stops the server. Bounded: rate × duration requests, loopback
only.

    .venv/bin/python benchmarks/api_load.py [--rate 200] [--duration 30]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

BIN = Path(sys.executable).parent
SOLVE = {"name": "load", "start_year": 2016, "deadline_year": 2020,
         "generate": {"preset": "demo", "households": 200, "seed": 0}, "solver": {"mip_gap": 1e-6}}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_server(data_dir: Path, workers: int) -> tuple[subprocess.Popen, str, dict]:
    """The server, its base URL and an admin key's header."""
    env = {**os.environ, "ALLOCATOR_DATA_DIR": str(data_dir)}
    made = subprocess.run([BIN / "allocator", "keys", "create", "--region", "*", "--create"], env=env,
                          capture_output=True, text=True, check=True)
    port = free_port()
    server = subprocess.Popen([BIN / "allocator", "serve", "--port", str(port), "--workers", str(workers)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{base}/v1/health").status_code == 200:
                break
        except httpx.TransportError:
            if time.monotonic() > deadline:
                server.kill()
                raise SystemExit("the server did not start within 30 s") from None
            time.sleep(0.1)
    return server, base, {"Authorization": f"Bearer {made.stdout.strip().splitlines()[-1]}"}


async def get(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> int:
    """One keep-alive HTTP/1.1 GET on an open connection; returns the status code. A bare
    client, so the load generator's own CPU (httpx takes ~3 ms a request) does not starve the
    server it measures on two cores."""
    writer.write(request)
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:"))
    await reader.readexactly(length)
    return int(head.split(b" ", 2)[1])


async def poll(base: str, headers: dict, plan_ids: list[str], rate: float, duration: float,
               senders: int = 32) -> dict:
    """Open-loop GETs of the plans' status: request i is due at i / rate; ``senders``
    connections share them out, and latency counts from the due time, so a lagging server
    shows up in the numbers instead of slowing the load down."""
    total = int(rate * duration)
    latencies = np.full(total, np.nan)
    errors: dict[str, int] = {}
    host, port = base.removeprefix("http://").split(":")
    auth = headers["Authorization"]
    requests = [f"GET /v1/plans/{plan_id} HTTP/1.1\r\nHost: {host}\r\nAuthorization: {auth}\r\n\r\n".encode()
                for plan_id in plan_ids]
    start = time.perf_counter()

    async def sender(first: int) -> None:
        reader, writer = await asyncio.open_connection(host, int(port))
        for i in range(first, total, senders):
            due = start + i / rate
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            try:
                status = await asyncio.wait_for(get(reader, writer, requests[i % len(requests)]), 10)
            except (TimeoutError, OSError, asyncio.IncompleteReadError) as error:
                errors[type(error).__name__] = errors.get(type(error).__name__, 0) + 1
                writer.close()
                reader, writer = await asyncio.open_connection(host, int(port))
                continue
            if status != 200:
                errors[str(status)] = errors.get(str(status), 0) + 1
            latencies[i] = time.perf_counter() - due
        writer.close()

    await asyncio.gather(*(sender(k) for k in range(senders)))
    wall = time.perf_counter() - start
    done = latencies[~np.isnan(latencies)] * 1000
    return {"requests": total, "answered": len(done), "errors": errors, "wall": wall,
            "p50": np.percentile(done, 50), "p95": np.percentile(done, 95), "p99": np.percentile(done, 99),
            "max": done.max()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=200.0, help="status polls per second")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of polling")
    parser.add_argument("--solves", type=int, default=2, help="solves running meanwhile (one worker each)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="allocator-load-") as folder:
        server, base, headers = start_server(Path(folder), workers=args.solves)
        try:
            scenario = {**SOLVE, "solver": {**SOLVE["solver"], "time_limit": args.duration + 30}}
            plan_ids = [httpx.post(f"{base}/v1/plans", json={"scenario": {**scenario, "name": f"load-{n}"}},
                                   headers=headers).json()["plan_id"] for n in range(args.solves)]
            while any(httpx.get(f"{base}/v1/plans/{p}", headers=headers).json()["status"] != "running"
                      for p in plan_ids):
                time.sleep(0.2)
            load_before = os.getloadavg()[0]
            cpu_before = cpu_seconds(server.pid), time.process_time()
            result = asyncio.run(poll(base, headers, plan_ids, args.rate, args.duration))
            server_cpu, client_cpu = cpu_seconds(server.pid) - cpu_before[0], time.process_time() - cpu_before[1]
            states = [httpx.get(f"{base}/v1/plans/{p}", headers=headers).json() for p in plan_ids]
            for plan_id in plan_ids:
                httpx.delete(f"{base}/v1/plans/{plan_id}", headers=headers)
        finally:
            server.terminate()
            server.wait(30)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}, "
          f"load average {load_before:.1f} before / {os.getloadavg()[0]:.1f} after")
    print(f"{result['requests']:,} GET /v1/plans/{{id}} in {result['wall']:.1f} s "
          f"({result['answered'] / result['wall']:.0f}/s answered) while {args.solves} solves ran "
          f"({', '.join(s['status'] + ' ' + (s['progress']['phase'] or '') for s in states)})")
    print(f"CPU during the polls: server {server_cpu:.1f} s ({server_cpu / result['requests'] * 1000:.2f} ms per "
          f"request), load generator {client_cpu:.1f} s")
    print(f"latency ms: p50 {result['p50']:.1f}, p95 {result['p95']:.1f}, p99 {result['p99']:.1f}, "
          f"max {result['max']:.1f}; errors: {result['errors'] or 'none'}")


if __name__ == "__main__":
    main()
