"""Plan: the output tables and KPIs of a solve; writing and reading a plan folder.

The plan folder is the output contract: summary.json, households.csv, projects.csv,
funding.csv, counties.csv and path.csv, with marginal_values.csv when the solve priced its
rows (:mod:`allocator.optimize.marginal`). Every KPI is recomputed here from the chosen decisions
(never copied from solver variables), so the tables agree with each other exactly.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from allocator.inputs.provenance import output_folder, plan_fingerprint
from allocator.inputs.tables import CATEGORIES
from allocator.model.formulation import Formulation, G
from allocator.model.problem import Problem

TABLES = ("households", "projects", "funding", "counties", "path")
BASELINES_FOLDER = "baselines"  # the usual rules' plans, one plan folder each
MARGINAL_VALUES = "marginal_values.csv"  # what one more unit of each resource is worth (allocator.optimize.marginal)
COLUMNS = {
    "households": ["household_id", "village_id", "county_id", "package_id", "category", "start_year", "cost",
                   "exit_probability", "sustained_probability", "exit_year", "responsible_cadre_id",
                   "poverty_probability"],
    "projects": ["village_id", "project_id", "category", "start_year", "cost", "mandatory"],
    "funding": ["source_id", "county_id", "category", "year", "amount"],
    "counties": ["county_id", "registered_poor", "expected_exits", "expected_incidence", "threshold",
                 "on_schedule", "shortfall_households", "spend", "hat_off_year", "achieved_hat_off_year"],
    "path": ["year", "region_id", "registered_poor", "expected_poor", "target", "shortfall"],
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
    path: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=COLUMNS["path"]))
    baselines: dict[str, Plan] = field(default_factory=dict)  # the usual rules' plans, by rule
    marginal_values: pd.DataFrame | None = None  # marginal_values.csv (allocator.optimize.marginal), when computed
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

    def write(self, folder: str | Path) -> Path:
        """Write the plan folder's tables and summary (created if needed; refused when it holds
        anything allocator did not write, see :mod:`allocator.inputs.provenance`); the summary
        gets its ``plan_fingerprint`` if it has none. The charts are the caller's
        (:func:`allocator.report.charts.write_plan_charts`). Returns the folder."""
        folder = Path(folder)
        with output_folder(folder, "plan"):
            for name in TABLES:
                getattr(self, name).to_csv(folder / f"{name}.csv", index=False)
            if self.marginal_values is not None:
                self.marginal_values.to_csv(folder / MARGINAL_VALUES, index=False)
            elif (folder / MARGINAL_VALUES).is_file():  # an earlier run's would be stale
                (folder / MARGINAL_VALUES).unlink()
            if (folder / BASELINES_FOLDER).is_dir():  # an earlier run's baselines would be stale
                shutil.rmtree(folder / BASELINES_FOLDER)
            for rule, baseline in self.baselines.items():
                baseline.write(folder / BASELINES_FOLDER / rule)
            inputs = (self.summary.get("manifest") or {}).get("input_fingerprint")
            self.summary.setdefault("plan_fingerprint", plan_fingerprint(folder, inputs, TABLES))
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
                                                                    "responsible_cadre_id": str, "region_id": str})
                  for name in TABLES if (folder / f"{name}.csv").is_file()}
        if "path" in frames:  # '' is the whole scenario; an empty target is none
            path = frames["path"]
            path["region_id"] = path["region_id"].fillna("")
        baselines = {path.name: cls.read(path) for path in sorted((folder / BASELINES_FOLDER).glob("*"))
                     if (path / "summary.json").is_file()}
        marginal = (pd.read_csv(folder / MARGINAL_VALUES, dtype={"source_id": str, "region_id": str},
                                keep_default_na=False, na_values={"value": [""], "fd_down": [""], "fd_up": [""]})
                    if (folder / MARGINAL_VALUES).is_file() else None)
        return cls(summary, **frames, baselines=baselines, marginal_values=marginal, folder=folder)


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


def exit_matrix(fm: Formulation, chosen_x: np.ndarray) -> np.ndarray:
    """exits[h, t]: each registered poor household's chance to be out of poverty at the end of
    year index t: its package's exit probability from start + lag on, else its baseline by then."""
    p = fm.problem
    T = len(p.years)
    exits = p.baseline_at(np.arange(T)).T.copy() if len(p.household_ids) else np.zeros((0, T))
    hh = fm.x_household[chosen_x]
    first = fm.x_exit_year[chosen_x]
    for t in range(T):
        now = first <= t
        exits[hh[now], t] = p.pkg_exit[fm.x_pkg[chosen_x[now]]]
    return exits


