"""One household, one responsible person; one village, one work team.

Every registered poor household gets exactly one responsible cadre and every poor village
one resident work team, at the least total travel distance plus penalties, within the
cadres' capacities. Where capacity is short the result says where and by how much
(:attr:`Responsibility.shortage`, per township); nobody is dropped: a household without a
cadre is listed with an empty ``responsible_cadre_id``.

The model (all costs in km-equivalents, rounded to whole metres for the solver)
-------------------------------------------------------------------------------
Households to cadres, a transportation problem (one household uses one unit of capacity)::

    min  sum_{h,k} c[h,k] x[h,k] + UNASSIGNED_KM * sum_h y[h]
    s.t. sum_k x[h,k] + y[h] = 1                 every household exactly once ("Household coverage")
         sum_h x[h,k] <= capacity[k]             every cadre within capacity ("Cadre capacity")
         x[h,k] = 0 unless county(h) = county(k) cadres serve their own county ("CountyWork rule")
    c[h,k] = great-circle km(h, k)
             + MISMATCH_KM        if none of the cadre's skills fits the household's need
             + OTHER_TOWNSHIP_KM  if the cadre belongs to another township

``y`` (no responsible person) costs more than any assignment, so the number of households
without a cadre is the least possible (the county's households minus its capacity; checked
per county, with a note if it ever failed) and only then is distance minimised.

The need of a household: the skill(s) of its chosen package's category
(:data:`CATEGORY_SKILLS`) when it has one, else those of its main cause
(:data:`CAUSE_SKILLS`); a household whose need maps to no skill (cause ``other``) matches
every cadre.

Poor villages to work teams: the same problem with one unit per village and per team,
``c = km + TEAM_OTHER_COUNTY_KM`` when the team's home county is not the village's county,
over the whole province.

How it is solved, and what is proven
------------------------------------
* Households at the same place (same coordinates, township, county) with the same need are
  one supply node: they have identical costs, so merging them is exact.
* The county rule makes counties independent: each is solved on its own.
* Per county, min-cost flow (OR-Tools ``SimpleMinCostFlow``) runs on a sparse graph: each
  supply node starts with arcs to its :data:`CANDIDATES` cheapest cadres of the county
  (which are nearly always those of its own township, given the township penalty), plus
  an "unassigned" arc. Node potentials of the optimal flow (shortest paths in the residual
  graph) give dual prices ``w[k] >= 0`` of the cadres; every supply node × cadre pair of
  the county is then priced. The dual bound
  ``sum_h s[h] min(UNASSIGNED, min_k c[h,k] + w[k]) - sum_k capacity[k] w[k]`` is a valid
  lower bound for the *full* county problem (all pairs); pairs with negative reduced cost
  are added and the flow re-solved (column generation) until the bound meets the
  objective. When it does, the county's assignment is proven optimal over all pairs, not
  only the sparse ones. ``bound`` is the sum of these lower bounds.
* ``province_bound`` bounds the problem *without* the county rule (any cadre anywhere), by a
  relaxation: each household may instead be served "from outside its county" at the distance
  to the nearest cadre of another county + OTHER_TOWNSHIP_KM (no less than any such cadre
  costs), with no capacity limit. The relaxation decomposes by county; per county its bound
  is the county's dual with that option, or, when that is more than RELAXATION_TOL below the
  county's objective, the relaxation solved by the same exact procedure.
  ``decomposition_gap = (objective - province_bound) / objective`` is at most what the county
  rule costs; a county short of capacity dominates it (its households without a cadre cost
  UNASSIGNED_KM each under the rule, a cross-county trip in the relaxation).
* Teams: the same procedure on one province-wide graph (:data:`TEAM_CANDIDATES` nearest
  teams per village to start).

Constants (A = assumption, to calibrate with planners):

========================  =========  ==================================================  ==
constant                  value      meaning                                             Q
========================  =========  ==================================================  ==
MISMATCH_KM               20 km      a cadre whose skills do not fit the household's     A
                                     need counts as 20 km more travel
OTHER_TOWNSHIP_KM         30 km      serving a household of another township counts as   A
                                     30 km more (cadres know their own township)
TEAM_OTHER_COUNTY_KM      30 km      a work team sent to a village outside its home      A
                                     county counts as 30 km more
UNASSIGNED_KM             10,000 km  a household or village left without anyone: more    A
                                     than any assignment in a province, so it happens
                                     only when capacity is short
CANDIDATES                24         initial arcs per supply node (more are priced in)   A
TEAM_CANDIDATES           32         initial arcs per poor village                       A
========================  =========  ==================================================  ==
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from allocator.assign.contract import (
    CANDIDATES,
    CATEGORY_SKILLS,
    CAUSE_SKILLS,
    OTHER_TOWNSHIP_KM,
    TEAM_CANDIDATES,
    TEAM_OTHER_COUNTY_KM,
    UNASSIGNED_KM,
    cadre_masks,
    check_cadres,
    check_teams,
    checked_numbers,
    flag_duplicates,
    flag_empty_ids,
    read_cadres,
    read_teams,
    require_columns,
    skill_masks,
    text_column,
)
from allocator.assign.runner import CountyWork, run_counties, spread_flow
from allocator.assign.transport import EARTH_RADIUS_KM, great_circle_km, metres_between, solve_transport, unit_vectors
from allocator.errors import IssueCollector
from allocator.inputs.checks import report_rows
from allocator.inputs.scenario import Scenario
from allocator.inputs.tables import CATEGORIES, table_path
from allocator.optimize.methods import ProgressCallback, quiet
from allocator.plan.plan import Plan
from allocator.solvers.base import Status, relative_gap
from allocator.synth.teams import generate_teams
from allocator.targeting import identify_scenario, raw_tables

NEAREST_OTHER = 16  # nearest cadres looked at for the nearest cadre of another county


# --- households to cadres ------------------------------------------------------------------
@dataclass
class Responsibility:
    """Responsible cadres of households and work teams of poor villages, with what is proven.

    Objectives are in km-equivalents (distance plus penalties, see the module doc),
    including UNASSIGNED_KM for each household or village left without anyone.
    """

    household_cadre: pd.DataFrame
    shortage: pd.DataFrame
    cadre_load: pd.DataFrame
    village_team: pd.DataFrame
    team_shortage: pd.DataFrame
    households_objective: float
    households_bound: float
    households_province_bound: float
    teams_objective: float
    teams_bound: float
    status: Status
    seconds: float
    notes: list[str] = field(default_factory=list)
    stats: dict = field(default_factory=dict)

    @property
    def objective(self) -> float:
        return self.households_objective + self.teams_objective

    @property
    def bound(self) -> float:
        """Proven lower bound of the objective under the county rule."""
        return self.households_bound + self.teams_bound

    @property
    def gap(self) -> float | None:
        return relative_gap(self.objective, self.bound)

    @property
    def decomposition_gap(self) -> float | None:
        """Relative distance of the households' objective to the bound without the county rule."""
        return relative_gap(self.households_objective, self.households_province_bound)

    @property
    def unassigned_households(self) -> int:
        return int((self.household_cadre["responsible_cadre_id"] == "").sum())

    @property
    def unassigned_villages(self) -> int:
        return int((self.village_team["team_id"] == "").sum())

    def summary(self) -> dict:
        """Plain numbers for JSON and reports."""
        hc = self.household_cadre
        assigned = hc["responsible_cadre_id"] != ""
        return {
            "status": self.status.value,
            "households": len(hc),
            "households_assigned": int(assigned.sum()),
            "households_unassigned": self.unassigned_households,
            "households_same_township": int(hc["same_township"].sum()),
            "households_skill_match": int(hc["skill_match"].sum()),
            "household_km": round(float(hc["distance_km"].sum()), 3),
            "townships_short": int((self.shortage["deficit"] > 0).sum()),
            "capacity_missing": int(self.shortage["deficit"].sum()),
            "poor_villages": len(self.village_team),
            "villages_unassigned": self.unassigned_villages,
            "objective": round(self.objective, 3),
            "bound": round(self.bound, 3),
            "gap": self.gap,
            "households_objective": round(self.households_objective, 3),
            "households_bound": round(self.households_bound, 3),
            "households_province_bound": round(self.households_province_bound, 3),
            "decomposition_gap": self.decomposition_gap,
            "teams_objective": round(self.teams_objective, 3),
            "teams_bound": round(self.teams_bound, 3),
            "seconds": round(self.seconds, 3),
            "notes": list(self.notes),
            "stats": dict(self.stats),
        }


