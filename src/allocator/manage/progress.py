"""Progress records of a running plan: what was delivered, who exited or fell back, what was paid.

A progress folder (CSV or Parquet, one file per table) is read with the column specs and cell
checks of :mod:`allocator.inputs.tables` and checked against the plan and its input tables in the
error grammar of :mod:`allocator.errors`:

- ``record``: one row, ``year`` — the record is taken during that year: years before it are
  complete, the year itself is partly delivered; ``plan_fingerprint`` and ``input_fingerprint``
  (optional) name the plan it was drawn from and that plan's inputs, and are checked;
- ``households``: what happened to each household of the plan, plus newly identified poor
  households (``new``) and edge households being watched (neither in the plan nor new);
- ``projects``: village projects started (and finished), with their cost so far;
- ``disbursed``: money paid out per source, county, category and year.

:func:`household_states` turns a record into one state per household (settled, open, exited,
returned, new) and its expected exit now: what :mod:`allocator.manage.monitor` reports and
:mod:`allocator.manage.replan` plans the remaining years with.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from allocator.errors import InputError, Issue, IssueCollector
from allocator.inputs.checks import county_of_regions, report_rows
from allocator.inputs.provenance import check_record_plan, output_folder
from allocator.inputs.raw import SHOCKS
from allocator.inputs.tables import CATEGORIES, Column, TableSpec, read_specs, write_table
from allocator.plan.context import PlanContext, load_plan_context

YEAR = dict(minimum=1900, maximum=2200)
PROGRESS_SPECS: dict[str, TableSpec] = {
    "record": TableSpec("record", (
        Column("year", "int", **YEAR),
        Column("note", "str", required=False, allow_empty=True, default=""),
        Column("plan_fingerprint", "str", required=False, allow_empty=True, default=""),
        Column("input_fingerprint", "str", required=False, allow_empty=True, default=""),
    ), key=("year",)),
    "households": TableSpec("households", (
        Column("household_id", "str"),
        Column("village_id", "str", required=False, allow_empty=True, default=""),
        Column("new", "bool", required=False, default=False),
        Column("delivered", "bool", required=False, default=False),
        Column("package_id", "str", required=False, allow_empty=True, default=""),
        Column("start_year", "float", required=False, allow_empty=True, default=np.nan, **YEAR),
        Column("observed_income", "float", required=False, allow_empty=True, default=np.nan, minimum=0),
        Column("guarantees", "str", required=False, allow_empty=True, choices=("met", "failing"), default=""),
        Column("exited", "bool", required=False, default=False),
        Column("exit_year", "float", required=False, allow_empty=True, default=np.nan, **YEAR),
        Column("returned", "bool", required=False, default=False),
        Column("shock", "str", required=False, allow_empty=True, choices=SHOCKS, default=""),
    ), key=("household_id",)),
    "projects": TableSpec("projects", (
        Column("village_id", "str"),
        Column("project_id", "str"),
        Column("started", "bool"),
        Column("start_year", "float", required=False, allow_empty=True, default=np.nan, **YEAR),
        Column("finished", "bool", required=False, default=False),
        Column("cost_so_far", "float", required=False, allow_empty=True, default=np.nan, minimum=0),
    ), key=("village_id", "project_id")),
    "disbursed": TableSpec("disbursed", (
        Column("source_id", "str"),
        Column("county_id", "str"),
        Column("category", "str", choices=CATEGORIES),
        Column("year", "int", **YEAR),
        Column("amount", "float", minimum=0, maximum=1e15),
    ), key=("source_id", "county_id", "category", "year")),
}
OPTIONAL = ("projects",)  # the others are required

# DOMAIN.md §7.5: return to poverty 2 % in the first year after exit, 0.5 % in the second,
# 0.2 % after [D]; an illness shock cuts income by 30 % [A], taken here as a 30 % cut of the
# household's chance to be out of poverty at the deadline.
RETURN_RATES = (0.02, 0.005, 0.002)
SHOCK_EXIT_FACTOR = 0.7
EDGE_FACTOR = 1.5  # monitoring line: 1.5 x the poverty line [S]


@dataclass
class Progress:
    """One progress record: its year, its tables (typed as :data:`PROGRESS_SPECS`) and the
    fingerprints of the plan it was drawn from and of that plan's inputs ("" when unknown)."""

    year: int
    households: pd.DataFrame
    projects: pd.DataFrame
    disbursed: pd.DataFrame
    note: str = ""
    plan_fingerprint: str = ""
    input_fingerprint: str = ""

    def write(self, folder: str | Path) -> Path:
        """Write the record as CSV tables into ``folder`` (created if needed; refused when it
        holds anything allocator did not write, see :mod:`allocator.inputs.provenance`)."""
        folder = Path(folder)
        with output_folder(folder, "progress record"):
            write_table(pd.DataFrame({"year": [self.year], "note": [self.note],
                                      "plan_fingerprint": [self.plan_fingerprint],
                                      "input_fingerprint": [self.input_fingerprint]}), folder / "record.csv")
            for name in ("households", "projects", "disbursed"):
                frame = getattr(self, name).copy()
                for column in ("start_year", "exit_year"):  # whole years, empty where unknown
                    if column in frame:
                        frame[column] = frame[column].astype(float).round().astype("Int64")
                write_table(frame, folder / f"{name}.csv")
        return folder


