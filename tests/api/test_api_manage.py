"""Monitoring and re-planning over HTTP: a progress record uploaded, monitored and re-planned from
gives what the library gives for the same folders; scope, bad records, cancellation and restarts.

One server solves the tiny preset for the module; the restart test runs its own servers.
"""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import pandas as pd
import pytest

import allocator
from allocator.api import Settings, create_app
from allocator.api.auth import create_key
from tests.api.test_api import Service, TestClient, no_dispatch, table
from tests.support.api_support import TINY, wait_for
from tests.support.loop_helpers import solve_preset
from tests.support.plan_checker import check_scenario_plan

YEAR = 2018


@pytest.fixture(scope="module")
def managed(tmp_path_factory):
    """A server on its own data folder, the tiny preset solved on it, and a simulated record of
    mid-2018 written as the CLI writes it: (service, admin headers, plan id, plan folder, record folder)."""
    folder = tmp_path_factory.mktemp("manage")
    with TestClient(create_app(Settings(data_dir=folder / "data"))) as client:
        svc = Service(client, client.app.state.settings)
        admin = svc.headers()
        plan_id, plan_dir = solve_tiny(svc, admin)
        record = allocator.simulate_progress(plan_dir, YEAR, seed=3).write(folder / "record")
        yield svc, admin, plan_id, plan_dir, record


def solve_tiny(svc: Service, headers: dict) -> tuple[str, Path]:
    """Submit the tiny preset and wait for its plan: its id and folder."""
    plan_id = svc.client.post("/v1/plans", json={"scenario": TINY}, headers=headers).json()["plan_id"]
    assert wait_for(lambda path: svc.client.get(path, headers=headers), plan_id)["status"] == "done"
    return plan_id, Path(svc.store.job(plan_id).result_dir)


def tables(record: Path, **replaced: str) -> list[tuple[str, tuple[str, bytes, str]]]:
    """Multipart parts of a record folder's tables, some replaced by other CSV text."""
    return [("tables", (path.name, replaced.get(path.stem, path.read_text()).encode(), "text/csv"))
            for path in sorted(record.glob("*.csv"))]


def test_monitor_and_replan_give_what_the_library_gives(managed, tmp_path):
    svc, admin, plan_id, plan_dir, record = managed
    c = svc.client
    uploaded = c.post(f"/v1/plans/{plan_id}/progress", files=tables(record), headers=admin)
    assert uploaded.status_code == 201, uploaded.text
    progress_id = uploaded.json()["progress_id"]
    assert uploaded.headers["location"] == f"/v1/plans/{plan_id}/progress/{progress_id}"
    assert uploaded.json()["record_year"] == YEAR and uploaded.json()["summary"]["kind"] == "monitor"
    assert c.get(uploaded.headers["location"], headers=admin).json() == uploaded.json()

    expected = allocator.monitor_progress(plan_dir, record).write(tmp_path / "monitor")
    base = f"/v1/plans/{plan_id}/progress/{progress_id}/tables"
    for name in ("watch", "households_off_track", "villages", "counties"):
        as_csv = c.get(f"{base}/{name}", headers={**admin, "Accept": "text/csv"})
        assert as_csv.text == (expected / f"{name}.csv").read_text(), name
    watch = c.get(f"{base}/watch", headers=admin).json()
    assert watch["progress_id"] == progress_id and watch["rows"] > 0
    assert [row["household_id"] for row in watch["records"]] == list(
        pd.read_csv(expected / "watch.csv", dtype={"household_id": str})["household_id"])

    request = {"progress_id": progress_id, "from_year": YEAR, "stability": 0.01}
    retry = {**admin, "Idempotency-Key": "replan-2018"}
    queued = c.post(f"/v1/plans/{plan_id}/replan", json=request, headers=retry)
    assert queued.status_code == 202, queued.text
    new_id = queued.json()["plan_id"]
    assert queued.headers["location"] == f"/v1/plans/{new_id}"
    assert c.post(f"/v1/plans/{plan_id}/replan", json=request, headers=retry).json()["plan_id"] == new_id
    changed = c.post(f"/v1/plans/{plan_id}/replan", json={**request, "stability": 0}, headers=retry)
    assert changed.status_code == 422 and changed.json()["issues"][0]["key"] == "Idempotency-Key"
    done = wait_for(lambda path: c.get(path, headers=admin), new_id)
    assert done["status"] == "done" and done["plan_status"] == "optimal", done
    assert done["parent_plan_id"] == plan_id and done["region_path"] == queued.json()["region_path"] == ["P1", "F01"]
    assert done["scenario"] == f"tiny-from-{YEAR}" and done["links"]["replan"] == f"/v1/plans/{new_id}/replan"

    direct = allocator.replan_from(plan_dir, record, from_year=YEAR, stability=0.01).write(tmp_path / "direct")
    pd.testing.assert_frame_equal(table(c, new_id, "households", admin), pd.read_csv(
        direct / "households.csv", dtype={"household_id": str, "package_id": str}))
    diff = c.get(f"/v1/plans/{new_id}/tables/diff", headers=admin).json()
    assert diff["rows"] == len(pd.read_csv(direct / "diff.csv")) > 0
    summary = c.get(f"/v1/plans/{new_id}/replan", headers=admin).json()
    assert summary["changes"] == json.loads((direct / "replan.json").read_text())["changes"]
    new_dir = Path(svc.store.job(new_id).result_dir)
    assert check_scenario_plan(new_dir / "remaining" / "scenario.yaml", new_dir / "remaining") == []
    # the first plan is no re-plan; the re-plan can be monitored in turn
    assert c.get(f"/v1/plans/{plan_id}/replan", headers=admin).status_code == 404
    assert c.get(f"/v1/plans/{plan_id}/tables/diff", headers=admin).status_code == 404
    assert c.post(f"/v1/plans/{new_id}/progress", files=tables(record), headers=admin).status_code == 201


