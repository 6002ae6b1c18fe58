"""Re-planning a running plan: history pinned, new demand in, the rest re-optimised.

:func:`replan_from` takes an approved plan and a progress record taken in year R and plans
the years Y..deadline again (Y = ``from_year``, R <= Y <= deadline). Years before Y are
history. The remaining years are planned as an ordinary canonical problem (the *remaining
problem*, written with the new plan so ``allocator solve`` and the plan checker can run on
it), in which what happened is folded in:

- **pinned households**: a delivered package (state *settled*) cannot change and its money is
  spent: the household keeps it and enters with no package to choose, its expected exit now
  as its baseline (the package's exit when it counts, the chance to stay out once exited);
- **open households** keep their candidate packages, to start in Y or later; a package that
  slipped (due before Y, not delivered) is simply open again;
- **new demand**: households that returned to poverty (their candidate packages but the one
  delivered) and newly identified poor households (their packages in the canonical tables,
  or for raw registry data new candidates from the targeting code with their observed income
  and shock) are registered poor of the remaining problem; a shock cuts a household's exit
  probabilities by SHOCK_EXIT_FACTOR; households that exited without a package keep their
  packages with the chance to stay out as baseline (so they rarely get one);
- **pinned projects**: a started project is built: it enters at no cost, mandatory, with the
  years it still needs (a project past its planned finish and not finished needs one more
  year); a mandatory project that can no longer finish by the deadline is no longer mandatory;
- **money already spent**: the disbursed money leaves each source's budget (with carry-over
  the unspent history carries into Y, and an overspend reduces later years); personnel hours
  of year Y lose those of the packages delivered that year; share rules apply to the
  remaining spend.

The new plan (:class:`Replan`.plan) is the remaining plan with the history put back: pinned
packages and projects at their actual start years, the disbursed money in ``funding``, and a
``state`` per household. The **plan diff** lists every decision that differs from the
approved plan (household packages, projects, money per source, county, category and year)
with a reason and a sentence.

**Stability** (``stability`` = lambda > 0): the objective becomes expected exits - lambda x
(planned decisions changed), where a planned decision is an open household's planned package
and start year (any year once it slipped) or a planned project's start year; new demand and
households without a planned package are not counted. The remaining problem is solved once
without and once with the penalty, and the exits the stability costs are reported.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from allocator.errors import InputError, Issue
from allocator.inputs.provenance import input_fingerprint, input_hashes, output_folder
from allocator.inputs.scenario import load_scenario
from allocator.inputs.tables import split_list
from allocator.manage.progress import SHOCK_EXIT_FACTOR, Progress, household_states, plan_and_record, village_counties
from allocator.messages import listed, render, say, titled, words
from allocator.model.problem import KEEP_ANY_YEAR, Keep, build_problem
from allocator.optimize.methods import quiet
from allocator.optimize.pipeline import solve_problem
from allocator.plan.context import load_plan_context
from allocator.plan.plan import COLUMNS as PLAN_COLUMNS
from allocator.plan.plan import Plan, json_default
from allocator.report.charts import write_plan_charts
from allocator.synth import write_tables
from allocator.targeting import is_raw_scenario, raw_tables
from allocator.targeting.candidates import build_candidates
from allocator.targeting.catalog import load_catalog
from allocator.targeting.identify import Identification, identify

REMAINING_FOLDER = "remaining"
MONEY_TOL = 0.5  # yuan: smaller differences in a flow are rounding, not a change
REASONS = {
    "delivered_differently": "delivered, but not as planned (another package or year): pinned as delivered",
    "returned": "returned to poverty after exiting: new demand",
    "new_demand": "newly identified poor household: new demand",
    "exited_early": "exited before its package was delivered: the package is no longer needed",
    "slipped": "due before the re-plan year and not delivered (or started): planned again",
    "shock": "hit by a shock: its chances changed",
    "project_late": "a project its package needs slipped or runs late",
    "started_differently": "started in another year than planned (or unplanned): pinned as started",
    "late": "started but running late: finishes a year later than planned",
    "disbursed": "money paid out differs from the plan (history is what was paid)",
    "reoptimised": "re-optimised with the money left, for the demand there is now",
}
DIFF_COLUMNS = ["kind", "id", "county_id", "village_id", "change", "reason", "before", "after", "delta", "sentence"]


@dataclass
class Replan:
    """A re-plan: the new plan, the remaining problem's plan and tables, the diff and a summary."""

    plan: Plan
    remaining: Plan
    tables: dict[str, pd.DataFrame]
    scenario: dict
    diff: pd.DataFrame
    summary: dict = field(default_factory=dict)

    def write(self, folder: str | Path) -> Path:
        """Write the new plan folder with ``diff.csv``, ``replan.json`` and ``remaining/`` (the
        remaining problem's tables, scenario.yaml and plan, which ``allocator solve``,
        ``allocator explain`` and the plan checker can run on)."""
        folder = Path(folder)
        with output_folder(folder, "re-plan"):
            self.plan.write(folder)
            write_plan_charts(self.plan, folder)
            remaining = folder / REMAINING_FOLDER
            write_tables(self.tables, remaining / "data", overwrite=True)
            scenario_path = remaining / "scenario.yaml"
            scenario_path.write_text(yaml.safe_dump(self.scenario, sort_keys=False))
            manifest = self.remaining.summary.setdefault("manifest", {})
            scenario = load_scenario(scenario_path)
            hashes = input_hashes(scenario)
            manifest.update(scenario_file=str(scenario_path.resolve()), inputs=hashes,
                            input_fingerprint=input_fingerprint(scenario, hashes))
            self.remaining.write(remaining)
            write_plan_charts(self.remaining, remaining)
            self.diff.to_csv(folder / "diff.csv", index=False)
            (folder / "replan.json").write_text(json.dumps(self.summary, indent=2, default=json_default) + "\n")
        return folder


