"""A plausible progress record drawn from a plan, to exercise monitoring and re-planning.

:func:`simulate_progress` plays a plan forward to the middle of ``year`` with seeded draws
(rates from DOMAIN.md where it has them, else marked [A], an assumption):

- **delivery** [A]: a package or project due in an earlier year is delivered (started) on
  time with probability ON_TIME, else it slipped and is still to come; one due this year
  has been delivered with probability ON_TIME x YEAR_SHARE (the record is taken mid-year).
  A package whose required project is not finished when it should start is not delivered.
  A project that should be finished is, with probability ON_TIME; else it runs late.
- **exits**: a delivered package's exit comes true over the years from its effect (start +
  lag) to the deadline, in equal shares of its exit probability [A]; households without a
  delivered package exit the same way at their baseline probability, from the plan's start.
- **returns**: exited households fall back at 2 %, 0.5 %, 0.2 % per year since the exit [D].
- **shocks**: illness 6 %, disaster 2 % in the last year [A]; a shock cuts income by 30 % [A].
- **incomes** [A]: exited households U(1, 2) x the line, others U(0.5, 1) x the line; edge
  households outside the plan keep their registry income ratio (raw data) or U(1, 1.6). Those
  a shock pushes below the line are newly identified poor; the others below 1.5 x the line or
  with a shock are recorded as watched.
- **money**: each planned flow is disbursed in the share of its county, category and year's
  planned spend that was delivered.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from allocator.errors import InputError, Issue
from allocator.inputs.tables import split_list
from allocator.manage.progress import EDGE_FACTOR, PROGRESS_SPECS, RETURN_RATES, Progress, village_counties
from allocator.plan.context import PlanContext, load_plan_context
from allocator.targeting import is_raw_scenario, raw_tables

ON_TIME = 0.9
YEAR_SHARE = 0.5
SHOCK_RATES = (("illness", 0.06), ("disaster", 0.02))
SHOCK_INCOME = 0.7
NEVER = 10_000  # a year no plan reaches: a project that never finishes


def simulate_progress(plan, year: int, seed: int = 0) -> Progress:
    """Draw the progress record of a plan as of the middle of ``year`` (seeded); ``plan`` is a plan
    folder or a plan with its inputs (:func:`allocator.plan.context.load_plan_context`)."""
    context = plan if isinstance(plan, PlanContext) else load_plan_context(plan)
    plan, tables, scenario = context.plan, context.tables, context.scenario
    start, deadline = scenario.start_year, scenario.deadline_year
    if not start <= year <= deadline:
        raise InputError([Issue("simulation", "the record year must lie within the plan's years", key="year",
                                expected=f"a year in {start}..{deadline}", found=str(year))])
    rng = np.random.default_rng(seed)
    projects, available = _projects(plan.projects, tables["projects"], year, rng)
    households = _households(plan.households, tables, available, year, start, deadline, rng)
    line = scenario.poverty_line(year)
    households = _incomes(households, year, line, rng)
    edge = _edge_households(context, plan.households, year, line, rng)
    disbursed = _disbursed(plan, households, projects, tables, year)
    columns = [c.name for c in PROGRESS_SPECS["households"].columns]
    record = pd.concat([households[columns], edge[columns]], ignore_index=True)
    return Progress(year, record, projects, disbursed, note=f"simulated from the plan with seed {seed}",
                    plan_fingerprint=plan.summary.get("plan_fingerprint") or "",
                    input_fingerprint=(plan.summary.get("manifest") or {}).get("input_fingerprint") or "")


def _projects(built: pd.DataFrame, data: pd.DataFrame, year: int, rng) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Started and finished projects, and the year from which each serves packages."""
    duration = pd.MultiIndex.from_arrays([data["village_id"], data["project_id"]])
    d = data["duration_years"].to_numpy()[duration.get_indexer(
        pd.MultiIndex.from_arrays([built["village_id"], built["project_id"]]))]
    planned = built["start_year"].to_numpy(dtype=float)
    draw = rng.random(len(built))
    started = ((planned < year) & (draw < ON_TIME)) | ((planned == year) & (draw < ON_TIME * YEAR_SHARE))
    due = planned + d <= year
    finished = started & due & (rng.random(len(built)) < ON_TIME)
    serves = np.where(started & (finished | ~due), planned + d, NEVER)
    record = pd.DataFrame({"village_id": built["village_id"].to_numpy(), "project_id": built["project_id"].to_numpy(),
                           "started": started, "start_year": np.where(started, planned, np.nan),
                           "finished": finished,
                           "cost_so_far": np.where(started, built["cost"].to_numpy(dtype=float), 0.0)})
    available = pd.DataFrame({"village_id": record["village_id"], "project_id": record["project_id"],
                              "serves": serves})
    return record[planned <= year].reset_index(drop=True), available


