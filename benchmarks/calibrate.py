"""Calibration: the optimised plan side by side with the published figures of the real programme.

Reads a plan folder (or solves the scenario first and writes one) and the scenario's canonical
tables, and prints markdown tables to stdout:

1. share of the planned poor households still poor at each year end, against the national path
   (NBS, DOMAIN.md §7.5, rescaled to the stock at the start) and the scenario's targets;
2. counties by hat-off year, planned and achieved, against the real batches (28, 125, 283, 344,
   52 of 832 poor counties in 2016-2020, DOMAIN §2.3) stretched onto the horizon;
3. spend by category, and the industry share of the central fund in the last year (> 40 % in
   2020, DOMAIN §4.1);
4. expected exits by kind of measure (about two thirds through industry and jobs, DOMAIN §5.1),
   with their sustained and earned shares;
5. relocated people (9.6 m of ~98 m registered, DOMAIN §5.1, §7.1) and the sustained share of exits.

It reads ``path.csv`` (year, region_id, expected_poor, target, shortfall) and the
``hat_off_year`` / ``achieved_hat_off_year`` columns of ``counties.csv`` where the plan has
them, and otherwise derives them from ``households.csv`` and the canonical tables (a package
counts from start + lag; a household without one counts its baseline at the deadline). Run it as

    .venv/bin/python benchmarks/calibrate.py scenarios/province.yaml [--plan plans/province] [--time-limit 900]

and record the tables in docs/effect-model.md. A chart of the path goes to benchmarks/results/.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from allocator import load_scenario  # noqa: E402
from allocator.inputs.scenario import NATIONAL_STILL_POOR, Scenario  # noqa: E402
from allocator.synth.province import COUNTY_BATCHES, batch_year_at  # noqa: E402
from allocator.targeting.catalog import Catalog, load_catalog  # noqa: E402
from allocator.targeting.pipeline import load_tables  # noqa: E402

RELOCATED_SHARE = 9.6 / 98.0  # registered poor relocated, of all registered (DOMAIN §5.1, §7.1)
INDUSTRY_SHARE_OF_CENTRAL = 0.40  # > 40 % of central poverty funds to industry in 2020 (DOMAIN §4.1)
SPECIAL_FUNDS = ("central", "provincial")  # the fiscal special poverty funds of the generated presets
INDUSTRY_AND_JOBS_SHARE = 2 / 3  # "about two thirds" of exits through industry and jobs (DOMAIN §5.1)
CHANNELS = ("industry", "jobs", "relocation", "ecology", "public-welfare posts", "safety net", "guarantees only")


def markdown(frame: pd.DataFrame, digits: int = 3) -> str:
    """A DataFrame as a GitHub markdown table (numbers rounded, missing as '–')."""
    def cell(value) -> str:
        if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
            return "–"
        if isinstance(value, float | np.floating):
            return f"{value:,.{digits}f}"
        return str(value)
    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def read_plan(folder: Path) -> dict[str, pd.DataFrame | dict]:
    """The plan folder's tables (those present) and its summary."""
    plan: dict = {"summary": json.loads((folder / "summary.json").read_text())}
    for name in ("households", "counties", "funding", "path", "projects"):
        path = folder / f"{name}.csv"
        if path.is_file():
            plan[name] = pd.read_csv(path, dtype={"household_id": str, "county_id": str, "region_id": str,
                                                  "package_id": str, "source_id": str, "village_id": str},
                                    keep_default_na=True)
    return plan


