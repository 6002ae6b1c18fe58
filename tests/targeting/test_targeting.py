"""Targeting: identification rules per reason code, registry error rates, the catalogue's
checks, and candidates checked against eligibility and guarantee rules written out here,
independently of the catalogue's expressions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy.special import ndtr

from allocator.errors import InputError, ScenarioError
from allocator.inputs.tables import split_list
from allocator.synth.canonical import write_tables
from allocator.targeting import identify, load_catalog, read_raw_tables
from allocator.targeting.catalog import DEFAULT_CATALOG
from tests.support.raw_fixture import LINE, candidates_of, household, raw_tables

FIXERS = {  # guarantee column -> measures that fix it
    "dangerous_house": {"housing_renovation", "relocation"},
    "unsafe_water": {"water_connection", "village_water_link", "relocation"},
    "children_out_of_school": {"education_subsidy"},
    "uninsured_members": {"health_package"},
}


def eligible(measure: str, h: pd.Series, v: pd.Series) -> bool:
    """The default catalogue's eligibility rules, written out by hand."""
    labour = h["labourers"]
    rules = {
        "industry_grant": h["household_type"] != "tekun",
        "microcredit": labour >= 1 and h["household_type"] != "tekun",
        "job_placement": labour >= 1,
        "skills_training": labour >= 1,
        "public_welfare_job": labour >= 1 and (labour == 1 or h["chronic_illness_members"] + h["disabled_members"] > 0),
        "forest_ranger": bool(v["forest"]) and labour >= 1,
        "tourism_homestay": v["tourism_potential"] >= 0.6 and labour >= 1,
        "asset_income": v["asset_income_assets"] != "none",
        "dibao_topup": labour == 0 or h["household_type"] != "ordinary",
        "health_package": h["uninsured_members"] > 0 or h["chronic_illness_members"] > 0,
        "education_subsidy": h["children_out_of_school"] > 0 or h["main_cause"] == "schooling",
        "housing_renovation": bool(h["dangerous_house"]),
        "relocation": v["remoteness"] > 0.85 or bool(v["hazard_zone"]),
        "water_connection": bool(h["unsafe_water"]) and bool(v["has_tap_water"]),
        "village_water_link": bool(h["unsafe_water"]) and not bool(v["has_tap_water"]),
    }
    return bool(rules[measure])


def check_candidates(raw: dict[str, pd.DataFrame], tables: dict[str, pd.DataFrame]) -> None:
    """Every package: measures eligible, every failing guarantee fixed, requirements exist,
    probabilities sound, the baseline beaten."""
    hh = raw["households_raw"].set_index("household_id")
    villages = raw["villages_raw"].set_index("village_id")
    packages = tables["packages"]
    assert len(packages), "no packages at all"
    assert packages[["household_id", "package_id"]].duplicated().sum() == 0
    planned = tables["households"].set_index("household_id")
    assert planned.loc[packages["household_id"], "registered_poor"].all(), "a package for a household not planned"
    projects = set(zip(tables["projects"]["village_id"], tables["projects"]["project_id"], strict=True))
    for row in packages.itertuples(index=False):
        h = hh.loc[row.household_id]
        v = villages.loc[h["village_id"]]
        chosen = set(row.package_id.split("+"))
        for measure in chosen:
            assert eligible(measure, h, v), f"{row.household_id} offered ineligible {measure}"
        for column, fixers in FIXERS.items():
            if h[column]:
                assert chosen & fixers, f"{row.household_id}: {row.package_id} leaves {column} unfixed"
        for project in split_list(row.requires):
            assert (h["village_id"], project) in projects, f"{row.household_id} requires missing {project}"
        assert 0 <= row.exit_probability <= 1
        assert row.exit_probability > planned.loc[row.household_id, "baseline_exit_probability"]
        assert row.cost >= 0 and row.personnel_hours >= 0


@pytest.fixture(scope="module")
def fixture_result():
    raw = raw_tables()
    ident = identify(raw["regions"], raw["villages_raw"], raw["households_raw"], poverty_line=LINE,
                     registry_given=True)
    cands = candidates_of(raw, ident)
    return raw, ident, cands