def replan_folder(plan_dir: str | Path, record_dir: str | Path, *, from_year: int | None = None,
                  stability: float = 0.0, time_limit: float | None = None, progress=quiet) -> Replan:
    """The re-plan the command line and the service run: the plan folder with its inputs, the
    scenario's solver settings (``time_limit`` seconds per solve when given), the record folder."""
    progress("read the plan, its inputs and the record")
    context = load_plan_context(plan_dir)
    settings = context.scenario.solver
    if time_limit is not None:
        settings = settings.model_copy(update={"time_limit": time_limit})
    return replan_from(context, record_dir, from_year=from_year, stability=stability, settings=settings,
                       progress_cb=progress)


def replan_from(plan, progress, *, from_year: int | None = None, stability: float = 0.0, settings=None,
                progress_cb=quiet) -> Replan:
    """Re-plan ``plan`` (a plan folder or :class:`allocator.plan.context.PlanContext`) from ``from_year``
    (default: the record's year) with the progress record ``progress`` (a folder or
    :class:`Progress`); ``settings`` (SolverSettings) default to the scenario's."""
    context, record = plan_and_record(plan, progress)
    scenario = context.scenario
    year = record.year if from_year is None else int(from_year)
    if not record.year <= year <= scenario.deadline_year:
        raise InputError([Issue("re-plan", "the re-plan year must lie between the record's year and the deadline",
                                key="from_year", expected=f"a year in {record.year}..{scenario.deadline_year}",
                                found=str(year))])
    settings = settings or scenario.solver
    progress_cb("fold the record into the remaining problem", from_year=year)
    states = household_states(context.plan.households, record, context.tables, from_year=year,
                              deadline_year=scenario.deadline_year)
    tables, states, projects, notes = remaining_tables(context, record, states, year)
    name = f"{scenario.name}-from-{year}"
    policy = scenario.policy.model_copy(update={"annual_targets": {
        y: share for y, share in scenario.policy.annual_targets.items() if y >= year}})  # the years still ahead
    problem = build_problem(tables, name=name, start_year=year, deadline_year=scenario.deadline_year, policy=policy)
    manifest = {"seed": settings.seed, "policy": scenario.policy.model_dump(mode="json"),
                "replan_of": context.plan.summary.get("manifest", {}).get("scenario_file"), "from_year": year}
    remaining = solve_problem(problem, settings, progress=progress_cb, manifest=manifest)
    stable = None
    if stability > 0 and remaining.summary.get("expected_exits") is not None:
        free = remaining
        problem.keep = keep_arrays(problem, states, projects, year, stability)
        progress_cb("re-solve with the stability penalty", stability=stability)
        remaining = solve_problem(problem, settings, progress=progress_cb, manifest=manifest)
        stable = _stability(free, remaining, states, projects, year, stability, settings.mip_gap)
    new_plan = merge_plan(context, record, states, projects, remaining, year)
    diff = plan_diff(context.plan, new_plan, states, projects, context.tables["packages"], record, year)
    summary = _summary(context, record, states, projects, tables, remaining, new_plan, diff, year, notes, stable)
    new_plan.summary["replan"] = {k: summary[k] for k in ("from_year", "record_year", "remaining", "stability")}
    doc = {"name": name, "start_year": year, "deadline_year": scenario.deadline_year, "data": "data",
           "policy": policy.model_dump(mode="json"), "solver": settings.model_dump(mode="json")}
    return Replan(new_plan, remaining, tables, doc, diff, summary)


