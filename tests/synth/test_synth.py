"""The seeded synthetic generator: determinism, the column contract, foreign keys, ranges,
calibration invariants and writing (CSV and Parquet round trips, no silent overwrite)."""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pandas as pd
import pytest

from allocator.inputs.checks import check_tables
from allocator.inputs.tables import ANY, CATEGORIES, LEVELS, SPECS, read_tables, split_list
from allocator.synth import PRESETS, TABLE_NAMES, generate_canonical, generate_preset, write_tables


@pytest.fixture(scope="module")
def tiny() -> dict[str, pd.DataFrame]:
    return generate_preset("tiny", seed=3)


# optional contract columns the canonical presets leave out (their defaults apply)
UNDRAWN = ("hat_off_year", "sustained_probability", "earned_share", "safety_net_share", "cost_by_category",
           "carry_over_years", "min_spend_share", "practice", "poverty_probability")


@pytest.fixture(scope="module")
def demo() -> dict[str, pd.DataFrame]:
    return generate_preset("demo", seed=0)


def _digest(tables: dict[str, pd.DataFrame]) -> str:
    h = hashlib.sha256()
    for name in TABLE_NAMES:
        h.update(name.encode())
        h.update(tables[name].to_csv(index=False).encode())
    return h.hexdigest()


def _county_of_village(tables) -> pd.Series:
    regions = tables["regions"].set_index("region_id")
    return tables["villages"].set_index("village_id")["township_id"].map(regions["parent_id"])


# --- determinism ------------------------------------------------------------------------
def test_same_seed_gives_identical_tables():
    a = generate_canonical(400, seed=11, counties=2)
    b = generate_canonical(400, seed=11, counties=2)
    for name in TABLE_NAMES:
        pd.testing.assert_frame_equal(a[name], b[name], check_exact=True)
    assert _digest(a) == _digest(b)


def test_different_seed_gives_different_tables():
    a = generate_canonical(400, seed=11, counties=2)
    b = generate_canonical(400, seed=12, counties=2)
    assert _digest(a) != _digest(b)
    assert not a["packages"].equals(b["packages"])


def test_preset_is_its_kwargs_and_overrides_apply():
    assert set(PRESETS) >= {"tiny", "demo", "tight"}
    for kwargs in PRESETS.values():
        assert "seed" not in kwargs and kwargs["households"] >= 1
    a = generate_preset("tiny", seed=5)
    b = generate_canonical(seed=5, **PRESETS["tiny"])
    assert _digest(a) == _digest(b)
    c = generate_preset("tiny", seed=5, households=80, money_scale=None)
    assert c["households"]["registered_poor"].sum() == 80
    with pytest.raises(ValueError, match="unknown preset"):
        generate_preset("nation")


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError):
        generate_canonical(0)
    with pytest.raises(ValueError):
        generate_canonical(100, start_year=2020, deadline_year=2016)
    with pytest.raises(ValueError):
        generate_canonical(100, money_scale=-1)
    with pytest.raises(ValueError):
        generate_canonical(10, counties=11)


# --- the column contract ----------------------------------------------------------------
@pytest.mark.parametrize("fixture", ["tiny", "demo"])
def test_columns_dtypes_and_ranges_follow_the_spec(fixture, request):
    tables = request.getfixturevalue(fixture)
    assert list(tables) == list(TABLE_NAMES)
    for name, frame in tables.items():
        spec = SPECS[name]
        drawn = [c for c in spec.columns if c.name not in UNDRAWN]
        assert list(frame.columns) == [c.name for c in drawn], name
        assert len(frame) > 0, name
        assert not frame.duplicated(list(spec.key)).any(), f"{name}: duplicate key"
        for col in drawn:
            values = frame[col.name]
            if col.kind in ("str", "list"):
                assert values.dtype == "str", (name, col.name, values.dtype)
                assert not values.isna().any(), (name, col.name)
                if col.kind == "str" and not col.allow_empty:
                    assert (values != "").all(), (name, col.name)
                if col.choices:
                    assert values.isin(col.choices).all(), (name, col.name)
            else:
                assert str(values.dtype) == str(pd.Series([], dtype=col.dtype).dtype), (name, col.name, values.dtype)
            if col.kind in ("int", "float"):
                given = values.dropna() if col.allow_empty else values  # an optional cell may be empty
                assert np.isfinite(given.to_numpy(dtype=float)).all(), (name, col.name)
                values = given
                if col.minimum is not None:
                    assert (values >= col.minimum).all(), (name, col.name)
                if col.maximum is not None:
                    assert (values <= col.maximum).all(), (name, col.name)


def test_project_validator_accepts_generated_tables(tiny, demo):
    check_tables(tiny, list(range(2016, 2021)))
    check_tables(demo, list(range(2016, 2021)))
    other = generate_canonical(300, start_year=2017, deadline_year=2019, seed=2)
    check_tables(other, [2017, 2018, 2019])