# --- identification ---------------------------------------------------------------------
@pytest.mark.parametrize("hid, reasons", [
    ("H01", "income"), ("H02", "housing"), ("H03", "water"), ("H04", "schooling"), ("H05", "medical"),
    ("H06", "income;housing"), ("H07", ""), ("H08", ""), ("H09", ""), ("H10", "income;water"),
])
def test_reason_codes(fixture_result, hid, reasons):
    cards = fixture_result[1].cards.set_index("household_id")
    assert cards.loc[hid, "reasons"] == reasons
    assert cards.loc[hid, "poor"] == bool(reasons)


def test_income_exactly_at_the_line_is_not_poor():
    raw = raw_tables()
    raw["households_raw"] = raw["households_raw"].head(1).assign(income_per_capita=LINE)
    ident = identify(raw["regions"], raw["villages_raw"], raw["households_raw"], poverty_line=LINE)
    assert not ident.poor[0] and ident.cards["edge"].iloc[0]


def test_edge_households(fixture_result):
    cards = fixture_result[1].cards.set_index("household_id")
    assert cards.loc["H07", "edge_reasons"] == "near_line"
    assert cards.loc["H08", "edge_reasons"] == "shock"
    assert not cards.loc["H09", "edge"]
    assert not cards.loc[cards["poor"], "edge"].any(), "a poor household is planned, not flagged as edge"


def test_poor_villages_one_high_one_low_one_none(fixture_result):
    villages = fixture_result[1].villages.set_index("village_id")
    assert villages.loc["V1", "poor_village"]
    assert villages.loc["V2", "high_incidence"] and villages.loc["V2", "no_collective_income"]
    assert not villages.loc["V2", "low_income"] and not villages.loc["V2", "poor_village"]
    assert not villages.loc["V3", "poor_village"]
    rate = villages["poor_people"].sum() / villages["population"].sum()
    assert villages.loc["V1", "incidence"] > 2 * rate


def test_registry_error_rates(fixture_result):
    registry = fixture_result[1].summary["registry"]
    # registered: H01-H04, H06, H07, H10, H11, H12 (9); H07 is not poor; H05 is poor and missed
    assert registry["registered"] == 9
    assert registry["inclusion_error"] == pytest.approx(1 / 9, abs=1e-6)
    assert registry["exclusion_error"] == pytest.approx(1 / 9, abs=1e-6)


def test_registry_absent_is_not_reported(tmp_path):
    raw = raw_tables()
    raw["households_raw"] = raw["households_raw"].drop(columns="registered_poor")
    write_tables(raw, tmp_path / "raw")
    read = read_raw_tables(tmp_path / "raw")
    assert read["households_raw"].attrs["registry_given"] is False
    ident = identify(read["regions"], read["villages_raw"], read["households_raw"], poverty_line=LINE)
    assert "registry" not in ident.summary and "registered_poor" not in ident.cards


# --- raw input errors -------------------------------------------------------------------
def test_raw_errors_name_file_row_and_column(tmp_path):
    raw = raw_tables()
    hh = raw["households_raw"].copy()
    hh.loc[0, "labourers"] = 5  # more than its size 3
    hh.loc[1, "village_id"] = "V9"
    hh.loc[2, "other_causes"] = "illness;bad_luck"
    raw["households_raw"] = hh
    write_tables(raw, tmp_path / "raw")
    text = (tmp_path / "raw" / "households_raw.csv").read_text().replace("lack_of_funds", "laziness", 1)
    (tmp_path / "raw" / "households_raw.csv").write_text(text)
    with pytest.raises(InputError) as info:
        read_raw_tables(tmp_path / "raw")
    messages = [str(i) for i in info.value.issues]
    assert any("households_raw.csv row 1" in m and "'labourers'" in m for m in messages), messages
    assert any("row 2" in m and "'village_id'" in m and "village does not exist" in m for m in messages)
    assert any("row 3" in m and "'other_causes'" in m for m in messages)
    assert any("row 1" in m and "'main_cause'" in m and "laziness" in m for m in messages)


def test_raw_missing_table_is_reported(tmp_path):
    raw = raw_tables()
    del raw["villages_raw"]
    write_tables(raw, tmp_path / "raw")
    with pytest.raises(InputError, match="missing table: no villages_raw.csv"):
        read_raw_tables(tmp_path / "raw")


# --- catalogue --------------------------------------------------------------------------
def _catalog_copy(tmp_path, change) -> str:
    raw = yaml.safe_load(DEFAULT_CATALOG.read_text())
    change(raw)
    path = tmp_path / "catalog.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_every_default_number_has_a_tagged_source():
    catalog = load_catalog()
    for key, measure in catalog.measures.items():
        for field in ("cost", "hours", "lag", "return_risk", "eligible") + (("gain", "durability") if measure.gain
                                                                            else ()):
            assert measure.sources[field][0] in "SDAB", (key, field)
    for key, project in catalog.projects.items():
        for field in ("cost", "duration", "mandatory"):
            assert project.sources[field][0] in "SDAB", (key, field)


