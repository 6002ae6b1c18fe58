"""Large uploads against the HTTP service: the server's memory and status-poll latency.

Generates a canonical folder (``--households``, default 120,000: an 88 MiB JSON body), writes
it once as a JSON submission, starts ``allocator serve`` on 127.0.0.1 with the dispatcher lock
held by this script (so nothing is solved: the uploads are checked and queued, no more), then
sends ``--uploads`` (default 4) of that body at once, each from its own process, while polling
``GET /v1/plans/{id}`` at ``--rate`` per second (open loop, as ``api_load.py``). Prints the
server's resident memory before, its peak (VmHWM) and the growth, each upload's status and
time, and the poll latencies. Linux only (reads /proc).

    prlimit --as=8000000000 .venv/bin/python benchmarks/api_uploads.py [--households 120000] [--uploads 4]
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent))  # the repository: the tests package's helpers

from api_load import BIN, poll, start_server  # noqa: E402
from tests.support.api_support import TINY, records  # noqa: E402


def memory_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise KeyError(field)


def send(base: str, headers: dict, body_file: str, results) -> None:
    """One upload from its own process: (status, seconds)."""
    started = time.perf_counter()
    response = httpx.post(f"{base}/v1/plans", content=Path(body_file).read_bytes(),
                          headers={**headers, "Content-Type": "application/json"}, timeout=600)
    results.put((response.status_code, time.perf_counter() - started))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--households", type=int, default=120_000)
    parser.add_argument("--uploads", type=int, default=4)
    parser.add_argument("--rate", type=float, default=100.0, help="status polls per second")
    parser.add_argument("--duration", type=float, default=90.0, help="seconds of polling")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="allocator-uploads-") as folder:
        root = Path(folder)
        subprocess.run([BIN / "allocator", "generate", "canonical", str(root / "tables"), "--households",
                        str(args.households), "--years", "2016:2017", "--seed", "2"], check=True,
                       capture_output=True)
        body = json.dumps({"scenario": {"name": "big", "start_year": 2016, "deadline_year": 2017},
                           "tables": records(root / "tables")}).encode()
        (root / "body.json").write_bytes(body)
        del body
        size = (root / "body.json").stat().st_size / 2**20
        data = root / "data"
        data.mkdir()
        with open(data / "dispatcher.lock", "wb") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # the server queues, never solves
            os.environ.update(ALLOCATOR_MAX_HOUSEHOLDS="1000000", ALLOCATOR_QUEUE_PER_KEY="100")
            server, base, headers = start_server(data, workers=1)
            try:
                plan_id = httpx.post(f"{base}/v1/plans", json={"scenario": TINY}, headers=headers).json()["plan_id"]
                before = memory_kib(server.pid, "VmRSS")
                results = multiprocessing.get_context("spawn").Queue()
                senders = [multiprocessing.get_context("spawn").Process(
                    target=send, args=(base, headers, str(root / "body.json"), results)) for _ in range(args.uploads)]
                for sender in senders:
                    sender.start()
                polled = asyncio.run(poll(base, headers, [plan_id], args.rate, args.duration))
                for sender in senders:
                    sender.join()
                answers = [results.get() for _ in senders]
                peak = memory_kib(server.pid, "VmHWM")
            finally:
                server.terminate()
                server.wait(30)
    print(f"{args.uploads} uploads of {size:.1f} MiB ({args.households:,} households) at once")
    print(f"server memory: {before / 1024:.0f} MiB before, peak {peak / 1024:.0f} MiB, growth "
          f"{(peak - before) / 1024:.0f} MiB")
    print("uploads: " + ", ".join(f"{status} in {seconds:.1f} s" for status, seconds in answers))
    print(f"{polled['requests']:,} status polls in {polled['wall']:.1f} s: p50 {polled['p50']:.1f} ms, "
          f"p95 {polled['p95']:.1f} ms, p99 {polled['p99']:.1f} ms, max {polled['max']:.1f} ms; "
          f"errors: {polled['errors'] or 'none'}")


if __name__ == "__main__":
    main()
