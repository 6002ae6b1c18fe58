"""Plan: the output tables and KPIs of a solve; writing and reading a plan folder.

The plan folder is the output contract: summary.json, households.csv, projects.csv,
funding.csv and counties.csv. Every KPI is recomputed here from the chosen decisions
(never copied from solver variables), so the tables agree with each other exactly.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from allocator.model.formulation import Formulation, G
from allocator.model.problem import Problem
from allocator.tables import CATEGORIES

TABLES = ("households", "projects", "funding", "counties")
CHART_FILES = ("money_by_year.png", "counties.png")
BASELINES_FOLDER = "baselines"  # the usual rules' plans, one plan folder each
COLUMNS = {
    "households": ["household_id", "village_id", "county_id", "package_id", "category", "start_year", "cost",
                   "exit_probability", "responsible_cadre_id"],
    "projects": ["village_id", "project_id", "category", "start_year", "cost", "mandatory"],
    "funding": ["source_id", "county_id", "category", "year", "amount"],
    "counties": ["county_id", "registered_poor", "expected_exits", "expected_incidence", "threshold",
                 "on_schedule", "shortfall_households", "spend"],
}
ON_SCHEDULE_TOL = 1e-6
UNPAID_TOL = 0.01  # yuan: spend below this may go unpaid within the solver's feasibility tolerance


@dataclass
class Plan:
    """A plan: ``summary`` (dict) and the four tables as pandas DataFrames."""

    summary: dict
    households: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=COLUMNS["households"]))
    projects: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=COLUMNS["projects"]))
    funding: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=COLUMNS["funding"]))
    counties: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=COLUMNS["counties"]))
    baselines: dict[str, Plan] = field(default_factory=dict)  # the usual rules' plans, by rule
    problem: Problem | None = field(default=None, repr=False, compare=False)  # what was solved, when in memory
    folder: Path | None = field(default=None, repr=False, compare=False)  # where it was read from

    @property
    def status(self) -> str:
        return self.summary["status"]

    @property
    def expected_exits(self) -> float | None:
        return self.summary.get("expected_exits")

    def spend_by(self, by: str = "year") -> pd.DataFrame:
        """Money spent grouped by ``year``, ``category``, ``source_id`` or ``county_id`` (or a list)."""
        return self.funding.groupby(by, as_index=False)["amount"].sum()

    def difficulties(self) -> dict:
        """Counties off schedule, with their shortfall and the rules that bind them
        (:func:`allocator.explain.difficulties`), from the problem solved or, for a plan read
        from a folder, the problem its scenario rebuilds."""
        from allocator.explain import difficulties, load_plan_context
        from allocator.model.formulation import formulate

        if self.problem is not None:
            return difficulties(formulate(self.problem), self)
        if self.folder is not None:
            context = load_plan_context(self.folder)
            return difficulties(context.formulation(), self)
        raise ValueError("this plan was neither solved here nor read from a folder: nothing to explain it with")

    def write(self, folder: str | Path, charts: bool = True) -> Path:
        """Write the plan folder (created if needed; refused when it holds anything allocator
        did not write, see :mod:`allocator.provenance`), with its charts unless ``charts`` is
        False or there is no plan; the summary gets its ``plan_fingerprint`` if it has none.
        Returns the folder."""
        from allocator.provenance import output_folder, plan_fingerprint

        folder = Path(folder)
        with output_folder(folder, "plan"):
            for name in TABLES:
                getattr(self, name).to_csv(folder / f"{name}.csv", index=False)
            if charts and len(self.counties):
                from allocator.charts import write_charts

                write_charts(self.funding, self.counties, folder)
            if (folder / BASELINES_FOLDER).is_dir():  # an earlier run's baselines would be stale
                shutil.rmtree(folder / BASELINES_FOLDER)
            for rule, baseline in self.baselines.items():
                baseline.write(folder / BASELINES_FOLDER / rule, charts=False)
            inputs = (self.summary.get("manifest") or {}).get("input_fingerprint")
            self.summary.setdefault("plan_fingerprint", plan_fingerprint(folder, inputs))
            (folder / "summary.json").write_text(json.dumps(self.summary, indent=2, default=json_default) + "\n")
        return folder

    @classmethod
    def read(cls, folder: str | Path) -> Plan:
        """Read a plan folder written by :meth:`write`."""
        folder = Path(folder)
        summary = json.loads((folder / "summary.json").read_text())
        frames = {name: pd.read_csv(folder / f"{name}.csv", dtype={"household_id": str, "village_id": str,
                                                                    "county_id": str, "package_id": str,
                                                                    "project_id": str, "source_id": str,
                                                                    "responsible_cadre_id": str})
                  for name in TABLES}
        baselines = {path.name: cls.read(path) for path in sorted((folder / BASELINES_FOLDER).glob("*"))
                     if (path / "summary.json").is_file()}
        return cls(summary, **frames, baselines=baselines, folder=folder)


def json_default(value):
    """``json.dumps`` default for numpy scalars and paths, which the plan's summaries hold."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def chosen_columns(fm: Formulation, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the x and y columns set to 1 (values rounded at 0.5)."""
    return np.flatnonzero(x[fm.x_cols] > 0.5), np.flatnonzero(x[fm.y_cols] > 0.5)