def _township_county(households: pd.DataFrame, villages: pd.DataFrame | None,
                     regions: pd.DataFrame | None) -> pd.Series:
    """township_id -> county_id, from regions when given, else from the households (and villages)."""
    if regions is not None:
        towns = regions[regions["level"] == "township"]
        return pd.Series(towns["parent_id"].astype(str).to_numpy(), index=towns["region_id"].astype(str).to_numpy())
    pairs = [households[["township_id", "county_id"]]]
    if villages is not None and {"township_id", "county_id"} <= set(villages.columns):
        pairs.append(villages[["township_id", "county_id"]])
    frame = pd.concat(pairs).astype(str).drop_duplicates("township_id")
    return pd.Series(frame["county_id"].to_numpy(), index=frame["township_id"].to_numpy())


def _check_households(households: pd.DataFrame, issues: IssueCollector) -> dict | None:
    file = households.attrs.get("file", "households.csv")
    if not require_columns(issues, households, file, ("household_id", "township_id", "county_id", "latitude",
                                               "longitude")):
        return None
    flag_empty_ids(issues, households, file, "household_id", ("household_id", "township_id", "county_id"))
    flag_duplicates(issues, households, file, "household_id")
    lat = checked_numbers(issues, households, file, "household_id", "latitude", -90, 90)
    lon = checked_numbers(issues, households, file, "household_id", "longitude", -180, 180)
    n = len(households)
    need = np.zeros(n, dtype=np.int64)
    if "main_cause" in households.columns:
        need, unknown = skill_masks(text_column(households, "main_cause"), CAUSE_SKILLS)
        report_rows(issues, file, households, unknown, "household_id", "main_cause", "unknown cause",
                    "one of " + ", ".join(CAUSE_SKILLS))
    if "category" in households.columns:
        cat_need, unknown = skill_masks(text_column(households, "category"), CATEGORY_SKILLS)
        report_rows(issues, file, households, unknown, "household_id", "category", "unknown category",
                    "one of " + ", ".join(CATEGORIES) + ", or empty")
        has_cat = text_column(households, "category") != ""
        need = np.where(has_cat, cat_need, need)
    return {"lat": lat, "lon": lon, "need": need}


