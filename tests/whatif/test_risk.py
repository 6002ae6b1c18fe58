"""The risk of a plan (allocator.whatif.risk, ``allocator risk``): zero spread reproduces the plan's
numbers exactly, the same seed gives the same draws whatever the workers and chunks, the draws
centre on the plan's expectations, and bad input exits 2 naming the option, without a traceback."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import allocator
from allocator.errors import InputError
from allocator.optimize.parallel import dask_client
from allocator.whatif.risk import COUNTY_COLUMNS, RISK_CSV, RISK_JSON, plan_risk
from tests.support.commands import run
from tests.support.progress import Recorder, check_drawn
from tests.support.tiny import tiny_tables, write_folder


@pytest.fixture(scope="module")
def certain_plan(tmp_path_factory):
    """The tiny hand-made tables with every chance 0 or 1 (packages and baselines), solved: a plan
    whose every future is the nominal one."""
    tables = tiny_tables()
    tables["packages"]["exit_probability"] = [1.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 1.0, 1.0]
    tables["households"]["baseline_exit_probability"] = [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    folder = tmp_path_factory.mktemp("certain")
    scenario = allocator.load_scenario(write_folder(tables, folder / "data", start_year=2016, deadline_year=2018))
    plan = allocator.solve(scenario)
    assert plan.status == "optimal", plan.summary["message"]
    return plan.write(folder / "plan")


def nominal(plan_dir):
    summary = json.loads((plan_dir / "summary.json").read_text())
    counties = pd.read_csv(plan_dir / "counties.csv", dtype={"county_id": str})
    return summary, counties


def check_reproduces(risk, plan_dir):
    """Every draw, and so every statistic, is the plan's own number, to the last bit."""
    summary, counties = nominal(plan_dir)
    for row, planned in zip(risk.summary["by_year"], summary["path"], strict=True):
        assert row["year"] == planned["year"]
        assert row["expected_poor"] == planned["expected_poor"]
        for stat in ("mean", "p10", "p50", "p90"):
            assert row[f"poor_{stat}"] == planned["expected_poor"], (row, stat)
            assert row[f"share_{stat}"] == planned["share"]
    assert (risk.draws["poor"] == np.array([p["expected_poor"] for p in summary["path"]])).all()
    assert risk.summary["sustained_exits"]["mean"] == summary["sustained_exits"]
    money = risk.summary["money"]
    assert money["planned_spend"] == money["mean_needed"] == money["p90_needed"] == money["bad_10_mean_needed"] \
        == summary["total_cost"]
    assert money["extra_p90"] == 0.0
    assert risk.summary["nominal"]["total_cost"] == summary["total_cost"]
    table = risk.counties.set_index("county_id")
    planned = counties.set_index("county_id")
    assert list(table.index) == list(planned.index)
    assert (table["p_on_time"] == planned["on_schedule"].astype(float)).all()
    deadline = summary["deadline_year"]
    met = planned["achieved_hat_off_year"].notna() & (planned["achieved_hat_off_year"] <= deadline)
    assert (table["p_deadline"] == met.astype(float)).all()
    assert (table["on_schedule"] == planned["on_schedule"]).all()
    assert (table["planned_spend"] == planned["spend"]).all()


def test_a_plan_without_spread_is_its_nominal_numbers_exactly(certain_plan):
    households = pd.read_csv(certain_plan / "households.csv")
    assert set(households["exit_probability"]) <= {0.0, 1.0}  # every chance 0 or 1
    risk = plan_risk(certain_plan, 25, seed=7, workers=0)
    check_reproduces(risk, certain_plan)
    assert risk.counties["p_on_time"].isin([0.0, 1.0]).all()


def test_no_spread_reproduces_a_plan_of_fractional_chances(tiny_plan):
    plan_dir, context = tiny_plan
    assert not pd.read_csv(plan_dir / "households.csv")["exit_probability"].isin([0.0, 1.0]).all()
    risk = plan_risk(context, 12, seed=3, spread=False, workers=0)
    check_reproduces(risk, plan_dir)
    with pytest.raises(InputError, match="cost_overrun"):
        plan_risk(context, 12, spread=False, cost_overrun=0.1, workers=0)


def test_same_seed_same_draws_whatever_the_workers_and_chunks(tiny_plan):
    _, context = tiny_plan
    options = {"seed": 11, "cost_overrun": 0.2, "correlation": 0.3}
    alone = plan_risk(context, 60, workers=0, chunk=60, **options)
    again = plan_risk(context, 60, workers=0, chunk=7, **options)
    seen = Recorder()
    one = plan_risk(context, 60, workers=1, progress=seen, **options)
    with dask_client(workers=2) as client:
        two = plan_risk(context, 60, client=client, chunk=4, **options)
    for other in (again, one, two):
        for name, values in alone.draws.items():
            np.testing.assert_array_equal(values, other.draws[name], err_msg=name)
        pd.testing.assert_frame_equal(alone.counties, other.counties)
        assert alone.summary["by_year"] == other.summary["by_year"]
        assert alone.summary["money"] == other.summary["money"]
    reports = seen.of("draws")
    assert reports[-1] == {"done": 60, "of": 60}
    assert [r["done"] for r in reports] == sorted(r["done"] for r in reports)
    check_drawn(seen.events, "draws")
    other = plan_risk(context, 60, workers=0, **{**options, "seed": 12})
    assert not np.array_equal(alone.draws["poor"], other.draws["poor"])


