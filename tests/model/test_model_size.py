"""The size estimate printed before building: close to the built model, and what ``auto`` reads."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

import allocator
from allocator.inputs.scenario import Policy, SolverSettings
from allocator.model.formulation import formulate
from allocator.model.problem import build_problem
from allocator.model.size import MODEL_MEMORY_LIMIT, ModelSize, estimate_size
from allocator.optimize.pipeline import choose_method
from allocator.synth import generate_preset
from allocator.targeting.pipeline import load_tables

SHARES = {"min_category_share": {"infrastructure": 0.1}, "max_category_share": {"housing": 0.6}}
EQUITY = {"equity": {"county_floor_per_poor": 100, "max_exit_rate_spread": 0.2, "objective": "maxmin"}}


def _assert_close(problem, tolerance=0.3):
    estimate = estimate_size(problem)
    model = formulate(problem).model
    actual = {"rows": model.num_rows, "columns": model.num_cols, "nonzeros": model.A.nnz,
              "integer_columns": int(model.integrality.sum())}
    for key, value in actual.items():
        assert getattr(estimate, key) == pytest.approx(value, rel=tolerance), key
    assert estimate.memory_bytes > 100 * actual["nonzeros"]


@pytest.mark.parametrize(("preset", "deadline", "policy"), [("demo", 2020, {}), ("tight", 2018, SHARES),
                                                            ("demo", 2020, EQUITY)])
def test_estimate_is_close_to_the_canonical_model(preset, deadline, policy):
    tables = generate_preset(preset, seed=3, start_year=2016, deadline_year=deadline, households=1500)
    _assert_close(build_problem(tables, name="t", start_year=2016, deadline_year=deadline, policy=Policy(**policy)))


@pytest.mark.parametrize("policy", [{}, SHARES, EQUITY])
def test_estimate_is_close_on_irregular_tables(tables, policy):
    """The tiny set: personnel rows in some years only, a fund for one category and county."""
    _assert_close(build_problem(tables, name="t", start_year=2016, deadline_year=2018, policy=Policy(**policy)))


def test_estimate_is_close_to_the_demo_scenario_model():
    scenario = allocator.load_scenario("scenarios/demo.yaml")
    _assert_close(build_problem(load_tables(scenario), name=scenario.name, start_year=scenario.start_year,
                                deadline_year=scenario.deadline_year, policy=scenario.policy, validate=False))


def test_auto_decomposes_above_the_memory_limit_or_on_dask():
    small = SimpleNamespace(model=SimpleNamespace(integrality=np.ones(100, dtype=bool)),
                            problem=SimpleNamespace(years=np.arange(1)))
    large = ModelSize(rows=1, columns=1, integer_columns=1, nonzeros=1, memory_bytes=MODEL_MEMORY_LIMIT + 1)
    fits = ModelSize(rows=1, columns=1, integer_columns=1, nonzeros=1, memory_bytes=MODEL_MEMORY_LIMIT)
    assert choose_method(small, SolverSettings(), fits) == "exact"
    assert choose_method(small, SolverSettings(), large) == "decompose"
    assert choose_method(small, SolverSettings(), fits, distributed=True) == "decompose"
    assert choose_method(small, SolverSettings(method="lp-fix"), large, distributed=True) == "lp-fix"


def test_the_estimate_is_reported_before_the_build(tables):
    problem = build_problem(tables, name="t", start_year=2016, deadline_year=2018, policy=Policy())
    phases = []
    plan = allocator.solve_problem(problem, SolverSettings(method="exact"),
                                   progress=lambda phase, **info: phases.append((phase, info)))
    assert [p for p, _ in phases[:2]] == ["estimate", "build model"]
    assert phases[0][1]["columns"] == plan.summary["manifest"]["estimate"]["columns"]
    assert plan.summary["manifest"]["scheduler"] is None


def test_a_project_of_no_duration_is_counted_in_every_year(tables):
    """A mandatory project that takes 0 years may start in the last year too (found by the
    property tests: the estimate indexed one year past the horizon)."""
    tables["projects"]["duration_years"] = 0
    _assert_close(build_problem(tables, name="t", start_year=2016, deadline_year=2018, validate=False))