def _check_cadres_frame(cadres: pd.DataFrame, issues: IssueCollector, regions: pd.DataFrame | None) -> dict | None:
    file = cadres.attrs.get("file", "cadres.csv")
    if not require_columns(issues, cadres, file, ("cadre_id", "township_id", "capacity", "latitude", "longitude")):
        return None
    flag_empty_ids(issues, cadres, file, "cadre_id", ("cadre_id", "township_id"))
    flag_duplicates(issues, cadres, file, "cadre_id")
    capacity = checked_numbers(issues, cadres, file, "cadre_id", "capacity", 0, 100_000, integer=True)
    lat = checked_numbers(issues, cadres, file, "cadre_id", "latitude", -90, 90)
    lon = checked_numbers(issues, cadres, file, "cadre_id", "longitude", -180, 180)
    skills = text_column(cadres, "skills") if "skills" in cadres.columns else np.full(len(cadres), "")
    check_cadres(cadres.assign(skills=skills), issues, regions)
    return {"capacity": capacity.astype(np.int64), "lat": lat, "lon": lon, "skill": cadre_masks(skills)}


def assign_households(households: pd.DataFrame, cadres: pd.DataFrame, *, regions: pd.DataFrame | None = None,
                      villages: pd.DataFrame | None = None, candidates: int = CANDIDATES,
                      time_limit: float | None = None, workers: int | None = None) -> Responsibility:
    """Responsible cadres only (no teams): see :func:`assign_responsibility`."""
    return assign_responsibility(households, cadres, villages, None, regions=regions, candidates=candidates,
                                 time_limit=time_limit, workers=workers)