def test_catalog_without_a_source_is_refused(tmp_path):
    path = _catalog_copy(tmp_path, lambda c: c["measures"]["job_placement"]["sources"].pop("cost"))
    with pytest.raises(ScenarioError, match="no source for cost"):
        load_catalog(path)


def test_catalog_unknown_project_is_refused(tmp_path):
    path = _catalog_copy(tmp_path, lambda c: c["measures"]["job_placement"].update(requires=["bridge"]))
    with pytest.raises(ScenarioError, match="unknown project 'bridge'"):
        load_catalog(path)


def test_bad_expression_names_the_catalogue_key(tmp_path):
    path = _catalog_copy(tmp_path, lambda c: c["measures"]["job_placement"].update(eligible="labourrs >= 1"))
    raw = raw_tables()
    ident = identify(raw["regions"], raw["villages_raw"], raw["households_raw"], poverty_line=LINE)
    with pytest.raises(ScenarioError, match="measures.job_placement.eligible"):
        candidates_of(raw, ident, load_catalog(path))


# --- candidates -------------------------------------------------------------------------
def test_candidates_respect_eligibility_and_guarantees(fixture_result):
    raw, _, cands = fixture_result
    check_candidates(raw, cands.tables)


def test_every_poor_household_gets_a_package_here(fixture_result):
    _, ident, cands = fixture_result
    poor = set(ident.cards.loc[ident.cards["poor"], "household_id"])
    assert set(cands.tables["packages"]["household_id"]) == poor


def test_mandatory_projects_are_the_poor_villages_missing_road_water_power(fixture_result):
    projects = fixture_result[2].tables["projects"]
    mandatory = projects[projects["mandatory"]]
    assert set(zip(mandatory["village_id"], mandatory["project_id"], strict=True)) == {("V1", "road"),
                                                                                      ("V1", "tap_water")}


def test_training_with_job_beats_job_alone(fixture_result):
    packages = fixture_result[2].tables["packages"].set_index(["household_id", "package_id"])["exit_probability"]
    assert packages[("H01", "job_placement+skills_training")] > packages[("H01", "job_placement")]


def test_exit_probability_rises_with_income():
    raw = raw_tables()
    rows = [household(f"X{i}", income_per_capita=ratio * LINE, dangerous_house=True)
            for i, ratio in enumerate((0.4, 0.7, 1.0, 1.3))]
    raw["households_raw"] = pd.concat([raw["households_raw"].head(0), pd.DataFrame(rows)], ignore_index=True) \
        .astype(raw["households_raw"].dtypes.to_dict())
    ident = identify(raw["regions"], raw["villages_raw"], raw["households_raw"], poverty_line=LINE)
    cands = candidates_of(raw, ident)
    renovation = cands.tables["packages"].query("package_id == 'housing_renovation'").set_index("household_id")
    probabilities = renovation["exit_probability"].reindex([f"X{i}" for i in range(4)]).fillna(0).to_numpy()
    assert (np.diff(probabilities) >= 0).all() and probabilities[-1] > probabilities[0]


def test_registry_basis_plans_the_registered(fixture_result):
    raw, ident, _ = fixture_result
    cands = candidates_of(raw, ident, basis="registry")
    planned = cands.tables["households"].set_index("household_id")["registered_poor"]
    assert planned["H07"] and not planned["H05"]


# --- sustained exits (docs/effect-model.md §3a) -----------------------------------------
def _candidates(sustain_years: int = 3, catalog=None):
    raw = raw_tables()
    ident = identify(raw["regions"], raw["villages_raw"], raw["households_raw"], poverty_line=LINE,
                     registry_given=True)
    cands = candidates_of(raw, ident, catalog, sustain_years=sustain_years)
    return cands.tables["packages"].set_index(["household_id", "package_id"])


STAYING_3 = (1 - 0.02) * (1 - 0.005) * (1 - 0.002)  # the catalogue's return hazards of years 1, 2, 3


