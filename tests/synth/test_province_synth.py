"""The seeded raw-registry generator: determinism, the column contract, the raw reader round trip,
distributions against DOMAIN §7, the poor-village rule, funds, cadres and argument checks."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest

from allocator.inputs.raw import CAUSES, RAW_SPECS, read_raw_tables
from allocator.inputs.scenario import POVERTY_LINE
from allocator.inputs.tables import ANY, LEVELS, SPECS, split_list
from allocator.synth.canonical import write_tables
from allocator.synth.province import (
    CADRE_COLUMNS,
    CADRE_SKILLS,
    PROVINCE_PRESETS,
    batch_years,
    generate_province,
    generate_province_preset,
    national_targets,
)

TABLES = ("regions", "villages_raw", "households_raw", "funds", "personnel", "targets", "cadres")
KIND_DTYPE = {"int": "int64", "float": "float64", "bool": "bool", "nullable int": "Int64"}
CADRE_KINDS = {"cadre_id": "str", "township_id": "str", "capacity": "int", "skills": "list", "latitude": "float",
               "longitude": "float", "hours_per_year": "float"}
MEMBER_COLUMNS = ("labourers", "children_out_of_school", "uninsured_members", "chronic_illness_members",
                  "disabled_members")


@pytest.fixture(scope="module")
def small() -> dict[str, pd.DataFrame]:
    return generate_province_preset("province-small", seed=0)


@pytest.fixture(scope="module")
def registered(small) -> pd.DataFrame:
    hh = small["households_raw"]
    return hh[hh["registered_poor"]]


def _digest(tables: dict[str, pd.DataFrame]) -> str:
    h = hashlib.sha256()
    for name in TABLES:
        h.update(name.encode())
        h.update(tables[name].to_csv(index=False).encode())
    return h.hexdigest()


def _village_frame(tables) -> pd.DataFrame:
    """Villages with their registered poor people, the rule's three tests and the generator's flag."""
    hh, villages = tables["households_raw"], tables["villages_raw"]
    reg = hh[hh["registered_poor"]]
    v = villages.set_index("village_id")
    people = reg.groupby("village_id")["size"].sum().reindex(v.index, fill_value=0)
    households = reg.groupby("village_id").size().reindex(v.index, fill_value=0)
    incidence = people / v["population"]
    province_rate = people.sum() / v["population"].sum()
    average = (v["population"] * v["income_per_capita"]).sum() / v["population"].sum()
    rule = (incidence > 2 * province_rate) & (v["income_per_capita"] < 0.6 * average) & (v["collective_income"] == 0)
    return v.assign(people=people, registered=households, incidence=incidence, rule=rule,
                    poor=v.index.isin(villages.attrs["poor_village_ids"]))


def _spec_columns(name: str) -> list[tuple[str, str]]:
    if name == "cadres":
        return list(CADRE_KINDS.items())
    spec = RAW_SPECS.get(name) or SPECS[name]
    return [(c.name, "nullable int" if c.kind == "int" and c.allow_empty else c.kind) for c in spec.columns]


# --- determinism and presets ------------------------------------------------------------
def test_same_seed_gives_identical_tables():
    a = generate_province(2000, seed=11, counties=2)
    b = generate_province(2000, seed=11, counties=2)
    for name in TABLES:
        pd.testing.assert_frame_equal(a[name], b[name], check_exact=True)
    assert _digest(a) == _digest(b)
    assert a["villages_raw"].attrs == b["villages_raw"].attrs


def test_different_seed_gives_different_tables():
    a = generate_province(2000, seed=11, counties=2)
    b = generate_province(2000, seed=12, counties=2)
    assert _digest(a) != _digest(b)
    assert not a["households_raw"].equals(b["households_raw"])


def test_presets_are_their_kwargs_and_overrides_apply():
    assert set(PROVINCE_PRESETS) == {"county", "province-small", "province", "province-dispersed"}
    a = generate_province_preset("county", seed=5, households=500, counties=None)
    b = generate_province(500, seed=5, counties=1)
    assert _digest(a) == _digest(b)
    assert a["households_raw"]["registered_poor"].sum() == 500
    with pytest.raises(ValueError, match="province-small"):
        generate_province_preset("nation")


def test_bad_arguments_are_refused():
    for kwargs in (dict(households=0), dict(households=100, start_year=2020, deadline_year=2016),
                   dict(households=100, money_scale=-1), dict(households=100, money_scale=float("nan")),
                   dict(households=100, money_scale=float("inf")), dict(households=10, counties=11),
                   dict(households=10, counties=0), dict(households=10, poor_county_share=1.5),
                   dict(households=10, poor_villages=11), dict(households=10, poor_villages=-1)):
        with pytest.raises(ValueError):
            generate_province(**kwargs)


# --- the column contract ----------------------------------------------------------------
def test_columns_and_dtypes_follow_the_specs(small):
    assert list(small) == list(TABLES)
    assert tuple(small["cadres"].columns) == CADRE_COLUMNS
    for name, frame in small.items():
        columns = _spec_columns(name)
        assert list(frame.columns) == [c for c, _ in columns], name
        assert len(frame) > 0, name
        for column, kind in columns:
            values = frame[column]
            if kind in ("str", "list"):
                assert values.dtype == "str", (name, column, values.dtype)
                assert not values.isna().any(), (name, column)
            else:
                assert str(values.dtype) in (KIND_DTYPE[kind], "Int64"), (name, column, values.dtype)
            if kind in ("int", "float") and column not in ("latitude", "longitude", "income_per_capita"):
                given = values.dropna()  # an optional cell (a hat-off year, a pace) may be empty
                assert np.isfinite(given.to_numpy(dtype=float)).all() and (given >= 0).all(), (name, column)
    for name in ("villages_raw", "households_raw"):
        spec = RAW_SPECS[name]
        for col in spec.columns:
            values = small[name][col.name]
            if col.choices:
                assert values[values != ""].isin(col.choices).all(), (name, col.name)
            if col.kind == "str" and not col.allow_empty:
                assert (values != "").all(), (name, col.name)
            if col.minimum is not None:
                assert (values >= col.minimum).all(), (name, col.name)
            if col.maximum is not None:
                assert (values <= col.maximum).all(), (name, col.name)
        assert not small[name].duplicated(list(spec.key)).any()


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_written_tables_read_back_as_raw_data(tmp_path, fmt):
    tables = generate_province(1500, seed=4, counties=2, start_year=2017, deadline_year=2019)
    write_tables(tables, tmp_path / "data", fmt=fmt)
    back = read_raw_tables(tmp_path / "data")  # raises InputError on any problem
    for name in ("regions", "villages_raw", "households_raw", "funds", "personnel"):
        assert len(back[name]) == len(tables[name]), name
    assert back["households_raw"].attrs["registry_given"]
    assert back["households_raw"]["registered_poor"].sum() == 1500


def test_ids_tree_and_ordering(small):
    regions = small["regions"]
    level_of = regions.set_index("region_id")["level"]
    root = regions[regions["parent_id"] == ""]
    assert root["region_id"].tolist() == ["PROV"] and root["level"].iloc[0] == "province"
    child = regions[regions["parent_id"] != ""]
    rank = {lvl: i for i, lvl in enumerate(LEVELS)}
    assert (child["level"].map(rank) == child["parent_id"].map(level_of).map(rank) + 1).all()
    prefix = {"prefecture": "P", "county": "C", "township": "T"}
    for level, letter in prefix.items():
        ids = regions.loc[regions["level"] == level, "region_id"]
        assert ids.str.fullmatch(letter + r"\d+").all(), level
    counties = regions[regions["level"] == "county"]
    assert len(counties) == 10 and counties["western"].all() and (counties["rural_population"] > 0).all()
    assert (regions.loc[regions["level"] != "county", "rural_population"] == 0).all()
    assert not generate_province(300, western=False)["regions"]["western"].any()

    villages, hh = small["villages_raw"], small["households_raw"]
    assert villages["village_id"].str.fullmatch(r"V\d{6}").all()
    assert (villages["township_id"].map(level_of) == "township").all()
    assert hh["household_id"].str.fullmatch(r"H\d{7}").all()
    assert hh["village_id"].is_monotonic_increasing  # households are sorted by village
    assert hh["village_id"].isin(villages["village_id"]).all()
    assert villages["latitude"].between(24, 29).all() and villages["longitude"].between(103, 109).all()


# --- households -------------------------------------------------------------------------
def test_household_counts_and_non_registered_rows(small, registered):
    hh = small["households_raw"]
    assert len(registered) == 100_000
    non = hh[~hh["registered_poor"]]
    assert len(non) == pytest.approx(0.08 * len(registered), rel=0.01)
    line = POVERTY_LINE[2015]
    ratio = non["income_per_capita"] / line
    marginal = ratio >= 1.0
    assert marginal.mean() == pytest.approx(5 / 8, abs=0.02)  # 5 % marginal, 3 % exclusion errors
    assert ratio[marginal].between(1.0, 1.5 + 1e-3).all()
    assert non.loc[marginal, "dangerous_house"].mean() < 0.15  # mostly no guarantee gap
    assert (ratio[~marginal] < 1.0).all()


def test_member_counts_never_exceed_size(small):
    hh = small["households_raw"]
    for column in MEMBER_COLUMNS:
        assert (hh[column] <= hh["size"]).all(), column
        assert (hh[column] >= 0).all(), column


def test_size_cause_and_labour_distributions(registered):
    size = registered["size"].clip(upper=6).value_counts(normalize=True).sort_index()
    np.testing.assert_allclose(size.to_numpy(), [0.15, 0.25, 0.22, 0.20, 0.11, 0.07], atol=0.01)
    causes = registered["main_cause"].value_counts(normalize=True).reindex(list(CAUSES), fill_value=0)
    np.testing.assert_allclose(causes.to_numpy(), [0.40, 0.10, 0.15, 0.10, 0.08, 0.05, 0.03, 0.03, 0.02, 0.02,
                                                    0.01, 0.01], atol=0.01)
    labour = registered["labourers"].clip(upper=3).value_counts(normalize=True).sort_index()
    assert labour[0] == pytest.approx(0.30, abs=0.015)
    assert labour[1] + labour[2] + labour[3] == pytest.approx(0.70, abs=0.015)
    zero = registered["labourers"] == 0
    by_cause = zero.groupby(registered["main_cause"]).mean()
    assert by_cause["lack_of_labour"] > 0.75 and by_cause["illness"] > by_cause["lack_of_funds"]


def test_household_types_are_tied_to_labour(registered):
    types = registered["household_type"].value_counts(normalize=True)
    assert types["ordinary"] == pytest.approx(0.78, abs=0.01)
    assert types["dibao"] == pytest.approx(0.18, abs=0.01)
    assert types["tekun"] == pytest.approx(0.04, abs=0.006)
    tekun = registered[registered["household_type"] == "tekun"]
    assert (tekun["labourers"] == 0).all() and (tekun["size"] <= 2).all()
    safety_net = registered["household_type"] != "ordinary"
    assert (registered.loc[safety_net, "labourers"] == 0).mean() > 0.7


def test_other_causes(registered):
    items = registered["other_causes"].map(split_list)
    count = items.map(len)
    assert count.between(0, 2).all()
    np.testing.assert_allclose(count.value_counts(normalize=True).sort_index().to_numpy(), [0.4, 0.4, 0.2],
                               atol=0.01)
    assert all(set(i) <= set(CAUSES) and len(set(i)) == len(i) for i in items)
    assert not any(m in i for m, i in zip(registered["main_cause"], items, strict=True))


def test_income_ratio(registered):
    ratio = registered["income_per_capita"] / POVERTY_LINE[2015]
    assert ratio.median() == pytest.approx(0.85, abs=0.02)
    assert ratio.min() >= 0.2 - 1e-3 and ratio.max() <= 1.6 + 1e-3
    assert np.log(ratio[(ratio > 0.25) & (ratio < 1.55)]).std() == pytest.approx(0.38, abs=0.04)
    other_year = generate_province(400, start_year=2018, deadline_year=2020, seed=1)["households_raw"]
    reg = other_year[other_year["registered_poor"]]
    assert (reg["income_per_capita"] / POVERTY_LINE[2017]).median() == pytest.approx(0.85, abs=0.08)


def test_guarantee_gaps_and_shocks(small, registered):
    assert registered["dangerous_house"].mean() == pytest.approx(0.45, abs=0.02)
    assert registered["unsafe_water"].mean() == pytest.approx(0.25, abs=0.02)
    assert (registered["children_out_of_school"] > 0).mean() == pytest.approx(0.03, abs=0.006)
    assert (registered["uninsured_members"] > 0).mean() == pytest.approx(0.05, abs=0.007)
    illness = registered["main_cause"] == "illness"
    disability = registered["main_cause"] == "disability"
    assert (registered.loc[illness, "chronic_illness_members"] >= 1).all()
    assert (registered.loc[~illness, "chronic_illness_members"] >= 1).mean() == pytest.approx(0.10, abs=0.01)
    assert (registered.loc[disability, "disabled_members"] >= 1).all()
    assert (registered.loc[~disability, "disabled_members"] >= 1).mean() == pytest.approx(0.05, abs=0.008)
    school = registered["main_cause"] == "schooling"
    assert (registered.loc[school, "children_out_of_school"] > 0).mean() > 0.08
    shocks = registered["recent_shock"].value_counts(normalize=True)
    assert shocks["illness"] == pytest.approx(0.06, abs=0.006)
    assert shocks["disaster"] == pytest.approx(0.02, abs=0.004)
    assert set(shocks.index) == {"", "illness", "disaster"}
    # tilts: dangerous houses follow remoteness, unsafe water follows the village's tap water
    v = small["villages_raw"].set_index("village_id")
    remote = registered["village_id"].map(v["remoteness"]) > 0.6
    assert registered.loc[remote, "dangerous_house"].mean() > registered.loc[~remote, "dangerous_house"].mean() + 0.1
    no_tap = ~registered["village_id"].map(v["has_tap_water"]).astype(bool)
    assert registered.loc[no_tap, "unsafe_water"].mean() > 0.5 > 0.2 > registered.loc[~no_tap, "unsafe_water"].mean()


# --- villages and incidence -------------------------------------------------------------
def test_incidence_and_poor_village_share(small, registered):
    regions = small["regions"]
    counties = regions[regions["level"] == "county"].set_index("region_id")
    assert len(registered) / counties["rural_population"].sum() == pytest.approx(0.125, abs=0.02)
    v = _village_frame(small)
    assert v["people"].sum() / v["population"].sum() == pytest.approx(0.125, abs=0.02)
    assert (v["population"] >= 0).all()
    in_poor = registered["village_id"].map(v["poor"])
    assert in_poor.mean() == pytest.approx(0.55, abs=0.02)
    county_of_town = regions.set_index("region_id")["parent_id"]
    county = registered["village_id"].map(v["township_id"]).map(county_of_town)
    county_incidence = county.value_counts() / counties["rural_population"]
    assert county_incidence.between(0.05, 0.22).all()
    people_per_poor_village = v["people"].sum() / v["poor"].sum()
    assert people_per_poor_village == pytest.approx(670, rel=0.05)
    assert len(v) == pytest.approx(100_000 * 11_000 / 655_000, rel=0.02)


def test_poor_villages_follow_one_high_one_low_one_none(small):
    v = _village_frame(small)
    poor, rule = v["poor"], v["rule"]
    assert rule[poor].mean() >= 0.88  # ~5 % are borderline cases
    assert rule[poor].mean() < 1.0
    assert rule[~poor].mean() <= 0.02
    assert (v.loc[~poor, "incidence"] > 2 * v["people"].sum() / v["population"].sum()).mean() == pytest.approx(
        0.025, abs=0.02)  # some non-poor villages are borderline on one criterion
    assert (v.loc[~poor, "collective_income"] > 0).mean() == pytest.approx(0.80, abs=0.05)
    assert v.loc[~poor, "collective_income"][lambda s: s > 0].median() > 10_000
    assert (v.loc[poor, "collective_income"] == 0).mean() > 0.95
    average = (v["population"] * v["income_per_capita"]).sum() / v["population"].sum()
    assert average == pytest.approx(7600, rel=0.03)


def test_village_infrastructure_and_geography(small):
    v = _village_frame(small)
    poor = v["poor"]
    gaps = {"has_road": (0.30, 0.08), "has_tap_water": (0.35, 0.15), "has_power": (0.02, 0.005),
            "has_broadband": (0.60, 0.30), "has_clinic": (0.15, 0.05)}
    for column, (p_poor, p_other) in gaps.items():
        assert (~v.loc[poor, column]).mean() == pytest.approx(p_poor, abs=max(0.06, p_poor * 0.3)), column
        assert (~v.loc[~poor, column]).mean() == pytest.approx(p_other, abs=max(0.03, p_other * 0.3)), column
    assert v.loc[poor, "remoteness"].mean() > v.loc[~poor, "remoteness"].mean() + 0.1
    assert v["remoteness"].between(0, 1).all() and v["tourism_potential"].between(0, 1).all()
    assert v["tourism_potential"].mean() == pytest.approx(2 / 7, abs=0.02)
    assert v["hazard_zone"].mean() == pytest.approx(0.05, abs=0.015)
    assert v["forest"].mean() == pytest.approx(0.25 + 0.30 * v["remoteness"].mean(), abs=0.04)
    eligible = (v["remoteness"] > 0.85) | v["hazard_zone"]
    assert v.loc[eligible, "people"].sum() / v["people"].sum() == pytest.approx(0.10, abs=0.04)


# --- funds ------------------------------------------------------------------------------
def test_funds_are_real_sized(small, registered):
    funds = small["funds"].set_index(["source_id", "year"])["amount"]
    scale = registered["size"].sum() / 2_000_000
    central = {2016: 1.9e9, 2017: 2.45e9, 2018: 3.0e9, 2019: 3.6e9, 2020: 4.2e9}
    for year, amount in central.items():
        assert funds["central", year] == pytest.approx(amount * scale, rel=0.01)
        assert funds["provincial", year] == pytest.approx(0.6 * amount * scale, rel=0.01)
        assert funds["social_donation", year] == pytest.approx(0.02 * amount * scale, rel=0.01)
    assert (small["funds"]["amount"] == np.round(small["funds"]["amount"])).all()
    counties = small["regions"].query("level == 'county'")["region_id"]
    table = small["funds"].set_index("source_id")
    integrated_regions = split_list(table.loc["integrated", "regions"].iloc[0])
    assert set(integrated_regions) <= set(counties) and len(integrated_regions) == round(0.58 * 10)
    assert funds["integrated", 2016] == pytest.approx(36e6 * len(integrated_regions))
    assert sorted(funds["east_west"].index) == [2017, 2018, 2019, 2020]
    assert funds["east_west", 2017] == pytest.approx(0.3e9 * scale, rel=0.01)
    assert funds["east_west", 2020] == pytest.approx(0.6e9 * scale, rel=0.01)
    assert set(split_list(table.loc["east_west", "regions"].iloc[0])) <= set(counties)
    v = _village_frame(small)
    movers = v.loc[(v["remoteness"] > 0.85) | v["hazard_zone"], "people"].sum()
    loan = funds["relocation_loan"]
    assert sorted(loan.index) == [2016, 2017, 2018, 2019]
    assert loan.sum() == pytest.approx(62_500 * 0.57 * movers, rel=1e-6)
    np.testing.assert_allclose(loan.to_numpy() / loan.sum(), np.array([25, 35, 25, 10]) / 95, atol=1e-6)
    carry = table["carry_over"].groupby(level=0).first()
    assert carry.to_dict() == {"central": True, "east_west": True, "integrated": True, "provincial": True,
                               "relocation_loan": True, "social_donation": True}
    recall = table["carry_over_years"].groupby(level=0).first().astype(object).fillna("never")
    assert recall.to_dict() == {"central": 2, "east_west": 2, "integrated": 2, "provincial": 2,  # fiscal money
                                "relocation_loan": "never", "social_donation": "never"}
    assert table["min_spend_share"].isna().all()  # no sourced disbursement pace
    cats = table["categories"].groupby(level=0).first()
    assert cats["central"] == ANY and cats["relocation_loan"] == "housing"
    assert cats["integrated"] == "infrastructure;industry"


def test_funds_follow_the_horizon_and_money_scale():
    a = generate_province(2000, start_year=2019, deadline_year=2020, seed=2)["funds"]
    assert set(a["year"]) == {2019, 2020}
    loan = a[a["source_id"] == "relocation_loan"]["amount"].to_numpy()
    np.testing.assert_allclose(loan / loan.sum(), [25 / 60, 35 / 60], atol=1e-6)
    one = generate_province(2000, start_year=2016, deadline_year=2016, seed=2)["funds"]
    assert "east_west" not in set(one["source_id"])
    zero = generate_province(2000, seed=2, money_scale=0)["funds"]
    assert (zero["amount"] == 0).all()
    double = generate_province(2000, seed=2, money_scale=2)["funds"]
    base = generate_province(2000, seed=2)["funds"]
    np.testing.assert_allclose(double["amount"], 2 * base["amount"], atol=1)
    late = generate_province(2000, start_year=2021, deadline_year=2021, seed=2)["funds"]
    central = late.loc[late["source_id"] == "central", "amount"].iloc[0]
    people = generate_province(2000, start_year=2021, deadline_year=2021, seed=2)["households_raw"]
    people = people.loc[people["registered_poor"], "size"].sum()
    assert central == pytest.approx(4.2e9 * 1.215 * people / 2e6, rel=1e-6)


# --- cadres and personnel ---------------------------------------------------------------
def test_cadres_and_personnel(small, registered):
    cadres, v = small["cadres"], _village_frame(small)
    towns = small["regions"].query("level == 'township'")["region_id"]
    assert cadres["cadre_id"].is_unique and cadres["township_id"].isin(towns).all()
    assert cadres["capacity"].between(5, 10).all()
    assert cadres["hours_per_year"].between(80, 160).all()
    skills = cadres["skills"].map(split_list)
    assert skills.map(len).between(1, 2).all()
    assert all(set(s) <= set(CADRE_SKILLS) and len(set(s)) == len(s) for s in skills)
    counts = skills.explode().value_counts()
    assert counts.index[0] == "agriculture"
    per_town = cadres.groupby("township_id").agg(n=("capacity", "size"), capacity=("capacity", "sum"))
    need = registered["village_id"].map(v["township_id"]).value_counts()
    poor = v.groupby("township_id")["poor"].sum()
    per_town = per_town.join(need.rename("households")).join(poor.rename("poor_villages"))
    assert (per_town["n"] >= 4 * per_town["poor_villages"]).all()
    ratio = per_town["capacity"] / per_town["households"]
    assert ratio.median() == pytest.approx(1.05, abs=0.03)
    short = ratio < 0.9
    assert 0.0 < short.mean() < 0.15
    assert ratio[short].between(0.7, 0.9).all()
    town_lat = v.groupby("township_id")["latitude"].mean()
    assert (cadres["latitude"] - cadres["township_id"].map(town_lat)).abs().max() < 0.5
    personnel = small["personnel"]
    assert len(personnel) == len(towns) * 5 and set(personnel["year"]) == set(range(2016, 2021))
    hours = cadres.groupby("township_id")["hours_per_year"].sum()
    got = personnel.groupby("region_id")["hours"].first()
    np.testing.assert_allclose(got.reindex(hours.index), hours, rtol=1e-9)


# --- full-size presets ------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize(("preset", "poor_villages"), [("province", 3000), ("province-dispersed", 4900)])
def test_full_presets(preset, poor_villages):
    tables = generate_province_preset(preset, seed=0)
    v = _village_frame(tables)
    assert v["poor"].sum() == pytest.approx(poor_villages, rel=0.05)
    assert v["rule"].sum() == pytest.approx(0.95 * poor_villages, rel=0.05)
    assert len(v) == pytest.approx(11_000, rel=0.02)
    hh = tables["households_raw"]
    assert hh["registered_poor"].sum() == 655_000
    regions = tables["regions"]
    counties = regions[regions["level"] == "county"]
    assert len(counties) == 60
    assert len(split_list(tables["funds"].set_index("source_id").loc["integrated", "regions"].iloc[0])) == 35
    assert v["people"].sum() == pytest.approx(2_000_000, rel=0.05)
    assert v["people"].sum() / v["poor"].sum() == pytest.approx(2_040_000 / poor_villages, rel=0.05)


# --- schedule: hat-off years, annual targets ----------------------------------------------
def test_batches_reproduce_the_real_county_counts():
    years = batch_years(np.arange(832.0), np.arange(2016, 2021))
    assert np.bincount(years - 2016).tolist() == [28, 125, 283, 344, 52]  # DOMAIN §2.3
    assert (np.diff(years) >= 0).all()  # the least difficult first
    assert batch_years(np.array([0.1]), np.arange(2016, 2021)).tolist() == [2018]  # the median county
    assert batch_years(np.array([0.1, 0.2]), np.array([2020])).tolist() == [2020, 2020]
    stretched = batch_years(np.arange(100.0), np.arange(2018, 2021))  # 3 years: cumulative 13 %, 66 %, 100 %
    assert np.bincount(stretched - 2018).tolist() == [13, 53, 34]


def test_province_poor_counties_take_off_in_batches_by_incidence():
    tables = generate_province_preset("province", seed=0)
    regions = tables["regions"].set_index("region_id")
    counties = regions[regions["level"] == "county"]
    assert regions.loc[regions["level"] != "county", "hat_off_year"].isna().all()
    poor_set = set(split_list(tables["funds"].query("source_id == 'integrated'")["regions"].iloc[0]))
    poor = counties[counties.index.isin(poor_set)]
    assert len(poor) == 35 and counties.loc[~counties.index.isin(poor_set), "hat_off_year"].isna().all()
    # 35 counties in the real proportions (28, 125, 283, 344, 52 of 832): 1, 5, 12, 15, 2
    assert poor["hat_off_year"].value_counts().sort_index().tolist() == [1, 5, 12, 15, 2]
    hh = tables["households_raw"].query("registered_poor")
    county_of = tables["villages_raw"].set_index("village_id")["township_id"].map(regions["parent_id"])
    registered = hh["village_id"].map(county_of).value_counts()
    incidence = (registered[poor.index] / poor["rural_population"]).sort_values()
    assert poor.loc[incidence.index, "hat_off_year"].is_monotonic_increasing
    county = generate_province_preset("county", seed=1)["regions"]
    assert county.loc[county["level"] == "county", "hat_off_year"].tolist() == [2018]


def test_targets_follow_the_national_path_rescaled_to_the_start():
    full = national_targets(2016, 2020)
    assert (full["region_id"] == "").all()
    assert full["max_poor_share"].tolist() == [0.785, 0.544, 0.304, 0.101]  # 2020's 0: the county rules
    assert full["year"].tolist() == [2016, 2017, 2018, 2019]
    late = national_targets(2018, 2022)  # shares of the end-2017 stock; none poor after 2020
    assert late["year"].tolist() == [2018, 2019]
    assert late["max_poor_share"].tolist() == [round(0.24 / 0.43, 3), round(0.08 / 0.43, 3)]
    assert len(national_targets(2012, 2016)) == 0  # no published stock at the end of 2011
    generated = generate_province(500, start_year=2018, deadline_year=2020, seed=1)["targets"]
    pd.testing.assert_frame_equal(generated, national_targets(2018, 2020))
