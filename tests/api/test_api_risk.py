"""``POST /v1/plans/{id}/risk`` on the service as deployed (``allocator serve``, uvicorn in a
subprocess): it answers what the library answers for the same plan folder and request, the same
request again from its first result, and bad requests with 422 naming the field."""

from __future__ import annotations

import time

import pandas as pd

from allocator.whatif.risk import COUNTY_COLUMNS, plan_risk
from tests.api.test_api_server import server  # noqa: F401  (the fixture: allocator serve in a subprocess)
from tests.support.api_support import TINY, wait_for

REQUEST = {"draws": 60, "seed": 3, "cost_overrun": 0.1, "correlation": 0.2}


def test_risk_over_http_is_the_librarys(server):  # noqa: F811
    srv = server()
    admin = srv.key()
    c = srv.client
    plan_id = c.post("/v1/plans", json={"scenario": TINY}, headers=admin).json()["plan_id"]
    assert wait_for(lambda path: c.get(path, headers=admin), plan_id)["status"] == "done"

    answered = c.post(f"/v1/plans/{plan_id}/risk", json=REQUEST, headers=admin)
    assert answered.status_code == 200, answered.text
    body = answered.json()
    assert body["plan_id"] == plan_id and body["summary"]["plan"] == plan_id
    assert body["summary"]["draws"] == 60 and body["summary"]["seed"] == 3
    assert list(body["counties"][0]) == COUNTY_COLUMNS

    plan_dir = next(path.parent for path in (srv.data_dir / "plans" / plan_id).rglob("summary.json")
                    if "baselines" not in path.parts)
    library = plan_risk(plan_dir, workers=0, **REQUEST)
    assert body["summary"]["by_year"] == library.summary["by_year"]
    assert body["summary"]["money"] == library.summary["money"]
    assert body["summary"]["plan_fingerprint"] == library.summary["plan_fingerprint"] is not None
    pd.testing.assert_frame_equal(pd.DataFrame(body["counties"]), library.counties, check_dtype=False)

    started = time.monotonic()
    again = c.post(f"/v1/plans/{plan_id}/risk", json=REQUEST, headers=admin)
    assert again.json() == body and time.monotonic() - started < 5  # from the first result
    other = c.post(f"/v1/plans/{plan_id}/risk", json={**REQUEST, "seed": 4}, headers=admin).json()
    assert other["risk_id"] != body["risk_id"]

    for bad, field in (({"draws": 0}, "draws"), ({"draws": 10_001}, "draws"), ({"draws": "many"}, "draws"),
                       ({"draws": 5, "correlation": 1}, "correlation"),
                       ({"draws": 5, "cost_overrun": -0.1}, "cost_overrun"), ({"draws": 5, "spread": 0}, "spread")):
        refused = c.post(f"/v1/plans/{plan_id}/risk", json=bad, headers=admin)
        assert refused.status_code == 422, (bad, refused.text)
        assert field in refused.text, (bad, refused.text)
    assert c.post(f"/v1/plans/{plan_id}/risk", json=REQUEST).status_code == 401
    assert c.post("/v1/plans/nosuchplan/risk", json=REQUEST, headers=admin).status_code == 404
