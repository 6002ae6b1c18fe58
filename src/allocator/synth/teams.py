"""Seeded synthetic resident work teams: one per poor village plus a few spare.

:func:`generate_teams` returns the ``teams`` table (:data:`TEAM_COLUMNS`): team_id,
department, home_county, size, latitude, longitude. Drawn from
``numpy.random.default_rng(seed)`` and vectorised, so the same arguments give identical
tables.

Assumptions (A = assumption):

=====================  ====================================================================  ==
quantity               value                                                                 Q
=====================  ====================================================================  ==
number of teams        round(1.05 x poor villages): one per poor village plus 5 % spare      A
sending level          county departments 80 %, prefecture 12 %, province 8 %                A
home county            each team is drawn for a random poor village (so teams follow the     A
                       poor villages): a county team's home county is that village's
                       county; a prefecture team's a random county of the same prefecture;
                       a province team's a random county of the province
department             '<level> <department>' from :data:`DEPARTMENTS` (equally likely)      A
size                   3 / 4 / 5 members with 50 / 30 / 20 %                                 A
coordinates            where the team is based: the mean position of the villages of its     A
                       home county (county), prefecture or province, + N(0, 0.03°)
=====================  ====================================================================  ==
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from allocator.inputs.tables import take_text
from allocator.synth.common import numbered_ids, text_array

TEAM_COLUMNS = ("team_id", "department", "home_county", "size", "latitude", "longitude")
SPARE_SHARE = 0.05
LEVEL_P = {"county": 0.80, "prefecture": 0.12, "province": 0.08}
DEPARTMENTS = ("finance dept", "agriculture dept", "health commission", "education dept",
               "human resources and social security dept", "transport dept", "water resources dept",
               "development and reform commission", "state-owned enterprise", "poverty alleviation office")
SIZE_P = {3: 0.50, 4: 0.30, 5: 0.20}
LOCATION_NOISE = 0.03  # degrees


def _county_of_villages(villages: pd.DataFrame, regions: pd.DataFrame) -> np.ndarray:
    parent = regions.drop_duplicates("region_id").set_index("region_id")["parent_id"]
    if "county_id" in villages.columns:
        return villages["county_id"].astype(str).to_numpy()
    county = villages["township_id"].map(parent)
    if county.isna().any():
        missing = villages.loc[county.isna(), "township_id"].iloc[0]
        raise ValueError(f"township {missing!r} of the villages is not in regions")
    return county.astype(str).to_numpy()


def _poor_mask(villages: pd.DataFrame) -> np.ndarray:
    if "poor_village" in villages.columns:
        return villages["poor_village"].to_numpy(dtype=bool)
    poor_ids = villages.attrs.get("poor_village_ids")
    if poor_ids is None:
        raise ValueError("villages need a poor_village column (or attrs['poor_village_ids'] from the generator)")
    return villages["village_id"].isin(set(poor_ids)).to_numpy()


def generate_teams(villages: pd.DataFrame, regions: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """The ``teams`` table for the poor villages of ``villages``.

    ``villages`` needs village_id, latitude, longitude and either county_id or township_id
    (mapped to counties through ``regions``); the poor ones are those with ``poor_village``
    true (or, for the raw generator's ``villages_raw``, ``attrs['poor_village_ids']``).
    """
    rng = np.random.default_rng(seed)
    county = _county_of_villages(villages, regions)
    poor = _poor_mask(villages)
    lat = villages["latitude"].to_numpy(dtype=float)
    lon = villages["longitude"].to_numpy(dtype=float)
    located = np.isfinite(lat) & np.isfinite(lon)
    n_poor = int(poor.sum())
    n = round(n_poor * (1 + SPARE_SHARE))
    none = np.array([], dtype=object)
    empty = pd.DataFrame({"team_id": text_array(none), "department": text_array(none),
                          "home_county": text_array(np.array([], dtype=object)), "size": np.zeros(0, dtype=np.int64),
                          "latitude": np.zeros(0), "longitude": np.zeros(0)})
    if n == 0 or not located.any():
        return empty

    regions = regions.drop_duplicates("region_id")
    parent = regions.set_index("region_id")["parent_id"]
    counties = np.array(sorted(set(county[located])))
    v_county = pd.Index(counties).get_indexer(county)
    pref_of_county = parent.reindex(counties).fillna("").astype(str).to_numpy()
    prefs, p_code = np.unique(pref_of_county, return_inverse=True)
    in_c = located & (v_county >= 0)
    c_lat = np.bincount(v_county[in_c], weights=lat[in_c], minlength=len(counties))
    c_lon = np.bincount(v_county[in_c], weights=lon[in_c], minlength=len(counties))
    c_n = np.maximum(np.bincount(v_county[in_c], minlength=len(counties)), 1)
    c_lat, c_lon = c_lat / c_n, c_lon / c_n
    p_lat = np.bincount(p_code, weights=c_lat * c_n, minlength=len(prefs)) / np.bincount(
        p_code, weights=c_n, minlength=len(prefs))
    p_lon = np.bincount(p_code, weights=c_lon * c_n, minlength=len(prefs)) / np.bincount(
        p_code, weights=c_n, minlength=len(prefs))
    all_lat, all_lon = float(lat[in_c].mean()), float(lon[in_c].mean())

    poor_idx = np.flatnonzero(poor & in_c)
    if len(poor_idx) == 0:
        return empty
    base = poor_idx[rng.integers(0, len(poor_idx), n)]
    levels = np.array(list(LEVEL_P))
    level = rng.choice(len(levels), size=n, p=np.array(list(LEVEL_P.values())))
    base_county = v_county[base]
    # prefecture teams: a random county of the base village's prefecture
    order = np.argsort(p_code, kind="stable")
    start = np.searchsorted(p_code[order], np.arange(len(prefs)))
    size_p = np.bincount(p_code, minlength=len(prefs))
    bp = p_code[base_county]
    pref_county = order[start[bp] + np.floor(rng.random(n) * size_p[bp]).astype(np.int64)]
    any_county = rng.integers(0, len(counties), n)
    home = np.select([level == 0, level == 1], [base_county, pref_county], any_county)
    centre_lat = np.select([level == 0, level == 1], [c_lat[home], p_lat[p_code[home]]], all_lat)
    centre_lon = np.select([level == 0, level == 1], [c_lon[home], p_lon[p_code[home]]], all_lon)
    dept = rng.integers(0, len(DEPARTMENTS), n)
    dept_vocab = [f"{lv} {d}" for lv in levels for d in DEPARTMENTS]
    sizes = np.array(list(SIZE_P))[rng.choice(len(SIZE_P), size=n, p=np.array(list(SIZE_P.values())))]
    team_lat = np.clip(centre_lat + rng.normal(0, LOCATION_NOISE, n), -90, 90)
    team_lon = np.clip(centre_lon + rng.normal(0, LOCATION_NOISE, n), -180, 180)
    return pd.DataFrame({
        "team_id": text_array(numbered_ids("W", n, 5)),
        "department": take_text(dept_vocab, level * len(DEPARTMENTS) + dept),
        "home_county": take_text(list(counties), home),
        "size": sizes.astype(np.int64),
        "latitude": np.round(team_lat, 5),
        "longitude": np.round(team_lon, 5),
    })


__all__ = ["DEPARTMENTS", "TEAM_COLUMNS", "generate_teams"]
