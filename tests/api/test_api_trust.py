"""The service under hostile or careless clients: idempotency, the region registry, purge and
retention, private files, server paths, the audit log and /metrics (hard limits, worker deaths
and the upload memory cap are tested on a real server in test_api_server.py).

Solves run in real worker processes (TestClient); tests that only look at the queue hold the
dispatcher lock, so nothing is solved.
"""

from __future__ import annotations

import json
import os
import stat
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import pytest
from fastapi import HTTPException
from prometheus_client.parser import text_string_to_metric_families

import allocator
from allocator.api.store import NewJob, SQLiteJobStore
from allocator.api.submission import Gate
from tests.api.test_api import no_dispatch
from tests.api.test_api import service as service  # noqa: F401 (the fixture)
from tests.support.api_support import SLOW, TINY, canonical_folder, preset_regions, upload, wait_for


@pytest.fixture(scope="module")
def canonical(tmp_path_factory) -> Path:
    """200 households in one county (C001 under F01 under P1)."""
    return canonical_folder(tmp_path_factory.mktemp("canonical") / "data")


def test_an_empty_idempotency_key_is_no_key(service, tmp_path):
    with no_dispatch(tmp_path / "data"):
        svc = service()
        c = svc.client
        empty = {**svc.headers(), "Idempotency-Key": ""}
        first = c.post("/v1/plans", json={"scenario": TINY}, headers=empty)
        second = c.post("/v1/plans", json={"scenario": TINY}, headers=empty)
        blank = c.post("/v1/plans", json={"scenario": {**TINY, "name": "other"}}, headers={**empty,
                                                                                         "Idempotency-Key": "  "})
        assert [r.status_code for r in (first, second, blank)] == [202, 202, 202], second.text
        assert len({r.json()["plan_id"] for r in (first, second, blank)}) == 3
        assert {job.idempotency_key for job in svc.store.jobs()} == {None}


def test_idempotency_compares_the_parsed_request(service, canonical, tmp_path):
    with no_dispatch(tmp_path / "data"):
        svc = service()
        c = svc.client
        retry = {**svc.headers(), "Idempotency-Key": "order-17", "Content-Type": "application/json"}
        compact = json.dumps({"scenario": TINY, "explain": False}, separators=(",", ":"))
        reordered = json.dumps({"explain": False, "scenario": dict(reversed(list(TINY.items())))}, indent=2)
        a = c.post("/v1/plans", content=compact, headers=retry)
        b = c.post("/v1/plans", content=reordered, headers=retry)
        assert a.status_code == b.status_code == 202 and a.json()["plan_id"] == b.json()["plan_id"]

        form = {**svc.headers(), "Idempotency-Key": "upload-1"}
        parts = upload(canonical)
        first = c.post("/v1/plans", files=parts, headers=form)
        shuffled = [parts[0]] + parts[:0:-1]  # the scenario first, the tables in reverse order
        again = c.post("/v1/plans", files=shuffled, headers=form)
        assert first.status_code == again.status_code == 202 and first.json()["plan_id"] == again.json()["plan_id"]
        changed = [parts[0]] + [(field, (name, content + b"\n" if name == "funds.csv" else content, kind))
                                for field, (name, content, kind) in parts[1:]]
        assert c.post("/v1/plans", files=changed, headers=form).status_code == 422
        assert len(svc.store.jobs()) == 2


def test_a_spoofed_region_tree_is_refused(service, canonical, tmp_path):
    """The audit's case: a key for P2 files data with P1 nested under P2; the plan must not
    appear to P1's and C001's keys."""
    with no_dispatch(tmp_path / "data"):
        svc = service()
        c = svc.client
        admin, p2, p1, c001 = svc.headers(), svc.headers("P2"), svc.headers("P1"), svc.headers("C001")
        registry = preset_regions(TINY) + [{"region_id": "P2", "parent_id": "", "level": "province", "name": "Two"}]
        assert c.put("/v1/regions", json={"regions": registry}, headers=admin).status_code == 200

        spoofed = (b"region_id,parent_id,level,name,western,rural_population\nP2,,province,Two,True,0\n"
                   b"P1,P2,prefecture,One,True,0\nC001,P1,county,Nanqian,True,1495\nT0001,C001,township,Huatai,True,0\n")
        spoof = {"regions.csv": spoofed, "funds.csv": (canonical / "funds.csv").read_bytes().replace(b"F01", b"P1")}
        parts = [(field, (name, spoof.get(name, content), kind)) for field, (name, content, kind) in upload(canonical)]
        refused = c.post("/v1/plans", files=parts, headers=p2)
        assert refused.status_code == 422, refused.text
        assert {"file": "regions.csv", "message": "parent_id differs from the region registry", "row": 2, "id": "P1",
                "column": "parent_id", "expected": "''", "found": "'P2'"} in refused.json()["issues"]
        genuine = c.post("/v1/plans", files=upload(canonical), headers=p2)
        assert genuine.status_code == 403 and "P1 / F01 / C001" in genuine.json()["detail"]
        for key in (p1, c001, p2):
            assert c.get("/v1/plans", headers=key).json()["plans"] == []
        assert svc.store.jobs() == []

        moved = c.put("/v1/regions", json={"regions": [{"region_id": "P1", "parent_id": "P2", "level": "province"}]},
                      headers=admin)
        assert moved.status_code == 422 and moved.json()["issues"][0]["column"] == "parent_id"
        assert c.post("/v1/plans", files=upload(canonical), headers=c001).status_code == 202