def remaining_tables(context, record: Progress, states: pd.DataFrame, year: int):
    """The canonical tables of the remaining problem (years ``year``..deadline), the household
    states (new households' baselines from their generated candidates), the project states and
    notes on what could not be kept (overspent sources, mandatory projects too late)."""
    t, scenario = context.tables, context.scenario
    notes = []
    generated, gen_projects = t["packages"].iloc[:0], t["projects"].iloc[:0]
    registered = t["households"].set_index("household_id")["registered_poor"]
    lacking = states.loc[~states["household_id"].map(registered).fillna(False).astype(bool).to_numpy()
                         & states["state"].isin(["new", "returned", "open"]).to_numpy(), "household_id"]

    if len(lacking) and is_raw_scenario(scenario):
        generated, gen_projects, baseline = generated_candidates(context, record, states, lacking, year)
        hit = states["household_id"].isin(baseline.index)  # their observed income already shows any shock
        states.loc[hit, "expected_now"] = states.loc[hit, "household_id"].map(baseline).to_numpy()
    by_id = states.set_index("household_id")
    states["expected_now"] = states["expected_now"].clip(0.0, 1.0).round(6)

    households = t["households"].assign(
        registered_poor=t["households"]["household_id"].isin(by_id.index).to_numpy())
    reg = households["registered_poor"].to_numpy()
    households.loc[reg, "baseline_exit_probability"] = households.loc[reg, "household_id"].map(
        states.set_index("household_id")["expected_now"]).to_numpy()

    packages = pd.concat([t["packages"], generated[~generated["household_id"].isin(t["packages"]["household_id"])]],
                         ignore_index=True)
    state = packages["household_id"].map(by_id["state"])
    again = state.isin(["open", "exited", "returned", "new"]).to_numpy()
    spent = (state == "returned").to_numpy() & (packages["package_id"] == packages["household_id"].map(
        by_id["package_id"])).to_numpy()  # a returned household does not get its delivered package again
    packages = packages[again & ~spent].reset_index(drop=True)
    shocked = (packages["household_id"].map(by_id["shock"]) != "").to_numpy()
    fresh = packages["household_id"].isin(generated["household_id"]).to_numpy()
    factor = np.where(shocked & ~fresh, SHOCK_EXIT_FACTOR, 1.0)
    packages["exit_probability"] = np.round(packages["exit_probability"].to_numpy() * factor, 6)
    if "sustained_probability" in packages:
        sustained = np.round(packages["sustained_probability"].to_numpy() * factor, 6)
        packages["sustained_probability"] = np.minimum(sustained, packages["exit_probability"].to_numpy())

    projects, project_states, late_notes = _remaining_projects(context, record, gen_projects, year)
    notes += late_notes
    funds, money_notes = _remaining_funds(t["funds"], record.disbursed, year)
    notes += money_notes
    personnel = _remaining_personnel(t, states, year)
    regions = t["regions"].copy()  # a county whose hat-off year has passed keeps its rule from now on
    if "hat_off_year" in regions:
        regions["hat_off_year"] = regions["hat_off_year"].where(regions["hat_off_year"].isna()
                                                                | (regions["hat_off_year"] >= year), year)
    tables = {"regions": regions, "villages": t["villages"], "households": households, "packages": packages,
              "projects": projects, "funds": funds, "personnel": personnel}
    if "targets" in t:
        tables["targets"] = t["targets"][t["targets"]["year"] >= year].reset_index(drop=True)
    return tables, states, project_states, notes


def _remaining_projects(context, record: Progress, generated: pd.DataFrame, year: int):
    """Projects of the remaining problem: started ones at no cost, mandatory, with the years
    they still need; the rest as they were (mandatory ones that cannot finish in time no longer
    mandatory). Also the project states (planned, started, actual year, finishes for) for the diff."""
    t, deadline = context.tables, context.scenario.deadline_year
    data = pd.concat([t["projects"], generated], ignore_index=True).drop_duplicates(["village_id", "project_id"])
    key = ["village_id", "project_id"]
    states = data[key + ["category", "cost", "duration_years", "mandatory"]].merge(
        context.plan.projects[key + ["start_year"]].rename(columns={"start_year": "planned_year"}), on=key,
        how="left").merge(record.projects[key + ["started", "start_year", "finished"]].rename(
            columns={"start_year": "actual_year"}), on=key, how="left")
    states["county_id"] = states["village_id"].map(village_counties(t)).to_numpy()
    states["started"] = states["started"].fillna(False).astype(bool)
    states["finished"] = states["finished"].fillna(False).astype(bool)
    started = states["started"].to_numpy()
    states["actual_year"] = states["actual_year"].fillna(states["planned_year"]).where(started)
    finish = states["actual_year"].to_numpy() + states["duration_years"].to_numpy()
    late = started & ~states["finished"].to_numpy() & (finish <= year)
    finish = np.where(states["finished"].to_numpy(), np.minimum(finish, year), np.where(late, year + 1, finish))
    states["late"] = late
    states["serves_from"] = np.where(started, finish, np.nan)
    projects = data.reset_index(drop=True).copy()
    projects["cost"] = np.where(started, 0.0, projects["cost"].to_numpy())
    still = np.clip(np.nan_to_num(finish - year), 0, deadline - year + 1).astype(np.int64)
    projects["duration_years"] = np.where(started, still, projects["duration_years"].to_numpy()).astype(np.int64)
    too_late = ~started & projects["mandatory"].to_numpy() & (year + projects["duration_years"].to_numpy() - 1
                                                              > deadline)
    projects["mandatory"] = started | (projects["mandatory"].to_numpy() & ~too_late)
    notes = [f"mandatory project {v}/{j} can no longer finish by {deadline}: it is no longer required"
             for v, j in zip(projects.loc[too_late, "village_id"], projects.loc[too_late, "project_id"], strict=True)]
    return projects, states, notes


