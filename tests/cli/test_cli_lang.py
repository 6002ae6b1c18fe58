"""The command line in Chinese: solve's summary, compare, monitor and replan summaries and explain's
sentences through the catalogue (--lang zh or ALLOCATOR_LANG=zh); English unchanged; an unknown
language exits 2 with a clear message, before any work."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from allocator import cli
from tests.support.tiny import starved, write_folder

POLICY = {"county_exit_threshold": {"default": 0.02, "western": 0.03}}
WIDE = {"COLUMNS": "250"}  # a terminal wide enough that no table cell wraps


def run(*args, env=None):
    return CliRunner().invoke(cli.app, [str(a) for a in args], env={**WIDE, **(env or {})})


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cli_lang")


@pytest.fixture(scope="module")
def scenario(folder) -> Path:
    return write_folder(starved(), folder / "data", policy=POLICY)


@pytest.fixture(scope="module")
def solved(folder, scenario):
    """The starved tiny plan solved with --lang zh, and what it printed."""
    result = run("solve", scenario, "--out", folder / "plan", "--quiet", "--lang", "zh")
    assert result.exit_code == 0, result.output
    return folder / "plan", result.stdout


def test_solve_prints_its_summary_in_chinese(solved):
    plan_dir, text = solved
    assert f"规划 tiny → {plan_dir}" in text
    for line in ("│ 状态                  │ 最优 ", "│ 按期摘帽的县          │ 2个中1个", "各年末未脱贫比例",
                 "2016 76.7%、2017 75.6%、2018 74.6%", "总费用（元）          │ 9,000"):
        assert line in text, line
    assert "status" not in text and "expected exits" not in text


def test_solve_in_english_is_as_before(folder, scenario):
    result = run("solve", scenario, "--out", folder / "en", "--quiet")
    assert result.exit_code == 0, result.output
    assert re.search(r"│ status +│ optimal +│", result.stdout)
    assert re.search(r"│ counties on schedule +│ 1 of 2 +│", result.stdout)
    assert "2016 76.7%, 2017 75.6%, 2018 74.6%" in result.stdout and "规划" not in result.stdout


def test_explain_prints_its_sentences_in_chinese(solved):
    plan_dir, _ = solved
    result = run("explain", plan_dir, "--quiet", "--no-earliest", env={"ALLOCATOR_LANG": "zh"})
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert "- County 1 (C1)距退出标准差0.4户（预计贫困发生率3.42%，退出标准3%）" in text
    assert "可用于County 1 (C1)的资金已全部支出：central 2016, central 2018" in text
    assert "- 所需条件（已重新求解验证）：共追加2,500元可使所有县按期摘帽：2016年central资金追加2,500元" in text
    assert "2016年central资金每增加1万元，价值" in text
    assert "households short" not in text and "fully spent" not in text


def test_explain_names_each_county_beside_its_id(solved, folder):
    plan_dir, _ = solved
    result = run("explain", plan_dir, "--quiet", "--no-earliest", "--no-money")
    assert result.exit_code == 0, result.output
    assert "- County 1 (C1) is 0.4 households short (expected incidence 3.42% against 3%)" in result.stdout
    assert "funds that may pay in County 1 (C1) are fully spent" in result.stdout
    assert "county1 money in 2017 (for County 1 (C1)) is worth" in result.stdout  # a marginal value


def test_compare_in_chinese_and_against_a_plan_with_no_solution(solved, folder):
    plan_dir, _ = solved
    tables = starved()
    tables["funds"]["amount"] = [1000.0, 1000.0, 1000.0, 0.0, 0.0]
    none = write_folder(tables, folder / "none_data", policy={**POLICY, "deadline": "hard"})
    assert run("solve", none, "--out", folder / "none", "--quiet").exit_code == 1
    zh = run("compare", plan_dir, folder / "none", "--lang", "zh")
    assert zh.exit_code == 0, zh.output
    assert "│ 结果 " in zh.stdout and "预计脱贫户数" in zh.stdout
    assert "B无解：其结果为缺失而非零，其资金、支出、县和预算不作比较。" in zh.stdout
    assert "按类别的支出" not in zh.stdout, "no spending compared with a plan that has none"
    en = run("compare", folder / "none", plan_dir)
    assert en.exit_code == 0, en.output
    assert "A has no solution: its outcomes are missing, not zero" in en.stdout
    assert "expected_exits" in en.stdout and "spend by category" not in en.stdout


def test_monitor_and_replan_print_their_summaries_in_chinese(solved, folder):
    plan_dir, _ = solved
    record = folder / "record"
    assert run("simulate", plan_dir, "--year", 2017, "--seed", 3, "--out", record, "--quiet").exit_code == 0
    monitored = run("monitor", plan_dir, record, "--out", folder / "monitor", "--quiet", "--lang", "zh")
    assert monitored.exit_code == 0, monitored.output
    assert "规划与实际对比（2017年年中）" in monitored.stdout and "落实率" in monitored.stdout
    assert "2017年前应实施的帮扶措施" in monitored.stdout and "防止返贫监测户" in monitored.stdout
    assert "Plan against actual" not in monitored.stdout
    replanned = run("replan", plan_dir, record, "--out", folder / "replan", "--quiet", "--lang", "zh")
    assert replanned.exit_code in (0, 1), replanned.output
    assert "自2017年起重新规划" in replanned.stdout and "已拨付资金（已支出）" in replanned.stdout
    assert "Re-plan from" not in replanned.stdout


@pytest.mark.parametrize("command", ["solve", "explain", "compare", "monitor", "replan", "export", "report"])
def test_an_unknown_language_exits_2_before_any_work(command, solved, scenario, folder, tmp_path):
    plan_dir, _ = solved
    args = {"solve": [scenario, "--out", tmp_path / "plan"], "explain": [plan_dir],
            "compare": [plan_dir, plan_dir], "monitor": [plan_dir, folder, "--out", tmp_path / "m"],
            "replan": [plan_dir, folder, "--out", tmp_path / "r"], "export": [plan_dir, "--xlsx", tmp_path / "x.xlsx"],
            "report": [plan_dir, "--out", tmp_path / "r.html"]}[command]
    result = run(command, *args, "--lang", "xx")
    assert result.exit_code == 2, result.output
    assert "--lang: unknown language 'xx'; expected one of en, zh (--lang or ALLOCATOR_LANG)" in result.stderr
    assert not list(tmp_path.iterdir()), "nothing written"
    assert run(command, *args, env={"ALLOCATOR_LANG": "fr"}).exit_code == 2
