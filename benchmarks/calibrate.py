"""Calibration: does the optimised plan follow the national path of poverty reduction?

Solves a raw scenario (a province preset) and prints, per year, the share of the planned poor
households still poor at year end — one minus the expected exits counted by then (a package
started in year t with lag l counts from t + l; a household without a package counts its
baseline at the deadline) — against the national path (DOMAIN.md §7.5: the share of the 2014
stock still poor, rescaled to the stock at the start of the plan). Run it as

    .venv/bin/python benchmarks/calibrate.py scenarios/province.yaml [--time-limit 900]

and record the table in docs/effect-model.md. A chart goes to benchmarks/results/.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from allocator import load_scenario, solve_problem  # noqa: E402
from allocator.checks import check_tables  # noqa: E402
from allocator.cli import ProgressPrinter  # noqa: E402
from allocator.model.problem import build_problem  # noqa: E402
from allocator.report import NATIONAL_STILL_POOR, poor_by_year  # noqa: E402
from allocator.targeting import prepare  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenario", type=Path)
    parser.add_argument("--time-limit", type=float, default=None)
    parser.add_argument("--money-scale", type=float, default=None)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    scenario = load_scenario(args.scenario)
    if args.money_scale is not None:
        scenario = scenario.model_copy(update={"generate": scenario.generate.model_copy(
            update={"money_scale": args.money_scale})})
    settings = scenario.solver
    if args.time_limit is not None:
        settings = settings.model_copy(update={"time_limit": args.time_limit})
    progress = ProgressPrinter(False)
    started = time.perf_counter()
    progress("targeting")
    result = prepare(scenario)
    check_tables(result.tables, scenario.years)
    problem = build_problem(result.tables, name=scenario.name, start_year=scenario.start_year,
                            deadline_year=scenario.deadline_year, policy=scenario.policy, validate=False)
    plan = solve_problem(problem, settings, progress=progress)
    planned = result.tables["households"].query("registered_poor")
    path = poor_by_year(plan, problem)["expected_poor"].to_numpy() / len(planned)
    start_stock = NATIONAL_STILL_POOR[scenario.start_year - 1]
    national = [NATIONAL_STILL_POOR.get(y, 0.0) / start_stock for y in scenario.years]
    spend = plan.funding.groupby("year")["amount"].sum()
    money = result.tables["funds"].groupby("year")["amount"].sum()
    rows = pd.DataFrame({"year": scenario.years, "plan_still_poor": np.round(path, 3),
                         "national_still_poor": np.round(national, 3),
                         "spend_bn": [round(spend.get(y, 0.0) / 1e9, 3) for y in scenario.years],
                         "money_bn": [round(money.get(y, 0.0) / 1e9, 3) for y in scenario.years]})
    print(rows.to_string(index=False))
    s = plan.summary
    print(json.dumps({k: s[k] for k in ("status", "expected_exits", "gap", "counties_on_schedule", "counties_total",
                                        "total_cost")} | {"planned": len(planned),
                                                          "seconds": round(time.perf_counter() - started, 1)}))
    args.out.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(rows["year"], 100 * rows["plan_still_poor"], marker="o", label="optimised plan")
    ax.plot(rows["year"], 100 * rows["national_still_poor"], marker="s", label="national path (NBS)")
    ax.set_ylabel("% of the start stock still poor at year end")
    ax.set_title(f"{scenario.name}: plan against the national path")
    ax.legend(frameon=False)
    fig.tight_layout()
    fig.savefig(args.out / f"calibration-{scenario.name}.png", dpi=110)


if __name__ == "__main__":
    main()