def _assign_households(households: pd.DataFrame, hh: dict, cadres: pd.DataFrame, cd: dict,
                       town_county: pd.Series, candidates: int, deadline: float | None, workers: int,
                       progress: ProgressCallback) -> dict:
    n = len(households)
    h_town = text_column(households, "township_id")
    h_county = text_column(households, "county_id")
    c_town = text_column(cadres, "township_id")
    c_county = town_county.reindex(c_town).to_numpy(dtype=object)
    idle = pd.isna(c_county)
    c_county = np.where(idle, "", c_county).astype(str)
    towns = pd.Index(np.unique(np.r_[h_town, c_town]))
    counties = pd.Index(np.unique(h_county))
    ht, hc = towns.get_indexer(h_town), counties.get_indexer(h_county)
    ct, cc = towns.get_indexer(c_town), counties.get_indexer(c_county)  # -1: a county with no households

    # supply nodes: same county, township, place and need (identical costs: merging is exact)
    keys = pd.DataFrame({"c": hc, "t": ht, "lat": hh["lat"], "lon": hh["lon"], "need": hh["need"]})
    group_of = keys.groupby(["c", "t", "lat", "lon", "need"], sort=True).ngroup().to_numpy()
    first = np.unique(group_of, return_index=True)[1]
    g_county, g_town, g_need = hc[first], ht[first], hh["need"][first]
    g_unit = unit_vectors(hh["lat"][first], hh["lon"][first])
    supply = np.bincount(group_of).astype(np.int64)
    c_unit = unit_vectors(cd["lat"], cd["lon"])
    c_order = np.argsort(cc, kind="stable")
    c_start = np.searchsorted(cc[c_order], np.arange(len(counties) + 1))
    g_start = np.searchsorted(g_county, np.arange(len(counties) + 1))
    cross = _cross_county_metres(g_unit, g_county, c_unit[cc >= 0], cc[cc >= 0])

    works, slices = [], []
    for k in range(len(counties)):  # a loop per county
        gs = np.arange(g_start[k], g_start[k + 1])
        js = c_order[c_start[k]:c_start[k + 1]]
        slices.append((gs, js))
        works.append(CountyWork(g_unit[gs], g_need[gs], g_town[gs], supply[gs], cross[gs], c_unit[js], cd["skill"][js],
                             ct[js], cd["capacity"][js], candidates, deadline))
    results = run_counties(works, workers, progress)
    arc_g = np.concatenate([gs[r["arc_g"]] for (gs, _), r in zip(slices, results, strict=True)])
    arc_j = np.concatenate([np.where(r["arc_j"] >= 0, js[np.maximum(r["arc_j"], 0)], -1)
                            for (_, js), r in zip(slices, results, strict=True)])
    arc_f = np.concatenate([r["arc_flow"] for r in results])
    objective = sum(r["objective"] for r in results)
    bound = sum(r["bound"] for r in results)
    province_bound = sum(r["province_bound"] for r in results)
    proven = all(r["proven"] for r in results)
    cadre_of = spread_flow(group_of, arc_g, arc_j, arc_f)

    assigned = cadre_of >= 0
    safe = np.maximum(cadre_of, 0)
    distance = np.where(assigned, great_circle_km(hh["lat"], hh["lon"], cd["lat"][safe], cd["lon"][safe]), np.nan)
    skill_match = assigned & ((hh["need"] == 0) | ((hh["need"] & cd["skill"][safe]) != 0))
    same_town = assigned & (ct[safe] == ht)
    cadre_ids = text_column(cadres, "cadre_id")
    household_cadre = pd.DataFrame({
        "household_id": text_column(households, "household_id"),
        "responsible_cadre_id": np.where(assigned, cadre_ids[safe], ""),
        "township_id": h_town,
        "county_id": h_county,
        "distance_km": np.round(distance, 3),
        "skill_match": skill_match,
        "same_township": same_town,
    })
    load = np.bincount(cadre_of[assigned], minlength=len(cadres))
    cadre_load = pd.DataFrame({"cadre_id": cadre_ids, "township_id": c_town, "county_id": c_county,
                               "capacity": cd["capacity"], "assigned": load})
    n_t = len(towns)
    t_households = np.bincount(ht, minlength=n_t)
    t_capacity = np.bincount(ct, weights=cd["capacity"], minlength=n_t).astype(np.int64)
    t_unassigned = np.bincount(ht[~assigned], minlength=n_t)
    t_borrowed = np.bincount(ht[assigned & ~same_town], minlength=n_t)
    t_lent = np.bincount(ct[safe[assigned & ~same_town]], minlength=n_t)
    t_county = town_county.reindex(towns).to_numpy(dtype=object)
    first_h = pd.Series(h_county).groupby(ht).first()
    t_county = np.where(pd.isna(t_county), first_h.reindex(np.arange(n_t)).to_numpy(dtype=object), t_county)
    shortage = pd.DataFrame({
        "township_id": np.asarray(towns, dtype=object).astype(str),
        "county_id": np.where(pd.isna(t_county), "", t_county).astype(str),
        "households": t_households,
        "capacity": t_capacity,
        "deficit": np.maximum(t_households - t_capacity, 0),
        "served_from_other_townships": t_borrowed,
        "served_for_other_townships": t_lent,
        "unassigned": t_unassigned,
    }).sort_values("township_id", kind="stable").reset_index(drop=True)
    notes = []
    # the penalty makes 'fewest households without a cadre' come first: check it per county
    c_cap = np.bincount(cc[cc >= 0], weights=cd["capacity"][cc >= 0], minlength=len(counties))
    c_left = np.bincount(hc[~assigned], minlength=len(counties))
    least = np.maximum(np.bincount(hc, minlength=len(counties)) - c_cap, 0)
    if (c_left > least).any():
        notes.append(f"{int((c_left > least).sum())} county(ies) leave more households without a cadre than their "
                     "capacity forces: UNASSIGNED_KM is too small for these distances")
    spare = int(c_cap.sum()) - int(assigned.sum())
    if (~assigned).any() and spare > 0:
        notes.append(f"{int((~assigned).sum())} household(s) have no cadre because their county's capacity is short, "
                     f"while cadres of other counties have {spare} places left: the county rule, not the province's "
                     "capacity, leaves them without one (households_province_bound prices serving them across "
                     "county lines)")
    if idle.any():
        notes.append(f"{int(idle.sum())} cadre(s) of townships with no known county serve nobody")
    if not (cc >= 0).all():
        notes.append(f"{int((cc < 0).sum())} cadre(s) in counties without registered poor households serve nobody")
    rounds = [r["rounds"] for r in results]
    stats = {"supply_nodes": int(len(supply)), "counties": int(len(counties)),
             "arcs": int(sum(r["arcs"] for r in results)), "pricing_rounds_max": int(max(rounds, default=0)),
             "pricing_rounds_total": int(sum(rounds)),
             "counties_relaxation_solved": int(sum(r["relaxed_solved"] for r in results)), "workers": workers}
    return {"household_cadre": household_cadre, "shortage": shortage, "cadre_load": cadre_load,
            "objective": objective / 1000, "bound": bound / 1000, "province_bound": province_bound / 1000,
            "proven": proven, "notes": notes, "stats": stats, "n": n}