def households_table(fm: Formulation, chosen_x: np.ndarray, exits: np.ndarray) -> pd.DataFrame:
    """One row per registered poor household: its package, start year, and its exit
    (expected, sustained, and the year it counts from)."""
    p = fm.problem
    H = len(p.household_ids)
    pkg = np.full(H, -1)
    year = np.full(H, -1)
    hh = fm.x_household[chosen_x]
    pkg[hh] = fm.x_pkg[chosen_x]
    year[hh] = fm.x_year[chosen_x]
    has = pkg >= 0
    safe = np.maximum(pkg, 0)
    exit_year = np.where(has, np.maximum(year, 0) + p.pkg_lag[safe], len(p.years))
    counted = has & (exit_year <= len(p.years) - 1)
    return pd.DataFrame({
        "household_id": p.household_ids,
        "village_id": p.village_ids[p.household_village],
        "county_id": p.county_ids[p.household_county],
        "package_id": np.where(has, p.pkg_ids[safe], ""),
        "category": np.where(has, np.array(CATEGORIES, dtype=object)[p.pkg_category[safe]], ""),
        "start_year": pd.Series(p.years[np.maximum(year, 0)], dtype="Int64").mask(~has),
        "cost": np.where(has, p.pkg_cost[safe], 0.0),
        "exit_probability": exits[:, -1] if len(p.years) else np.zeros(H),
        "sustained_probability": np.where(counted, p.pkg_sustained[safe], p.household_baseline),
        "exit_year": pd.Series(p.start_year + exit_year, dtype="Int64").mask(~counted),
        "responsible_cadre_id": "",
        "poverty_probability": p.household_poverty if len(p.household_poverty) == H else np.ones(H),
    })


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


def counties_table(fm: Formulation, exits: np.ndarray, spend: np.ndarray) -> pd.DataFrame:
    """Per county: registered poor, expected exits and incidence at the deadline, and its exit
    rule at its hat-off year (planned, and the first year-end at which it holds)."""
    p = fm.problem
    C, T = len(p.county_ids), len(p.years)
    poor = p.county_registered_poor
    by_year = np.stack([np.bincount(p.household_county, weights=exits[:, t], minlength=C) for t in range(T)], axis=1)
    allowed = p.county_threshold * p.county_rural_population
    short_by_year = np.maximum(poor[:, None] - by_year - allowed[:, None], 0.0)
    shortfall = short_by_year[np.arange(C), p.county_hat_off]
    meets = short_by_year <= ON_SCHEDULE_TOL
    achieved = np.where(meets.any(axis=1), p.start_year + np.argmax(meets, axis=1), -1)
    exits_end = by_year[:, -1]
    incidence = np.divide(poor - exits_end, p.county_rural_population,
                          out=np.full(len(poor), np.nan), where=p.county_rural_population > 0)
    return pd.DataFrame({
        "county_id": p.county_ids, "registered_poor": poor, "expected_exits": exits_end,
        "expected_incidence": incidence, "threshold": p.county_threshold,
        "on_schedule": shortfall <= ON_SCHEDULE_TOL, "shortfall_households": shortfall,
        "spend": spend.sum(axis=(1, 2)),
        "hat_off_year": p.start_year + p.county_hat_off,
        "achieved_hat_off_year": pd.Series(achieved, dtype="Int64").mask(achieved < 0),
    }, columns=COLUMNS["counties"])


