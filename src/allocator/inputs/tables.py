"""The contract tables: column specs, reading (CSV, Parquet or Excel) and per-cell type checks.

Each table of the canonical problem has a :class:`TableSpec`. :func:`read_tables` reads a
data folder, checks every column against its spec and returns typed pandas DataFrames,
collecting every problem found (up to the cap) into one :class:`InputError`. Cross-table
rules live in :mod:`allocator.inputs.checks`.

A table is ``NAME.csv``, ``NAME.parquet``, ``NAME.xlsx`` (its sheet ``NAME``, else its only
sheet) or the sheet ``NAME`` of a workbook of the folder (``tables.xlsx``, or any ``.xlsx``
whose sheets are named after tables); a table found in more than one of them is an error naming
each. A sheet's issues name the file and sheet, ``tables.xlsx[funds]``, and the sheet's own
row number (the header is row 1, so the first data row is row 2); a CSV or Parquet file's
name its data row counted from 1.
"""

from __future__ import annotations

import codecs
import datetime as dt
import html
import itertools
import math
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from allocator.errors import IssueCollector

CATEGORIES = ("infrastructure", "industry", "housing", "ability", "ecology", "welfare")
LEVELS = ("province", "prefecture", "county", "township")
LIST_SEPARATOR = ";"
ANY = "*"

TRUE_STRINGS = {"true", "1", "yes", "y", "t"}
FALSE_STRINGS = {"false", "0", "no", "n", "f", ""}  # empty: false in optional columns only
MAX_INT = 2**53  # integers beyond this are not exact in a float and make no sense here
MAX_MONEY = 1e12  # yuan per package or project; beyond it a solver cannot scale the model
# CSV text encodings tried in turn when the scenario names none: UTF-8 (with or without Excel's
# byte-order mark), then GB18030, the superset of GBK that Chinese Excel's "CSV" is saved in
ENCODINGS = ("utf-8", "gb18030")
FLAT_SUFFIXES = (".csv", ".parquet")  # a file that is one table (CSV first when both are there)
WORKBOOK = ".xlsx"  # Excel workbooks: NAME.xlsx, or a workbook whose sheets are named after tables
UNREAD_SPREADSHEETS = (".xlsm", ".xls", ".ods")  # other spreadsheet formats, named in errors
SAVE_AS_CSV = "a CSV file saved as UTF-8 (Excel: 'CSV UTF-8 (comma delimited)')"
SHEET_FIRST_ROW = 2  # a sheet's header is its row 1: issues name the sheet's own row numbers
SPREADSHEET_NS = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
RELATIONSHIPS_NS = "{http://schemas.openxmlformats.org/package/2006/relationships}"
OFFICE_RELATIONSHIP_NS = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}"
# a sheet's XML is searched for formulas (<f>), error values (t="e") and merged ranges
# (<mergeCell ref=...>), with or without a namespace prefix (<x:f>), a block of rows at a time
FORMULA_TAGS = (b"<f>", b"<f ", b"<f/", b":f>", b":f ", b":f/")
ERROR_TYPES = (b't="e"', b"t='e'")
MARKER = re.compile(rb"<(?:\w+:)?f[\s/>]|\st=[\"']e[\"']")
CELL_START = re.compile(rb"<(?:\w+:)?c\s")
CELL_REACH = 1 << 16  # bytes searched back from a formula for the start of its cell
FORMULA = re.compile(rb"<(?:\w+:)?f(?:\s[^>]*)?(?:/>|>(.*?)</(?:\w+:)?f>)", re.S)
VALUE = re.compile(rb"<(?:\w+:)?v(?:\s[^>]*)?(?:/>|>(.*?)</(?:\w+:)?v>)", re.S)
REF = re.compile(rb"\sr=[\"']([A-Za-z]+[0-9]+)[\"']")
TYPE = re.compile(rb"\st=[\"'](\w+)[\"']")
MERGED = re.compile(rb"<(?:\w+:)?mergeCell\s[^>]*?ref=[\"']([A-Za-z]+[0-9]+(?::[A-Za-z]+[0-9]+)?)[\"']")
SCAN_BLOCK = 1 << 22  # bytes of a sheet's XML read at a time (cut after the block's last row)
TEXT_RESULTS = ("str", "s", "inlineStr")  # a formula whose computed value is a (maybe empty) text
ERROR_VALUE = "a formula that evaluates to an error"
NO_VALUE = "a formula with no computed value"
OPEN_AND_SAVE = ("a value: open and save the workbook in a spreadsheet program (which computes its "
                 "formulas), or enter the value")