def private(path: Path) -> bool:
    return stat.S_IMODE(path.stat().st_mode) & 0o077 == 0


def test_purge_removes_inputs_outputs_and_progress_records(service, tmp_path):
    svc = service()
    admin = svc.headers()
    c = svc.client
    plan_id = c.post("/v1/solve", json={"scenario": TINY}, headers=admin).json()["plan"]["plan_id"]
    job = svc.store.job(plan_id)
    record = allocator.simulate_progress(job.result_dir, 2018, seed=3).write(tmp_path / "record")
    files = [("tables", (p.name, p.read_bytes(), "text/csv")) for p in sorted(record.glob("*.csv"))]
    assert c.post(f"/v1/plans/{plan_id}/progress", files=files, headers=admin).status_code == 201
    home = Path(job.input_dir).parent
    assert (home / "progress").is_dir() and (home / "input").is_dir()
    assert all(private(path) for path in [tmp_path / "data", *(tmp_path / "data").rglob("*")])

    assert c.delete(f"/v1/plans/{plan_id}?purge=true", headers=svc.headers("P9")).status_code == 404
    purged = c.delete(f"/v1/plans/{plan_id}?purge=true", headers=admin)
    assert purged.status_code == 200 and purged.json() == {"plan_id": plan_id, "purged": True}
    assert not home.exists() and svc.store.job(plan_id) is None
    assert c.get(f"/v1/plans/{plan_id}", headers=admin).status_code == 404

    running = c.post("/v1/plans", json={"scenario": SLOW}, headers=admin).json()["plan_id"]
    wait_for(lambda path: c.get(path, headers=admin), running, statuses=("running",))
    assert c.delete(f"/v1/plans/{running}?purge=true", headers=admin).status_code == 200
    assert running not in c.app.state.dispatcher.running and svc.store.job(running) is None
    assert list((tmp_path / "data" / "plans").iterdir()) == []


def test_files_are_private_to_the_server(service, tmp_path):
    svc = service()
    admin = svc.headers()
    plan_id = svc.client.post("/v1/solve", json={"scenario": TINY}, headers=admin).json()["plan"]["plan_id"]
    assert svc.client.get(f"/v1/plans/{plan_id}/report", headers=admin).status_code == 200
    paths = [tmp_path / "data", *(tmp_path / "data").rglob("*")]
    assert any(path.name == "households.csv" for path in paths) and any(path.name == "report.html" for path in paths)
    loose = [f"{path} {oct(path.stat().st_mode)}" for path in paths if not private(path)]
    assert loose == []


def test_retention_purges_old_plans_and_the_start_removes_orphaned_uploads(service, tmp_path):
    store = SQLiteJobStore(tmp_path / "data" / "allocator.db")
    for plan_id, days in (("old", 30), ("recent", 1)):
        home = tmp_path / "data" / "plans" / plan_id
        (home / "input").mkdir(parents=True)
        store.add_job(NewJob(plan_id, "k", "plan", ["P1"], "s", 1, str(home / "input")))
        store.claim_next("plan")
        store.finish(plan_id, 1, "done")
        stamp = (datetime.now(UTC) - timedelta(days=days)).isoformat(timespec="milliseconds")
        store._db().execute("UPDATE plans SET finished_at = ? WHERE plan_id = ?", (stamp, plan_id))
    orphan = tmp_path / "data" / "plans" / "cut-off-upload"
    (orphan / "input").mkdir(parents=True)
    (orphan / "input" / "households.csv").write_text("household_id\n")
    os.utime(orphan, (time.time() - 3600, time.time() - 3600))

    svc = service(retention_days=7)
    deadline = time.monotonic() + 10
    while svc.store.job("old") is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert svc.store.job("old") is None and not (tmp_path / "data" / "plans" / "old").exists()
    assert svc.store.job("recent").status == "done" and (tmp_path / "data" / "plans" / "recent").is_dir()
    assert not orphan.exists()


