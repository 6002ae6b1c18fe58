"""Raw registry data → identification → candidates → the canonical tables, for one scenario.

:func:`raw_tables` reads a raw data folder or generates a province preset;
:func:`prepare` runs identification and candidates on them and returns both results, so
``allocator identify``, ``allocator candidates`` and ``allocator solve`` share one path.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from allocator.scenario import Scenario
from allocator.targeting.candidates import Candidates, build_candidates
from allocator.targeting.catalog import Catalog, load_catalog
from allocator.targeting.identify import Identification, identify
from allocator.targeting.raw import is_raw_folder, read_raw_tables


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
        from allocator.synth.province import PROVINCE_PRESETS

        return scenario.generate.preset in PROVINCE_PRESETS
    return is_raw_folder(scenario.data_dir())


def raw_tables(scenario: Scenario) -> dict[str, pd.DataFrame]:
    """The scenario's raw tables: generated from its province preset or read (and checked) from its folder."""
    if scenario.generate is not None:
        from allocator.synth.province import generate_province_preset

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
        from allocator.errors import Issue, ScenarioError

        raise ScenarioError([Issue(scenario.source.name if scenario.source else "scenario",
                                   "basis 'registry' needs the registry's registered_poor column in households_raw",
                                   key="targeting.basis", expected="'rule', or a registered_poor column")])
    candidates = build_candidates(ident, raw["households_raw"], raw["regions"], raw["funds"], raw["personnel"],
                                  catalog, basis=scenario.targeting.basis, data_year=scenario.data_year,
                                  start_year=scenario.start_year, deadline_year=scenario.deadline_year,
                                  line_deadline=scenario.poverty_line(scenario.deadline_year),
                                  sustain_years=scenario.policy.sustain_years, targets=raw.get("targets"))
    return Targeting(identification=ident, candidates=candidates, catalog=catalog)


__all__ = ["Targeting", "identify_scenario", "is_raw_scenario", "prepare", "raw_tables"]
