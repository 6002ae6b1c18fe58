"""The HTTP service through FastAPI's TestClient: submit → poll → read, errors, scope, queue, restart.

Solves run in real worker processes. Tests that only look at the queue hold the dispatcher
lock themselves, so nothing is solved and the jobs stay queued.
"""

from __future__ import annotations

import fcntl
import importlib.util
import io
import json
import time
import warnings
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

import allocator
from allocator.api import Settings, create_app
from allocator.api.auth import create_key
from allocator.api.store import NewJob, SQLiteJobStore
from allocator.cli import app as cli_app
from tests.support.api_support import SLOW, TINY, canonical_folder, preset_regions, records, upload, wait_for

with warnings.catch_warnings():  # starlette asks for httpx2 here; the service itself uses neither
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient


@dataclass
class Service:
    """A running app with its store; ``headers(region)`` makes a key and its header."""

    client: TestClient
    settings: Settings

    @property
    def store(self):
        return self.client.app.state.store

    def headers(self, region: str = "*") -> dict[str, str]:
        return {"Authorization": f"Bearer {create_key(self.store, region)[1]}"}


@pytest.fixture
def service(tmp_path):
    """``service(**settings)`` starts an app on ``tmp_path/data``; all are stopped at the end."""
    with ExitStack() as stack:
        def start(**overrides) -> Service:
            settings = Settings(data_dir=tmp_path / "data", **overrides)
            client = stack.enter_context(TestClient(create_app(settings)))
            return Service(client, settings)

        yield start


@pytest.fixture(scope="module")
def canonical(tmp_path_factory) -> Path:
    """200 households in one county (C001 under F01 under P1)."""
    return canonical_folder(tmp_path_factory.mktemp("canonical") / "data")


@contextmanager
def no_dispatch(data_dir: Path):
    """Hold the dispatcher lock so the app under test queues jobs but never starts them."""
    data_dir.mkdir(parents=True, exist_ok=True)
    with open(data_dir / "dispatcher.lock", "wb") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def table(client: TestClient, plan_id: str, name: str, headers: dict) -> pd.DataFrame:
    response = client.get(f"/v1/plans/{plan_id}/tables/{name}", headers={**headers, "Accept": "text/csv"})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    return pd.read_csv(io.StringIO(response.text), dtype={"household_id": str, "package_id": str})


def test_upload_and_json_records_give_the_library_plan(service, canonical, tmp_path):
    svc = service()
    admin = svc.headers()
    c = svc.client
    submitted = c.post("/v1/plans", files=upload(canonical), headers=admin)
    assert submitted.status_code == 202, submitted.text
    plan_id = submitted.json()["plan_id"]
    assert submitted.headers["location"] == f"/v1/plans/{plan_id}"
    assert submitted.json()["status"] in ("queued", "running") and submitted.json()["region_path"] == ["P1", "F01",
                                                                                                       "C001"]
    done = wait_for(lambda path: c.get(path, headers=admin), plan_id)
    assert done["status"] == "done" and done["plan_status"] == "optimal", done
    assert done["progress"]["phase"] == "plan ready" and done["progress"]["elapsed"] > 0
    assert done["created_at"] <= done["started_at"] <= done["finished_at"]

    expected = allocator.solve(allocator.load_scenario(canonical / "scenario.yaml")).write(tmp_path / "library")
    for name in ("households", "funding"):
        pd.testing.assert_frame_equal(table(c, plan_id, name, admin), pd.read_csv(
            expected / f"{name}.csv", dtype={"household_id": str, "package_id": str}))
    summary = c.get(f"/v1/plans/{plan_id}/summary", headers=admin).json()
    assert summary["expected_exits"] == pytest.approx(json.loads((expected / "summary.json").read_text())
                                                      ["expected_exits"])

    raw = yaml_scenario(canonical)
    as_json = c.post("/v1/plans", json={"scenario": raw, "tables": records(canonical)}, headers=admin)
    assert as_json.status_code == 202, as_json.text
    wait_for(lambda path: c.get(path, headers=admin), as_json.json()["plan_id"])
    pd.testing.assert_frame_equal(table(c, as_json.json()["plan_id"], "households", admin),
                                  table(c, plan_id, "households", admin))


