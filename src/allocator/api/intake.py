"""Taking a submission in: store its tables, check it as the command line does, find its region.

A submission becomes a folder ``DATA_DIR/plans/<id>/input`` holding the uploaded tables and
a ``scenario.yaml`` whose ``data:`` is that folder (or which names a ``generate`` preset).
:func:`admit` checks it with the library's own readers, so a bad cell is reported exactly as
``allocator validate`` reports it, and works out the region the plan belongs to.

The server only streams a body to disk (a JSON body as ``request.json``, a multipart's
scenario as ``scenario.upload`` and its tables as they are); :func:`check_upload` parses and
checks it in a worker process under an address-space cap, so neither the parse's memory nor
its CPU time lands in the server.

Checked at submission: the scenario's keys, every table (canonical tables fully, raw
registry tables cell by cell and across tables), the household limit and the region tree.
What only the solve can find (targeting of raw data) makes the job ``failed`` with the same
structured issues.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import pandas as pd
import yaml
from pydantic import ValidationError

from allocator.api.schemas import PlanRequest
from allocator.errors import InputError, Issue, ScenarioError
from allocator.inputs.raw import is_raw_folder
from allocator.inputs.scenario import Scenario, scenario_from_dict
from allocator.inputs.tables import LIST_SEPARATOR, OPTIONAL_TABLES, REQUIRED_TABLES

SCENARIO_FILE = "scenario.yaml"
TABLE_NAMES = REQUIRED_TABLES + OPTIONAL_TABLES + ("villages_raw", "households_raw", "cadres", "teams")
TABLE_SUFFIXES = (".csv", ".parquet")
REQUEST_BODY = "request.json"  # a JSON submission as received, until it is checked
SCENARIO_UPLOAD = "scenario.upload"  # a multipart's scenario part as received, until it is checked
CHECK_NICENESS = 10  # a checking process yields the CPU to the server, so status calls stay fast meanwhile


class TooLarge(Exception):
    """The submission holds more households than the settings allow."""


@dataclass(frozen=True)
class Admission:
    """A checked submission: its scenario (as stored), size and region path (root first)."""

    scenario: Scenario
    households: int
    region_path: list[str]
    regions: pd.DataFrame  # the data's regions table (region_id, parent_id, level, ...)


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


def save_upload(source: BinaryIO, name: str, folder: Path) -> str:
    """Copy an uploaded table file into ``folder``; returns the SHA-256 of its bytes. A table
    given twice is refused."""
    stem = Path(name).stem
    if any((folder / f"{stem}{suffix}").exists() for suffix in TABLE_SUFFIXES):
        raise InputError([Issue(name, "table uploaded twice", expected=f"one {stem}.csv or {stem}.parquet")])
    return copy_file(source, folder / name)


def copy_file(source: BinaryIO, target: Path) -> str:
    """Copy a file object to ``target`` in blocks; the SHA-256 of its bytes."""
    digest = hashlib.sha256()
    with open(target, "wb") as out:
        for block in iter(lambda: source.read(1 << 20), b""):
            digest.update(block)
            out.write(block)
    return digest.hexdigest()


def fingerprint(value) -> str:
    """SHA-256 of a parsed request as canonical JSON (keys sorted, no spaces): the same request
    in another key order, spacing or part order has the same fingerprint."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Checked:
    """What :func:`check_upload` found: the request's fingerprint (None when the body itself is
    malformed) and either the problems, a size refusal, or the admitted submission's facts."""

    sha256: str | None
    explain: bool = False
    issues: list[Issue] | None = None
    truncated: bool = False
    too_large: str | None = None
    scenario_name: str = ""
    households: int = 0
    time_limit: float | None = None
    region_path: tuple[str, ...] = ()
    regions: tuple[tuple[str, str, str], ...] = ()  # region_id, parent_id, level of each row
    regions_file: str = "regions.csv"


def check_upload(folder: str, file: str, digests: dict[str, str] | None, explain: bool, *, max_households: int,
                 time_cap: float, memory_mb: int) -> Checked:
    """Worker process: parse the stored body (``digests`` is None for JSON, else the multipart's
    table digests), fingerprint it, store its tables and check it with :func:`admit`."""
    os.umask(0o077)
    os.nice(CHECK_NICENESS)
    cap = memory_mb * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    folder_path = Path(folder)
    sha = None
    try:
        if digests is None:
            raw = (folder_path / REQUEST_BODY).read_bytes()
            (folder_path / REQUEST_BODY).unlink()
            try:
                body = PlanRequest.model_validate_json(raw)
            except ValidationError as error:
                return Checked(None, issues=[Issue("request body", err["msg"], key=".".join(map(str, err["loc"]))
                                                   or None) for err in error.errors()[:20]])
            del raw
            sha = fingerprint(body.model_dump(mode="json"))
            if body.tables:
                write_records(body.tables, folder_path)
            scenario, uploaded, explain = body.scenario, bool(body.tables), body.explain
        else:
            content = (folder_path / SCENARIO_UPLOAD).read_bytes()
            (folder_path / SCENARIO_UPLOAD).unlink()
            try:
                scenario = read_scenario_yaml(content, file)
            except InputError as error:
                return Checked(None, issues=error.issues)
            sha = fingerprint({"scenario": scenario, "explain": explain, "tables": digests})
            uploaded = bool(digests)
        admission = admit(scenario, folder_path, file=file, uploaded=uploaded, max_households=max_households,
                          time_cap=time_cap)
    except InputError as error:
        return Checked(sha, explain, issues=error.issues, truncated=error.truncated)
    except TooLarge as error:
        return Checked(sha, explain, too_large=str(error))
    except MemoryError:
        return Checked(sha, explain, too_large=f"checking this upload needs more than {memory_mb:,} MiB "
                                                "(ALLOCATOR_INTAKE_MEMORY_MB)")
    regions = admission.regions
    return Checked(sha, explain, scenario_name=admission.scenario.name, households=admission.households,
                   time_limit=admission.scenario.solver.time_limit, region_path=tuple(admission.region_path),
                   regions=tuple(zip(regions["region_id"], regions["parent_id"], regions["level"], strict=True)),
                   regions_file=regions.attrs.get("file", "regions.csv"))


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
    return Admission(scenario, households, region_path(regions), regions)


def _households_and_regions(scenario: Scenario, file: str, max_households: int) -> tuple[int, pd.DataFrame]:
    """Read (or generate) and check the tables; the household count and the regions table."""
    from allocator.targeting import is_raw_scenario, raw_tables, read_raw_tables
    from allocator.targeting.pipeline import load_tables

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