def target_shortfalls(p: Problem, exits: np.ndarray) -> np.ndarray:
    """Shortfall of each annual target: its households still poor at its year-end above
    its share of them, in households."""
    short = np.zeros(len(p.target_year))
    for k in range(len(p.target_year)):
        members = p.target_households(k)
        poor = members.sum() - exits[members, p.target_year[k]].sum()
        short[k] = max(poor - p.target_share[k] * members.sum(), 0.0)
    return short


def path_table(fm: Formulation, exits: np.ndarray) -> pd.DataFrame:
    """Expected poor at each year-end, for the whole scenario (region_id '') and each county,
    beside the annual target of that region and year where one is set."""
    p = fm.problem
    C, T = len(p.county_ids), len(p.years)
    regions = [("", np.ones(len(p.household_ids), dtype=bool))]
    regions += [(str(r), p.target_county_ok[k][p.household_county]) for k, r in enumerate(p.target_region)
                if r != "" and r not in p.county_ids]
    frames = []
    for region, members in regions:
        poor = float(members.sum()) - exits[members].sum(axis=0)
        frames.append(pd.DataFrame({"year": p.years, "region_id": region, "registered_poor": int(members.sum()),
                                    "expected_poor": poor}))
    by_county = np.stack([np.bincount(p.household_county, weights=1.0 - exits[:, t], minlength=C) for t in range(T)])
    frames.append(pd.DataFrame({"year": np.repeat(p.years, C), "region_id": np.tile(p.county_ids.astype(str), T),
                                "registered_poor": np.tile(p.county_registered_poor, T),
                                "expected_poor": by_county.reshape(-1)}))
    path = pd.concat(frames, ignore_index=True).drop_duplicates(["year", "region_id"])
    targets = pd.DataFrame({"year": p.years[p.target_year], "region_id": p.target_region.astype(str),
                            "target": p.target_share})
    path = path.merge(targets, on=["year", "region_id"], how="left")
    path["shortfall"] = np.where(path["target"].notna(),
                                 np.maximum(path["expected_poor"] - path["target"] * path["registered_poor"], 0.0),
                                 np.nan)
    return path.sort_values(["region_id", "year"], kind="stable").reset_index(drop=True)[COLUMNS["path"]]


def budget_use(fm: Formulation, funding: pd.DataFrame) -> list[dict]:
    """Per source and year: amount, spent, what was available (with carry-over), what was
    recalled (carried money unspent after ``carry_over_years``) and carried to the next year.
    Spend uses the oldest money first, as the budget rows allow (:func:`budget_windows`)."""
    p = fm.problem
    spent = funding.groupby(["source_id", "year"])["amount"].sum()
    rows = []
    for s, source in enumerate(p.source_ids):
        vintages: list[list[float]] = []  # [year index, money left] of carried money, oldest first
        recall = p.source_recall_years[s]
        for t, year in enumerate(p.years):
            here = (p.fund_source == s) & (p.fund_year == t)
            amount = float(p.fund_amount[here].sum())
            used = float(spent.get((source, year), 0.0))
            if not p.source_carry_over[s]:
                vintages = []
            vintages.append([t, amount])
            available = sum(v for _, v in vintages)
            if not here.any() and used == 0 and available == 0:
                continue
            left = used
            for vintage in vintages:
                take = min(vintage[1], left)
                vintage[1] -= take
                left -= take
            expired = [v for v in vintages if not p.source_carry_over[s] or (recall >= 0 and t - v[0] >= recall)]
            recalled = float(sum(v for _, v in expired)) if p.source_carry_over[s] else 0.0
            vintages = [v for v in vintages if v not in expired and v[1] > 0]
            rows.append({"source_id": source, "year": int(year), "amount": amount, "available": available,
                         "spent": used, "recalled": recalled, "carried": float(sum(v for _, v in vintages)),
                         "carry_over": bool(p.source_carry_over[s])})
    return rows


