"""The progress contract: reading, cell checks and cross checks in the error grammar, household
states, and the simulator's draws."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from allocator.errors import InputError
from allocator.manage.progress import (
    RETURN_RATES,
    SHOCK_EXIT_FACTOR,
    household_states,
    plan_and_record,
    read_progress,
    stay_out_probability,
)
from allocator.manage.simulate import simulate_progress
from tests.support.loop_helpers import as_planned


def test_a_simulated_record_round_trips_and_passes_the_checks(tiny_plan, tmp_path):
    plan_dir, context = tiny_plan
    record = simulate_progress(context, 2018, seed=5)
    record.write(tmp_path / "rec")
    back = read_progress(tmp_path / "rec")
    assert back.year == 2018
    pd.testing.assert_frame_equal(back.households[record.households.columns].reset_index(drop=True),
                                  record.households.reset_index(drop=True), check_dtype=False)
    assert back.disbursed["amount"].sum() == pytest.approx(record.disbursed["amount"].sum())
    plan_and_record(plan_dir, tmp_path / "rec")  # no InputError


def test_the_simulator_is_seeded_and_keeps_to_the_plan(tiny_plan):
    plan_dir, context = tiny_plan
    a, b, c = (simulate_progress(context, 2019, seed=s) for s in (1, 1, 2))
    pd.testing.assert_frame_equal(a.households, b.households)
    assert not a.households.equals(c.households)
    hh = a.households.merge(context.plan.households[["household_id", "package_id", "start_year"]],
                            on="household_id", how="left", suffixes=("", "_plan"))
    got = hh[hh["delivered"]]
    assert (got["package_id"] == got["package_id_plan"]).all()
    assert (got["start_year"] == got["start_year_plan"]).all() and (got["start_year"] <= 2019).all()
    assert (hh["exit_year"].dropna() < 2019).all()
    assert not (hh["returned"] & ~hh["exited"]).any()
    flows = context.plan.funding.set_index(["source_id", "county_id", "category", "year"])["amount"]
    paid = a.disbursed.set_index(["source_id", "county_id", "category", "year"])["amount"]
    assert (paid <= flows.reindex(paid.index) + 0.01).all()  # never more than planned
    assert (a.disbursed["year"] <= 2019).all()


def _write(folder, **tables):
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in tables.items():
        (folder / f"{name}.csv").write_text(text)
    return folder


def test_bad_cells_are_listed_in_the_error_grammar(tmp_path):
    folder = _write(tmp_path / "rec", record="year\n2018\n",
                    households="household_id,delivered,exit_year,shock,observed_income\n"
                               "H1,maybe,2017,,100\nH2,true,2017.5,flood,-3\n",
                    disbursed="source_id,county_id,category,year,amount\ncentral,C001,roads,2017,-1\n")
    with pytest.raises(InputError) as caught:
        read_progress(folder)
    text = str(caught.value)
    for expected in ("households.csv row 1, column 'delivered': not a boolean",
                     "households.csv row 2, column 'shock': unknown value",
                     "households.csv row 2, column 'observed_income': out of range",
                     "disbursed.csv row 1, column 'category': unknown value",
                     "disbursed.csv row 1, column 'amount': out of range"):
        assert expected in text, text


def test_a_missing_table_and_a_second_record_row_are_refused(tmp_path):
    with pytest.raises(InputError, match="missing table"):
        read_progress(_write(tmp_path / "a", record="year\n2018\n"))
    with pytest.raises(InputError, match="exactly one row"):
        read_progress(_write(tmp_path / "b", record="year\n2018\n2019\n", households="household_id\n",
                             disbursed="source_id,county_id,category,year,amount\n"))


def test_the_record_is_checked_against_the_plan_and_its_tables(tiny_plan, tmp_path):
    plan_dir, context = tiny_plan
    record = as_planned(plan_dir, 2018)
    hh = record.households
    first, second, third = hh["household_id"].iloc[:3]
    hh.loc[0, "package_id"] = "no-such-package"
    hh.loc[0, "delivered"] = True
    hh.loc[1, "returned"] = True
    hh.loc[2, "exit_year"] = 2019.0
    extra = pd.DataFrame({"household_id": ["NOBODY"], "new": [True]})
    record.households = pd.concat([hh, extra], ignore_index=True).fillna({"delivered": False, "exited": False,
                                                                          "returned": False, "shock": ""})
    record.disbursed = pd.concat([record.disbursed, pd.DataFrame(
        {"source_id": ["nobody"], "county_id": ["C999"], "category": ["housing"], "year": [2019], "amount": [5.0]})],
        ignore_index=True)
    record.projects.loc[0, "started"] = False
    record.projects.loc[0, "finished"] = True
    with pytest.raises(InputError) as caught:
        plan_and_record(plan_dir, record)
    text = str(caught.value)
    for expected in (f"row 1 (id {first}), column 'package_id': delivered package unknown",
                     f"row 2 (id {second}), column 'exited': returned to poverty without having exited",
                     f"row 3 (id {third}), column 'exit_year': exit year outside the record",
                     "column 'household_id': unknown household", "column 'source_id': unknown source",
                     "column 'county_id': unknown county", "column 'year': year outside the record",
                     "column 'started': finished but not started"):
        assert expected in text, text


def test_stay_out_follows_the_domain_return_rates():
    r1, r2, r3 = RETURN_RATES
    # exited end of 2017, out in mid-2018, deadline 2020: years 1, 2, 3 after exit to come
    assert stay_out_probability(np.array([2017.0]), 2018, 2020)[0] == pytest.approx((1 - r1) * (1 - r2) * (1 - r3))
    # exited end of 2016: year 1 survived already
    assert stay_out_probability(np.array([2016.0]), 2018, 2020)[0] == pytest.approx((1 - r2) * (1 - r3) ** 2)


def test_household_states_fold_the_record_into_expected_exits(tiny_plan):
    plan_dir, context = tiny_plan
    record = as_planned(plan_dir, 2018)
    hh = record.households
    plan = context.plan.households.set_index("household_id")
    packages = context.tables["packages"].set_index(["household_id", "package_id"])
    delivered = hh.index[hh["delivered"]]
    settled, returned, shocked = hh.loc[delivered[0], "household_id"], hh.loc[delivered[1], "household_id"], \
        hh.loc[delivered[2], "household_id"]
    open_one = hh.loc[hh.index[~hh["delivered"]][0], "household_id"]
    hh.loc[delivered[1], ["exited", "returned", "exit_year"]] = [True, True, 2017.0]
    hh.loc[delivered[2], "shock"] = "illness"
    exited = hh.index[~hh["delivered"]][1]
    hh.loc[exited, ["exited", "exit_year"]] = [True, 2016.0]
    states = household_states(context.plan.households, record, context.tables, from_year=2018,
                              deadline_year=2020).set_index("household_id")
    baseline = context.tables["households"].set_index("household_id")["baseline_exit_probability"]

    def package_exit(h):
        return packages.loc[(h, plan.loc[h, "package_id"]), "exit_probability"]

    assert states.loc[settled, "state"] == "settled"
    assert states.loc[settled, "expected_now"] == pytest.approx(package_exit(settled))
    assert states.loc[returned, "state"] == "returned"
    assert states.loc[returned, "expected_now"] == pytest.approx(baseline[returned])
    assert states.loc[shocked, "expected_now"] == pytest.approx(SHOCK_EXIT_FACTOR * package_exit(shocked))
    h = hh.loc[exited, "household_id"]
    assert states.loc[h, "state"] == "exited"
    assert states.loc[h, "expected_now"] == pytest.approx(stay_out_probability(np.array([2016.0]), 2018, 2020)[0])
    assert states.loc[open_one, "state"] == "open"
    assert states.loc[open_one, "outlook"] == pytest.approx(package_exit(open_one))
