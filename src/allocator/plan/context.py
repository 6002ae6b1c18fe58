"""A plan folder with what made it: the scenario, its tables, the problem and the model,
rebuilt and checked against the plan's manifest; and a plan as the model's solution vector.
Every stage after the plan reads plan folders through here."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from allocator.errors import InputError, Issue
from allocator.inputs.provenance import input_hashes
from allocator.inputs.scenario import Scenario, load_scenario
from allocator.inputs.tables import CATEGORIES
from allocator.model.formulation import Formulation, formulate
from allocator.model.problem import Problem, build_problem
from allocator.plan.plan import Plan, exit_rates, shortfall_vector
from allocator.targeting.pipeline import load_tables


@dataclass
class PlanContext:
    """A plan folder with what made it: the scenario, its tables, the problem and the model."""

    folder: Path
    plan: Plan
    scenario: Scenario
    tables: dict[str, pd.DataFrame]
    problem: Problem

    def formulation(self) -> Formulation:
        return formulate(self.problem)


def load_plan_context(folder: str | Path) -> PlanContext:
    """Read a plan folder and rebuild its problem from the scenario its manifest names.

    Raises :class:`InputError` when the folder is not a plan, names no scenario, or the
    scenario or its tables changed since the plan was made (the plan would not match them)."""
    folder = Path(folder)
    if not (folder / "summary.json").is_file():
        raise InputError([Issue(str(folder), "not a plan folder", expected="a folder with summary.json")])
    plan = Plan.read(folder)
    manifest = plan.summary.get("manifest", {})
    if not manifest.get("scenario_file"):
        raise InputError([Issue(str(folder / "summary.json"), "the plan does not name its scenario file",
                                key="manifest.scenario_file", expected="a plan written by allocator solve")])
    scenario = load_scenario(manifest["scenario_file"], overrides=manifest.get("overrides"))
    if input_hashes(scenario) != manifest.get("inputs"):
        raise InputError([Issue(manifest["scenario_file"], "the scenario or its tables changed since the plan "
                                "was made; solve again")])
    tables = load_tables(scenario)
    problem = build_problem(tables, name=scenario.name, start_year=scenario.start_year,
                            deadline_year=scenario.deadline_year, policy=scenario.policy, validate=False)
    return PlanContext(folder, plan, scenario, tables, problem)


def plan_vector(fm: Formulation, plan: Plan) -> np.ndarray:
    """The model's solution vector of ``plan`` (packages, projects, flows, shortfalls)."""
    p = fm.problem
    x = np.zeros(fm.model.num_cols)
    years = {int(y): t for t, y in enumerate(p.years)}
    chosen = plan.households[plan.households["start_year"].notna()]
    if len(chosen):
        key = pd.MultiIndex.from_arrays([p.household_ids[fm.x_household], p.pkg_ids[fm.x_pkg], fm.x_year])
        wanted = pd.MultiIndex.from_arrays([chosen["household_id"].astype(str), chosen["package_id"].astype(str),
                                            chosen["start_year"].astype(int).map(years)])
        x[pd.Index(key).get_indexer(wanted)] = 1.0
    if len(plan.projects):
        key = pd.MultiIndex.from_arrays([p.village_ids[p.proj_village[fm.y_proj]], p.proj_ids[fm.y_proj], fm.y_year])
        wanted = pd.MultiIndex.from_arrays([plan.projects["village_id"].astype(str),
                                            plan.projects["project_id"].astype(str),
                                            plan.projects["start_year"].astype(int).map(years)])
        x[fm.nx + pd.Index(key).get_indexer(wanted)] = 1.0
    if len(plan.funding):
        fund_key = pd.MultiIndex.from_arrays([p.source_ids[p.fund_source[fm.f_fund]], p.years[p.fund_year[fm.f_fund]],
                                              p.county_ids[fm.f_county],
                                              np.array(CATEGORIES, dtype=object)[fm.f_category]])
        f = plan.funding
        wanted = pd.MultiIndex.from_arrays([f["source_id"].astype(str), f["year"].astype(int),
                                            f["county_id"].astype(str), f["category"].astype(str)])
        x[fm.f_cols.start + pd.Index(fund_key).get_indexer(wanted)] = f["amount"].to_numpy(dtype=float)
    x[fm.shortfall_cols] = shortfall_vector(fm, plan)
    if len(fm.equity_kinds) and len(plan.counties):  # the lowest and highest county exit rate
        rates = exit_rates(plan.counties)
        x[fm.e_cols] = np.where(fm.equity_kinds == 0, rates.min(), rates.max())
    return x


__all__ = ["PlanContext", "load_plan_context", "plan_vector"]
