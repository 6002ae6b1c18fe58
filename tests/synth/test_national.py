"""The national preset: 2014 proportions, county seeds, and streaming to disk on a small slice."""

from __future__ import annotations

import pandas as pd
import pyarrow.parquet as pq
import pytest

import allocator
from allocator.synth.national import (
    NATIONAL_HOUSEHOLDS,
    NATIONAL_POOR_COUNTIES,
    generate_county,
    national_counties,
    national_provinces,
    write_national,
)
from allocator.targeting import raw_tables
from tests.support.progress import Recorder, check_counted, check_drawn


def test_provinces_hold_the_national_totals_at_2014_proportions():
    provinces = national_provinces()
    assert len(provinces) == 31 and provinces["western"].sum() == 12
    assert provinces["households"].sum() == NATIONAL_HOUSEHOLDS
    assert provinces["poor_counties"].sum() == NATIONAL_POOR_COUNTIES
    share = provinces["rural_poor_2014"] / provinces["rural_poor_2014"].sum()
    assert (provinces["households"] - share * NATIONAL_HOUSEHOLDS).abs().max() <= 1
    assert (provinces["counties"] >= provinces["poor_counties"]).all()
    counties = national_counties(seed=3)
    assert len(counties) == provinces["counties"].sum() and counties["county_id"].is_unique
    assert counties["households"].sum() == NATIONAL_HOUSEHOLDS
    assert counties["national_poor"].sum() == NATIONAL_POOR_COUNTIES
    poor = counties.groupby("national_poor")["households"].mean()
    assert poor[True] > poor[False]  # national poor counties carry more of the caseload


def test_a_slice_has_the_same_counties_and_seeds_as_the_whole_country():
    whole = national_counties(seed=3)
    part = national_counties(seed=3, provinces=["NX", "GZ"])
    expected = whole[whole["province"].isin(["NX", "GZ"])].reset_index(drop=True)
    pd.testing.assert_frame_equal(part, expected)
    row = part.iloc[0].to_dict()
    first, again = generate_county(row), generate_county(row)
    for name in first:
        pd.testing.assert_frame_equal(first[name], again[name])


def test_write_national_streams_one_row_group_per_county(tmp_path):
    out = tmp_path / "national"
    counties = write_national(out, seed=3, scale=0.01, provinces=["NX"])
    folder = out / "NX"
    assert len(counties) == 17
    for name in ("regions", "villages_raw", "households_raw", "personnel", "cadres"):
        assert pq.ParquetFile(folder / f"{name}.parquet").num_row_groups == len(counties)
    households = pd.read_parquet(folder / "households_raw.parquet")
    assert households["household_id"].is_unique
    registered = households[households["registered_poor"]].groupby(households["household_id"].str[:5]).size()
    assert registered.to_dict() == dict(zip(counties["county_id"], counties["households"], strict=True))
    funds = pd.read_parquet(folder / "funds.parquet")
    assert not funds.duplicated(["source_id", "year"]).any()
    per_county = pd.concat([generate_county(row)["funds"] for row in counties.to_dict("records")])
    assert funds["amount"].sum() == pytest.approx(per_county["amount"].sum())
    sc = allocator.load_scenario(folder / "scenario.yaml")
    raw = raw_tables(sc)  # the folder passes the raw contract's checks
    regions = raw["regions"]
    assert (regions["level"] == "county").sum() == 17 and (regions["level"] == "province").sum() == 1
    assert pd.read_csv(out / "counties.csv")["households"].sum() == counties["households"].sum()
    poor = counties[counties["national_poor"]]
    hat_off = regions.set_index("region_id")["hat_off_year"]
    assert hat_off[poor["county_id"]].notna().all() and hat_off.drop(poor["county_id"]).isna().all()
    assert len(raw["targets"]) == 4  # 2016-2019: at the deadline the county rules are the target
    with pytest.raises(FileExistsError):
        write_national(out, seed=3, scale=0.01, provinces=["NX"])


def test_write_national_reports_counties_done_of_all_provinces(tmp_path):
    """One count over every province's counties (not restarting per province): a bar with the time left."""
    seen = Recorder()
    counties = write_national(tmp_path / "national", seed=3, scale=0.01, provinces=["NX", "FJ"], progress=seen)
    reports = seen.of("national preset: counties")
    assert check_counted(reports) == len(counties) == 34
    assert [r["province"] for r in reports] == list(counties["province"])
    check_drawn(seen.events, "national preset: counties")
