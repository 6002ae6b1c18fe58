"""allocator export --xlsx: the plan as one workbook, its sheets, titles, names beside ids,
number formats and frozen headers, its values read back equal to the plan folder's CSV tables;
the command's exit codes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from openpyxl import load_workbook
from typer.testing import CliRunner

import allocator
from allocator import cli
from allocator.report.workbook import FORMATS, SHEETS, TITLES, write_workbook
from tests.support.tiny import tiny_tables, write_folder

KEYS = {title: key for key, title in TITLES.items() if not key.startswith(("sheet.", "summary.", "word."))}


def run(*args):
    return CliRunner().invoke(cli.app, [str(a) for a in args])


@pytest.fixture(scope="module")
def planned(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("workbook")
    path = write_folder(tiny_tables(), folder / "data")
    return allocator.solve(allocator.load_scenario(path)).write(folder / "plan")


@pytest.fixture(scope="module")
def book(planned, tmp_path_factory):
    target = write_workbook(planned, tmp_path_factory.mktemp("book") / "plan.xlsx")
    return load_workbook(target)


def sheet_frame(book, key: str) -> pd.DataFrame:
    """A sheet read back as a frame whose columns are the plan's column names."""
    rows = list(book[TITLES[f"sheet.{key}"]].iter_rows(values_only=True))
    return pd.DataFrame(rows[1:], columns=[KEYS.get(title, title) for title in rows[0]])


def test_every_sheet_has_a_bold_frozen_header_of_titles(book):
    assert book.sheetnames == [TITLES[f"sheet.{key}"] for key in SHEETS]
    for sheet in book.worksheets:
        assert sheet.freeze_panes == "A2"
        header = next(sheet.iter_rows(max_row=1))
        assert all(cell.font.bold for cell in header) and all(cell.value for cell in header)
        assert not any("_" in str(cell.value) for cell in header), "titles, not column names"
    assert [c.value for c in book[TITLES["sheet.households"]][1]][:5] == [
        "Household", "Village", "Village name", "County", "County name"]


def test_names_stand_beside_ids(book):
    counties = sheet_frame(book, "counties")
    assert dict(zip(counties["county_id"], counties["county_name"], strict=True)) == {"C1": "County 1",
                                                                                      "C2": "County 2"}
    households = sheet_frame(book, "households")
    village = {"V1": "Village 1", "V2": "Village 2", "V3": "Village 3"}
    assert (households["village_name"] == households["village_id"].map(village)).all()
    assert (households["county_name"] == households["county_id"].str.replace("C", "County ")).all()
    villages = sheet_frame(book, "villages")
    assert villages[["village_id", "village_name", "county_name"]].values.tolist() == [
        ["V1", "Village 1", "County 1"], ["V2", "Village 2", "County 1"], ["V3", "Village 3", "County 2"]]
    assert set(sheet_frame(book, "funding")["county_name"]) <= {"County 1", "County 2"}


def test_number_formats_by_kind(book):
    households = book[TITLES["sheet.households"]]
    titles = [c.value for c in households[1]]
    row = households[2]
    assert row[titles.index(TITLES["cost"])].number_format == "#,##0"
    assert row[titles.index(TITLES["exit_probability"])].number_format == "0.000"
    counties = book[TITLES["sheet.counties"]]
    titles = [c.value for c in counties[1]]
    assert counties[2][titles.index(TITLES["expected_incidence"])].number_format == "0.0%"
    assert counties[2][titles.index(TITLES["spend"])].number_format == "#,##0"
    summary = {row[0].value: row[1] for row in book[TITLES["sheet.summary"]].iter_rows(min_row=2)}
    assert summary[TITLES["summary.total_cost"]].number_format == "#,##0"
    assert summary[TITLES["summary.status"]].value == "optimal"
    assert {"0.0%", "#,##0"} <= set(FORMATS.values())


@pytest.mark.parametrize("name", ["households", "projects", "funding", "counties", "path"])
def test_values_equal_the_plan_tables(book, planned, name):
    csv = pd.read_csv(planned / f"{name}.csv", dtype=str, keep_default_na=False)
    sheet = sheet_frame(book, name)
    for column in csv.columns:
        if column not in sheet.columns:  # only an all-empty column is left out (responsible cadres)
            assert (csv[column] == "").all(), column
            continue
        got, want = sheet[column], csv[column]
        numeric = pd.to_numeric(want.replace("", np.nan), errors="coerce")
        if want.isin(["True", "False"]).all():
            assert got.tolist() == (want == "True").tolist(), column
        elif numeric.notna().sum() == (want != "").sum() and (want != "").any():
            assert np.allclose(pd.to_numeric(got).astype(float), numeric.astype(float), equal_nan=True), column
        else:
            assert got.fillna("").astype(str).tolist() == want.tolist(), column


def test_budget_use_and_summary_from_summary_json(book, planned):
    summary = json.loads((planned / "summary.json").read_text())
    use = sheet_frame(book, "budget_use")
    assert len(use) == len(summary["budget_use"])
    assert np.allclose(use["spent"], [row["spent"] for row in summary["budget_use"]])
    assert np.allclose(use["spent_share"], [row["spent"] / row["available"] for row in summary["budget_use"]])
    lines = {row[0]: row[1] for row in book[TITLES["sheet.summary"]].iter_rows(min_row=2, values_only=True)}
    assert lines[TITLES["summary.expected_exits"]] == pytest.approx(summary["expected_exits"])
    assert lines[TITLES["summary.counties_on_schedule"]] == summary["counties_on_schedule"]


def test_difficulties_say_to_run_explain_then_what_explain_found(planned, tmp_path):
    from allocator.explain.difficulties import explain_plan, write_difficulties

    plan_dir = Path(shutil.copytree(planned, tmp_path / "plan"))  # the module's plan stays without them
    before = sheet_frame(load_workbook(write_workbook(plan_dir, tmp_path / "a.xlsx")), "difficulties")
    assert len(before) == 1 and "allocator explain" in before["sentence"][0]
    found = explain_plan(plan_dir, money=False, earliest=False)
    write_difficulties(plan_dir, found)
    after = sheet_frame(load_workbook(write_workbook(plan_dir, tmp_path / "b.xlsx")), "difficulties")
    sentences = [c["sentence"] for c in found["counties_off_schedule"]]
    assert sentences and set(sentences) <= set(after["sentence"])
    assert set(after.loc[after["county_id"] == "C1", "county_name"]) == {"County 1"}


def test_export_command(planned, tmp_path):
    target = tmp_path / "plan.xlsx"
    result = run("export", planned, "--xlsx", target)
    assert result.exit_code == 0, result.output
    assert load_workbook(target, read_only=True).sheetnames[0] == TITLES["sheet.summary"]
    again = run("export", planned, "--xlsx", target)
    assert again.exit_code == 2 and "file exists" in again.stderr and "--force" in again.stderr
    assert run("export", planned, "--xlsx", target, "--force").exit_code == 0
    wrong = run("export", planned, "--xlsx", tmp_path / "plan.csv")
    assert wrong.exit_code == 2 and "ending in .xlsx" in wrong.stderr
    not_plan = run("export", tmp_path, "--xlsx", tmp_path / "other.xlsx")
    assert not_plan.exit_code == 2 and f"{tmp_path}: not a plan folder" in not_plan.stderr
    assert not (tmp_path / "other.xlsx").exists()
    assert not list(tmp_path.glob(".*.part"))
