"""The command line: exit codes, messages, plan folders, determinism (real subprocesses)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from allocator.solvers import BACKENDS
from tests.support.backends import COMMERCIAL, size_limited, usable_backend
from tests.support.commands import run
from tests.support.plan_checker import check_scenario_plan
from tests.support.tiny import write_folder


@pytest.fixture
def scenario(tables, tmp_path):
    return write_folder(tables, tmp_path / "data")


def test_validate_ok(scenario):
    result = run("validate", scenario)
    assert result.returncode == 0, result.stderr
    assert "households" in result.stdout and "valid" in result.stdout


def test_validate_bad_input_exit_2_with_clear_messages(tables, tmp_path):
    tables["households"].loc[1, "baseline_exit_probability"] = 1.5
    tables["funds"].loc[0, "categories"] = "roads"
    path = write_folder(tables, tmp_path / "data")
    result = run("validate", path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "households.csv row 2" in result.stderr and "baseline_exit_probability" in result.stderr
    assert "funds.csv row 1" in result.stderr and "roads" in result.stderr


def test_missing_scenario_file_exit_2(tmp_path):
    result = run("solve", tmp_path / "nope.yaml")
    assert result.returncode == 2 and "does not exist" in result.stderr and "Traceback" not in result.stderr


def test_solve_writes_a_checked_plan_and_shows_progress(scenario, tmp_path):
    out = tmp_path / "plan"
    result = run("solve", scenario, "--out", out)
    assert result.returncode == 0, result.stderr
    assert {p.name for p in out.iterdir()} == {"summary.json", "households.csv", "projects.csv", "funding.csv",
                                               "path.csv", "counties.csv", "money_by_year.png", "counties.png",
                                               "allocator-manifest.json", "marginal_values.csv"}
    assert "build model" in result.stderr and "plan ready" in result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "optimal"
    manifest = summary["manifest"]
    assert manifest["backend"] == "highs" and manifest["backend_version"] and "households.csv" in manifest["inputs"]
    assert check_scenario_plan(scenario, out) == []


def test_quiet_silences_progress(scenario, tmp_path):
    result = run("solve", scenario, "--out", tmp_path / "plan", "--quiet")
    assert result.returncode == 0 and result.stderr.strip() == ""


def test_same_scenario_same_plan(scenario, tmp_path):
    for name in ("a", "b"):
        assert run("solve", scenario, "--out", tmp_path / name, "--quiet").returncode == 0
    for table in ("households.csv", "projects.csv", "funding.csv", "counties.csv"):
        assert (tmp_path / "a" / table).read_text() == (tmp_path / "b" / table).read_text()


def test_options_override_the_scenario(scenario, tmp_path):
    out = tmp_path / "plan"
    result = run("solve", scenario, "--out", out, "--backend", "pulp", "--gap", "0", "--time-limit", "30",
                 "--threads", "1", "--quiet")
    assert result.returncode == 0, result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["backend"] == "pulp" and summary["manifest"]["options"]["time_limit"] == 30


def test_unknown_backend_exit_2(scenario, tmp_path):
    result = run("solve", scenario, "--out", tmp_path / "plan", "--backend", "cplex")
    assert result.returncode == 2 and "cplex" in result.stderr and "highs" in result.stderr


@pytest.mark.parametrize("name", COMMERCIAL)
def test_commercial_backend_solves_a_checked_plan(scenario, tmp_path, name):
    usable_backend(name)
    out = tmp_path / "plan"
    result = run("solve", scenario, "--out", out, "--backend", name, "--gap", "0", "--quiet")
    assert result.returncode == 0, result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["backend"] == name and summary["status"] == "optimal"
    assert summary["manifest"]["backend_version"] == BACKENDS[name].version()
    assert check_scenario_plan(scenario, out) == []


@pytest.mark.parametrize("name", COMMERCIAL)
def test_commercial_backend_without_its_package_exit_2_says_what_to_install(scenario, tmp_path, name):
    """The package hidden from this process (as if not installed), whether or not it is here."""
    package = BACKENDS[name].package
    hidden = f"import sys; sys.modules[{package!r}] = None; from allocator.cli import main; main()"
    result = subprocess.run([sys.executable, "-c", hidden, "solve", str(scenario), "--out", str(tmp_path / "plan"),
                             "--backend", name], capture_output=True, text=True, timeout=600)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"pip install {package}" in " ".join(result.stderr.split())


@pytest.mark.parametrize("name", COMMERCIAL)
def test_commercial_backend_above_its_size_limit_exit_2_with_the_solvers_message(tmp_path, name):
    """400 households of the tiny preset: ~2,500 columns, above the free licences' 2,000."""
    usable_backend(name)
    if not size_limited(name):
        pytest.skip(f"{name} is licensed here without a size limit")
    path = tmp_path / "big.yaml"
    path.write_text(yaml.safe_dump({"name": "big", "start_year": 2016, "deadline_year": 2018,
                                    "generate": {"preset": "tiny", "households": 400},
                                    "solver": {"backend": name, "method": "exact"}}))
    result = run("solve", path, "--out", tmp_path / "plan", "--quiet")
    message = " ".join(result.stderr.split())
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "cannot solve this model" in message and "choose another backend (highs)" in message


