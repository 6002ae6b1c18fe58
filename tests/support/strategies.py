"""Hypothesis strategies: corruptions of the tiny tables, and valid random perturbations of them.

A :class:`Corruption` is one change of the tiny data set (see ``tiny.py``) that makes it invalid:
a bad cell, a duplicate key, a dropped column or file, a broken cross-table rule. Each one
knows where the error must be reported (file, 1-based data row, column), so a test can check
that the :class:`allocator.errors.InputError` points at it.

Tables are handled as *text* tables (every cell a string, as written to the CSV), so a cell
can hold anything a planner could type into a spreadsheet.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from hypothesis import strategies as st

from allocator.inputs.tables import CATEGORIES, REQUIRED_TABLES, SPECS
from tests.support.tiny import tiny_tables, write_folder

YEARS = (2016, 2018)  # the tiny scenario's start and deadline years

# --------------------------------------------------------------------------------------------
# text tables
# --------------------------------------------------------------------------------------------


def _cell_text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def text_tables(tables: dict[str, pd.DataFrame] | None = None) -> dict[str, pd.DataFrame]:
    """The tables (default: the tiny ones) with every cell as the text written to the CSV."""
    tables = tiny_tables() if tables is None else tables
    out = {}
    for name, frame in tables.items():
        text = frame.astype(object).map(_cell_text) if len(frame) else frame.astype(str)
        out[name] = text.astype(object)
    return out


BASE = text_tables()
ROWS = {name: len(frame) for name, frame in BASE.items()}
REGION_PARENT = dict(zip(BASE["regions"]["region_id"], BASE["regions"]["parent_id"], strict=True))
REGION_ROW = {rid: i + 1 for i, rid in enumerate(BASE["regions"]["region_id"])}
HOUSEHOLD_VILLAGE = dict(zip(BASE["households"]["household_id"], BASE["households"]["village_id"], strict=True))
VILLAGE_PROJECTS = BASE["projects"].groupby("village_id")["project_id"].apply(list).to_dict()
ALL_PROJECTS = sorted(set(BASE["projects"]["project_id"]))
FUND_SOURCE_ROWS = {src: [i + 1 for i in idx] for src, idx in
                    BASE["funds"].groupby("source_id").indices.items()}


def write_case(tables: dict[str, pd.DataFrame], folder: Path, fmt: str = "csv", **scenario) -> Path:
    """Write text tables as CSV (via ``tiny.write_folder``) or Parquet, plus scenario.yaml."""
    if fmt == "csv":
        return write_folder(tables, folder, **scenario)
    path = write_folder({}, folder, **scenario)
    for name, frame in tables.items():
        frame.astype(str).to_parquet(folder / f"{name}.parquet", index=False)
    return path


# --------------------------------------------------------------------------------------------
# corruptions
# --------------------------------------------------------------------------------------------

# Kinds whose issue is found while reading one table (cell types, ranges, keys, columns, files);
# the others break cross-table rules, which a broken table may hide.
READ_KINDS = {"bad_text", "negative", "out_of_range", "non_integer", "unknown_choice", "duplicate_key",
              "drop_column", "drop_table"}


def _split(column: str | None) -> list[str]:
    return [c.strip() for c in (column or "").split(",")]


@dataclass(frozen=True)
class Corruption:
    """One change that makes the tiny tables invalid, and where its error must point.

    ``row`` is the 1-based data row as written (as a spreadsheet shows it, header excluded);
    ``rows`` the rows an issue may name (a duplicate may be reported on either copy);
    ``mention`` a text the issue must contain when the error has no row (e.g. a cycle).
    """

    kind: str
    table: str
    column: str | None = None
    row: int | None = None
    value: str | tuple[str, ...] | None = None
    source_row: int | None = None  # duplicate_key: the row whose key is copied
    rows: tuple[int, ...] = ()
    mention: str | None = None

    @property
    def stage(self) -> str:
        if self.kind in ("bad_text", "unknown_choice") and SPECS[self.table].column(self.column).kind == "list":
            return "check"  # an empty or unknown list item is a cross-table rule
        return "read" if self.kind in READ_KINDS else "check"

    @property
    def cell_level(self) -> bool:
        """Whether its issue must name the row (a cycle has no single row to blame)."""
        return self.row is not None and self.kind != "cycle"

    @property
    def targets(self) -> set[tuple[str, str]]:
        """The (table, column) pairs it writes; corruptions combined never share one."""
        if self.kind == "duplicate_key":
            return {(self.table, k) for k in SPECS[self.table].key}
        if self.kind in ("drop_table", "empty_table"):
            return {(self.table, "*")}
        return {(self.table, self.column)}

    def masks(self, other: Corruption) -> bool:
        """True when this corruption hides ``other``'s cells (its file, rows or a column gone)."""
        if other is self or other.table != self.table:
            return False
        return self.kind in ("drop_table", "empty_table", "drop_column")

    def apply(self, tables: dict[str, pd.DataFrame]) -> None:
        """Change ``tables`` (text tables) in place; a table or row already gone is left alone."""
        if self.table not in tables:
            return
        frame = tables[self.table]
        if self.kind == "drop_table":
            del tables[self.table]
        elif self.kind == "empty_table":
            tables[self.table] = frame.iloc[:0]
        elif self.kind == "drop_column":
            if self.column in frame.columns:
                tables[self.table] = frame.drop(columns=[self.column])
        elif self.kind == "duplicate_key":
            if max(self.row, self.source_row) <= len(frame):
                for key in SPECS[self.table].key:
                    if key in frame.columns:
                        frame.iat[self.row - 1, frame.columns.get_loc(key)] = \
                            frame.iat[self.source_row - 1, frame.columns.get_loc(key)]
        elif self.kind == "no_registered":
            if self.column in frame.columns and len(frame) == len(self.value):
                frame[self.column] = list(self.value)
        elif self.column in frame.columns and self.row <= len(frame):
            frame.iat[self.row - 1, frame.columns.get_loc(self.column)] = self.value

    def located_by(self, issues) -> bool:
        """True when some issue points at this corruption: its file and column, and its row
        (cell-level) or the text it must mention."""
        for issue in issues:
            if self.kind == "empty_table" and f"{self.table}." in str(issue):
                return True  # an empty table shows in the rows that refer to it (or names it)
            if Path(issue.file).stem != self.table:
                continue
            if self.kind == "drop_table":
                return True
            if self.column not in _split(issue.column):
                continue
            if self.cell_level and issue.row not in (self.rows or (self.row,)):
                continue
            if self.mention is not None and self.mention not in str(issue):
                continue
            return True
        return False

    def __str__(self) -> str:
        where = f"{self.table}.csv"
        if self.row is not None:
            where += f" row {self.row}"
        if self.column is not None:
            where += f" column {self.column!r}"
        extra = f" := {self.value!r}" if self.value is not None else ""
        if self.source_row is not None:
            extra = f" := key of row {self.source_row}"
        return f"{self.kind}: {where}{extra}"


