"""The price method (``decompose``): a valid Lagrangian bound, exact relaxed pieces, plans the
independent checker accepts, and county shares that keep the province-wide rows."""

from __future__ import annotations

import re

import numpy as np
import pytest

from allocator.inputs.scenario import Policy
from allocator.model.formulation import formulate
from allocator.model.problem import build_problem
from allocator.optimize.decompose import (
    Flows,
    Relaxation,
    Villages,
    county_rows,
    county_shares,
    initial_prices,
    relaxed_plan,
    target_shares,
)
from allocator.synth import generate_preset
from tests.solvers.test_optimality import POLICIES, random_instance

EXACT = {"method": "exact", "mip_gap": 0.0}
DECOMPOSE = {"method": "decompose", "mip_gap": 0.0, "time_limit": 30}


@pytest.mark.parametrize("seed", range(12))
def test_bound_is_above_the_exact_optimum_and_the_plan_below(seed, solve_checked):
    """On enumerable instances: L(u) >= the optimum of the weighted objective >= the plan's."""
    tables = random_instance(seed)
    policy = POLICIES[seed % len(POLICIES)]
    exact = solve_checked(tables, policy=policy, start_year=2017, deadline_year=2018, solver=EXACT)
    plan = solve_checked(tables, policy=policy, start_year=2017, deadline_year=2018, solver=DECOMPOSE)
    if exact.status == "infeasible":
        assert plan.status in ("infeasible", "error")
        assert plan.households.empty or plan.summary["expected_exits"] is None
        return
    assert plan.status in ("optimal", "feasible")
    optimum = exact.summary["objective"]
    assert plan.summary["objective_bound"] >= optimum - 1e-6
    assert plan.summary["objective"] <= optimum + 1e-6
    assert plan.summary["bound"] >= plan.summary["expected_exits"] - 1e-9


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_tiny_preset_plan_is_checked_and_near_the_exact_one(seed, solve_checked):
    tables = generate_preset("tiny", seed=seed, start_year=2016, deadline_year=2018)
    exact = solve_checked(tables, solver=EXACT)
    plan = solve_checked(tables, solver=DECOMPOSE)
    assert plan.summary["method"] == "decompose"
    assert plan.summary["objective_bound"] >= exact.summary["objective"] - 1e-6
    assert plan.summary["total_shortfall"] >= exact.summary["total_shortfall"] - 1e-6


def _formulation(seed: int, policy: dict | None = None):
    tables = generate_preset("tiny", seed=seed, start_year=2016, deadline_year=2019)
    problem = build_problem(tables, name="t", start_year=2016, deadline_year=2019, policy=Policy(**(policy or {})))
    return formulate(problem)


@pytest.mark.parametrize("seed", [0, 3])
def test_relaxed_plan_value_is_its_priced_objective(seed):
    """L(u) as the pieces report it equals c z + u (b - A z) of the plan they return, at any prices."""
    fm = _formulation(seed)
    relax, villages, flows = Relaxation.of(fm), Villages.of(fm), Flows.of(fm)
    rng = np.random.default_rng(seed)
    u0 = initial_prices(fm, relax, villages)
    for _ in range(5):
        u = np.clip(u0 * rng.uniform(0, 3, len(u0)) + rng.normal(0, 0.05, len(u0)), relax.u_lo, relax.u_hi)
        value, z, _ = relaxed_plan(fm, relax, villages, flows, u)
        direct = fm.model.c @ z + u @ (relax.rhs - relax.A @ z) + fm.model.offset
        assert value == pytest.approx(direct, rel=1e-9, abs=1e-9)


@pytest.mark.parametrize("seed", [0, 3])
def test_village_pieces_are_solved_exactly(seed):
    """No other plan the villages allow does better at the same prices: compare with every
    relaxed plan found at other prices (each satisfies the village rules)."""
    fm = _formulation(seed)
    relax, villages, flows = Relaxation.of(fm), Villages.of(fm), Flows.of(fm)
    rng = np.random.default_rng(10 + seed)
    u0 = initial_prices(fm, relax, villages)
    prices = [np.clip(u0 * rng.uniform(0, 3, len(u0)) + rng.normal(0, 0.05, len(u0)), relax.u_lo, relax.u_hi)
              for _ in range(8)]
    plans = [relaxed_plan(fm, relax, villages, flows, u)[1] for u in prices]
    xy = slice(0, fm.nx + fm.ny)
    for u in prices:
        _, z, d = relaxed_plan(fm, relax, villages, flows, u)
        for other in plans:
            assert d[xy] @ other[xy] <= d[xy] @ z[xy] + 1e-9
            best_flows = d[fm.f_cols] @ z[fm.f_cols]
            assert d[fm.f_cols] @ other[fm.f_cols] <= best_flows + 1e-7 * max(1.0, abs(best_flows))


