"""Helpers of the monitor / re-plan tests: a solved tiny plan and a record where everything went as planned."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import yaml

import allocator
from allocator.manage.progress import PROGRESS_SPECS, Progress
from allocator.plan.context import load_plan_context

POLICY = {"county_exit_threshold": {"default": 0.02, "western": 0.03}}


def solve_preset(folder: Path, preset: str = "tiny", seed: int = 1, **solver) -> Path:
    """Solve a generated preset into ``folder/plan`` (scenario in ``folder``); returns the plan folder."""
    folder.mkdir(parents=True, exist_ok=True)
    scenario = {"name": preset, "start_year": 2016, "deadline_year": 2020, "generate": {"preset": preset, "seed": seed},
                "policy": POLICY, "solver": {"mip_gap": 1e-4, **solver}}  # the earliness credit makes gap 0 slow
    path = folder / "scenario.yaml"
    path.write_text(yaml.safe_dump(scenario, sort_keys=False))
    plan = allocator.solve(allocator.load_scenario(path))
    assert plan.status == "optimal", plan.summary["message"]
    return plan.write(folder / "plan")


def as_planned(plan_dir: Path, year: int) -> Progress:
    """The record of mid-``year`` when everything before ``year`` went exactly as planned (nothing of
    ``year`` delivered yet, nobody exited, no shock)."""
    context = load_plan_context(plan_dir)
    hh = context.plan.households
    done = (hh["package_id"].fillna("") != "").to_numpy() & (hh["start_year"].to_numpy(dtype=float) < year)
    columns = [c.name for c in PROGRESS_SPECS["households"].columns]
    households = pd.DataFrame({
        "household_id": hh["household_id"], "village_id": hh["village_id"], "new": False, "delivered": done,
        "package_id": np.where(done, hh["package_id"].fillna(""), ""),
        "start_year": np.where(done, hh["start_year"].to_numpy(dtype=float), np.nan), "observed_income": np.nan,
        "guarantees": "", "exited": False, "exit_year": np.nan, "returned": False, "shock": ""})[columns]
    projects = context.plan.projects[context.plan.projects["start_year"] < year]
    duration = context.tables["projects"].set_index(["village_id", "project_id"])["duration_years"]
    d = duration.reindex(pd.MultiIndex.from_arrays([projects["village_id"], projects["project_id"]])).to_numpy()
    projects = pd.DataFrame({"village_id": projects["village_id"], "project_id": projects["project_id"],
                             "started": True, "start_year": projects["start_year"].astype(float),
                             "finished": projects["start_year"].to_numpy() + d <= year,
                             "cost_so_far": projects["cost"]}).reset_index(drop=True)
    funding = context.plan.funding
    disbursed = funding[funding["year"] < year][["source_id", "county_id", "category", "year", "amount"]]
    return Progress(year, households.reset_index(drop=True), projects, disbursed.reset_index(drop=True))


def decisions(plan_dir: Path) -> pd.Series:
    """'package year' per household of a plan folder ('' for none)."""
    hh = pd.read_csv(plan_dir / "households.csv", dtype={"household_id": str, "package_id": str})
    start = hh["start_year"].astype("Int64").astype(str).where(hh["start_year"].notna(), "")
    return (hh["package_id"].fillna("") + " " + start).str.strip().set_axis(hh["household_id"])