@dataclass(frozen=True)
class Column:
    """One column of a contract table: its kind and the values it accepts."""

    name: str
    kind: str  # str | int | float | bool | list
    required: bool = True
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] | None = None
    allow_empty: bool = False  # for str/float: empty cells allowed
    default: object = None  # value used when an optional column is absent

    @property
    def dtype(self):
        """The pandas dtype of the typed column (nullable Int64 for an int column that may be empty)."""
        if self.kind == "int":
            return "Int64" if self.allow_empty else np.int64
        return {"str": str, "list": str, "float": float, "bool": bool}[self.kind]

    def expected(self) -> str:
        """The human description of what the column accepts."""
        words = {
            "str": "a non-empty text",
            "int": "an integer",
            "float": "a number",
            "bool": "true or false",
            "list": f"a '{LIST_SEPARATOR}'-separated list",
        }[self.kind]
        if self.choices:
            words = "one of " + ", ".join(self.choices)
        if self.minimum is not None and self.maximum is not None:
            words += f" in [{self.minimum:g}, {self.maximum:g}]"
        elif self.minimum is not None:
            words += f" >= {self.minimum:g}"
        return words


@dataclass(frozen=True)
class TableSpec:
    """A contract table: its base name, columns and the columns forming its key."""

    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


PROB = dict(minimum=0.0, maximum=1.0)

# optional village coordinates, in the canonical and the raw villages tables
LATITUDE = Column("latitude", "float", required=False, minimum=-90, maximum=90, allow_empty=True, default=np.nan)
LONGITUDE = Column("longitude", "float", required=False, minimum=-180, maximum=180, allow_empty=True, default=np.nan)

SPECS: dict[str, TableSpec] = {
    "regions": TableSpec(
        "regions",
        (
            Column("region_id", "str"),
            Column("parent_id", "str", allow_empty=True),
            Column("level", "str", choices=LEVELS),
            Column("name", "str", required=False, allow_empty=True, default=""),
            Column("western", "bool", required=False, default=False),
            Column("rural_population", "int", required=False, minimum=0, default=0),
            # counties: the year from whose end on the exit rule must hold (empty: the deadline)
            Column("hat_off_year", "int", required=False, minimum=1900, maximum=2200, allow_empty=True,
                   default=pd.NA),
        ),
        key=("region_id",),
    ),
    "villages": TableSpec(
        "villages",
        (
            Column("village_id", "str"),
            Column("township_id", "str"),
            Column("name", "str", required=False, allow_empty=True, default=""),
            Column("population", "int", required=False, minimum=0, default=0),
            Column("poor_village", "bool", required=False, default=False),
            LATITUDE,
            LONGITUDE,
        ),
        key=("village_id",),
    ),
    "households": TableSpec(
        "households",
        (
            Column("household_id", "str"),
            Column("village_id", "str"),
            Column("size", "int", minimum=1),
            Column("registered_poor", "bool"),
            Column("baseline_exit_probability", "float", **PROB),
            # the chance the household is truly poor (targeting error; empty or absent: 1); it
            # weighs the household's exits in the objective only with policy.targeting_weights
            Column("poverty_probability", "float", required=False, allow_empty=True, default=np.nan, **PROB),
        ),
        key=("household_id",),
    ),
    "packages": TableSpec(
        "packages",
        (
            Column("household_id", "str"),
            Column("package_id", "str"),
            Column("category", "str", choices=CATEGORIES),
            Column("cost", "float", minimum=0, maximum=MAX_MONEY),
            Column("personnel_hours", "float", minimum=0, maximum=1e7),
            Column("exit_probability", "float", **PROB),
            # exits by the deadline and stays out through policy.sustain_years (empty: exit_probability)
            Column("sustained_probability", "float", required=False, allow_empty=True, default=np.nan, **PROB),
            Column("earned_share", "float", required=False, allow_empty=True, default=np.nan, **PROB),
            # of the package's chance to lift the household above the line, the share the safety net's
            Column("safety_net_share", "float", required=False, allow_empty=True, default=np.nan, **PROB),
            # the cost split by the categories of the package's measures, "category:yuan;..." (reported only)
            Column("cost_by_category", "str", required=False, allow_empty=True, default=""),
            Column("lag_years", "int", minimum=0, maximum=100),
            Column("requires", "list", required=False, default=""),
            Column("measures", "str", required=False, allow_empty=True, default=""),
            # the household's standard package in practice (the catalogue's practice rules): the practice baseline
            Column("practice", "bool", required=False, default=False),
        ),
        key=("household_id", "package_id"),
    ),
    "projects": TableSpec(
        "projects",
        (
            Column("village_id", "str"),
            Column("project_id", "str"),
            Column("category", "str", choices=CATEGORIES),
            Column("cost", "float", minimum=0, maximum=MAX_MONEY),
            Column("duration_years", "int", minimum=0, maximum=100),
            Column("mandatory", "bool", required=False, default=False),
        ),
        key=("village_id", "project_id"),
    ),
    "funds": TableSpec(
        "funds",
        (
            Column("source_id", "str"),
            Column("year", "int"),
            Column("amount", "float", minimum=0, maximum=1e15),
            Column("categories", "list", required=False, default=ANY),
            Column("regions", "list", required=False, default=ANY),
            Column("carry_over", "bool", required=False, default=False),
            # with carry_over: unspent money of a year is recalled after this many years (empty: never)
            Column("carry_over_years", "int", required=False, minimum=0, maximum=100, allow_empty=True,
                   default=pd.NA),
            # disbursement pace: cumulative spend through this year >= share x cumulative amount
            Column("min_spend_share", "float", required=False, allow_empty=True, default=0.0, **PROB),
        ),
        key=("source_id", "year"),
    ),
    "personnel": TableSpec(
        "personnel",
        (
            Column("region_id", "str"),
            Column("year", "int"),
            Column("hours", "float", minimum=0, maximum=1e12),
        ),
        key=("region_id", "year"),
    ),
    "targets": TableSpec(
        "targets",
        (
            Column("region_id", "str", allow_empty=True),  # empty: the whole scenario
            Column("year", "int"),
            Column("max_poor_share", "float", **PROB),
        ),
        key=("region_id", "year"),
    ),
}