def yaml_scenario(folder: Path) -> dict:
    import yaml

    return yaml.safe_load((folder / "scenario.yaml").read_text())


def test_tables_come_as_json_csv_or_parquet(service):
    svc = service()
    admin = svc.headers()
    c = svc.client
    solved = c.post("/v1/solve", json={"scenario": TINY}, headers=admin)
    assert solved.status_code == 200, solved.text
    plan_id = solved.json()["plan"]["plan_id"]
    as_json = c.get(f"/v1/plans/{plan_id}/tables/counties", headers=admin)
    assert as_json.headers["content-type"] == "application/json"
    body = as_json.json()
    assert body["rows"] == len(body["records"]) == 2 and body["columns"][0] == "county_id"
    parquet = c.get(f"/v1/plans/{plan_id}/tables/counties",
                    headers={**admin, "Accept": "application/vnd.apache.parquet"})
    frame = pd.read_parquet(io.BytesIO(parquet.content))
    assert frame.to_dict("records") == body["records"]
    assert list(table(c, plan_id, "counties", admin)["county_id"]) == ["C001", "C002"]
    assert c.get(f"/v1/plans/{plan_id}/tables/counties", headers={**admin, "Accept": "text/html"}).json() == body
    assert c.get(f"/v1/plans/{plan_id}/tables/nothing", headers=admin).status_code == 422
    values = c.get(f"/v1/plans/{plan_id}/tables/marginal_values", headers=admin).json()
    assert values["rows"] > 0 and {"kind", "value", "method", "fd_check"} <= set(values["columns"])
    assert {r["kind"] for r in values["records"]} >= {"money", "exit allowance"}


def test_sync_solve_returns_the_plan_and_is_bounded(service):
    svc = service(sync_max_households=100)
    admin = svc.headers()
    c = svc.client
    solved = c.post("/v1/solve", json={"scenario": TINY}, headers=admin)
    body = solved.json()
    assert solved.status_code == 200 and body["plan"]["kind"] == "sync" and body["plan"]["status"] == "done"
    assert body["summary"]["status"] == "optimal" and body["summary"]["counties_total"] == 2
    assert len(body["tables"]["households"]) == 60
    assert set(body["tables"]) == {"households", "projects", "funding", "path", "counties"}
    stored = c.get(f"/v1/plans/{body['plan']['plan_id']}", headers=admin).json()
    assert stored["status"] == "done" and stored["plan_status"] == "optimal"
    too_big = c.post("/v1/solve", json={"scenario": {**TINY, "generate": {"preset": "demo"}}}, headers=admin)
    assert too_big.status_code == 413 and "3,000 households" in too_big.json()["detail"]


def test_sync_solve_hard_limit_cancels_a_job_that_cannot_start(service, tmp_path):
    with no_dispatch(tmp_path / "data"):
        svc = service(sync_time_limit=0.5)
        admin = svc.headers()
        started = time.monotonic()
        response = svc.client.post("/v1/solve", json={"scenario": TINY}, headers=admin)
        assert response.status_code == 503 and response.headers["retry-after"]
        assert 0.5 <= time.monotonic() - started < 5
        (job,) = svc.store.jobs()
        assert job.status == "cancelled" and job.kind == "sync"


