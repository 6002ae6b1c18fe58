"""``decompose`` on Dask: the county groups as tasks on a real LocalCluster give the threads'
plan, land within 0.5 % of the exact optimum and pass the independent checker; the command
line runs it on an existing scheduler (``--scheduler``) or a new LocalCluster (``--workers``)."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys

import pandas as pd
import pytest
from distributed import Client, LocalCluster
from typer.testing import CliRunner

import allocator
from allocator.cli import app
from allocator.inputs.scenario import SolverSettings
from allocator.synth import generate_preset
from tests.support.plan_checker import check_scenario_plan
from tests.support.tiny import write_folder

DEADLINE = 2018
# four counties, 1,200 households, three years, twice the preset's money: the exact MIP is
# proven in ~8 s (~80 s with the preset's money); 1,000 kept columns per group make three
# groups of counties
DECOMPOSE = {"method": "decompose", "group_columns": 1000}


@pytest.fixture(scope="module")
def client():
    """A LocalCluster of two worker processes, one thread each."""
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      silence_logs=logging.ERROR) as cluster, Client(cluster) as dask:
        yield dask


@pytest.fixture(scope="module")
def scenario_path(tmp_path_factory):
    tables = generate_preset("demo", seed=0, start_year=2016, deadline_year=DEADLINE, households=1200, counties=4,
                             money_scale=2.0)
    return write_folder(tables, tmp_path_factory.mktemp("mid") / "data", start_year=2016, deadline_year=DEADLINE,
                        solver=DECOMPOSE)


def _solve_checked(path, folder, **kwargs):
    plan = allocator.solve(allocator.load_scenario(path), **kwargs)
    violations = check_scenario_plan(path, plan.write(folder))
    assert violations == [], "independent checker:\n" + "\n".join(violations[:20])
    return plan


@pytest.fixture(scope="module")
def on_dask(scenario_path, client, tmp_path_factory):
    return _solve_checked(scenario_path, tmp_path_factory.mktemp("dask") / "plan", client=client)


def test_groups_run_as_dask_tasks_and_the_summary_says_where(on_dask, client):
    summary = on_dask.summary
    assert summary["method"] == "decompose"
    assert summary["manifest"]["scheduler"] == client.scheduler.address
    found = re.search(r"lp-fix on (\d+) groups of counties \(as \1 Dask tasks, workers: 2,", summary["message"])
    assert found and int(found[1]) >= 2


def test_dask_plan_is_within_half_a_percent_of_the_exact_optimum(scenario_path, on_dask, tmp_path):
    exact = _solve_checked(scenario_path, tmp_path / "exact", settings=SolverSettings(method="exact", mip_gap=1e-4))
    assert exact.status == "optimal" and on_dask.status in ("optimal", "feasible")
    assert on_dask.summary["total_shortfall"] == pytest.approx(exact.summary["total_shortfall"], abs=1e-6)
    assert on_dask.summary["value"] >= (1 - 0.005) * exact.summary["bound"]  # bound >= the optimum
    assert on_dask.summary["bound"] >= exact.summary["value"] - 1e-6  # decompose's bound is honest


def test_threads_and_dask_give_the_same_plan(scenario_path, on_dask, tmp_path):
    threads = _solve_checked(scenario_path, tmp_path / "threads")
    assert threads.summary["manifest"]["scheduler"] is None
    assert "in threads, 2 at a time" in threads.summary["message"]
    assert threads.summary["objective"] == on_dask.summary["objective"]
    for name in ("households", "projects", "funding"):
        pd.testing.assert_frame_equal(getattr(threads, name), getattr(on_dask, name))


def test_cli_solve_on_an_existing_scheduler(scenario_path, client, tmp_path):
    """``auto`` picks decompose when a scheduler is given; the estimate comes before the build."""
    out = tmp_path / "plan"
    result = CliRunner().invoke(app, ["solve", str(scenario_path), "--method", "auto", "--scheduler",
                                      client.scheduler.address, "--out", str(out)])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["method"] == "decompose" and summary["manifest"]["scheduler"] == client.scheduler.address
    assert (out / "households.csv").is_file() and (out / "counties.png").is_file()
    assert result.output.index("estimate") < result.output.index("build model")


def test_cli_workers_start_a_local_cluster(tables, tmp_path):
    path = write_folder(tables, tmp_path / "data", solver={"method": "auto"})
    out = tmp_path / "plan"
    done = subprocess.run([sys.executable, "-m", "allocator", "solve", str(path), "--workers", "1", "--out", str(out),
                           "--quiet"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr + done.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["method"] == "decompose" and summary["manifest"]["scheduler"] == "LocalCluster (workers: 1)"
    assert check_scenario_plan(path, out) == []