def _cross_county_metres(g_unit: np.ndarray, g_county: np.ndarray, c_unit: np.ndarray, c_county: np.ndarray
                         ) -> np.ndarray:
    """Per supply node, a lower bound (whole metres) on the cost of a cadre of another county:
    the distance to the nearest such cadre + OTHER_TOWNSHIP_KM (inf when there is none)."""
    from scipy.spatial import cKDTree

    G = len(g_unit)
    if len(c_unit) == 0 or G == 0:
        return np.full(G, np.inf)
    k = min(NEAREST_OTHER, len(c_unit))
    dist, idx = cKDTree(c_unit).query(g_unit, k=k)
    dist, idx = dist.reshape(G, k), idx.reshape(G, k)
    other = c_county[idx] != g_county[:, None]
    found = other.any(axis=1)
    nearest = dist[np.arange(G), np.argmax(other, axis=1)]
    # not among the k nearest: every other-county cadre is at least as far as the k-th (if any exist)
    exists = np.bincount(c_county, minlength=int(max(c_county.max(), g_county.max())) + 1)
    has_other = (len(c_county) - exists[g_county]) > 0
    chord = np.where(found, nearest, np.where(has_other, dist[:, -1], np.inf))
    metres = np.floor(2000.0 * EARTH_RADIUS_KM * np.arcsin(np.minimum(chord / 2, 1.0))) - 1.0
    return np.where(np.isfinite(metres), np.maximum(metres, 0.0) + round(OTHER_TOWNSHIP_KM * 1000), np.inf)


# --- poor villages to teams ----------------------------------------------------------------
def _check_team_inputs(villages: pd.DataFrame, teams: pd.DataFrame, town_county: pd.Series,
                       regions: pd.DataFrame | None, issues: IssueCollector) -> dict | None:
    """Validate poor villages and teams; the arrays the team problem needs, or None."""
    vfile = villages.attrs.get("file", "villages.csv")
    tfile = teams.attrs.get("file", "teams.csv")
    if "poor_village" in villages.columns:
        villages = villages[villages["poor_village"].to_numpy(dtype=bool)].reset_index(drop=True)
        villages.attrs["file"] = vfile
    ok = require_columns(issues, villages, vfile, ("village_id", "latitude", "longitude"))
    if ok and "county_id" not in villages.columns and "township_id" not in villages.columns:
        issues.add(vfile, "missing column", column="county_id", expected="a county_id (or township_id) column")
        ok = False
    ok &= require_columns(issues, teams, tfile, ("team_id", "home_county", "latitude", "longitude"))
    if not ok:
        return None
    flag_duplicates(issues, villages, vfile, "village_id")
    flag_duplicates(issues, teams, tfile, "team_id")
    flag_empty_ids(issues, teams, tfile, "team_id", ("team_id", "home_county"))
    v_lat = checked_numbers(issues, villages, vfile, "village_id", "latitude", -90, 90)
    v_lon = checked_numbers(issues, villages, vfile, "village_id", "longitude", -180, 180)
    t_lat = checked_numbers(issues, teams, tfile, "team_id", "latitude", -90, 90)
    t_lon = checked_numbers(issues, teams, tfile, "team_id", "longitude", -180, 180)
    if "size" in teams.columns:
        checked_numbers(issues, teams, tfile, "team_id", "size", 1, 1000, integer=True)
    check_teams(teams, issues, regions)
    if "county_id" in villages.columns:
        v_county = text_column(villages, "county_id")
    else:
        mapped = town_county.reindex(text_column(villages, "township_id"))
        report_rows(issues, vfile, villages, mapped.isna().to_numpy(), "village_id", "township_id",
                    "township with no known county", "a township of regions.csv or of the households")
        v_county = np.where(mapped.isna(), "", mapped.to_numpy(dtype=object)).astype(str)
    return {"villages": villages, "teams": teams, "v_lat": v_lat, "v_lon": v_lon, "t_lat": t_lat, "t_lon": t_lon,
            "v_county": v_county}


