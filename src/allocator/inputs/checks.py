"""Cross-table rules of the canonical problem, each a named ``check_*`` function.

Every check adds its findings to one :class:`IssueCollector`, naming the file, the row,
the id and the column, so a planner sees all problems of a data folder at once.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from allocator.errors import IssueCollector
from allocator.inputs.tables import (
    ANY,
    CATEGORIES,
    LEVELS,
    LIST_SEPARATOR,
    complete_tables,
    file_of,
    first_row,
    split_list,
)

LEVEL_RANK = {level: rank for rank, level in enumerate(LEVELS)}


def report_rows(issues: IssueCollector, file: str, frame: pd.DataFrame, mask, ids: str | tuple | pd.Series | None,
                column: str, message: str, expected: str, found: pd.Series | np.ndarray | None = None) -> None:
    """One issue per row of ``frame`` flagged in ``mask``, at its row (its index + 1: the data row
    of a CSV; index + 2 in a sheet, its own row number, :func:`allocator.inputs.tables.first_row`),
    in the frame's own file when it names one (``attrs["file"]``, ``FILE[SHEET]`` for a sheet).
    ``ids``: the id column, a tuple of them (joined by " / "), the ids themselves, or None (a
    table whose id column is missing); ``found``: the values shown (default: the ``column`` cells).
    Every table check of every stage reports through here."""
    file, first = frame.attrs.get("file", file), first_row(frame)
    flagged = np.flatnonzero(np.asarray(mask))
    if not len(flagged):
        return
    values = frame[column] if found is None else found
    if isinstance(ids, str):
        ids = (ids,) if ids in frame.columns else None
    for pos in flagged:  # only the flagged rows are read: a large table's check stays cheap
        if issues.full:
            issues.truncated = True
            return
        value = values.iloc[pos] if isinstance(values, pd.Series) else values[pos]
        shown = repr(value.item() if isinstance(value, np.generic) else value)
        name = (" / ".join(str(frame[c].iloc[pos]) for c in ids) if isinstance(ids, tuple)
                else None if ids is None else str(ids.iloc[pos] if isinstance(ids, pd.Series) else ids[pos]))
        issues.add(file, message, row=int(frame.index[pos]) + first, id=name, column=column, expected=expected,
                   found=shown)


def _lookup(frame: pd.DataFrame, key: str, value: str) -> pd.Series:
    """``value`` by ``key`` (first row of each key), usable for ``map`` even with duplicate ids."""
    return frame.drop_duplicates(key).set_index(key)[value]


def check_region_tree(regions: pd.DataFrame, issues: IssueCollector) -> None:
    """Parents exist, levels descend (province > prefecture > county > township), no cycle."""
    ids = set(regions["region_id"])
    parent = regions["parent_id"]
    has_parent = parent != ""
    unknown = has_parent & ~parent.isin(ids)
    report_rows(issues, "regions.csv", regions, unknown, "region_id", "parent_id",
                "parent region does not exist", "a region_id of regions.csv or empty at the root")
    if not (~has_parent).any():
        issues.add(file_of(regions, "regions"), "no root region", column="parent_id",
                   expected="one region (the province) with an empty parent_id")
    parent_of = dict(zip(regions["region_id"], parent, strict=True))
    in_cycle: set[str] = set()
    for start in regions["region_id"]:
        seen = []
        node = start
        while node in parent_of and parent_of[node] != "" and node not in seen and node not in in_cycle:
            seen.append(node)
            node = parent_of[node]
        if node in seen:
            cycle = seen[seen.index(node):]
            in_cycle.update(cycle)
            issues.add(file_of(regions, "regions"), "cycle in the region tree: " + " -> ".join(cycle + [node]),
                       id=start, column="parent_id", expected="a tree (each parent above its child)")
    level_of = dict(zip(regions["region_id"], regions["level"], strict=True))
    rank = regions["level"].map(LEVEL_RANK)
    parent_rank = parent.map(lambda p: LEVEL_RANK.get(level_of.get(p, ""), -1))
    bad_order = has_parent & ~unknown & (parent_rank >= rank) & ~regions["region_id"].isin(in_cycle)
    report_rows(issues, "regions.csv", regions, bad_order, "region_id", "parent_id",
                "parent is not at a higher level",
                "a parent above the region (province > prefecture > county > township)",
                found=parent.map(lambda p: f"{p} ({level_of.get(p)})"))


def county_of_regions(regions: pd.DataFrame) -> pd.Series:
    """Map each region_id to its county ancestor (itself for a county; '' when none)."""
    parent_of = dict(zip(regions["region_id"], regions["parent_id"], strict=True))
    level_of = dict(zip(regions["region_id"], regions["level"], strict=True))
    county = {}
    for region in regions["region_id"]:
        node, steps = region, 0
        while node and level_of.get(node) != "county" and steps <= len(LEVELS):
            node, steps = parent_of.get(node, ""), steps + 1
        county[region] = node if level_of.get(node) == "county" else ""
    return pd.Series(county, dtype=str)


def check_regions_used(tables: dict[str, pd.DataFrame], issues: IssueCollector) -> None:
    """Villages sit in townships under a county; counties with poor households have a population."""
    regions, villages = tables["regions"], tables["villages"]
    level_of = _lookup(regions, "region_id", "level")
    township_level = villages["township_id"].map(level_of)
    missing = township_level.isna()
    report_rows(issues, "villages.csv", villages, missing, "village_id", "township_id",
                "township does not exist", "a region_id of regions.csv with level township")
    wrong = ~missing & (township_level != "township")
    report_rows(issues, "villages.csv", villages, wrong, "village_id", "township_id",
                "region is not a township", "a region with level township", found=township_level)
    county_of = county_of_regions(regions)
    townships = regions[regions["level"] == "township"]
    orphan = townships["region_id"].map(county_of) == ""
    report_rows(issues, "regions.csv", townships, orphan, "region_id", "parent_id",
                "township is not under any county", "a county among its ancestors")


def check_households_and_packages(tables: dict[str, pd.DataFrame], issues: IssueCollector) -> None:
    """Households are in known villages; packages belong to known households and require
    projects that exist in the household's own village."""
    villages, households = tables["villages"], tables["households"]
    packages, projects = tables["packages"], tables["projects"]
    unknown_village = ~households["village_id"].isin(villages["village_id"])
    report_rows(issues, "households.csv", households, unknown_village, "household_id", "village_id",
                "village does not exist", "a village_id of villages.csv")
    village_of = _lookup(households, "household_id", "village_id")
    pkg_village = packages["household_id"].map(village_of)
    unknown_household = pkg_village.isna()
    report_rows(issues, "packages.csv", packages, unknown_household, ("household_id", "package_id"),
                "household_id", "household does not exist", "a household_id of households.csv")
    unknown_project_village = ~projects["village_id"].isin(villages["village_id"])
    report_rows(issues, "projects.csv", projects, unknown_project_village, ("village_id", "project_id"),
                "village_id", "village does not exist", "a village_id of villages.csv")
    with_req = packages[(packages["requires"] != "") & ~unknown_household]
    if with_req.empty:
        return
    items = with_req["requires"].map(split_list).explode()
    needed = pd.DataFrame({"village_id": pkg_village.loc[items.index].to_numpy(),
                           "project_id": items.to_numpy(), "row": items.index.to_numpy()})
    known = pd.MultiIndex.from_frame(projects[["village_id", "project_id"]])
    absent = ~pd.MultiIndex.from_frame(needed[["village_id", "project_id"]]).isin(known)
    for village, project, row in needed[absent].itertuples(index=False):
        if issues.full:
            issues.truncated = True
            return
        pkg = packages.loc[row]
        issues.add(file_of(packages, "packages"), f"requires project '{project}' which village {village} does not have",
                   row=int(packages.index.get_loc(row)) + first_row(packages),
                   id=f"{pkg['household_id']} / {pkg['package_id']}",
                   column="requires", expected=f"project_ids of projects.csv in village {village}",
                   found=repr(pkg["requires"]))