def make_plan(fm: Formulation, x: np.ndarray | None, summary: dict) -> Plan:
    """Turn a solution vector into a Plan; ``summary`` holds status and run facts to extend."""
    p = fm.problem
    if x is None:
        summary.update(expected_exits=None, sustained_exits=None, value=None, total_cost=None,
                       total_shortfall=None, objective=None, counties_on_schedule=None,
                       counties_total=len(p.county_ids), budget_use=[], path=[],
                       equity={"min_exit_rate": None, "max_exit_rate": None, "spread": None,
                               "rules": p.policy.equity.rules, "broken": []})
        return Plan(summary)
    chosen_x, chosen_y = chosen_columns(fm, x)
    exits = exit_matrix(fm, chosen_x)
    households = households_table(fm, chosen_x, exits)
    spend = spend_grid(fm, chosen_x, chosen_y)
    funding = funding_table(fm, x, spend)
    counties = counties_table(fm, exits, spend)
    path = path_table(fm, exits)
    expected = float(exits[:, -1].sum())
    sustained = float(households["sustained_probability"].sum())
    household_years = float(exits.sum())
    value = sustained + p.policy.earliness_weight * household_years
    # expected exits of households truly poor: each weighed by its poverty probability (reported
    # whether or not policy.targeting_weights puts the weights in the objective)
    q = p.household_poverty if len(p.household_poverty) == len(p.household_ids) else np.ones(len(p.household_ids))
    weighted = float(exits[:, -1] @ q) if len(q) else 0.0
    if p.policy.targeting_weights:  # the objective's value: each household's part x its poverty probability
        value = float(households["sustained_probability"].to_numpy(dtype=float) @ q) \
            + p.policy.earliness_weight * float((exits.sum(axis=1) @ q) if len(q) else 0.0)
    county_short = float(counties["shortfall_households"].sum())
    target_short = target_shortfalls(p, exits)
    shortfall = county_short + float(target_short.sum())
    scenario_path = path[path["region_id"] == ""]
    summary.update(
        expected_exits=expected,
        weighted_expected_exits=weighted,
        sustained_exits=sustained,
        sustained_share=sustained / expected if expected > 0 else None,
        household_years=household_years,
        value=value,
        objective=value - fm.penalty * shortfall,
        total_shortfall=shortfall,
        county_shortfall=county_short,
        target_shortfall=float(target_short.sum()),
        total_cost=float(spend.sum()),
        counties_on_schedule=int(counties["on_schedule"].sum()),
        counties_total=len(counties),
        households_with_package=int(len(chosen_x)),
        projects_built=int(len(chosen_y)),
        budget_use=budget_use(fm, funding),
        equity=equity_facts(p, counties),
        targeting=targeting_facts(p),
        path=[{"year": int(r.year), "expected_poor": float(r.expected_poor),
               "share": float(r.expected_poor) / max(int(r.registered_poor), 1),
               "target": None if pd.isna(r.target) else float(r.target),
               "shortfall": None if pd.isna(r.shortfall) else float(r.shortfall)}
              for r in scenario_path.itertuples()],
    )
    return Plan(summary, households, projects_table(fm, chosen_y), funding, counties, path)