def _remaining_funds(funds: pd.DataFrame, disbursed: pd.DataFrame, year: int) -> tuple[pd.DataFrame, list[str]]:
    """Fund rows of the remaining years with what is left: amount - disbursed; with carry-over
    the cumulative money left (history included), never below zero."""
    paid = disbursed.groupby(["source_id", "year"])["amount"].sum()
    f = funds.sort_values(["source_id", "year"], kind="stable").reset_index(drop=True)
    f["paid"] = paid.reindex(pd.MultiIndex.from_arrays([f["source_id"], f["year"]])).fillna(0.0).to_numpy()
    net = f["amount"] - f["paid"]
    cum = net.groupby(f["source_id"]).cumsum().clip(lower=0.0)
    keep = (f["year"] >= year).to_numpy()
    previous = cum.where(keep).groupby(f["source_id"]).shift(1).fillna(0.0)
    carry = f["carry_over"].to_numpy()
    left = np.where(carry, cum - previous.where(keep, 0.0), net.clip(lower=0.0))
    over = (~carry & (net < -0.01).to_numpy()) | (carry & ((net.groupby(f["source_id"]).cumsum() < -0.01).to_numpy()))
    gone = f[over]
    notes = [f"source {s} {y}: {p:,.0f} yuan disbursed against {a:,.0f} available" for s, y, p, a in
             zip(gone["source_id"], gone["year"], gone["paid"], gone["amount"], strict=True)]
    out = f.assign(amount=np.round(left, 2))[keep][list(funds.columns)]
    return out.reset_index(drop=True), notes


def _remaining_personnel(t: dict, states: pd.DataFrame, year: int) -> pd.DataFrame:
    """Personnel rows of the remaining years; year ``year`` loses the hours of packages delivered in it."""
    personnel = t["personnel"][t["personnel"]["year"] >= year].reset_index(drop=True)
    now = states[(states["state"] == "settled") & (states["actual_year"] == year)]
    if personnel.empty or now.empty:
        return personnel
    packages = t["packages"]
    hours = pd.Series(packages["personnel_hours"].to_numpy(), index=pd.MultiIndex.from_arrays(
        [packages["household_id"], packages["package_id"]]))
    used = hours.reindex(pd.MultiIndex.from_arrays([now["household_id"], now["package_id"]])).fillna(0.0).to_numpy()
    township = now["village_id"].map(t["villages"].set_index("village_id")["township_id"]).to_numpy()
    by_region = pd.concat([pd.Series(used, index=township), pd.Series(used, index=now["county_id"].to_numpy())])
    by_region = by_region.groupby(level=0).sum()
    this_year = (personnel["year"] == year).to_numpy()
    taken = personnel["region_id"].map(by_region).fillna(0.0).to_numpy() * this_year
    return personnel.assign(hours=np.maximum(personnel["hours"].to_numpy() - taken, 0.0))


def generated_candidates(context, record: Progress, states: pd.DataFrame, ids: pd.Series, year: int):
    """New candidate packages (and the projects they need, and baselines) for households of raw
    registry data that have none in the canonical tables, from the targeting code with their
    observed income (scaled to the data year's line) and shock."""
    sc = context.scenario
    raw = raw_tables(sc)
    hh = raw["households_raw"].copy()
    by_id = states.set_index("household_id")
    target = hh["household_id"].isin(ids).to_numpy()
    income = hh["household_id"].map(by_id["observed_income"]).to_numpy(dtype=float)
    scale = sc.poverty_line(sc.data_year) / sc.poverty_line(record.year)
    known = target & ~np.isnan(income)
    hh.loc[known, "income_per_capita"] = income[known] * scale
    hh.loc[target, "recent_shock"] = hh.loc[target, "household_id"].map(by_id["shock"]).fillna("").to_numpy()
    line = sc.poverty_line(sc.data_year)
    ident = identify(raw["regions"], raw["villages_raw"], hh, poverty_line=line, edge_factor=sc.targeting.edge_factor,
                     registry_given=False)
    ident = Identification(ident.cards.assign(registered_poor=target), ident.villages, ident.summary)
    made = build_candidates(ident, hh, raw["regions"], raw["funds"], raw["personnel"], load_catalog(sc.catalog_path()),
                            basis="registry", data_year=sc.data_year, start_year=year,
                            deadline_year=sc.deadline_year, line_deadline=sc.poverty_line(sc.deadline_year))
    households = made.tables["households"]
    baseline = households[households["registered_poor"]].set_index("household_id")["baseline_exit_probability"]
    return made.tables["packages"], made.tables["projects"], baseline


def keep_arrays(problem, states: pd.DataFrame, projects: pd.DataFrame, year: int, stability: float) -> Keep:
    """The stability option's planned start-year index per package and project of ``problem``
    (see :func:`allocator.model.formulation.keep_bonus`)."""
    p = problem
    keeps = states[(states["state"] == "open") & (states["planned_package"] != "")]
    planned = pd.Series(keeps["planned_year"].to_numpy(), index=pd.MultiIndex.from_arrays(
        [keeps["household_id"], keeps["planned_package"]]))
    want = planned.reindex(pd.MultiIndex.from_arrays([p.household_ids[p.pkg_household], p.pkg_ids])).to_numpy()
    package_year = np.where(np.isnan(want), -1, np.where(want < year, KEEP_ANY_YEAR, np.nan_to_num(want) - year))
    todo = projects[projects["planned_year"].notna() & ~projects["started"]]
    planned = pd.Series(todo["planned_year"].to_numpy(), index=pd.MultiIndex.from_arrays(
        [todo["village_id"], todo["project_id"]]))
    want = planned.reindex(pd.MultiIndex.from_arrays([p.village_ids[p.proj_village], p.proj_ids])).to_numpy()
    project_year = np.where(np.isnan(want), -1, np.where(want < year, KEEP_ANY_YEAR, np.nan_to_num(want) - year))
    return Keep(float(stability), package_year.astype(np.int64), project_year.astype(np.int64))


