"""Tests for the independent plan checker on a tiny hand-verified instance."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.support.plan_checker import assert_plan_ok, check_plan, check_scenario_plan

START, DEADLINE = 2016, 2018
POLICY = {
    "county_exit_threshold": {"default": 0.02, "western": 0.03},
    "min_category_share": {"industry": 0.25},  # exactly met: 2,500 / 10,000
    "max_category_share": {"infrastructure": 0.7},  # exactly met: 7,000 / 10,000
    "deadline": "soft",
}


def _df(header: str, *rows: str) -> pd.DataFrame:
    cols = header.split(",")
    data = [r.split(",") for r in rows]
    return pd.DataFrame(data, columns=cols, dtype=str)


def make_inputs() -> dict[str, pd.DataFrame]:
    """1 province, 2 counties (C2 empty), 1 township, 2 villages, 4 households (3 poor)."""
    return {
        "regions": _df(
            "region_id,parent_id,level,name,western,rural_population",
            "P1,,province,Prov,false,",
            "C1,P1,county,County One,false,100",
            "C2,P1,county,County Two,false,50",
            "T1,C1,township,Town,,",
        ),
        "villages": _df(
            "village_id,township_id,name,population,poor_village,latitude,longitude",
            "V1,T1,Village 1,300,true,30.1,100.1",
            "V2,T1,Village 2,200,false,30.2,100.2",
        ),
        "households": _df(
            "household_id,village_id,size,registered_poor,baseline_exit_probability",
            "H1,V1,4,true,0.1",
            "H2,V1,3,TRUE,0.2",
            "H3,V2,2,yes,0.05",
            "H4,V2,5,false,0.5",
        ),
        "packages": _df(
            "household_id,package_id,category,cost,personnel_hours,exit_probability,lag_years,requires,measures",
            "H1,K1,industry,1000,10,0.8,1,,pigs",
            "H1,K2,housing,3000,5,0.9,0,,house",
            "H2,K3,industry,1500,20,0.7,1,ROAD,tea",
            "H3,K4,ability,500,8,0.6,2,,training",
            "H3,K5,welfare,200,2,0.5,0,,allowance",
            "H4,K6,industry,800,5,0.9,0,,shop",
        ),
        "projects": _df(
            "village_id,project_id,category,cost,duration_years,mandatory",
            "V1,ROAD,infrastructure,5000,2,false",
            "V2,WATER,infrastructure,2000,1,true",
        ),
        "funds": _df(
            "source_id,year,amount,categories,regions,carry_over",
            "central,2016,7000,*,*,false",
            "central,2017,6000,*,*,false",
            "central,2018,6000,*,*,false",
            "prov,2016,1000,industry;ability,P1,true",
            "prov,2017,1000,industry;ability,P1,true",
            "prov,2018,1000,industry;ability,P1,true",
        ),
        "personnel": _df(
            "region_id,year,hours",
            "T1,2016,10",
            "T1,2017,10",
            "T1,2018,20",
            "C1,2018,20",
        ),
    }


def make_plan() -> tuple[dict[str, pd.DataFrame], dict]:
    """Hand-verified valid plan for 2016..2018.

    ROAD (V1) 2016-2017, WATER (V2) 2016; H1 K1 2017 (lag 1 -> counted, 0.8);
    H2 K3 2018 after ROAD (lag 1 -> 2019, not counted, baseline 0.2); H3 K4 2016 (lag 2 -> counted, 0.6).
    Spend: 2016 infrastructure 7,000 + ability 500; 2017 industry 1,000; 2018 industry 1,500 = 10,000.
    prov (carry-over) pays 1,500 in 2018 > its 1,000 that year, but cumulative 2,000 <= 3,000.
    C1: 3 poor, exits 1.6, threshold 0.02 * 100 = 2 -> shortfall 0, incidence 0.014.
    """
    plan = {
        "households": _df(
            "household_id,village_id,county_id,package_id,category,start_year,cost,exit_probability,"
            "sustained_probability,exit_year,responsible_cadre_id",
            "H1,V1,C1,K1,industry,2017,1000,0.8,0.8,2018,cad1",
            "H2,V1,C1,K3,industry,2018,1500.0,0.2,0.2,,",
            "H3,V2,C1,K4,ability,2016,500,0.6,0.6,2018,cad2",
        ),
        "projects": _df(
            "village_id,project_id,category,start_year,cost,mandatory",
            "V1,ROAD,infrastructure,2016,5000,false",
            "V2,WATER,infrastructure,2016,2000,true",
        ),
        "funding": _df(
            "source_id,county_id,category,year,amount",
            "central,C1,infrastructure,2016,7000",
            "prov,C1,ability,2016,500",
            "central,C1,industry,2017,1000",
            "prov,C1,industry,2018,1500",
        ),
        "counties": _df(
            "county_id,registered_poor,expected_exits,expected_incidence,threshold,on_schedule,"
            "shortfall_households,spend,hat_off_year,achieved_hat_off_year",
            "C1,3,1.6,0.014,0.02,true,0,10000,2018,2018",
        ),
        # before its exit counts a household is out with its baseline b reached at a constant
        # yearly rate, 1 - (1 - b)^(k / 3) at the k-th year-end: 2016 3 - (0.0345 + 0.0717 + 0.0170)
        "path": _df(
            "year,region_id,registered_poor,expected_poor,target,shortfall",
            "2016,,3,2.876854723819744,,", "2017,,3,2.760326157580457,,", "2018,,3,1.4,,",
            "2016,C1,3,2.876854723819744,,", "2017,C1,3,2.760326157580457,,", "2018,C1,3,1.4,,",
        ),
    }
    # household-years 0.123145 + 0.239674 + 1.6; value = sustained exits 1.6 + 0.02 x household-years
    summary = {
        "status": "optimal", "expected_exits": 1.6, "sustained_exits": 1.6, "household_years": 1.962819118599799,
        "value": 1.6392563823719961, "total_cost": 10000.0, "counties_on_schedule": 1, "counties_total": 1,
        "total_shortfall": 0.0, "target_shortfall": 0.0, "objective": 1.6392563823719961,
        "bound": 1.6392563823719961, "gap": 0.0,
    }
    return plan, summary


class Case:
    """Inputs + plan + policy, written to disk on demand."""

    def __init__(self, root: Path):
        self.root = root
        self.inputs = make_inputs()
        self.plan, self.summary = make_plan()
        self.policy = json.loads(json.dumps(POLICY))

    def write(self) -> tuple[Path, Path]:
        data, plan = self.root / "data", self.root / "plan"
        data.mkdir(exist_ok=True)
        plan.mkdir(exist_ok=True)
        for name, df in self.inputs.items():
            df.to_csv(data / f"{name}.csv", index=False)
        for name, df in self.plan.items():
            df.to_csv(plan / f"{name}.csv", index=False)
        (plan / "summary.json").write_text(json.dumps(self.summary))
        return data, plan

    def check(self) -> list[str]:
        data, plan = self.write()
        return check_plan(data, plan, start_year=START, deadline_year=DEADLINE, policy=self.policy)


@pytest.fixture
def case(tmp_path) -> Case:
    return Case(tmp_path)


def _set(df: pd.DataFrame, where: dict, **values) -> None:
    mask = pd.Series(True, index=df.index)
    for k, v in where.items():
        mask &= df[k] == v
    assert mask.sum() == 1, (where, df)
    for k, v in values.items():
        df.loc[mask, k] = v


def _drop(df: pd.DataFrame, **where) -> pd.DataFrame:
    mask = pd.Series(True, index=df.index)
    for k, v in where.items():
        mask &= df[k] == v
    assert mask.sum() == 1
    return df[~mask].reset_index(drop=True)


def _append(df: pd.DataFrame, row: dict) -> pd.DataFrame:
    return pd.concat([df, pd.DataFrame([row], dtype=str)], ignore_index=True).fillna("")


# ---------------------------------------------------------------- valid plans
def test_valid_plan_passes(case):
    assert case.check() == []


def test_valid_plan_passes_with_default_policy(case):
    case.policy = None
    assert case.check() == []


def test_valid_plan_passes_with_parquet_inputs(case):
    data, plan = case.write()
    for name in ("households", "packages", "funds"):
        df = pd.read_csv(data / f"{name}.csv", keep_default_na=False)  # numeric dtypes on purpose
        (data / f"{name}.csv").unlink()
        df.to_parquet(data / f"{name}.parquet")
    assert check_plan(data, plan, start_year=START, deadline_year=DEADLINE, policy=case.policy) == []


def test_missing_optional_inputs_and_empty_plan_tables(case):
    # no personnel table, no projects/packages chosen, nothing funded: only exits matter.
    del case.inputs["personnel"]
    case.inputs["projects"]["mandatory"] = "false"
    case.policy = {}
    case.plan["households"] = _df(
        "household_id,village_id,county_id,package_id,category,start_year,cost,exit_probability,sustained_probability,"
        "exit_year,responsible_cadre_id",
        "H1,V1,C1,,,,,0.1,0.1,,", "H2,V1,C1,,,,,0.2,0.2,,", "H3,V2,C1,,,,0,0.05,0.05,,")
    case.plan["projects"] = case.plan["projects"].iloc[0:0]
    case.plan["funding"] = case.plan["funding"].iloc[0:0]
    # exits 0.35, shortfall 3 - 0.35 - 2 = 0.65 -> off schedule (fine under a soft deadline)
    case.plan["counties"] = _df(
        "county_id,registered_poor,expected_exits,expected_incidence,threshold,on_schedule,shortfall_households,spend,"
        "hat_off_year,achieved_hat_off_year",
        "C1,3,0.35,0.0265,0.02,false,0.65,0,2018,")
    case.plan["path"].loc[case.plan["path"]["year"] == "2018", "expected_poor"] = "2.65"
    # household-years 0.123145 + 0.239674 + 0.35
    case.summary.update(expected_exits=0.35, sustained_exits=0.35, household_years=0.712819118599799,
                        value=0.35 + 0.02 * 0.712819118599799, total_cost=0, counties_on_schedule=0,
                        total_shortfall=0.65)
    assert case.check() == []


def test_off_schedule_is_fine_when_soft_but_not_when_hard(case):
    case.policy["county_exit_threshold"] = {"default": 0.01}  # 3 - 1.6 - 1 = 0.4 short
    _set(case.plan["counties"], {"county_id": "C1"}, threshold="0.01", on_schedule="false",
         shortfall_households="0.4", achieved_hat_off_year="")
    case.summary.update(counties_on_schedule=0, total_shortfall=0.4)
    assert case.check() == []
    case.policy["deadline"] = "hard"
    msgs = case.check()
    assert len(msgs) == 1 and "hard deadline" in msgs[0] and "C1" in msgs[0], msgs


def test_western_threshold(case):
    case.inputs["regions"].loc[case.inputs["regions"]["region_id"] == "C1", "western"] = "1"
    assert any("rule 10" in m and "threshold" in m for m in case.check())
    _set(case.plan["counties"], {"county_id": "C1"}, threshold="0.03")
    assert any("achieved_hat_off_year" in m for m in case.check())  # 2.88 poor <= 3 allowed already in 2016
    _set(case.plan["counties"], {"county_id": "C1"}, achieved_hat_off_year="2016")
    assert case.check() == []


def test_infeasible_plan_is_not_checked_further(case):
    case.summary = {"status": "infeasible"}
    case.plan = {}
    assert case.check() == []


def test_unknown_status_is_reported(case):
    case.summary["status"] = "great"
    assert any("status" in m for m in case.check())


def test_check_scenario_plan_and_assert(case):
    data, plan = case.write()
    sc = case.root / "scenarios" / "s.yaml"
    sc.parent.mkdir()
    sc.write_text(yaml.safe_dump({"start_year": START, "deadline_year": DEADLINE, "data": "../data",
                                  "policy": case.policy}))
    assert check_scenario_plan(sc, plan) == []
    assert_plan_ok(data, plan, start_year=START, deadline_year=DEADLINE, policy=case.policy)
    case.summary["total_cost"] = 1.0
    case.write()
    assert any("rule 11" in m for m in check_scenario_plan(sc, plan))
    with pytest.raises(AssertionError, match="rule 11"):
        assert_plan_ok(data, plan, start_year=START, deadline_year=DEADLINE, policy=case.policy)


# ---------------------------------------------------------------- corruptions
def c_missing_household(c):
    c.plan["households"] = _drop(c.plan["households"], household_id="H3")


def c_extra_household(c):
    c.plan["households"] = _append(c.plan["households"], {"household_id": "H4", "village_id": "V2",
                                                          "county_id": "C1", "exit_probability": "0.5"})


def c_duplicate_household(c):
    c.plan["households"] = pd.concat([c.plan["households"], c.plan["households"].iloc[[0]]], ignore_index=True)


def c_wrong_county(c):
    _set(c.plan["households"], {"household_id": "H1"}, county_id="C2")


def c_package_of_other_household(c):
    _set(c.plan["households"], {"household_id": "H1"}, package_id="K6")


def c_package_wrong_cost(c):
    _set(c.plan["households"], {"household_id": "H1"}, cost="999")


def c_package_wrong_category(c):
    _set(c.plan["households"], {"household_id": "H1"}, category="housing")


def c_package_start_outside_years(c):
    _set(c.plan["households"], {"household_id": "H3"}, start_year="2015")


def c_wrong_exit_probability(c):
    _set(c.plan["households"], {"household_id": "H1"}, exit_probability="0.7")


def c_lag_too_long_counted(c):
    _set(c.plan["households"], {"household_id": "H2"}, exit_probability="0.7")


def c_lag_grows_past_deadline(c):
    _set(c.inputs["packages"], {"package_id": "K4"}, lag_years="3")  # 2016 + 3 > 2018: baseline counts


def c_duplicated_project(c):
    c.plan["projects"] = pd.concat([c.plan["projects"], c.plan["projects"].iloc[[0]]], ignore_index=True)


def c_unknown_project(c):
    _set(c.plan["projects"], {"project_id": "ROAD"}, village_id="V2")


def c_project_wrong_mandatory(c):
    _set(c.plan["projects"], {"project_id": "ROAD"}, mandatory="true")


def c_mandatory_missing(c):
    _set(c.inputs["projects"], {"project_id": "ROAD"}, mandatory="true")
    c.plan["projects"] = _drop(c.plan["projects"], project_id="ROAD")


def c_mandatory_too_late(c):
    _set(c.inputs["projects"], {"project_id": "WATER"}, duration_years="4")  # 2016 + 4 - 1 = 2019


def c_prerequisite_unfinished(c):
    _set(c.inputs["projects"], {"project_id": "ROAD"}, duration_years="3")  # done for 2019 > 2018


def c_prerequisite_not_built(c):
    c.plan["projects"] = _drop(c.plan["projects"], project_id="ROAD")
    _set(c.plan["funding"], {"category": "infrastructure"}, amount="2000")


def c_flow_not_matching_spend(c):
    _set(c.plan["funding"], {"year": "2017"}, amount="900")


def c_flow_missing(c):
    c.plan["funding"] = _drop(c.plan["funding"], year="2017")


def c_negative_flow(c):
    c.plan["funding"] = _append(c.plan["funding"], {"source_id": "central", "county_id": "C1",
                                                    "category": "industry", "year": "2017", "amount": "-5"})
    _set(c.plan["funding"], {"year": "2017", "amount": "1000"}, amount="1005")


def c_flow_source_year_unknown(c):
    c.inputs["funds"] = _drop(c.inputs["funds"], source_id="central", year="2017")


def c_flow_ineligible_category(c):
    _set(c.inputs["funds"], {"source_id": "prov", "year": "2016"}, categories="industry")


def c_flow_ineligible_region(c):
    _set(c.inputs["funds"], {"source_id": "prov", "year": "2016"}, regions="C2;T1")


def c_budget_exceeded(c):
    _set(c.inputs["funds"], {"source_id": "central", "year": "2016"}, amount="6999")


def c_budget_exceeded_with_carry(c):
    _set(c.inputs["funds"], {"source_id": "prov", "year": "2017"}, amount="0")
    _set(c.inputs["funds"], {"source_id": "prov", "year": "2018"}, amount="400")  # 1,400 < 2,000


def c_budget_without_carry(c):
    c.inputs["funds"].loc[c.inputs["funds"]["source_id"] == "prov", "carry_over"] = "false"  # 1,500 > 1,000


def c_min_share(c):
    c.policy["min_category_share"] = {"industry": 0.3}


def c_max_share(c):
    c.policy["max_category_share"] = {"infrastructure": 0.6}


def c_personnel_township(c):
    _set(c.inputs["personnel"], {"region_id": "T1", "year": "2017"}, hours="9.5")


def c_personnel_county(c):
    _set(c.inputs["personnel"], {"region_id": "C1"}, hours="19")


def c_counties_exits(c):
    _set(c.plan["counties"], {"county_id": "C1"}, expected_exits="1.5")


def c_counties_missing(c):
    c.plan["counties"] = c.plan["counties"].iloc[0:0]
    c.summary["counties_total"] = 0
    c.summary["counties_on_schedule"] = 0


def c_counties_on_schedule(c):
    _set(c.plan["counties"], {"county_id": "C1"}, on_schedule="false")
    c.summary["counties_on_schedule"] = 0


def c_counties_spend(c):
    _set(c.plan["counties"], {"county_id": "C1"}, spend="9000")


def c_counties_incidence(c):
    _set(c.plan["counties"], {"county_id": "C1"}, expected_incidence="0.016")


def c_summary_exits(c):
    c.summary["expected_exits"] = 1.7


def c_summary_cost(c):
    c.summary["total_cost"] = 10500


def c_summary_on_schedule(c):
    c.summary["counties_on_schedule"] = 0


def c_summary_shortfall(c):
    c.summary["total_shortfall"] = 0.5


def c_hard_deadline(c):
    c.policy["deadline"] = "hard"
    c.policy["county_exit_threshold"] = {"default": 0.01}
    _set(c.plan["counties"], {"county_id": "C1"}, threshold="0.01", on_schedule="false",
         shortfall_households="0.4")
    c.summary.update(counties_on_schedule=0, total_shortfall=0.4)


def c_recalled_money(c):  # prov's 2016 and 2017 money is recalled at once: 2018 has only its own 1,000
    c.inputs["funds"]["carry_over_years"] = ["", "", "", "0", "0", "0"]


def c_pace(c):  # prov must have spent 90 % of its 2016 money in 2016; it spent 500 of 1,000
    c.inputs["funds"]["min_spend_share"] = ["", "", "", "0.9", "", ""]


def c_source_share(c):  # prov spends 1,500 of its 2,000 on industry: 75 %
    c.policy["min_source_category_share"] = {"prov": {"industry": 0.9}}


def c_sustained(c):
    _set(c.plan["households"], {"household_id": "H1"}, sustained_probability="0.5")


def c_exit_year(c):
    _set(c.plan["households"], {"household_id": "H1"}, exit_year="2017")


def c_achieved_hat_off(c):
    _set(c.plan["counties"], {"county_id": "C1"}, achieved_hat_off_year="2017")


def c_path(c):
    path = c.plan["path"]
    path.loc[(path["year"] == "2017") & (path["region_id"].isna() | (path["region_id"] == "")), "expected_poor"] = "2"


def c_target_missed(c):  # at most half of the 3 poor still poor at the end of 2017: 2.76 are
    c.policy["annual_targets"] = {2017: 0.5}


def c_summary_value(c):
    c.summary["value"] = 1.6


CORRUPTIONS = [
    (c_missing_household, "rule 1"),
    (c_extra_household, "rule 1"),
    (c_duplicate_household, "rule 1"),
    (c_wrong_county, "rule 1"),
    (c_package_of_other_household, "rule 2"),
    (c_package_wrong_cost, "rule 2"),
    (c_package_wrong_category, "rule 2"),
    (c_package_start_outside_years, "rule 2"),
    (c_wrong_exit_probability, "rule 3"),
    (c_lag_too_long_counted, "rule 3"),
    (c_lag_grows_past_deadline, "rule 3"),
    (c_duplicated_project, "rule 4"),
    (c_unknown_project, "rule 4"),
    (c_project_wrong_mandatory, "rule 4"),
    (c_mandatory_missing, "rule 4 mandatory"),
    (c_mandatory_too_late, "rule 4 mandatory"),
    (c_prerequisite_unfinished, "rule 5"),
    (c_prerequisite_not_built, "rule 5"),
    (c_flow_not_matching_spend, "rule 6 money"),
    (c_flow_missing, "rule 6 money"),
    (c_negative_flow, "rule 6 money: negative"),
    (c_flow_source_year_unknown, "rule 6 eligibility"),
    (c_flow_ineligible_category, "rule 6 eligibility"),
    (c_flow_ineligible_region, "rule 6 eligibility"),
    (c_budget_exceeded, "rule 7 budget: source central year 2016"),
    (c_budget_exceeded_with_carry,
     "rule 7 budget: source prov year 2018 spends 1,500.00 > the 900.00 it still holds (carry-over)"),
    (c_recalled_money, "rule 7 budget: source prov year 2018 spends 1,500.00 > the 1,000.00 it still holds "
                       "(carry-over, recalled after 0 years)"),
    (c_pace, "rule 7 pace: source prov has spent 500.00 by 2016"),
    (c_source_share, "rule 8b source share: prov"),
    (c_sustained, "rule 3 sustained: household H1"),
    (c_exit_year, "rule 3 exit year: household H1"),
    (c_achieved_hat_off, "rule 10 counties: county C1 achieved_hat_off_year"),
    (c_path, "rule 12 path: region '' year 2017"),
    (c_target_missed, "rule 12 target: '' 2017"),
    (c_summary_value, "rule 11 summary: value"),
    (c_budget_without_carry, "rule 7 budget: source prov year 2018"),
    (c_min_share, "rule 8"),
    (c_max_share, "rule 8"),
    (c_personnel_township, "rule 9 personnel: region T1 year 2017"),
    (c_personnel_county, "rule 9 personnel: region C1 year 2018"),
    (c_counties_exits, "rule 10"),
    (c_counties_missing, "rule 10"),
    (c_counties_on_schedule, "rule 10"),
    (c_counties_spend, "rule 10"),
    (c_counties_incidence, "rule 10"),
    (c_summary_exits, "rule 11"),
    (c_summary_cost, "rule 11"),
    (c_summary_on_schedule, "rule 11"),
    (c_summary_shortfall, "rule 11"),
    (c_hard_deadline, "rule 10 hard deadline"),
]


@pytest.mark.parametrize("corrupt,expected", CORRUPTIONS, ids=[f.__name__[2:] for f, _ in CORRUPTIONS])
def test_corruption_is_caught(case, corrupt, expected):
    corrupt(case)
    msgs = case.check()
    assert any(expected in m for m in msgs), msgs


# Corruptions that upset other rules as a knock-on effect (e.g. spend changes); all others must
# trip exactly their own rule and nothing else.
KNOCK_ON = (
    c_missing_household, c_extra_household, c_package_of_other_household, c_package_start_outside_years,
    c_lag_grows_past_deadline, c_unknown_project, c_mandatory_missing, c_prerequisite_not_built, c_flow_missing,
    c_flow_not_matching_spend, c_flow_source_year_unknown, c_counties_missing,
    c_target_missed,  # the summary's target shortfall is wrong too
)
ISOLATED = [f for f, _ in CORRUPTIONS if f not in KNOCK_ON]


@pytest.mark.parametrize("corrupt", ISOLATED, ids=[f.__name__[2:] for f in ISOLATED])
def test_isolated_corruption_reports_only_its_rule(case, corrupt):
    expected = dict((f, e) for f, e in CORRUPTIONS)[corrupt]
    rule = " ".join(expected.split()[:2])
    corrupt(case)
    msgs = case.check()
    assert msgs and all(m.startswith(rule + " ") for m in msgs), msgs


# ---------------------------------------------------------------- rule 13: no idle money while behind
def _behind_with_idle_money(c):
    """At most 85 % of the 3 poor still poor at the end of 2017 (2.55; the plan has 2.76), no
    share rules. H1's K2 (housing, 3,000, no lag) started in 2017 beats its K1 in every year, and
    central holds 5,000 of its 2017 money unspent (no carry-over)."""
    c.policy = {"county_exit_threshold": {"default": 0.02}, "annual_targets": {2017: 0.85}}
    path = c.plan["path"]
    path.loc[path["year"] == "2017", ["target", "shortfall"]] = ["0.85", str(2.760326157580457 - 2.55)]
    c.summary.update(target_shortfall=2.760326157580457 - 2.55, total_shortfall=2.760326157580457 - 2.55)


def test_idle_money_while_behind_a_target_is_caught(case):
    _behind_with_idle_money(case)
    msgs = case.check()
    assert msgs and all(m.startswith("rule 13 idle money") for m in msgs), msgs
    assert "household H1 (C1) could take package K2 (housing, 3,000.00 from 2017) paid by central's 5,000.00" \
        in msgs[0], msgs


def test_no_idle_money_rule_when_the_money_is_spent_or_may_not_pay(case):
    _behind_with_idle_money(case)
    case.inputs["funds"].loc[1, "amount"] = "1000"  # central's 2017 money is all spent
    assert case.check() == []
    case.inputs["funds"].loc[1, "amount"] = "6000"
    case.inputs["funds"].loc[1, "categories"] = "industry;infrastructure"  # idle, but may not pay housing
    assert case.check() == []


def test_no_idle_money_rule_for_baselines_plans_stopped_by_their_limit_or_on_target(case):
    _behind_with_idle_money(case)
    case.summary["method"] = "baseline:greedy"
    assert case.check() == []
    case.summary.pop("method")
    case.summary["stopped_by"] = "time_limit"
    assert case.check() == []
    case.summary.pop("stopped_by")
    assert case.check() != []
    case.policy["annual_targets"] = {2017: 0.95}  # 2.85 allowed, 2.76 poor: not behind
    path = case.plan["path"]
    path.loc[path["year"] == "2017", ["target", "shortfall"]] = ["0.95", "0"]
    case.summary.update(target_shortfall=0.0, total_shortfall=0.0)
    assert case.check() == []
