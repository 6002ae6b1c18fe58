"""The ``national`` preset: 31 provinces' worth of counties at 2014 proportions, generated
county by county and streamed to disk, so the whole country is never in memory at once.

:func:`national_counties` lays out the country without drawing a household: per province its
registered poor households (the national 29.48 million apportioned by :data:`PROVINCES`), its
counties, which of them are national poor counties, and per county its caseload and seed.
:func:`generate_county` draws one county's raw registry tables with
:func:`allocator.synth.province.generate_province` (a one-county province from the county's
own seed: the same county is the same whatever else is generated) and gives its ids the
county's prefix. :func:`write_national` writes one raw data folder per province (Parquet, one
row group per county, appended as each county is drawn; a ``scenario.yaml`` that plans it)
plus ``provinces.csv`` and ``counties.csv``.

Assumptions (S = sourced, D = derived, A = assumption; see /work/shared/DOMAIN.md):

========================  ====================================================================  =====
quantity                  value                                                                 Q
========================  ====================================================================  =====
registered households     29,480,000 (2014 registration, DOMAIN §1.5)                           S
national poor counties    832, per province as on the 2014 list (:data:`PROVINCES`; the          S/B
                          per-province split is not in DOMAIN.md: recalled, unverified here;
                          Yunnan 88 and Guizhou 66 match DOMAIN §2.4)
households per province   ∝ the NBS survey's rural poor of 2014 per province (10k people;       B/A
                          the registry's quotas followed the NBS estimates, DOMAIN §1.5);
                          recalled, unverified here except Guizhou 623 (DOMAIN §2.4); they add
                          up to 70.10 m against 70.17 m nationally. Beijing, Tianjin, Shanghai,
                          Jiangsu and Zhejiang had no poor under the national line: no counties
counties per province     max(households / 11,000, its national poor counties) (the province    A
                          generator's one county per ~11,000 registered households)
county caseload           the province's households ∝ U(0.7, 1.3) x (1.25 national poor,        A
                          0.85 other), as in the province generator; at least 1
western                   the 12 western provinces (3 % exit threshold); the others 2 %         S
prefectures               7.5 counties each, as in the province generator                      A
hat-off year              the province's national poor counties in a random order of           S/A
                          difficulty (``schedule_quantile``; incidence is drawn only with the
                          county), years in the real batch proportions (28, 125, 283, 344, 52
                          of 832, DOMAIN §2.3) stretched onto the horizon
targets                   the national path rescaled to the start year, in every province     D
everything in a county    :mod:`allocator.synth.province` with ``counties=1``                  —
money                     each county's funds as the province generator sizes them for its     D/A
                          people (central, provincial, relocation loans, social donations,
                          integrated funds in national poor counties); East–West pairing in
                          the counties of half the prefectures of each province. In a
                          province folder the rows of each source and year are summed into
                          one province-wide row (regions '*', or the list of its counties)
========================  ====================================================================  =====

Seeds: the province's layout comes from ``SeedSequence([seed, province number])`` and each
county's tables from ``SeedSequence([seed, province number, county number])``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from allocator.synth.province import (
    COUNTIES_PER_PREFECTURE,
    HOUSEHOLDS_PER_COUNTY,
    batch_year_at,
    generate_province,
    national_targets,
)

NATIONAL_HOUSEHOLDS = 29_480_000
NATIONAL_POOR_COUNTIES = 832

# code, name, western, national poor counties (2014 list), NBS rural poor 2014 (10k people)
PROVINCES: tuple[tuple[str, str, bool, int, int], ...] = (
    ("BJ", "Beijing", False, 0, 0), ("TJ", "Tianjin", False, 0, 0), ("HE", "Hebei", False, 45, 320),
    ("SX", "Shanxi", False, 36, 269), ("NM", "Inner Mongolia", True, 31, 98), ("LN", "Liaoning", False, 0, 86),
    ("JL", "Jilin", False, 8, 81), ("HL", "Heilongjiang", False, 20, 111), ("SH", "Shanghai", False, 0, 0),
    ("JS", "Jiangsu", False, 0, 0), ("ZJ", "Zhejiang", False, 0, 0), ("AH", "Anhui", False, 20, 309),
    ("FJ", "Fujian", False, 0, 45), ("JX", "Jiangxi", False, 24, 276), ("SD", "Shandong", False, 0, 242),
    ("HA", "Henan", False, 38, 565), ("HB", "Hubei", False, 28, 323), ("HN", "Hunan", False, 40, 532),
    ("GD", "Guangdong", False, 0, 115), ("GX", "Guangxi", True, 33, 540), ("HI", "Hainan", False, 5, 48),
    ("CQ", "Chongqing", True, 14, 119), ("SC", "Sichuan", True, 66, 597), ("GZ", "Guizhou", True, 66, 623),
    ("YN", "Yunnan", True, 88, 574), ("XZ", "Tibet", True, 74, 61), ("SN", "Shaanxi", True, 56, 350),
    ("GS", "Gansu", True, 58, 417), ("QH", "Qinghai", True, 42, 52), ("NX", "Ningxia", True, 8, 45),
    ("XJ", "Xinjiang", True, 32, 212),
)
ID_COLUMNS = {  # columns holding ids that get the county's prefix
    "regions": ("region_id", "parent_id"), "villages_raw": ("village_id", "township_id"),
    "households_raw": ("household_id", "village_id"), "personnel": ("region_id",),
    "cadres": ("cadre_id", "township_id"),
}
STREAMED = ("regions", "villages_raw", "households_raw", "personnel", "cadres")  # one row group per county


def _apportion(total: int, weights: np.ndarray) -> np.ndarray:
    exact = total * weights / weights.sum()
    out = np.floor(exact).astype(np.int64)
    out[np.argsort(-(exact - out), kind="stable")[: total - int(out.sum())]] += 1
    return out


def national_provinces(households: int = NATIONAL_HOUSEHOLDS) -> pd.DataFrame:
    """Per province: code, name, western, national poor counties, registered households (the
    national total apportioned ∝ the 2014 rural poor) and counties."""
    frame = pd.DataFrame(PROVINCES, columns=["province", "name", "western", "poor_counties", "rural_poor_2014"])
    frame["households"] = _apportion(households, frame["rural_poor_2014"].to_numpy(dtype=float))
    by_size = np.round(frame["households"] / HOUSEHOLDS_PER_COUNTY).astype(np.int64)
    frame["counties"] = np.where(frame["households"] > 0, np.maximum(by_size, frame["poor_counties"]), 0)
    return frame


def national_counties(seed: int = 0, scale: float = 1.0, provinces: Sequence[str] | None = None) -> pd.DataFrame:
    """The country's counties, cheaply (no household is drawn): province, county_id, prefecture,
    national_poor, households (registered; times ``scale``, at least 1), east_west (paired) and
    seed. ``provinces`` keeps only those codes (same counties and seeds as in the full country)."""
    if not scale > 0:
        raise ValueError(f"scale must be > 0 (got {scale})")
    table = national_provinces()
    rows = []
    for number, p in enumerate(table.itertuples(index=False)):  # a loop per province
        if p.counties == 0 or (provinces is not None and p.province not in provinces):
            continue
        rng = np.random.default_rng(np.random.SeedSequence([seed, number]))
        n = int(p.counties)
        poor = np.zeros(n, dtype=bool)
        poor[rng.permutation(n)[: int(p.poor_counties)]] = True
        weight = rng.uniform(0.7, 1.3, n) * np.where(poor, 1.25, 0.85)
        caseload = np.maximum(1, np.round(_apportion(int(p.households), weight) * scale)).astype(np.int64)
        n_pref = max(1, round(n / COUNTIES_PER_PREFECTURE))
        prefecture = (np.arange(n) * n_pref) // n
        paired = rng.permutation(n_pref)[: max(1, round(n_pref / 2))]
        order = np.empty(n, dtype=float)  # the province's poor counties in a random order of difficulty
        order[poor] = (np.argsort(rng.permutation(int(poor.sum())), kind="stable") + 0.5) / max(int(poor.sum()), 1)
        order[~poor] = np.nan
        seeds = [int(np.random.SeedSequence([seed, number, c]).generate_state(1)[0]) for c in range(n)]
        rows.append(pd.DataFrame({
            "province": p.province, "province_name": p.name,
            "county_id": [f"{p.province}{c + 1:03d}" for c in range(n)],
            "prefecture": [f"{p.province}-P{k + 1:02d}" for k in prefecture], "national_poor": poor,
            "households": caseload, "east_west": np.isin(prefecture, paired), "western": bool(p.western),
            "seed": seeds, "schedule_quantile": np.round(order, 6)}))
    if not rows:
        raise ValueError(f"no province with registered poor among {list(provinces or [])}")
    return pd.concat(rows, ignore_index=True)


def generate_county(county: Mapping, start_year: int = 2016, deadline_year: int = 2020, *,
                    money_scale: float = 1.0) -> dict[str, pd.DataFrame]:
    """The raw registry tables of one county of :func:`national_counties` (a row, as a mapping):
    a one-county province (root ``province``, prefecture ``prefecture``) whose ids carry the
    county's prefix and whose funds serve this county alone."""
    tables = generate_province(int(county["households"]), start_year, deadline_year, seed=int(county["seed"]),
                               counties=1, poor_county_share=float(bool(county["national_poor"])),
                               money_scale=money_scale, western=bool(county["western"]))
    cid = str(county["county_id"])
    regions = tables["regions"]
    regions["name"] = regions["name"].where(regions["level"] != "province", str(county["province_name"]))
    renamed = {"PROV": str(county["province"]), "P01": str(county["prefecture"]), "C001": cid}
    for name, columns in ID_COLUMNS.items():
        frame = tables[name]
        for column in columns:
            values = frame[column].astype(object)
            known = values.map(renamed)
            values = known.where(known.notna(), np.where(values == "", "", cid + "-" + values.astype(str)))
            frame[column] = pd.array(values.to_numpy(dtype=object), dtype="str")
    quantile = float(county.get("schedule_quantile", np.nan))
    year = batch_year_at(np.array([quantile]), np.arange(start_year, deadline_year + 1))[0] \
        if np.isfinite(quantile) else pd.NA
    regions["hat_off_year"] = pd.array(np.where(regions["level"] == "county", year, pd.NA), dtype="Int64")
    funds = tables["funds"]
    if not county["east_west"]:
        funds = funds[funds["source_id"] != "east_west"]
    funds = funds.assign(regions=pd.array(funds["regions"].astype(object).replace("C001", cid), dtype="str"))
    tables["funds"] = funds.reset_index(drop=True)
    return tables


