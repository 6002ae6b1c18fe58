"""Targeting: from a province's registry data to the canonical problem.

raw tables (:mod:`allocator.inputs.raw`) → identification of the poor and why (:mod:`.identify`) → candidate
packages per household from the measure catalogue and the effect model (:mod:`.catalog`,
:mod:`.candidates`); :mod:`.pipeline` runs them for a scenario.
"""

from allocator.inputs.raw import RAW_SPECS, check_raw_tables, is_raw_folder, read_raw_tables
from allocator.targeting.candidates import Candidates, build_candidates
from allocator.targeting.catalog import DEFAULT_CATALOG, Catalog, load_catalog
from allocator.targeting.identify import Identification, identify
from allocator.targeting.pipeline import Targeting, identify_scenario, is_raw_scenario, prepare, raw_tables

__all__ = ["Candidates", "Catalog", "DEFAULT_CATALOG", "Identification", "RAW_SPECS", "Targeting",
           "build_candidates", "check_raw_tables", "identify", "identify_scenario", "is_raw_folder",
           "is_raw_scenario", "load_catalog", "prepare", "raw_tables", "read_raw_tables"]