def check_years(tables: dict[str, pd.DataFrame], years: list[int], issues: IssueCollector) -> None:
    """Fund and personnel years lie within start_year..deadline_year."""
    for name, id_cols in (("funds", ("source_id", "year")), ("personnel", ("region_id", "year"))):
        frame = tables[name]
        outside = ~frame["year"].isin(years)
        report_rows(issues, f"{name}.csv", frame, outside, id_cols, "year", "year outside the scenario",
                    f"a year in {years[0]}..{years[-1]}")


def check_funds(tables: dict[str, pd.DataFrame], issues: IssueCollector) -> None:
    """Fund categories and regions exist; carry_over is the same on every row of a source."""
    funds, regions = tables["funds"], tables["regions"]
    region_ids = set(regions["region_id"])
    level_of = dict(zip(regions["region_id"], regions["level"], strict=True))
    for column, allowed, what in (("categories", set(CATEGORIES), "categories"),
                                  ("regions", region_ids, "region_ids of regions.csv")):
        items = funds[column].map(split_list)
        bad = items.map(lambda xs, ok=allowed: [x for x in xs if x != ANY and x not in ok])
        report_rows(issues, "funds.csv", funds, bad.map(bool), ("source_id", "year"), column,
                    f"unknown {column[:-1] if column == 'regions' else 'category'}",
                    f"'{ANY}' or {', '.join(sorted(allowed)) if column == 'categories' else what}", found=bad)
        if column == "regions":
            townships = items.map(lambda xs: [x for x in xs if level_of.get(x) == "township"])
            report_rows(issues, "funds.csv", funds, townships.map(bool), ("source_id", "year"), column,
                        "funds are spent per county: a township cannot receive a fund",
                        "'*' or ids of counties or higher regions", found=townships)
        empty = items.map(len) == 0
        report_rows(issues, "funds.csv", funds, empty, ("source_id", "year"), column, "empty list",
                    f"'{ANY}' or a '{';'}'-separated list")
    mixed = funds.groupby("source_id")["carry_over"].transform("nunique") > 1
    report_rows(issues, "funds.csv", funds, mixed, ("source_id", "year"), "carry_over",
                "carry_over differs between rows of the same source", "one value per source")


