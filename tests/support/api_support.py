"""Helpers shared by the HTTP service tests: data folders, uploads and polling."""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from allocator.cli import app as cli_app
from allocator.inputs.tables import REQUIRED_TABLES

FINISHED = ("done", "failed", "cancelled")
TINY = {"name": "tiny", "start_year": 2016, "deadline_year": 2020, "generate": {"preset": "tiny", "seed": 1},
        "solver": {"time_limit": 10}}
# 200 households in 3 counties: branch and bound finds a plan at once but needs minutes to prove
# a 1e-6 gap, so the solve runs for its whole time limit and always has a plan
SLOW = {"name": "slow", "start_year": 2016, "deadline_year": 2020,
        "generate": {"preset": "demo", "households": 200, "seed": 0}, "solver": {"time_limit": 60, "mip_gap": 1e-6}}


def preset_regions(scenario: dict) -> list[dict]:
    """The region rows (region_id, parent_id, level, name) of a scenario's generated data, as
    PUT /v1/regions takes them."""
    from allocator.inputs.scenario import scenario_from_dict
    from allocator.targeting.pipeline import load_tables

    regions = load_tables(scenario_from_dict(scenario, file="scenario.yaml",
                                             source=Path("scenario.yaml").resolve()))["regions"]
    return regions[["region_id", "parent_id", "level", "name"]].to_dict("records")


def canonical_folder(folder: Path) -> Path:
    """A synthetic canonical data folder with its scenario.yaml, made by the CLI: 200 households
    in one county (C001 under F01 under P1), two years, solved to optimality in about 0.3 s."""
    result = CliRunner().invoke(cli_app, ["generate", "canonical", str(folder), "--households", "200",
                                          "--years", "2016:2017", "--seed", "2"])
    assert result.exit_code == 0, result.output
    return folder


def upload(folder: Path) -> list[tuple[str, tuple[str, bytes, str]]]:
    """Multipart parts: the folder's scenario.yaml and every table file in it."""
    parts = [("scenario", ("scenario.yaml", (folder / "scenario.yaml").read_bytes(), "application/yaml"))]
    for path in sorted(folder.glob("*.csv")):
        parts.append(("tables", (path.name, path.read_bytes(), "text/csv")))
    return parts


def records(folder: Path) -> dict[str, list[dict]]:
    """The folder's tables as JSON records with typed values (numbers, booleans, null)."""
    tables = {}
    for name in REQUIRED_TABLES + ("personnel",):
        frame = pd.read_csv(folder / f"{name}.csv", dtype={c: str for c in ("region_id", "parent_id", "village_id",
                                                                             "township_id", "household_id")})
        tables[name] = frame.astype(object).where(frame.notna(), None).to_dict("records")
    return tables


def wait_for(get, plan_id: str, statuses=FINISHED, timeout: float = 60.0) -> dict:
    """Poll ``get(path)`` (a client's get with its key) until the plan's status is one of ``statuses``."""
    deadline = time.monotonic() + timeout
    while True:
        body = get(f"/v1/plans/{plan_id}").json()
        if body["status"] in statuses:
            return body
        assert time.monotonic() < deadline, f"plan {plan_id} still {body['status']} after {timeout} s: {body}"
        time.sleep(0.1)