# --- foreign keys -----------------------------------------------------------------------
def test_region_tree(demo):
    regions = demo["regions"]
    level_of = regions.set_index("region_id")["level"]
    root = regions[regions["parent_id"] == ""]
    assert len(root) == 1 and root["level"].iloc[0] == "province"
    child = regions[regions["parent_id"] != ""]
    parent_level = child["parent_id"].map(level_of)
    assert parent_level.notna().all()
    rank = {lvl: i for i, lvl in enumerate(LEVELS)}
    assert (child["level"].map(rank) == parent_level.map(rank) + 1).all()
    counties = regions[regions["level"] == "county"]
    assert len(counties) == PRESETS["demo"]["counties"]
    assert counties["western"].all() and (counties["rural_population"] > 0).all()
    assert (regions.loc[regions["level"] != "county", "rural_population"] == 0).all()


@pytest.mark.parametrize("fixture", ["tiny", "demo"])
def test_foreign_keys_resolve(fixture, request):
    t = request.getfixturevalue(fixture)
    level_of = t["regions"].set_index("region_id")["level"]
    assert (t["villages"]["township_id"].map(level_of) == "township").all()
    assert t["households"]["village_id"].isin(t["villages"]["village_id"]).all()
    assert t["projects"]["village_id"].isin(t["villages"]["village_id"]).all()
    assert t["packages"]["household_id"].isin(t["households"]["household_id"]).all()
    assert t["personnel"]["region_id"].map(level_of).isin(["county", "township"]).all()
    # every required project exists in the household's own village
    pk = t["packages"]
    village_of = t["households"].set_index("household_id")["village_id"]
    need = pk.assign(item=pk["requires"].map(split_list)).explode("item").dropna(subset=["item"])
    assert len(need) > 0
    keys = set(zip(t["projects"]["village_id"], t["projects"]["project_id"], strict=True))
    pairs = zip(need["household_id"].map(village_of), need["item"], strict=True)
    assert all(pair in keys for pair in pairs)
    # funds: known categories and regions (never a township)
    for cell in t["funds"]["categories"]:
        items = split_list(cell)
        assert items and all(c == ANY or c in CATEGORIES for c in items)
    for cell in t["funds"]["regions"]:
        items = split_list(cell)
        assert items and all(r == ANY or level_of.get(r) in ("province", "prefecture", "county") for r in items)


def test_requirements_follow_the_rules(demo):
    pk, pr = demo["packages"], demo["projects"]
    village_of = demo["households"].set_index("household_id")["village_id"]
    has = set(zip(pr["village_id"], pr["project_id"], strict=True))
    village = pk["household_id"].map(village_of)
    road = np.array([(v, "road") in has for v in village])
    industry = pk["category"].eq("industry").to_numpy()
    needs_road = pk["requires"].map(lambda s: "road" in split_list(s)).to_numpy()
    assert (needs_road == (industry & road)).all()
    reloc = pk["package_id"] == "relocation"
    assert reloc.any()
    assert pk.loc[reloc, "requires"].map(lambda s: "relocation_site" in split_list(s)).all()


# --- values -----------------------------------------------------------------------------
@pytest.mark.parametrize("fixture", ["tiny", "demo"])
def test_probabilities_costs_and_lags(fixture, request):
    t = request.getfixturevalue(fixture)
    hh, pk, pr = t["households"], t["packages"], t["projects"]
    base = pk["household_id"].map(hh.set_index("household_id")["baseline_exit_probability"])
    assert hh["baseline_exit_probability"].between(0, 1).all()
    assert (pk["exit_probability"] > base).all() and (pk["exit_probability"] <= 0.95).all()
    assert (pk["cost"] >= 0).all() and (pr["cost"] >= 0).all() and (t["funds"]["amount"] >= 0).all()
    assert pk["personnel_hours"].between(10, 60).all()
    assert pk["lag_years"].between(0, 2).all()
    assert (pk.loc[pk["package_id"] == "education", "lag_years"] == 2).all()
    assert pk.loc[pk["package_id"] == "relocation", "lag_years"].between(1, 2).all()
    assert set(pk["package_id"]) <= {"industry", "microcredit", "job", "training", "education", "housing",
                                     "relocation", "health", "dibao", "ranger", "water"}


def test_households_and_their_candidates(demo):
    hh, pk = demo["households"], demo["packages"]
    registered = hh[hh["registered_poor"]]
    assert len(registered) == PRESETS["demo"]["households"]
    assert 0.05 <= 1 - len(registered) / len(hh) <= 0.10
    per_household = pk.groupby("household_id").size()
    counts = per_household.reindex(registered["household_id"], fill_value=0)
    assert counts.between(1, 4).all()
    others = pk["household_id"].isin(hh.loc[~hh["registered_poor"], "household_id"])
    assert others.any() and others.mean() < 0.05
    assert 2.8 <= (registered["size"]).mean() <= 3.4


def test_incidence_and_villages(demo):
    hh = demo["households"]
    county = hh["village_id"].map(_county_of_village(demo))
    poor = county[hh["registered_poor"].to_numpy()].value_counts()
    rural = demo["regions"].set_index("region_id")["rural_population"]
    incidence = poor / rural.loc[poor.index]
    assert incidence.between(0.08, 0.17).all(), incidence
    villages = demo["villages"]
    assert villages["poor_village"].any() and not villages["poor_village"].all()
    assert villages["latitude"].between(24, 29).all() and villages["longitude"].between(103, 109).all()
    listed_people = hh.groupby("village_id")["size"].sum()
    assert (villages.set_index("village_id")["population"].loc[listed_people.index] >= listed_people).all()