def _cols(kinds: tuple[str, ...]) -> list[tuple[str, str]]:
    """(table, column) of every column of these kinds in the tiny tables."""
    return [(t, c.name) for t, spec in SPECS.items() for c in spec.columns
            if t in BASE and c.kind in kinds and c.name in BASE[t].columns]


def _fmt_float(x: float) -> str:
    return repr(float(x))


def _row(table: str) -> st.SearchStrategy[int]:
    return st.integers(1, ROWS[table])


_ID_ALPHABET = string.ascii_uppercase + string.digits + "_-"
# fresh ids never used by the tiny tables (none of its ids starts with X)
fresh_ids = st.text(_ID_ALPHABET, min_size=0, max_size=5).map(lambda s: "X" + s)

BAD_TEXT = ("abc", "1.2.3", "", "nan", "inf", "1e400", "-inf", "NaN", "1,5", " ", "two", "None", "--1")
BAD_BOOL_TEXT = ("abc", "1.2.3", "nan", "inf", "1e400", "2", "-1", "yess", "truee", "None", "0.5")
BAD_CHOICES = ("roads", "Industry", "INFRASTRUCTURE", "education", "health", "*", "infra structure",
               "city", "village", "Province", "county-level", "none")


@st.composite
def bad_text(draw) -> Corruption:
    """A cell that is not of its column's type: text in a number, an empty required cell...
    (An empty boolean cell is left out: it reads as false, see test_known_bug_* .)"""
    candidates = _cols(("int", "float", "bool", "str", "list"))
    candidates = [(t, c) for t, c in candidates
                  if not (SPECS[t].column(c).kind == "str" and SPECS[t].column(c).allow_empty)
                  and not (t == "packages" and c == "requires")]
    table, column = draw(st.sampled_from(candidates))
    col = SPECS[table].column(column)
    if col.kind in ("int", "float"):
        values = tuple(v for v in BAD_TEXT if not (col.allow_empty and v.strip() == ""))
    elif col.kind == "bool":
        values = BAD_BOOL_TEXT
    else:  # str (not allowed empty) or list
        values = ("", " ", ";") if col.kind == "list" else ("", " ")
    return Corruption("bad_text", table, column, draw(_row(table)), draw(st.sampled_from(values)))