REQUIRED_TABLES = ("regions", "villages", "households", "packages", "projects", "funds")
OPTIONAL_TABLES = ("personnel", "targets")


@dataclass(frozen=True)
class Source:
    """Where a table is: a file, and for a workbook its sheet (None: none could be chosen)."""

    path: Path
    sheet: str | None = None

    @property
    def label(self) -> str:
        """The file as issues name it: ``funds.csv``, or ``tables.xlsx[funds]`` for a sheet."""
        return self.path.name if self.sheet is None else f"{self.path.name}[{self.sheet}]"

    @property
    def first_row(self) -> int:
        """The row number issues give the first data row: the sheet's own (2), or 1 in a CSV."""
        return SHEET_FIRST_ROW if self.path.suffix.lower() == WORKBOOK else 1


_SHEETS: dict[tuple, dict[str, str] | None] = {}


def _sheet_parts(path: Path) -> dict[str, str] | None:
    """The sheets of an ``.xlsx`` workbook in order, each with the archive member holding its
    XML (read from ``xl/workbook.xml`` and its relationships, without loading the cells); None
    when it is not a workbook. Cached by size and mtime."""
    try:
        stat = path.stat()
    except OSError:
        return None
    key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    if key not in _SHEETS:
        try:
            with zipfile.ZipFile(path) as archive:
                root = ElementTree.fromstring(archive.read("xl/workbook.xml"))
                rels = ElementTree.fromstring(archive.read("xl/_rels/workbook.xml.rels"))
            targets = {rel.get("Id"): rel.get("Target", "") for rel in rels.iter(f"{RELATIONSHIPS_NS}Relationship")}
            _SHEETS[key] = {sheet.get("name", ""): _member(targets.get(sheet.get(f"{OFFICE_RELATIONSHIP_NS}id"), ""))
                            for sheet in root.iter(f"{SPREADSHEET_NS}sheet")}
        except (zipfile.BadZipFile, KeyError, ElementTree.ParseError, OSError):
            _SHEETS[key] = None
    return _SHEETS[key]


def _member(target: str) -> str:
    """The archive member a workbook relationship's target names (relative to ``xl/``, or absolute)."""
    return target.lstrip("/") if target.startswith("/") else f"xl/{target}"


def sheet_names(path: Path) -> tuple[str, ...] | None:
    """The sheet names of an ``.xlsx`` workbook, in order; None when it is not a workbook."""
    parts = _sheet_parts(path)
    return None if parts is None else tuple(parts)


def workbooks(folder: Path) -> list[Path]:
    """The ``.xlsx`` files of ``folder`` (Excel's ``~$`` lock files and hidden files aside)."""
    if not folder.is_dir():
        return []
    return sorted(path for path in folder.iterdir() if path.suffix.lower() == WORKBOOK
                  and not path.name.startswith(("~$", ".")) and path.is_file())


def table_sources(folder: Path, name: str) -> list[Source]:
    """Every place ``folder`` gives table ``name``: ``NAME.csv`` (else ``NAME.parquet``),
    ``NAME.xlsx`` (its sheet ``NAME``, else its only sheet; no sheet when it has several, none
    named ``NAME``) and the sheet ``NAME`` of any other workbook. More than one is an error
    :func:`read_table` reports."""
    folder = Path(folder)
    found = [Source(path) for path in (folder / f"{name}{suffix}" for suffix in FLAT_SUFFIXES) if path.exists()][:1]
    for book in workbooks(folder):
        sheets = sheet_names(book)
        if book.stem == name:
            found.append(Source(book, name if sheets and name in sheets else sheets[0] if sheets
                                and len(sheets) == 1 else None))
        elif sheets and name in sheets:
            found.append(Source(book, name))
    return found


def _has_sheets(book: Path, name: str) -> str:
    """What a workbook holds instead of the sheet ``name``: "tables.xlsx has sheets households,
    villages; none is named 'funds'" (and a sheet named so but for case or spaces)."""
    sheets = sheet_names(book) or ()
    told = f"{book.name} has sheets {', '.join(sheets)}" if sheets else f"{book.name} has no sheets"
    close = [sheet for sheet in sheets if sheet.strip().lower() == name.lower()]
    return told + f"; none is named '{name}'" + "".join(
        f" ('{sheet}' is not: sheet names are matched exactly)" for sheet in close)


