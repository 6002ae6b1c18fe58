"""Benchmark: the generalized-assignment solver on the OR-Library sets, and the responsibility
assignment (cadres to households, work teams to poor villages) at province scale.

Run it as

    .venv/bin/python benchmarks/assign.py                                 # gap1-gap12, A, B, C; province
    .venv/bin/python benchmarks/assign.py --sets gapd --time-limit 900 --no-province
    .venv/bin/python benchmarks/assign.py --sets none --preset province --workers 2

The OR-Library table lists per instance: agents, jobs, objective, the published optimum (or the
best-known value for type D), the proven bound, status, seconds and the method used. The province
part generates the preset, identifies the poor (registered households, poor villages by the rule),
draws work teams, then times :func:`allocator.assign.responsibility.assign_responsibility` alone and
reports seconds, peak RSS, objective, bound, gap, the bound without the county rule, and shortage
totals. ``--json FILE`` writes everything as JSON. Targets (issue 5): OR-Library optima within the
time limit; the ``province`` preset assigned in <= 120 s on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np

from allocator.assign.gap import (
    CHU_BEASLEY_1997,
    ORLIB_GAP_BEST_KNOWN,
    ORLIB_GAP_OPTIMA,
    generalized_assignment,
    read_orlib_gap,
)

DATA = Path(__file__).resolve().parents[1] / "tests" / "data" / "orlib-gap"
DEFAULT_SETS = [f"gap{k}" for k in range(1, 13)] + ["gapa", "gapb", "gapc"]


def peak_gib() -> float:
    """Peak resident memory of this process so far, in GiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def orlib(sets: list[str], time_limit: float, method: str, threads: int | None, folder: Path) -> list[dict]:
    rows = []
    header = (f"{'instance':10} {'m':>3} {'n':>4} {'objective':>10} {'published':>10} {'bound':>10} "
              f"{'status':>10} {'seconds':>8}  method")
    print(header)
    print("-" * len(header))
    for stem in sets:
        for inst in read_orlib_gap(folder / f"{stem}.txt"):
            r = generalized_assignment(inst.cost, inst.load, inst.capacity, minimize=inst.minimize,
                                       time_limit=time_limit, threads=threads, method=method)
            # proven optima; for type D the best-known values this solver verified (others: '-')
            published = ORLIB_GAP_OPTIMA.get(inst.name, ORLIB_GAP_BEST_KNOWN.get(inst.name))
            feasible = None
            if r.has_solution:
                a = r.assignment
                used = np.bincount(a, weights=inst.load[a, np.arange(inst.jobs)], minlength=inst.agents)
                feasible = bool(np.all(used <= inst.capacity))
            row = {"instance": inst.name, "agents": inst.agents, "jobs": inst.jobs, "objective": r.objective,
                   "published": published, "bound": r.bound, "status": r.status.value,
                   "seconds": round(r.seconds, 2), "method": r.method, "checked_feasible": feasible,
                   "chu_beasley_1997": CHU_BEASLEY_1997.get(inst.name), "message": r.message}
            rows.append(row)
            mark = "" if published is None or r.objective == published else " *"

            def num(v):
                return "-" if v is None else f"{v:g}"

            print(f"{inst.name:10} {inst.agents:3d} {inst.jobs:4d} {num(r.objective):>10} {num(published):>10} "
                  f"{num(r.bound):>10} {r.status.value:>10} {r.seconds:8.2f}  {r.method}{mark}", flush=True)
    reached = sum(1 for r in rows if r["published"] is not None and r["objective"] == r["published"])
    proven = sum(1 for r in rows if r["status"] == "optimal")
    print(f"{reached}/{len(rows)} reach the published value, {proven}/{len(rows)} proven optimal, "
          f"{sum(r['seconds'] for r in rows):.1f} s in all")
    return rows


