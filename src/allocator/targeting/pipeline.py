"""A scenario's data → the canonical tables: raw registry data through identification and
candidates, canonical data read or generated, checked either way.

:func:`raw_tables` reads a raw data folder or generates a province preset;
:func:`prepare` runs identification and candidates on them and returns both results, so
``allocator identify``, ``allocator candidates`` and ``allocator solve`` share one path;
:func:`load_tables` is what every later stage reads a scenario's tables with.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from allocator.errors import Issue, IssueCollector, ScenarioError
from allocator.inputs.checks import check_tables
from allocator.inputs.raw import is_raw_folder, read_raw_tables
from allocator.inputs.scenario import Scenario, apply_money
from allocator.inputs.tables import OPTIONAL_TABLES, REQUIRED_TABLES, read_tables
from allocator.synth import generate_preset
from allocator.synth.province import PROVINCE_PRESETS, generate_province_preset
from allocator.targeting.candidates import Candidates, build_candidates
from allocator.targeting.catalog import Catalog, load_catalog
from allocator.targeting.identify import Identification, identify


@dataclass
class Targeting:
    """What targeting produced for a scenario: who is poor and why, and the candidate packages."""

    identification: Identification
    candidates: Candidates
    catalog: Catalog

    @property
    def tables(self) -> dict[str, pd.DataFrame]:
        """The canonical tables, ready for :func:`allocator.build_problem`."""
        return self.candidates.tables


def is_raw_scenario(scenario: Scenario) -> bool:
    """True when the scenario's data is raw registry data (a province preset or a raw folder)."""
    if scenario.generate is not None:
        return scenario.generate.preset in PROVINCE_PRESETS
    return is_raw_folder(scenario.data_dir())


def raw_tables(scenario: Scenario) -> dict[str, pd.DataFrame]:
    """The scenario's raw tables: generated from its province preset or read (and checked) from its folder."""
    if scenario.generate is not None:
        overrides = {k: v for k, v in scenario.generate.model_dump().items()
                     if k not in ("preset", "seed") and v is not None}
        tables = generate_province_preset(scenario.generate.preset, seed=scenario.generate.seed,
                                          start_year=scenario.start_year, deadline_year=scenario.deadline_year,
                                          **overrides)
        tables["households_raw"].attrs["registry_given"] = True
        return tables
    return read_raw_tables(scenario.data_dir(), encoding=scenario.encoding)


def identify_scenario(scenario: Scenario, raw: dict[str, pd.DataFrame] | None = None) -> Identification:
    """Identification only (``allocator identify``)."""
    raw = raw if raw is not None else raw_tables(scenario)
    return identify(raw["regions"], raw["villages_raw"], raw["households_raw"],
                    poverty_line=scenario.poverty_line(scenario.data_year),
                    edge_factor=scenario.targeting.edge_factor)


def prepare(scenario: Scenario, raw: dict[str, pd.DataFrame] | None = None) -> Targeting:
    """Identification and candidates: the canonical tables of a raw scenario."""
    raw = raw if raw is not None else raw_tables(scenario)
    catalog = load_catalog(scenario.catalog_path())
    ident = identify_scenario(scenario, raw)
    if scenario.targeting.basis == "registry" and "registered_poor" not in ident.cards:
        raise ScenarioError([Issue(scenario.source.name if scenario.source else "scenario",
                                   "basis 'registry' needs the registry's registered_poor column in households_raw",
                                   key="targeting.basis", expected="'rule', or a registered_poor column")])
    candidates = build_candidates(ident, raw["households_raw"], raw["regions"], raw["funds"], raw["personnel"],
                                  catalog, basis=scenario.targeting.basis, data_year=scenario.data_year,
                                  start_year=scenario.start_year, deadline_year=scenario.deadline_year,
                                  line_deadline=scenario.poverty_line(scenario.deadline_year),
                                  sustain_years=scenario.policy.sustain_years, targets=raw.get("targets"))
    return Targeting(identification=ident, candidates=candidates, catalog=catalog)


def canonical_scenario(scenario: Scenario) -> dict:
    """The scenario that solves a raw scenario's canonical tables written beside it (``data: .``,
    UTF-8, without the generator and the targeting settings that made them)."""
    written = scenario.model_dump(mode="json", exclude_none=True)
    for key in ("generate", "targeting", "encoding"):
        written.pop(key, None)
    written["data"] = "."
    return written


def load_tables(scenario: Scenario) -> dict[str, pd.DataFrame]:
    """The scenario's contract tables, read from its data folder or generated from its preset,
    and checked: cell errors and cross-table errors are raised together in one InputError.
    Raw registry data (a province preset or a raw folder) goes through targeting first. The
    scenario's ``money`` and ``money_scale`` then change the fund amounts (:func:`apply_money`)."""
    tables = _read_or_generate(scenario)
    tables["funds"] = apply_money(tables["funds"], scenario)
    return tables


def _read_or_generate(scenario: Scenario) -> dict[str, pd.DataFrame]:
    if is_raw_scenario(scenario):
        tables = prepare(scenario).tables
        check_tables(tables, scenario.years, policy=scenario.policy, scenario_file=_file_name(scenario))
        return tables
    if scenario.generate is not None:
        overrides = {k: v for k, v in scenario.generate.model_dump().items()
                     if k not in ("preset", "seed") and v is not None}
        if "asset_share" in overrides:
            raise ScenarioError([Issue(_file_name(scenario), "asset_share is for the province presets",
                                       key="generate.asset_share", expected="a preset among "
                                       + ", ".join(PROVINCE_PRESETS), found=scenario.generate.preset)])
        tables = generate_preset(scenario.generate.preset, seed=scenario.generate.seed,
                                 start_year=scenario.start_year, deadline_year=scenario.deadline_year, **overrides)
        check_tables(tables, scenario.years, policy=scenario.policy, scenario_file=_file_name(scenario))
        return tables
    issues = IssueCollector()
    tables = read_tables(scenario.data_dir(), issues, encoding=scenario.encoding)
    if set(tables) == set(REQUIRED_TABLES + OPTIONAL_TABLES):
        check_tables(tables, scenario.years, issues, policy=scenario.policy, scenario_file=_file_name(scenario))
    issues.raise_if_any()
    return tables


def _file_name(scenario: Scenario) -> str:
    """The scenario file's name, for issues about its keys."""
    return scenario.source.name if scenario.source is not None else "scenario"


__all__ = ["Targeting", "canonical_scenario", "identify_scenario", "is_raw_scenario", "load_tables", "prepare",
           "raw_tables"]