def check_schedule(tables: dict[str, pd.DataFrame], years: list[int], issues: IssueCollector) -> None:
    """The schedule's cells: hat-off years on counties within the horizon, targets on known
    regions and years, sustained probabilities not above exit probabilities, recall years
    only on carried-over sources and the same on every row of a source."""
    regions, targets, packages, funds = (tables[n] for n in ("regions", "targets", "packages", "funds"))
    horizon = f"a year in {years[0]}..{years[-1]}, or empty (the deadline)"
    given = regions["hat_off_year"].notna()
    report_rows(issues, "regions.csv", regions, given & (regions["level"] != "county"), "region_id", "hat_off_year",
                "only a county takes off its hat", "empty for regions other than counties")
    report_rows(issues, "regions.csv", regions, given & ~regions["hat_off_year"].fillna(years[-1]).isin(years),
                "region_id", "hat_off_year", "hat-off year outside the scenario", horizon)
    unknown = (targets["region_id"] != "") & ~targets["region_id"].isin(regions["region_id"])
    report_rows(issues, "targets.csv", targets, unknown, ("region_id", "year"), "region_id",
                "region does not exist", "a region_id of regions.csv, or empty for the whole scenario")
    report_rows(issues, "targets.csv", targets, ~targets["year"].isin(years), ("region_id", "year"), "year",
                "year outside the scenario", f"a year in {years[0]}..{years[-1]}")
    sustained = packages["sustained_probability"]
    report_rows(issues, "packages.csv", packages,
                sustained.notna() & (sustained > packages["exit_probability"] + 1e-12), ("household_id", "package_id"),
                "sustained_probability", "a sustained exit is an exit: it cannot be likelier",
                "a number <= exit_probability")
    recall = funds["carry_over_years"].notna()
    report_rows(issues, "funds.csv", funds, recall & ~funds["carry_over"], ("source_id", "year"), "carry_over_years",
                "money that is not carried over cannot be recalled later", "empty, or carry_over true")
    mixed = funds.groupby("source_id")["carry_over_years"].transform("nunique") > 1
    report_rows(issues, "funds.csv", funds, mixed, ("source_id", "year"), "carry_over_years",
                "carry_over_years differs between rows of the same source", "one value per source")


def check_cost_split(packages: pd.DataFrame, issues: IssueCollector) -> None:
    """``cost_by_category`` (descriptive) is ``category:yuan;...`` over known categories, each
    amount >= 0, adding up to the package's cost (to a yuan per part, as it is rounded)."""
    given = packages["cost_by_category"].fillna("")
    given = given[given != ""]
    if given.empty:
        return
    items = given.str.split(LIST_SEPARATOR).explode().str.strip()
    items = items[items != ""]
    parts = items.str.split(":", n=1)
    category = parts.str[0].str.strip()
    amount = pd.to_numeric(parts.str[1], errors="coerce")
    bad_item = ~category.isin(CATEGORIES) | amount.isna() | (amount < 0)
    total = amount.where(~bad_item, 0.0).groupby(level=0).sum()
    counts = items.groupby(level=0).size()
    cost = packages.loc[total.index, "cost"]
    off = (total - cost).abs() > np.maximum(counts.astype(float), 1e-6 * cost)
    wrong = pd.Series(False, index=packages.index)
    wrong[bad_item[bad_item].index.unique()] = True
    wrong[off[off].index] = True
    report_rows(issues, "packages.csv", packages, wrong.to_numpy(), ("household_id", "package_id"), "cost_by_category",
                "the cost split does not read or does not add up to the cost",
                f"category:yuan;... with categories of {', '.join(CATEGORIES)}, adding up to cost")