def _catalog_with(drop=(), keep_income=None):
    """The default catalogue without the measures ``drop`` and, if ``keep_income`` is given,
    with only those income measures (and no bundles); its rules of practice lose what is gone."""
    catalog = load_catalog()
    measures = {k: m for k, m in catalog.measures.items() if k not in drop and (
        keep_income is None or m.role not in ("income", "both") or k in keep_income)}
    practice = []
    for rule in catalog.practice:  # rules of practice keep only the entries left whole
        entries = [e for e, option in zip(rule.measures, rule.options(), strict=True)
                   if all(k in measures for k in option)]
        if entries:
            practice.append(rule.model_copy(update={"measures": entries}))
    return catalog.model_copy(update={"measures": measures, "practice": practice,
                                      "bundles": catalog.bundles if keep_income is None else []})


def test_a_transfer_for_a_household_with_labour_does_not_last():
    """H11 (2 people, 1 labourer, 0.7 x the 2015 line) with a public-welfare post alone: the post
    (4,800 a year, sd 10 %, 5 % failure) lifts it out by 2020 but ends after it, so three years
    in the three years after it only its own income counts (lowest against the line in the first
    year, as it grows 8 %/yr and the line 3 %/yr): recomputed here from the documented formulas."""
    row = _candidates(catalog=_catalog_with(drop=["safety_net"])).loc[("H11", "public_welfare_job")]
    base_d = 0.7 * LINE * 1.08 ** 5
    gain = 4800 / 2
    own_d = ndtr((base_d - 4000) / (0.25 * base_d))
    with_post = ndtr((base_d + gain - 4000) / np.hypot(0.25 * base_d, 0.1 * gain))
    own_s = min(ndtr((base_d * 1.08 ** s - 4000 * 1.03 ** s) / (0.25 * base_d * 1.08 ** s)) for s in (1, 2, 3))
    assert own_s == ndtr((base_d * 1.08 - 4000 * 1.03) / (0.25 * base_d * 1.08))
    p_d = 0.95 * with_post + 0.05 * own_d
    p_both = 0.95 * min(with_post, own_s) + 0.05 * min(own_d, own_s)
    exit_p = p_d * (1 - 0.15)
    assert row["exit_probability"] == pytest.approx(exit_p, abs=1e-4)
    assert row["sustained_probability"] == pytest.approx(exit_p * p_both / p_d * STAYING_3, abs=1e-4)
    assert row["sustained_probability"] < 0.3 * row["exit_probability"]
    assert row["earned_share"] == 0.0


def test_the_safety_net_lifts_what_a_package_leaves_short_but_not_for_good():
    """H11's public-welfare post with the safety net behind it: the net (10 % missed) tops up
    the 1 - P(income >= line) the post leaves; that part has the net's return risk (2 %), costs
    one year of the gap to the 2020 dibao line, and, H11 having a labourer, is no sustained exit."""
    catalog = _catalog_with(keep_income=["public_welfare_job"])
    row = _candidates(catalog=catalog).loc[("H11", "public_welfare_job")]
    bare = _candidates(catalog=_catalog_with(drop=["safety_net"])).loc[("H11", "public_welfare_job")]
    base_d = 0.7 * LINE * 1.08 ** 5
    p_d = bare["exit_probability"] / (1 - 0.15)  # the post's return risk
    rescued = (1 - p_d) * 0.9
    assert row["exit_probability"] == pytest.approx(p_d * (1 - 0.15) + rescued * (1 - 0.02), abs=2e-4)
    assert row["exit_probability"] > bare["exit_probability"] + 0.05
    assert row["safety_net_share"] == pytest.approx(rescued / (p_d + rescued), abs=2e-4)
    gap = max(catalog.parameters.dibao_line[2020] - base_d, 0) * 2
    assert row["cost"] == pytest.approx(bare["cost"] + rescued * gap, abs=0.5)
    sustained_share = bare["sustained_probability"] / bare["exit_probability"] * p_d / (p_d + rescued)
    assert row["sustained_probability"] == pytest.approx(row["exit_probability"] * sustained_share, abs=2e-4)


def test_only_one_safety_net_and_never_in_a_bundle():
    raw = yaml.safe_load(DEFAULT_CATALOG.read_text(encoding="utf-8"))
    raw["measures"]["second_net"] = raw["measures"]["safety_net"]
    with pytest.raises(ValueError, match="at most one measure may have role 'safety_net'"):
        type(load_catalog()).model_validate(raw)
    raw = yaml.safe_load(DEFAULT_CATALOG.read_text(encoding="utf-8"))
    raw["bundles"].append({"measures": ["safety_net", "job_placement"], "source": "A"})
    with pytest.raises(ValueError, match="names the safety net"):
        type(load_catalog()).model_validate(raw)


