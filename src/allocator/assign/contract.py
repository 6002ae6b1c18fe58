"""The assignment's input contract: cadres and teams tables, their checks, and the skills a household needs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from allocator.errors import IssueCollector
from allocator.inputs.checks import report_rows
from allocator.inputs.tables import LIST_SEPARATOR, Column, TableSpec, read_table, split_list

SKILLS = ("agriculture", "health", "education", "employment", "finance")
CAUSE_SKILLS: dict[str, tuple[str, ...]] = {
    "illness": ("health",), "disability": ("health",),
    "lack_of_funds": ("finance",),
    "lack_of_skills": ("employment",), "lack_of_labour": ("employment",), "lack_of_motivation": ("employment",),
    "schooling": ("education",),
    "disaster": ("agriculture",), "transport": ("agriculture",), "lack_of_land": ("agriculture",),
    "lack_of_water": ("agriculture",),
    "other": (),  # no particular skill: every cadre fits
}
CATEGORY_SKILLS: dict[str, tuple[str, ...]] = {
    "industry": ("agriculture",), "ecology": ("agriculture",), "infrastructure": ("agriculture",),
    "housing": ("finance",),  # relocation and house renovation: subsidies and loans
    "ability": ("education", "employment"),  # schooling and vocational training
    "welfare": ("health", "finance"),  # the social-security bottom line: medical aid, dibao
}
# the cost model (km-equivalents; the constants table of allocator.assign.responsibility)
MISMATCH_KM = 20.0
OTHER_TOWNSHIP_KM = 30.0
TEAM_OTHER_COUNTY_KM = 30.0
UNASSIGNED_KM = 10_000.0
CANDIDATES = 24
TEAM_CANDIDATES = 32


# --- tables ------------------------------------------------------------------------------
def _coord(name: str, limit: float) -> Column:
    return Column(name, "float", minimum=-limit, maximum=limit)


RESPONSIBILITY_SPECS: dict[str, TableSpec] = {
    "cadres": TableSpec(
        "cadres",
        (
            Column("cadre_id", "str"),
            Column("township_id", "str"),
            Column("capacity", "int", minimum=0, maximum=100_000),
            Column("skills", "list"),
            _coord("latitude", 90),
            _coord("longitude", 180),
            Column("hours_per_year", "float", required=False, minimum=0, maximum=8784, default=0.0),
        ),
        key=("cadre_id",),
    ),
    "teams": TableSpec(
        "teams",
        (
            Column("team_id", "str"),
            Column("department", "str", required=False, allow_empty=True, default=""),
            Column("home_county", "str"),
            Column("size", "int", minimum=1, maximum=1000),
            _coord("latitude", 90),
            _coord("longitude", 180),
        ),
        key=("team_id",),
    ),
}


def _region_level(regions: pd.DataFrame) -> pd.Series:
    return regions.drop_duplicates("region_id").set_index("region_id")["level"]


def check_cadres(cadres: pd.DataFrame, issues: IssueCollector, regions: pd.DataFrame | None = None) -> None:
    """Skills are known; with ``regions``, every township_id is a township of regions.csv."""
    file = cadres.attrs.get("file", "cadres.csv")
    items = pd.Series(text_column(cadres, "skills")).str.split(LIST_SEPARATOR).explode().str.strip()
    unknown = (items != "") & ~items.isin(SKILLS)
    bad = np.zeros(len(cadres), dtype=bool)
    bad[items.index[unknown.to_numpy()].unique()] = True  # positions: the series has a range index
    report_rows(issues, file, cadres, bad, "cadre_id", "skills", "unknown skill",
                "skills from " + ", ".join(SKILLS) + " separated by ';'")
    if regions is not None:
        level = cadres["township_id"].map(_region_level(regions))
        report_rows(issues, file, cadres, level.ne("township").to_numpy(), "cadre_id", "township_id",
                    "not a township of regions.csv", "the region_id of a region with level township")


def check_teams(teams: pd.DataFrame, issues: IssueCollector, regions: pd.DataFrame | None = None) -> None:
    """With ``regions``, every home_county is a county of regions.csv."""
    if regions is None:
        return
    file = teams.attrs.get("file", "teams.csv")
    level = teams["home_county"].map(_region_level(regions))
    report_rows(issues, file, teams, level.ne("county").to_numpy(), "team_id", "home_county",
                "not a county of regions.csv", "the region_id of a region with level county")


def read_cadres(folder: str | Path, regions: pd.DataFrame | None = None, encoding: str | None = None) -> pd.DataFrame:
    """Read ``cadres.csv`` (or ``.parquet``; CSV in ``encoding``, else detected) of a data folder;
    raise one InputError listing every problem (cells, duplicate ids, unknown skills, townships
    missing from ``regions``)."""
    return _read_checked(Path(folder), "cadres", check_cadres, regions, encoding)


def read_teams(folder: str | Path, regions: pd.DataFrame | None = None, encoding: str | None = None) -> pd.DataFrame:
    """Read ``teams.csv`` (or ``.parquet``; CSV in ``encoding``, else detected) of a data folder;
    raise one InputError listing every problem (cells, duplicate ids, home counties missing
    from ``regions``)."""
    return _read_checked(Path(folder), "teams", check_teams, regions, encoding)


def _read_checked(folder: Path, name: str, check: Callable, regions: pd.DataFrame | None,
                  encoding: str | None) -> pd.DataFrame:
    issues = IssueCollector()
    frame = read_table(folder, RESPONSIBILITY_SPECS[name], issues, encoding)
    if frame is not None and not issues.issues:
        check(frame, issues, regions)
    issues.raise_if_any()
    return frame


# --- in-memory inputs ----------------------------------------------------------------------
def require_columns(issues: IssueCollector, frame: pd.DataFrame, file: str, columns: tuple[str, ...]) -> bool:
    missing = [c for c in columns if c not in frame.columns]
    for c in missing:
        issues.add(file, "missing column", column=c, expected="a column " + c,
                   found="columns " + ", ".join(map(str, frame.columns)))
    return not missing


def checked_numbers(issues: IssueCollector, frame: pd.DataFrame, file: str, id_column: str, column: str, lo: float,
             hi: float, integer: bool = False) -> np.ndarray:
    raw = frame[column]
    values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(values) | (values < lo) | (values > hi)
    if integer:
        with np.errstate(invalid="ignore"):
            bad |= np.isfinite(values) & (np.abs(values - np.round(values)) > 1e-9)
    kind = "an integer" if integer else "a number"
    report_rows(issues, file, frame, bad, id_column, column, "not a valid value", f"{kind} in [{lo:g}, {hi:g}]",
                raw.to_numpy())
    return np.where(bad, 0.0, values)


def text_column(frame: pd.DataFrame, column: str) -> np.ndarray:
    return frame[column].astype(object).where(frame[column].notna(), "").astype(str).str.strip().to_numpy()


def flag_duplicates(issues: IssueCollector, frame: pd.DataFrame, file: str, column: str) -> None:
    dup = frame[column].duplicated(keep="first").to_numpy()
    report_rows(issues, file, frame, dup, column, column, "duplicate id", "each id once")


def flag_empty_ids(issues: IssueCollector, frame: pd.DataFrame, file: str, id_column: str, columns: tuple[str, ...]):
    for c in columns:
        report_rows(issues, file, frame, text_column(frame, c) == "", id_column, c, "empty cell", "a non-empty text")


def skill_masks(texts: np.ndarray, vocab: dict[str, tuple[str, ...]]) -> tuple[np.ndarray, np.ndarray]:
    """Bit masks of skills for each text (via the vocabulary); second array flags unknown texts."""
    bit = {s: 1 << k for k, s in enumerate(SKILLS)}
    codes, uniques = pd.factorize(texts)
    masks = np.zeros(len(uniques), dtype=np.int64)
    unknown = np.zeros(len(uniques), dtype=bool)
    for k, text in enumerate(uniques):  # a loop per distinct text
        if text == "":
            continue
        if text not in vocab:
            unknown[k] = True
            continue
        masks[k] = sum(bit[s] for s in vocab[text])
    return masks[codes], unknown[codes]


def cadre_masks(skills: np.ndarray) -> np.ndarray:
    bit = {s: 1 << k for k, s in enumerate(SKILLS)}
    codes, uniques = pd.factorize(skills)
    masks = np.array([sum(bit.get(s, 0) for s in split_list(u)) for u in uniques], dtype=np.int64)  # per distinct
    return masks[codes] if len(uniques) else np.zeros(len(skills), dtype=np.int64)


__all__ = ["CANDIDATES", "CATEGORY_SKILLS", "CAUSE_SKILLS", "MISMATCH_KM", "OTHER_TOWNSHIP_KM", "RESPONSIBILITY_SPECS",
           "SKILLS", "TEAM_CANDIDATES", "TEAM_OTHER_COUNTY_KM", "UNASSIGNED_KM", "cadre_masks", "check_cadres",
           "check_teams", "flag_duplicates", "flag_empty_ids", "checked_numbers", "read_cadres", "read_teams",
           "require_columns", "skill_masks", "text_column"]