def check_policy(tables: dict[str, pd.DataFrame], policy, file: str, issues: IssueCollector) -> None:
    """Policy keys that name sources must name sources of the funds table, and county floors
    of one source must leave room for one another (their sum over the counties it may pay <= 1)."""
    sources = set(tables["funds"]["source_id"])
    for key in ("min_source_category_share", "max_source_category_share", "county_floor_share"):
        for source in getattr(policy, key):
            if source not in sources:
                issues.add(file, "unknown source", key=f"policy.{key}.{source}",
                           expected="a source_id of funds.csv: " + ", ".join(sorted(sources)), found=repr(source))
    if not policy.county_floor_share:
        return
    regions, funds = tables["regions"], tables["funds"]
    county_of = county_of_regions(regions)
    village_county = _lookup(tables["villages"], "village_id", "township_id").map(county_of)
    households = tables["households"]
    poor_counties = sorted(set(households.loc[households["registered_poor"].to_numpy(), "village_id"]
                               .map(village_county).dropna()))
    parent_of = dict(zip(regions["region_id"], regions["parent_id"], strict=True))

    def ancestors(region: str) -> set[str]:
        chain = {region}
        while parent_of.get(region, "") and parent_of[region] not in chain:
            region = parent_of[region]
            chain.add(region)
        return chain

    chains = {c: ancestors(c) for c in poor_counties}
    for source, share in policy.county_floor_share.items():
        reach = funds.loc[funds["source_id"] == source, "regions"].map(split_list)
        scopes = set().union(*reach) if len(reach) else set()
        eligible = [c for c in poor_counties if ANY in scopes or chains[c] & scopes]
        if share * len(eligible) > 1 + 1e-9:
            issues.add(file, "county floors add up to more than the whole source",
                       key=f"policy.county_floor_share.{source}",
                       expected=f"a share <= 1/{len(eligible)} ({len(eligible)} counties it may pay)",
                       found=repr(share))


def check_personnel(tables: dict[str, pd.DataFrame], issues: IssueCollector) -> None:
    """Personnel rows name a county or a township."""
    personnel = tables["personnel"]
    level = personnel["region_id"].map(_lookup(tables["regions"], "region_id", "level"))
    bad = ~level.isin(["county", "township"])
    report_rows(issues, "personnel.csv", personnel, bad, ("region_id", "year"), "region_id",
                "not a county or township of regions.csv", "a region_id with level county or township")


def check_not_empty(tables: dict[str, pd.DataFrame], issues: IssueCollector) -> None:
    """There is something to plan: at least one registered poor household."""
    if not tables["households"]["registered_poor"].any():
        issues.add(file_of(tables["households"], "households"), "empty problem: no registered poor household",
                   column="registered_poor",
                   expected="at least one household with registered_poor true")


def check_county_population(tables: dict[str, pd.DataFrame], county_of_household: pd.Series,
                            issues: IssueCollector) -> None:
    """Every county with registered poor households has a rural population to measure incidence."""
    regions = tables["regions"]
    households = tables["households"]
    poor_counties = set(county_of_household[households["registered_poor"].to_numpy()])
    counties = regions[regions["level"] == "county"]
    bad = counties["region_id"].isin(poor_counties) & (counties["rural_population"] <= 0)
    report_rows(issues, "regions.csv", counties, bad, "region_id", "rural_population",
                "county with registered poor households has no rural population", "an integer > 0")


def check_tables(tables: dict[str, pd.DataFrame], years: list[int], issues: IssueCollector | None = None,
                 policy=None, scenario_file: str = "scenario") -> None:
    """Run every cross-table rule, and with ``policy`` the policy's rules on the tables; raise
    one InputError listing all problems found (with those already in ``issues``, e.g. from
    reading the tables)."""
    issues = issues or IssueCollector()
    tables = complete_tables(tables)
    check_region_tree(tables["regions"], issues)
    check_regions_used(tables, issues)
    check_households_and_packages(tables, issues)
    check_years(tables, years, issues)
    check_funds(tables, issues)
    check_personnel(tables, issues)
    check_schedule(tables, years, issues)
    check_cost_split(tables["packages"], issues)
    check_not_empty(tables, issues)
    if not issues.issues:
        county_of = county_of_regions(tables["regions"])
        village_county = _lookup(tables["villages"], "village_id", "township_id").map(county_of)
        check_county_population(tables, tables["households"]["village_id"].map(village_county), issues)
        if policy is not None:
            check_policy(tables, policy, scenario_file, issues)
    issues.raise_if_any()