def _assign_teams(data: dict, deadline: float | None) -> dict:
    villages, teams = data["villages"], data["teams"]
    v_lat, v_lon, t_lat, t_lon, v_county = (data[k] for k in ("v_lat", "v_lon", "t_lat", "t_lon", "v_county"))
    t_county = text_column(teams, "home_county")
    v_unit, t_unit = unit_vectors(v_lat, v_lon), unit_vectors(t_lat, t_lon)
    county_m = round(TEAM_OTHER_COUNTY_KM * 1000)
    counties = pd.Index(np.unique(np.r_[v_county, t_county]))
    vc, tc = counties.get_indexer(v_county), counties.get_indexer(t_county)

    def cost_rows(a: int, b: int) -> np.ndarray:
        return metres_between(v_unit[a:b], t_unit) + county_m * (vc[a:b, None] != tc[None, :])

    unassigned = round(UNASSIGNED_KM * 1000)
    sol = solve_transport(cost_rows, np.ones(len(villages), dtype=np.int64), np.ones(len(teams), dtype=np.int64),
                     unassigned, TEAM_CANDIDATES, deadline)
    team_of = spread_flow(np.arange(len(villages)), sol.arc_g, sol.arc_j, sol.arc_flow)
    assigned = team_of >= 0
    safe = np.maximum(team_of, 0)
    team_ids = text_column(teams, "team_id")
    dept = text_column(teams, "department") if "department" in teams.columns else np.full(len(teams), "")
    village_team = pd.DataFrame({
        "village_id": text_column(villages, "village_id"),
        "county_id": v_county,
        "team_id": np.where(assigned, team_ids[safe], ""),
        "department": np.where(assigned, dept[safe], ""),
        "home_county": np.where(assigned, t_county[safe], ""),
        "distance_km": np.round(np.where(assigned, great_circle_km(v_lat, v_lon, t_lat[safe], t_lon[safe]), np.nan),
                                3),
        "same_county": assigned & (tc[safe] == vc),
    })
    n_c = len(counties)
    team_shortage = pd.DataFrame({
        "county_id": np.asarray(counties, dtype=object).astype(str),
        "poor_villages": np.bincount(vc, minlength=n_c),
        "home_teams": np.bincount(tc, minlength=n_c),
        "teams_from_other_counties": np.bincount(vc[assigned & (tc[safe] != vc)], minlength=n_c),
        "unassigned": np.bincount(vc[~assigned], minlength=n_c),
    })
    team_shortage["deficit"] = np.maximum(team_shortage["poor_villages"] - team_shortage["home_teams"], 0)
    stats = {"team_arcs": int(sol.arcs), "team_pricing_rounds": int(sol.rounds)}
    return {"village_team": village_team, "team_shortage": team_shortage, "objective": sol.objective / 1000,
            "bound": sol.bound / 1000, "proven": sol.proven, "stats": stats}


def _empty_teams() -> dict:
    return {"village_team": pd.DataFrame({c: pd.Series([], dtype=t) for c, t in (
        ("village_id", str), ("county_id", str), ("team_id", str), ("department", str), ("home_county", str),
        ("distance_km", float), ("same_county", bool))}),
        "team_shortage": pd.DataFrame({c: pd.Series([], dtype=t) for c, t in (
            ("county_id", str), ("poor_villages", np.int64), ("home_teams", np.int64),
            ("teams_from_other_counties", np.int64), ("unassigned", np.int64), ("deficit", np.int64))}),
        "objective": 0.0, "bound": 0.0, "proven": True, "stats": {}}