@st.composite
def negative(draw) -> Corruption:
    """A negative number (or 0 for household size) where >= 0 (>= 1) is required."""
    candidates = [(t, c) for t, c in _cols(("int", "float")) if SPECS[t].column(c).minimum in (0, 1)]
    table, column = draw(st.sampled_from(candidates))
    col = SPECS[table].column(column)
    if col.kind == "int":
        value = str(draw(st.integers(-10**9, int(col.minimum) - 1)))
    else:
        value = _fmt_float(draw(st.floats(-1e9, -1e-6)))
    return Corruption("negative", table, column, draw(_row(table)), value)


@st.composite
def out_of_range(draw) -> Corruption:
    """A probability outside [0, 1] (or a latitude / longitude outside the globe)."""
    candidates = [(t, c) for t, c in _cols(("float",)) if SPECS[t].column(c).maximum is not None]
    probabilities = [(t, c) for t, c in candidates if SPECS[t].column(c).maximum == 1]
    table, column = draw(st.sampled_from(probabilities) | st.sampled_from(candidates))
    col = SPECS[table].column(column)
    above = max(abs(col.maximum) * (1 + 1e-9), col.maximum + 1e-6)
    value = draw(st.floats(above, max(1e9, 10 * above)) | st.floats(-1e9, col.minimum - 1e-6)
                 | st.sampled_from([col.maximum + 0.3, col.minimum - 0.01]))
    return Corruption("out_of_range", table, column, draw(_row(table)), _fmt_float(value))


@st.composite
def non_integer(draw) -> Corruption:
    """A fractional number where an integer is expected (size, lag, duration, year...)."""
    table, column = draw(st.sampled_from(_cols(("int",))))
    base = draw(st.integers(2010, 2020) if column == "year" else st.integers(1, 100))
    frac = draw(st.sampled_from([0.5, 0.25, 0.1, 0.99, 0.01]) | st.floats(0.001, 0.999))
    return Corruption("non_integer", table, column, draw(_row(table)), _fmt_float(base + frac))


FK_COLUMNS = (("households", "village_id"), ("projects", "village_id"), ("villages", "township_id"),
              ("packages", "household_id"), ("regions", "parent_id"), ("personnel", "region_id"),
              ("funds", "regions"))


@st.composite
def unknown_fk(draw) -> Corruption:
    """An id that exists nowhere in a foreign-key column (village_id, township_id, ...)."""
    table, column = draw(st.sampled_from(FK_COLUMNS))
    row = draw(_row(table))
    value = draw(fresh_ids)
    if column == "regions" and draw(st.booleans()):
        value = draw(st.sampled_from(["C1", "C2", "P", "*"])) + ";" + value
    return Corruption("unknown_fk", table, column, row, value)