def households_table(fm: Formulation, chosen_x: np.ndarray) -> tuple[pd.DataFrame, np.ndarray]:
    """One row per registered poor household; also returns each household's expected exit."""
    p = fm.problem
    H = len(p.household_ids)
    pkg = np.full(H, -1)
    year = np.full(H, -1)
    hh = fm.x_household[chosen_x]
    pkg[hh] = fm.x_pkg[chosen_x]
    year[hh] = fm.x_year[chosen_x]
    has = pkg >= 0
    counted = has & (p.years[np.maximum(year, 0)] + p.pkg_lag[np.maximum(pkg, 0)] <= p.deadline_year)
    exit_prob = np.where(counted, p.pkg_exit[np.maximum(pkg, 0)], p.household_baseline)
    frame = pd.DataFrame({
        "household_id": p.household_ids,
        "village_id": p.village_ids[p.household_village],
        "county_id": p.county_ids[p.household_county],
        "package_id": np.where(has, p.pkg_ids[np.maximum(pkg, 0)], ""),
        "category": np.where(has, np.array(CATEGORIES, dtype=object)[p.pkg_category[np.maximum(pkg, 0)]], ""),
        "start_year": pd.Series(p.years[np.maximum(year, 0)], dtype="Int64").mask(~has),
        "cost": np.where(has, p.pkg_cost[np.maximum(pkg, 0)], 0.0),
        "exit_probability": exit_prob,
        "responsible_cadre_id": "",
    })
    return frame, exit_prob


def projects_table(fm: Formulation, chosen_y: np.ndarray) -> pd.DataFrame:
    """The projects built, with their start year."""
    p = fm.problem
    q = fm.y_proj[chosen_y]
    return pd.DataFrame({
        "village_id": p.village_ids[p.proj_village[q]],
        "project_id": p.proj_ids[q],
        "category": np.array(CATEGORIES, dtype=object)[p.proj_category[q]],
        "start_year": p.years[fm.y_year[chosen_y]],
        "cost": p.proj_cost[q],
        "mandatory": p.proj_mandatory[q],
    }, columns=COLUMNS["projects"])


def spend_grid(fm: Formulation, chosen_x: np.ndarray, chosen_y: np.ndarray) -> np.ndarray:
    """spend[c, g, t] of the chosen packages and projects."""
    p = fm.problem
    spend = np.zeros((len(p.county_ids), G, len(p.years)))
    xp = fm.x_pkg[chosen_x]
    np.add.at(spend, (fm.x_county[chosen_x], p.pkg_category[xp], fm.x_year[chosen_x]), p.pkg_cost[xp])
    q = fm.y_proj[chosen_y]
    np.add.at(spend, (p.proj_county[q], p.proj_category[q], fm.y_year[chosen_y]), p.proj_cost[q])
    return spend


