"""The seeded benchmark instances: name -> (households, start_year, deadline_year, money_scale, seed).

Every instance is drawn by the synthetic generator
(:func:`allocator.synth.generate_canonical`) with its default number of counties (one per
~11,000 registered households) and the default policy (soft deadline, 3 % threshold in a
western province). ``households`` counts registered poor households. One-year instances
plan 2020 alone; five-year ones plan 2016-2020. ``tight-*`` instances use the money scale
of the generator's ``tight`` preset (0.55: every county can just barely be put on schedule).
"""

from __future__ import annotations

import time
from typing import NamedTuple

import pandas as pd

from allocator.synth import PRESETS, generate_canonical

TIGHT_MONEY_SCALE = float(PRESETS["tight"]["money_scale"])


class Instance(NamedTuple):
    households: int
    start_year: int
    deadline_year: int
    money_scale: float = 1.0
    seed: int = 0

    @property
    def years(self) -> int:
        return self.deadline_year - self.start_year + 1


def _one_year(households: int, money_scale: float = 1.0, seed: int = 0) -> Instance:
    return Instance(households, 2020, 2020, money_scale, seed)


def _five_years(households: int, money_scale: float = 1.0, seed: int = 0) -> Instance:
    return Instance(households, 2016, 2020, money_scale, seed)


REGISTRY: dict[str, Instance] = {
    "h1k-1y": _one_year(1_000),
    "h1k-5y": _five_years(1_000),
    "h10k-1y": _one_year(10_000),
    "h10k-5y": _five_years(10_000),
    "h25k-5y": _five_years(25_000),
    "h100k-1y": _one_year(100_000),
    "h100k-5y": _five_years(100_000),
    "h655k-1y": _one_year(655_000),
    "h655k-5y": _five_years(655_000),
    "tight-10k-5y": _five_years(10_000, TIGHT_MONEY_SCALE),
    "tight-100k-5y": _five_years(100_000, TIGHT_MONEY_SCALE),
}


def generate(name: str) -> dict[str, pd.DataFrame]:
    """The contract tables of instance ``name``."""
    inst = REGISTRY[name]
    return generate_canonical(inst.households, start_year=inst.start_year, deadline_year=inst.deadline_year,
                              seed=inst.seed, money_scale=inst.money_scale)


def load_problem(name: str, policy=None):
    """Generate and code instance ``name``: returns (problem, generate seconds, build_problem seconds)."""
    from allocator.model.problem import build_problem

    inst = REGISTRY[name]
    started = time.perf_counter()
    tables = generate(name)
    generated = time.perf_counter()
    problem = build_problem(tables, name=name, start_year=inst.start_year, deadline_year=inst.deadline_year,
                            policy=policy)
    return problem, generated - started, time.perf_counter() - generated


if __name__ == "__main__":
    print("| name | households | years | money scale | seed |\n|---|---:|---|---:|---:|")
    for key, inst in REGISTRY.items():
        print(f"| {key} | {inst.households:,} | {inst.start_year}-{inst.deadline_year} | "
              f"{inst.money_scale:g} | {inst.seed} |")