def typed(progress: Progress) -> Progress:
    """The record with every column of :data:`PROGRESS_SPECS` present (optional ones at their
    default) and of its kind, for records made in memory rather than read from a folder."""
    tables = {}
    for name in ("households", "projects", "disbursed"):
        frame = getattr(progress, name).copy()
        for col in PROGRESS_SPECS[name].columns:
            if col.name not in frame:
                frame[col.name] = col.default
            fill = {"bool": False, "str": "", "float": np.nan}.get(col.kind)
            values = frame[col.name] if fill is None else frame[col.name].fillna(fill)
            frame[col.name] = values.astype({"bool": bool, "float": float, "int": np.int64}.get(col.kind, str))
        tables[name] = frame.reset_index(drop=True)
    return Progress(int(progress.year), note=progress.note, plan_fingerprint=progress.plan_fingerprint,
                    input_fingerprint=progress.input_fingerprint, **tables)


def read_progress(folder: str | Path) -> Progress:
    """Read and type a progress folder; every cell problem is raised together in one InputError."""
    folder = Path(folder)
    issues = IssueCollector()
    if not folder.is_dir():
        raise InputError([Issue(str(folder), "progress folder does not exist",
                                expected="a folder with record, households and disbursed tables")])
    frames = read_specs(folder, PROGRESS_SPECS, set(OPTIONAL), issues)
    issues.raise_if_any()
    record = frames["record"]
    if len(record) != 1:
        raise InputError([Issue(record.attrs.get("file", "record.csv"), "the record must have exactly one row",
                                expected="one row: the year the record was taken", found=f"{len(record)} rows")])
    first = record.iloc[0]
    return Progress(int(first["year"]), frames["households"], frames["projects"], frames["disbursed"],
                    str(first["note"]), str(first["plan_fingerprint"]), str(first["input_fingerprint"]))


def record_fingerprints(folder: str | Path) -> tuple[str, str]:
    """The plan and input fingerprints a progress folder's record table names ("" where it names
    none or cannot be read: the full read reports that)."""
    issues = IssueCollector()
    record = read_specs(Path(folder), {"record": PROGRESS_SPECS["record"]}, set(), issues).get("record")
    if record is None or len(record) != 1:
        return "", ""
    return str(record["plan_fingerprint"].iloc[0]), str(record["input_fingerprint"].iloc[0])


def _bad_year(values: pd.Series, first: int, last: int) -> np.ndarray:
    """Cells that are given but are not an integer year in first..last."""
    v = values.to_numpy(dtype=float)
    given = ~np.isnan(v)
    return given & ((np.abs(v - np.round(v)) > 1e-9) | (v < first) | (v > last))


