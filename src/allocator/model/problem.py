"""The canonical problem as integer-coded numpy arrays, built from validated tables.

Only registered poor households (and their packages) enter the model. Every entity gets
a dense integer index; relations are index arrays, so the formulation is pure numpy.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from allocator.inputs.checks import check_tables, county_of_regions
from allocator.inputs.scenario import Policy
from allocator.inputs.tables import ANY, CATEGORIES, complete_tables, split_list

CATEGORY_INDEX = {name: i for i, name in enumerate(CATEGORIES)}


KEEP_ANY_YEAR = -2  # a planned decision kept whatever its start year (its planned year is past)


@dataclass
class Keep:
    """A re-plan's stability option: a column that keeps its planned decision earns ``weight``
    (lambda). Per package and per project, the planned start-year index: -1 not planned,
    KEEP_ANY_YEAR any year (see :func:`allocator.model.formulation.keep_bonus`)."""

    weight: float
    package_year: np.ndarray
    project_year: np.ndarray


@dataclass
class Problem:
    """Integer-coded arrays of one scenario; ``tables`` keeps the validated inputs."""

    name: str
    years: np.ndarray  # the calendar years start..deadline
    policy: Policy
    tables: dict[str, pd.DataFrame]
    # counties holding registered poor households
    county_ids: np.ndarray
    county_rural_population: np.ndarray
    county_threshold: np.ndarray
    county_western: np.ndarray
    county_hat_off: np.ndarray  # year index from whose end on the county's exit rule holds
    # townships (all townships of those counties)
    township_ids: np.ndarray
    township_county: np.ndarray
    # villages
    village_ids: np.ndarray
    village_township: np.ndarray
    village_county: np.ndarray
    # registered poor households
    household_ids: np.ndarray
    household_village: np.ndarray
    household_baseline: np.ndarray
    # their packages; requirements as CSR (pkg_req_ptr, pkg_req_project)
    pkg_household: np.ndarray
    pkg_ids: np.ndarray
    pkg_category: np.ndarray
    pkg_cost: np.ndarray
    pkg_hours: np.ndarray
    pkg_exit: np.ndarray
    pkg_sustained: np.ndarray  # exit by the deadline and no return through policy.sustain_years
    pkg_lag: np.ndarray
    pkg_req_ptr: np.ndarray
    pkg_req_project: np.ndarray
    # projects in villages of those counties
    proj_village: np.ndarray
    proj_ids: np.ndarray
    proj_category: np.ndarray
    proj_cost: np.ndarray
    proj_duration: np.ndarray
    proj_mandatory: np.ndarray
    # fund rows: one per (source, year); eligibility as boolean masks
    source_ids: np.ndarray
    source_carry_over: np.ndarray
    source_recall_years: np.ndarray  # carried money is recalled after this many years (-1: never)
    fund_source: np.ndarray
    fund_year: np.ndarray  # index into years
    fund_amount: np.ndarray
    fund_category_ok: np.ndarray  # (funds, categories)
    fund_county_ok: np.ndarray  # (funds, counties)
    fund_min_spend: np.ndarray  # pace: cumulative spend of the source through the year >= this x amount
    # personnel rows on counties or townships
    pers_is_county: np.ndarray
    pers_region: np.ndarray  # county index or township index
    pers_year: np.ndarray
    pers_hours: np.ndarray
    # annual targets: per target its region ('' = the whole scenario), year index, largest
    # share still poor, and which counties it covers (targets x counties)
    target_region: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=object))
    target_year: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    target_share: np.ndarray = field(default_factory=lambda: np.zeros(0))
    target_county_ok: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=bool))
    pkg_practice: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))  # the standard package
    keep: Keep | None = None  # a re-plan's stability option (allocator.manage.replan), or none
    # each registered household's chance to be truly poor (households.poverty_probability,
    # empty or absent: 1); the objective weight is this with policy.targeting_weights, else 1
    household_poverty: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @property
    def household_weight(self) -> np.ndarray:
        """Each household's weight in the objective: its poverty probability q when
        ``policy.targeting_weights`` is on, else 1 (the registry taken as certain)."""
        if self.policy.targeting_weights and len(self.household_poverty) == len(self.household_ids):
            return self.household_poverty
        return np.ones(len(self.household_ids))

    @property
    def start_year(self) -> int:
        return int(self.years[0])

    @property
    def deadline_year(self) -> int:
        return int(self.years[-1])

    @property
    def household_county(self) -> np.ndarray:
        return self.village_county[self.household_village]

    @property
    def household_township(self) -> np.ndarray:
        return self.village_township[self.household_village]

    @property
    def proj_county(self) -> np.ndarray:
        return self.village_county[self.proj_village]

    @property
    def county_registered_poor(self) -> np.ndarray:
        return np.bincount(self.household_county, minlength=len(self.county_ids))

    @property
    def county_baseline_exits(self) -> np.ndarray:
        return np.bincount(self.household_county, weights=self.household_baseline,
                           minlength=len(self.county_ids))

    def baseline_at(self, t: int | np.ndarray) -> np.ndarray:
        """Each household's chance to be out of poverty at the end of year index ``t`` with no
        package (:meth:`baseline_of` for all households); with ``t`` an array, one row per entry."""
        t = np.asarray(t)
        return self.baseline_of(np.arange(len(self.household_ids)), t[..., None] if t.ndim else t)

    def baseline_of(self, households: np.ndarray, t: int | np.ndarray) -> np.ndarray:
        """The baseline chance of ``households`` to be out at the end of year index ``t`` (broadcast):
        ``baseline_exit_probability`` is reached at the deadline at a constant yearly rate,
        1 - (1 - b)^((t + 1) / T)."""
        b = self.household_baseline[households]
        return 1.0 - np.power(1.0 - b, (np.asarray(t, dtype=float) + 1.0) / len(self.years))

    def target_households(self, k: int) -> np.ndarray:
        """Mask of the registered poor households target ``k`` covers."""
        return self.target_county_ok[k][self.household_county]

    def sizes(self) -> dict[str, int]:
        """Entity counts, for progress messages and the run manifest."""
        return {
            "counties": len(self.county_ids), "townships": len(self.township_ids),
            "villages": len(self.village_ids), "households": len(self.household_ids),
            "packages": len(self.pkg_ids), "projects": len(self.proj_ids),
            "fund_rows": len(self.fund_amount), "personnel_rows": len(self.pers_hours),
            "targets": len(self.target_year), "years": len(self.years),
        }


def _codes(values: pd.Series | np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Index of each value in ``ids`` (-1 where absent)."""
    return pd.Index(ids).get_indexer(pd.Series(values).to_numpy())


