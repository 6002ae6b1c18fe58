"""A data folder given as Excel: one workbook whose sheets are the tables (tables.xlsx or any
name), or NAME.xlsx per table. It solves to the plan the same tables give as CSV; every issue
names the file and sheet, the sheet's own row number (header row 1, first data row 2) and the
column; a table given twice is refused naming both places."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import pandas as pd
import pytest

import allocator
from allocator.errors import InputError
from allocator.inputs.provenance import input_hashes
from allocator.inputs.tables import _formula_cells, read_tables, sheet_names, table_sources
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


def workbook_folder(tmp_path: Path, tables: dict[str, pd.DataFrame] | None = None) -> Path:
    """The tiny scenario with its tables as the sheets of data/tables.xlsx; returns the scenario path."""
    path = write_folder(tiny_tables(), tmp_path / "data")
    write_xlsx(tables or tiny_tables(), path.parent / "tables.xlsx")
    for table in tiny_tables():
        (path.parent / f"{table}.csv").unlink()
    return path


def set_cell_xml(book: Path, sheet: str, ref: str, xml: str) -> None:
    """Replace the cell ``ref`` of a sheet by ``xml``, as a spreadsheet program saves what openpyxl
    does not write (a formula with its computed value)."""
    from openpyxl import load_workbook

    member = f"xl/worksheets/sheet{load_workbook(book).sheetnames.index(sheet) + 1}.xml"
    with zipfile.ZipFile(book) as archive:
        parts = {name: archive.read(name) for name in archive.namelist()}
    text, n = re.subn(rf'<c r="{ref}"[^>]*?(?:/>|>.*?</c>)', xml, parts[member].decode())
    assert n == 1
    parts[member] = text.encode()
    with zipfile.ZipFile(book, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in parts.items():
            archive.writestr(name, data)


def issue_at(issues: list, file: str, row: int, column: str):
    return next(i for i in issues if (i.file, i.row, i.column) == (file, row, column))


@pytest.mark.parametrize("error", ["#REF!", "#N/A", "#SPILL!", "#GETTING_DATA"])
def test_a_formula_that_evaluates_to_an_error_is_named_in_every_column_kind(tmp_path, error):
    from openpyxl import load_workbook

    path = workbook_folder(tmp_path)
    book = path.parent / "tables.xlsx"
    set_cell_xml(book, "households", "A3", f'<c r="A3" t="e"><f>VLOOKUP(1,Z:Z,2,0)</f><v>{error}</v></c>')  # an id
    # a number; a cell without its reference (as some programs write) is placed by counting
    set_cell_xml(book, "funds", "C2", '<c t="e"><f>1/0</f><v>#DIV/0!</v></c>')
    set_cell_xml(book, "projects", "F2", '<c r="F2" t="e"><v>#N/A</v></c>')  # a boolean, typed as #N/A
    assert load_workbook(book, data_only=True)["households"]["A3"].value == error  # the cached error round-trips
    issues = issues_of(path)
    found = issue_at(issues, "tables.xlsx[households]", 3, "household_id")
    assert (found.message, found.found) == ("a formula that evaluates to an error", repr(error))
    assert issue_at(issues, "tables.xlsx[funds]", 2, "amount").message == "a formula that evaluates to an error"
    assert issue_at(issues, "tables.xlsx[projects]", 2, "mandatory").message == "an Excel error value"
    assert not [i for i in issues if i.id and error in i.id]  # the error is no id of a household


def test_a_formula_with_no_computed_value_is_named(tmp_path):
    """openpyxl, like other programs, writes formulas without their values: read as empty cells
    they would pass silently in an optional column."""
    tables = tiny_tables()
    tables["households"]["size"] = tables["households"]["size"].astype(object)
    tables["households"].loc[1, "size"] = "=1+2"  # row 3
    tables["villages"].loc[0, "name"] = '=CONCAT("Village ", 1)'  # an optional text column, row 2
    path = workbook_folder(tmp_path, tables)
    set_cell_xml(path.parent / "tables.xlsx", "villages", "C3", '<c r="C3" t="str"><f>""</f><v></v></c>')
    issues = issues_of(path)
    size = issue_at(issues, "tables.xlsx[households]", 3, "size")
    assert (size.message, size.found) == ("a formula with no computed value", "'=1+2'")
    assert str(size).startswith("tables.xlsx[households] row 3, column 'size': a formula with no computed value; "
                                "expected a value: open and save the workbook in a spreadsheet program")
    assert issue_at(issues, "tables.xlsx[villages]", 2, "name").message == "a formula with no computed value"
    assert not [i for i in issues if (i.file, i.row) == ("tables.xlsx[villages]", 3)]  # a computed empty text


def test_a_merged_header_is_named_with_its_range(tmp_path):
    from openpyxl import load_workbook

    path = workbook_folder(tmp_path)
    book = load_workbook(path.parent / "tables.xlsx")
    book["funds"].merge_cells("B1:C1")  # year and amount under one title
    book["households"].merge_cells("B2:B4")  # one village over three households
    book.save(path.parent / "tables.xlsx")
    issues = issues_of(path)
    header = issue_at(issues, "tables.xlsx[funds]", 1, "B")
    assert header.message == "merged header cells B1:C1"
    assert str(header).startswith("tables.xlsx[funds] row 1, column 'B': merged header cells B1:C1; expected")
    assert not [i for i in issues if i.file == "tables.xlsx[funds]" and i is not header]
    assert [issue_at(issues, "tables.xlsx[households]", row, "village_id").message for row in (3, 4)] == \
        ["a cell of merged cells B2:B4"] * 2


def test_an_empty_header_cell_is_named(tmp_path):
    tables = tiny_tables()
    tables["funds"].insert(2, "", 0)  # a column with no title, between year and amount
    issues = issues_of(workbook_folder(tmp_path, tables))
    issue = issue_at(issues, "tables.xlsx[funds]", 1, "C")
    assert issue.message == "empty header cell"


def test_a_date_where_a_number_belongs(tmp_path):
    import datetime as dt

    tables = tiny_tables()
    tables["funds"]["amount"] = tables["funds"]["amount"].astype(object)
    tables["funds"].loc[1, "amount"] = dt.datetime(2017, 3, 1)  # row 3
    tables["villages"]["name"] = tables["villages"]["name"].astype(object)
    tables["villages"].loc[0, "name"] = dt.datetime(2017, 3, 1)  # a text column: a text
    path = workbook_folder(tmp_path, tables)
    issues = issues_of(path)
    amount = issue_at(issues, "tables.xlsx[funds]", 3, "amount")
    assert (amount.message, amount.found) == ("a date where a number belongs", "'2017-03-01'")
    assert [str(i) for i in issues] == [str(amount)]
    tables["funds"] = tiny_tables()["funds"]
    write_xlsx(tables, path.parent / "tables.xlsx")
    assert read_tables(path.parent)["villages"]["name"].iloc[0] == "2017-03-01T00:00:00"


def test_a_missing_sheet_names_the_workbooks_sheets(tmp_path):
    tables = tiny_tables()
    funds = tables.pop("funds")
    path = workbook_folder(tmp_path, tables)
    issue = next(i for i in issues_of(path) if "missing table" in i.message)
    assert issue.message.endswith("; tables.xlsx has sheets regions, villages, households, packages, projects, "
                                  "personnel; none is named 'funds'")
    write_xlsx({"notes": pd.DataFrame({"a": [1]}), "Funds": funds}, path.parent / "funds.xlsx")
    issue = next(i for i in issues_of(path) if i.file == "funds.xlsx")
    assert issue.message == "funds.xlsx has sheets notes, Funds; none is named 'funds' " \
                            "('Funds' is not: sheet names are matched exactly)"
    write_xlsx({"Funds": funds}, path.parent / "funds.xlsx")  # one sheet: the table, whatever its name
    assert len(read_tables(path.parent)["funds"]) == len(funds)


def test_the_validate_command_names_a_bad_formula(tmp_path):
    from typer.testing import CliRunner

    from allocator import cli

    path = workbook_folder(tmp_path)
    set_cell_xml(path.parent / "tables.xlsx", "funds", "C2", '<c r="C2" t="e"><f>1/0</f><v>#DIV/0!</v></c>')
    result = CliRunner().invoke(cli.app, ["validate", str(path)])
    assert result.exit_code == 2
    assert ("tables.xlsx[funds] row 2, column 'amount': a formula that evaluates to an error; "
            "expected a number in [0, 1e+15] (found '#DIV/0!')") in result.stderr
    assert "Traceback" not in result.output


@pytest.mark.filterwarnings("ignore:Data Validation extension is not supported")
def test_a_sheet_with_a_namespace_prefix_and_a_list_validation(tmp_path):
    """Some programs write every tag with a prefix (<x:c>) and keep data validations' formulas
    (<xm:f>) after the cells: the formula cells are found where they are, and only they."""
    path = workbook_folder(tmp_path)
    book = path.parent / "tables.xlsx"
    set_cell_xml(book, "funds", "C3", '<c r="C3" t="e"><f>1/0</f><v>#DIV/0!</v></c>')
    member = "xl/worksheets/sheet6.xml"  # funds
    with zipfile.ZipFile(book) as archive:
        parts = {name: archive.read(name) for name in archive.namelist()}
    text = re.sub(r"<(/?)(\w+)([\s>/])", r"<\1x:\2\3", parts[member].decode()).replace('xmlns="', 'xmlns:x="')
    text = text.replace("</x:worksheet>", '<x:extLst><x:ext uri="{CCE6A557-97BC-4b89-ADB6-D9C93CAAB3DF}" '
                        'xmlns:xm="http://schemas.microsoft.com/office/excel/2006/main"><xm:f>Lists!$A$1:$A$3</xm:f>'
                        "</x:ext></x:extLst></x:worksheet>")
    parts[member] = text.encode()
    with zipfile.ZipFile(book, "w") as archive:
        for name, data in parts.items():
            archive.writestr(name, data)
    assert list(_formula_cells(text.encode(), {})) == [(3, 3)]  # found by the byte search, not the parse
    issues = issues_of(path)
    assert [(i.file, i.row, i.column, i.message) for i in issues] == [
        ("tables.xlsx[funds]", 3, "amount", "a formula that evaluates to an error")]