def test_county_shares_sum_to_the_rows_and_keep_the_plan():
    fm = _formulation(1, {"min_category_share": {"infrastructure": 0.1}, "max_category_share": {"housing": 0.6}})
    m = fm.model
    rng = np.random.default_rng(0)
    plan = np.zeros(m.num_cols)
    plan[fm.f_cols] = rng.uniform(0, 1000, fm.nf)  # any flows: only the province-wide rows matter here
    point = rng.uniform(0, 1, m.num_cols)
    column_county = fm.column_county
    _, global_rows = county_rows(fm, column_county)
    assert len(global_rows) > 0
    lower, upper = county_shares(fm, plan, point, column_county, global_rows, len(fm.problem.county_ids))
    A = m.A[global_rows]
    use = np.stack([A[:, column_county == c] @ plan[column_county == c] for c in range(len(fm.problem.county_ids))],
                   axis=1)
    finite_hi = np.isfinite(m.row_hi[global_rows])
    ok_hi = use.sum(axis=1) <= m.row_hi[global_rows] + 1e-6
    assert np.all(upper[finite_hi & ok_hi].sum(axis=1) <= m.row_hi[global_rows][finite_hi & ok_hi] + 1e-6)
    assert np.all(use[finite_hi] <= upper[finite_hi] + 1e-9)
    finite_lo = np.isfinite(m.row_lo[global_rows])
    assert np.all(use[finite_lo] >= lower[finite_lo] - 1e-9)


def test_a_scenario_wide_target_is_split_by_what_the_point_adds_in_each_group():
    fm = _formulation(2, {"annual_targets": {2017: 0.6, 2018: 0.3}})
    rows = np.arange(fm.family("annual_target").rows.start, fm.family("annual_target").rows.stop)
    counties = len(fm.problem.county_ids)
    group = fm.column_county % 2
    point = np.random.default_rng(1).uniform(0, 1, fm.model.num_cols)
    shares = target_shares(fm, point, group, rows, 2)
    assert shares.shape == (len(rows), 2) and counties >= 2
    assert np.allclose(shares.sum(axis=1), fm.model.row_lo[rows])
    A = fm.model.A[rows][:, fm.x_cols]
    adds = np.stack([A[:, group[fm.x_cols] == g] @ point[fm.x_cols][group[fm.x_cols] == g] for g in (0, 1)], axis=1)
    assert np.allclose(shares, fm.model.row_lo[rows][:, None] * adds / adds.sum(axis=1, keepdims=True))
    # a point that adds nothing: the split follows the columns each group can use
    even = target_shares(fm, np.zeros(fm.model.num_cols), group, rows, 2)
    assert np.allclose(even.sum(axis=1), fm.model.row_lo[rows])
    assert ((even > 0).all(axis=1) == (fm.model.row_lo[rows] > 0)).all()


@pytest.mark.parametrize(("integer_columns", "years", "method"), [
    (5_000, 5, "exact"), (5_001, 5, "lp-fix"), (150_000, 5, "lp-fix"), (150_001, 5, "decompose"),
    (1_000_000, 1, "lp-fix"),
])
def test_auto_picks_decompose_for_large_multi_year_models(integer_columns, years, method):
    from types import SimpleNamespace

    from allocator.inputs.scenario import SolverSettings
    from allocator.optimize.pipeline import choose_method

    fm = SimpleNamespace(model=SimpleNamespace(integrality=np.ones(integer_columns, dtype=bool)),
                         problem=SimpleNamespace(years=np.arange(years)))
    assert choose_method(fm, SolverSettings()) == method
    assert choose_method(fm, SolverSettings(method="exact")) == "exact"


def test_county_groups_meet_their_shares_of_a_scenario_wide_target(tmp_path):
    """Four counties in three groups under one scenario-wide annual target: every group's
    lp-fix finds a plan (each gets a share of the target and its shortfall column, so a share
    it cannot meet costs the penalty, not its plan), their mix with the repaired plan is kept,
    and it passes the independent checker."""
    import allocator
    from tests.support.plan_checker import check_scenario_plan
    from tests.support.tiny import write_folder

    tables = generate_preset("demo", seed=0, start_year=2016, deadline_year=2018, households=1200, counties=4)
    path = write_folder(tables, tmp_path / "data", policy={"annual_targets": {2016: 0.8, 2017: 0.5, 2018: 0.15}},
                        solver={"method": "decompose", "group_columns": 1000, "time_limit": 60})
    plan = allocator.solve(allocator.load_scenario(path))
    found = re.search(r"lp-fix on (\d+) groups of counties .*? found plans for (\d+)", plan.summary["message"])
    assert found and int(found.group(1)) >= 2 and found.group(1) == found.group(2), plan.summary["message"]
    assert "the repaired plan is kept" not in plan.summary["message"]
    assert check_scenario_plan(path, plan.write(tmp_path / "plan")) == []