def test_bad_input_is_422_naming_file_row_column_and_nothing_is_kept(service, canonical, tmp_path):
    svc = service()
    admin = svc.headers()
    c = svc.client
    households = (canonical / "households.csv").read_text().splitlines()
    cells = households[2].split(",")
    cells[-1] = "1.5"
    broken = [(field, (name, "\n".join(households[:2] + [",".join(cells)] + households[3:]).encode(), kind))
              if name == "households.csv" else (field, (name, content, kind))
              for field, (name, content, kind) in upload(canonical)]
    response = c.post("/v1/plans", files=broken, headers=admin)
    assert response.status_code == 422
    issue = response.json()["issues"][0]
    assert issue == {"file": "households.csv", "row": 2, "column": "baseline_exit_probability",
                     "message": "out of range", "expected": "a number in [0, 1]", "found": "'1.5'"}

    cases = [
        ({"scenario": {**TINY, "policy": {"deadline": "maybe"}}}, {"file": "scenario.yaml", "key": "policy.deadline"}),
        ({"scenario": {**TINY, "generate": {"preset": "atlantis"}}}, {"key": "generate.preset"}),
        ({"scenario": {**TINY, "data": "/etc"}, }, {"key": "data"}),
        ({"scenario": TINY, "tables": {"regions": []}}, {"key": "generate"}),
        ({"scenario": TINY, "tables": {"secrets": []}}, {"file": "request body"}),
        ({"scenario": "not a mapping"}, {"file": "request body", "key": "scenario"}),
    ]
    for body, where in cases:
        response = c.post("/v1/plans", json=body, headers=admin)
        assert response.status_code == 422, (body, response.text)
        assert any(where.items() <= issue.items() for issue in response.json()["issues"]), response.json()
    malformed = c.post("/v1/plans", content=b"{not json", headers={**admin, "Content-Type": "application/json"})
    assert malformed.status_code == 422 and malformed.json()["issues"][0]["file"] == "request body"
    wrong_file = c.post("/v1/plans", files=[("scenario", ("s.yaml", b"name: x", "text/yaml")),
                                            ("tables", ("../../passwd", b"x", "text/plain"))], headers=admin)
    assert wrong_file.status_code == 422 and "not a table" in wrong_file.json()["issues"][0]["message"]
    bad_yaml = c.post("/v1/plans", files=[("scenario", ("s.yaml", b"name: [", "text/yaml"))], headers=admin)
    assert bad_yaml.status_code == 422 and bad_yaml.json()["issues"][0]["file"] == "s.yaml"
    assert c.post("/v1/plans", content=b"x", headers={**admin, "Content-Type": "text/plain"}).status_code == 415
    assert svc.store.jobs() == [] and list((tmp_path / "data" / "plans").iterdir()) == []


def test_request_body_limit(service):
    svc = service(max_request_bytes=2048)
    admin = svc.headers()
    big = {"scenario": {**TINY, "name": "x" * 4000}}
    assert svc.client.post("/v1/plans", json=big, headers=admin).status_code == 413
    chunked = svc.client.post("/v1/plans", content=iter([json.dumps(big).encode()]),
                              headers={**admin, "Content-Type": "application/json"})
    assert chunked.status_code == 413
    form = svc.client.post("/v1/plans", content=iter([b"--b\r\n", b"x" * 4000]),
                           headers={**admin, "Content-Type": "multipart/form-data; boundary=b"})
    assert form.status_code == 413


