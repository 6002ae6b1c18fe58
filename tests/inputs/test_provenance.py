"""Output folders allocator owns (its manifest), inputs that belong together (fingerprints), and
the rough edges of reading a user's tables (encodings, delimiters, workbooks, folders)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

import allocator
from allocator import cli
from allocator.errors import InputError, InputMismatch
from allocator.inputs.provenance import (
    check_output_folder,
    check_record_plan,
    foreign_files,
    input_fingerprint,
    made_from,
    output_folder,
    read_manifest,
)
from allocator.synth import write_tables
from allocator.synth.province import generate_province
from tests.support.loop_helpers import solve_preset
from tests.support.tiny import tiny_tables, write_folder

MINE = "household_id,note\nH1,my own notes\n"


def run(*args, env: dict | None = None):
    cli.out.width = cli.err.width = 300  # one line per message
    return CliRunner().invoke(cli.app, [str(a) for a in args], env=env)


@pytest.fixture
def tiny(tmp_path):
    """The tiny data set's scenario and its plan folder (solved with the library)."""
    path = write_folder(tiny_tables(), tmp_path / "data")
    return path, allocator.solve(allocator.load_scenario(path)).write(tmp_path / "plan")


def mine(folder: Path, name: str = "households.csv") -> Path:
    """A folder holding a file of the user's with one of allocator's names."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(MINE)
    return folder / name


def refused(result, path: Path) -> None:
    """Exit 2 naming the user's file, which is untouched."""
    assert result.exit_code == 2, result.output
    assert path.name in result.stderr and "allocator did not write" in result.stderr
    assert path.read_text() == MINE


# --- output folders --------------------------------------------------------------------------
def test_solve_refuses_a_folder_holding_the_users_households_csv(tiny, tmp_path):
    scenario, _ = tiny
    users = mine(tmp_path / "out")
    refused(run("solve", scenario, "--out", users.parent, "--quiet"), users)
    assert not (users.parent / "summary.json").exists()
    assert run("solve", scenario, "--out", tmp_path / "again", "--quiet").exit_code == 0
    assert run("solve", scenario, "--out", tmp_path / "again", "--quiet").exit_code == 0, "its own output"


def test_the_manifest_lists_what_was_written_and_nothing_else(tmp_path):
    folder = tmp_path / "out"
    with output_folder(folder, "plan"):
        (folder / "path.csv").write_text("a\n1\n")  # a file no list names
        (folder / "sub").mkdir()
        (folder / "sub" / "x.txt").write_text("x")
    assert sorted(read_manifest(folder)["files"]) == ["path.csv", "sub/x.txt"] and foreign_files(folder) == []
    check_output_folder(folder, "plan")
    (folder / "path.csv").write_text("a\n2\n")  # one of our names, not what we wrote
    (folder / "notes.txt").write_text("mine")
    assert foreign_files(folder) == ["notes.txt", "path.csv"]
    with pytest.raises(InputError, match="notes.txt, path.csv"):
        check_output_folder(folder, "plan")
    other = tmp_path / "ident"
    with output_folder(other, "identification"):
        (other / "villages.csv").write_text("a\n")
    with pytest.raises(InputError, match="another kind"):
        check_output_folder(other, "plan")


def test_a_plan_folder_is_refused_by_the_library_too(tmp_path):
    plan = allocator.solve(allocator.load_scenario(write_folder(tiny_tables(), tmp_path / "data")))
    users = mine(tmp_path / "plan", "funding.csv")
    with pytest.raises(InputError, match="funding.csv"):
        plan.write(users.parent)
    assert users.read_text() == MINE


def test_explain_and_report_refuse_a_plan_folder_with_foreign_files_and_list_what_they_add(tiny):
    _, plan_dir = tiny
    assert run("explain", plan_dir, "--quiet", "--no-earliest", "--no-money").exit_code == 0
    assert run("report", plan_dir).exit_code == 0
    assert {"difficulties.json", "report.html"} <= set(read_manifest(plan_dir)["files"])
    assert foreign_files(plan_dir) == []
    users = mine(plan_dir, "notes.csv")
    (plan_dir / "report.html").unlink()
    refused(run("report", plan_dir), users)
    assert not (plan_dir / "report.html").exists()
    before = (plan_dir / "difficulties.json").read_text()
    refused(run("explain", plan_dir, "--quiet", "--no-earliest", "--no-money"), users)
    assert (plan_dir / "difficulties.json").read_text() == before


def test_progress_monitor_and_replan_folders(tmp_path):
    plan_dir = solve_preset(tmp_path / "a")
    users = mine(tmp_path / "record")
    refused(run("simulate", plan_dir, "--year", 2018, "--out", users.parent, "--quiet"), users)
    record = tmp_path / "rec"
    assert run("simulate", plan_dir, "--year", 2018, "--out", record, "--quiet").exit_code == 0
    counties = mine(tmp_path / "mon", "counties.csv")
    refused(run("monitor", plan_dir, record, "--out", counties.parent, "--quiet"), counties)
    assert run("monitor", plan_dir, record, "--quiet").exit_code == 0  # into PLAN_DIR/monitor
    assert "monitor/monitor.json" in read_manifest(plan_dir)["files"] and foreign_files(plan_dir) == []
    diff = mine(tmp_path / "new", "diff.csv")
    refused(run("replan", plan_dir, record, "--out", diff.parent, "--quiet"), diff)
    assert run("solve", tmp_path / "a" / "scenario.yaml", "--out", plan_dir, "--quiet").exit_code == 0