def test_a_floor_the_funds_miss_by_solver_slack_is_lowered_not_an_error(monkeypatch):
    """A floor is what an earlier flow LP called payable, true only within HiGHS' tolerance: a
    floor a hair above the most the funds pay still gets flows (paying about the floor), and a
    floor far above them is dropped (the caller sees the cell short), never an exception."""
    fm = _formulation(0)
    flows = Flows.of(fm)
    budgets = flows.model.row_hi[np.isfinite(flows.model.row_hi)]
    most = flows.pay(np.full(flows.cells.shape[0], budgets.max()))  # as much as any fund holds
    assert most.sum() > 0
    demand = most * 1.5 + 1.0
    failures = []
    solve = Flows._solve

    def counting(model, c):
        try:
            return solve(model, c)
        except RuntimeError:
            failures.append(1)
            raise

    monkeypatch.setattr(Flows, "_solve", staticmethod(counting))
    over = most + 1e-7 * demand.max() * (most > 0)  # infeasible as an exact floor, within the slack
    paid = flows.pay(demand, floor=over)
    assert len(failures) == 1  # the exact floor failed, the lowered one held
    assert paid.sum() == pytest.approx(most.sum(), rel=1e-6)
    assert np.all(paid >= over - 2e-6 * demand.max())
    far = most * 2 + 1.0
    paid_far = flows.pay(demand, floor=far)
    assert len(failures) == 3  # both floors failed: dropped
    assert paid_far.sum() == pytest.approx(most.sum(), rel=1e-6)
    assert np.any(paid_far < far)


def test_village_pairs_priced_in_chunks_match_one_gather(monkeypatch):
    """Pricing the (schedule, household) pairs a few entries at a time (as a province must, to
    bound memory) gives the same values and choices as all at once."""
    import allocator.optimize.decompose as decompose

    fm = _formulation(3)
    villages = Villages.of(fm)
    assert len(villages.entry_cols) > 50  # several chunks below
    rng = np.random.default_rng(4)
    d_x, d_y = rng.normal(0, 1, fm.nx), rng.normal(-0.5, 1, fm.ny)
    whole = villages.solve(d_x, d_y)
    monkeypatch.setattr(decompose, "PAIR_CHUNK", 7)
    chunked = villages.solve(d_x, d_y)
    assert chunked[0] == whole[0]
    assert np.array_equal(chunked[1], whole[1]) and np.array_equal(chunked[2], whole[2])


@pytest.mark.parametrize("method", ["decompose", "lp-fix"])
def test_progress_reads_in_exits_and_shortfall_not_the_penalised_objective(method):
    """Every plan the solve reports on its way shows expected exits and households of
    shortfall; the last one before "plan ready" is the plan written."""
    import allocator
    from allocator.inputs.scenario import SolverSettings

    tables = generate_preset("tight", seed=2, start_year=2016, deadline_year=2018, households=600)
    problem = build_problem(tables, name="t", start_year=2016, deadline_year=2018, policy=Policy())
    seen = []
    plan = allocator.solve_problem(problem, SolverSettings(method=method, time_limit=30),
                                   progress=lambda phase, **info: seen.append((phase, info)))
    reports = [(phase, info) for phase, info in seen if "expected_exits" in info and phase != "plan ready"]
    assert reports and all("incumbent" not in info and "shortfall" in info for _, info in reports)
    assert reports[0][0] == ("LP done" if method == "lp-fix" else "repaired plan")
    phase, last = reports[-1]
    assert phase != "LP done"  # the relaxation's figures are not a plan's
    assert last["expected_exits"] == pytest.approx(plan.summary["expected_exits"], abs=1e-6)
    assert last["shortfall"] == pytest.approx(plan.summary["total_shortfall"], abs=1e-6)