def test_scope_401_403_404(service, canonical, tmp_path):
    with no_dispatch(tmp_path / "data"):
        svc = service()
        c = svc.client
        admin, province, prefecture = svc.headers("*"), svc.headers("P1"), svc.headers("F01")
        county1, county2, elsewhere = svc.headers("C001"), svc.headers("C002"), svc.headers("P9")

        assert c.get("/v1/plans").status_code == 401
        assert c.post("/v1/plans", json={"scenario": TINY}).status_code == 401
        assert c.get("/v1/plans", headers={"Authorization": "Bearer alk_nope_nope"}).status_code == 401
        assert c.get("/v1/plans", headers={"Authorization": "Basic abc"}).status_code == 401

        unregistered = c.post("/v1/plans", json={"scenario": TINY}, headers=prefecture)
        assert unregistered.status_code == 403 and "no region registry" in unregistered.json()["detail"]
        assert c.put("/v1/regions", json={"regions": preset_regions(TINY)}, headers=prefecture).status_code == 403
        loaded = c.put("/v1/regions", json={"regions": preset_regions(TINY)}, headers=admin)
        assert loaded.status_code == 200 and loaded.json()["added"] == loaded.json()["total"] == 6
        assert [r["region_id"] for r in c.get("/v1/regions", headers=county1).json()["regions"]] == [
            "P1", "F01", "C001", "T0001"]
        both_counties = c.post("/v1/plans", json={"scenario": TINY}, headers=prefecture)
        assert both_counties.status_code == 202 and both_counties.json()["region"] == "F01"
        plan_f01 = both_counties.json()["plan_id"]
        for key in (county1, elsewhere):  # the tiny preset holds C001 and C002
            refused = c.post("/v1/plans", json={"scenario": TINY}, headers=key)
            assert refused.status_code == 403 and "P1 / F01" in refused.json()["detail"]
        plan_c001 = c.post("/v1/plans", files=upload(canonical), headers=county1).json()["plan_id"]

        for key in (admin, province, prefecture):
            assert c.get(f"/v1/plans/{plan_f01}", headers=key).status_code == 200
        for key in (county1, county2, elsewhere):
            for method, path in (("GET", ""), ("GET", "/summary"), ("GET", "/tables/households"), ("DELETE", "")):
                response = c.request(method, f"/v1/plans/{plan_f01}{path}", headers=key)
                assert response.status_code == 404 and response.json() == {"detail": f"no plan {plan_f01!r}"}
        assert c.get("/v1/plans/0123456789abcdef", headers=admin).status_code == 404

        def listed(key):
            return {plan["plan_id"] for plan in c.get("/v1/plans", headers=key).json()["plans"]}

        assert listed(admin) == listed(province) == listed(prefecture) == {plan_f01, plan_c001}
        assert listed(county1) == {plan_c001} and listed(county2) == listed(elsewhere) == set()
        assert c.get(f"/v1/plans/{plan_c001}", headers=county1).status_code == 200

        assert svc.store.revoke_key(elsewhere["Authorization"].split("_")[1])
        assert c.get("/v1/plans", headers=elsewhere).status_code == 401


def test_cancel_queued_and_running(service):
    svc = service(workers=1)
    admin = svc.headers()
    c = svc.client

    def get(path):
        return c.get(path, headers=admin)

    slow = c.post("/v1/plans", json={"scenario": SLOW}, headers=admin).json()["plan_id"]
    waiting = c.post("/v1/plans", json={"scenario": TINY}, headers=admin).json()["plan_id"]
    wait_for(get, slow, statuses=("running",))
    assert get(f"/v1/plans/{waiting}").json()["status"] == "queued"

    cancelled = c.delete(f"/v1/plans/{waiting}", headers=admin)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    stopped = c.delete(f"/v1/plans/{slow}", headers=admin)
    assert stopped.status_code == 200 and stopped.json()["status"] == "cancelled"
    dispatcher = c.app.state.dispatcher
    deadline = time.monotonic() + 10
    while dispatcher.running and time.monotonic() < deadline:
        time.sleep(0.05)
    assert dispatcher.running == {}, "the cancelled plan's worker is still running"
    assert c.delete(f"/v1/plans/{slow}", headers=admin).json()["status"] == "cancelled"
    assert get(f"/v1/plans/{waiting}").json()["attempt"] == 0  # never started
    summary = get(f"/v1/plans/{slow}/summary")
    assert summary.status_code == 409 and "cancelled" in summary.json()["detail"]

    done = c.post("/v1/solve", json={"scenario": TINY}, headers=admin).json()["plan"]["plan_id"]
    assert c.delete(f"/v1/plans/{done}", headers=admin).status_code == 409
    assert get(f"/v1/plans/{slow}").json()["status"] == "cancelled"


