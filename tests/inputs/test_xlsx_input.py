"""A data folder given as Excel: one workbook whose sheets are the tables (tables.xlsx or any
name), or NAME.xlsx per table. It solves to the plan the same tables give as CSV; every issue
names the file and sheet, the sheet's own row number (header row 1, first data row 2) and the
column; a table given twice is refused naming both places."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

import allocator
from allocator.errors import InputError
from allocator.inputs.provenance import input_hashes
from allocator.inputs.tables import read_tables, sheet_names, table_sources
from tests.support.tiny import tiny_tables, write_folder, write_xlsx

PLAN_TABLES = ("households", "projects", "funding", "counties", "path")


def csv_to_xlsx(folder: Path, layout: str, name: str = "tables.xlsx") -> None:
    """Replace the folder's CSV tables by one workbook (``layout`` "one") or a workbook per table ("each")."""
    tables = tiny_tables()
    if layout == "one":
        write_xlsx(tables, folder / name)
    else:
        for table, frame in tables.items():
            write_xlsx({"Sheet1": frame}, folder / f"{table}.xlsx")
    for table in tables:
        (folder / f"{table}.csv").unlink()


def issues_of(scenario_path: Path) -> list:
    scenario = allocator.load_scenario(scenario_path)
    with pytest.raises(InputError) as info:
        allocator.build_problem(allocator.load_tables(scenario), name="t", start_year=scenario.start_year,
                                deadline_year=scenario.deadline_year, policy=scenario.policy)
    return info.value.issues


@pytest.fixture(scope="module")
def csv_plan(tmp_path_factory):
    path = write_folder(tiny_tables(), tmp_path_factory.mktemp("csv") / "data")
    return allocator.solve(allocator.load_scenario(path))


@pytest.mark.parametrize(("layout", "name"), [("one", "tables.xlsx"), ("one", "Registry 2016.xlsx"),
                                              ("each", None)])
def test_a_workbook_folder_solves_to_the_csv_plan(csv_plan, tmp_path, layout, name):
    path = write_folder(tiny_tables(), tmp_path / "data")
    csv_to_xlsx(path.parent, layout, name or "")
    (path.parent / "~$tables.xlsx").write_bytes(b"lock")  # Excel's lock file while a workbook is open
    scenario = allocator.load_scenario(path)
    plan = allocator.solve(scenario)
    assert plan.status == csv_plan.status == "optimal"
    for table in PLAN_TABLES:
        pd.testing.assert_frame_equal(getattr(plan, table), getattr(csv_plan, table), check_dtype=False)
    assert plan.summary["expected_exits"] == pytest.approx(csv_plan.summary["expected_exits"])
    hashed = set(input_hashes(scenario)) - {"scenario.yaml"}
    assert hashed == ({name} if layout == "one" else {f"{t}.xlsx" for t in tiny_tables()})
    if layout == "each":
        assert allocator.load_tables(scenario)["funds"].attrs["file"] == "funds.xlsx[Sheet1]"


def test_a_bad_cell_names_sheet_row_and_column(tmp_path):
    tables = tiny_tables()
    tables["households"]["size"] = tables["households"]["size"].astype(object)
    tables["households"].loc[2, "size"] = "two"  # the third data row: row 4 of the sheet
    tables["packages"].loc[4, "exit_probability"] = 1.3  # row 6
    path = write_folder(tiny_tables(), tmp_path / "data")
    write_xlsx(tables, path.parent / "tables.xlsx")
    for table in tables:
        (path.parent / f"{table}.csv").unlink()
    issues = {(i.file, i.row, i.column): i for i in issues_of(path)}
    size = issues[("tables.xlsx[households]", 4, "size")]
    assert size.message == "not a number" and size.found == "'two'"
    assert str(size).startswith("tables.xlsx[households] row 4, column 'size': not a number")
    assert issues[("tables.xlsx[packages]", 6, "exit_probability")].message == "out of range"


def test_cross_table_issues_name_the_sheet_row_too(tmp_path):
    tables = tiny_tables()
    tables["households"].loc[1, "village_id"] = "V9"  # row 3 of the sheet
    path = write_folder(tiny_tables(), tmp_path / "data")
    write_xlsx({"households": tables["households"]}, path.parent / "households.xlsx")
    (path.parent / "households.csv").unlink()
    issue = next(i for i in issues_of(path) if i.column == "village_id")
    assert (issue.file, issue.row, issue.id, issue.message) == ("households.xlsx[households]", 3, "H2",
                                                                "village does not exist")


def test_cells_typed_as_numbers_dates_and_blanks(tmp_path):
    """Ids typed as numbers stay the text shown; booleans are Excel's; empty rows at the end are
    not rows, an empty row between is one (named at its row)."""
    from openpyxl import load_workbook

    tables = tiny_tables()
    path = write_folder(tables, tmp_path / "data")
    tables["households"]["household_id"] = [101, 102.0, 103, 104, 105, 106, 107, 108]
    tables["packages"]["household_id"] = [101, 101, 102, 102, 103, 104, 105, 106, 107, 108]
    write_xlsx({"households": tables["households"], "packages": tables["packages"]}, path.parent / "tables.xlsx")
    for table in ("households", "packages"):
        (path.parent / f"{table}.csv").unlink()
    read = read_tables(path.parent)
    assert read["households"]["household_id"].tolist()[:3] == ["101", "102", "103"]
    assert read["households"]["registered_poor"].tolist() == [True] * 4 + [False] + [True] * 3

    book = load_workbook(path.parent / "tables.xlsx")
    book["households"].append([None] * 5)  # trailing empty rows (formatting) are no rows
    book["households"].append([None] * 5)
    book.save(path.parent / "tables.xlsx")
    assert len(read_tables(path.parent)["households"]) == 8
    book["households"].insert_rows(3)  # an empty row 3
    book.save(path.parent / "tables.xlsx")
    issues = issues_of(path)
    assert {(i.file, i.row, i.column) for i in issues} >= {("tables.xlsx[households]", 3, "household_id"),
                                                           ("tables.xlsx[households]", 3, "size")}


def test_a_table_given_twice_names_both(tmp_path):
    path = write_folder(tiny_tables(), tmp_path / "data")
    write_xlsx({"funds": tiny_tables()["funds"], "notes": pd.DataFrame({"a": [1]})}, path.parent / "budget.xlsx")
    issue = next(i for i in issues_of(path) if "more than once" in i.message)
    assert "funds.csv" in issue.message and "budget.xlsx[funds]" in issue.message
    assert [s.label for s in table_sources(path.parent, "funds")] == ["funds.csv", "budget.xlsx[funds]"]
    assert table_sources(path.parent, "notes")[0].label == "budget.xlsx[notes]"
    assert sheet_names(path.parent / "budget.xlsx") == ("funds", "notes")


def test_the_validate_command_names_the_sheet(tmp_path):
    from typer.testing import CliRunner

    from allocator import cli

    tables = tiny_tables()
    tables["funds"].loc[0, "amount"] = -5  # row 2 of the sheet
    path = write_folder(tiny_tables(), tmp_path / "data")
    write_xlsx(tables, path.parent / "tables.xlsx")
    for table in tables:
        (path.parent / f"{table}.csv").unlink()
    result = CliRunner().invoke(cli.app, ["validate", str(path)])
    assert result.exit_code == 2
    assert "tables.xlsx[funds] row 2, column 'amount': out of range" in result.stderr
