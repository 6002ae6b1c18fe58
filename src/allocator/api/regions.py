"""The region registry: the one region tree the service trusts, loaded by an admin.

Scope cannot rest on the tree a client uploads: a key for P2 could nest P1 under P2 and file
data that P1's keys then see. So an admin loads the tree once (``allocator regions load
FILE``, ``PUT /v1/regions``), a submission's regions must each be registered with the same
parent and level (422 naming the row otherwise), and a key for R may submit only data whose
every region lies under R in the registry. Until a registry is loaded only admin keys submit.

Loading is additive: new regions are added, known ones keep their parent and level (a change
is refused, naming the rows, as it would move plans between scopes); names may change.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import replace
from pathlib import Path

import pandas as pd

from allocator.api.intake import write_records
from allocator.api.store import Region
from allocator.errors import InputError, Issue, IssueCollector
from allocator.inputs.checks import check_region_tree
from allocator.inputs.tables import SPECS, read_table

COLUMNS = ("region_id", "parent_id", "level", "name")


def read_region_file(path: Path) -> pd.DataFrame:
    """A regions table (CSV or Parquet, any file name) read and typed as the contract's
    ``regions`` table; problems name ``path``'s file name."""
    path = Path(path)
    if path.suffix.lower() not in (".csv", ".parquet"):
        raise InputError([Issue(path.name, "not a regions table", expected="a .csv or .parquet file with the "
                                "columns region_id, parent_id, level (and name)")])
    if not path.is_file():
        raise InputError([Issue(path.name, "file does not exist", expected="a regions table")])
    with tempfile.TemporaryDirectory() as folder:
        shutil.copyfile(path, Path(folder) / f"regions{path.suffix.lower()}")
        return _read(Path(folder), path.name)


def read_region_records(records: list[dict]) -> pd.DataFrame:
    """JSON records of a regions table, read as the file would be (rows numbered from 1)."""
    with tempfile.TemporaryDirectory() as folder:
        write_records({"regions": records}, Path(folder))
        return _read(Path(folder), "regions.csv")


def _read(folder: Path, file: str) -> pd.DataFrame:
    issues = IssueCollector()
    frame = read_table(folder, SPECS["regions"], issues)
    if issues.issues:
        raise InputError([replace(issue, file=file) for issue in issues.issues], issues.truncated)
    frame.attrs["file"] = file
    return frame


def register(registry: dict[str, Region], frame: pd.DataFrame) -> list[Region]:
    """The rows of ``frame`` checked against the registry: the regions to store. Raises
    InputError when a known region would change parent or level, or the tree (registry and
    file together) is not one: unknown parents, cycles, levels out of order."""
    file = frame.attrs.get("file", "regions.csv")
    issues = IssueCollector()
    for pos, row in enumerate(frame[list(COLUMNS)].itertuples(index=False)):
        known = registry.get(row.region_id)
        for column in ("parent_id", "level"):
            if known is not None and getattr(known, column) != getattr(row, column):
                issues.add(file, f"region already registered with another {column}", row=pos + 1,
                           id=row.region_id, column=column, expected=repr(getattr(known, column)) + " as registered",
                           found=repr(getattr(row, column)))
    issues.raise_if_any()
    others = pd.DataFrame([r.__dict__ for r in registry.values() if r.region_id not in set(frame["region_id"])],
                          columns=list(COLUMNS))
    union = pd.concat([frame[list(COLUMNS)], others], ignore_index=True)
    union.attrs["file"] = file
    check_region_tree(union, issues)
    issues.raise_if_any()
    return [Region(*row) for row in frame[list(COLUMNS)].itertuples(index=False)]


def check_submission(registry: dict[str, Region], rows: list[tuple[str, str, str]], file: str) -> None:
    """A submission's regions (region_id, parent_id, level per row) are registered with the
    same parent and level; InputError naming each row that is not."""
    issues = IssueCollector()
    for pos, (region_id, parent_id, level) in enumerate(rows):
        known = registry.get(region_id)
        if known is None:
            issues.add(file, "region not in the service's region registry", row=pos + 1, id=region_id,
                       column="region_id", expected="a region an admin registered (GET /v1/regions lists them)",
                       found=repr(region_id))
            continue
        for column, value in (("parent_id", parent_id), ("level", level)):
            if getattr(known, column) != value:
                issues.add(file, f"{column} differs from the region registry", row=pos + 1, id=region_id,
                           column=column, expected=repr(getattr(known, column)), found=repr(value))
    issues.raise_if_any()


def ancestry(registry: dict[str, Region], region_id: str) -> list[str]:
    """The region and its ancestors in the registry, the region first."""
    chain = [region_id]
    while (known := registry.get(chain[-1])) is not None and known.parent_id and known.parent_id not in chain:
        chain.append(known.parent_id)
    return chain


def outside(registry: dict[str, Region], region_ids: list[str], scope: str) -> list[str]:
    """The regions among ``region_ids`` that do not lie under ``scope`` (or are it)."""
    return [region for region in region_ids if scope not in ancestry(registry, region)]


def subtree(registry: dict[str, Region], scope: str) -> list[Region]:
    """The registered regions under ``scope`` (itself included), and its ancestors, root first
    then by id: what a key for ``scope`` may see of the tree."""
    above = ancestry(registry, scope)[::-1]
    below = sorted(region_id for region_id in registry if scope in ancestry(registry, region_id))
    return [registry[region_id] for region_id in dict.fromkeys(above + below) if region_id in registry]