@st.composite
def wrong_level(draw) -> Corruption:
    """An existing id of the wrong kind: a village in a county, personnel of the province,
    a village id as a region..."""
    table, column = draw(st.sampled_from([("villages", "township_id"), ("personnel", "region_id"),
                                          ("households", "village_id"), ("packages", "household_id")]))
    choices = {("villages", "township_id"): ["P", "C1", "C2", "V1"],
               ("personnel", "region_id"): ["P", "V1", "V3", "H1"],
               ("households", "village_id"): ["T1", "C1", "P", "H2"],
               ("packages", "household_id"): ["V1", "T1", "road"]}[(table, column)]
    return Corruption("wrong_level", table, column, draw(_row(table)), draw(st.sampled_from(choices)))


@st.composite
def duplicate_key(draw) -> Corruption:
    """A row given the key of another row of the same table."""
    table = draw(st.sampled_from(sorted(ROWS)))
    row = draw(_row(table))
    source = draw(_row(table).filter(lambda r: r != row))
    later = max(row, source)
    return Corruption("duplicate_key", table, SPECS[table].key[0], row, source_row=source, rows=(later,))


@st.composite
def unknown_choice(draw) -> Corruption:
    """A category or level outside the allowed choices."""
    table, column = draw(st.sampled_from([("packages", "category"), ("projects", "category"),
                                          ("regions", "level"), ("funds", "categories")]))
    allowed = set(SPECS[table].column(column).choices or CATEGORIES)
    word = draw(st.sampled_from([w for w in BAD_CHOICES if w not in allowed and w != "*"]) | fresh_ids)
    if column == "categories" and draw(st.booleans()):
        word = draw(st.sampled_from(CATEGORIES)) + ";" + word
    return Corruption("unknown_choice", table, column, draw(_row(table)), word)


@st.composite
def drop_column(draw) -> Corruption:
    """A required column removed from one of the tiny tables (an optional table they lack,
    such as ``targets``, has no column to drop)."""
    table = draw(st.sampled_from(sorted(BASE)))
    column = draw(st.sampled_from([c.name for c in SPECS[table].columns if c.required]))
    return Corruption("drop_column", table, column)


@st.composite
def drop_table(draw) -> Corruption:
    """A required table file missing."""
    return Corruption("drop_table", draw(st.sampled_from(REQUIRED_TABLES)))


@st.composite
def empty_table(draw) -> Corruption:
    """A table the others depend on left with its header only."""
    return Corruption("empty_table", draw(st.sampled_from(["regions", "villages", "households"])))


@st.composite
def year_outside(draw) -> Corruption:
    """A fund or personnel year outside 2016..2018."""
    table = draw(st.sampled_from(["funds", "personnel"]))
    year = draw(st.integers(1900, YEARS[0] - 1) | st.integers(YEARS[1] + 1, 2200)
                | st.sampled_from([YEARS[0] - 1, YEARS[1] + 1, 0, 99999]))
    return Corruption("year_outside", table, "year", draw(_row(table)), str(year))


@st.composite
def requires_missing(draw) -> Corruption:
    """A package requiring a project its household's village does not have."""
    row = draw(_row("packages"))
    village = HOUSEHOLD_VILLAGE[BASE["packages"].iloc[row - 1]["household_id"]]
    own = VILLAGE_PROJECTS.get(village, [])
    missing = draw(st.sampled_from([p for p in ALL_PROJECTS if p not in own]) | fresh_ids)
    items = [missing] + draw(st.lists(st.sampled_from(own), max_size=1, unique=True) if own else st.just([]))
    return Corruption("requires_missing", "packages", "requires", row, ";".join(draw(st.permutations(items))))


@st.composite
def cycle(draw) -> Corruption:
    """A region whose parent is itself or one of its descendants."""
    region = draw(st.sampled_from(sorted(REGION_ROW)))
    below = [r for r in REGION_ROW if region in _ancestors(r)]  # itself and its descendants
    target = draw(st.sampled_from(sorted(below)))
    return Corruption("cycle", "regions", "parent_id", REGION_ROW[region], target, mention=region)


