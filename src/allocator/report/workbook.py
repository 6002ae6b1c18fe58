"""The plan as one Excel workbook: summary, path, counties, counties near their threshold (near
misses), villages, households, projects, funding, budget use and difficulties, one sheet each.

Names stand beside ids (counties and villages from the input tables), columns carry human
titles (:data:`TITLES`, the one place the workbook's words live, in English or Chinese through
the catalogue: :mod:`allocator.report.i18n`), status and category words are in the same
language, numbers their formats (yuan ``#,##0``, shares ``0.0%``,
probabilities ``0.000``), every sheet a bold, frozen header row with a filter. The workbook is
written in openpyxl's write-only mode, row by row, so a province's 600,000 households keep
memory bounded by the plan's own tables.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Alignment, Font
from openpyxl.utils import get_column_letter

from allocator.inputs.names import names as _names
from allocator.messages import sentence as said
from allocator.plan.context import PlanContext, load_plan_context
from allocator.report.i18n import language, tr
from allocator.report.near import NEAR_HOUSEHOLDS, near_misses
from allocator.report.titles import COUNT, FORMATS, HOUSEHOLDS, MONEY, SHARE, TITLES, status_words, title

SUMMARY_FORMATS = {"expected_exits": HOUSEHOLDS, "sustained_exits": HOUSEHOLDS, "sustained_share": SHARE,
                   "total_shortfall": HOUSEHOLDS, "total_cost": MONEY, "money_available": MONEY, "gap": "0.00%",
                   "bound": "#,##0.00", "households_with_package": COUNT, "projects_built": COUNT,
                   "solve_seconds": "0.00"}
SHEETS = ("summary", "path", "counties", "near_misses", "villages", "households", "projects", "funding",
          "budget_use", "difficulties")
WIDTH_SAMPLE = 500  # rows looked at to size a column
BLOCK_ROWS = 20_000  # rows converted to Python values at a time
MIN_WIDTH, MAX_WIDTH = 8, 60


def _village_frame(context: PlanContext) -> pd.DataFrame:
    """The villages table, canonical or raw, as the scenario gave it."""
    tables = context.tables
    return tables.get("villages", tables.get("villages_raw"))


def path_sheet(context: PlanContext) -> pd.DataFrame:
    """``path.csv`` with region names and the share still poor."""
    path = context.plan.path.copy()
    regions = _names(context.tables.get("regions"), "region_id")
    path["region_name"] = path["region_id"].map(regions).where(path["region_id"] != "", title("word.whole"))
    registered = path["registered_poor"].astype(float)
    path["still_poor_share"] = path["expected_poor"] / registered.where(registered > 0)
    return path[["year", "region_id", "region_name", "registered_poor", "expected_poor", "still_poor_share",
                 "target", "shortfall"]]


def counties_sheet(context: PlanContext) -> pd.DataFrame:
    """``counties.csv`` with county names."""
    counties = context.plan.counties.copy()
    counties.insert(1, "county_name", counties["county_id"].map(_names(context.tables.get("regions"), "region_id")))
    return counties


def near_misses_sheet(context: PlanContext, within: float = NEAR_HOUSEHOLDS) -> pd.DataFrame:
    """The counties within ``within`` households of their threshold at the deadline
    (:func:`allocator.report.near.near_misses`), with their names."""
    near = near_misses(context.plan, context.problem, within)
    near.insert(1, "county_name", near["county_id"].map(_names(context.tables.get("regions"), "region_id")))
    return near


def villages_sheet(context: PlanContext) -> pd.DataFrame:
    """Per village of the problem: its name, township and county (with names), poor households,
    households with a package, projects built and the money spent there."""
    p, plan = context.problem, context.plan
    regions = _names(context.tables.get("regions"), "region_id")
    frame = pd.DataFrame({"village_id": p.village_ids.astype(str),
                          "township_id": p.township_ids[p.village_township].astype(str),
                          "county_id": p.county_ids[p.village_county].astype(str)})
    villages = _village_frame(context)
    frame.insert(1, "village_name", frame["village_id"].map(_names(villages, "village_id")))
    frame.insert(3, "township_name", frame["township_id"].map(regions))
    frame.insert(5, "county_name", frame["county_id"].map(regions))
    if villages is not None and "poor_village" in villages.columns:
        frame["poor_village"] = frame["village_id"].map(villages.drop_duplicates("village_id")
                                                        .set_index("village_id")["poor_village"]).fillna(False)
    chosen = plan.households[plan.households["start_year"].notna()]
    spend = pd.concat([chosen[["village_id", "cost"]], plan.projects[["village_id", "cost"]]])
    frame["poor_households"] = frame["village_id"].map(plan.households["village_id"].value_counts()).fillna(0)
    frame["households_planned"] = frame["village_id"].map(chosen["village_id"].value_counts()).fillna(0)
    frame["projects_built"] = frame["village_id"].map(plan.projects["village_id"].value_counts()).fillna(0)
    frame["spend"] = frame["village_id"].map(spend.groupby("village_id")["cost"].sum()).fillna(0.0)
    for column in ("poor_households", "households_planned", "projects_built"):
        frame[column] = frame[column].astype(np.int64)
    return frame


def households_sheet(context: PlanContext) -> pd.DataFrame:
    """``households.csv`` with village and county names and the chosen package's measures."""
    households = context.plan.households.copy()
    regions = _names(context.tables.get("regions"), "region_id")
    households.insert(2, "village_name", households["village_id"].map(_names(_village_frame(context), "village_id")))
    households.insert(4, "county_name", households["county_id"].map(regions))
    packages = context.tables.get("packages")
    if packages is not None and "measures" in packages.columns:
        key = pd.MultiIndex.from_frame(packages[["household_id", "package_id"]].astype(str))
        measures = pd.Series(packages["measures"].astype(str).to_numpy(), index=key)
        measures = measures[~measures.index.duplicated()]
        wanted = pd.MultiIndex.from_arrays([households["household_id"].astype(str),
                                            households["package_id"].fillna("").astype(str)])
        households.insert(6, "measures", measures.reindex(wanted).to_numpy())
    if households["responsible_cadre_id"].isna().all():
        households = households.drop(columns="responsible_cadre_id")
    return households


