"""allocator export --lang: the workbook's sheet names, column titles, status and category words and
explain's sentences in Chinese from the catalogue; English unchanged; an unknown language exits 2."""

from __future__ import annotations

from pathlib import Path

import pytest
from openpyxl import load_workbook
from typer.testing import CliRunner

from allocator import cli
from allocator.report.i18n import translations
from allocator.report.workbook import SHEETS, TITLES, write_workbook
from tests.support.tiny import starved_plan

POLICY = {"county_exit_threshold": {"default": 0.02, "western": 0.03}}
SHEET_NAMES = ["概要", "减贫进程", "县", "接近退出标准的县", "村", "农户", "项目", "资金安排", "预算使用", "制约因素"]


def run(*args, env=None):
    return CliRunner().invoke(cli.app, [str(a) for a in args], env=env)


@pytest.fixture(scope="module")
def planned(tmp_path_factory) -> Path:
    """The starved tiny plan (C1 off schedule) with what explain finds, without re-solves."""
    from allocator.explain.difficulties import explain_plan, write_difficulties

    plan_dir = starved_plan(tmp_path_factory.mktemp("workbook_lang"))
    write_difficulties(plan_dir, explain_plan(plan_dir, money=False, earliest=False))
    return plan_dir


def rows(book, name: str) -> list[tuple]:
    return list(book[name].iter_rows(values_only=True))


def test_the_chinese_workbook_has_chinese_sheets_titles_and_words(planned, tmp_path):
    book = load_workbook(write_workbook(planned, tmp_path / "zh.xlsx", lang="zh"))
    assert book.sheetnames == SHEET_NAMES
    assert rows(book, "县")[0][:4] == ("县", "县名", "建档立卡贫困户", "预计脱贫户数")
    assert "摘帽年份" in rows(book, "县")[0] and "贫困村" in rows(book, "村")[0]
    summary = dict(rows(book, "概要")[1:])
    assert summary["状态"] == "最优" and summary["预计脱贫户数"] is not None
    households = rows(book, "农户")
    category = households[0].index("类别")
    assert {row[category] for row in households[1:] if row[category]} <= {
        "产业扶贫", "住房安全", "能力提升（教育培训）", "生态扶贫", "社会保障兜底"}
    difficulties = rows(book, "制约因素")
    assert ("未按期摘帽的县", "C1", "County 1",
            "County 1 (C1)计划于2018年底摘帽，届时仍比退出标准多0.4户贫困户；"
            "本规划在期限前无法使其达到退出标准") in difficulties
    assert any(row[0] == "原因" and row[3].startswith("可用于County 1 (C1)的资金已全部支出") for row in difficulties)


def test_the_english_workbook_is_unchanged_by_the_catalogue(planned, tmp_path):
    book = load_workbook(write_workbook(planned, tmp_path / "en.xlsx"))
    assert book.sheetnames == [TITLES[f"sheet.{key}"] for key in SHEETS]
    summary = dict(rows(book, TITLES["sheet.summary"])[1:])
    assert summary[TITLES["summary.status"]] == "optimal"
    sentences = [row[3] for row in rows(book, TITLES["sheet.difficulties"])[1:]]
    assert any(s.startswith("County 1 (C1) is to take off its hat at the end of 2018") for s in sentences)


def test_export_takes_the_language_from_the_flag_or_the_environment(planned, tmp_path):
    flag = run("export", planned, "--xlsx", tmp_path / "flag.xlsx", "--lang", "zh")
    assert flag.exit_code == 0, flag.output
    assert load_workbook(tmp_path / "flag.xlsx", read_only=True).sheetnames == SHEET_NAMES
    env = run("export", planned, "--xlsx", tmp_path / "env.xlsx", env={"ALLOCATOR_LANG": "zh"})
    assert env.exit_code == 0, env.output
    assert load_workbook(tmp_path / "env.xlsx", read_only=True).sheetnames == SHEET_NAMES


def test_an_unknown_language_is_refused_before_writing(planned, tmp_path):
    result = run("export", planned, "--xlsx", tmp_path / "xx.xlsx", "--lang", "xx")
    assert result.exit_code == 2
    assert "unknown language 'xx'" in result.stderr and "en, zh" in result.stderr
    assert not (tmp_path / "xx.xlsx").exists()


def test_the_near_misses_sheet_lists_the_counties_within_k_households(planned, tmp_path):
    """C1 is 0.42 households short of its threshold: listed within 1 household, not within 0."""
    book = load_workbook(write_workbook(planned, tmp_path / "near.xlsx", lang="zh", near_households=1))
    near = rows(book, "接近退出标准的县")
    assert near[0] == ("县", "县名", "位置", "距标准户数", "预计贫困发生率", "退出标准")
    (county,) = [row for row in near[1:] if row[0] == "C1"]
    assert county[1:3] == ("County 1", "未达到退出标准") and county[3] == pytest.approx(0.42, abs=0.01)
    none = run("export", planned, "--xlsx", tmp_path / "none.xlsx", "--near-households", 0)
    assert none.exit_code == 0, none.output
    english = load_workbook(tmp_path / "none.xlsx")
    assert [row[0] for row in rows(english, TITLES["sheet.near_misses"])] == ["County"]


def test_every_title_has_its_chinese_words():
    """A title added to TITLES without its catalogue entry would show in English in a Chinese workbook."""
    catalogue = translations("zh")
    assert [text for text in TITLES.values() if catalogue.gettext(text) == text] == []