def chosen_packages(plan: dict, tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The plan's households with a package, joined to the package's canonical row (lag,
    measures, exit, sustained and earned share) and the household's size."""
    households = plan["households"]
    chosen = households[households["start_year"].notna()][["household_id", "county_id", "package_id",
                                                           "category", "start_year"]]
    packages = tables["packages"].drop(columns=["category"])
    out = chosen.merge(packages, on=["household_id", "package_id"], how="left")
    out["sustained_probability"] = out["sustained_probability"].fillna(out["exit_probability"])
    size = tables["households"].set_index("household_id")["size"]
    return out.assign(size=out["household_id"].map(size), exit_year=out["start_year"] + out["lag_years"])


def county_ids(tables: dict[str, pd.DataFrame]) -> pd.Index:
    regions = tables["regions"]
    return pd.Index(regions.loc[regions["level"] == "county", "region_id"])


def poor_by_county_year(plan: dict, tables: dict, years: list[int]) -> pd.DataFrame:
    """Expected registered poor households still poor at each year end, per county (rows) and
    year (columns), as the model counts them."""
    hh = tables["households"].query("registered_poor")
    county = plan["households"].set_index("household_id")["county_id"]
    chosen = chosen_packages(plan, tables).set_index("household_id")
    exits = pd.Series(hh["baseline_exit_probability"].to_numpy(), index=hh["household_id"].to_numpy())
    when = pd.Series(years[-1], index=exits.index)
    exits[chosen.index] = chosen["exit_probability"]
    when[chosen.index] = chosen["exit_year"]
    frame = pd.DataFrame({"county": county.reindex(exits.index).to_numpy(), "exit": exits, "when": when})
    frame = frame[frame["when"] <= years[-1]]
    stock = hh["household_id"].map(county).value_counts()
    cumulative = {y: frame[frame["when"] <= y].groupby("county")["exit"].sum() for y in years}
    return pd.DataFrame({y: stock - cumulative[y].reindex(stock.index, fill_value=0.0) for y in years})


def path_table(plan: dict, tables: dict, scenario: Scenario) -> pd.DataFrame:
    """Share still poor per year: plan, scenario target, national path."""
    years = scenario.years
    stock = float(tables["households"]["registered_poor"].sum())
    if "path" in plan and "region_id" in plan["path"]:
        whole = plan["path"][plan["path"]["region_id"].isna() | (plan["path"]["region_id"] == "")]
        poor = whole.set_index("year")["expected_poor"].reindex(years)
    else:
        poor = poor_by_county_year(plan, tables, years).sum(axis=0).reindex(years)
    targets = tables.get("targets")
    target = (targets[targets["region_id"] == ""].set_index("year")["max_poor_share"].reindex(years)
              if targets is not None and len(targets) else pd.Series(np.nan, index=years))
    base = NATIONAL_STILL_POOR.get(scenario.start_year - 1)
    national = [NATIONAL_STILL_POOR[min(y, max(NATIONAL_STILL_POOR))] / base if base else np.nan for y in years]
    share = poor.to_numpy() / stock
    return pd.DataFrame({"year": years, "plan still poor": share, "target": target.to_numpy(),
                         "national (NBS)": national, "plan − national": share - np.asarray(national)})


def hat_off_table(plan: dict, tables: dict, scenario: Scenario) -> pd.DataFrame:
    """Poor counties by planned and achieved hat-off year, against the real batches."""
    years = scenario.years
    regions = tables["regions"].set_index("region_id")
    counties = plan.get("counties", pd.DataFrame({"county_id": county_ids(tables)})).set_index("county_id")
    # scheduled counties: those the data gives a hat-off year (counties.csv shows the deadline for the rest)
    planned = regions["hat_off_year"].reindex(counties.index) if "hat_off_year" in regions else (
        pd.Series(pd.NA, index=counties.index))
    if "achieved_hat_off_year" in counties:
        achieved = counties["achieved_hat_off_year"]
    else:
        poor = poor_by_county_year(plan, tables, years).reindex(counties.index)
        threshold = np.where(regions["western"].reindex(counties.index), scenario.policy.county_exit_threshold.western,
                             scenario.policy.county_exit_threshold.default)
        limit = threshold * regions["rural_population"].reindex(counties.index).to_numpy()
        below = poor.to_numpy() <= limit[:, None] + 1e-9
        achieved = pd.Series(np.where(below.any(axis=1), np.asarray(years)[below.argmax(axis=1)], np.nan),
                             index=counties.index)
    scheduled = planned.notna()
    n = int(scheduled.sum())
    real = batch_year_at((np.arange(n) + 0.5) / max(n, 1), np.asarray(years))  # the real batches on this horizon
    rows = []
    for year in years:
        rows.append({"year": year, "planned": int((planned[scheduled] == year).sum()),
                     "achieved (scheduled counties)": int((achieved[scheduled] == year).sum()),
                     "real batches (scaled)": int((real == year).sum()),
                     "achieved (other counties)": int((achieved[~scheduled] == year).sum())})
    rows.append({"year": "not by the deadline", "planned": 0,
                 "achieved (scheduled counties)": int(achieved[scheduled].isna().sum()),
                 "real batches (scaled)": 0, "achieved (other counties)": int(achieved[~scheduled].isna().sum())})
    late = scheduled & (achieved.isna() | (achieved > planned.fillna(years[-1])))
    rows.append({"year": "behind their planned year", "planned": n, "achieved (scheduled counties)": int(late.sum()),
                 "real batches (scaled)": n, "achieved (other counties)": 0})
    return pd.DataFrame(rows)


def measure_spend(plan: dict, chosen: pd.DataFrame) -> pd.Series:
    """Spend by the category of each measure, as the programme's statistics count it: each
    package's ``cost_by_category`` (where the plan pays it from its costliest measure's
    category) plus the projects built."""
    if "cost_by_category" not in chosen:
        return pd.Series(dtype=float)
    items = chosen["cost_by_category"].fillna("").str.split(";").explode()
    items = items[items.astype(bool)].str.split(":", expand=True)
    by_measure = pd.to_numeric(items[1]).groupby(items[0]).sum() if len(items) else pd.Series(dtype=float)
    built = plan["projects"]
    built = built[built["start_year"].notna()] if "start_year" in built else built
    return by_measure.add(built.groupby("category")["cost"].sum(), fill_value=0.0)


def spend_table(plan: dict, scenario: Scenario, chosen: pd.DataFrame) -> tuple[pd.DataFrame, float]:
    """Spend by category (share of all spend, share counted by measure, and of the central
    fund), and the central fund's industry share in the last year."""
    funding = plan["funding"]
    by_measure = measure_spend(plan, chosen)
    total = funding.groupby("category")["amount"].sum()
    central = funding[funding["source_id"] == "central"]
    by_central = central.groupby("category")["amount"].sum()
    last = central[central["year"] == scenario.deadline_year].groupby("category")["amount"].sum()
    industry_last = float(last.get("industry", 0.0) / last.sum()) if last.sum() > 0 else np.nan
    cats = sorted(set(total.index) | set(by_central.index) | set(by_measure.index))
    frame = pd.DataFrame({"category": cats, "spend (m yuan)": [total.get(c, 0.0) / 1e6 for c in cats],
                          "share of spend": [total.get(c, 0.0) / total.sum() for c in cats],
                          "share of spend by measure": [by_measure.get(c, 0.0) / max(by_measure.sum(), 1e-9)
                                                        for c in cats],
                          "share of central fund": [by_central.get(c, 0.0) / max(by_central.sum(), 1e-9)
                                                    for c in cats]})
    return frame.sort_values("spend (m yuan)", ascending=False), industry_last


def channel_of(catalog: Catalog) -> dict[str, str]:
    """Each income measure's channel ("five batches" reading): industry, jobs, ecology,
    public-welfare posts, safety net (a top-up to the dibao line); relocation for the move."""
    out = {}
    for key, m in catalog.measures.items():
        if m.role == "income":
            out[key] = {"industry": "industry", "ability": "jobs", "ecology": "ecology",
                        "welfare": "safety net" if m.gain.to_line else "public-welfare posts"}.get(m.category,
                                                                                              m.category)
        elif m.category == "housing" and m.gain is not None:
            out[key] = "relocation"
    return out


def exits_table(chosen: pd.DataFrame, catalog: Catalog) -> pd.DataFrame:
    """Expected exits by the channel of the package's income measure (the first of CHANNELS it
    has); the part of each exit the safety net behind the package gives (``safety_net_share``,
    docs/effect-model.md §3b) goes to "safety net"."""
    channels = channel_of(catalog)
    measures = chosen["package_id"].str.split("+")
    rank = {c: i for i, c in enumerate(CHANNELS)}
    kind = measures.map(lambda ms: min((channels[m] for m in ms if m in channels), key=rank.get,
                                       default="guarantees only"))
    net = chosen["safety_net_share"].fillna(0.0) if "safety_net_share" in chosen else pd.Series(0.0, chosen.index)
    # the net's part of the exit and of the sustained exit (in the same proportion)
    own = chosen.assign(channel=kind.to_numpy(), exit_probability=chosen["exit_probability"] * (1 - net),
                        sustained_probability=chosen["sustained_probability"] * (1 - net),
                        earned=chosen["exit_probability"] * (1 - net) * chosen["earned_share"])
    lifted = chosen.assign(channel="safety net", exit_probability=chosen["exit_probability"] * net,
                           sustained_probability=chosen["sustained_probability"] * net, earned=0.0)[net > 0]
    frame = pd.concat([own, lifted], ignore_index=True)
    grouped = frame.groupby("channel")
    size = own.groupby("channel").size().reindex(grouped.size().index, fill_value=0)  # households by their package
    table = pd.DataFrame({"households": size, "expected exits": grouped["exit_probability"].sum(),
                          "sustained exits": grouped["sustained_probability"].sum(),
                          "earned share": grouped["earned"].sum() / grouped["exit_probability"].sum()})
    table = table.reindex([c for c in CHANNELS if c in table.index])
    table.insert(2, "share of exits", table["expected exits"] / table["expected exits"].sum())
    table["sustained / exit"] = table["sustained exits"] / table["expected exits"]
    return table.reset_index()


def headline_table(plan: dict, chosen: pd.DataFrame, tables: dict, exits: pd.DataFrame, industry_last: float,
                   spend: pd.DataFrame, scenario: Scenario) -> pd.DataFrame:
    """The plan's headline numbers against the published ones."""
    planned = tables["households"].query("registered_poor")
    relocated = chosen[chosen["package_id"].str.split("+").map(lambda ms: "relocation" in ms)]
    ij = exits[exits["channel"].isin(["industry", "jobs"])]["share of exits"].sum()
    ij_spend = spend[spend["category"].isin(["industry", "ability"])]["share of spend"].sum()
    ij_measure = spend[spend["category"].isin(["industry", "ability"])]["share of spend by measure"].sum()
    special = plan["funding"][plan["funding"]["source_id"].isin(SPECIAL_FUNDS)]
    special_industry = special.loc[special["category"] == "industry", "amount"].sum() / max(special["amount"].sum(), 1)
    rows = [
        ("industry share of the central fund, " + str(scenario.deadline_year), industry_last,
         f"> {INDUSTRY_SHARE_OF_CENTRAL:.2f} (2020)", "DOMAIN §4.1"),
        ("industry share of the special funds (central, provincial), all years", special_industry,
         "> 0.40", "DOMAIN §4.1"),
        ("industry + ability (jobs, skills) share of spend", ij_spend, "the largest part", "issue 16"),
        ("the same, counted by measure", ij_measure, "the largest part", "issue 16"),
        ("exits through industry and jobs", ij, f"≈ {INDUSTRY_AND_JOBS_SHARE:.2f}", "DOMAIN §5.1"),
        ("relocated people / planned people", relocated["size"].sum() / max(planned["size"].sum(), 1),
         f"≈ {RELOCATED_SHARE:.3f}", "DOMAIN §5.1, §7.1"),
        ("relocated households", f"{len(relocated):,}", "", ""),
        ("sustained share of exits (sustained / expected exits)",
         chosen["sustained_probability"].sum() / max(chosen["exit_probability"].sum(), 1e-9), "",
         f"policy.sustain_years = {scenario.policy.sustain_years}"),
        ("earned share of the income gain (exit-weighted)",
         (chosen["exit_probability"] * chosen["earned_share"]).sum() / max(chosen["exit_probability"].sum(), 1e-9),
         "", "'hematopoietic' vs 'blood transfusion'"),
    ]
    return pd.DataFrame(rows, columns=["figure", "plan", "published", "source"])


def report(plan: dict, tables: dict, scenario: Scenario, catalog: Catalog) -> str:
    """All calibration tables as one markdown text."""
    chosen = chosen_packages(plan, tables)
    path = path_table(plan, tables, scenario)
    spend, industry_last = spend_table(plan, scenario, chosen)
    exits = exits_table(chosen, catalog)
    s = plan["summary"]
    parts = [f"## Calibration: {scenario.name} ({s.get('status')}, gap {s.get('gap')}, "
             f"{int(tables['households']['registered_poor'].sum()):,} planned households)",
             "### Share still poor at year end", markdown(path),
             "### Counties by hat-off year", markdown(hat_off_table(plan, tables, scenario)),
             "### Spend by category", markdown(spend),
             "### Exits by kind of measure", markdown(exits),
             "### Headline figures", markdown(headline_table(plan, chosen, tables, exits, industry_last, spend,
                                                               scenario))]
    return "\n\n".join(parts) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenario", type=Path)
    parser.add_argument("--plan", type=Path, default=None, help="a plan folder of this scenario (else: solve)")
    parser.add_argument("--time-limit", type=float, default=None)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    scenario = load_scenario(args.scenario)
    started = time.perf_counter()
    tables = load_tables(scenario)
    if args.plan is None:
        from allocator import solve

        if args.time_limit is not None:
            scenario = scenario.model_copy(update={"solver": scenario.solver.model_copy(
                update={"time_limit": args.time_limit})})
        args.plan = solve(scenario).write(Path("out") / f"calibrate-{scenario.name}")
    plan = read_plan(args.plan)
    print(report(plan, tables, scenario, load_catalog(scenario.catalog_path())))
    print(f"({round(time.perf_counter() - started, 1)} s; real batches: "
          f"{', '.join(f'{y}: {n}' for y, n in COUNTY_BATCHES.items())} of {sum(COUNTY_BATCHES.values())})")
    path = path_table(plan, tables, scenario)
    args.out.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(path["year"], 100 * path["plan still poor"], marker="o", label="optimised plan")
    ax.plot(path["year"], 100 * path["national (NBS)"], marker="s", label="national path (NBS)")
    ax.set_ylabel("% of the start stock still poor at year end")
    ax.set_title(f"{scenario.name}: plan against the national path")
    ax.legend(frameon=False)
    fig.tight_layout()
    fig.savefig(args.out / f"calibration-{scenario.name}.png", dpi=110)


if __name__ == "__main__":
    main()