def _ancestors(regions: pd.DataFrame) -> dict[str, set[str]]:
    """Each region's set of ancestors including itself."""
    parent_of = dict(zip(regions["region_id"], regions["parent_id"], strict=True))
    result = {}
    for region in regions["region_id"]:
        chain, node = {region}, parent_of.get(region, "")
        while node and node not in chain:
            chain.add(node)
            node = parent_of.get(node, "")
        result[region] = chain
    return result


def build_problem(tables: dict[str, pd.DataFrame], *, name: str, start_year: int, deadline_year: int,
                  policy: Policy | None = None, validate: bool = True) -> Problem:
    """Validate the tables across each other and code them as arrays."""
    years = np.arange(start_year, deadline_year + 1)
    policy = policy or Policy()
    if validate:
        check_tables(tables, years.tolist(), policy=policy)
    tables = complete_tables(tables)
    regions, villages, households = tables["regions"], tables["villages"], tables["households"]
    packages, projects, funds, personnel = (tables[n] for n in ("packages", "projects", "funds", "personnel"))

    county_of = county_of_regions(regions)
    village_county_id = villages["township_id"].map(county_of).to_numpy()
    poor = households[households["registered_poor"].to_numpy()].reset_index(drop=True)
    hh_village_all = _codes(poor["village_id"], villages["village_id"].to_numpy())
    mandatory_villages = villages["village_id"].isin(projects.loc[projects["mandatory"], "village_id"]).to_numpy()
    # counties in the model: those with registered poor households or with mandatory projects
    poor_county_ids = set(village_county_id[hh_village_all]) | set(village_county_id[mandatory_villages])

    county_rows = regions[(regions["level"] == "county") & regions["region_id"].isin(poor_county_ids)]
    county_rows = county_rows.sort_values("region_id", kind="stable")
    county_ids = county_rows["region_id"].to_numpy(dtype=object)
    western = county_rows["western"].to_numpy(dtype=bool)
    thresholds = np.where(western, policy.county_exit_threshold.western, policy.county_exit_threshold.default)
    hat_off = county_rows["hat_off_year"].fillna(deadline_year).to_numpy(dtype=np.int64) - start_year

    in_model = regions["region_id"].map(county_of).isin(poor_county_ids)
    township_rows = regions[(regions["level"] == "township") & in_model]
    township_ids = township_rows["region_id"].to_numpy(dtype=object)
    township_county = _codes(township_rows["region_id"].map(county_of), county_ids)

    keep_village = pd.Series(village_county_id).isin(poor_county_ids).to_numpy()
    village_rows = villages[keep_village]
    village_ids = village_rows["village_id"].to_numpy(dtype=object)
    village_township = _codes(village_rows["township_id"], township_ids)
    village_county = township_county[village_township]

    household_village = _codes(poor["village_id"], village_ids)
    household_ids = poor["household_id"].to_numpy(dtype=object)

    proj_rows = projects[projects["village_id"].isin(village_ids)].reset_index(drop=True)
    proj_village = _codes(proj_rows["village_id"], village_ids)
    proj_key = pd.MultiIndex.from_arrays([proj_rows["village_id"], proj_rows["project_id"]])

    pkg_household_all = _codes(packages["household_id"], household_ids)
    pkg_rows = packages[pkg_household_all >= 0].reset_index(drop=True)
    pkg_household = pkg_household_all[pkg_household_all >= 0]
    req_lists = pkg_rows["requires"].map(split_list)
    req_counts = req_lists.map(len).to_numpy()
    req_ptr = np.concatenate([[0], np.cumsum(req_counts)]).astype(np.int64)
    flat = req_lists.explode().dropna()
    flat_village = village_ids[household_village[pkg_household[flat.index.to_numpy()]]]
    req_project = proj_key.get_indexer(pd.MultiIndex.from_arrays([flat_village, flat.to_numpy()]))

    source_ids = np.array(sorted(funds["source_id"].unique()), dtype=object)
    fund_source = _codes(funds["source_id"], source_ids)
    carry = np.zeros(len(source_ids), dtype=bool)
    carry[fund_source] = funds["carry_over"].to_numpy(dtype=bool)
    recall = np.full(len(source_ids), -1, dtype=np.int64)
    recall[fund_source] = funds["carry_over_years"].fillna(-1).to_numpy(dtype=np.int64)
    recall = np.where(carry, recall, -1)
    cat_ok = np.zeros((len(funds), len(CATEGORIES)), dtype=bool)
    county_ok = np.zeros((len(funds), len(county_ids)), dtype=bool)
    ancestors = _ancestors(regions)
    county_ancestors = [ancestors[c] for c in county_ids]
    for i, (cats, regs) in enumerate(zip(funds["categories"], funds["regions"], strict=True)):
        cat_items = split_list(cats)
        cat_ok[i] = True if ANY in cat_items else [c in cat_items for c in CATEGORIES]
        reg_items = set(split_list(regs))
        county_ok[i] = True if ANY in reg_items else [bool(a & reg_items) for a in county_ancestors]

    target_region, target_year, target_share, target_ok = _targets(tables["targets"], policy, regions, county_ids,
                                                                    ancestors, start_year)

    pers_county = _codes(personnel["region_id"], county_ids)
    pers_township = _codes(personnel["region_id"], township_ids)
    pers_is_county = pers_county >= 0
    keep_pers = pers_is_county | (pers_township >= 0)

    return Problem(
        name=name, years=years, policy=policy, tables=tables,
        county_ids=county_ids,
        county_rural_population=county_rows["rural_population"].to_numpy(dtype=float),
        county_threshold=thresholds, county_western=western, county_hat_off=hat_off,
        township_ids=township_ids, township_county=township_county,
        village_ids=village_ids, village_township=village_township, village_county=village_county,
        household_ids=household_ids, household_village=household_village,
        household_baseline=poor["baseline_exit_probability"].to_numpy(dtype=float),
        pkg_household=pkg_household, pkg_ids=pkg_rows["package_id"].to_numpy(dtype=object),
        pkg_category=pkg_rows["category"].map(CATEGORY_INDEX).to_numpy(dtype=np.int64),
        pkg_cost=pkg_rows["cost"].to_numpy(dtype=float),
        pkg_hours=pkg_rows["personnel_hours"].to_numpy(dtype=float),
        pkg_exit=pkg_rows["exit_probability"].to_numpy(dtype=float),
        pkg_sustained=pkg_rows["sustained_probability"].fillna(pkg_rows["exit_probability"]).to_numpy(dtype=float),
        pkg_lag=pkg_rows["lag_years"].to_numpy(dtype=np.int64),
        pkg_req_ptr=req_ptr, pkg_req_project=req_project.astype(np.int64),
        proj_village=proj_village, proj_ids=proj_rows["project_id"].to_numpy(dtype=object),
        proj_category=proj_rows["category"].map(CATEGORY_INDEX).to_numpy(dtype=np.int64),
        proj_cost=proj_rows["cost"].to_numpy(dtype=float),
        proj_duration=proj_rows["duration_years"].to_numpy(dtype=np.int64),
        proj_mandatory=proj_rows["mandatory"].to_numpy(dtype=bool),
        source_ids=source_ids, source_carry_over=carry, source_recall_years=recall, fund_source=fund_source,
        fund_year=(funds["year"].to_numpy() - start_year).astype(np.int64),
        fund_amount=funds["amount"].to_numpy(dtype=float),
        fund_category_ok=cat_ok, fund_county_ok=county_ok,
        fund_min_spend=funds["min_spend_share"].fillna(0.0).to_numpy(dtype=float),
        pers_is_county=pers_is_county[keep_pers],
        pers_region=np.where(pers_is_county, pers_county, pers_township)[keep_pers],
        pers_year=(personnel["year"].to_numpy() - start_year)[keep_pers].astype(np.int64),
        pers_hours=personnel["hours"].to_numpy(dtype=float)[keep_pers],
        target_region=target_region, target_year=target_year, target_share=target_share,
        target_county_ok=target_ok, pkg_practice=pkg_rows["practice"].to_numpy(dtype=bool),
        household_poverty=poverty_probability(poor),
    )