def projects_sheet(context: PlanContext) -> pd.DataFrame:
    """``projects.csv`` with village and county names."""
    p = context.problem
    projects = context.plan.projects.copy()
    county = pd.Series(p.county_ids[p.village_county].astype(str), index=p.village_ids.astype(str))
    projects.insert(1, "village_name", projects["village_id"].map(_names(_village_frame(context), "village_id")))
    projects.insert(2, "county_id", projects["village_id"].map(county))
    projects.insert(3, "county_name", projects["county_id"].map(_names(context.tables.get("regions"), "region_id")))
    return projects


def funding_sheet(context: PlanContext) -> pd.DataFrame:
    """``funding.csv`` with county names."""
    funding = context.plan.funding.copy()
    funding.insert(2, "county_name", funding["county_id"].map(_names(context.tables.get("regions"), "region_id")))
    return funding


def budget_use_sheet(context: PlanContext) -> pd.DataFrame:
    """Per source and year (summary.json's ``budget_use``): amount, available with carry-over,
    spent, the share spent, carried to the next year and recalled."""
    columns = ["source_id", "year", "amount", "available", "spent", "spent_share", "carried", "recalled",
               "carry_over"]
    rows = pd.DataFrame(context.plan.summary.get("budget_use") or [])
    if rows.empty:
        return pd.DataFrame(columns=columns)
    rows["spent_share"] = rows["spent"] / rows["available"].where(rows["available"] > 0)
    return rows[columns]