def check_progress(progress: Progress, plan, tables: dict[str, pd.DataFrame], *, start_year: int, deadline_year: int,
                   county_ids: np.ndarray) -> None:
    """Check a record against the plan and its input tables; raise one InputError listing every problem.

    Households must be in the plan, or be ``new`` (newly identified: in the data's households
    table, not delivered) or watched edge households of the data; a delivered package must be one of the
    household's packages; returns follow exits; projects, sources and counties must exist; every
    year lies between the plan's start and the record's year. ``plan`` is a :class:`allocator.plan.plan.Plan`."""
    plan_households = plan.households
    issues = IssueCollector()
    year = progress.year
    if not start_year <= year <= deadline_year:
        issues.add("record.csv", "record year outside the plan", row=1, column="year",
                   expected=f"a year in {start_year}..{deadline_year}", found=str(year))
    hh = progress.households
    ids = hh["household_id"]
    in_plan = ids.isin(plan_households["household_id"]).to_numpy()
    in_data = ids.isin(tables["households"]["household_id"]).to_numpy()
    new = hh["new"].to_numpy()
    report_rows(issues, "households.csv", hh, ~in_data, ids, "household_id", "unknown household",
                "a household of the data's households table")
    report_rows(issues, "households.csv", hh, new & hh["delivered"].to_numpy(), ids, "delivered",
                "a new household has no delivered package", "false: new households enter as demand")
    report_rows(issues, "households.csv", hh, ~in_plan & ~new & hh["delivered"].to_numpy(), ids, "delivered",
                "delivered to a household outside the plan", "a household of the plan (or new = true, not delivered)")
    data_village = ids.map(tables["households"].set_index("household_id")["village_id"])
    wrong_village = (hh["village_id"] != "").to_numpy() & in_data & (hh["village_id"] != data_village).to_numpy()
    report_rows(issues, "households.csv", hh, wrong_village, ids, "village_id", "village differs from the data",
                "the household's village in the data (or empty)")
    planned = plan_households.set_index("household_id")
    package = hh["package_id"].where(hh["package_id"] != "", ids.map(planned["package_id"]).fillna(""))
    delivered = hh["delivered"].to_numpy()
    keys = pd.MultiIndex.from_arrays([tables["packages"]["household_id"], tables["packages"]["package_id"]])
    known = keys.get_indexer(pd.MultiIndex.from_arrays([ids, package.astype(str)])) >= 0
    report_rows(issues, "households.csv", hh, delivered & ~known, ids, "package_id", "delivered package unknown",
                "one of the household's packages (empty: the planned one)")
    start = hh["start_year"].fillna(ids.map(planned["start_year"]).astype(float))
    report_rows(issues, "households.csv", hh, _bad_year(hh["start_year"], start_year, year), ids, "start_year",
                "start year outside the record", f"a year in {start_year}..{year}")
    report_rows(issues, "households.csv", hh,
                delivered & (start.isna() | (start > year)).to_numpy() & hh["start_year"].isna().to_numpy(), ids,
                "start_year", "delivered, but the plan starts it later (or never): give the actual start year",
                f"a year in {start_year}..{year}")
    report_rows(issues, "households.csv", hh, _bad_year(hh["exit_year"], start_year, year), ids, "exit_year",
                "exit year outside the record", f"a year in {start_year}..{year}")
    report_rows(issues, "households.csv", hh, hh["returned"].to_numpy() & ~hh["exited"].to_numpy(), ids, "exited",
                "returned to poverty without having exited", "true when returned is true")

    pj = progress.projects
    pkey = pj["village_id"] + " / " + pj["project_id"]
    data_keys = pd.MultiIndex.from_arrays([tables["projects"]["village_id"], tables["projects"]["project_id"]])
    known = data_keys.get_indexer(pd.MultiIndex.from_arrays([pj["village_id"], pj["project_id"]])) >= 0
    report_rows(issues, "projects.csv", pj, ~known, pkey, "project_id", "unknown project",
                "a project of the data's projects table")
    report_rows(issues, "projects.csv", pj, _bad_year(pj["start_year"], start_year, year), pkey, "start_year",
                "start year outside the record", f"a year in {start_year}..{year}")
    report_rows(issues, "projects.csv", pj, pj["finished"].to_numpy() & ~pj["started"].to_numpy(), pkey, "started",
                "finished but not started", "true when finished is true")
    planned = pd.MultiIndex.from_arrays([plan.projects["village_id"], plan.projects["project_id"]])
    in_plan = planned.get_indexer(pd.MultiIndex.from_arrays([pj["village_id"], pj["project_id"]])) >= 0
    report_rows(issues, "projects.csv", pj, pj["started"].to_numpy() & ~in_plan & pj["start_year"].isna().to_numpy(),
                pkey, "start_year", "started outside the plan without a start year", f"a year in {start_year}..{year}")

    money = progress.disbursed
    mkey = money["source_id"] + " / " + money["county_id"] + " / " + money["year"].astype(str)
    funds = tables["funds"]
    fund_keys = pd.MultiIndex.from_arrays([funds["source_id"], funds["year"]])
    report_rows(issues, "disbursed.csv", money, ~money["source_id"].isin(funds["source_id"]).to_numpy(), mkey,
                "source_id", "unknown source", "a source of the funds table")
    report_rows(issues, "disbursed.csv", money, ~money["county_id"].isin(county_ids).to_numpy(), mkey, "county_id",
                "unknown county", "a county of the plan")
    report_rows(issues, "disbursed.csv", money, ((money["year"] < start_year) | (money["year"] > year)).to_numpy(),
                mkey, "year", "year outside the record", f"a year in {start_year}..{year}")
    no_row = fund_keys.get_indexer(pd.MultiIndex.from_arrays([money["source_id"], money["year"]])) < 0
    report_rows(issues, "disbursed.csv", money, no_row & money["source_id"].isin(funds["source_id"]).to_numpy(), mkey,
                "year", "the source has no funds row that year", "a year with a funds row of the source")
    issues.raise_if_any()