def table_path(folder: Path, name: str) -> Path | None:
    """The file holding table ``name`` in ``folder`` (CSV, Parquet or a workbook), or None."""
    sources = table_sources(folder, name)
    return sources[0].path if sources else None


def table_files(folder: Path, names) -> list[Path]:
    """The files holding the tables ``names`` in ``folder``, each once (a workbook of several tables once)."""
    return list(dict.fromkeys(source.path for name in names for source in table_sources(folder, name)))


def unread_spreadsheet(folder: Path, name: str) -> Path | None:
    """A spreadsheet ``NAME.xlsm`` (or .xls, .ods) in ``folder``, which is not read: named in errors."""
    return next((folder / f"{name}{suffix}" for suffix in UNREAD_SPREADSHEETS
                 if (folder / f"{name}{suffix}").exists()), None)


def _reading(encoding: str) -> str:
    """The codec to read ``encoding`` with: UTF-8 drops a byte-order mark."""
    return "utf-8-sig" if codecs.lookup(encoding).name == "utf-8" else encoding


def text_encoding(path: Path, declared: str | None = None) -> str | None:
    """The encoding a CSV file decodes in: ``declared`` if given, else the first of
    :data:`ENCODINGS` that fits; None when it does not decode (read in blocks)."""
    for encoding in [declared] if declared else ENCODINGS:
        decoder = codecs.getincrementaldecoder(_reading(encoding))()
        try:
            with open(path, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    decoder.decode(block)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            continue
        return codecs.lookup(encoding).name
    return None


def _read_raw(path: Path, encoding: str | None = None) -> pd.DataFrame:
    """Read a table with every cell as text, so type checks can report the cell; a CSV in
    ``encoding``, else in the first of :data:`ENCODINGS` it decodes in (``attrs['encoding']``)."""
    if path.suffix == ".parquet":
        frame = pd.read_parquet(path)
        return frame.astype(object).where(frame.notna(), "").astype(str)
    tried = [encoding] if encoding else ENCODINGS
    for name in tried:
        try:
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True,
                                encoding=_reading(name))
        except UnicodeDecodeError:
            if name == tried[-1]:
                raise
            continue
        frame.attrs["encoding"] = codecs.lookup(name).name
        return frame


