"""Asset-income support (issue 19 item 3): the catalogue's asset_income measure is offered only
to households of villages holding assets (the villages_raw column asset_income_assets), a
measure naming an absent column is a clear error, the province generator draws the column
and the asset_compensation fund from the seed, and a small solve uses the measure when it
pays, with a plan the independent checker accepts and a report naming the households."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml

import allocator
from allocator.errors import ScenarioError
from allocator.inputs.raw import ASSET_KINDS
from allocator.inputs.scenario import scenario_from_dict
from allocator.report.html import asset_income_table, build_report
from allocator.synth.canonical import write_tables
from allocator.synth.province import generate_province
from allocator.targeting import identify, load_catalog, prepare
from allocator.targeting.catalog import DEFAULT_CATALOG
from allocator.targeting.pipeline import load_tables
from tests.support.commands import run
from tests.support.plan_checker import check_scenario_plan
from tests.support.raw_fixture import LINE, candidates_of, raw_tables
from tests.targeting.test_targeting import check_candidates

ASSET = load_catalog().measures["asset_income"].name


def _with_asset(packages: pd.DataFrame) -> pd.Series:
    return packages["measures"].fillna("").str.split("; ").map(lambda ms: ASSET in ms)


def _catalog(tmp_path, change) -> str:
    raw = yaml.safe_load(DEFAULT_CATALOG.read_text())
    change(raw["measures"]["asset_income"])
    path = tmp_path / "catalog.yaml"
    path.write_text(yaml.safe_dump(raw))
    return str(path)


def test_default_catalogue_has_the_asset_measure_with_sources():
    measure = load_catalog().measures["asset_income"]
    assert measure.village_assets == "asset_income_assets" and measure.role == "income"
    assert measure.gain is not None and measure.gain.kind == "earned" and measure.lag == 1
    for field in ("cost", "hours", "lag", "return_risk", "eligible", "gain", "durability"):
        assert measure.sources[field][0] in "SDAB", field


def test_asset_measure_only_in_the_villages_holding_assets():
    raw = raw_tables()
    raw["villages_raw"].loc[raw["villages_raw"]["village_id"] == "V2", "asset_income_assets"] = "pv"
    ident = identify(raw["regions"], raw["villages_raw"], raw["households_raw"], poverty_line=LINE)
    tables = candidates_of(raw, ident).tables
    check_candidates(raw, tables)  # the hand-written eligibility rule includes asset_income
    packages = tables["packages"]
    village = raw["households_raw"].set_index("household_id")["village_id"]
    offered = set(packages.loc[_with_asset(packages), "household_id"])
    assert offered, "the V2 households should be offered asset-income support"
    assert {village[h] for h in offered} == {"V2"}
    # without the column's assets, nowhere
    plain = raw_tables()
    tables = candidates_of(plain, identify(plain["regions"], plain["villages_raw"], plain["households_raw"],
                                           poverty_line=LINE)).tables
    assert not _with_asset(tables["packages"]).any()


def test_generated_assets_reach_only_their_villages():
    raw = generate_province(1500, counties=2, seed=5, asset_share=0.4)
    kinds = raw["villages_raw"].set_index("village_id")["asset_income_assets"]
    assert set(kinds) <= set(ASSET_KINDS) and (kinds != "none").any()
    ident = identify(raw["regions"], raw["villages_raw"], raw["households_raw"], poverty_line=LINE)
    tables = candidates_of(raw, ident).tables
    packages = tables["packages"]
    village = tables["households"].set_index("household_id")["village_id"]
    in_asset_village = (packages["household_id"].map(village).map(kinds) != "none").to_numpy()
    with_asset = _with_asset(packages).to_numpy()
    assert with_asset.any() and not (with_asset & ~in_asset_village).any()
    # every asset village with a planned household offers it to someone there
    planned_villages = set(packages.loc[in_asset_village, "household_id"].map(village))
    offering = set(packages.loc[with_asset, "household_id"].map(village))
    assert offering == planned_villages


def test_absent_asset_column_is_a_clear_error(tmp_path):
    catalog = load_catalog(_catalog(tmp_path, lambda m: m.update(village_assets="asset_kind")))
    raw = raw_tables()
    ident = identify(raw["regions"], raw["villages_raw"], raw["households_raw"], poverty_line=LINE)
    with pytest.raises(ScenarioError) as error:
        candidates_of(raw, ident, catalog)
    issue = error.value.issues[0]
    assert issue.file == "villages_raw" and issue.column == "asset_kind"
    assert issue.key == "measures.asset_income.village_assets"


def test_absent_asset_column_exits_2_from_solve(tmp_path):
    folder = tmp_path / "raw"
    tables = generate_province(300, counties=1, seed=2)
    del tables["cadres"]
    write_tables(tables, folder)
    _catalog(folder, lambda m: m.update(village_assets="asset_kind"))
    (folder / "scenario.yaml").write_text(yaml.safe_dump({
        "name": "bad", "start_year": 2016, "deadline_year": 2020, "data": ".",
        "targeting": {"catalog": "catalog.yaml"}}))
    result = run("solve", folder / "scenario.yaml", "--out", tmp_path / "plan")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "villages_raw" in result.stderr and "'asset_kind'" in result.stderr
    assert "measures.asset_income.village_assets" in result.stderr


def test_asset_draw_is_deterministic_and_leaves_the_rest_unchanged():
    a = generate_province(1500, counties=2, seed=7, asset_share=0.3)
    b = generate_province(1500, counties=2, seed=7, asset_share=0.3)
    for name in a:
        pd.testing.assert_frame_equal(a[name], b[name], check_exact=True)
    none = generate_province(1500, counties=2, seed=7)
    assert (none["villages_raw"]["asset_income_assets"] == "none").all()
    assert "asset_compensation" not in set(none["funds"]["source_id"])
    # the asset stage draws from its own generator: every other column and table is unchanged
    pd.testing.assert_frame_equal(a["villages_raw"].drop(columns="asset_income_assets"),
                                  none["villages_raw"].drop(columns="asset_income_assets"), check_exact=True)
    for name in ("regions", "households_raw", "personnel", "targets", "cadres"):
        pd.testing.assert_frame_equal(a[name], none[name], check_exact=True)
    funds = a["funds"]
    pd.testing.assert_frame_equal(funds[funds["source_id"] != "asset_compensation"].reset_index(drop=True),
                                  none["funds"].reset_index(drop=True), check_exact=True)
    # the fund: industry only, the counties of hydropower and mining villages, every year
    comp = funds[funds["source_id"] == "asset_compensation"]
    assert set(comp["categories"]) == {"industry"} and len(comp) == 5 and (comp["amount"] > 0).all()
    kinds = a["villages_raw"]["asset_income_assets"]
    assert kinds.isin(["hydropower", "mining"]).any()
    assert generate_province(1500, counties=2, seed=8, asset_share=0.3)["villages_raw"][
        "asset_income_assets"].tolist() != kinds.tolist()


def test_asset_share_follows_remoteness_and_region():
    west = generate_province(20_000, counties=2, seed=1, asset_share=0.2)["villages_raw"]
    central = generate_province(20_000, counties=2, seed=1, asset_share=0.2, western=False)["villages_raw"]
    holds = west["asset_income_assets"] != "none"
    assert holds.mean() == pytest.approx(0.2, abs=0.05)
    assert (central["asset_income_assets"] != "none").mean() < holds.mean()
    assert west.loc[holds, "remoteness"].mean() > west.loc[~holds, "remoteness"].mean()
    with pytest.raises(ValueError, match="asset_share"):
        generate_province(100, asset_share=1.5)


def test_asset_share_is_for_province_presets_only():
    scenario = scenario_from_dict({"name": "x", "start_year": 2016, "deadline_year": 2020,
                                   "generate": {"preset": "tiny", "asset_share": 0.2}})
    with pytest.raises(ScenarioError, match="asset_share"):
        load_tables(scenario)


@pytest.fixture(scope="module")
def asset_plan(tmp_path_factory):
    """A small raw scenario whose villages hold assets, with the shares cheap enough to pay
    (2,000 yuan per household), solved once."""
    folder = tmp_path_factory.mktemp("assets")
    tables = generate_province(600, counties=1, seed=4, asset_share=0.5, money_scale=0.5, poor_county_share=0.0)
    del tables["cadres"]
    write_tables(tables, folder)
    _catalog(folder, lambda m: m.update(cost="2000"))
    (folder / "scenario.yaml").write_text(yaml.safe_dump({
        "name": "assets", "start_year": 2016, "deadline_year": 2020, "data": ".",
        "targeting": {"catalog": "catalog.yaml"}, "solver": {"time_limit": 20, "mip_gap": 0.01}}))
    scenario = allocator.load_scenario(folder / "scenario.yaml")
    plan = allocator.solve(scenario)
    plan_dir = plan.write(folder / "plan")
    return folder, scenario, plan, plan_dir


def test_small_solve_uses_the_asset_measure_and_passes_the_checker(asset_plan, tmp_path):
    folder, scenario, plan, plan_dir = asset_plan
    assert plan.status in ("optimal", "feasible")
    result = prepare(scenario)
    packages = result.tables["packages"]
    chosen = plan.households[plan.households["package_id"].astype(str) != ""]
    keys = set(zip(packages.loc[_with_asset(packages), "household_id"],
                   packages.loc[_with_asset(packages), "package_id"], strict=True))
    used = sum((h, p) in keys for h, p in zip(chosen["household_id"], chosen["package_id"], strict=True))
    assert used > 0, "cheap equity shares should be used"
    assert "asset_compensation" in set(plan.funding["source_id"])
    canonical = tmp_path / "canonical"
    write_tables(result.tables, canonical)
    (canonical / "scenario.yaml").write_text(yaml.safe_dump({
        "name": "assets", "start_year": 2016, "deadline_year": 2020, "data": ".",
        "policy": scenario.policy.model_dump(mode="json")}))
    violations = check_scenario_plan(canonical / "scenario.yaml", plan_dir)
    assert violations == [], violations[:20]


def test_report_names_the_households_reached(asset_plan):
    folder, scenario, plan, plan_dir = asset_plan
    packages = prepare(scenario).tables["packages"]
    table = asset_income_table(plan, packages, [ASSET])
    assert len(table) > 0 and not table["household_id"].duplicated().any()
    page = build_report(plan_dir)
    assert "Asset-income support" in page and f"{len(table):,}" in page
    assert str(table["household_id"].iloc[0]) in page
    assert "资产收益扶贫" in build_report(plan_dir, lang="zh")
    assert np.isin(table["household_id"], packages["household_id"]).all()


def test_cli_generate_province_draws_asset_villages(tmp_path):
    result = run("generate", "province", tmp_path / "out", "--preset", "county", "--seed", "3",
                 "--years", "2016:2017", "--asset-share", "0.3")
    assert result.returncode == 0, result.stderr
    villages = pd.read_csv(tmp_path / "out" / "villages_raw.csv", dtype=str, keep_default_na=False)
    assert (villages["asset_income_assets"] != "none").mean() == pytest.approx(0.3, abs=0.08)
    bad = run("generate", "province", tmp_path / "bad", "--asset-share", "1.5")
    assert bad.returncode == 2


def test_holds_assets_reads_kinds_and_booleans():
    from allocator.targeting.candidates import holds_assets

    kinds = holds_assets(np.array(["none", "pv", "", "hydropower", "None", "mining"], dtype=object))
    assert kinds.tolist() == [False, True, False, True, False, True]
    assert holds_assets(np.array([True, False, True])).tolist() == [True, False, True]