def planned_changes(states: pd.DataFrame, projects: pd.DataFrame, remaining: Plan, year: int) -> dict:
    """Planned decisions a remaining plan changes: open households' planned packages (dropped,
    swapped or moved; any year once slipped) and planned projects not started (moved or dropped)."""
    keeps = states[(states["state"] == "open") & (states["planned_package"] != "")]
    now = remaining.households.set_index("household_id").reindex(keeps["household_id"])
    same = (now["package_id"].fillna("").to_numpy() == keeps["planned_package"].to_numpy())
    start = now["start_year"].to_numpy(dtype=float)
    planned = keeps["planned_year"].to_numpy(dtype=float)
    kept_households = same & ((planned < year) | (start == planned))
    todo = projects[projects["planned_year"].notna() & ~projects["started"]]
    built = remaining.projects.set_index(["village_id", "project_id"])["start_year"].reindex(
        pd.MultiIndex.from_arrays([todo["village_id"], todo["project_id"]])).to_numpy(dtype=float)
    want = todo["planned_year"].to_numpy(dtype=float)
    kept_projects = ~np.isnan(built) & ((want < year) | (built == want))
    return {"households": int((~kept_households).sum()), "projects": int((~kept_projects).sum()),
            "planned_households": len(keeps), "planned_projects": len(todo),
            "kept": int(kept_households.sum() + kept_projects.sum())}


def _stability(free: Plan, stable: Plan, states, projects, year: int, stability: float, mip_gap) -> dict:
    """What the stability penalty did: changes, exits and value without and with it. The stable
    solve's status is judged on its own objective, value + lambda x kept decisions, against its bound."""
    changes_free = planned_changes(states, projects, free, year)
    changes = planned_changes(states, projects, stable, year)
    without = changes_free["households"] + changes_free["projects"]
    with_ = changes["households"] + changes["projects"]
    s = stable.summary
    exits, value = s["expected_exits"], s["value"]
    objective = value + stability * changes["kept"]
    gap = None
    if s.get("bound") is not None:
        gap = max(s["bound"] - objective, 0.0) / max(abs(objective), 1.0)
        shortfall_ok = s.get("shortfall_gap") is not None and s["shortfall_gap"] <= max(
            1e-6, (mip_gap or 0.0) * (s.get("shortfall_bound") or 0.0))
        s["status"] = "optimal" if gap <= (mip_gap or 0.0) + 1e-12 and shortfall_ok else "feasible"
    info = {"lambda": stability, "objective": objective, "objective_gap": gap,
            "changes_without": without, "changes_with": with_,
            "household_changes_without": changes_free["households"], "household_changes_with": changes["households"],
            "project_changes_without": changes_free["projects"], "project_changes_with": changes["projects"],
            "expected_exits_without": free.summary["expected_exits"], "expected_exits_with": exits,
            "exits_cost": free.summary["expected_exits"] - exits,
            "value_without": free.summary["value"], "value_with": value, "value_cost": free.summary["value"] - value,
            "sentence": (f"the stability penalty ({stability:g} sustained exits per changed decision) keeps "
                         f"{without - with_:,} more planned decisions and costs "
                         f"{free.summary['expected_exits'] - exits:,.2f} expected exits")}
    s["stability"] = info
    return info


def merge_plan(context, record: Progress, states: pd.DataFrame, projects: pd.DataFrame, remaining: Plan,
               year: int) -> Plan:
    """The new plan: the remaining plan with the pinned history (delivered packages, started
    projects, disbursed money) put back, and each household's state."""
    summary = copy.deepcopy(remaining.summary)
    parent = context.plan.summary
    summary["replan_of"] = [fp for fp in (parent.get("plan_fingerprint"), *(parent.get("replan_of") or [])) if fp]
    if remaining.summary.get("expected_exits") is None:
        summary.update(scenario=context.plan.summary.get("scenario"), start_year=context.scenario.start_year,
                       manifest=context.plan.summary.get("manifest", {}))
        return Plan(summary)
    by_id = states.set_index("household_id")
    hh = remaining.households.copy()
    state = hh["household_id"].map(by_id["state"])
    settled = (state == "settled").to_numpy()
    packages = context.tables["packages"].set_index(["household_id", "package_id"])
    pinned = by_id.loc[hh.loc[settled, "household_id"]]
    info = packages.reindex(pd.MultiIndex.from_arrays([pinned.index, pinned["package_id"]]))
    hh.loc[settled, "package_id"] = pinned["package_id"].to_numpy()
    hh.loc[settled, "category"] = info["category"].to_numpy()
    hh.loc[settled, "start_year"] = pinned["actual_year"].to_numpy()
    hh.loc[settled, "cost"] = info["cost"].to_numpy()
    hh["start_year"] = hh["start_year"].astype("Int64")
    hh["state"] = state.to_numpy()

    key = ["village_id", "project_id"]
    started = projects[projects["started"]]
    pinned_projects = pd.DataFrame({
        "village_id": started["village_id"].to_numpy(), "project_id": started["project_id"].to_numpy(),
        "category": started["category"].to_numpy(), "start_year": started["actual_year"].astype(int).to_numpy(),
        "cost": started["cost"].to_numpy(dtype=float), "mandatory": started["mandatory"].to_numpy(dtype=bool)})
    later = remaining.projects.merge(started[key], on=key, how="left", indicator=True)
    later = later[later["_merge"] == "left_only"].drop(columns="_merge")
    built = pd.concat([pinned_projects, later], ignore_index=True)[PLAN_COLUMNS["projects"]]
    built = built.sort_values(["start_year", "village_id", "project_id"], kind="stable").reset_index(drop=True)

    money = ["source_id", "county_id", "category", "year"]
    funding = pd.concat([record.disbursed[money + ["amount"]], remaining.funding], ignore_index=True)
    funding = funding.groupby(money, as_index=False)["amount"].sum()
    funding = funding[funding["amount"] > 0].reset_index(drop=True)
    counties = remaining.counties.copy()
    counties["spend"] = counties["county_id"].map(funding.groupby("county_id")["amount"].sum()).fillna(0.0).to_numpy()
    summary.update(scenario=context.plan.summary.get("scenario"), start_year=context.scenario.start_year,
                   total_cost=float(funding["amount"].sum()),
                   households_with_package=int((hh["package_id"].fillna("") != "").sum()),
                   projects_built=len(built), manifest=context.plan.summary.get("manifest", {}))
    return Plan(summary, hh, built, funding, counties, remaining.path)  # the path from the re-plan year on