@pytest.mark.parametrize("start, deadline", [(2016, 2020), (2017, 2019), (2020, 2020)])
def test_years_and_mandatory_durations_fit(start, deadline):
    t = generate_canonical(500, start_year=start, deadline_year=deadline, seed=1, counties=2)
    years = deadline - start + 1
    for name in ("funds", "personnel"):
        assert t[name]["year"].between(start, deadline).all()
    assert set(t["funds"]["year"]) == set(range(start, deadline + 1))
    pr = t["projects"]
    assert pr["mandatory"].any()
    assert (pr.loc[pr["mandatory"], "duration_years"] <= years).all()
    assert (pr["duration_years"] >= 1).all()
    assert set(pr.loc[pr["mandatory"], "project_id"]) <= {"road", "tap_water"}
    townships = t["regions"].loc[t["regions"]["level"] == "township", "region_id"]
    assert len(t["personnel"]) >= len(townships) * years


def test_funds_structure_and_money_scale(demo):
    funds = demo["funds"]
    assert set(funds["source_id"]) == {"central", "provincial", "integrated", "east_west", "relocation_loan"}
    central = funds[funds["source_id"] == "central"].sort_values("year")
    assert central["carry_over"].all() and (central["amount"].diff().dropna() > 0).all()
    assert (funds.loc[funds["source_id"] == "east_west", "year"] > 2016).all()
    assert (funds.loc[funds["source_id"] == "relocation_loan", "categories"] == "housing").all()
    assert not funds.loc[funds["source_id"] == "provincial", "carry_over"].any()
    registered = demo["households"].loc[demo["households"]["registered_poor"], "household_id"]
    candidates = demo["packages"].loc[demo["packages"]["household_id"].isin(registered), "cost"].sum()
    ratio = (candidates + demo["projects"]["cost"].sum()) / funds["amount"].sum()
    assert 2.0 <= ratio <= 3.0
    tight = generate_preset("tight", seed=0)
    for name in TABLE_NAMES:
        if name != "funds":
            pd.testing.assert_frame_equal(tight[name], demo[name])
    scale = PRESETS["tight"]["money_scale"]
    assert math.isclose(tight["funds"]["amount"].sum(), scale * funds["amount"].sum(), rel_tol=1e-5)


@pytest.mark.parametrize("households, start", [(60, 2016), (60, 2019), (60, 2020), (3000, 2016)])
def test_mandatory_projects_are_affordable_in_time(households, start):
    t = generate_canonical(households, start_year=start, deadline_year=2020, seed=4,
                           counties=2 if households < 100 else 3)
    pr, funds = t["projects"], t["funds"]
    mandatory = pr[pr["mandatory"]]
    latest_start = 2020 - mandatory["duration_years"] + 1
    assert (latest_start >= start).all()
    free = funds[funds["categories"] == ANY]
    for year in range(start, 2021):
        due = mandatory.loc[latest_start <= year, "cost"].sum()
        assert due <= 0.6 * free.loc[free["year"] <= year, "amount"].sum() + 10, year


# --- writing ----------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_write_tables_round_trip(tiny, tmp_path, fmt):
    folder = tmp_path / "data"
    paths = write_tables(tiny, folder, fmt=fmt)
    assert sorted(p.name for p in folder.iterdir()) == sorted(f"{n}.{fmt}" for n in TABLE_NAMES)
    assert paths["households"] == folder / f"households.{fmt}"
    back = read_tables(folder)
    for name in TABLE_NAMES:
        pd.testing.assert_frame_equal(back[name][list(tiny[name].columns)].reset_index(drop=True),
                                      tiny[name].reset_index(drop=True),
                                      check_dtype=False, check_exact=False, rtol=1e-12, obj=name)
    if fmt == "csv":
        text = (folder / "projects.csv").read_text()
        assert "true" in text or "false" in text
        assert "True" not in text and "False" not in text
        assert text.splitlines()[0] == ",".join(c.name for c in SPECS["projects"].columns)


def test_write_tables_refuses_to_overwrite(tiny, tmp_path):
    folder = tmp_path / "data"
    write_tables(tiny, folder)
    with pytest.raises(FileExistsError, match="not empty"):
        write_tables(tiny, folder)
    (folder / "notes.txt").write_text("keep me")
    write_tables(tiny, folder, fmt="parquet", overwrite=True)
    names = sorted(p.name for p in folder.iterdir())
    assert names == sorted([f"{n}.parquet" for n in TABLE_NAMES] + ["notes.txt"])
    empty = tmp_path / "empty"
    empty.mkdir()
    write_tables(tiny, empty)  # an existing empty folder is fine
    with pytest.raises(ValueError):
        write_tables(tiny, tmp_path / "x", fmt="xlsx")
