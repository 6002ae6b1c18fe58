"""The HiGHS backend's scaling: a scenario's LP relaxation solved unscaled and scaled.

Builds the scenario's model as ``allocator solve`` does, then solves its LP relaxation with
HiGHS' interior point (lp-fix's first phase) once per number of geometric scaling passes
(0 = the model as built), and prints a markdown row per run: seconds, objective, the largest
row violation in the model's own units, and the matrix range HiGHS saw. Run it alone:

    .venv/bin/python benchmarks/lp_scaling.py scenarios/demo.yaml --passes 0 4

and record the rows in benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np

from allocator.inputs.scenario import load_scenario
from allocator.model.formulation import formulate
from allocator.model.problem import build_problem
from allocator.optimize.pipeline import options_from
from allocator.solvers import highs
from allocator.targeting.pipeline import load_tables


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenario")
    parser.add_argument("--passes", type=int, nargs="+", default=[0, highs.SCALE_PASSES])
    args = parser.parse_args()
    scenario = load_scenario(args.scenario)
    problem = build_problem(load_tables(scenario), name=scenario.name, start_year=scenario.start_year,
                            deadline_year=scenario.deadline_year, policy=scenario.policy, validate=False)
    model = formulate(problem).model.relaxed()
    options = dataclasses.replace(options_from(scenario.solver), mip_gap=None, progress=None,
                                  extra={"solver": "ipm"})
    print(f"{scenario.name}: {model.num_cols:,} columns, {model.num_rows:,} rows, {model.A.nnz:,} nonzeros\n")
    print("| scaling passes | LP seconds | status | objective | largest row violation | matrix range |")
    print("|---|---|---|---|---|---|")
    default = highs.SCALE_PASSES
    try:
        for passes in args.passes:
            highs.SCALE_PASSES = passes
            rows, cols = highs.equilibrate(model)
            scaled = np.abs(model.matrix("csc").multiply(rows[:, None]).multiply(cols[None, :]).tocsc().data)
            result = highs.HighsBackend().solve(model, options)
            violation = model.max_violation(result.x) if result.x is not None else float("nan")
            print(f"| {passes} | {result.solve_seconds:.1f} | {result.status.value} | {result.objective:,.4f} | "
                  f"{violation:.2e} | [{scaled[scaled > 0].min():.0e}, {scaled.max():.0e}] |", flush=True)
    finally:
        highs.SCALE_PASSES = default


if __name__ == "__main__":
    main()