def _ancestors(region: str) -> list[str]:
    chain = [region]
    while REGION_PARENT.get(chain[-1]):
        chain.append(REGION_PARENT[chain[-1]])
    return chain


@st.composite
def bad_order(draw) -> Corruption:
    """A region whose parent is not above it (a county under a county, a township under a
    township), without a cycle and with every township still under a county."""
    region, parent = draw(st.sampled_from([("C1", "C2"), ("C2", "C1"), ("T1", "T2"), ("T2", "T1")]))
    return Corruption("bad_order", "regions", "parent_id", REGION_ROW[region], parent)


@st.composite
def township_fund(draw) -> Corruption:
    """A fund given to a township (funds are spent per county)."""
    row = draw(_row("funds"))
    town = draw(st.sampled_from(["T1", "T2"]))
    value = draw(st.sampled_from([town, f"C1;{town}", f"{town};C2", f"*;{town}", f"P;{town}"]))
    return Corruption("township_fund", "funds", "regions", row, value)


@st.composite
def mixed_carry_over(draw) -> Corruption:
    """One row of a fund source with a carry_over different from the source's other rows."""
    source = draw(st.sampled_from(sorted(s for s, rows in FUND_SOURCE_ROWS.items() if len(rows) > 1)))
    row = draw(st.sampled_from(FUND_SOURCE_ROWS[source]))
    current = BASE["funds"].iloc[row - 1]["carry_over"] == "true"
    value = draw(st.sampled_from(["false", "no", "0", "F", "n"] if current else ["true", "yes", "1", "T", "y"]))
    rows = tuple(FUND_SOURCE_ROWS[source])
    return Corruption("mixed_carry_over", "funds", "carry_over", row, value, rows=rows)


@st.composite
def no_registered(draw) -> Corruption:
    """Every household marked not registered poor: nothing to plan."""
    values = draw(st.lists(st.sampled_from(["false", "False", "0", "no", "n", "f", "FALSE"]),
                           min_size=ROWS["households"], max_size=ROWS["households"]))
    return Corruption("no_registered", "households", "registered_poor", value=tuple(values))


SINGLE = {
    "bad_text": bad_text(), "negative": negative(), "out_of_range": out_of_range(),
    "non_integer": non_integer(), "unknown_fk": unknown_fk(), "wrong_level": wrong_level(),
    "duplicate_key": duplicate_key(), "unknown_choice": unknown_choice(), "drop_column": drop_column(),
    "drop_table": drop_table(), "empty_table": empty_table(), "year_outside": year_outside(),
    "requires_missing": requires_missing(), "cycle": cycle(), "bad_order": bad_order(),
    "township_fund": township_fund(), "mixed_carry_over": mixed_carry_over(), "no_registered": no_registered(),
}

corruption = st.one_of(*SINGLE.values())


@st.composite
def corruptions(draw, max_size: int = 3) -> list[Corruption]:
    """1..max_size corruptions that write disjoint (table, column) pairs."""
    chosen: list[Corruption] = [draw(corruption)]
    extra = draw(st.integers(0, max_size - 1))
    for _ in range(extra):
        taken = set().union(*(c.targets for c in chosen))
        tables_gone = {c.table for c in chosen if c.kind in ("drop_table", "empty_table")}
        nxt = draw(corruption)
        if nxt.targets & taken or nxt.table in tables_gone or \
                any(t == nxt.table for t, col in taken if col == "*"):
            continue  # keep the combination simple to reason about; hypothesis shrinks it away
        chosen.append(nxt)
    return chosen


def corrupted(chosen: list[Corruption]) -> dict[str, pd.DataFrame]:
    """The tiny text tables with ``chosen`` applied in order."""
    tables = {name: frame.copy() for name, frame in BASE.items()}
    for c in chosen:
        c.apply(tables)
    return tables


@st.composite
def corruption_cases(draw, max_size: int = 3, formats=("csv", "csv", "parquet")):
    """(corruptions, file format): 1..max_size corruptions of the tiny tables, written as CSV or
    Parquet; build the tables with :func:`corrupted`."""
    return draw(corruptions(max_size)), draw(st.sampled_from(formats))