def test_idempotency_key_and_queue_limits(service, tmp_path):
    with no_dispatch(tmp_path / "data"):
        svc = service(queue_size=2, queue_per_key=1)
        c = svc.client
        first, second, third = svc.headers(), svc.headers(), svc.headers()
        retry = {**first, "Idempotency-Key": "order-17"}
        a = c.post("/v1/plans", json={"scenario": TINY}, headers=retry)
        b = c.post("/v1/plans", json={"scenario": TINY}, headers=retry)
        assert a.status_code == b.status_code == 202 and a.json()["plan_id"] == b.json()["plan_id"]
        changed = c.post("/v1/plans", json={"scenario": {**TINY, "name": "other"}}, headers=retry)
        assert changed.status_code == 422 and changed.json()["issues"][0]["key"] == "Idempotency-Key"

        per_key = c.post("/v1/plans", json={"scenario": TINY}, headers=first)
        assert per_key.status_code == 429 and int(per_key.headers["retry-after"]) > 0
        assert c.post("/v1/plans", json={"scenario": TINY}, headers=second).status_code == 202
        full = c.post("/v1/plans", json={"scenario": TINY}, headers=third)
        assert full.status_code == 503 and int(full.headers["retry-after"]) > 0
        assert len(svc.store.jobs()) == 2
        assert c.post("/v1/plans", json={"scenario": TINY}, headers=retry).status_code == 202  # a retry still answers


def test_jobs_left_running_by_a_dead_server_are_requeued_and_finish(service, tmp_path):
    store = SQLiteJobStore(tmp_path / "data" / "allocator.db")
    _, key = create_key(store, "*")
    folder = tmp_path / "data" / "plans" / "orphan" / "input"
    folder.mkdir(parents=True)
    import yaml

    (folder / "scenario.yaml").write_text(yaml.safe_dump(TINY))
    store.add_job(NewJob("orphan", store.keys()[0].key_id, "plan", ["P1", "F01"], "tiny", 65, str(folder)))
    assert store.claim_next("plan").attempt == 1  # as if a worker had started, then the server died

    svc = service()
    body = wait_for(lambda path: svc.client.get(path, headers={"Authorization": f"Bearer {key}"}), "orphan")
    assert body["status"] == "done" and body["attempt"] == 2 and body["plan_status"] == "optimal"


def test_store_attempts_keep_stale_workers_out(tmp_path):
    store = SQLiteJobStore(tmp_path / "jobs.db")
    store.add_job(NewJob("p", "k", "plan", ["P1"], "s", 1, str(tmp_path)))
    assert store.claim_next("plan").attempt == 1
    assert store.recover(max_attempts=3) == (["p"], [])
    assert store.claim_next("plan").attempt == 2
    assert not store.report_progress("p", 1, {"phase": "old"}) and not store.finish("p", 1, "done")
    assert store.report_progress("p", 2, {"phase": "new"})
    assert store.recover(max_attempts=2) == ([], ["p"])
    failed = store.job("p")
    assert failed.status == "failed" and "started 2 times" in failed.error["detail"]
    assert not store.finish("p", 2, "done")


def test_explain_difficulties_and_report(service):
    svc = service()
    admin = svc.headers()
    c = svc.client
    short = {**TINY, "deadline_year": 2017}
    plain = c.post("/v1/solve", json={"scenario": short}, headers=admin).json()["plan"]["plan_id"]
    missing = c.get(f"/v1/plans/{plain}/difficulties", headers=admin)
    assert missing.status_code == 404 and "explain: true" in missing.json()["detail"]
    explained = c.post("/v1/plans", json={"scenario": short, "explain": True}, headers=admin).json()["plan_id"]
    assert wait_for(lambda path: c.get(path, headers=admin), explained)["status"] == "done"
    difficulties = c.get(f"/v1/plans/{explained}/difficulties", headers=admin)
    assert difficulties.status_code == 200 and difficulties.json()["counties_total"] == 2

    report = c.get(f"/v1/plans/{plain}/report", headers=admin)
    if importlib.util.find_spec("allocator.report.html") is None:
        assert report.status_code == 404 and "not available" in report.json()["detail"]
    else:
        assert report.status_code == 200 and report.headers["content-type"].startswith("text/html")
        assert "<html" in report.text.lower()