def test_scope_and_bad_records(managed, caplog):
    svc, admin, plan_id, _, record = managed
    c = svc.client
    caplog.set_level(logging.INFO)
    kept = sorted((Path(svc.store.job(plan_id).input_dir).parent / "progress").glob("*"))
    households = (record / "households.csv").read_text()
    stranger = households + "H9999999,,false,false,,,,,false,,false,\n"
    bad = c.post(f"/v1/plans/{plan_id}/progress", files=tables(record, households=stranger), headers=admin)
    assert bad.status_code == 422
    assert {"file": "households.csv", "row": len(households.splitlines()), "id": "H9999999",
            "column": "household_id", "message": "unknown household"}.items() <= bad.json()["issues"][0].items()
    missing = [part for part in tables(record) if part[1][0] != "disbursed.csv"]
    absent = c.post(f"/v1/plans/{plan_id}/progress", files=missing, headers=admin)
    assert absent.status_code == 422 and absent.json()["issues"][0]["file"].endswith("disbursed.csv")
    stray = c.post(f"/v1/plans/{plan_id}/progress", files=[("tables", ("funds.csv", b"x", "text/csv"))],
                   headers=admin)
    assert stray.status_code == 422 and "not a table" in stray.json()["issues"][0]["message"]
    assert c.post(f"/v1/plans/{plan_id}/progress", json={}, headers=admin).status_code == 415
    assert sorted((Path(svc.store.job(plan_id).input_dir).parent / "progress").glob("*")) == kept
    assert "H9999999" not in caplog.text

    progress_id = c.post(f"/v1/plans/{plan_id}/progress", files=tables(record), headers=admin).json()["progress_id"]
    for body, key in (({"progress_id": "0" * 32}, "progress_id"), ({"progress_id": progress_id, "from_year": 2030},
                                                                   "from_year")):
        refused = c.post(f"/v1/plans/{plan_id}/replan", json=body, headers=admin)
        assert refused.status_code == 422 and refused.json()["issues"][0]["key"] == key, refused.text
    for body in ({"progress_id": progress_id, "stability": -1}, {"progress_id": progress_id, "seed": 1}):
        assert c.post(f"/v1/plans/{plan_id}/replan", json=body, headers=admin).status_code == 422
    assert c.get(f"/v1/plans/{plan_id}/progress/{'0' * 32}", headers=admin).status_code == 404
    assert c.get(f"/v1/plans/{plan_id}/progress/../../x", headers=admin).status_code in (404, 422)

    elsewhere = svc.headers("P9")  # the tiny preset lies under P1 / F01
    for method, path, kwargs in (
            ("POST", "/progress", {"files": tables(record)}), ("GET", f"/progress/{progress_id}", {}),
            ("GET", f"/progress/{progress_id}/tables/watch", {}), ("POST", "/replan", {"json": {
                "progress_id": progress_id}}), ("GET", "/replan", {})):
        response = c.request(method, f"/v1/plans/{plan_id}{path}", headers=elsewhere, **kwargs)
        assert response.status_code == 404 and response.json() == {"detail": f"no plan {plan_id!r}"}, path
    assert c.get(f"/v1/plans/{plan_id}/progress/{progress_id}", headers=svc.headers("F01")).status_code == 200