def difficulties_sheet(context: PlanContext) -> pd.DataFrame:
    """What ``allocator explain`` found (difficulties.json), one sentence a row; without it, a
    row saying to run it."""
    regions = _names(context.tables.get("regions"), "region_id")
    path = context.folder / "difficulties.json"
    rows: list[tuple[str, str, str]] = []
    if not path.is_file():
        rows.append((title("word.overall"), "", title("word.run_explain")))
    else:
        found = json.loads(path.read_text())
        if found.get("sentence"):
            rows.append((title("word.overall"), "", said(found, tr)))
        if found.get("conflict"):
            rows.append((title("word.conflict"), "", said(found["conflict"], tr)))
        for county in found.get("counties_off_schedule", []):
            rows.append((title("word.county"), county["county_id"], said(county, tr)))
            rows += [(title("word.reason"), county["county_id"], said(reason, tr))
                     for reason in county.get("reasons", [])]
        if not found.get("counties_off_schedule") and not found.get("sentence"):
            rows.append((title("word.overall"), "", title("word.on_schedule")))
        for behind in found.get("years_behind_target", []):
            rows.append((title("word.behind"), "", said(behind, tr) or json.dumps(behind)))
        take = found.get("what_it_would_take")
        if take:
            rows.append((title("word.take"), "", said(take, tr)))
        for county in (found.get("earliest_deadlines") or {}).get("counties", []):
            year = county.get("earliest_year")
            rows.append((title("word.earliest"), county["county_id"],
                         title("word.not_by_deadline") if year is None else str(int(year))))
    frame = pd.DataFrame(rows, columns=["topic", "county_id", "sentence"])
    frame.insert(2, "county_name", frame["county_id"].map(regions).astype(object).fillna(""))
    return frame


def summary_rows(context: PlanContext) -> list[tuple[str, object]]:
    """The headline of the plan as (key, value) pairs, in the order shown."""
    s = context.plan.summary
    manifest = s.get("manifest") or {}
    money = sum(row.get("amount", 0.0) for row in s.get("budget_use") or [])
    rows = [("scenario", s.get("scenario")), ("years", f"{s.get('start_year')}–{s.get('deadline_year')}"),
            ("status", status_words(s)[0] if s.get("status") else None), ("stopped_by", s.get("stopped_by")),
            ("message", s.get("message")),
            ("method", s.get("method")), ("backend", s.get("backend")),
            ("expected_exits", s.get("expected_exits")), ("sustained_exits", s.get("sustained_exits")),
            ("sustained_share", s.get("sustained_share")),
            ("counties_on_schedule", s.get("counties_on_schedule")), ("counties_total", s.get("counties_total")),
            ("total_shortfall", s.get("total_shortfall")), ("total_cost", s.get("total_cost")),
            ("money_available", money), ("households_with_package", s.get("households_with_package")),
            ("projects_built", s.get("projects_built")), ("bound", s.get("bound")), ("gap", s.get("gap")),
            ("solve_seconds", s.get("solve_seconds")), ("scenario_file", manifest.get("scenario_file")),
            ("allocator_version", manifest.get("allocator_version")), ("plan_fingerprint", s.get("plan_fingerprint"))]
    return [(key, value) for key, value in rows if value not in (None, "")]


