"""Bad input gets a clear error naming file, row, column, expected and found — all at once."""

from __future__ import annotations

import pandas as pd
import pytest

import allocator
from allocator.errors import InputError
from tests.support.tiny import write_folder


def errors_of(tables, tmp_path, **kwargs) -> list[str]:
    path = write_folder(tables, tmp_path / "data", **kwargs)
    scenario = allocator.load_scenario(path)
    with pytest.raises(InputError) as info:
        allocator.build_problem(allocator.load_tables(scenario), name="t", start_year=scenario.start_year,
                                deadline_year=scenario.deadline_year, policy=scenario.policy)
    return [str(issue) for issue in info.value.issues]


def one_error(tables, tmp_path, *needles, **kwargs) -> str:
    messages = errors_of(tables, tmp_path, **kwargs)
    hits = [m for m in messages if all(n in m for n in needles)]
    assert hits, f"no message with {needles} among {messages}"
    return hits[0]


def test_valid_tiny_tables_pass(tables, tmp_path):
    path = write_folder(tables, tmp_path / "data")
    scenario = allocator.load_scenario(path)
    problem = allocator.build_problem(allocator.load_tables(scenario), name="t", start_year=2016, deadline_year=2018)
    assert problem.sizes()["households"] == 7


def test_missing_file(tables, tmp_path):
    del tables["projects"]
    one_error(tables, tmp_path, "projects.csv", "missing table")


def test_missing_column(tables, tmp_path):
    tables["households"] = tables["households"].drop(columns=["size"])
    message = one_error(tables, tmp_path, "households.csv", "'size'", "missing column")
    assert "expected an integer >= 1" in message


def test_wrong_type_names_row_column_and_value(tables, tmp_path):
    tables["households"]["size"] = tables["households"]["size"].astype(object)
    tables["households"].loc[2, "size"] = "two"
    message = one_error(tables, tmp_path, "households.csv row 3", "'size'")
    assert "not a number" in message and "'two'" in message


def test_probability_outside_unit_interval(tables, tmp_path):
    tables["packages"].loc[4, "exit_probability"] = 1.3
    message = one_error(tables, tmp_path, "packages.csv row 5", "'exit_probability'", "out of range")
    assert "[0, 1]" in message and "1.3" in message


@pytest.mark.parametrize(("table", "column"), [("packages", "cost"), ("packages", "personnel_hours"),
                                                ("projects", "cost"), ("funds", "amount"), ("personnel", "hours")])
def test_negative_money_or_hours(tables, tmp_path, table, column):
    tables[table].loc[0, column] = -5
    one_error(tables, tmp_path, f"{table}.csv row 1", f"'{column}'", "out of range", "in [0, ")


def test_duplicate_ids(tables, tmp_path):
    tables["households"].loc[3, "household_id"] = "H1"
    one_error(tables, tmp_path, "households.csv row 4", "duplicate id", "H1")


def test_unknown_village_and_township(tables, tmp_path):
    tables["households"].loc[1, "village_id"] = "V9"
    tables["villages"].loc[2, "township_id"] = "T9"
    messages = errors_of(tables, tmp_path)
    assert any("households.csv row 2" in m and "village does not exist" in m and "'V9'" in m for m in messages)
    assert any("villages.csv row 3" in m and "township does not exist" in m for m in messages)


def test_village_under_a_county_not_a_township(tables, tmp_path):
    tables["villages"].loc[0, "township_id"] = "C1"
    one_error(tables, tmp_path, "villages.csv row 1", "not a township")


def test_cycle_in_region_tree(tables, tmp_path):
    tables["regions"].loc[0, "parent_id"] = "T1"  # P -> T1 -> C1 -> P
    one_error(tables, tmp_path, "regions.csv", "cycle in the region tree")


def test_unknown_parent(tables, tmp_path):
    tables["regions"].loc[3, "parent_id"] = "C7"
    one_error(tables, tmp_path, "regions.csv row 4", "parent region does not exist", "'C7'")