def test_infeasible_exit_1_with_reason(tables, tmp_path):
    tables["projects"].loc[1, "duration_years"] = 5
    path = write_folder(tables, tmp_path / "data")
    result = run("solve", path, "--out", tmp_path / "plan")
    assert result.returncode == 1
    assert "infeasible" in result.stdout and "water" in result.stdout


def test_refuses_to_overwrite_foreign_files(scenario, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    result = run("solve", scenario, "--out", out)
    assert result.returncode == 2 and "notes.txt" in result.stderr
    assert (out / "notes.txt").read_text() == "keep me" and not (out / "summary.json").exists()


def test_generate_then_solve(tmp_path):
    out = tmp_path / "gen"
    result = run("generate", "canonical", "--households", "300", "--years", "2016:2020", "--seed", "3", out)
    assert result.returncode == 0, result.stderr
    assert (out / "households.csv").exists() and (out / "scenario.yaml").exists()
    again = run("generate", "canonical", "--households", "300", "--seed", "3", out)
    assert again.returncode == 2 and "Traceback" not in again.stderr
    plan_dir = tmp_path / "plan"
    solved = run("solve", out / "scenario.yaml", "--out", plan_dir, "--quiet")
    assert solved.returncode == 0, solved.stderr
    assert check_scenario_plan(out / "scenario.yaml", plan_dir) == []


def test_generate_bad_years_exit_2(tmp_path):
    result = run("generate", "canonical", "--years", "2016-2020", tmp_path / "g")
    assert result.returncode == 2 and "START:DEADLINE" in result.stderr


def test_version_and_a_help_that_names_every_command():
    import allocator

    version = run("--version")
    assert version.returncode == 0 and version.stdout.strip() == f"allocator {allocator.__version__}"
    shown = run("--help").stdout
    for command in ("validate", "solve", "explain", "report", "compare", "generate", "identify", "candidates",
                    "assign", "simulate", "monitor", "replan", "sweep", "serve", "keys", "regions"):
        assert f" {command} " in shown, command


def test_progress_and_summaries_read_as_words(capsys):
    """Years without thousands separators ("from year 2018"), counts with them, and one county
    in the singular."""
    from allocator.cli.common import ProgressPrinter
    from allocator.cli.manage import _print_report

    ProgressPrinter(False)("fold the record into the remaining problem", from_year=2018, households=12345)
    shown = capsys.readouterr().err
    assert "from year 2018" in shown and "households 12,345" in shown
    _print_report({"title": "re-plan", "sentences": [], "headline": [
        {"label": "counties on schedule, new plan", "value": 1, "unit": "counties"},
        {"label": "households whose decision changed", "value": 2, "unit": "households"}]}, Path("new"))
    printed = capsys.readouterr().out
    assert "1 county" in printed and "1 counties" not in printed and "2 households" in printed


def test_a_phase_that_counts_its_steps_is_a_bar_on_a_terminal_and_lines_in_a_log():
    import io

    from rich.console import Console

    from allocator.cli.common import ProgressPrinter

    screen = Console(file=io.StringIO(), force_terminal=True, width=120)
    show = ProgressPrinter(False, console=screen)
    show("prices", iteration=3)
    for done in (1, 2, 3):
        show("counties", group=done, done=done, of=3)
    assert show.bars is None  # closed once full
    drawn = screen.file.getvalue()
    assert "3/3" in drawn and "left" in drawn and "prices" in drawn

    log = Console(file=io.StringIO(), force_terminal=False, width=120)
    show = ProgressPrinter(False, console=log)
    for done in (1, 2):
        show("counties", group=done, done=done, of=2)
    assert log.file.getvalue().count("counties") == 1 and "done 2, of 2" in log.file.getvalue()  # its end
    assert show.bars is None