def test_the_safety_net_keeps_a_household_without_labour_out():
    """H12 (tekun, no labour) on the dibao top-up: the top-up keeps paying, so only the return
    hazards separate its sustained exit from its exit 0.98 (1 - the top-up's return risk)."""
    row = _candidates().loc[("H12", "dibao_topup")]
    assert row["exit_probability"] == pytest.approx(0.98)
    assert row["sustained_probability"] == pytest.approx(round(0.98 * STAYING_3, 4))
    assert row["earned_share"] == 0.0


def test_earned_income_lasts_longer_than_a_transfer():
    packages = _candidates(catalog=_catalog_with(drop=["safety_net"]))
    ratio = packages["sustained_probability"] / packages["exit_probability"]
    assert ratio[("H11", "job_placement")] > 0.8 > 0.3 > ratio[("H11", "public_welfare_job")]
    assert packages.loc[("H11", "job_placement"), "earned_share"] == 1.0
    assert (packages["sustained_probability"] <= packages["exit_probability"]).all()
    assert packages["earned_share"].between(0, 1).all()


def test_no_consolidation_horizon_makes_sustained_equal_to_exit():
    packages = _candidates(sustain_years=0)
    np.testing.assert_array_equal(packages["sustained_probability"], packages["exit_probability"])


def test_a_longer_horizon_never_raises_the_sustained_probability():
    short, long = _candidates(1)["sustained_probability"], _candidates(8)["sustained_probability"]
    common = short.index.intersection(long.index)
    assert (long[common] <= short[common] + 1e-4).all() and (long[common] < short[common]).any()


def test_catalog_durability_must_fit_the_kind(tmp_path):
    path = _catalog_copy(tmp_path, lambda c: c["measures"]["job_placement"]["gain"].update(continues="True"))
    with pytest.raises(ScenarioError, match="'continues' is for transfers"):
        load_catalog(path)
    path = _catalog_copy(tmp_path, lambda c: c["measures"]["job_placement"]["gain"].pop("kind"))
    with pytest.raises(ScenarioError, match="kind"):
        load_catalog(path)
    path = _catalog_copy(tmp_path, lambda c: c["measures"]["job_placement"]["sources"].pop("durability"))
    with pytest.raises(ScenarioError, match="no source for durability"):
        load_catalog(path)


def test_bad_continues_expression_names_the_catalogue_key(tmp_path):
    path = _catalog_copy(tmp_path, lambda c: c["measures"]["dibao_topup"]["gain"].update(continues="labourrs == 0"))
    with pytest.raises(ScenarioError, match="dibao_topup.gain.continues"):
        _candidates(catalog=load_catalog(path))


def test_two_income_channels_beat_either_alone(fixture_result):
    """A household with labour can run the supported industry at home while a labourer migrates
    (the catalogue's two-channel bundles, docs/effect-model.md §5): that package exits and stays
    out more often than the job alone (and than the industry alone, where that package is kept)."""
    packages = fixture_result[2].tables["packages"].set_index(["household_id", "package_id"])
    both = packages.loc[("H01", "industry_grant+job_placement+skills_training")]
    assert ("H01", "job_placement+skills_training") in packages.index
    for alone in ("job_placement+skills_training", "industry_grant+skills_training"):
        if ("H01", alone) in packages.index:
            assert both["exit_probability"] > packages.loc[("H01", alone), "exit_probability"]
            assert both["sustained_probability"] > packages.loc[("H01", alone), "sustained_probability"]
    assert both["earned_share"] == 1.0


def test_the_cost_split_by_category_adds_up_to_the_cost():
    """cost_by_category splits each package's cost over its measures' categories (the net's
    expected cost under welfare): the parts add up to the cost, and a job with a renovation
    shows both."""
    packages = _candidates()
    parts = packages["cost_by_category"].map(
        lambda text: {c: float(v) for c, v in (item.split(":") for item in text.split(";") if item)})
    np.testing.assert_allclose(parts.map(lambda d: sum(d.values())), packages["cost"], atol=4.0)
    both = packages[packages.index.get_level_values("package_id") == "job_placement+housing_renovation"]
    assert len(both) > 0
    for split in parts[both.index]:
        assert split["housing"] == 25000 and split["ability"] > 0
