"""What-if studies: scenario overrides (merge, validation, money) and sweeps on a real Dask LocalCluster."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest
import yaml

import allocator
from allocator.cli import parse_vary
from allocator.errors import ScenarioError
from allocator.inputs.provenance import input_hashes
from allocator.optimize.parallel import dask_client
from allocator.targeting.pipeline import load_tables
from allocator.whatif.sweep import RESULT_COLUMNS, frontier_violations, sweep, variant_list
from tests.support.plan_checker import check_plan
from tests.support.progress import Recorder, check_counted, check_drawn
from tests.support.tiny import write_folder


@pytest.fixture
def base(tables, tmp_path):
    """The tiny hand-made data set with a base scenario next to it (a share rule to inherit)."""
    return write_folder(tables, tmp_path / "data", policy={"min_category_share": {"industry": 0.1}})


@pytest.fixture(scope="module")
def client():
    """One LocalCluster of two worker processes for every sweep of this module."""
    with dask_client(workers=2) as dask:
        yield dask


def test_override_file_merges_keys_and_resolves_paths_per_file(base, tmp_path):
    variant = tmp_path / "what-if" / "hard.yaml"
    variant.parent.mkdir()
    variant.write_text("base: ../data/scenario.yaml\nmoney_scale: 2\npolicy: {deadline: hard}\n"
                       "solver: {mip_gap: 0.01}\n")
    sc = allocator.load_scenario(variant)
    assert (sc.name, sc.money_scale, sc.policy.deadline, sc.solver.mip_gap) == ("tiny", 2.0, "hard", 0.01)
    assert sc.policy.min_category_share == {"industry": 0.1}  # kept from the base
    assert sc.solver.method == "exact"
    assert sc.data_dir() == base.parent.resolve()  # the base's path, against the base's folder
    assert sc.source == variant.resolve()
    hashes = input_hashes(sc)
    assert {"hard.yaml", "../data/scenario.yaml", "funds.csv"} <= set(hashes)


def test_library_overrides_dotted_and_nested_agree_and_are_recorded(base):
    dotted = allocator.load_scenario(base, overrides={"policy.deadline": "hard", "money.central.2017": 1000})
    nested = allocator.load_scenario(base, overrides={"policy": {"deadline": "hard"},
                                                      "money": {"central": {2017: 1000}}})
    assert dotted.model_dump() == nested.model_dump()
    assert dotted.money == {"central": {2017: 1000.0}}
    assert dotted.overrides == {"policy": {"deadline": "hard"}, "money": {"central": {"2017": 1000}}}
    assert allocator.load_scenario(base).overrides == {}


def test_unknown_override_key_names_its_path_and_the_base(base, tmp_path):
    with pytest.raises(ScenarioError) as caught:
        allocator.load_scenario(base, overrides={"policy.dedline": "hard", "solver.mip_gap": 0.01})
    (issue,) = caught.value.issues
    assert issue.key == "policy.dedline" and issue.file == "overrides"
    assert "has no such key" in issue.message and "deadline" in issue.expected
    variant = tmp_path / "typo.yaml"
    variant.write_text(f"base: {base}\nmony_scale: 2\n")
    with pytest.raises(ScenarioError) as caught:
        allocator.load_scenario(variant)
    assert "typo.yaml, key 'mony_scale': unknown key: the base scenario (scenario.yaml) has no such key" in str(
        caught.value)


def test_override_values_are_validated_like_the_base(base, tmp_path):
    variant = tmp_path / "bad.yaml"
    variant.write_text(f"base: {base}\nmoney_scale: -1\npolicy: {{deadline: maybe}}\nmoney: {{central: {{2030: 5}}}}\n")
    with pytest.raises(ScenarioError) as caught:
        allocator.load_scenario(variant)
    keys = {issue.key for issue in caught.value.issues}
    assert {"money_scale", "policy.deadline"} <= keys
    assert all(issue.file == "bad.yaml" for issue in caught.value.issues)
    with pytest.raises(ScenarioError, match="outside 2016..2018"):
        allocator.load_scenario(base, overrides={"money.central.2030": 5})


def test_base_cycle_is_an_error(tmp_path):
    (tmp_path / "a.yaml").write_text("base: b.yaml\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\n")
    with pytest.raises(ScenarioError, match="cycle"):
        allocator.load_scenario(tmp_path / "a.yaml")


def test_money_replaces_amounts_then_money_scale_multiplies_every_fund(base, tables):
    sc = allocator.load_scenario(base, overrides={"money.central.2017": 1234, "money_scale": 2})
    funds = load_tables(sc)["funds"].set_index(["source_id", "year"])["amount"]
    original = tables["funds"].set_index(["source_id", "year"])["amount"]
    assert funds[("central", 2017)] == 2468
    others = original.drop(("central", 2017))
    assert (funds[others.index] == 2 * others).all()


def test_money_for_a_missing_source_or_year_names_it(base):
    sc = allocator.load_scenario(base, overrides={"money.nosuch.2017": 1, "money.county1.2016": 1})
    with pytest.raises(ScenarioError) as caught:
        load_tables(sc)
    text = str(caught.value)
    assert "key 'money.nosuch': no fund row has source 'nosuch'; expected a source of the funds table: central, " \
           "county1" in text
    assert "key 'money.county1.2016': source 'county1' has no fund row in 2016; expected a year with a row: " \
           "2017, 2018" in text


def test_plan_manifest_records_money_and_overrides(base, tables):
    plan = allocator.solve(allocator.load_scenario(base, overrides={"money_scale": 1.5}))
    manifest = plan.summary["manifest"]
    assert manifest["money_scale"] == 1.5 and manifest["overrides"] == {"money_scale": 1.5}
    money = sum(row["amount"] for row in plan.summary["budget_use"])
    assert money == pytest.approx(1.5 * tables["funds"]["amount"].sum())


def test_variants_are_the_cross_product_or_a_list():
    assert parse_vary(["money_scale=0.5,1", "policy.deadline=soft,hard"]) == {
        "money_scale": [0.5, 1], "policy.deadline": ["soft", "hard"]}
    assert len(variant_list({"a": [1, 2], "b": [3, 4, 5]})) == 6
    assert variant_list({"a": [1]}, variants=[{"b": {"c": 2}}, {"d": 3}]) == [{"b.c": 2, "a": 1}, {"d": 3, "a": 1}]


def test_frontier_violations_catch_less_value_for_more_money():
    frame = pd.DataFrame({"money_scale": [1, 2, 3], "status": ["optimal"] * 3, "money_available": [10, 20, 30],
                          "value": [5.0, 7.0, 6.0], "total_shortfall": [0.0, 0.0, 0.0]})
    (found,) = frontier_violations(frame, ["money_scale"])
    assert "20 → 30" in found
    frame["total_shortfall"] = [3.0, 1.0, 0.0]  # fewer exits, but counties put on schedule first: allowed
    assert frontier_violations(frame, ["money_scale"]) == []


MONEY_LEVELS = [0.25, 0.5, 0.6, 0.75, 0.9, 1.0, 1.5]


def test_money_sweep_never_loses_value_as_money_rises(client, tmp_path):
    """The canonical tiny preset, solved exactly (gap 0): more money can only help. Below about
    0.3 of its money the mandatory projects cannot be paid (infeasible); above 1.0 nothing more
    can be bought; in between exits rise."""
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump({"name": "tiny-preset", "start_year": 2016, "deadline_year": 2017,
                                    "generate": {"preset": "tiny", "seed": 1},
                                    "solver": {"method": "exact", "mip_gap": 0.0, "time_limit": 60}}))
    seen = Recorder()
    results = sweep(path, {"money_scale": MONEY_LEVELS}, out=tmp_path / "sweep", client=client, progress=seen)
    assert list(results.columns) == ["money_scale", *RESULT_COLUMNS]
    assert check_counted(seen.of("variants")) == len(MONEY_LEVELS)  # variants done of all, for a bar
    check_drawn(seen.events, "variants")
    assert list(results["status"]) == ["infeasible"] + ["optimal"] * (len(MONEY_LEVELS) - 1)
    planned = results[results["status"] == "optimal"].sort_values("money_scale")
    value = planned["value"].to_numpy()  # what the model maximises (sustained exits and earliness)
    assert (value[1:] >= value[:-1] - 1e-6).all(), f"the plan's value falls as money rises: {value}"
    exits = planned["expected_exits"].to_numpy()
    assert exits[-1] > exits[0] + 1  # the sweep spans a range where money matters
    assert planned["money_available"].is_monotonic_increasing
    assert frontier_violations(results, ["money_scale"]) == []
    assert (tmp_path / "sweep" / "frontier.png").stat().st_size > 0
    written = pd.read_csv(tmp_path / "sweep" / "results.csv")
    assert list(written["expected_exits"].round(6).dropna()) == list(planned["expected_exits"].round(6))
    folder = tmp_path / "sweep" / "variants" / planned["variant"].iloc[0]
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["manifest"]["overrides"] == {"money_scale": 0.5}

    seen = Recorder()
    again = sweep(path, {"money_scale": MONEY_LEVELS}, out=tmp_path / "sweep", scheduler="tcp://127.0.0.1:9",
                  progress=seen)
    assert again["cached"].all() and not seen.events  # every variant reused: no cluster was needed, no bar
    assert again["expected_exits"].equals(results["expected_exits"])


def test_failed_variants_are_reported_and_the_others_complete(client, base, tmp_path):
    """An invalid value (caught before submitting) and a crash on a worker (an unknown backend)
    each fail their variant only; the plans of the others pass the independent checker; a
    second run reuses every finished variant without a cluster."""
    vary = {"policy.deadline": ["soft", "maybe"], "solver.backend": ["highs", "nosuch"]}
    results = sweep(base, vary, out=tmp_path / "sweep", client=client)
    by = results.set_index(["policy.deadline", "solver.backend"])
    assert by.loc[("soft", "highs"), "status"] == "optimal"
    assert "policy.deadline" in by.loc[("maybe", "highs"), "message"]
    assert by.loc[("soft", "nosuch"), "status"] == "error"
    assert "SolverUnavailable" in by.loc[("soft", "nosuch"), "message"]
    assert (results["status"] == "error").sum() == 3
    plan_dir = tmp_path / "sweep" / "variants" / by.loc[("soft", "highs"), "variant"]
    assert check_plan(base.parent, plan_dir, start_year=2016, deadline_year=2018,
                      policy={"min_category_share": {"industry": 0.1}}) == []

    again = sweep(base, vary, out=tmp_path / "sweep", client=client).set_index(["policy.deadline", "solver.backend"])
    assert again.loc[("soft", "highs"), "cached"] and not again.loc[("soft", "nosuch"), "cached"]  # failures retried


def test_unknown_key_stops_the_sweep_before_anything_runs(base, tmp_path):
    with pytest.raises(ScenarioError, match="policy.dedline"):
        sweep(base, {"policy.dedline": ["hard"]}, out=tmp_path / "sweep", scheduler="tcp://127.0.0.1:9")
    assert not (tmp_path / "sweep").exists()


def test_sweep_command_line(base, tmp_path):
    """One worker process, the table printed, exit 0; a bad key exits 2 with its path."""
    out = tmp_path / "sweep"
    run = [sys.executable, "-m", "allocator", "sweep", str(base), "--vary", "money_scale=0.8,1.2", "--workers", "1",
           "--out", str(out), "--quiet"]
    done = subprocess.run(run, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr + done.stdout
    assert "optimal" in done.stdout
    assert len(pd.read_csv(out / "results.csv")) == 2
    bad = subprocess.run([*run[:5], "--vary", "policy.dedline=hard", "--out", str(tmp_path / "bad")],
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "policy.dedline" in bad.stderr and "Traceback" not in bad.stderr