def province(preset: str, seed: int, workers: int, time_limit: float | None) -> dict:
    from allocator.assign.responsibility import assign_responsibility, households_for_assignment
    from allocator.inputs.scenario import POVERTY_LINE
    from allocator.synth.province import generate_province_preset
    from allocator.synth.teams import generate_teams
    from allocator.targeting.identify import identify

    t = time.perf_counter()
    raw = generate_province_preset(preset, seed=seed)
    generate_s = time.perf_counter() - t
    t = time.perf_counter()
    ident = identify(raw["regions"], raw["villages_raw"], raw["households_raw"], poverty_line=POVERTY_LINE[2015])
    households = households_for_assignment(ident.cards, ident.villages)  # the registered poor
    teams = generate_teams(ident.villages, raw["regions"], seed=seed)
    prepare_s = time.perf_counter() - t
    before = peak_gib()
    t = time.perf_counter()
    result = assign_responsibility(households, raw["cadres"], ident.villages, teams, regions=raw["regions"],
                                   workers=workers, time_limit=time_limit)
    assign_s = time.perf_counter() - t
    summary = result.summary()
    short = result.shortage
    out = {
        "preset": preset, "seed": seed, "workers": workers, "cpus": os.cpu_count(),
        "households": len(households), "cadres": len(raw["cadres"]),
        "cadre_capacity": int(raw["cadres"]["capacity"].sum()),
        "poor_villages": int(ident.villages["poor_village"].sum()), "teams": len(teams),
        "seconds": {"generate": round(generate_s, 2), "identify_and_teams": round(prepare_s, 2),
                    "assign": round(assign_s, 2)},
        "peak_gib_before_assign": round(before, 2), "peak_gib": round(peak_gib(), 2),
        "peak_gib_worker": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20, 2),
        "status": summary["status"], "objective_km": summary["objective"], "bound_km": summary["bound"],
        "gap": summary["gap"], "households_objective_km": summary["households_objective"],
        "households_province_bound_km": summary["households_province_bound"],
        "decomposition_gap": summary["decomposition_gap"],
        "teams_objective_km": summary["teams_objective"], "teams_bound_km": summary["teams_bound"],
        "households_unassigned": summary["households_unassigned"],
        "households_same_township": summary["households_same_township"],
        "households_skill_match": summary["households_skill_match"],
        "mean_km_household": round(float(result.household_cadre["distance_km"].mean()), 3),
        "townships_short": int((short["deficit"] > 0).sum()), "capacity_missing": int(short["deficit"].sum()),
        "townships_with_unassigned": int((short["unassigned"] > 0).sum()),
        "villages_unassigned": summary["villages_unassigned"],
        "villages_same_county": int(result.village_team["same_county"].sum()),
        "stats": summary["stats"], "notes": summary["notes"],
    }
    print(json.dumps(out, indent=2))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", default=",".join(DEFAULT_SETS),
                        help="comma-separated OR-Library files (gap1..gap12, gapa..gapd) or 'none'")
    parser.add_argument("--time-limit", type=float, default=60.0, help="seconds per OR-Library instance")
    parser.add_argument("--method", default="auto", choices=["auto", "mip", "cpsat"])
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--data", type=Path, default=DATA, help="folder with the gap*.txt files")
    parser.add_argument("--preset", default="province", help="province preset for the responsibility part")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2, help="processes for the county problems")
    parser.add_argument("--province-time-limit", type=float, default=None)
    parser.add_argument("--no-province", action="store_true")
    parser.add_argument("--json", type=Path, default=None, help="write the results to this file")
    args = parser.parse_args()
    report = {"date": date.today().isoformat(), "machine": platform.platform(), "python": sys.version.split()[0]}
    sets = [] if args.sets == "none" else [s.strip() for s in args.sets.split(",") if s.strip()]
    if sets:
        if not args.data.is_dir():
            parser.error(f"no OR-Library data at {args.data}")
        report["orlib"] = orlib(sets, args.time_limit, args.method, args.threads, args.data)
    if not args.no_province:
        report["province"] = province(args.preset, args.seed, args.workers, args.province_time_limit)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str))


if __name__ == "__main__":
    main()