# --------------------------------------------------------------------------------------------
# valid random perturbations
# --------------------------------------------------------------------------------------------

def _money(high: float) -> st.SearchStrategy[float]:
    """Amounts in whole fen (0.01): a cost far below a fen is a known bug (test_known_bug_*)."""
    return st.integers(0, int(high)).map(float) | st.integers(0, int(high * 100)).map(lambda c: c / 100) \
        | st.sampled_from([0.0, 0.01, high])


rarely = st.sampled_from([False, False, False, True])
probability = st.sampled_from([0.0, 1.0]) | st.integers(0, 100).map(lambda i: i / 100) | st.floats(0, 1)


@st.composite
def valid_instance(draw):
    """(text tables, policy, solver) : the tiny tables with random values within their ranges."""
    t = tiny_tables()
    hh, pk, pj, fu, pe, rg = (t[n] for n in ("households", "packages", "projects", "funds", "personnel",
                                              "regions"))
    n = len(hh)
    hh["size"] = draw(st.lists(st.integers(1, 9), min_size=n, max_size=n))
    hh["baseline_exit_probability"] = draw(st.lists(probability, min_size=n, max_size=n))
    poor = draw(st.lists(st.booleans(), min_size=n, max_size=n).filter(any))
    hh["registered_poor"] = poor
    n = len(pk)
    pk["cost"] = draw(st.lists(_money(20000), min_size=n, max_size=n))
    pk["personnel_hours"] = draw(st.lists(_money(60), min_size=n, max_size=n))
    pk["exit_probability"] = draw(st.lists(probability, min_size=n, max_size=n))
    pk["lag_years"] = draw(st.lists(st.integers(0, 4), min_size=n, max_size=n))
    n = len(pj)
    pj["cost"] = draw(st.lists(_money(15000), min_size=n, max_size=n))
    pj["duration_years"] = draw(st.lists(st.integers(0, 4), min_size=n, max_size=n))
    pj["mandatory"] = draw(st.lists(rarely, min_size=n, max_size=n))  # mostly solvable: plans to check
    n = len(fu)
    fu["amount"] = draw(st.lists(_money(20000), min_size=n, max_size=n))
    carry = {s: draw(st.booleans()) for s in sorted(fu["source_id"].unique())}
    fu["carry_over"] = fu["source_id"].map(carry).astype(bool)
    pe["hours"] = draw(st.lists(_money(200), min_size=len(pe), max_size=len(pe)))
    counties = (rg["level"] == "county").to_numpy()
    rg.loc[counties, "rural_population"] = draw(st.lists(st.integers(1, 300), min_size=int(counties.sum()),
                                                         max_size=int(counties.sum())))
    rg.loc[counties, "western"] = draw(st.lists(st.booleans(), min_size=int(counties.sum()),
                                                max_size=int(counties.sum())))
    policy: dict = {"deadline": draw(st.sampled_from(["soft", "soft", "soft", "hard"])),
                    "county_exit_threshold": {"default": draw(st.sampled_from([0.0, 0.02, 0.1, 0.3, 1.0])),
                                              "western": draw(st.sampled_from([0.0, 0.03, 0.2, 1.0]))}}
    if draw(st.booleans()):
        cat = draw(st.sampled_from(CATEGORIES))
        low = draw(st.sampled_from([0.0, 0.1, 0.3]))
        policy["min_category_share"] = {cat: low}
        policy["max_category_share"] = {draw(st.sampled_from(CATEGORIES)): draw(st.sampled_from([0.5, 0.8, 1.0]))}
        if policy["max_category_share"].get(cat, 1.0) < low:
            del policy["max_category_share"]
    # a time limit keeps a hard random instance from holding the suite (decompose may fall back to the whole MIP)
    solver = {"method": draw(st.sampled_from(["exact", "lp-fix", "decompose"])), "mip_gap": 0.0, "time_limit": 20}
    return text_tables(t), policy, solver