def assign_responsibility(households: pd.DataFrame, cadres: pd.DataFrame, villages: pd.DataFrame | None = None,
                          teams: pd.DataFrame | None = None, *, regions: pd.DataFrame | None = None,
                          candidates: int = CANDIDATES, time_limit: float | None = None,
                          workers: int | None = None, progress: ProgressCallback = quiet) -> Responsibility:
    """Give every household one responsible cadre and every poor village one work team.

    Parameters
    ----------
    households : DataFrame
        One row per registered poor household: household_id, township_id, county_id,
        latitude, longitude (the village's position is fine), and optionally main_cause
        (:data:`CAUSE_SKILLS`), category (the chosen package's category,
        :data:`CATEGORY_SKILLS`; empty for none) and village_id.
    cadres : DataFrame
        The ``cadres`` table: cadre_id, township_id, capacity, skills, latitude, longitude.
    villages : DataFrame, optional
        Villages with village_id, latitude, longitude and county_id (or township_id); only
        rows with ``poor_village`` true are used when that column exists.
    teams : DataFrame, optional
        The ``teams`` table: team_id, home_county, latitude, longitude (department, size).
    regions : DataFrame, optional
        The region tree: townships of cadres are checked against it and mapped to counties
        (without it, from the households' township_id → county_id pairs).
    candidates : int
        Initial arcs per supply node (the rest are priced in; the result does not depend on it).
    time_limit : float, optional
        Seconds after which pricing stops; the bound stays valid and ``status`` is
        ``feasible`` if some county was not proven optimal by then.
    workers : int, optional
        Processes solving counties in parallel (forked; default 1). The result is the same
        for any number.
    progress : callable, optional
        ``progress(phase, **facts)``: the counties solved so far (``done`` of ``of``).

    Raises
    ------
    InputError
        Listing every problem found in the inputs (file, row, id, column, expected, found).
    """
    start = time.perf_counter()
    deadline = None if time_limit is None else time.monotonic() + float(time_limit)
    if not (isinstance(candidates, int) and candidates >= 1):
        raise ValueError(f"candidates must be an integer >= 1 (got {candidates!r})")
    if workers is not None and not (isinstance(workers, int) and workers >= 1):
        raise ValueError(f"workers must be an integer >= 1 or None (got {workers!r})")
    issues = IssueCollector()
    hh = _check_households(households, issues)
    cd = _check_cadres_frame(cadres, issues, regions)
    if hh is not None:
        _check_household_counties(households, regions, issues)
    issues.raise_if_any()
    town_county = _township_county(households, villages, regions)
    team_data = None
    if villages is not None and teams is not None:
        team_data = _check_team_inputs(villages, teams, town_county, regions, issues)
        issues.raise_if_any()
    part = _assign_households(households, hh, cadres, cd, town_county, candidates, deadline, workers or 1,
                              progress)
    team_part = _assign_teams(team_data, deadline) if team_data is not None else _empty_teams()
    proven = part["proven"] and team_part["proven"]
    notes = list(part["notes"])
    notes.append("cadres serve households of their own county (county rule): counties solved apart; "
                 + ("every county proven optimal over all its household-cadre pairs by dual pricing" if part["proven"]
                    else "some counties stopped (time limit) before the dual bound met the objective"))
    if team_data is None:
        notes.append("no villages or teams given: work teams not assigned")
    elif not team_part["proven"]:
        notes.append("team assignment stopped (time limit) before the dual bound met the objective")
    return Responsibility(
        household_cadre=part["household_cadre"], shortage=part["shortage"], cadre_load=part["cadre_load"],
        village_team=team_part["village_team"], team_shortage=team_part["team_shortage"],
        households_objective=part["objective"], households_bound=part["bound"],
        households_province_bound=part["province_bound"], teams_objective=team_part["objective"],
        teams_bound=team_part["bound"], status=Status.OPTIMAL if proven else Status.FEASIBLE,
        seconds=time.perf_counter() - start, notes=notes, stats={**part["stats"], **team_part["stats"]})


def _check_household_counties(households: pd.DataFrame, regions: pd.DataFrame | None, issues: IssueCollector) -> None:
    """Each township lies in one county: the parent in ``regions`` when given, else one county_id per township."""
    file = households.attrs.get("file", "households.csv")
    town, county = text_column(households, "township_id"), text_column(households, "county_id")
    if regions is not None:
        towns = regions[regions["level"] == "township"]
        parent = pd.Series(towns["parent_id"].astype(str).to_numpy(), index=towns["region_id"].astype(str).to_numpy())
        expected = parent.reindex(town).to_numpy(dtype=object)
        unknown = pd.isna(expected)
        report_rows(issues, file, households, unknown, "household_id", "township_id",
                    "not a township of regions.csv", "the region_id of a region with level township")
        wrong = ~unknown & (np.where(unknown, "", expected).astype(str) != county)
        report_rows(issues, file, households, wrong, "household_id", "county_id",
                    "not the county of the household's township", "the parent_id of the township in regions.csv")
        return
    pairs = pd.DataFrame({"t": town, "c": county}).drop_duplicates()
    counts = pairs.groupby("t")["c"].nunique()
    for name in counts.index[counts > 1][:5]:
        issues.add(file, "township in more than one county", column="county_id", id=str(name),
                   expected="one county per township",
                   found=", ".join(sorted(pairs.loc[pairs["t"] == name, "c"].unique())))