def plan_and_record(plan, progress) -> tuple:
    """A plan with its inputs (a folder or :class:`allocator.plan.context.PlanContext`) and a checked
    :class:`Progress` (a folder or the object): what monitoring and re-planning start from. A
    record drawn from another plan raises :class:`~allocator.errors.InputMismatch`."""
    context = plan if isinstance(plan, PlanContext) else load_plan_context(plan)
    record = typed(progress) if isinstance(progress, Progress) else read_progress(progress)
    check_record_plan(record.plan_fingerprint, record.input_fingerprint, context.plan.summary,
                      record=str(progress) if not isinstance(progress, Progress) else "the progress record",
                      plan=str(context.folder))
    check_progress(record, context.plan, context.tables, start_year=context.scenario.start_year,
                   deadline_year=context.scenario.deadline_year, county_ids=context.problem.county_ids)
    return context, record


def village_counties(tables: dict[str, pd.DataFrame]) -> pd.Series:
    """The county of every village of the data, indexed by village_id."""
    return tables["villages"].set_index("village_id")["township_id"].map(county_of_regions(tables["regions"]))


def stay_out_probability(exit_year: np.ndarray, now: int, deadline_year: int) -> np.ndarray:
    """P(still out of poverty at the deadline | exited at the end of ``exit_year``, out at ``now``),
    with the return rates of DOMAIN.md by year since the exit."""
    horizon = deadline_year - int(np.nanmin(exit_year, initial=now)) + 2
    rates = np.array([RETURN_RATES[min(k, len(RETURN_RATES) - 1)] for k in range(max(horizon, 1))])
    log_stay = np.concatenate([[0.0], np.cumsum(np.log1p(-rates))])  # log P(no return in years 1..k)
    first = np.clip(now - 1 - exit_year, 0, len(rates)).astype(np.int64)  # whole years after exit survived
    last = np.clip(deadline_year - exit_year, 0, len(rates)).astype(np.int64)
    return np.exp(log_stay[np.maximum(last, first)] - log_stay[first])


