"""Targeting error inside the allocation (issue 19 item 4): ``households.poverty_probability``
q, weighed into the objective with ``policy.targeting_weights``; the plan's expected inclusion
and exclusion errors; identify's probabilities for edge households.

Every plan solved here passes the independent checker (``solve_checked``), which re-derives
the q-weighted value and expected exits and the targeting numbers from the output tables.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import allocator
from allocator.errors import InputError, ScenarioError
from allocator.inputs.scenario import Policy
from allocator.model.formulation import formulate
from allocator.model.problem import build_problem
from allocator.targeting import identify
from allocator.targeting.identify import INCOME_ERROR_SCALE
from tests.support.plan_checker import check_plan
from tests.support.raw_fixture import LINE, candidates_of, raw_tables
from tests.support.tiny import tiny_tables, write_folder

METHODS = ("exact", "lp-fix", "decompose")
NUMBERS = ("expected_exits", "sustained_exits", "household_years", "value", "objective", "total_cost",
           "total_shortfall", "households_with_package", "projects_built")


def with_q(tables, q: dict[str, float] | float):
    households = tables["households"]
    if isinstance(q, dict):
        households["poverty_probability"] = households["household_id"].map(q).astype(float)
    else:
        households["poverty_probability"] = float(q)
    return tables


def chosen(plan) -> pd.DataFrame:
    return plan.households[["household_id", "package_id", "start_year"]].reset_index(drop=True)


@pytest.mark.parametrize("method", METHODS)
def test_q_one_everywhere_is_todays_plan(tables, solve_checked, method):
    """q = 1 for every household with the weights on gives exactly the plan without the column."""
    solver = {"method": method, "mip_gap": 0.0, "time_limit": 30}
    today = solve_checked(tables, solver=solver)
    ones = solve_checked(with_q(allocator_tables(), 1.0), policy={"targeting_weights": True}, solver=solver)
    for key in NUMBERS:
        assert ones.summary[key] == today.summary[key], key
    pd.testing.assert_frame_equal(chosen(ones), chosen(today))
    assert ones.summary["weighted_expected_exits"] == pytest.approx(today.summary["expected_exits"])
    assert ones.summary["targeting"]["expected_inclusion_error"] == 0.0


def allocator_tables():
    return tiny_tables()


def test_the_default_ignores_the_column(tables, solve_checked):
    """Without policy.targeting_weights the probabilities are reported, not weighed: same plan."""
    today = solve_checked(tables)
    q = {"H1": 0.0, "H2": 0.3, "H4": 0.5, "H6": 0.9}
    reported = solve_checked(with_q(allocator_tables(), q))
    for key in NUMBERS:
        assert reported.summary[key] == today.summary[key], key
    pd.testing.assert_frame_equal(chosen(reported), chosen(today))
    assert reported.summary["targeting"]["weights"] is False
    assert reported.summary["targeting"]["expected_inclusion_error"] == pytest.approx(1.0 + 0.7 + 0.5 + 0.1)


def _money(tables, scale):
    tables["funds"]["amount"] = tables["funds"]["amount"] * scale
    return tables


def _slack_schedule(tables):
    """Counties so large that the baseline meets every county exit rule: only the objective decides."""
    tables["regions"]["rural_population"] = tables["regions"]["rural_population"] * 1000
    return tables


@pytest.mark.parametrize("method", METHODS)
def test_a_household_surely_not_poor_buys_nothing_when_money_is_short(solve_checked, method):
    """With the money short, the plan gives a package to H8 when it is poor; with q = 0 its
    exit is worth nothing and its money goes to households that are poor."""
    solver = {"method": method, "mip_gap": 0.0, "time_limit": 30}
    policy = {"targeting_weights": True}
    before = solve_checked(_slack_schedule(_money(allocator_tables(), 0.3)), policy=policy, solver=solver)
    served = before.households.set_index("household_id")["package_id"]
    assert served["H8"] != "", "the case needs H8 served when it is poor"
    after = solve_checked(with_q(_slack_schedule(_money(allocator_tables(), 0.3)), {"H8": 0.0}), policy=policy,
                          solver=solver)
    assert after.households.set_index("household_id").loc["H8", "package_id"] == ""
    assert after.summary["households_with_package"] == before.summary["households_with_package"]
    assert after.summary["weighted_expected_exits"] < after.summary["expected_exits"]


def test_the_schedule_still_counts_every_registered_household(solve_checked):
    """The county exit rows stay on the registered poor, unweighted (the official yardstick):
    when county C2's rule needs H8's exit, H8 is served even with q = 0."""
    policy = {"targeting_weights": True}
    plan = solve_checked(with_q(_money(allocator_tables(), 0.3), {"H8": 0.0}), policy=policy)
    assert plan.households.set_index("household_id").loc["H8", "package_id"] != ""


def test_weights_move_money_toward_likely_poor(solve_checked):
    """The weighted value equals the objective's: the q-weighted exits rise against the
    unweighted plan evaluated with the same q."""
    q = {"H1": 0.2, "H2": 0.2, "H3": 0.2, "H6": 1.0, "H7": 1.0, "H8": 1.0, "H4": 0.6}
    plain = solve_checked(with_q(_money(allocator_tables(), 0.4), q))
    weighted = solve_checked(with_q(_money(allocator_tables(), 0.4), q), policy={"targeting_weights": True})
    assert weighted.summary["weighted_expected_exits"] >= plain.summary["weighted_expected_exits"] - 1e-6
    assert weighted.summary["total_shortfall"] <= plain.summary["total_shortfall"] + 1e-6


def test_summary_targeting_errors_on_a_hand_made_registry(tables, solve_checked):
    """Registered H1-H4, H6-H8 with q; H5 (not registered) probably poor with 0.4."""
    q = {"H1": 0.9, "H2": 0.5, "H3": 1.0, "H4": 0.2, "H5": 0.4, "H6": 1.0, "H7": 1.0}  # H8 empty: 1
    plan = solve_checked(with_q(tables, q), policy={"targeting_weights": True})
    facts = plan.summary["targeting"]
    inclusion = 0.1 + 0.5 + 0.0 + 0.8
    assert facts["expected_inclusion_error"] == pytest.approx(inclusion)
    assert facts["expected_inclusion_error_share"] == pytest.approx(inclusion / 7)
    assert facts["expected_exclusion_error"] == pytest.approx(0.4)
    assert facts["expected_exclusion_error_share"] == pytest.approx(0.4 / (7 - inclusion + 0.4))
    got = plan.households.set_index("household_id")["poverty_probability"]
    assert got["H8"] == 1.0 and got["H4"] == pytest.approx(0.2)


def test_no_probability_outside_the_registry_leaves_the_exclusion_error_unknown(tables, solve_checked):
    plan = solve_checked(tables)
    facts = plan.summary["targeting"]
    assert facts["expected_inclusion_error"] == 0.0 and facts["expected_exclusion_error"] is None
    assert "unknown" in facts["note"]


def test_the_checker_catches_wrong_weighted_numbers(tables, tmp_path):
    q = {"H1": 0.5, "H5": 0.3}
    path = write_folder(with_q(tables, q), tmp_path / "data", policy={"targeting_weights": True})
    plan = allocator.solve(allocator.load_scenario(path))
    folder = plan.write(tmp_path / "plan")
    args = dict(start_year=2016, deadline_year=2018, policy={"targeting_weights": True})
    assert check_plan(tmp_path / "data", folder, **args) == []
    summary = json.loads((folder / "summary.json").read_text())
    summary["weighted_expected_exits"] += 0.5
    summary["targeting"]["expected_exclusion_error"] = 0.0
    (folder / "summary.json").write_text(json.dumps(summary))
    households = pd.read_csv(folder / "households.csv", dtype=str, keep_default_na=False)
    households.loc[households["household_id"] == "H1", "poverty_probability"] = "1.0"
    households.to_csv(folder / "households.csv", index=False)
    found = "\n".join(check_plan(tmp_path / "data", folder, **args))
    assert "weighted_expected_exits" in found and "expected_exclusion_error" in found
    assert "household H1 poverty_probability" in found
    # the unweighted value is wrong for a weighted plan: the checker sees the weights
    assert check_plan(tmp_path / "data", folder, start_year=2016, deadline_year=2018) != []


def test_the_objective_weighs_each_household_by_q(tables):
    q = {"H1": 0.25, "H2": 0.0}
    plain = formulate(build_problem(tables, name="t", start_year=2016, deadline_year=2018))
    weighted = formulate(build_problem(with_q(tables, q), name="t", start_year=2016, deadline_year=2018,
                                       policy=Policy(targeting_weights=True)))
    weight = weighted.problem.household_weight[weighted.x_household]
    assert np.allclose(weighted.x_value, plain.x_value * weight)
    # the county exit rows and annual targets stay unweighted
    for name in ("county_exit", "annual_target"):
        rows = weighted.family(name).rows
        assert (weighted.model.A[rows] != plain.model.A[rows]).nnz == 0
        assert np.array_equal(weighted.model.row_lo[rows], plain.model.row_lo[rows])


# --- bad input --------------------------------------------------------------------------
def _issues(tables, tmp_path):
    path = write_folder(tables, tmp_path / "data")
    with pytest.raises((InputError, ScenarioError)) as err:
        allocator.load_tables(allocator.load_scenario(path))
    return {(i.file, i.row, i.column) for i in err.value.issues}


@pytest.mark.parametrize("bad", ["1.5", "-0.1", "likely"])
def test_a_bad_probability_names_file_row_and_column(tables, tmp_path, bad):
    tables["households"]["poverty_probability"] = ["0.5", "", bad, "1", "0", "0.2", "0.9", "1"]
    assert ("households.csv", 3, "poverty_probability") in _issues(tables, tmp_path)


def test_a_bad_probability_exits_2_from_the_cli(tables, tmp_path):
    tables["households"]["poverty_probability"] = [0.5, 1.0, 1.2, 1, 0, 0.2, 0.9, 1]
    path = write_folder(tables, tmp_path / "data")
    result = subprocess.run([sys.executable, "-m", "allocator", "validate", str(path)], capture_output=True, text=True)
    out = result.stdout + result.stderr
    assert result.returncode == 2 and "households.csv row 3, column 'poverty_probability'" in out
    assert "Traceback" not in out


# --- identify ---------------------------------------------------------------------------
def test_identify_writes_probabilities_with_edge_households_between():
    raw = raw_tables()
    ident = identify(raw["regions"], raw["villages_raw"], raw["households_raw"], poverty_line=LINE,
                     registry_given=True)
    cards = ident.cards
    q = cards["poverty_probability"].to_numpy()
    assert ((q >= 0) & (q <= 1)).all()
    guarantees = cards["poor"] & (cards["reasons"] != "income")
    assert (cards.loc[guarantees, "poverty_probability"] == 1.0).all()
    near = cards[cards["edge_reasons"].str.contains("near_line")]
    assert len(near) and ((near["poverty_probability"] > 0) & (near["poverty_probability"] < 0.5)).all()
    beyond = cards[~cards["poor"] & ~cards["edge"]]
    assert len(beyond) and (beyond["poverty_probability"] == 0.0).all()
    income_only = cards[cards["reasons"] == "income"]
    assert ((income_only["poverty_probability"] > 0.5) & (income_only["poverty_probability"] <= 1)).all()
    # the documented logistic of the margin: at the line 0.5, scale INCOME_ERROR_SCALE x line
    from allocator.targeting.identify import poverty_probability

    at = poverty_probability(np.array([LINE, LINE * (1 - INCOME_ERROR_SCALE), 0.0, 3 * LINE]), LINE,
                             np.zeros(4, dtype=bool))
    assert at[0] == 0.5 and at[1] == pytest.approx(1 / (1 + np.exp(-1)), abs=1e-4)
    assert at[2] == 1.0 and at[3] == 0.0
    # the candidates' households table carries them, for every household
    cands = candidates_of(raw, ident, basis="registry")
    table = cands.tables["households"].set_index("household_id")["poverty_probability"]
    assert table.to_dict() == cards.set_index("household_id")["poverty_probability"].to_dict()


# --- shown briefly ----------------------------------------------------------------------
def test_the_targeting_line_in_english_and_chinese():
    from allocator.report.i18n import language
    from allocator.report.titles import targeting_text

    facts = {"expected_inclusion_error": 12.5, "expected_inclusion_error_share": 0.125,
             "expected_exclusion_error": 3.0, "expected_exclusion_error_share": 0.03}
    with language("en"):
        assert targeting_text(facts) == "inclusion 12.5 households (12.5%), exclusion 3.0 households (3.0%)"
        assert "exclusion n/a" in targeting_text({**facts, "expected_exclusion_error": None})
    with language("zh"):
        assert targeting_text(facts) == "错评12.5户（12.5%），漏评3.0户（3.0%）"