def _households(plan: pd.DataFrame, tables: dict, available: pd.DataFrame, year: int, start: int, deadline: int,
                rng) -> pd.DataFrame:
    """Delivery, exits, returns and shocks of the plan's households."""
    packages = tables["packages"]
    key = pd.MultiIndex.from_arrays([packages["household_id"], packages["package_id"]])
    pkg = key.get_indexer(pd.MultiIndex.from_arrays([plan["household_id"], plan["package_id"].fillna("")]))
    planned = plan["start_year"].to_numpy(dtype=float)
    has = (pkg >= 0) & ~np.isnan(planned)
    ready = _prerequisites_ready(plan, packages, pkg, available)
    draw = rng.random(len(plan))
    delivered = has & ready & (((planned < year) & (draw < ON_TIME))
                               | ((planned == year) & (draw < ON_TIME * YEAR_SHARE)))
    if "state" in plan:  # a re-plan: what was delivered before stays delivered
        delivered |= has & (plan["state"] == "settled").to_numpy()
    lag = np.where(pkg >= 0, packages["lag_years"].to_numpy()[pkg], 0)
    exit_p = np.where(delivered, packages["exit_probability"].to_numpy()[pkg],
                      tables["households"].set_index("household_id")["baseline_exit_probability"]
                      .reindex(plan["household_id"]).to_numpy(dtype=float))
    effect = np.where(delivered, planned + lag, start)
    ramp = np.clip((year - effect) / np.maximum(deadline + 1 - effect, 1), 0.0, 1.0)
    exited = rng.random(len(plan)) < exit_p * ramp
    exit_year = np.floor(effect + rng.random(len(plan)) * np.maximum(year - effect, 0))
    exit_year = np.where(exited, np.minimum(exit_year, year - 1), np.nan)
    survive = np.cumprod([1.0] + [1 - RETURN_RATES[min(k, len(RETURN_RATES) - 1)] for k in range(deadline - start + 2)])
    years_out = np.clip(np.nan_to_num(year - exit_year), 0, len(survive) - 1).astype(np.int64)
    returned = exited & (rng.random(len(plan)) < 1 - survive[years_out])
    return pd.DataFrame({
        "household_id": plan["household_id"].to_numpy(), "village_id": plan["village_id"].to_numpy(), "new": False,
        "delivered": delivered, "package_id": np.where(delivered, plan["package_id"].fillna("").to_numpy(), ""),
        "start_year": np.where(delivered, planned, np.nan), "exited": exited, "exit_year": exit_year,
        "returned": returned, "shock": _shocks(len(plan), rng), "_due": has & (planned < year),
    })


def _prerequisites_ready(plan: pd.DataFrame, packages: pd.DataFrame, pkg: np.ndarray,
                         available: pd.DataFrame) -> np.ndarray:
    """True where every project the planned package requires serves by its planned start."""
    requires = pd.Series(np.where(pkg >= 0, packages["requires"].to_numpy()[np.maximum(pkg, 0)], ""))
    items = requires.map(split_list).explode().dropna()
    if items.empty:
        return np.ones(len(plan), dtype=bool)
    rows = items.index.to_numpy()
    index = pd.MultiIndex.from_arrays([available["village_id"], available["project_id"]])
    hit = index.get_indexer(pd.MultiIndex.from_arrays([plan["village_id"].to_numpy()[rows], items.to_numpy()]))
    serves = np.where(hit >= 0, available["serves"].to_numpy()[hit], NEVER)
    late = serves > plan["start_year"].to_numpy(dtype=float)[rows]
    ready = np.ones(len(plan), dtype=bool)
    ready[rows[late]] = False
    return ready


def _shocks(n: int, rng) -> np.ndarray:
    draw = rng.random(n)
    bounds = np.cumsum([rate for _, rate in SHOCK_RATES])
    names = np.array([name for name, _ in SHOCK_RATES] + [""], dtype=object)
    return names[np.searchsorted(bounds, draw, side="right")]