def test_draws_centre_on_the_plan_and_overruns_raise_the_money(tiny_plan):
    plan_dir, context = tiny_plan
    summary, _ = nominal(plan_dir)
    risk = plan_risk(context, 400, seed=1, cost_overrun=0.2, workers=0)
    poor = risk.draws["poor"]
    expected = np.array([p["expected_poor"] for p in summary["path"]])
    error = poor.std(axis=0) / np.sqrt(len(poor)) + 1e-9
    assert (np.abs(poor.mean(axis=0) - expected) < 5 * error).all()
    assert (poor == np.round(poor)).all()  # households, whole
    money = risk.summary["money"]
    assert money["p90_needed"] > money["planned_spend"] == summary["total_cost"]
    assert money["bad_10_mean_needed"] >= money["p90_needed"] and money["extra_p90"] > 0
    for row in risk.summary["by_year"]:
        assert row["poor_p10"] <= row["poor_p50"] <= row["poor_p90"]
    assert risk.counties["p_on_time"].between(0, 1).all() and risk.counties["p_deadline"].between(0, 1).all()
    # a common county shock keeps the chances and widens the spread
    shocked = plan_risk(context, 400, seed=1, correlation=0.5, workers=0)
    assert shocked.draws["poor"][:, -1].std() > poor[:, -1].std()


def test_cli_writes_the_folder_and_refuses_bad_input(tiny_plan, tmp_path):
    plan_dir, _ = tiny_plan
    done = run("risk", plan_dir, "--draws", 30, "--seed", 5, "--workers", 0, "--cost-overrun", 0.1,
               "--out", tmp_path / "risk")
    assert done.returncode == 0, done.stderr
    table = pd.read_csv(tmp_path / "risk" / RISK_CSV, dtype={"county_id": str})
    assert list(table.columns) == COUNTY_COLUMNS and list(table.columns[:2]) == ["county_id", "county_name"]
    written = json.loads((tmp_path / "risk" / RISK_JSON).read_text())
    summary, _ = nominal(plan_dir)
    assert written["draws"] == 30 and written["seed"] == 5 and written["plan_fingerprint"] == \
        summary["plan_fingerprint"]
    library = plan_risk(plan_dir, 30, seed=5, cost_overrun=0.1, workers=0)
    assert written["by_year"] == library.summary["by_year"] and written["money"] == library.summary["money"]
    assert "on time" in done.stdout and "bad 10 %" in done.stdout
    again = run("risk", plan_dir, "--draws", 30, "--workers", 0, "--out", tmp_path / "risk")
    assert again.returncode == 0, again.stderr  # its own folder: rewritten
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine")
    cases = [(["--draws", 0], "--draws"), (["--draws", -4], "--draws"), (["--draws", "many"], "--draws"),
             (["--draws", 5, "--cost-overrun", "nan"], "--cost-overrun"),
             (["--draws", 5, "--correlation", 1], "--correlation"),
             (["--draws", 5, "--seed", "x"], "--seed"),
             (["--draws", 5, "--out", tmp_path / "mine"], "notes.txt")]
    for args, named in cases:
        bad = run("risk", plan_dir, *args, "--workers", 0)
        assert bad.returncode == 2, (args, bad.stdout, bad.stderr)
        assert named in bad.stderr and "Traceback" not in bad.stderr, (args, bad.stderr)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "mine"
    missing = run("risk", tmp_path / "nowhere", "--draws", 5, "--workers", 0)
    assert missing.returncode == 2 and "not a plan folder" in missing.stderr and "Traceback" not in missing.stderr


def test_default_folder_is_inside_the_plan_and_listed_by_it(tiny_plan, tmp_path):
    import shutil

    from allocator.inputs.provenance import foreign_files

    plan_dir = shutil.copytree(tiny_plan[0], tmp_path / "plan")
    done = run("risk", plan_dir, "--draws", 10, "--workers", 0, "--quiet")
    assert done.returncode == 0, done.stderr
    assert (plan_dir / "risk" / RISK_CSV).is_file() and (plan_dir / "risk" / RISK_JSON).is_file()
    assert foreign_files(plan_dir) == []  # the plan's manifest lists the risk folder


def test_a_plan_without_a_solution_and_bad_options_are_input_errors(tiny_plan, tmp_path):
    import shutil

    plan_dir = shutil.copytree(tiny_plan[0], tmp_path / "plan")
    summary = json.loads((plan_dir / "summary.json").read_text())
    (plan_dir / "summary.json").write_text(json.dumps({**summary, "status": "infeasible", "expected_exits": None}))
    with pytest.raises(InputError, match="no solution"):
        plan_risk(plan_dir, 5, workers=0)
    for options, key in (({"draws": 0}, "draws"), ({"draws": 2.5}, "draws"), ({"draws": True}, "draws"),
                         ({"draws": 5, "seed": -1}, "seed"),
                         ({"draws": 5, "cost_overrun": float("inf")}, "cost_overrun"),
                         ({"draws": 5, "correlation": -0.1}, "correlation"), ({"draws": 5, "workers": -1}, "workers"),
                         ({"draws": 5, "chunk": 0}, "chunk")):
        with pytest.raises(InputError) as raised:
            plan_risk(tiny_plan[1], **{"workers": 0, **options})
        assert [issue.key for issue in raised.value.issues] == [key], options
