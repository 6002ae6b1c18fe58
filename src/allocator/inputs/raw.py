"""The raw data contract: what a province's registry holds, before identification.

A raw data folder holds ``regions`` (as in the canonical contract), ``villages_raw``,
``households_raw``, ``funds`` and optionally ``personnel`` and ``targets`` (all canonical). Identification
(:mod:`allocator.targeting.identify`) and candidates (:mod:`allocator.targeting.candidates`)
turn it into the canonical problem. Cells are checked by the same machinery and error
grammar as the canonical tables; cross-table rules are the ``check_*`` functions here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from allocator.errors import IssueCollector
from allocator.inputs.checks import check_region_tree, report_rows
from allocator.inputs.tables import (
    LATITUDE,
    LIST_SEPARATOR,
    LONGITUDE,
    SPECS,
    Column,
    TableSpec,
    read_specs,
    table_path,
    unread_spreadsheet,
)

CAUSES = ("illness", "disability", "lack_of_funds", "lack_of_skills", "lack_of_labour", "schooling",
          "lack_of_motivation", "disaster", "transport", "lack_of_land", "lack_of_water", "other")
HOUSEHOLD_TYPES = ("ordinary", "dibao", "tekun")
SHOCKS = ("illness", "disability", "disaster", "accident", "other")
# assets a village holds on its land in which its poor households may take collective equity
# shares (asset-income support, docs/effect-model.md): none, or the kind of project
ASSET_KINDS = ("none", "hydropower", "mining", "pv")

RAW_SPECS: dict[str, TableSpec] = {
    "households_raw": TableSpec(
        "households_raw",
        (
            Column("household_id", "str"),
            Column("village_id", "str"),
            Column("size", "int", minimum=1, maximum=100),
            Column("labourers", "int", minimum=0, maximum=100),
            Column("income_per_capita", "float", minimum=-1e6, maximum=1e8),
            Column("household_type", "str", choices=HOUSEHOLD_TYPES),
            Column("main_cause", "str", choices=CAUSES),
            Column("other_causes", "list", required=False, default=""),
            Column("dangerous_house", "bool"),
            Column("unsafe_water", "bool"),
            Column("children_out_of_school", "int", minimum=0, maximum=100),
            Column("uninsured_members", "int", minimum=0, maximum=100),
            Column("chronic_illness_members", "int", minimum=0, maximum=100),
            Column("disabled_members", "int", minimum=0, maximum=100),
            Column("recent_shock", "str", required=False, choices=SHOCKS, allow_empty=True, default=""),
            Column("registered_poor", "bool", required=False, default=False),
        ),
        key=("household_id",),
    ),
    "villages_raw": TableSpec(
        "villages_raw",
        (
            Column("village_id", "str"),
            Column("township_id", "str"),
            Column("name", "str", required=False, allow_empty=True, default=""),
            Column("population", "int", minimum=0),
            LATITUDE,
            LONGITUDE,
            Column("has_road", "bool"),
            Column("has_tap_water", "bool"),
            Column("has_power", "bool"),
            Column("has_broadband", "bool"),
            Column("has_clinic", "bool"),
            Column("collective_income", "float", minimum=0, maximum=1e12),
            Column("tourism_potential", "float", minimum=0, maximum=1),
            Column("forest", "bool"),
            Column("remoteness", "float", minimum=0, maximum=1),
            Column("hazard_zone", "bool"),
            Column("income_per_capita", "float", required=False, minimum=-1e6, maximum=1e8, allow_empty=True,
                   default=np.nan),
            Column("asset_income_assets", "str", required=False, choices=ASSET_KINDS, default="none"),
        ),
        key=("village_id",),
    ),
}
RAW_TABLES = ("regions", "villages_raw", "households_raw", "funds")
RAW_OPTIONAL_TABLES = ("personnel", "targets")
MEMBER_COUNTS = ("labourers", "children_out_of_school", "uninsured_members", "chronic_illness_members",
                 "disabled_members")


def is_raw_folder(folder: Path) -> bool:
    """True when a data folder holds raw registry data (``households_raw`` as a file or a sheet,
    or a spreadsheet of that name to be named in the error), not canonical tables."""
    folder = Path(folder)
    return table_path(folder, "households_raw") is not None or unread_spreadsheet(folder, "households_raw") is not None


def spec_of(name: str) -> TableSpec:
    return RAW_SPECS.get(name) or SPECS[name]


def read_raw_tables(folder: str | Path, issues: IssueCollector | None = None,
                    encoding: str | None = None) -> dict[str, pd.DataFrame]:
    """Read and check every table of a raw data folder (CSV in ``encoding``, else detected);
    raise one InputError listing all problems (or, given ``issues``, add them there).
    ``households_raw.attrs['registry_given']`` says whether the registry's own
    ``registered_poor`` column was present."""
    folder = Path(folder)
    collect = issues is not None
    issues = issues if collect else IssueCollector()
    tables: dict[str, pd.DataFrame] = {}
    if not folder.is_dir():
        issues.add(str(folder), "data folder does not exist", expected="a folder with the raw tables")
    else:
        tables = read_specs(folder, {name: spec_of(name) for name in RAW_TABLES + RAW_OPTIONAL_TABLES},
                            set(RAW_OPTIONAL_TABLES), issues, encoding)
        if "households_raw" in tables:
            households = tables["households_raw"]
            households.attrs["registry_given"] = "registered_poor" in households.attrs.get("given", ())
        if set(tables) == set(RAW_TABLES + RAW_OPTIONAL_TABLES):
            check_raw_tables(tables, issues)
    if not collect:
        issues.raise_if_any()
    return tables


def check_raw_tables(tables: dict[str, pd.DataFrame], issues: IssueCollector) -> None:
    """The cross-table rules of the raw contract (the funds and personnel rules are checked
    later with the canonical tables, once the counties and categories are known)."""
    regions, villages, households = tables["regions"], tables["villages_raw"], tables["households_raw"]
    check_region_tree(regions, issues)
    level = regions.drop_duplicates("region_id").set_index("region_id")["level"]
    township_level = villages["township_id"].map(level)
    report_rows(issues, "villages_raw.csv", villages, township_level.ne("township").to_numpy(), "village_id",
                "township_id", "not a township of regions.csv", "the region_id of a region with level township")
    known = households["village_id"].isin(set(villages["village_id"]))
    report_rows(issues, "households_raw.csv", households, ~known.to_numpy(), "household_id", "village_id",
                "village does not exist", "a village_id of villages_raw.csv")
    size = households["size"].to_numpy()
    for column in MEMBER_COUNTS:
        report_rows(issues, "households_raw.csv", households, households[column].to_numpy() > size, "household_id",
                    column, "more members than the household has", "at most the household's size")
    causes = households["other_causes"].str.split(LIST_SEPARATOR).explode().str.strip()
    unknown = (causes != "") & ~causes.isin(CAUSES)
    bad_cause = np.zeros(len(households), dtype=bool)
    bad_cause[households.index.get_indexer(causes.index[unknown.to_numpy()].unique())] = True
    report_rows(issues, "households_raw.csv", households, bad_cause, "household_id", "other_causes",
                "unknown cause", "causes from " + ", ".join(CAUSES) + " separated by ';'")
    if len(households) == 0:
        issues.add("households_raw.csv", "no households", expected="at least one household row")


__all__ = ["ASSET_KINDS", "CAUSES", "HOUSEHOLD_TYPES", "RAW_SPECS", "RAW_TABLES", "SHOCKS", "check_raw_tables",
           "is_raw_folder", "read_raw_tables"]