def _incomes(frame: pd.DataFrame, year: int, line: float, rng) -> pd.DataFrame:
    """Observed income and guarantee status of the plan's households."""
    out = (frame["exited"] & ~frame["returned"]).to_numpy()
    ratio = np.where(out, rng.uniform(1.0, 2.0, len(frame)), rng.uniform(0.5, 1.0, len(frame)))
    ratio *= np.where(frame["shock"].to_numpy() != "", SHOCK_INCOME, 1.0)
    fixed = out | (frame["delivered"].to_numpy() & frame["_due"].to_numpy() & (rng.random(len(frame)) < ON_TIME))
    return frame.assign(observed_income=np.round(ratio * line, 0), guarantees=np.where(fixed, "met", "failing"))


def _edge_households(context, plan: pd.DataFrame, year: int, line: float, rng) -> pd.DataFrame:
    """Households outside the plan near the line: newly identified poor after a shock, or watched."""
    tables, scenario = context.tables, context.scenario
    others = tables["households"][~tables["households"]["household_id"].isin(plan["household_id"])]
    ratio = rng.uniform(1.0, 1.6, len(others))

    if is_raw_scenario(scenario):
        raw = raw_tables(scenario)["households_raw"].set_index("household_id")["income_per_capita"]
        ratio = others["household_id"].map(raw).to_numpy(dtype=float) / scenario.poverty_line(scenario.data_year)
    shock = _shocks(len(others), rng)
    ratio = ratio * np.where(shock != "", SHOCK_INCOME, 1.0)
    new = ratio < 1.0
    keep = new | (ratio < EDGE_FACTOR) | (shock != "")
    return pd.DataFrame({
        "household_id": others["household_id"].to_numpy()[keep], "village_id": others["village_id"].to_numpy()[keep],
        "new": new[keep], "delivered": False, "package_id": "", "start_year": np.nan,
        "observed_income": np.round(ratio[keep] * line, 0), "guarantees": "", "exited": False, "exit_year": np.nan,
        "returned": False, "shock": shock[keep]})


def _disbursed(plan, households: pd.DataFrame, projects: pd.DataFrame, tables: dict, year: int) -> pd.DataFrame:
    """Each planned flow up to ``year``, in the share of its cell's planned spend that was delivered."""
    packages = tables["packages"]
    cost = pd.Series(packages["cost"].to_numpy(), index=pd.MultiIndex.from_arrays(
        [packages["household_id"], packages["package_id"]]))
    got = households[households["delivered"]]
    plan_hh = plan.households.set_index("household_id")
    parts = [pd.DataFrame({
        "county_id": got["household_id"].map(plan_hh["county_id"]).to_numpy(),
        "category": got["household_id"].map(plan_hh["category"]).to_numpy(),
        "year": got["start_year"].to_numpy(dtype=float),
        "spend": cost.reindex(pd.MultiIndex.from_arrays([got["household_id"], got["package_id"]])).to_numpy()})]
    built = plan.projects.merge(projects[projects["started"]][["village_id", "project_id"]],
                                on=["village_id", "project_id"])
    village_county = built["village_id"].map(village_counties(tables))
    parts.append(pd.DataFrame({"county_id": village_county.to_numpy(), "category": built["category"].to_numpy(),
                               "year": built["start_year"].to_numpy(dtype=float),
                               "spend": built["cost"].to_numpy(dtype=float)}))
    delivered = pd.concat(parts).groupby(["county_id", "category", "year"])["spend"].sum()
    funding = plan.funding[plan.funding["year"] <= year]
    planned = funding.groupby(["county_id", "category", "year"])["amount"].transform("sum")
    cell = pd.MultiIndex.from_arrays([funding["county_id"], funding["category"], funding["year"].astype(float)])
    share = np.divide(delivered.reindex(cell).fillna(0.0).to_numpy(), planned.to_numpy(),
                      out=np.zeros(len(funding)), where=planned.to_numpy() > 0)
    amount = np.round(funding["amount"].to_numpy() * np.minimum(share, 1.0), 2)
    out = funding.assign(amount=amount)[["source_id", "county_id", "category", "year", "amount"]]
    return out[out["amount"] > 0].reset_index(drop=True)
