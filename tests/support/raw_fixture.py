"""A small hand-made raw data set (regions, villages_raw, households_raw, funds, personnel) whose
identification is known cell by cell, for the targeting tests."""

from __future__ import annotations

import numpy as np
import pandas as pd

from allocator.inputs.raw import RAW_SPECS
from allocator.inputs.tables import SPECS
from allocator.targeting import build_candidates, load_catalog

LINE = 2855.0  # the 2015 line: data year of a 2016-2020 plan


def _typed(name: str, rows: list[dict]) -> pd.DataFrame:
    spec = RAW_SPECS.get(name) or SPECS[name]
    frame = pd.DataFrame(rows)
    for col in spec.columns:
        if col.name not in frame:
            frame[col.name] = col.default
        frame[col.name] = frame[col.name].astype(col.dtype)
    return frame[[c.name for c in spec.columns]]


def household(hid: str, village: str = "V1", **cells) -> dict:
    """A household that is not poor by any rule unless ``cells`` say so."""
    row = {"household_id": hid, "village_id": village, "size": 3, "labourers": 2, "income_per_capita": 2 * LINE,
           "household_type": "ordinary", "main_cause": "lack_of_funds", "other_causes": "",
           "dangerous_house": False, "unsafe_water": False, "children_out_of_school": 0, "uninsured_members": 0,
           "chronic_illness_members": 0, "disabled_members": 0, "recent_shock": "", "registered_poor": False}
    row.update(cells)
    return row


def raw_tables() -> dict[str, pd.DataFrame]:
    regions = _typed("regions", [
        {"region_id": "P", "parent_id": "", "level": "province", "name": "P", "western": False,
         "rural_population": 0},
        {"region_id": "C1", "parent_id": "P", "level": "county", "name": "C1", "western": True,
         "rural_population": 60},
        {"region_id": "T1", "parent_id": "C1", "level": "township", "name": "T1", "western": False,
         "rural_population": 0},
    ])
    base = {"township_id": "T1", "latitude": 26.0, "longitude": 106.0, "has_power": True, "has_broadband": True,
            "forest": False, "tourism_potential": 0.1, "hazard_zone": False}
    villages = _typed("villages_raw", [
        # poor: high incidence, low income, no collective income; lacks road and tap water
        {**base, "village_id": "V1", "population": 40, "has_road": False, "has_tap_water": False, "has_clinic": False,
         "collective_income": 0.0, "remoteness": 0.9, "income_per_capita": 2500.0, "forest": True},
        # high incidence and no collective income, but income too high: not poor
        {**base, "village_id": "V2", "population": 30, "has_road": True, "has_tap_water": True, "has_clinic": True,
         "collective_income": 0.0, "remoteness": 0.3, "income_per_capita": 9000.0},
        # large, rich, with collective income
        {**base, "village_id": "V3", "population": 2000, "has_road": True, "has_tap_water": True,
         "has_clinic": True, "collective_income": 50000.0, "remoteness": 0.1, "income_per_capita": 9000.0},
    ])
    households = _typed("households_raw", [
        household("H01", income_per_capita=0.5 * LINE, registered_poor=True),                 # income
        household("H02", dangerous_house=True, registered_poor=True),                         # housing
        household("H03", unsafe_water=True, registered_poor=True),                            # water (V1: no tap)
        household("H04", children_out_of_school=1, registered_poor=True),                     # schooling
        household("H05", uninsured_members=2),                                                # medical, missed
        household("H06", income_per_capita=0.8 * LINE, dangerous_house=True, labourers=0,
                  household_type="dibao", chronic_illness_members=1, main_cause="illness", registered_poor=True),
        household("H07", "V2", income_per_capita=1.2 * LINE, registered_poor=True),          # edge, wrongly registered
        household("H08", "V2", recent_shock="illness"),                                       # edge by shock
        household("H09", "V3"),                                                               # not poor, not edge
        household("H10", "V3", unsafe_water=True, income_per_capita=0.9 * LINE, registered_poor=True),
        household("H11", "V2", income_per_capita=0.7 * LINE, size=2, labourers=1, registered_poor=True),
        household("H12", "V2", income_per_capita=0.6 * LINE, labourers=0, household_type="tekun", size=1,
                  registered_poor=True),
    ])
    funds = pd.DataFrame({"source_id": ["central"] * 5, "year": np.arange(2016, 2021, dtype=np.int64),
                          "amount": [4e5] * 5, "categories": ["*"] * 5, "regions": ["*"] * 5,
                          "carry_over": [True] * 5})
    personnel = pd.DataFrame({"region_id": pd.Series([], dtype=str), "year": pd.Series([], dtype=np.int64),
                              "hours": pd.Series([], dtype=float)})
    return {"regions": regions, "villages_raw": villages, "households_raw": households, "funds": funds,
            "personnel": personnel}


def candidates_of(raw: dict[str, pd.DataFrame], ident, catalog=None, basis: str = "rule", **options):
    """``build_candidates`` on raw tables for a 2016-2020 plan from 2015 data (4,000 yuan line at
    the deadline), with the default catalogue unless ``catalog`` is given."""
    return build_candidates(ident, raw["households_raw"], raw["regions"], raw["funds"], raw["personnel"],
                            catalog or load_catalog(), basis=basis, data_year=2015, start_year=2016,
                            deadline_year=2020, line_deadline=4000.0, **options)
