"""explain's sentences in either language: difficulties.json keeps each sentence in English with its
message (id and values, :mod:`allocator.messages`), which the report and the command line write in
the chosen language through the catalogue; a file written before messages reads in English."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import allocator
from allocator.explain.difficulties import explain_plan, write_difficulties
from allocator.messages import listed, render, say, sentence, words
from allocator.report.html import build_report
from allocator.report.i18n import translations
from tests.support.tiny import starved, write_folder

POLICY = {"county_exit_threshold": {"default": 0.02, "western": 0.03}}


def zh(text: str) -> str:
    return translations("zh").gettext(text)


def explained(tables, folder: Path, policy=POLICY) -> tuple[Path, dict]:
    path = write_folder(tables, folder / "data", policy=policy)
    plan_dir = allocator.solve(allocator.load_scenario(path)).write(folder / "plan")
    found = explain_plan(plan_dir, earliest=False)
    write_difficulties(plan_dir, found)
    return plan_dir, json.loads((plan_dir / "difficulties.json").read_text())


@pytest.fixture(scope="module")
def short(tmp_path_factory):
    """C1 of the starved tiny data misses the deadline; what it would take is found and verified."""
    return explained(starved(), tmp_path_factory.mktemp("short"))


@pytest.fixture(scope="module")
def impossible(tmp_path_factory):
    """Too little money and a hard deadline: no plan, and the rules that conflict."""
    tables = starved()
    tables["funds"]["amount"] = [1000.0, 1000.0, 1000.0, 0.0, 0.0]
    return explained(tables, tmp_path_factory.mktemp("none"), policy={**POLICY, "deadline": "hard"})


def stored(found) -> list[dict]:
    """Every finding of difficulties.json that has a sentence."""
    if isinstance(found, dict):
        return ([found] if "sentence" in found else []) + [f for value in found.values() for f in stored(value)]
    if isinstance(found, list):
        return [f for value in found for f in stored(value)]
    return []


def ids(message) -> list[str]:
    """The message ids of a message and of the messages inside it."""
    if isinstance(message, dict) and "join" in message:
        return [i for item in message["items"] for i in ids(item)]
    if isinstance(message, dict) and "id" in message:
        return [message["id"]] + [i for value in message["args"].values() for i in ids(value)]
    return []


@pytest.mark.parametrize("case", ["short", "impossible"])
def test_each_stored_sentence_is_its_message_in_english_and_has_a_chinese_one(case, request):
    _, found = request.getfixturevalue(case)
    findings = [f for f in stored(found) if "message" in f]
    assert len(findings) >= 2
    for finding in findings:
        assert render(finding["message"]) == finding["sentence"]
        for text in ids(finding["message"]):
            assert zh(text) != text, f"no Chinese for {text!r}"
        assert sentence(finding, zh) != finding["sentence"]


def test_the_starved_county_in_chinese(short):
    _, found = short
    (county,) = found["counties_off_schedule"]
    assert sentence(county, zh) == ("County 1 (C1)计划于2018年底摘帽，届时仍比退出标准多0.4户贫困户；"
                                    "本规划在期限前无法使其达到退出标准")
    (reason,) = county["reasons"]
    assert sentence(reason, zh) == "可用于County 1 (C1)的资金已全部支出：central 2016, central 2018"
    take = found["what_it_would_take"]
    assert take["sentence"].startswith("2,500 yuan in all would put every county on schedule: 2,500 yuan more")
    assert sentence(take, zh) == "共追加2,500元可使所有县按期摘帽：2016年central资金追加2,500元"


def test_the_conflicting_rules_in_chinese(impossible):
    _, found = impossible
    assert found["conflict"]["rules"], "the rules that conflict are named"
    text = sentence(found["conflict"], zh)
    assert text.startswith("以下规则无法同时满足（去掉任何一条，其余即可满足）：")
    assert "期限为硬约束" in text and "；" in text
    assert sentence(found, zh).startswith("没有能满足全部规则的规划（已证明）")


def test_the_chinese_report_shows_what_explain_found_in_chinese(short):
    plan_dir, _ = short
    page = build_report(plan_dir, lang="zh")
    assert "County 1 (C1)距退出标准差0.4户（预计贫困发生率3.4%，退出标准3.0%）：可用于County 1 (C1)的资金已全部支出" \
        in page
    assert "共追加2,500元可使所有县按期摘帽" in page
    assert "households short" not in page and "fully spent" not in page
    english = build_report(plan_dir)
    assert ("County 1 (C1) is 0.4 households short (expected incidence 3.4% against 3.0%): funds that may pay in "
            "County 1 (C1)") in english


def test_a_file_without_messages_reads_in_english(short, tmp_path):
    plan_dir, found = short
    (county,) = found["counties_off_schedule"]
    old = {key: value for key, value in county.items() if key != "message"}
    assert sentence(old, zh) == county["sentence"]


def test_nested_messages_and_lists_render_in_either_language():
    message = say("{money:,.0f} yuan in all would put every county on schedule: {parts}", money=2500.0,
                  parts=listed([words("{money:,.0f} yuan more {source} money in {year}", money=1500.0,
                                      source="central", year=2016), "a note"]))
    assert message["sentence"] == ("2,500 yuan in all would put every county on schedule: 1,500 yuan more central "
                                   "money in 2016; a note")
    assert render(message["message"], zh) == "共追加2,500元可使所有县按期摘帽：2016年central资金追加1,500元；a note"
    assert json.loads(json.dumps(message)) == message, "a message is plain JSON"