def _cell_value(value):
    """A cell's value: Python scalars, missing (NaN, NA, None) as an empty cell."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, np.generic):
        return _cell_value(value.item())
    return value


def _width(title: str, values: Iterable) -> float:
    longest = max([len(title) * 1.1] + [len(f"{v:,.3f}" if isinstance(v, float) else str(v))
                                         for v in values if v is not None])
    return float(min(MAX_WIDTH, max(MIN_WIDTH, longest + 2)))


def _column(frame: pd.DataFrame, name: str, start: int, stop: int) -> list:
    return [_cell_value(v) for v in frame[name].iloc[start:stop].astype(object).to_numpy()]


WORD_COLUMNS = ("category",)  # columns whose values are words of the catalogue (industry, housing, ...)


def _sheet(book: Workbook, key: str, frame: pd.DataFrame) -> None:
    """One sheet of ``frame``: bold frozen header of titles, a filter, sized columns, number
    formats, words in the language in use; rows streamed (write-only), converted a block at a time."""
    frame = frame.assign(**{name: frame[name].map(lambda v: tr(v) if isinstance(v, str) else v)
                            for name in WORD_COLUMNS if name in frame.columns})
    sheet = book.create_sheet(title(f"sheet.{key}"))
    names = list(frame.columns)
    for i, name in enumerate(names, start=1):
        sheet.column_dimensions[get_column_letter(i)].width = _width(title(name),
                                                                     _column(frame, name, 0, WIDTH_SAMPLE))
    sheet.freeze_panes = "A2"
    sheet.auto_filter.ref = f"A1:{get_column_letter(max(1, len(names)))}{len(frame) + 1}"
    bold, wrap = Font(bold=True), Alignment(wrap_text=True, vertical="top")
    header = []
    for name in names:
        cell = WriteOnlyCell(sheet, value=title(name))
        cell.font, cell.alignment = bold, wrap
        header.append(cell)
    sheet.append(header)
    styled = {}  # one reusable cell per formatted column: a row is written out when appended
    for i, name in enumerate(names):
        if name in FORMATS:
            styled[i] = WriteOnlyCell(sheet)
            styled[i].number_format = FORMATS[name]
    for start in range(0, len(frame), BLOCK_ROWS):
        columns = [_column(frame, name, start, start + BLOCK_ROWS) for name in names]
        for values in zip(*columns, strict=True):
            row = list(values)
            for i, cell in styled.items():
                if row[i] is not None:
                    cell.value = row[i]
                    row[i] = cell
            sheet.append(row)


def _summary_sheet(book: Workbook, context: PlanContext) -> None:
    sheet = book.create_sheet(title("sheet.summary"))
    rows = summary_rows(context)
    sheet.column_dimensions["A"].width = _width("", [title(f"summary.{k}") for k, _ in rows])
    sheet.column_dimensions["B"].width = _width("", [v for _, v in rows])
    sheet.freeze_panes = "A2"
    bold = Font(bold=True)
    header = [WriteOnlyCell(sheet, value=title("item")), WriteOnlyCell(sheet, value=title("value"))]
    for cell in header:
        cell.font = bold
    sheet.append(header)
    for key, value in rows:
        cell = WriteOnlyCell(sheet, value=_cell_value(value))
        if key in SUMMARY_FORMATS:
            cell.number_format = SUMMARY_FORMATS[key]
        sheet.append([title(f"summary.{key}"), cell])


SHEET_FRAMES = {"path": path_sheet, "counties": counties_sheet, "near_misses": near_misses_sheet,
                "villages": villages_sheet,
                "households": households_sheet, "projects": projects_sheet, "funding": funding_sheet,
                "budget_use": budget_use_sheet, "difficulties": difficulties_sheet}


def plan_workbook(plan_dir: str | Path, *, context: PlanContext | None = None, lang: str = "en",
                  near_households: float = NEAR_HOUSEHOLDS) -> Workbook:
    """The plan folder as a write-only openpyxl workbook in ``lang`` (``en`` or ``zh``;
    :class:`ValueError` for another), its near misses the counties within ``near_households``
    households of their threshold, to be saved once (:func:`write_workbook` does). Raises
    :class:`allocator.errors.InputError` when the folder is not a plan or its scenario changed
    since it was made."""
    with language(lang):
        context = context or load_plan_context(plan_dir)
        book = Workbook(write_only=True)
        _summary_sheet(book, context)
        frames = {**SHEET_FRAMES, "near_misses": lambda given: near_misses_sheet(given, near_households)}
        for key in SHEETS[1:]:
            _sheet(book, key, frames[key](context))
    return book


def write_workbook(plan_dir: str | Path, path: str | Path, *, context: PlanContext | None = None,
                   lang: str = "en", near_households: float = NEAR_HOUSEHOLDS) -> Path:
    """Write the plan's workbook, in ``lang``, to ``path`` (whole, then moved into place: a
    reader never sees half a file). Returns the path."""
    path = Path(path)
    book = plan_workbook(plan_dir, context=context, lang=lang, near_households=near_households)
    partial = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        book.save(partial)
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
    return path


__all__ = ["FORMATS", "SHEETS", "TITLES", "budget_use_sheet", "counties_sheet", "difficulties_sheet",
           "funding_sheet", "households_sheet", "near_misses_sheet", "path_sheet", "plan_workbook", "projects_sheet",
           "summary_rows", "villages_sheet", "write_workbook"]