def test_requires_project_absent_from_village(tables, tmp_path):
    tables["packages"].loc[0, "requires"] = "road;bridge"
    message = one_error(tables, tmp_path, "packages.csv row 1", "'requires'", "bridge")
    assert "village V1" in message


def test_requires_project_of_another_village(tables, tmp_path):
    tables["packages"].loc[5, "requires"] = "road"  # H4 lives in V2, the road is in V1
    one_error(tables, tmp_path, "packages.csv row 6", "road", "village V2")


def test_unknown_fund_category_and_region(tables, tmp_path):
    tables["funds"].loc[3, "categories"] = "industry;roads"
    tables["funds"].loc[4, "regions"] = "C1;C5"
    messages = errors_of(tables, tmp_path)
    assert any("funds.csv row 4" in m and "'categories'" in m and "roads" in m for m in messages)
    assert any("funds.csv row 5" in m and "'regions'" in m and "C5" in m for m in messages)


def test_years_outside_horizon(tables, tmp_path):
    tables["funds"].loc[0, "year"] = 2015
    tables["personnel"].loc[0, "year"] = 2021
    messages = errors_of(tables, tmp_path)
    assert any("funds.csv row 1" in m and "year outside the scenario" in m and "2016..2018" in m for m in messages)
    assert any("personnel.csv row 1" in m and "year outside" in m for m in messages)


def test_empty_problem(tables, tmp_path):
    tables["households"]["registered_poor"] = False
    one_error(tables, tmp_path, "households.csv", "empty problem")


def test_carry_over_mixed_within_source(tables, tmp_path):
    tables["funds"].loc[1, "carry_over"] = False
    one_error(tables, tmp_path, "funds.csv", "carry_over differs")


def test_errors_are_collected_not_one_at_a_time(tables, tmp_path):
    tables["households"].loc[0, "baseline_exit_probability"] = 2
    tables["packages"].loc[1, "cost"] = -1
    tables["projects"].loc[0, "category"] = "roads"
    messages = errors_of(tables, tmp_path)
    assert len(messages) >= 3


def test_error_count_is_capped(tables, tmp_path):
    tables["households"] = pd.concat([tables["households"]] * 10, ignore_index=True)
    tables["households"]["household_id"] = [f"X{i}" for i in range(len(tables["households"]))]
    tables["households"]["size"] = 0
    path = write_folder(tables, tmp_path / "data")
    with pytest.raises(InputError) as info:
        allocator.load_tables(allocator.load_scenario(path))
    assert len(info.value.issues) == 20 and info.value.truncated


def test_scenario_yaml_errors_name_the_key(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\nstart_year: 2016\ndeadline_year: 2020\ndata: d\npolicy:\n  deadline: maybe\n"
                    "  min_category_share: {roads: 0.2}\nsolver: {gap: 0.1}\n")
    with pytest.raises(InputError) as info:
        allocator.load_scenario(path)
    text = str(info.value)
    assert "bad.yaml, key 'policy.deadline'" in text
    assert "policy.min_category_share.roads" in text
    assert "solver.gap" in text and "unknown key" in text


def test_scenario_years_reversed(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\nstart_year: 2020\ndeadline_year: 2016\ndata: d\n")
    with pytest.raises(InputError, match="deadline_year 2016 is before start_year 2020"):
        allocator.load_scenario(path)


def test_parquet_tables_are_read_too(tables, tmp_path):
    path = write_folder(tables, tmp_path / "data")
    for name, frame in tables.items():
        (tmp_path / "data" / f"{name}.csv").unlink()
        frame.to_parquet(tmp_path / "data" / f"{name}.parquet", index=False)
    problem = allocator.build_problem(allocator.load_tables(allocator.load_scenario(path)), name="t",
                                      start_year=2016, deadline_year=2018)
    assert problem.sizes()["packages"] == 9