def household_states(plan_households: pd.DataFrame, progress: Progress, tables: dict[str, pd.DataFrame], *,
                     from_year: int, deadline_year: int) -> pd.DataFrame:
    """One row per household to plan for (the plan's and the new ones): what the record says and
    what it means now.

    ``state``: *settled* (a package was delivered, no return), *exited* (out of poverty without a
    delivered package), *returned* (exited, then fell back), *new* (newly identified), *open*
    (the rest: their planned package is still to come). ``expected_now`` is the expected exit at
    the deadline with no further package: the delivered package's exit when it counts, the
    chance to stay out for those who exited (DOMAIN return rates), the baseline otherwise, times
    SHOCK_EXIT_FACTOR after a shock. ``outlook`` is the expected exit if the rest of the approved
    plan is delivered from ``from_year`` on (slipped packages in ``from_year``)."""
    hh = tables["households"].set_index("household_id")
    village_county = village_counties(tables)
    plan = plan_households[["household_id", "village_id", "county_id", "package_id", "start_year"]].rename(
        columns={"package_id": "planned_package", "start_year": "planned_year"})
    plan = plan.assign(planned_package=plan["planned_package"].fillna("").astype(str), in_plan=True)
    record = progress.households
    new = record[record["new"] & ~record["household_id"].isin(plan["household_id"])]
    new = pd.DataFrame({"household_id": new["household_id"].to_numpy(),
                        "village_id": new["household_id"].map(hh["village_id"]).to_numpy(),
                        "planned_package": "", "planned_year": np.nan, "in_plan": False})
    new["county_id"] = new["village_id"].map(village_county).to_numpy()
    frame = pd.concat([plan, new], ignore_index=True)
    frame["planned_year"] = frame["planned_year"].astype(float)
    cols = ["household_id", "delivered", "package_id", "start_year", "observed_income", "guarantees", "exited",
            "exit_year", "returned", "shock", "new"]
    frame = frame.merge(record[cols].rename(columns={"start_year": "actual_year"}), on="household_id", how="left")
    frame["recorded"] = frame["delivered"].notna()
    for name in ("delivered", "exited", "returned", "new"):
        frame[name] = frame[name].fillna(False).astype(bool)
    for name in ("package_id", "guarantees", "shock"):
        frame[name] = frame[name].fillna("").astype(str)
    delivered = frame["delivered"].to_numpy()
    frame["package_id"] = np.where(delivered, frame["package_id"].where(frame["package_id"] != "",
                                                                       frame["planned_package"]), "")
    frame["actual_year"] = frame["actual_year"].where(~delivered | frame["actual_year"].notna(),
                                                      frame["planned_year"]).where(delivered)
    frame["baseline"] = frame["household_id"].map(hh["baseline_exit_probability"]).to_numpy(dtype=float)

    packages = tables["packages"][["household_id", "package_id", "exit_probability", "lag_years"]]
    pkg_index = pd.MultiIndex.from_arrays([packages["household_id"], packages["package_id"]])
    got = pkg_index.get_indexer(pd.MultiIndex.from_arrays([frame["household_id"], frame["package_id"]]))
    plan_got = pkg_index.get_indexer(pd.MultiIndex.from_arrays([frame["household_id"], frame["planned_package"]]))
    exit_p, lag = packages["exit_probability"].to_numpy(), packages["lag_years"].to_numpy()
    delivered_exit = np.where((got >= 0) & (frame["actual_year"].to_numpy() + lag[got] <= deadline_year),
                              exit_p[got], frame["baseline"].to_numpy())

    returned, exited = frame["returned"].to_numpy(), frame["exited"].to_numpy()
    state = np.select([frame["new"].to_numpy() & ~frame["in_plan"].to_numpy(), returned, delivered, exited],
                      ["new", "returned", "settled", "exited"], "open")
    frame["state"] = state
    shock = np.where(frame["shock"].to_numpy() != "", SHOCK_EXIT_FACTOR, 1.0)
    exit_year = frame["exit_year"].fillna(from_year - 1).to_numpy(dtype=float)
    stay = stay_out_probability(exit_year, from_year, deadline_year)
    out = exited & ~returned
    frame["expected_now"] = shock * np.where(out, stay, np.where(state == "settled", delivered_exit,
                                                                 frame["baseline"].to_numpy()))
    planned_year = frame["planned_year"].to_numpy()
    when = np.where(planned_year >= from_year, planned_year, from_year)
    counts = (plan_got >= 0) & (when + lag[plan_got] <= deadline_year)
    planned_exit = np.where(counts, shock * exit_p[plan_got], frame["expected_now"].to_numpy())
    frame["outlook"] = np.where(state == "open", planned_exit, frame["expected_now"].to_numpy())
    return frame