def write_national(out: str | Path, seed: int = 0, *, scale: float = 1.0, provinces: Sequence[str] | None = None,
                   start_year: int = 2016, deadline_year: int = 2020, money_scale: float = 1.0,
                   progress: Callable[..., None] | None = None) -> pd.DataFrame:
    """Stream the national preset into ``out``: one raw data folder per province (Parquet) with
    its ``scenario.yaml``, plus ``provinces.csv`` and ``counties.csv``. Counties are drawn and
    appended one at a time (one Parquet row group each); only a province's fund rows are kept
    until its folder is finished. ``progress("national preset: counties", province=, done=, of=)``
    (the counties written of all, for a bar with the time left) is called after each county.
    Returns :func:`national_counties`."""
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} is not empty; choose a new folder")
    counties = national_counties(seed, scale, provinces)
    out.mkdir(parents=True, exist_ok=True)
    written = 0
    for code, group in counties.groupby("province", sort=False):  # a loop per province
        folder = out / code
        folder.mkdir()
        writers: dict[str, pq.ParquetWriter] = {}
        funds, seen = [], set()
        for county in group.to_dict("records"):  # and per county
            tables = generate_county(county, start_year, deadline_year, money_scale=money_scale)
            regions = tables["regions"]
            keep = regions["region_id"].isin(seen)
            seen.update(regions["region_id"][regions["level"].isin(["province", "prefecture"])])
            tables["regions"] = regions[~keep]
            for name in STREAMED:
                table = pa.Table.from_pandas(tables[name], preserve_index=False)
                if name not in writers:
                    writers[name] = pq.ParquetWriter(folder / f"{name}.parquet", table.schema)
                writers[name].write_table(table)
            funds.append(tables["funds"])
            written += 1
            if progress is not None:
                progress("national preset: counties", province=code, done=written, of=len(counties))
        for writer in writers.values():
            writer.close()
        _province_funds(pd.concat(funds, ignore_index=True)).to_parquet(folder / "funds.parquet", index=False)
        national_targets(start_year, deadline_year).to_parquet(folder / "targets.parquet", index=False)
        western = bool(group["western"].iloc[0])
        scenario = {"name": f"national-{code}", "start_year": start_year, "deadline_year": deadline_year,
                    "data": ".", "policy": {"county_exit_threshold": {"default": 0.02, "western": 0.03}},
                    "targeting": {"basis": "rule"}, "solver": {"method": "auto", "mip_gap": 0.001}}
        (folder / "scenario.yaml").write_text(f"# {code}: {'western' if western else 'central/eastern'} province "
                                              f"of the national preset (seed {seed}, scale {scale})\n"
                                              + yaml.safe_dump(scenario, sort_keys=False))
    national_provinces().to_csv(out / "provinces.csv", index=False)
    counties.to_csv(out / "counties.csv", index=False)
    return counties