def plan_diff(old: Plan, new: Plan, states: pd.DataFrame, projects: pd.DataFrame, packages: pd.DataFrame,
              record: Progress, year: int) -> pd.DataFrame:
    """Every decision of ``new`` that differs from ``old``, with a reason (:data:`REASONS`) and a sentence."""
    if new.summary.get("expected_exits") is None:
        return pd.DataFrame(columns=DIFF_COLUMNS)
    context = _county_context(states, record, projects, year)
    parts = [_household_diff(old, new, states, projects, packages, year, context),
             _project_diff(old, new, projects, year),
             _money_diff(old, new, record, year)]
    return pd.concat([p for p in parts if len(p)], ignore_index=True)[DIFF_COLUMNS] if any(
        len(p) for p in parts) else pd.DataFrame(columns=DIFF_COLUMNS)


def _year_text(years: pd.Series, missing: str) -> pd.Series:
    """Years as text ('2018'), ``missing`` where there is none."""
    years = years.astype(float)
    return pd.Series(np.where(years.isna(), missing, years.fillna(0).astype(np.int64).astype(str)), index=years.index)


def _decision(package: pd.Series, start: pd.Series) -> pd.Series:
    """A household decision as text: 'package year' or 'none'."""
    has = package.fillna("").astype(str) != ""
    return pd.Series(np.where(has, package.fillna("").astype(str) + " " + _year_text(start, ""), "none"),
                     index=package.index)


def _household_diff(old: Plan, new: Plan, states, projects, packages: pd.DataFrame, year: int,
                    context: pd.Series) -> pd.DataFrame:
    a = old.households[["household_id", "package_id", "start_year"]]
    b = new.households[["household_id", "village_id", "county_id", "package_id", "start_year"]]
    m = b.merge(a, on="household_id", how="left", suffixes=("", "_old"))
    m = m.merge(states[["household_id", "state", "planned_year", "shock", "exited", "returned"]], on="household_id")
    before, after = _decision(m["package_id_old"], m["start_year_old"]), _decision(m["package_id"], m["start_year"])
    changed = (before != after).to_numpy()
    m, before, after = m[changed], before[changed], after[changed]
    had = before != "none"
    has = after != "none"
    same_pkg = m["package_id"].fillna("").to_numpy() == m["package_id_old"].fillna("").to_numpy()
    change = np.select([~had & has, had & ~has, same_pkg], ["gained", "lost", "moved"], "swapped")
    needs_late = _needs_late_project(m, packages, projects, year)
    state = m["state"].to_numpy()
    slipped = (state == "open") & (m["planned_year"].to_numpy() < year)
    reason = np.select([state == "settled", state == "returned", state == "new", state == "exited", slipped,
                        needs_late, m["shock"].to_numpy() != ""],
                       ["delivered_differently", "returned", "new_demand", "exited_early", "slipped",
                        "project_late", "shock"], "reoptimised")
    county = m["county_id"].astype(str)
    detail = np.where(reason == "reoptimised", "; " + county.map(context).fillna("").to_numpy(), "")
    sentence = ("household " + m["household_id"].astype(str) + " " + change + ": " + before + " -> " + after + " ("
                + pd.Series(reason, index=m.index).map(REASONS) + detail + ")")
    return pd.DataFrame({"kind": "household", "id": m["household_id"].to_numpy(), "county_id": county.to_numpy(),
                         "village_id": m["village_id"].to_numpy(), "change": change, "reason": reason,
                         "before": before.to_numpy(), "after": after.to_numpy(), "delta": np.nan,
                         "sentence": sentence.to_numpy()})