# --- glue for the plan folder ------------------------------------------------------------
def assign_scenario(scenario: Scenario, plan: Plan | None = None, *, time_limit: float | None = None,
                    workers: int = 2, progress: ProgressCallback = quiet) -> Responsibility:
    """``allocator assign`` on a raw scenario: identify its poor, read its cadres (generated
    presets carry them) and teams (``teams`` beside the raw tables, else one drawn per poor
    village), and assign them; with ``plan``, its households carry their chosen packages."""
    progress("read raw tables and identify")
    raw = raw_tables(scenario)
    ident = identify_scenario(scenario, raw)
    folder = scenario.data_dir()
    cadres = raw["cadres"] if "cadres" in raw else read_cadres(folder, raw["regions"], scenario.encoding)
    seed = scenario.generate.seed if scenario.generate is not None else 0
    teams = (read_teams(folder, raw["regions"], scenario.encoding)
             if folder is not None and table_path(folder, "teams") is not None
             else generate_teams(ident.villages, raw["regions"], seed=seed))
    households = households_for_assignment(ident.cards, ident.villages, plan.households if plan is not None else None,
                                           registered=scenario.targeting.basis == "registry")
    progress("assign", households=len(households), cadres=len(cadres), teams=len(teams))
    return assign_responsibility(households, cadres, ident.villages, teams, regions=raw["regions"],
                                 time_limit=time_limit, workers=workers, progress=progress)


def households_for_assignment(cards: pd.DataFrame, villages: pd.DataFrame,
                              plan_households: pd.DataFrame | None = None, *, registered: bool = True
                              ) -> pd.DataFrame:
    """The households frame of :func:`assign_responsibility` from identification cards.

    ``cards`` (:func:`allocator.targeting.identify.identify`) give household_id, village_id,
    township_id, county_id and main_cause; rows with ``registered_poor`` (or, without it or
    with ``registered=False``, ``poor``) are kept. Coordinates are the village's.
    ``plan_households`` (a plan's households.csv) adds the chosen package's category.
    """
    flag = "registered_poor" if registered and "registered_poor" in cards.columns else "poor"
    keep = cards[cards[flag].to_numpy(dtype=bool)] if flag in cards.columns else cards
    pos = pd.Index(villages["village_id"]).get_indexer(keep["village_id"])
    lat = villages["latitude"].to_numpy(dtype=float)
    lon = villages["longitude"].to_numpy(dtype=float)
    frame = pd.DataFrame({
        "household_id": keep["household_id"].to_numpy(),
        "village_id": keep["village_id"].to_numpy(),
        "township_id": keep["township_id"].to_numpy(),
        "county_id": keep["county_id"].to_numpy(),
        "main_cause": keep["main_cause"].to_numpy() if "main_cause" in keep.columns else "",
        "latitude": np.where(pos >= 0, lat[np.maximum(pos, 0)], np.nan),
        "longitude": np.where(pos >= 0, lon[np.maximum(pos, 0)], np.nan),
    })
    if plan_households is not None and "category" in plan_households.columns:
        category = plan_households.drop_duplicates("household_id").set_index("household_id")["category"]
        frame["category"] = category.reindex(frame["household_id"]).fillna("").astype(str).to_numpy()
    return frame


def fill_responsible_cadres(plan_households: pd.DataFrame, result: Responsibility) -> pd.DataFrame:
    """A copy of a plan's households table with ``responsible_cadre_id`` filled ('' for none)."""
    cadre = result.household_cadre.set_index("household_id")["responsible_cadre_id"]
    out = plan_households.copy()
    out["responsible_cadre_id"] = cadre.reindex(out["household_id"].astype(str)).fillna("").to_numpy()
    return out


def teams_table(result: Responsibility) -> pd.DataFrame:
    """The plan folder's ``teams.csv``: one row per poor village and its work team ('' for none)."""
    return result.village_team.copy()


__all__ = ["NEAREST_OTHER", "Responsibility", "assign_households", "assign_responsibility", "assign_scenario",
           "fill_responsible_cadres", "households_for_assignment", "teams_table"]