def test_raw_data_commands_refuse_foreign_files(tiny, tmp_path):
    raw = tmp_path / "raw.yaml"
    raw.write_text(yaml.safe_dump({"name": "raw", "start_year": 2016, "deadline_year": 2020,
                                   "generate": {"preset": "county", "seed": 1}}))
    for command, name in (("identify", "villages.csv"), ("candidates", "households.csv"), ("assign", "teams.csv")):
        users = mine(tmp_path / command, name)
        refused(run(command, raw, "--out", users.parent, "--quiet"), users)
    _, plan_dir = tiny
    result = run("identify", raw, "--out", plan_dir, "--quiet")
    assert result.exit_code == 2 and "another kind (plan, not identification)" in result.stderr


def test_generate_and_sweep_refuse_foreign_files(tiny, tmp_path):
    users = mine(tmp_path / "gen", "regions.csv")
    refused(run("generate", "canonical", users.parent, "--households", 50), users)
    scenario, _ = tiny
    results = mine(tmp_path / "sweep", "results.csv")
    refused(run("sweep", scenario, "--out", results.parent, "--vary", "money_scale=1", "--quiet"), results)


# --- fingerprints ----------------------------------------------------------------------------
def test_assign_refuses_a_plan_of_other_inputs(tiny, tmp_path):
    raw = tmp_path / "raw.yaml"
    raw.write_text(yaml.safe_dump({"name": "raw", "start_year": 2016, "deadline_year": 2020,
                                   "generate": {"preset": "county", "seed": 1}}))
    scenario, plan_dir = tiny
    result = run("assign", raw, "--plan", plan_dir, "--out", tmp_path / "assigned", "--quiet")
    assert result.exit_code == 2, result.output
    ours = input_fingerprint(allocator.load_scenario(raw))[:16]
    theirs = input_fingerprint(allocator.load_scenario(scenario))[:16]
    assert "made from other inputs" in result.stderr and ours in result.stderr and theirs in result.stderr
    assert not (tmp_path / "assigned").exists()


def test_monitor_and_replan_refuse_a_record_of_another_plan(tmp_path):
    plan_dir = solve_preset(tmp_path / "a", seed=1)
    other = solve_preset(tmp_path / "b", seed=3)
    record = allocator.simulate_progress(other, 2018, seed=0).write(tmp_path / "record")
    theirs = json.loads((other / "summary.json").read_text())["plan_fingerprint"][:16]
    ours = json.loads((plan_dir / "summary.json").read_text())["plan_fingerprint"][:16]
    for command in (("monitor", plan_dir, record), ("replan", plan_dir, record, "--out", tmp_path / "new")):
        result = run(*command, "--quiet")
        assert result.exit_code == 2, result.output
        assert "drawn from another plan" in result.stderr and ours in result.stderr and theirs in result.stderr
    with pytest.raises(InputMismatch):
        allocator.monitor_progress(plan_dir, record)


def test_a_re_plan_answers_to_the_records_of_the_plans_it_re_planned(tmp_path):
    parent = {"plan_fingerprint": "p1", "manifest": {"input_fingerprint": "i"}}
    child = {"plan_fingerprint": "p2", "replan_of": ["p1"], "manifest": {"input_fingerprint": "i"}}
    check_record_plan("p1", "i", child, record="r", plan="child")
    check_record_plan("", "", parent, record="r", plan="hand-made records are not checked")
    with pytest.raises(InputMismatch, match="p2"):
        check_record_plan("p2", "i", parent, record="r", plan="parent")
    with pytest.raises(InputMismatch):
        check_record_plan("p1", "other", parent, record="r", plan="parent")


def test_candidate_tables_remember_the_raw_inputs_they_were_made_from(tmp_path):
    write_tables(generate_province(300, counties=1, seed=7), tmp_path / "raw")
    raw = tmp_path / "raw" / "scenario.yaml"
    raw.write_text(yaml.safe_dump({"name": "raw", "start_year": 2016, "deadline_year": 2020, "data": "."}))
    assert run("candidates", raw, "--out", tmp_path / "cand", "--quiet").exit_code == 0
    canonical = allocator.load_scenario(tmp_path / "cand" / "scenario.yaml")
    assert made_from(canonical) == input_fingerprint(allocator.load_scenario(raw)) != input_fingerprint(canonical)
    (tmp_path / "cand" / "funds.csv").write_text((tmp_path / "cand" / "funds.csv").read_text() + "\n")
    assert made_from(canonical) is None, "edited tables are no longer what candidates made"