def _cell_text(value) -> str:
    """A sheet cell as the text a CSV would hold: empty for an empty cell, true/false, integers
    without a decimal point (an id typed as a number stays '101'), dates in ISO form."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer() and abs(value) < MAX_INT:
            return str(int(value))
        return repr(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    return str(value)


@dataclass(frozen=True)
class CellFlag:
    """A sheet cell whose text would mislead the column checks, and the issue it is instead."""

    message: str
    found: str | None
    expected: str | None = None  # None: what the column accepts
    numeric: bool = False  # an issue only in a number column (a date is a fine text)


@dataclass(frozen=True)
class SheetScan:
    """What a sheet's values do not tell: its merged ranges, and the cells (by row and column
    number) that hold an Excel error or a formula with no computed value."""

    merged: tuple[str, ...]
    cells: dict[tuple[int, int], CellFlag]


def _scan_sheet(path: Path, member: str) -> SheetScan:
    """Search a sheet's XML for merged ranges and for the cells holding a formula or an error
    value, a block of whole rows at a time: byte searches at the speed of C, and Python work
    only for such cells. A cell the search cannot place (no ``r`` reference, as some programs
    write) has the sheet parsed cell by cell instead (:func:`_parsed_formula_cells`)."""
    merged: dict[str, None] = {}
    cells: dict[tuple[int, int], CellFlag] | None = {}
    with zipfile.ZipFile(path) as archive:
        with archive.open(member) as stream:
            carry = b""
            for block in itertools.chain(iter(lambda: stream.read(SCAN_BLOCK), b""), [b""]):  # b"": the end
                text = carry + block
                cut = text.rfind(b"row>") + len(b"row>") if block else len(text)
                part, carry = text[:max(cut, 0)], text[max(cut, 0):]
                if b"mergeCell" in part:
                    merged.update(dict.fromkeys(ref.decode().upper() for ref in MERGED.findall(part)))
                if cells is not None and (any(tag in part for tag in FORMULA_TAGS)
                                          or any(kind in part for kind in ERROR_TYPES)):
                    cells = _formula_cells(part, cells)
        if cells is None:
            cells = _parsed_formula_cells(archive, member)
    return SheetScan(tuple(merged), cells)


def _cell_flag(kind: str, formula: str | None, value: str) -> CellFlag | None:
    """The issue of a cell of type ``kind`` (``t``), ``formula`` (None: none) and cached
    ``value``: an Excel error value, or a formula with no computed value (a workbook written by
    a program and never opened in a spreadsheet: read as empty, it would pass for an empty
    cell); None for a fine cell (a formula whose value is an empty text is one)."""
    if kind == "e":
        return CellFlag(ERROR_VALUE if formula is not None else "an Excel error value", repr(value))
    if formula is not None and not value and kind not in TEXT_RESULTS:
        return CellFlag(NO_VALUE, repr("=" + (formula or "...")), OPEN_AND_SAVE)
    return None


def _formula_cells(part: bytes, cells: dict[tuple[int, int], CellFlag]) -> dict[tuple[int, int], CellFlag] | None:
    """``cells`` with the flagged cells of ``part`` (whole rows of a sheet's XML) added, found
    from each formula or error marker back to its cell; None when a cell cannot be placed."""
    from openpyxl.utils import coordinate_to_tuple

    prefixed = None if b"<c " in part else CELL_START.search(part)
    opening = b"<c " if prefixed is None else prefixed.group(0)[:-1] + b" "  # <c or <x:c, with a space
    closing = b"</" + opening[1:-1] + b">"
    data_end = part.rfind(b"sheetData>")  # after </sheetData>, formulas are no cells' (data validations)
    data_end = data_end if data_end >= 0 and part[part.rfind(b"<", 0, data_end):].startswith(b"</") else len(part)
    for marker in MARKER.finditer(part, 0, data_end):
        start = part.rfind(opening, max(0, marker.start() - CELL_REACH), marker.start() + 1)
        head_end = part.find(b">", start) if start >= 0 else -1
        ref = REF.search(part, start, head_end) if head_end >= 0 else None
        if ref is None:
            return None
        closed = part[head_end - 1:head_end] == b"/"  # <c r="A1" t="e"/>
        end = head_end + 1 if closed else part.find(closing, head_end) + len(closing)
        if end <= marker.start():  # the marker is not inside the cell found (a cell <c> without attributes)
            return None
        head, body = part[start:head_end], part[head_end:end]
        kind = TYPE.search(head)
        formula, value = FORMULA.search(body), VALUE.search(body)
        flag = _cell_flag(kind.group(1).decode() if kind else "n",
                          None if formula is None else html.unescape((formula.group(1) or b"").decode()),
                          "" if value is None else html.unescape((value.group(1) or b"").decode()))
        if flag is not None:
            cells[coordinate_to_tuple(ref.group(1).decode().upper())] = flag
    return cells


def _parsed_formula_cells(archive: zipfile.ZipFile, member: str) -> dict[tuple[int, int], CellFlag]:
    """The flagged cells of a sheet, its XML parsed cell by cell (rows and cells numbered by
    their ``r`` references, else counted as a spreadsheet program does)."""
    from openpyxl.utils import coordinate_to_tuple

    flags: dict[tuple[int, int], CellFlag] = {}
    row = col = 0
    with archive.open(member) as stream:
        for event, element in ElementTree.iterparse(stream, events=("start", "end")):
            tag = element.tag.rpartition("}")[2]
            if event == "start":
                if tag == "row":
                    row, col = int(element.get("r") or row + 1), 0
                continue
            if tag == "c":
                ref = element.get("r")
                row, col = coordinate_to_tuple(ref) if ref else (row, col + 1)
                parts = {child.tag.rpartition("}")[2]: child for child in element}
                formula, value = parts.get("f"), parts.get("v")
                flag = _cell_flag(element.get("t", "n"), None if formula is None else formula.text or "",
                                  "" if value is None else value.text or "")
                if flag is not None:
                    flags[(row, col)] = flag
                element.clear()
            elif tag == "row":
                element.clear()
    return flags


DATE_TYPES = {dt.datetime: "date", dt.date: "date", dt.time: "time", dt.timedelta: "time"}


def _shown(value) -> str:
    """A date or time cell as a person reads it: the day alone for a date at midnight."""
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if value.time() == dt.time() else value.isoformat(sep=" ")
    return str(value)


def _read_sheet(source: Source, issues: IssueCollector) -> pd.DataFrame | None:
    """Read a sheet with every cell as text: its row 1 is the header, each later row a data row
    (empty rows at the end are dropped; empty rows between stay, so row numbers hold).

    A header with merged, empty, error or uncomputed cells is reported and the sheet not read
    (None). Data cells whose text would mislead (an error value, a formula with no computed
    value, a date, a cell merged into another) are left in ``attrs['cells']`` (column name ->
    row position -> :class:`CellFlag`) for :func:`read_table` to report in the column's terms.
    """
    from openpyxl import load_workbook  # only when a data folder holds a workbook
    from openpyxl.utils import get_column_letter, range_boundaries

    file = source.label
    scan = _scan_sheet(source.path, _sheet_parts(source.path)[source.sheet])
    book = load_workbook(source.path, read_only=True, data_only=True)
    try:
        sheet = book[source.sheet]
        sheet.reset_dimensions()  # a workbook's stored size may be wrong: read every row there is
        rows = sheet.iter_rows(values_only=True)
        header = [_cell_text(v).strip() for v in next(rows, ())]
        bad_header = False
        merged_in_header: set[int] = set()
        for ref in scan.merged:
            min_col, min_row, max_col, _ = range_boundaries(ref)
            if min_row == 1:
                bad_header = True
                merged_in_header.update(range(min_col, max_col + 1))
                issues.add(file, f"merged header cells {ref}", row=1, column=get_column_letter(min_col),
                           expected="each column's name in its own cell of row 1: unmerge the cells")
        for (row, col), flag in sorted(scan.cells.items()):
            if row == 1:
                bad_header = True
                issues.add(file, f"{flag.message} in the header", row=1, column=get_column_letter(col),
                           expected=flag.expected or "a column name", found=flag.found)
        while header and header[-1] == "":
            header.pop()
        for col, name in enumerate(header, start=1):
            if name == "" and col not in merged_in_header:
                bad_header = True
                issues.add(file, "empty header cell", row=1, column=get_column_letter(col),
                           expected="a column name in each cell of row 1 up to the last one (or the column deleted)")
        if bad_header:
            return None
        names: list[str] = []
        for name in header:  # repeated titles are told apart as pandas does for a CSV
            seen, n = name, 0
            while seen in names:
                n += 1
                seen = f"{name}.{n}"
            names.append(seen)
        width = len(names)
        data = []
        dates = []
        last = 0
        for values in rows:
            values = values[:width]
            cells = [_cell_text(v) for v in values]
            cells += [""] * (width - len(cells))
            data.append(cells)
            if any(cell.strip() for cell in cells):
                last = len(data)
            if not DATE_TYPES.keys().isdisjoint(map(type, values)):
                dates += [(len(data) - 1, col, value) for col, value in enumerate(values) if type(value) in DATE_TYPES]
    finally:
        book.close()
    flags: dict[tuple[int, int], CellFlag] = {}
    for pos, col, value in dates:
        flags[(pos, col)] = CellFlag(f"a {DATE_TYPES[type(value)]} where a number belongs", repr(_shown(value)),
                                     numeric=True)
    for (row, col), flag in scan.cells.items():
        pos = row - SHEET_FIRST_ROW
        if col <= width and 0 <= pos < len(data):  # row 1's flags made the header bad: returned above
            data[pos][col - 1] = ""  # an error's text (#REF!) is no value of any column
            flags[(pos, col - 1)] = flag
            last = max(last, pos + 1)  # a row of uncomputed formulas is a row, not an empty one
    for ref in scan.merged:
        min_col, min_row, max_col, max_row = range_boundaries(ref)
        for row in range(min_row, min(max_row, last + SHEET_FIRST_ROW - 1) + 1):
            for col in range(min_col, min(max_col, width) + 1):
                if (row, col) != (min_row, min_col):
                    flags[(row - SHEET_FIRST_ROW, col - 1)] = CellFlag(
                        f"a cell of merged cells {ref}", None,
                        "a value in each cell: unmerge the cells and enter each cell's value")
    frame = pd.DataFrame(data[:last], columns=names, dtype=object)
    frame = frame.astype(str) if len(frame) else frame
    frame.attrs["cells"] = {}
    for (pos, col), flag in sorted(flags.items()):
        if pos < last:
            frame.attrs["cells"].setdefault(names[col], {})[pos] = flag
    return frame


def _bad_rows(mask: np.ndarray, values: pd.Series, col: Column, file: str, issues: IssueCollector,
              message: str, first: int = 1) -> None:
    """Report each row flagged in ``mask``, numbered from ``first`` (1: data rows of a CSV; 2:
    a sheet's own row numbers)."""
    for pos in np.flatnonzero(mask):
        if issues.full:
            issues.truncated = True
            return
        issues.add(file, message, row=int(pos) + first, column=col.name,
                   expected=col.expected(), found=repr(values.iloc[pos]))


def first_row(frame: pd.DataFrame) -> int:
    """The row number issues give a table's first data row: 1 for a CSV or Parquet file, 2 for
    a sheet (:data:`SHEET_FIRST_ROW`)."""
    return int(frame.attrs.get("first_row", 1))


def _convert(raw: pd.Series, col: Column, file: str, issues: IssueCollector, first: int = 1) -> pd.Series:
    """Convert one text column to its kind, reporting every cell that does not fit (rows
    numbered from ``first``)."""
    text = raw.str.strip()
    empty = (text == "").to_numpy()
    if col.kind in ("str", "list"):
        if col.kind == "str" and not col.allow_empty:
            _bad_rows(empty, raw, col, file, issues, "empty cell", first)
        if col.choices:
            bad = ~text.isin(col.choices).to_numpy() & ~empty
            _bad_rows(bad, raw, col, file, issues, "unknown value", first)
        return text
    if col.kind == "bool":
        lower = text.str.lower()
        is_true = lower.isin(TRUE_STRINGS).to_numpy()
        bad = ~(is_true | lower.isin(FALSE_STRINGS).to_numpy())
        _bad_rows(bad, raw, col, file, issues, "not a boolean", first)
        if col.required:
            _bad_rows(empty, raw, col, file, issues, "empty cell", first)
        return pd.Series(is_true, index=raw.index, dtype=bool)
    numbers = pd.to_numeric(text.where(~empty, None), errors="coerce").astype(float)
    values = numbers.to_numpy()
    not_number = np.isnan(values) & ~empty
    _bad_rows(not_number, raw, col, file, issues, "not a number", first)
    if not col.allow_empty:
        _bad_rows(empty, raw, col, file, issues, "empty cell", first)
    finite = ~np.isnan(values)
    if col.kind == "int":
        with np.errstate(invalid="ignore"):  # inf - round(inf) is nan: infinite cells are judged by the range
            frac = finite & (np.abs(values - np.round(values)) > 1e-9)
        _bad_rows(frac, raw, col, file, issues, "not an integer", first)
        values = np.where(np.abs(values) > MAX_INT, np.inf, values)
    out_of_range = np.zeros(len(values), dtype=bool)
    if col.minimum is not None:
        out_of_range |= finite & (values < col.minimum)
    if col.maximum is not None:
        out_of_range |= finite & (values > col.maximum)
    out_of_range |= np.isinf(values)
    _bad_rows(out_of_range, raw, col, file, issues, "out of range", first)
    if col.kind == "int":
        exact = finite & np.isfinite(values)
        ints = pd.Series(np.where(exact, np.round(np.where(exact, values, 0)), 0).astype(np.int64), index=raw.index)
        return ints.astype("Int64").mask(empty) if col.allow_empty else ints
    return numbers


def read_table(folder: Path, spec: TableSpec, issues: IssueCollector,
               encoding: str | None = None) -> pd.DataFrame | None:
    """Read and type one contract table (a CSV in ``encoding``, else detected; Parquet; a sheet
    of a workbook); problems go to ``issues``; None if unreadable. ``attrs`` keep the file (for
    a sheet ``FILE[SHEET]``), the row number of its first data row, its encoding and the columns
    given."""
    sources = table_sources(folder, spec.name)
    if not sources:
        other = unread_spreadsheet(folder, spec.name)
        if other is not None:
            issues.add(other.name, f"a {other.suffix} spreadsheet, which allocator does not read",
                       expected=f"the table saved as {spec.name}.xlsx (Excel Workbook), {spec.name}.csv "
                                f"({SAVE_AS_CSV}) or {spec.name}.parquet")
        else:
            books = [_has_sheets(book, spec.name) for book in workbooks(folder) if sheet_names(book) is not None]
            issues.add(f"{spec.name}.csv", f"missing table: no {spec.name}.csv, {spec.name}.parquet or "
                       f"{spec.name}.xlsx, nor a sheet {spec.name} in a workbook, in {folder}"
                       + "".join(f"; {book}" for book in books))
        return None
    if len(sources) > 1:
        issues.add(sources[0].label, f"table {spec.name} is given more than once: "
                   + " and ".join(source.label for source in sources), expected="the table in one place only")
        return None
    source = sources[0]
    file, first = source.label, source.first_row
    if source.path.suffix.lower() == WORKBOOK and source.sheet is None and sheet_names(source.path) is not None:
        issues.add(file, _has_sheets(source.path, spec.name),
                   expected=f"a sheet named '{spec.name}' (a workbook of one sheet is read from that sheet)")
        return None
    if source.path.suffix.lower() == WORKBOOK and source.sheet is None:
        issues.add(file, "not an Excel workbook: its sheets cannot be listed",
                   expected=f"a workbook saved as Excel Workbook (.xlsx), or the table as {spec.name}.csv "
                            f"({SAVE_AS_CSV})")
        return None
    try:
        is_sheet = source.path.suffix.lower() == WORKBOOK
        raw = _read_sheet(source, issues) if is_sheet else _read_raw(source.path, encoding)
    except UnicodeDecodeError:
        issues.add(file, f"not {encoding or 'UTF-8 (nor GB18030)'} text",
                   expected=f"{SAVE_AS_CSV}, or the file's encoding named in the scenario (encoding: ...)")
        return None
    except Exception as exc:  # a malformed file is bad input, reported, never a traceback
        what = "an Excel workbook (.xlsx)" if source.path.suffix.lower() == WORKBOOK else "a table"
        issues.add(file, f"cannot be read as {what}: {exc}")
        return None
    if raw is None:  # a sheet whose header is unusable, reported
        return None
    raw.columns = [str(c).strip() for c in raw.columns]
    if any(";" in c for c in raw.columns):
        issues.add(file, "the columns are separated by ';', not ','",
                   expected=f"comma-separated columns ({SAVE_AS_CSV}); ';' separates the items of a list in a cell",
                   found="header " + repr(";".join(raw.columns)[:120]))
        return None
    missing = [c.name for c in spec.columns if c.required and c.name not in raw.columns]
    for name in missing:
        issues.add(file, "missing column", column=name, expected=spec.column(name).expected(),
                   found="columns " + ", ".join(raw.columns))
    if missing:
        return None
    typed = {}
    before = len(issues.issues)
    flagged = raw.attrs.get("cells", {})
    for col in spec.columns:
        if col.name in raw.columns:
            for pos, flag in flagged.get(col.name, {}).items():  # first: the cell's other issues are not repeated
                if not flag.numeric or col.kind in ("int", "float"):
                    issues.add(file, flag.message, row=pos + first, column=col.name,
                               expected=flag.expected or col.expected(), found=flag.found)
            typed[col.name] = _convert(raw[col.name].astype(str), col, file, issues, first)
        else:
            typed[col.name] = pd.Series([col.default] * len(raw), index=raw.index, dtype=col.dtype)
    frame = pd.DataFrame(typed)
    frame.attrs.update(file=file, first_row=first, encoding=raw.attrs.get("encoding"), given=tuple(raw.columns))
    bad_key_rows = {i.row - first for i in issues.issues[before:] if i.column in spec.key and i.row is not None}
    dup = frame.duplicated(list(spec.key), keep="first").to_numpy().copy()
    dup[list(bad_key_rows)] = False
    for pos in np.flatnonzero(dup)[: issues.limit]:
        key = " / ".join(str(frame.iloc[pos][k]) for k in spec.key)
        issues.add(file, "duplicate id", row=int(pos) + first, id=key, column=", ".join(spec.key),
                   expected="each id once")
    return frame


def read_tables(folder: str | Path, issues: IssueCollector | None = None,
                encoding: str | None = None) -> dict[str, pd.DataFrame]:
    """Read every contract table of a data folder (CSV in ``encoding``, else detected).

    Without ``issues``, raise one InputError listing all problems; with it, add them there
    and return the tables that could be read (cells that did not fit are zero or empty).
    """
    folder = Path(folder)
    collect = issues is not None
    issues = issues if collect else IssueCollector()
    if not folder.is_dir():
        issues.add(str(folder), "data folder does not exist", expected="a folder with the contract tables")
        if collect:
            return {}
        issues.raise_if_any()
    tables = read_specs(folder, {name: SPECS[name] for name in REQUIRED_TABLES + OPTIONAL_TABLES},
                        set(OPTIONAL_TABLES), issues, encoding)
    if not collect:
        issues.raise_if_any()
    return tables


def read_specs(folder: Path, specs: dict[str, TableSpec], optional: set[str],
               issues: IssueCollector, encoding: str | None = None) -> dict[str, pd.DataFrame]:
    """Read the tables ``specs`` names from ``folder`` (an optional one that is absent is empty,
    unless a spreadsheet allocator does not read stands in its place); problems go to ``issues``,
    and a table that could not be read at all is left out."""
    tables: dict[str, pd.DataFrame] = {}
    for name, spec in specs.items():
        if name in optional and not table_sources(folder, name) and unread_spreadsheet(folder, name) is None:
            tables[name] = empty_table(spec)
            continue
        frame = read_table(folder, spec, issues, encoding)
        if frame is not None:
            tables[name] = frame
    return tables


def empty_table(spec: TableSpec) -> pd.DataFrame:
    """A table of ``spec`` with no rows and the right dtypes."""
    frame = pd.DataFrame({c.name: pd.Series([], dtype=c.dtype) for c in spec.columns})
    frame.attrs["file"] = f"{spec.name}.csv"
    return frame


def conform(frame: pd.DataFrame, spec: TableSpec) -> pd.DataFrame:
    """``frame`` with exactly the spec's columns, in order; optional columns it lacks are
    added at their default (generators and older code do not write every optional column)."""
    missing = {c.name: pd.Series([c.default] * len(frame), index=frame.index, dtype=c.dtype)
               for c in spec.columns if not c.required and c.name not in frame.columns}
    done = frame.assign(**missing)[[c.name for c in spec.columns]]
    done.attrs = dict(frame.attrs)
    return done


def complete_tables(tables: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """The contract tables with every optional column and table present (at its default)."""
    done = dict(tables)
    for name, spec in SPECS.items():
        if name in done:
            if any(c.name not in done[name].columns for c in spec.columns):
                done[name] = conform(done[name], spec)
        elif name in OPTIONAL_TABLES:
            done[name] = empty_table(spec)
    return done


def file_of(frame: pd.DataFrame, name: str) -> str:
    """The file a table was read from (``NAME.csv`` for tables made in memory)."""
    return frame.attrs.get("file", f"{name}.csv")


def split_list(cell: str) -> list[str]:
    """Split a ';'-separated cell into its non-empty, stripped items."""
    return [item.strip() for item in str(cell).split(LIST_SEPARATOR) if item.strip()]


def write_table(frame: pd.DataFrame, path: Path) -> None:
    """Write a table as CSV (booleans as true/false) or Parquet, by the path's suffix."""
    if path.suffix == ".parquet":
        frame.to_parquet(path, index=False)
        return
    out = frame.copy()
    for name in out.columns:
        if out[name].dtype == bool:
            out[name] = np.where(out[name], "true", "false")
    out.to_csv(path, index=False)


def take_text(vocab, codes: np.ndarray) -> pd.api.extensions.ExtensionArray:
    """``vocab[codes]`` as a pandas ``str`` array (fast for few distinct values)."""
    table = pa.array(list(vocab), type=pa.large_string())
    return pd.array(pc.take(table, pa.array(np.asarray(codes, dtype=np.int64))), dtype="str")
