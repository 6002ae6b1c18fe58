"""National scale on Dask: a slice of the national preset, one task per county, projected to all counties.

Each task draws one county of the national preset (``allocator.synth.national``), writes it as
a raw data folder and runs ``allocator.solve`` on it: identification, candidates, build and
solve, with the county's own budget. The slice runs on a LocalCluster of 1 worker, then of 2;
the per-county times (from the 1-worker run) are fitted as seconds = a + b x households and
summed over every county of the country, and the sum is divided by N workers times the
parallel efficiency measured with 2 workers.

The projection assumes what the tasks do: counties solved independently under their own
budgets. The national problem's shared provincial rows (a province's funds pooled across its
counties, category shares) are ignored; coordinating them is the decomposition's work.

    .venv/bin/python benchmarks/national.py --counties 8 --workers 1,2
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd


def run_county(county: dict, start_year: int, deadline_year: int, time_limit: float) -> dict:
    """One task: draw the county, write it, solve it; seconds per stage and the plan's KPIs."""
    import yaml

    import allocator
    from allocator.synth import write_tables
    from allocator.synth.national import generate_county

    started = time.perf_counter()
    tables = generate_county(county, start_year, deadline_year)
    generated = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        write_tables(tables, folder, fmt="parquet", overwrite=True)
        scenario = {"name": county["county_id"], "start_year": start_year, "deadline_year": deadline_year,
                    "data": ".", "solver": {"method": "auto", "mip_gap": 0.001, "time_limit": time_limit,
                                            "threads": 1}}
        (Path(folder) / "scenario.yaml").write_text(yaml.safe_dump(scenario))
        plan = allocator.solve(allocator.load_scenario(Path(folder) / "scenario.yaml"))
    done = time.perf_counter()
    s = plan.summary
    return {"county_id": county["county_id"], "households": int(county["households"]),
            "generate_s": generated - started, "solve_s": done - generated, "total_s": done - started,
            "build_s": s["build_seconds"], "model_solve_s": s["solve_seconds"], "status": s["status"],
            "method": s["method"], "gap": s["gap"], "on_schedule": s["counties_on_schedule"],
            "exits": s["expected_exits"], "poor": int(plan.households.shape[0])}


def markdown(frame: pd.DataFrame) -> str:
    """A markdown table, numbers with 2 decimals."""
    cells = [[f"{v:.2f}" if isinstance(v, float) else str(v) for v in row] for row in frame.itertuples(index=False)]
    lines = ["| " + " | ".join(frame.columns) + " |", "|" + "---|" * len(frame.columns)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in cells])


def run_slice(sample: pd.DataFrame, workers: int, args) -> tuple[pd.DataFrame, float]:
    from distributed import as_completed

    from allocator.optimize.parallel import dask_client

    with dask_client(workers=workers) as client:
        client.run(lambda: None)  # workers up before the clock starts
        started = time.perf_counter()
        futures = [client.submit(run_county, row, args.start_year, args.deadline_year, args.time_limit, pure=False)
                   for row in sample.to_dict("records")]
        rows = [future.result() for future in as_completed(futures)]
        wall = time.perf_counter() - started
    return pd.DataFrame(rows).sort_values("county_id").reset_index(drop=True), wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counties", type=int, default=8, help="counties in the slice (a seeded sample)")
    parser.add_argument("--workers", default="1,2", help="LocalCluster sizes to run, e.g. 1,2")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--start-year", type=int, default=2016)
    parser.add_argument("--deadline-year", type=int, default=2020)
    parser.add_argument("--time-limit", type=float, default=120.0, help="seconds per county solve")
    parser.add_argument("--project", default="1,2,8,32,128", help="worker counts to project the national run to")
    args = parser.parse_args()

    from allocator.synth.national import national_counties, national_summary

    country = national_counties(args.seed)
    sample = country.sample(n=args.counties, random_state=args.seed).sort_values("county_id")
    print(f"# national preset: {national_summary(country)}")
    print(f"# slice: {args.counties} counties, {int(sample['households'].sum()):,} registered households; "
          f"{platform.platform()}, {os.cpu_count()} cores, {datetime.date.today()}")
    walls = {}
    first = None
    for workers in (int(w) for w in args.workers.split(",")):
        frame, wall = run_slice(sample, workers, args)
        walls[workers] = wall
        first = frame if first is None else first
        print(f"\n## {workers} worker(s): wall {wall:.1f} s for {len(frame)} counties "
              f"({wall / len(frame):.1f} s per county)\n")
        print(markdown(frame))
    b, a = np.polyfit(first["households"], first["total_s"], 1) if len(first) > 1 else (0.0, first["total_s"].mean())
    per_county = a + b * country["households"].to_numpy(dtype=float)
    total = float(np.clip(per_county, first["total_s"].min() / 2, None).sum())
    ones = walls.get(1, first["total_s"].sum())
    efficiency = min(1.0, ones / walls[2] / 2) if 2 in walls else 1.0
    print(f"\n## projection: seconds per county = {a:.2f} + {b * 1000:.3f} per 1,000 households "
          f"(fit on the 1-worker run); all {len(country):,} counties: {total / 3600:.1f} CPU-hours; "
          f"2-worker efficiency {efficiency:.0%}\n")
    print("| workers | projected wall |\n|---|---|")
    for n in (int(w) for w in args.project.split(",")):
        eff = 1.0 if n == 1 else efficiency
        print(f"| {n} | {total / n / eff / 3600:.1f} h |")


if __name__ == "__main__":
    main()