def poverty_probability(households: pd.DataFrame) -> np.ndarray:
    """The ``poverty_probability`` column of ``households`` with empty cells (or no column) as 1."""
    if "poverty_probability" not in households.columns:
        return np.ones(len(households))
    return pd.to_numeric(households["poverty_probability"], errors="coerce").fillna(1.0).to_numpy(dtype=float)


def _targets(targets: pd.DataFrame, policy: Policy, regions: pd.DataFrame, county_ids: np.ndarray,
             ancestors: dict[str, set[str]], start_year: int) -> tuple[np.ndarray, ...]:
    """The annual targets as arrays: the table's rows, with ``policy.annual_targets`` replacing
    its scenario-wide ones (region ''); a region covers the counties in its subtree."""
    rows = targets[["region_id", "year", "max_poor_share"]]
    if policy.annual_targets:
        rows = pd.concat([rows[rows["region_id"] != ""],
                          pd.DataFrame({"region_id": "", "year": list(policy.annual_targets),
                                        "max_poor_share": list(policy.annual_targets.values())})])
    rows = rows.sort_values(["region_id", "year"], kind="stable")
    region = rows["region_id"].to_numpy(dtype=object)
    ok = np.array([[r == "" or r in ancestors[c] for c in county_ids] for r in region], dtype=bool)
    ok = ok.reshape(len(region), len(county_ids))
    covers = ok.any(axis=1)  # a target on a region without registered poor constrains nothing
    return (region[covers], (rows["year"].to_numpy(dtype=np.int64) - start_year)[covers],
            rows["max_poor_share"].to_numpy(dtype=float)[covers], ok[covers])