def test_prices_and_improvement_rounds_report_seconds_of_their_budget():
    """Both stop at convergence (or a step cap, or a run of rounds that do not help), so neither
    knows its step count ahead: each reports the seconds it spent of its time budget, the last
    report says finished, and the CLI draws each as a bar of at most the time left."""
    import allocator
    from allocator.inputs.scenario import SolverSettings
    from allocator.optimize.decompose import MAX_ITERATIONS
    from tests.support.progress import Recorder, check_drawn, check_timed

    tables = generate_preset("tight", seed=2, start_year=2016, deadline_year=2018, households=600)
    problem = build_problem(tables, name="t", start_year=2016, deadline_year=2018, policy=Policy())
    seen = Recorder()
    allocator.solve_problem(problem, SolverSettings(method="decompose", time_limit=10, mip_gap=0.0), progress=seen)
    prices, rounds = seen.of("prices"), seen.of("improvement round")
    check_timed(prices)
    # PRICING_SHARE of the time limit, less the greedy rule's plan (decompose's start) made within it
    assert 3.0 < prices[0]["budget"] <= 4.0
    steps = [r["step"] for r in prices]
    assert steps == sorted(steps) and steps[-1] <= MAX_ITERATIONS and prices[-1]["seconds"] <= 4.0 + 1.0
    check_timed(rounds)
    begun = [r["round"] for r in rounds if "expected_exits" not in r and not r.get("finished")]
    assert begun == list(range(1, rounds[-1]["round"] + 1))  # every round as it begins, not only the better ones
    assert rounds[-1]["seconds"] <= rounds[-1]["budget"]
    check_drawn(seen.events, "prices", timed=True)
    check_drawn(seen.events, "improvement round", timed=True)


def test_short_time_runs_the_groups_furthest_behind_and_all_of_them_when_it_can():
    from allocator.optimize.decompose import groups_to_run

    behind = np.array([0.0, 5.0, 1.0, 9.0, 3.0])
    needs = np.array([10.0, 20.0, 10.0, 40.0, 10.0])  # seconds each group's size needs
    run, limits = groups_to_run(behind, needs, None, 2)
    assert run.tolist() == [0, 1, 2, 3, 4] and limits is None
    run, limits = groups_to_run(behind, needs, 45.0, 2)  # 90 thread-seconds cover all 90 needed
    assert run.tolist() == [0, 1, 2, 3, 4] and np.allclose(limits, needs)
    run, limits = groups_to_run(behind, needs, 30.0, 2)  # 60: the furthest behind while they fit
    assert run.tolist() == [1, 3] and np.allclose(limits, [20.0, 40.0])
    run, limits = groups_to_run(behind, needs, 10.0, 2)  # less than the furthest behind needs: it alone
    assert run.tolist() == [3] and np.allclose(limits, [20.0])


def test_the_greedy_rule_s_plan_is_the_start_when_the_repaired_one_is_worse():
    """decompose goes on from the greedy rule's plan (the pipeline's ``incumbent``) when the repaired
    relaxed plan is worse or missing, never when it is better; the pipeline passes it."""
    import allocator
    from allocator.optimize.baselines import baseline_plan
    from allocator.optimize.decompose import better_start
    from allocator.optimize.methods import solve_restricted
    from allocator.optimize.pipeline import solve_problem
    from allocator.plan.context import plan_vector
    from allocator.solvers import get_backend
    from allocator.solvers.base import SolveOptions

    tables = generate_preset("tiny", seed=2, start_year=2016, deadline_year=2019, money_scale=0.4)
    problem = build_problem(tables, name="tiny", start_year=2016, deadline_year=2019,
                            policy=Policy(annual_targets={2017: 0.6, 2018: 0.3}), validate=False)
    fm, solver, options = formulate(problem), get_backend("highs"), SolveOptions()
    greedy = plan_vector(fm, baseline_plan(fm, "greedy"))
    projects_only = np.where(np.arange(fm.model.num_cols) < fm.nx, 0.0, greedy)
    nothing = solve_restricted(fm, solver, projects_only, np.zeros(fm.model.num_cols, dtype=bool),
                               options)  # the rule's projects and no package: a plan far behind the rule's
    assert nothing.status.has_solution
    taken = better_start(fm, solver, nothing, greedy, options)
    assert taken is not None and taken.objective > nothing.objective
    assert np.array_equal(taken.x[fm.model.integrality], np.round(greedy[fm.model.integrality]))
    assert better_start(fm, solver, None, greedy, options) is not None  # no repaired plan at all
    assert better_start(fm, solver, solver.solve(fm.model, options), greedy, options) is None  # the optimum
    phases = []
    solve_problem(problem, allocator.SolverSettings(method="decompose", time_limit=20),
                  progress=lambda phase, **info: phases.append(phase))
    assert "greedy rule's plan: a start for decompose" in phases