def test_compare_says_when_the_plans_are_of_different_data(tiny, tmp_path):
    _, plan_dir = tiny
    other = solve_preset(tmp_path / "b")
    assert "from different input data" in run("compare", plan_dir, other).stdout
    assert "from the same input data" in run("compare", plan_dir, plan_dir).stdout


# --- rough edges -----------------------------------------------------------------------------
CHINESE = {"V1": "石门村", "V2": "大坪村", "V3": "新寨村"}


def chinese_folder(folder: Path, encoding: str | None = None) -> Path:
    tables = tiny_tables()
    tables["villages"]["name"] = tables["villages"]["village_id"].map(CHINESE)
    path = write_folder(tables, folder)
    (folder / "villages.csv").write_bytes((folder / "villages.csv").read_text().encode("gbk"))
    if encoding:
        path.write_text(yaml.safe_dump({**yaml.safe_load(path.read_text()), "encoding": encoding}))
    return path


@pytest.mark.parametrize("declared, recorded", [(None, "gb18030"), ("GBK", "gbk")])
def test_gbk_tables_are_read_and_the_manifest_says_so(tmp_path, declared, recorded):
    path = chinese_folder(tmp_path / "data", declared)
    assert run("validate", path).exit_code == 0
    scenario = allocator.load_scenario(path)
    assert allocator.load_tables(scenario)["villages"]["name"].tolist() == list(CHINESE.values())
    plan = allocator.solve(scenario)
    assert plan.summary["manifest"]["encodings"]["villages.csv"] == recorded
    assert plan.summary["manifest"]["encodings"]["households.csv"] == ("gbk" if declared else "utf-8")


def test_text_of_no_known_encoding_is_refused_with_a_hint(tmp_path):
    path = write_folder(tiny_tables(), tmp_path / "data")
    (tmp_path / "data" / "villages.csv").write_bytes(b"village_id,township_id\nV1,T1\xff\n")
    result = run("validate", path)
    assert result.exit_code == 2 and "villages.csv: not UTF-8 (nor GB18030) text" in result.stderr
    assert "saved as UTF-8" in result.stderr and "encoding:" in result.stderr


def test_a_semicolon_delimiter_is_named(tmp_path):
    tables = tiny_tables()
    path = write_folder(tables, tmp_path / "data")
    tables["regions"].to_csv(tmp_path / "data" / "regions.csv", sep=";", index=False)
    result = run("validate", path)
    assert result.exit_code == 2 and "regions.csv: the columns are separated by ';'" in result.stderr
    assert "missing column" not in result.stderr


def test_a_spreadsheet_that_is_not_read_is_named(tmp_path):
    path = write_folder(tiny_tables(), tmp_path / "data")
    (tmp_path / "data" / "funds.csv").rename(tmp_path / "data" / "funds.xlsx")  # CSV text under a workbook's name
    (tmp_path / "data" / "personnel.csv").unlink(missing_ok=True)
    (tmp_path / "data" / "personnel.xls").write_bytes(b"\xd0\xcf\x11\xe0")  # optional, but not to be ignored
    result = run("validate", path)
    assert result.exit_code == 2 and "funds.xlsx: not an Excel workbook" in result.stderr
    assert "personnel.xls: a .xls spreadsheet, which allocator does not read" in result.stderr
    assert "personnel.xlsx (Excel Workbook)" in result.stderr and "funds.csv" in result.stderr


def test_a_folder_given_as_the_scenario_is_called_a_folder(tmp_path):
    path = write_folder(tiny_tables(), tmp_path / "data")
    result = run("solve", path.parent, "--quiet")
    assert result.exit_code == 2 and "is a folder, not a scenario file" in result.stderr
    assert str(path) in result.stderr


def test_an_invalid_vary_value_exits_2_before_anything_runs(tiny, tmp_path):
    scenario, _ = tiny
    result = run("sweep", scenario, "--out", tmp_path / "sweep", "--vary", "money_scale=1,abc", "--quiet")
    assert result.exit_code == 2 and "money_scale" in result.stderr and "'abc'" in result.stderr
    assert not (tmp_path / "sweep").exists()


def test_keys_commands_name_their_store_and_refuse_a_missing_one(tmp_path):
    env = {"ALLOCATOR_DATA_DIR": str(tmp_path / "nowhere"), "ALLOCATOR_DB_URL": None}
    for command in (("list",), ("create", "--region", "P1"), ("revoke", "k1")):
        result = run("keys", *command, env=env)
        assert result.exit_code == 2 and "job store: sqlite:///" in result.stderr and "--create" in result.stderr
    assert not (tmp_path / "nowhere").exists()
    made = run("keys", "create", "--region", "P1", "--create", env=env)
    assert made.exit_code == 0 and (tmp_path / "nowhere" / "allocator.db").is_file()
    assert str(tmp_path / "nowhere") in made.stderr
    assert run("keys", "list", env=env).exit_code == 0


def test_the_or_library_instances_ship_with_the_tests():
    folder = Path(__file__).parents[1] / "data" / "orlib-gap"
    files = sorted(folder.glob("gap*.txt"))
    assert len(files) == 16 and sum(p.stat().st_size for p in files) < 500_000
