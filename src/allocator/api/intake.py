"""Taking a submission in: store its tables, check it as the command line does, find its region.

A submission becomes a folder ``DATA_DIR/plans/<id>/input`` holding the uploaded tables and
a ``scenario.yaml`` whose ``data:`` is that folder (or which names a ``generate`` preset).
:func:`admit` checks it with the library's own readers, so a bad cell is reported exactly as
``allocator validate`` reports it, and works out the region the plan belongs to.

Checked at submission: the scenario's keys, every table (canonical tables fully, raw
registry tables cell by cell and across tables), the household limit and the region tree.
What only the solve can find (targeting of raw data) makes the job ``failed`` with the same
structured issues.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import pandas as pd
import yaml

from allocator.errors import InputError, Issue, ScenarioError
from allocator.scenario import Scenario, scenario_from_dict
from allocator.tables import LIST_SEPARATOR, OPTIONAL_TABLES, REQUIRED_TABLES
from allocator.targeting.raw import is_raw_folder

SCENARIO_FILE = "scenario.yaml"
TABLE_NAMES = REQUIRED_TABLES + OPTIONAL_TABLES + ("villages_raw", "households_raw", "cadres", "teams")
TABLE_SUFFIXES = (".csv", ".parquet")


class TooLarge(Exception):
    """The submission holds more households than the settings allow."""


@dataclass(frozen=True)
class Admission:
    """A checked submission: its scenario (as stored), size and region path (root first)."""

    scenario: Scenario
    households: int
    region_path: list[str]


def write_records(tables: dict[str, list[dict]], folder: Path) -> None:
    """Write JSON records as ``NAME.csv`` files (a list cell becomes one ';'-separated cell)."""
    for name, records in tables.items():
        rows = [{column: LIST_SEPARATOR.join(map(str, value)) if isinstance(value, list) else value
                 for column, value in record.items()} for record in records]
        pd.DataFrame.from_records(rows).to_csv(folder / f"{name}.csv", index=False)


def upload_name(filename: str | None, names: tuple[str, ...] = TABLE_NAMES) -> str:
    """The stored name of an uploaded table file, which must be ``NAME.csv`` or ``NAME.parquet``
    with NAME one of ``names`` (the input contract's tables, or a progress record's)."""
    name = Path(filename or "").name
    stem, suffix = Path(name).stem, Path(name).suffix.lower()
    if stem not in names or suffix not in TABLE_SUFFIXES:
        raise InputError([Issue(name or "(unnamed file)", "not a table of the contract",
                                expected="a file named NAME.csv or NAME.parquet with NAME one of "
                                         + ", ".join(names))])
    return stem + suffix


def save_upload(source: BinaryIO, name: str, folder: Path, digest: hashlib._Hash | None = None) -> None:
    """Copy an uploaded table file into ``folder``, adding its name and bytes to ``digest`` (if
    given); a table given twice is refused."""
    stem = Path(name).stem
    if any((folder / f"{stem}{suffix}").exists() for suffix in TABLE_SUFFIXES):
        raise InputError([Issue(name, "table uploaded twice", expected=f"one {stem}.csv or {stem}.parquet")])
    if digest is not None:
        digest.update(name.encode() + b"\0")
    with open(folder / name, "wb") as target:
        for block in iter(lambda: source.read(1 << 20), b""):
            if digest is not None:
                digest.update(block)
            target.write(block)


def read_scenario_yaml(content: bytes, file: str) -> dict:
    """The mapping in an uploaded scenario YAML, or a ScenarioError naming the file."""
    try:
        raw = yaml.safe_load(content.decode("utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError) as error:
        raise ScenarioError([Issue(file, f"not valid YAML: {error}")]) from None
    if not isinstance(raw, dict):
        raise ScenarioError([Issue(file, "must be a mapping of keys", found=type(raw).__name__)])
    return raw


def admit(raw: dict, folder: Path, *, file: str, uploaded: bool, max_households: int,
          time_cap: float) -> Admission:
    """Check a submission stored in ``folder`` and write its ``scenario.yaml``.

    ``raw`` is the scenario as the client sent it; ``uploaded`` says whether tables came
    with it. The solver's time limit is capped at ``time_cap`` seconds. Raises InputError
    (bad input) or TooLarge.
    """
    raw = dict(raw)
    if uploaded:
        if "generate" in raw:
            raise ScenarioError([Issue(file, "tables were uploaded and a preset named", key="generate",
                                       expected="either the tables or 'generate', not both")])
        raw["data"] = "."
    elif "data" in raw:
        raise ScenarioError([Issue(file, "a server folder cannot be named over HTTP", key="data",
                                   expected="the tables uploaded with the scenario, or 'generate'")])
    if isinstance(raw.get("targeting"), dict) and raw["targeting"].get("catalog") is not None:
        raise ScenarioError([Issue(file, "a measure catalogue cannot be uploaded yet", key="targeting.catalog",
                                   expected="no catalog key: the built-in catalogue is used")])
    scenario = scenario_from_dict(raw, file=file, source=folder / SCENARIO_FILE)
    limit = min(scenario.solver.time_limit or time_cap, time_cap)
    scenario = scenario.model_copy(update={"solver": scenario.solver.model_copy(update={"time_limit": limit})})
    households, regions = _households_and_regions(scenario, file, max_households)
    stored = scenario.model_dump(mode="json", exclude_none=True)
    (folder / SCENARIO_FILE).write_text(yaml.safe_dump(stored, sort_keys=False, allow_unicode=True))
    return Admission(scenario, households, region_path(regions))


def _households_and_regions(scenario: Scenario, file: str, max_households: int) -> tuple[int, pd.DataFrame]:
    """Read (or generate) and check the tables; the household count and the regions table."""
    from allocator.optimize import load_tables
    from allocator.targeting import is_raw_scenario, raw_tables, read_raw_tables

    if scenario.generate is not None:
        _check_preset_size(scenario, file, max_households)
        try:
            tables = raw_tables(scenario) if is_raw_scenario(scenario) else load_tables(scenario)
        except InputError:
            raise
        except ValueError as error:  # the generators refuse impossible options with a ValueError
            raise ScenarioError([Issue(file, str(error), key="generate")]) from None
    elif is_raw_folder(scenario.data_dir()):
        tables = read_raw_tables(scenario.data_dir())
    else:
        tables = load_tables(scenario)
    households = len(tables["households_raw"] if "households_raw" in tables else tables["households"])
    if households > max_households:
        raise TooLarge(f"{households:,} households; this service takes at most {max_households:,} per submission")
    return households, tables["regions"]


def _check_preset_size(scenario: Scenario, file: str, max_households: int) -> None:
    """Refuse an unknown preset, or one too large, before generating anything."""
    from allocator.synth import PRESETS, PROVINCE_PRESETS

    presets = {**PRESETS, **PROVINCE_PRESETS}
    preset = scenario.generate.preset
    if preset not in presets:
        raise ScenarioError([Issue(file, "unknown preset", key="generate.preset",
                                   expected="one of " + ", ".join(presets), found=repr(preset))])
    households = scenario.generate.households or presets[preset]["households"]
    if households > max_households:
        raise TooLarge(f"preset {preset} has {households:,} households; this service takes at most "
                       f"{max_households:,} per submission")


def region_path(regions: pd.DataFrame) -> list[str]:
    """From the root region down to the lowest region holding every county (empty when the
    counties share no root)."""
    parent = dict(zip(regions["region_id"], regions["parent_id"], strict=True))
    chains = []
    for county in regions.loc[regions["level"] == "county", "region_id"]:
        chain = [county]
        while parent.get(chain[-1]) and parent[chain[-1]] not in chain:
            chain.append(parent[chain[-1]])
        chains.append(chain[::-1])
    common: list[str] = []
    for ids in zip(*chains, strict=False):
        if len(set(ids)) > 1:
            break
        common.append(ids[0])
    return common