def targeting_facts(p: Problem) -> dict:
    """The registry's expected targeting errors from ``poverty_probability`` q: inclusion, the
    sum over registered households of 1 - q (registered but probably not poor), and its share
    of the registered; exclusion, the sum of q over the households table's non-registered
    households with a probability above 0 (not registered but probably poor), and its share of
    the expected poor; null when the table holds no such probability (identify writes them for
    its edge households)."""
    q = p.household_poverty if len(p.household_poverty) == len(p.household_ids) else np.ones(len(p.household_ids))
    inclusion = float((1.0 - q).sum())
    registered = len(q)
    facts = {"weights": bool(p.policy.targeting_weights),
             "expected_inclusion_error": inclusion,
             "expected_inclusion_error_share": inclusion / registered if registered else None,
             "expected_exclusion_error": None, "expected_exclusion_error_share": None, "note": None}
    households = p.tables.get("households") if p.tables else None
    others = None
    if households is not None and "poverty_probability" in households.columns:
        outside = households[~households["registered_poor"].to_numpy(dtype=bool)]
        values = pd.to_numeric(outside["poverty_probability"], errors="coerce").to_numpy(dtype=float)
        values = values[~np.isnan(values)]
        others = values[values > 0] if len(values) else None
    if others is None:
        facts["note"] = ("no poverty_probability for households outside the registry: the expected "
                         "exclusion error is unknown")
        return facts
    exclusion = float(others.sum())
    expected_poor = float(q.sum()) + exclusion
    facts["expected_exclusion_error"] = exclusion
    facts["expected_exclusion_error_share"] = exclusion / expected_poor if expected_poor > 0 else None
    return facts


EQUITY_TOL = 1e-6  # exit rates, and yuan per registered poor household, within solver tolerance


def exit_rates(counties: pd.DataFrame) -> pd.Series:
    """Each county's exit rate (counties.csv: expected exits / registered poor), by county id."""
    poor = counties["registered_poor"].astype(float)
    rates = counties["expected_exits"].astype(float) / poor.where(poor > 0)
    return pd.Series(rates.to_numpy(), index=counties["county_id"].astype(str)).dropna()


def equity_facts(p: Problem, counties: pd.DataFrame) -> dict:
    """The equity summary of a plan (``summary.json``'s ``equity``): the lowest and highest
    county exit rate and their spread, the equity rules in force, and each rule the plan breaks
    with by how much (empty for a plan that keeps them: every method's plan should)."""
    rates = exit_rates(counties)
    equity = p.policy.equity
    low = float(rates.min()) if len(rates) else None
    high = float(rates.max()) if len(rates) else None
    spread = None if low is None else high - low
    broken = []
    if equity.max_exit_rate_spread is not None and spread is not None \
            and spread > equity.max_exit_rate_spread + EQUITY_TOL:
        broken.append({"rule": "max_exit_rate_spread", "by": spread - equity.max_exit_rate_spread,
                       "message": f"the spread of county exit rates is {spread:.6f}, above the cap "
                                  f"{equity.max_exit_rate_spread:.6f}"})
    if equity.county_floor_per_poor is not None:
        per_poor = counties["spend"].astype(float) / counties["registered_poor"].astype(float)
        short = equity.county_floor_per_poor - per_poor
        for county, by in zip(counties["county_id"], short, strict=True):
            if by > EQUITY_TOL * max(1.0, equity.county_floor_per_poor) + 0.01:
                broken.append({"rule": "county_floor_per_poor", "county_id": str(county), "by": float(by),
                               "message": f"county {county} gets {equity.county_floor_per_poor - by:,.2f} yuan per "
                                          f"registered poor household, below the floor "
                                          f"{equity.county_floor_per_poor:,.2f}"})
    return {"min_exit_rate": low, "max_exit_rate": high, "spread": spread, "rules": equity.rules, "broken": broken}


def shortfall_vector(fm: Formulation, plan: Plan) -> np.ndarray:
    """The plan's shortfall per penalised row, in the order of ``fm``'s shortfall columns: each
    county's at its hat-off year (counties.csv), then each annual target's (path.csv)."""
    p = fm.problem
    county = plan.counties.set_index("county_id")["shortfall_households"].reindex(
        p.county_ids[fm.shortfall_counties], fill_value=0.0).to_numpy(dtype=float)
    targets = fm.shortfall_targets
    lookup = plan.path.set_index(["region_id", "year"])["shortfall"] if len(plan.path) else pd.Series(dtype=float)
    keys = pd.MultiIndex.from_arrays([p.target_region[targets].astype(str), p.years[p.target_year[targets]]])
    target = lookup.reindex(keys).fillna(0.0).to_numpy(dtype=float) if len(targets) else np.zeros(0)
    return np.concatenate([county, target])