def funding_table(fm: Formulation, x: np.ndarray, spend: np.ndarray) -> pd.DataFrame:
    """Flows with amount > 0, rescaled per (county, category, year) to pay spend exactly.

    The solver's flows match spend up to its feasibility tolerance; the rescale removes that
    noise (it changes amounts by at most that tolerance) so the money tables add up.
    """
    p = fm.problem
    flows = np.maximum(x[fm.f_cols], 0.0)
    year = p.fund_year[fm.f_fund]
    target = spend[fm.f_county, fm.f_category, year]
    keep = (flows > 1e-9 * np.maximum(target, 1.0)) & (target > 0)
    key = (fm.f_county * G + fm.f_category) * len(p.years) + year
    paid = np.bincount(key[keep], weights=flows[keep], minlength=spend.size)
    scale = np.divide(spend.reshape(-1), paid, out=np.zeros(spend.size), where=paid > 0)
    amount = flows * scale[key]
    unpaid = (spend.reshape(-1) > UNPAID_TOL) & (paid <= 0)
    if unpaid.any():  # beyond the solver's tolerance: a solver failure, not a plan
        raise RuntimeError("solver returned spend without a paying fund: the solution is not feasible")
    frame = pd.DataFrame({
        "source_id": p.source_ids[p.fund_source[fm.f_fund[keep]]],
        "county_id": p.county_ids[fm.f_county[keep]],
        "category": np.array(CATEGORIES, dtype=object)[fm.f_category[keep]],
        "year": p.years[year[keep]],
        "amount": amount[keep],
    }, columns=COLUMNS["funding"])
    return frame.sort_values(["source_id", "county_id", "category", "year"], kind="stable").reset_index(drop=True)


def counties_table(fm: Formulation, exit_prob: np.ndarray, spend: np.ndarray) -> pd.DataFrame:
    """Per county: registered poor, expected exits and incidence against the threshold."""
    p = fm.problem
    poor = p.county_registered_poor
    exits = np.bincount(p.household_county, weights=exit_prob, minlength=len(p.county_ids))
    allowed = p.county_threshold * p.county_rural_population
    shortfall = np.maximum(poor - exits - allowed, 0.0)
    incidence = np.divide(poor - exits, p.county_rural_population,
                          out=np.full(len(poor), np.nan), where=p.county_rural_population > 0)
    return pd.DataFrame({
        "county_id": p.county_ids, "registered_poor": poor, "expected_exits": exits,
        "expected_incidence": incidence, "threshold": p.county_threshold,
        "on_schedule": shortfall <= ON_SCHEDULE_TOL, "shortfall_households": shortfall,
        "spend": spend.sum(axis=(1, 2)),
    }, columns=COLUMNS["counties"])


def budget_use(fm: Formulation, funding: pd.DataFrame) -> list[dict]:
    """Per source and year: amount, spent, and what was available (with carry-over)."""
    p = fm.problem
    spent = funding.groupby(["source_id", "year"])["amount"].sum()
    rows = []
    for s, source in enumerate(p.source_ids):
        carried = 0.0
        for t, year in enumerate(p.years):
            here = (p.fund_source == s) & (p.fund_year == t)
            amount = float(p.fund_amount[here].sum())
            used = float(spent.get((source, year), 0.0))
            if not here.any() and used == 0 and carried == 0:
                continue
            available = amount + (carried if p.source_carry_over[s] else 0.0)
            rows.append({"source_id": source, "year": int(year), "amount": amount, "available": available,
                         "spent": used, "carry_over": bool(p.source_carry_over[s])})
            carried = available - used if p.source_carry_over[s] else 0.0
    return rows


def make_plan(fm: Formulation, x: np.ndarray | None, summary: dict) -> Plan:
    """Turn a solution vector into a Plan; ``summary`` holds status and run facts to extend."""
    if x is None:
        summary.update(expected_exits=None, total_cost=None, total_shortfall=None, objective=None,
                       counties_on_schedule=None, counties_total=len(fm.problem.county_ids), budget_use=[])
        return Plan(summary)
    chosen_x, chosen_y = chosen_columns(fm, x)
    households, exit_prob = households_table(fm, chosen_x)
    spend = spend_grid(fm, chosen_x, chosen_y)
    funding = funding_table(fm, x, spend)
    counties = counties_table(fm, exit_prob, spend)
    exits = float(exit_prob.sum())
    shortfall = float(counties["shortfall_households"].sum())
    summary.update(
        expected_exits=exits,
        objective=exits - fm.penalty * shortfall,
        total_shortfall=shortfall,
        total_cost=float(spend.sum()),
        counties_on_schedule=int(counties["on_schedule"].sum()),
        counties_total=len(counties),
        households_with_package=int(len(chosen_x)),
        projects_built=int(len(chosen_y)),
        budget_use=budget_use(fm, funding),
    )
    return Plan(summary, households, projects_table(fm, chosen_y), funding, counties)