def test_a_record_of_another_plan_is_refused_with_409(managed, tmp_path):
    svc, admin, plan_id, plan_dir, record = managed
    c = svc.client
    other = solve_preset(tmp_path / "other", seed=3)
    foreign = allocator.simulate_progress(other, YEAR, seed=3).write(tmp_path / "foreign")
    ours, theirs = (json.loads((folder / "summary.json").read_text())["plan_fingerprint"][:16]
                    for folder in (plan_dir, other))
    refused = c.post(f"/v1/plans/{plan_id}/progress", files=tables(foreign), headers=admin)
    assert refused.status_code == 409, refused.text
    assert ours in refused.text and theirs in refused.text and str(tmp_path) not in refused.text
    # a stored record that names another plan (as one stored before records were checked)
    progress_id = c.post(f"/v1/plans/{plan_id}/progress", files=tables(record), headers=admin).json()["progress_id"]
    stored = Path(svc.store.job(plan_id).input_dir).parent / "progress" / progress_id / "record" / "record.csv"
    stored.write_text((foreign / "record.csv").read_text())
    replan = c.post(f"/v1/plans/{plan_id}/replan", json={"progress_id": progress_id}, headers=admin)
    assert replan.status_code == 409 and theirs in replan.text, replan.text


def test_replan_jobs_cancel_and_resume_after_a_restart(tmp_path):
    settings = Settings(data_dir=tmp_path / "data")
    with TestClient(create_app(settings)) as client:
        svc = Service(client, settings)
        admin = svc.headers()
        plan_id, plan_dir = solve_tiny(svc, admin)
        record = allocator.simulate_progress(plan_dir, YEAR, seed=4).write(tmp_path / "record")
        progress_id = client.post(f"/v1/plans/{plan_id}/progress", files=tables(record),
                                  headers=admin).json()["progress_id"]
    with no_dispatch(settings.data_dir), TestClient(create_app(settings)) as client:
        waiting = client.post(f"/v1/plans/{plan_id}/replan", json={"progress_id": progress_id}, headers=admin)
        dropped = client.post(f"/v1/plans/{plan_id}/replan", json={"progress_id": progress_id, "stability": 0.1},
                              headers=admin)
        assert waiting.status_code == dropped.status_code == 202
        assert client.post(f"/v1/plans/{dropped.json()['plan_id']}/progress", files=tables(record),
                           headers=admin).status_code == 409  # not done: nothing to monitor yet
        cancelled = client.delete(f"/v1/plans/{dropped.json()['plan_id']}", headers=admin).json()
        assert cancelled["status"] == "cancelled" and cancelled["attempt"] == 0
        store = client.app.state.store
        assert store.claim_next("plan").plan_id == waiting.json()["plan_id"]  # a worker started, then the server died
    key = create_key(store, "P1")[1]
    with TestClient(create_app(settings)) as client:
        body = wait_for(lambda path: client.get(path, headers={"Authorization": f"Bearer {key}"}),
                        waiting.json()["plan_id"])
        assert body["status"] == "done" and body["attempt"] == 2 and body["parent_plan_id"] == plan_id
        diff = client.get(f"/v1/plans/{body['plan_id']}/tables/diff", headers={"Authorization": f"Bearer {key}",
                                                                                  "Accept": "text/csv"})
        assert diff.status_code == 200 and len(pd.read_csv(io.StringIO(diff.text))) > 0
