"""The report in Chinese or English: --lang / ALLOCATOR_LANG, the catalogue, the CJK font."""

from __future__ import annotations

from pathlib import Path

import pytest

import allocator
from allocator.report import charts, html
from allocator.report.html import build_report
from allocator.report.i18n import translations
from tests.support.commands import run
from tests.support.tiny import starved, write_folder


@pytest.fixture(scope="module")
def plan_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("lang")
    scenario = write_folder(starved(), folder / "data")
    plan = allocator.solve(allocator.load_scenario(scenario))
    charts.write_plan_folder(plan, folder / "plan")
    return folder / "plan"


def test_the_chinese_report_has_chinese_headings_and_column_titles(plan_dir):
    page = build_report(plan_dir, lang="zh")
    assert "<html lang='zh-CN'>" in page
    for words in ("可用资金与支出", "各县贫困发生率与退出标准对比", "制约因素", "资金来源", "年份", "状态", "最优"):
        assert words in page, words
    assert "Money available and spent" not in page and "Fund source" not in page


def test_the_english_report_is_unchanged_by_the_catalogue(plan_dir):
    page = build_report(plan_dir)
    assert page == build_report(plan_dir, lang="en")
    assert "<html lang='en'>" in page and "Money available and spent" in page and "可用资金" not in page


def test_every_message_has_its_translation():
    catalogue = translations("zh")
    assert catalogue.gettext("Hat-off year") == "摘帽年份"
    assert catalogue.gettext("Registered poor households") == "建档立卡贫困户"


def test_an_unknown_language_is_refused(plan_dir, tmp_path):
    result = run("report", plan_dir, "--out", tmp_path / "r.html", "--lang", "xx")
    assert result.returncode == 2
    assert "unknown language 'xx'" in result.stdout + result.stderr
    assert not (tmp_path / "r.html").exists()
    with pytest.raises(ValueError, match="unknown language"):
        build_report(plan_dir, lang="xx")


def test_the_language_comes_from_the_environment(plan_dir, tmp_path, monkeypatch):
    out = tmp_path / "zh.html"
    monkeypatch.setenv("ALLOCATOR_LANG", "zh")
    assert run("report", plan_dir, "--out", out).returncode == 0
    assert "可用资金与支出" in out.read_text(encoding="utf-8")


def test_without_a_cjk_font_the_charts_stay_english_and_the_page_says_so(plan_dir, monkeypatch):
    drawn = []
    original = charts.counties_against_threshold

    def spy(counties, title="", names=None):
        fig = original(counties, title, names)
        drawn.append(fig.axes[0].get_title())
        return fig

    monkeypatch.setattr(html, "cjk_font", lambda: None)
    monkeypatch.setattr(html, "counties_against_threshold", spy)
    page = build_report(plan_dir, lang="zh")
    assert "本机未找到中文字体" in page and "可用资金与支出" in page
    assert drawn and drawn[0].startswith("Counties on schedule")
