"""GET /v1/plans/{id}/export.xlsx: the plan's workbook, written once in a worker process and
cached beside the report; 404 and 409 as the other routes of a plan's results."""

from __future__ import annotations

import io
import json
from pathlib import Path

from openpyxl import load_workbook

from allocator.report.workbook import SHEETS, TITLES
from tests.api.test_api import no_dispatch
from tests.api.test_api import service as service  # noqa: F401 (the fixture)
from tests.support.api_support import TINY

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def test_a_done_plan_gives_its_workbook_once(service):
    svc = service()
    admin = svc.headers()
    c = svc.client
    plan_id = c.post("/v1/solve", json={"scenario": TINY}, headers=admin).json()["plan"]["plan_id"]
    first = c.get(f"/v1/plans/{plan_id}/export.xlsx", headers=admin)
    assert first.status_code == 200, first.text
    assert first.headers["content-type"] == XLSX
    assert f'filename="plan-{plan_id}.xlsx"' in first.headers["content-disposition"]
    book = load_workbook(io.BytesIO(first.content), read_only=True)
    assert book.sheetnames == [TITLES[f"sheet.{key}"] for key in SHEETS]
    households = list(book[TITLES["sheet.households"]].iter_rows(values_only=True))
    table = c.get(f"/v1/plans/{plan_id}/tables/households", headers=admin).json()
    assert len(households) - 1 == table["rows"]

    job = svc.store.job(plan_id)
    cached = Path(job.input_dir).parent / "plan.xlsx"
    assert cached.read_bytes() == first.content
    written = cached.stat().st_mtime_ns
    assert c.get(f"/v1/plans/{plan_id}/export.xlsx", headers=admin).content == first.content
    assert cached.stat().st_mtime_ns == written

    cached.unlink()  # a plan without a solution has no workbook
    summary = Path(job.result_dir) / "summary.json"
    summary.write_text(json.dumps({**json.loads(summary.read_text()), "expected_exits": None}))
    missing = c.get(f"/v1/plans/{plan_id}/export.xlsx", headers=admin)
    assert missing.status_code == 404 and "no solution" in missing.json()["detail"]
    assert c.get("/v1/plans/nosuchplan/export.xlsx", headers=admin).status_code == 404
    assert c.get(f"/v1/plans/{plan_id}/export.xlsx").status_code == 401


def test_a_queued_plan_has_no_workbook_yet(service, tmp_path):
    with no_dispatch(tmp_path / "data"):
        svc = service()
        admin = svc.headers()
        plan_id = svc.client.post("/v1/plans", json={"scenario": TINY}, headers=admin).json()["plan_id"]
        queued = svc.client.get(f"/v1/plans/{plan_id}/export.xlsx", headers=admin)
        assert queued.status_code == 409 and "queued" in queued.json()["detail"]