def _needs_late_project(m: pd.DataFrame, packages: pd.DataFrame, projects: pd.DataFrame, year: int) -> np.ndarray:
    """True where the household's planned package needs a project that slipped or runs late."""
    late = projects[projects["late"] | (projects["planned_year"].lt(year) & ~projects["started"])]
    if late.empty or m.empty:
        return np.zeros(len(m), dtype=bool)
    key = pd.MultiIndex.from_arrays([packages["household_id"], packages["package_id"]])
    got = key.get_indexer(pd.MultiIndex.from_arrays([m["household_id"], m["package_id_old"].fillna("")]))
    requires = pd.Series(np.where(got >= 0, packages["requires"].to_numpy()[np.maximum(got, 0)], ""))
    items = requires.map(split_list).explode().dropna()
    late_keys = pd.MultiIndex.from_arrays([late["village_id"], late["project_id"]])
    hit = late_keys.get_indexer(pd.MultiIndex.from_arrays([m["village_id"].to_numpy()[items.index.to_numpy()],
                                                           items.to_numpy()])) >= 0
    needs = np.zeros(len(m), dtype=bool)
    needs[items.index.to_numpy()[hit]] = True
    return needs


def _project_diff(old: Plan, new: Plan, projects: pd.DataFrame, year: int) -> pd.DataFrame:
    key = ["village_id", "project_id"]
    m = old.projects[key + ["start_year"]].merge(new.projects[key + ["start_year"]], on=key, how="outer",
                                                 suffixes=("_old", ""))
    m = m.merge(projects[key + ["county_id", "started", "late", "serves_from"]], on=key, how="left")
    before, after = m["start_year_old"], m["start_year"]
    moved = ~(before.fillna(-1).to_numpy() == after.fillna(-1).to_numpy())
    late = m["late"].fillna(False).to_numpy(dtype=bool) & ~moved
    m = m[moved | late]
    if m.empty:
        return pd.DataFrame(columns=DIFF_COLUMNS)
    before, after = m["start_year_old"], m["start_year"]
    change = np.select([before.isna(), after.isna(), ~moved[moved | late]], ["added", "dropped", "delayed"], "moved")
    started = m["started"].fillna(False).to_numpy(dtype=bool)
    reason = np.select([change == "delayed", started, before.to_numpy() < year], ["late", "started_differently",
                                                                                   "slipped"], "reoptimised")
    text_before, text_after = _year_text(before, "not built"), _year_text(after, "not built")
    finish = _year_text(m["serves_from"], "?")
    text_after = np.where(change == "delayed", text_after + " (serves from " + finish + ")", text_after)
    sentence = ("project " + m["village_id"] + "/" + m["project_id"] + " " + change + ": start " + text_before
                + " -> " + text_after + " (" + pd.Series(reason, index=m.index).map(REASONS) + ")")
    return pd.DataFrame({"kind": "project", "id": (m["village_id"] + "/" + m["project_id"]).to_numpy(),
                         "county_id": m["county_id"].to_numpy(), "village_id": m["village_id"].to_numpy(),
                         "change": change,
                         "reason": reason, "before": text_before.to_numpy(), "after": text_after,
                         "delta": np.nan, "sentence": sentence.to_numpy()})


def _money_diff(old: Plan, new: Plan, record: Progress, year: int) -> pd.DataFrame:
    key = ["source_id", "county_id", "category", "year"]
    m = old.funding[key + ["amount"]].merge(new.funding[key + ["amount"]], on=key, how="outer",
                                            suffixes=("_old", "")).fillna({"amount_old": 0.0, "amount": 0.0})
    m = m.merge(record.disbursed[key + ["amount"]].rename(columns={"amount": "paid"}), on=key, how="left")
    m["paid"] = m["paid"].fillna(0.0)
    delta = m["amount"] - m["amount_old"]
    m, delta = m[delta.abs() > MONEY_TOL], delta[delta.abs() > MONEY_TOL]
    history = (m["year"] < year).to_numpy()
    change = np.where(delta > 0, "more", "less")
    reason = np.where(history, "disbursed", "reoptimised")
    flow = m["source_id"] + " -> " + m["county_id"] + " " + m["category"] + " " + m["year"].astype(str)
    def yuan(column: str) -> pd.Series:  # text even when no flow changed (an empty map stays float)
        return m[column].map("{:,.0f}".format).astype(str)

    paid = np.where(m["paid"] > 0, ", of which " + yuan("paid") + " disbursed", "")
    sentence = ("money " + flow + ": " + yuan("amount_old") + " -> " + yuan("amount") + " yuan" + paid + " ("
                + pd.Series(reason, index=m.index).map(REASONS) + ")")
    return pd.DataFrame({"kind": "money", "id": flow.to_numpy(), "county_id": m["county_id"].to_numpy(),
                         "village_id": "", "change": change, "reason": reason,
                         "before": m["amount_old"].round(2).astype(str).to_numpy(),
                         "after": m["amount"].round(2).astype(str).to_numpy(), "delta": delta.round(2).to_numpy(),
                         "sentence": sentence.to_numpy()})


def _county_context(states: pd.DataFrame, record: Progress, projects: pd.DataFrame, year: int) -> pd.Series:
    """Per county, what changed since the approved plan, for the re-optimised households' sentence."""
    slipped = (states["state"] == "open") & (states["planned_year"] < year)
    counts = states.assign(returned=states["state"] == "returned", new=states["state"] == "new",
                           slipped=slipped, exited=states["state"] == "exited",
                           shocks=states["shock"] != "").groupby("county_id")[
        ["returned", "new", "slipped", "exited", "shocks"]].sum()
    text = pd.Series("", index=counts.index, dtype=object)
    for name, label in (("slipped", "slipped packages"), ("returned", "returned households"),
                        ("new", "new households"), ("exited", "early exits"), ("shocks", "shocks")):
        part = np.where(counts[name] > 0, counts[name].astype(str) + " " + label, "")
        text = text.where(part == "", text + np.where(text == "", "", ", ") + part)
    return "in county " + text.index.to_series() + ": " + text.where(text != "", "no deviation; money and ties")


