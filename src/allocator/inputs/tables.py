"""The contract tables: column specs, reading (CSV or Parquet) and per-cell type checks.

Each table of the canonical problem has a :class:`TableSpec`. :func:`read_tables` reads a
data folder, checks every column against its spec and returns typed pandas DataFrames,
collecting every problem found (up to the cap) into one :class:`InputError`. Cross-table
rules live in :mod:`allocator.inputs.checks`.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass
from pathlib import Path

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
SPREADSHEETS = (".xlsx", ".xlsm", ".xls", ".ods")  # workbooks, which are not read (yet)
SAVE_AS_CSV = "a CSV file saved as UTF-8 (Excel: 'CSV UTF-8 (comma delimited)')"


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


def table_path(folder: Path, name: str) -> Path | None:
    """The file holding table ``name`` in ``folder`` (CSV or Parquet), or None."""
    for suffix in (".csv", ".parquet"):
        path = folder / f"{name}{suffix}"
        if path.exists():
            return path
    return None


def spreadsheet_path(folder: Path, name: str) -> Path | None:
    """A workbook ``NAME.xlsx`` (or .xlsm, .xls, .ods) in ``folder``, or None: named in errors."""
    return next((folder / f"{name}{suffix}" for suffix in SPREADSHEETS if (folder / f"{name}{suffix}").exists()), None)


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


def _bad_rows(mask: np.ndarray, values: pd.Series, col: Column, file: str, issues: IssueCollector,
              message: str) -> None:
    """Report each row flagged in ``mask`` (1-based data rows, as a spreadsheet shows)."""
    for pos in np.flatnonzero(mask):
        if issues.full:
            issues.truncated = True
            return
        issues.add(file, message, row=int(pos) + 1, column=col.name,
                   expected=col.expected(), found=repr(values.iloc[pos]))


def _convert(raw: pd.Series, col: Column, file: str, issues: IssueCollector) -> pd.Series:
    """Convert one text column to its kind, reporting every cell that does not fit."""
    text = raw.str.strip()
    empty = (text == "").to_numpy()
    if col.kind in ("str", "list"):
        if col.kind == "str" and not col.allow_empty:
            _bad_rows(empty, raw, col, file, issues, "empty cell")
        if col.choices:
            bad = ~text.isin(col.choices).to_numpy() & ~empty
            _bad_rows(bad, raw, col, file, issues, "unknown value")
        return text
    if col.kind == "bool":
        lower = text.str.lower()
        is_true = lower.isin(TRUE_STRINGS).to_numpy()
        bad = ~(is_true | lower.isin(FALSE_STRINGS).to_numpy())
        _bad_rows(bad, raw, col, file, issues, "not a boolean")
        if col.required:
            _bad_rows(empty, raw, col, file, issues, "empty cell")
        return pd.Series(is_true, index=raw.index, dtype=bool)
    numbers = pd.to_numeric(text.where(~empty, None), errors="coerce").astype(float)
    values = numbers.to_numpy()
    not_number = np.isnan(values) & ~empty
    _bad_rows(not_number, raw, col, file, issues, "not a number")
    if not col.allow_empty:
        _bad_rows(empty, raw, col, file, issues, "empty cell")
    finite = ~np.isnan(values)
    if col.kind == "int":
        with np.errstate(invalid="ignore"):  # inf - round(inf) is nan: infinite cells are judged by the range
            frac = finite & (np.abs(values - np.round(values)) > 1e-9)
        _bad_rows(frac, raw, col, file, issues, "not an integer")
        values = np.where(np.abs(values) > MAX_INT, np.inf, values)
    out_of_range = np.zeros(len(values), dtype=bool)
    if col.minimum is not None:
        out_of_range |= finite & (values < col.minimum)
    if col.maximum is not None:
        out_of_range |= finite & (values > col.maximum)
    out_of_range |= np.isinf(values)
    _bad_rows(out_of_range, raw, col, file, issues, "out of range")
    if col.kind == "int":
        exact = finite & np.isfinite(values)
        ints = pd.Series(np.where(exact, np.round(np.where(exact, values, 0)), 0).astype(np.int64), index=raw.index)
        return ints.astype("Int64").mask(empty) if col.allow_empty else ints
    return numbers


def read_table(folder: Path, spec: TableSpec, issues: IssueCollector,
               encoding: str | None = None) -> pd.DataFrame | None:
    """Read and type one contract table (a CSV in ``encoding``, else detected); problems go to
    ``issues``; None if unreadable. ``attrs`` keep the file, its encoding and the columns given."""
    path = table_path(folder, spec.name)
    if path is None:
        sheet = spreadsheet_path(folder, spec.name)
        if sheet is not None:
            issues.add(sheet.name, "a spreadsheet workbook, which allocator does not read",
                       expected=f"the table saved as {spec.name}.csv ({SAVE_AS_CSV}) or {spec.name}.parquet")
        else:
            issues.add(f"{spec.name}.csv", f"missing table: no {spec.name}.csv or {spec.name}.parquet in {folder}")
        return None
    file = path.name
    try:
        raw = _read_raw(path, encoding)
    except UnicodeDecodeError:
        issues.add(file, f"not {encoding or 'UTF-8 (nor GB18030)'} text",
                   expected=f"{SAVE_AS_CSV}, or the file's encoding named in the scenario (encoding: ...)")
        return None
    except Exception as exc:  # a malformed file is bad input, reported, never a traceback
        issues.add(file, f"cannot be read as a table: {exc}")
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
    for col in spec.columns:
        if col.name in raw.columns:
            typed[col.name] = _convert(raw[col.name].astype(str), col, file, issues)
        else:
            typed[col.name] = pd.Series([col.default] * len(raw), index=raw.index, dtype=col.dtype)
    frame = pd.DataFrame(typed)
    frame.attrs.update(file=file, encoding=raw.attrs.get("encoding"), given=tuple(raw.columns))
    bad_key_rows = {i.row - 1 for i in issues.issues[before:] if i.column in spec.key and i.row is not None}
    dup = frame.duplicated(list(spec.key), keep="first").to_numpy().copy()
    dup[list(bad_key_rows)] = False
    for pos in np.flatnonzero(dup)[: issues.limit]:
        key = " / ".join(str(frame.iloc[pos][k]) for k in spec.key)
        issues.add(file, "duplicate id", row=int(pos) + 1, id=key, column=", ".join(spec.key),
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
    unless a workbook stands in its place); problems go to ``issues``, and a table that could not
    be read at all is left out."""
    tables: dict[str, pd.DataFrame] = {}
    for name, spec in specs.items():
        if name in optional and table_path(folder, name) is None and spreadsheet_path(folder, name) is None:
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
