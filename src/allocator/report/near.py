"""Near misses: counties within a few households of their threshold at the deadline, and
households whose observed income is within a few hundred yuan of the poverty line. The report
(:mod:`allocator.report.html`) shows both; the workbook (:mod:`allocator.report.workbook`) the
counties. Light on purpose (no charts), so the workbook's worker need not load matplotlib.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from allocator.model.problem import Problem
from allocator.plan.plan import Plan
from allocator.report.i18n import tr

MONITOR_FOLDER = "monitor"  # allocator monitor's default output inside the plan folder
NEAR_HOUSEHOLDS = 5.0  # a county this many households or fewer from its threshold is a near miss
NEAR_YUAN = 500.0  # a household whose observed income is this close to the poverty line is a near miss


def near_misses(plan: Plan, problem: Problem, within: float = NEAR_HOUSEHOLDS) -> pd.DataFrame:
    """Counties within ``within`` households of their threshold at the deadline: short of it
    (off schedule, ``shortfall_households`` from counties.csv) or just under it (on schedule,
    the households more that would still leave it under: (threshold − incidence) × rural
    population)."""
    counties = plan.counties.copy()
    if counties.empty:
        return pd.DataFrame(columns=["county_id", "side", "margin_households", "expected_incidence", "threshold"])
    population = pd.Series(problem.county_rural_population, index=problem.county_ids.astype(str))
    headroom = (counties["threshold"] - counties["expected_incidence"]) * counties["county_id"].astype(str).map(
        population)
    off = ~counties["on_schedule"].astype(bool)
    counties["margin_households"] = np.where(off, counties["shortfall_households"], headroom)
    counties["side"] = np.where(off, tr("short of the threshold"), tr("under the threshold"))
    near = counties[counties["margin_households"].between(0, within)].sort_values("margin_households", kind="stable")
    return near[["county_id", "side", "margin_households", "expected_incidence", "threshold"]].reset_index(drop=True)


def near_line(folder: Path, within: float = NEAR_YUAN) -> pd.DataFrame | None:
    """Households whose observed income is within ``within`` yuan of the poverty line, from the
    progress record ``allocator monitor`` read into the plan folder (``monitor/``: the households
    off track and to watch, with their incomes); None without one: the plan's own tables carry no
    incomes (households.csv has packages, costs and exit probabilities, the scenario's households
    table sizes and baseline exit chances)."""
    monitor = folder / MONITOR_FOLDER
    if not (monitor / "monitor.json").is_file():
        return None
    line = float(json.loads((monitor / "monitor.json").read_text())["poverty_line"])
    seen = [pd.read_csv(monitor / name, dtype={"household_id": str, "village_id": str, "county_id": str})
            for name in ("households_off_track.csv", "watch.csv") if (monitor / name).is_file()]
    columns = ["household_id", "village_id", "county_id", "observed_income", "from_line"]
    rows = pd.concat([frame[columns[:4]] for frame in seen if len(frame)] or [pd.DataFrame(columns=columns[:4])])
    rows = rows.dropna(subset=["observed_income"]).drop_duplicates("household_id")
    rows["from_line"] = rows["observed_income"].astype(float) - line
    near = rows[rows["from_line"].abs() <= within].sort_values("from_line", key=abs, kind="stable")
    return near[columns].reset_index(drop=True)


__all__ = ["MONITOR_FOLDER", "NEAR_HOUSEHOLDS", "NEAR_YUAN", "near_line", "near_misses"]