def test_keys_command_makes_a_working_key(service, tmp_path, monkeypatch):
    monkeypatch.setenv("ALLOCATOR_DATA_DIR", str(tmp_path / "data"))
    runner = CliRunner()
    made = runner.invoke(cli_app, ["keys", "create", "--region", "P1", "--name", "budget office", "--create"])
    assert made.exit_code == 0, made.output
    key = made.stdout.strip().splitlines()[-1]
    assert key.startswith("alk_")
    svc = service()
    assert svc.client.get("/v1/plans", headers={"Authorization": f"Bearer {key}"}).status_code == 200
    stored = svc.store.keys()
    assert [(k.region, k.name) for k in stored] == [("P1", "budget office")]
    assert key not in (tmp_path / "data" / "allocator.db").read_bytes().decode("latin-1")
    listing = runner.invoke(cli_app, ["keys", "list"])
    assert stored[0].key_id in listing.stdout
    assert runner.invoke(cli_app, ["keys", "revoke", stored[0].key_id]).exit_code == 0
    assert svc.client.get("/v1/plans", headers={"Authorization": f"Bearer {key}"}).status_code == 401
    assert runner.invoke(cli_app, ["keys", "create", "--region", "two words"]).exit_code == 2


def test_health_backends_and_openapi(service):
    c = service().client
    health = c.get("/v1/health").json()
    assert health["status"] == "ok" and health["dispatching"] is True and health["workers"] == 1
    backends = {b["name"]: b for b in c.get("/v1/backends").json()}
    assert backends["highs"]["available"] and backends["highs"]["supports_mip"]
    schema = c.get("/openapi.json").json()
    post = schema["paths"]["/v1/plans"]["post"]["requestBody"]["content"]
    assert set(post) == {"application/json", "multipart/form-data"} and "PlanRequest" in schema["components"]["schemas"]
    assert c.get("/docs").status_code == 200
    assert c.post("/v1/health").headers["allow"] == "GET" and c.put("/v1/plans").headers["allow"] == "GET, POST"


def test_a_bug_is_a_plain_500_logged_without_its_message(service, caplog, monkeypatch):
    svc = service()
    admin = svc.headers()

    def broken(plan_id):
        raise RuntimeError("household H0000042 of Zhang Wei")

    monkeypatch.setattr(svc.store, "job", broken)
    response = svc.client.get("/v1/plans/abc", headers=admin)
    assert response.status_code == 500 and response.json()["detail"] == "internal error"
    assert "RuntimeError" in caplog.text and "H0000042" not in caplog.text and "Zhang" not in caplog.text


def test_the_schedule_rules_reach_the_service(service, tmp_path):
    """Annual targets, the consolidation horizon and the earliness weight sent to the service plan
    exactly as the library does, and a bad schedule key is a 422 naming it (issue 16 item 8)."""
    svc = service()
    admin = svc.headers()
    c = svc.client
    scenario = {**TINY, "policy": {"annual_targets": {2018: 0.6}, "sustain_years": 2, "earliness_weight": 0.05}}
    solved = c.post("/v1/solve", json={"scenario": scenario}, headers=admin)
    assert solved.status_code == 200, solved.text
    path = pd.DataFrame(solved.json()["tables"]["path"])
    whole = path[path["region_id"].fillna("") == ""].set_index("year")
    assert whole.loc[2018, "target"] == pytest.approx(0.6) and pd.isna(whole.loc[2019, "target"])
    (tmp_path / "s.yaml").write_text(json.dumps(scenario))
    library = allocator.solve(allocator.load_scenario(tmp_path / "s.yaml"))
    assert solved.json()["summary"]["sustained_exits"] == pytest.approx(library.summary["sustained_exits"])
    pd.testing.assert_frame_equal(whole.reset_index()[["year", "expected_poor", "shortfall"]],
                                  library.path[library.path["region_id"].fillna("") == ""]
                                  .reset_index(drop=True)[["year", "expected_poor", "shortfall"]], check_dtype=False)
    bad = c.post("/v1/solve", json={"scenario": {**TINY, "policy": {"annual_targets": {2030: 0.5}}}}, headers=admin)
    assert bad.status_code == 422 and "policy.annual_targets" in bad.text, bad.text