def _province_funds(funds: pd.DataFrame) -> pd.DataFrame:
    """The counties' fund rows summed per source and year into province-wide rows."""
    rows = []
    for (source, year), group in funds.groupby(["source_id", "year"], sort=True):
        regions = sorted(set(group["regions"]))
        rows.append({"source_id": source, "year": int(year), "amount": float(group["amount"].sum()),
                     "categories": group["categories"].iloc[0],
                     "regions": "*" if "*" in regions else ";".join(regions),
                     "carry_over": bool(group["carry_over"].iloc[0])})
    frame = pd.DataFrame(rows, columns=list(funds.columns))
    return frame.astype({"source_id": "str", "categories": "str", "regions": "str"})


def national_summary(counties: pd.DataFrame) -> dict:
    """Headline counts of a national layout: provinces, counties, poor counties, households."""
    return {"provinces": int(counties["province"].nunique()), "counties": len(counties),
            "national_poor_counties": int(counties["national_poor"].sum()),
            "households": int(counties["households"].sum()),
            "largest_county": int(counties["households"].max()),
            "mean_county": math.floor(counties["households"].mean())}


__all__ = ["NATIONAL_HOUSEHOLDS", "NATIONAL_POOR_COUNTIES", "PROVINCES", "generate_county", "national_counties",
           "national_provinces", "national_summary", "write_national"]
