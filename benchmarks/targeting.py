"""Benchmark: generate + identify + candidates for the synthetic province presets.

Times each stage and reports peak memory (resident set size) and sizes. Run it as

    .venv/bin/python benchmarks/targeting.py --preset province --seed 1

and record the result in benchmarks/README.md (machine and date). Targets (issue 3): the
``province`` preset in <= 60 s and <= 8 GiB.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import time
from datetime import date

from allocator.inputs.scenario import scenario_from_dict
from allocator.synth.province import PROVINCE_PRESETS, generate_province_preset
from allocator.targeting import identify_scenario, load_catalog
from allocator.targeting.candidates import build_candidates


def peak_gib() -> float:
    """Peak resident memory of this process so far, in GiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def run(preset: str, seed: int, start: int, deadline: int) -> dict:
    scenario = scenario_from_dict({"name": preset, "start_year": start, "deadline_year": deadline,
                                   "generate": {"preset": preset, "seed": seed}})
    times = {}
    began = time.perf_counter()
    raw = generate_province_preset(preset, seed=seed, start_year=start, deadline_year=deadline)
    times["generate"] = time.perf_counter() - began
    t = time.perf_counter()
    ident = identify_scenario(scenario, raw)
    times["identify"] = time.perf_counter() - t
    t = time.perf_counter()
    cands = build_candidates(ident, raw["households_raw"], raw["regions"], raw["funds"], raw["personnel"],
                             load_catalog(), basis="rule", data_year=scenario.data_year, start_year=start,
                             deadline_year=deadline, line_deadline=scenario.poverty_line(deadline))
    times["candidates"] = time.perf_counter() - t
    times["total"] = time.perf_counter() - began
    return {
        "preset": preset, "seed": seed, "date": date.today().isoformat(), "machine": platform.platform(),
        "seconds": {k: round(v, 2) for k, v in times.items()}, "peak_gib": round(peak_gib(), 2),
        "households": len(raw["households_raw"]), "poor_households": ident.summary["poor_households"],
        "poor_villages": ident.summary["poor_villages"], "packages": cands.summary["packages"],
        "projects": cands.summary["projects"], "mean_best_exit": cands.summary["mean_best_exit"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="province", choices=list(PROVINCE_PRESETS))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--years", default="2016:2020", help="START:DEADLINE")
    args = parser.parse_args()
    start, deadline = (int(y) for y in args.years.split(":"))
    print(json.dumps(run(args.preset, args.seed, start, deadline), indent=2))


if __name__ == "__main__":
    main()