def _summary(context, record: Progress, states, projects, tables, remaining: Plan, new: Plan, diff: pd.DataFrame,
             year: int, notes: list[str], stability: dict | None) -> dict:
    old = context.plan
    counts = states["state"].value_counts()
    money_left = float(tables["funds"]["amount"].sum())
    planned_rest = float(old.funding.loc[old.funding["year"] >= year, "amount"].sum())
    changes = diff.groupby(["kind", "change", "reason"]).size().reset_index(name="count") if len(diff) else \
        pd.DataFrame(columns=["kind", "change", "reason", "count"])
    ok = remaining.summary.get("expected_exits") is not None
    deadline = context.scenario.deadline_year
    headline = [
        ("settled", words("households with a delivered package (pinned)"), int(counts.get("settled", 0)),
         "households"),
        ("projects_started", words("projects started (pinned)"), int(projects["started"].sum()), "projects"),
        ("disbursed", words("money disbursed (spent)"), float(record.disbursed["amount"].sum()), "yuan"),
        ("money_left", words("money left for {year}-{deadline}", year=year, deadline=deadline), money_left, "yuan"),
        ("planned_rest", words("money the approved plan spends from {year}", year=year), planned_rest, "yuan"),
        ("returned", words("returned households (new demand)"), int(counts.get("returned", 0)), "households"),
        ("new", words("newly identified households (new demand)"), int(counts.get("new", 0)), "households"),
        ("exited_early", words("exited without a delivered package"), int(counts.get("exited", 0)), "households"),
        ("slipped", words("packages slipped"),
         int(((states["state"] == "open") & (states["planned_year"] < year)).sum()), "households"),
        ("expected_exits_before", words("expected exits, approved plan"), old.summary.get("expected_exits"),
         "households"),
        ("expected_exits_after", words("expected exits, new plan"), new.summary.get("expected_exits"), "households"),
        ("counties_on_schedule_after", words("counties on schedule, new plan"),
         new.summary.get("counties_on_schedule"), "counties"),
        ("household_changes", words("households whose decision changed"), int((diff["kind"] == "household").sum()),
         "households"),
        ("project_changes", words("projects moved, added, dropped or delayed"),
         int((diff["kind"] == "project").sum()), "projects"),
        ("money_changes", words("money flows changed"), int((diff["kind"] == "money").sum()), "flows"),
    ]
    sentences = []
    if ok:
        sentences.append(say("Re-planned {year}-{deadline} with {money:,.0f} yuan left: expected exits {before:,.1f} "
                             "-> {after:,.1f}, counties on schedule {on_before} -> {on_after} of {counties}.",
                             year=year, deadline=deadline, money=money_left,
                             before=old.summary.get("expected_exits", 0), after=new.summary["expected_exits"],
                             on_before=old.summary.get("counties_on_schedule"),
                             on_after=new.summary["counties_on_schedule"], counties=new.summary["counties_total"]))
        by_reason = diff.groupby("reason").size().sort_values(ascending=False) if len(diff) else pd.Series()
        if len(by_reason):
            sentences.append(say("Changes: {changes}.", changes=listed(
                [words("{count:,} {reason}", count=int(n), reason=words(r.replace("_", " ")))
                 for r, n in by_reason.items()], ", ")))
        if stability:
            text = stability["sentence"].capitalize() + "."
            sentences.append({"sentence": text, "message": text})  # English only: worked out by the stability run
    else:
        sentences.append(say("The remaining problem has no plan ({status}): {message}", status=remaining.status,
                             message=remaining.summary.get("message")))
    sentences += [{"sentence": note, "message": note} for note in notes]  # the data's own notes, in English
    return {
        **titled(words("Re-plan from {year}", year=year)), "kind": "replan", "scenario": old.summary.get("scenario"),
        "plan": str(context.folder), "from_year": year, "record_year": record.year,
        "status": remaining.status, "remaining": REMAINING_FOLDER, "stability": stability,
        "headline": [{"key": k, "label": render(label), "message": label, "value": v, "unit": unit}
                     for k, label, v, unit in headline],
        "sentences": [s["sentence"] for s in sentences], "messages": [s["message"] for s in sentences],
        "notes": notes,
        "changes": changes.to_dict("records"),
        "reasons": REASONS,
        "files": {"diff.csv": {"columns": {
            "kind": "household, project or money", "id": "household_id, village_id/project_id, or the flow",
            "county_id": "county", "village_id": "village", "change": "gained, lost, swapped, moved (households); "
            "added, dropped, moved, delayed (projects); more, less (money)", "reason": "why (see reasons)",
            "before": "the approved plan's decision", "after": "the new plan's", "delta": "money: after - before",
            "sentence": "the change in words"}},
            REMAINING_FOLDER: {"meaning": "the remaining problem (data/, scenario.yaml) and its plan, years "
                               f"{year}-{context.scenario.deadline_year}"}},
    }