def test_error_bodies_never_show_server_paths(service, canonical, tmp_path):
    svc = service()
    admin = svc.headers()
    parts = [part for part in upload(canonical) if part[1][0] != "funds.csv"]
    response = svc.client.post("/v1/plans", files=parts, headers=admin)
    assert response.status_code == 422 and "missing table" in response.text
    assert str(tmp_path) not in response.text and "/plans/" not in response.text


def test_audit_log_names_key_route_plan_and_outcome(service, tmp_path):
    with no_dispatch(tmp_path / "data"):
        svc = service()
        admin = svc.headers()
        key_id = svc.store.keys()[-1].key_id
        plan_id = svc.client.post("/v1/plans", json={"scenario": TINY}, headers=admin).json()["plan_id"]
        svc.client.get(f"/v1/plans/{plan_id}/summary", headers=admin)
        svc.client.get("/v1/plans", headers={"Authorization": "Bearer alk_wrong_key"})
        svc.client.get("/v1/health")
    lines = [json.loads(line) for line in (tmp_path / "data" / "audit.log").read_text().splitlines()]
    assert [(e["key_id"], e["method"], e["route"], e["plan_id"], e["status"]) for e in lines] == [
        (key_id, "POST", "/v1/plans", None, 202),
        (key_id, "GET", "/v1/plans/{plan_id}/summary", plan_id, 409),
        (None, "GET", "/v1/plans", None, 401)]
    assert private(tmp_path / "data" / "audit.log")


def test_metrics_count_jobs_by_state_queue_and_solve_seconds(service):
    svc = service()
    admin = svc.headers()
    svc.client.post("/v1/solve", json={"scenario": TINY}, headers=admin)
    response = svc.client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(response.text) for s in family.samples}
    assert samples[("allocator_jobs", (("state", "done"),))] == 1
    assert samples[("allocator_jobs", (("state", "queued"),))] == 0
    assert samples[("allocator_queue_length", ())] == 0
    assert samples[("allocator_solve_seconds_count", ())] == 1 and samples[("allocator_solve_seconds_sum", ())] > 0


def test_reports_are_rendered_once_and_cached(service):
    svc = service()
    admin = svc.headers()
    plan_id = svc.client.post("/v1/solve", json={"scenario": TINY}, headers=admin).json()["plan"]["plan_id"]
    first = svc.client.get(f"/v1/plans/{plan_id}/report", headers=admin)
    cached = Path(svc.store.job(plan_id).input_dir).parent / "report.html"
    assert first.status_code == 200 and cached.read_text() == first.text
    rendered = cached.stat().st_mtime_ns
    assert svc.client.get(f"/v1/plans/{plan_id}/report", headers=admin).text == first.text
    assert cached.stat().st_mtime_ns == rendered


def test_a_full_gate_answers_429():
    async def main():
        gate = Gate(slots=1, waiting=1, what="progress uploads")
        async with gate.enter(), gate.enter():
            with pytest.raises(HTTPException) as refused:
                async with gate.enter():
                    pass
        assert refused.value.status_code == 429 and refused.value.headers["Retry-After"]
        async with gate.enter():  # room again once the others left
            assert gate.inside == 1

    anyio.run(main)


def test_regions_load_command(tmp_path, monkeypatch, canonical):
    from typer.testing import CliRunner

    from allocator.cli import app as cli_app

    monkeypatch.setenv("ALLOCATOR_DATA_DIR", str(tmp_path / "data"))
    runner = CliRunner()
    missing = runner.invoke(cli_app, ["regions", "load", str(canonical / "regions.csv")])
    assert missing.exit_code == 2 and "--create" in missing.output  # no store yet: said, not made
    loaded = runner.invoke(cli_app, ["regions", "load", str(canonical / "regions.csv"), "--create"])
    assert loaded.exit_code == 0 and "4 new region(s)" in loaded.output, loaded.output
    (tmp_path / "moved.csv").write_text("region_id,parent_id,level\nC001,F09,county\n")
    refused = runner.invoke(cli_app, ["regions", "load", str(tmp_path / "moved.csv")])
    assert refused.exit_code == 2 and "moved.csv row 1" in refused.output and "parent_id" in refused.output
    store = SQLiteJobStore(tmp_path / "data" / "allocator.db")
    assert store.registry()["C001"].parent_id == "F01"