def test_the_equity_rules_reach_the_service(service, tmp_path):
    """policy.equity sent to /v1/solve plans as the library does: the spread cap holds, the
    summary carries equity and price_of_fairness; a negative cap is a 422 naming its key (issue 19)."""
    svc = service()
    admin = svc.headers()
    c = svc.client
    scenario = {**TINY, "policy": {"equity": {"max_exit_rate_spread": 0.05, "county_floor_per_poor": 100,
                                              "price_of_fairness": "duals"}}}
    solved = c.post("/v1/solve", json={"scenario": scenario}, headers=admin)
    assert solved.status_code == 200, solved.text
    summary = solved.json()["summary"]
    equity = summary["equity"]
    assert equity["rules"] == ["county_floor_per_poor", "max_exit_rate_spread"] and equity["broken"] == []
    assert equity["max_exit_rate"] - equity["min_exit_rate"] <= 0.05 + 1e-6
    assert sorted(summary["price_of_fairness"]) == ["county_floor_per_poor", "max_exit_rate_spread"]
    assert all(how.startswith("estimate") for how in summary["price_of_fairness_method"].values())
    (tmp_path / "s.yaml").write_text(json.dumps(scenario))
    library = allocator.solve(allocator.load_scenario(tmp_path / "s.yaml"))
    assert library.summary["equity"]["rules"] == equity["rules"]
    bad = c.post("/v1/solve", json={"scenario": {**TINY, "policy": {"equity": {"max_exit_rate_spread": -0.1}}}},
                 headers=admin)
    assert bad.status_code == 422 and "policy.equity.max_exit_rate_spread" in bad.text, bad.text


def test_a_bar_phase_facts_reach_the_service_within_its_progress_schema(tmp_path):
    """The facts a CLI bar is drawn from (step, budget, done, of, finished) go into ``details``
    as JSON scalars; the fields of Progress stay as they are (api/openapi.json unchanged)."""
    from allocator.api.schemas import Progress
    from allocator.api.worker import ProgressReporter

    store = SQLiteJobStore(tmp_path / "jobs.db")
    store.add_job(NewJob("p", "k", "plan", ["P1"], "s", 1, str(tmp_path)))
    report = ProgressReporter(store, "p", store.claim_next("plan").attempt)
    step = pd.Series([10]).iloc[0]  # a numpy integer, as the library's counts may be
    report("prices", step=step, max_steps=500, bound=503.2, lower=float("-inf"), seconds=1.5, budget=8.0)
    shown = Progress(**store.job("p").progress)
    assert shown.phase == "prices" and shown.bound == 503.2
    assert shown.details == {"step": 10, "max_steps": 500, "seconds": 1.5, "budget": 8.0}  # -inf left out
    report("counties", group=1, done=1, of=3, lp="optimal", plan=True)
    shown = Progress(**store.job("p").progress)
    assert shown.details == {"group": 1, "done": 1, "of": 3, "lp": "optimal", "plan": True}
    report("improvement round", round=2, improved=1, seconds=3.0, budget=20.0, finished=True)
    assert Progress(**store.job("p").progress).details["finished"] is True
