"""Monitoring a running plan: plan against actual per county, village and household.

:func:`monitor_progress` reads a progress record against its plan (the record is checked
first) and returns a :class:`Monitoring`:

- ``counties``: packages and projects due against delivered, money planned against
  disbursed, exits and returns, and the *outlook*: the expected remaining incidence at the
  deadline if the rest of the approved plan is delivered from now on (slipped packages this
  year), against the threshold. A county is **at risk** when its outlook shortfall exceeds
  the plan's;
- ``villages``: the same counts per village;
- ``off_track``: households whose package slipped, came late or differently, who returned
  to poverty, had a shock, stay below the line after their package took effect, still fail a
  guarantee, are newly identified, or have no record though their package was due;
- ``watch``: households for the prevention mechanism (DOMAIN.md §5.3): not poor now (exited,
  or never registered) but below EDGE_FACTOR x the line, or hit by a shock.

``summary`` (``monitor.json``) describes itself: headline numbers with labels and units,
sentences, and the meaning of every file and column, so a report can show it as it is.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from allocator.inputs.names import named, region_names
from allocator.inputs.provenance import output_folder
from allocator.manage.progress import EDGE_FACTOR, Progress, household_states, plan_and_record, village_counties
from allocator.messages import listed, render, say, titled, words
from allocator.plan.plan import json_default
from allocator.report.charts import counties_at_risk, save_figure

MONITOR_FILES = ("counties.csv", "villages.csv", "households_off_track.csv", "watch.csv", "monitor.json",
                 "counties_at_risk.png")
RISK_TOL = 1e-6  # households: an outlook shortfall above the plan's by more than this puts a county at risk
OFF_TRACK_REASONS = {
    "slipped": "its package was due before this year and is not delivered",
    "no_record": "its package was due but the record does not mention the household",
    "delivered_other": "it got another package than planned",
    "delivered_late": "its package started later than planned",
    "returned": "it returned to poverty after exiting",
    "shock": "it had a shock (illness, disability, disaster, accident)",
    "below_line": "its package took effect but its income is still below the line",
    "guarantee_failing": "its package was delivered but a guarantee still fails",
    "new": "newly identified poor household: new demand",
}
COLUMNS = {
    "counties.csv": {
        "county_id": "county", "registered_poor": "households to plan for now (the plan's and new ones)",
        "packages_due": "packages planned to start before the record year",
        "delivered_due": "of those, delivered", "delivery_rate": "delivered_due / packages_due",
        "packages_this_year": "packages planned in the record year", "delivered_this_year": "of those, delivered",
        "projects_due": "projects planned to start before the record year", "projects_started": "of those, started",
        "planned_to_date": "money planned before the record year (yuan)",
        "disbursed_to_date": "money disbursed before the record year (yuan)",
        "planned_this_year": "money planned in the record year (yuan)",
        "disbursed_this_year": "money disbursed so far in the record year (yuan)",
        "exited": "households out of poverty now", "returned": "households that fell back",
        "shocks": "households hit by a shock", "new_households": "newly identified poor households",
        "expected_exits_plan": "expected exits of the approved plan",
        "expected_exits_outlook": "expected exits if the rest of the plan is delivered from now on",
        "incidence_plan": "expected incidence at the deadline, approved plan",
        "incidence_outlook": "expected incidence at the deadline, outlook", "threshold": "exit threshold",
        "shortfall_plan": "households above the threshold, approved plan",
        "shortfall_outlook": "households above the threshold, outlook",
        "at_risk": "outlook shortfall above the plan's: the schedule is at risk",
    },
    "villages.csv": {
        "village_id": "village", "county_id": "county", "registered_poor": "households to plan for now",
        "packages_due": "packages planned before the record year", "delivered_due": "of those, delivered",
        "projects_due": "projects planned before the record year", "projects_started": "of those, started",
        "exited": "households out of poverty now", "returned": "households that fell back",
        "shocks": "households hit by a shock", "new_households": "newly identified poor households",
        "off_track": "households off track", "expected_exits_plan": "expected exits of the approved plan",
        "expected_exits_outlook": "expected exits, outlook",
    },
    "households_off_track.csv": {
        "household_id": "household", "village_id": "village", "county_id": "county",
        "state": "settled, open, exited, returned or new", "planned_package": "package of the approved plan",
        "planned_year": "its planned start year", "delivered": "a package was delivered",
        "package_id": "the package delivered", "actual_year": "its actual start year",
        "observed_income": "observed income (yuan per person per year)", "shock": "shock, if any",
        "reasons": "why the household is off track (';' list, see reasons)",
        "expected_exit_plan": "expected exit in the approved plan", "outlook": "expected exit now, outlook",
    },
    "watch.csv": {
        "household_id": "household", "village_id": "village", "county_id": "county",
        "registered": "in the plan (registered poor)",
        "category": "unstable_exited, marginal and/or sudden_difficulty (';' list)",
        "observed_income": "observed income (yuan per person per year)",
        "income_ratio": "observed income / poverty line", "shock": "shock, if any",
        "exit_year": "year it exited, for exited households",
    },
}


@dataclass
class Monitoring:
    """Plan against actual: the tables of :mod:`allocator.manage.monitor` and their self-describing summary."""

    counties: pd.DataFrame
    villages: pd.DataFrame
    off_track: pd.DataFrame
    watch: pd.DataFrame
    summary: dict = field(default_factory=dict)

    def write(self, folder: str | Path) -> Path:
        """Write the tables, ``monitor.json`` and the chart of counties at risk into ``folder``
        (refused when it holds anything allocator did not write, see :mod:`allocator.inputs.provenance`)."""
        folder = Path(folder)
        with output_folder(folder, "monitoring"):
            self.counties.to_csv(folder / "counties.csv", index=False)
            self.villages.to_csv(folder / "villages.csv", index=False)
            self.off_track.to_csv(folder / "households_off_track.csv", index=False)
            self.watch.to_csv(folder / "watch.csv", index=False)
            (folder / "monitor.json").write_text(json.dumps(self.summary, indent=2, default=json_default) + "\n")
            fig = counties_at_risk(self.counties, self.summary["record_year"])
            save_figure(fig, folder / "counties_at_risk.png", dpi=110)
        return folder


def monitor_progress(plan, progress) -> Monitoring:
    """Plan against actual for a plan (folder or context) and a progress record (folder or object)."""
    context, record = plan_and_record(plan, progress)
    year, deadline = record.year, context.scenario.deadline_year
    line = context.scenario.poverty_line(year)
    states = household_states(context.plan.households, record, context.tables, from_year=year,
                              deadline_year=deadline)
    states = states.merge(context.plan.households[["household_id", "exit_probability"]].rename(
        columns={"exit_probability": "expected_exit_plan"}), on="household_id", how="left")
    states["expected_exit_plan"] = states["expected_exit_plan"].fillna(states["baseline"])
    states["reasons"] = _reasons(states, context.tables["packages"], year, line)
    projects = _projects(context.plan.projects, record.projects, year)
    counties = _counties(context, record, states, projects, year)
    villages = _villages(states, projects, year)
    off = states[states["reasons"] != ""]
    off_track = off[list(COLUMNS["households_off_track.csv"])].reset_index(drop=True)
    watch = _watch(states, record, context, line)
    summary = _summary(context, record, states, counties, off_track, watch, line)
    return Monitoring(counties, villages, off_track, watch, summary)


def _reasons(states: pd.DataFrame, packages: pd.DataFrame, year: int, line: float) -> pd.Series:
    """';'-joined off-track reasons per household (vectorised: one boolean column per reason)."""
    planned_year = states["planned_year"].to_numpy()
    actual = states["actual_year"].to_numpy()
    delivered = states["delivered"].to_numpy()
    state = states["state"].to_numpy()
    key = pd.MultiIndex.from_arrays([packages["household_id"], packages["package_id"]])
    got = key.get_indexer(pd.MultiIndex.from_arrays([states["household_id"], states["package_id"]]))
    lag = np.where(got >= 0, packages["lag_years"].to_numpy()[np.maximum(got, 0)], 0)
    income = states["observed_income"].to_numpy(dtype=float)
    due = (states["planned_package"].to_numpy() != "") & (planned_year < year)
    flags = {
        "slipped": due & (state == "open") & states["recorded"].to_numpy(),
        "no_record": due & ~states["recorded"].to_numpy(),
        "delivered_other": delivered & (states["package_id"] != states["planned_package"]).to_numpy(),
        "delivered_late": delivered & (actual > planned_year),
        "returned": state == "returned",
        "shock": states["shock"].to_numpy() != "",
        "below_line": (state == "settled") & ~states["exited"].to_numpy() & (actual + lag <= year - 1)
        & (income < line),
        "guarantee_failing": (state == "settled") & (actual < year) & (states["guarantees"] == "failing").to_numpy(),
        "new": state == "new",
    }
    text = pd.Series("", index=states.index)
    for name, mask in flags.items():
        text = text.mask(mask, text + np.where(text == "", "", ";") + name)
    return text


def _projects(built: pd.DataFrame, record: pd.DataFrame, year: int) -> pd.DataFrame:
    """The plan's projects with what the record says (started, start year, finished)."""
    frame = built.merge(record[["village_id", "project_id", "started", "start_year", "finished"]].rename(
        columns={"start_year": "actual_year"}), on=["village_id", "project_id"], how="left")
    frame["started"] = frame["started"].fillna(False).astype(bool)
    frame["due"] = frame["start_year"] < year
    return frame


def _counties(context, record: Progress, states: pd.DataFrame, projects: pd.DataFrame, year: int) -> pd.DataFrame:
    p, plan = context.problem, context.plan
    ids = pd.Index(p.county_ids)
    due = (states["planned_package"] != "") & (states["planned_year"] < year)
    this_year = (states["planned_package"] != "") & (states["planned_year"] == year)
    by = states.assign(
        packages_due=due, delivered_due=due & states["delivered"], packages_this_year=this_year,
        delivered_this_year=this_year & states["delivered"], exited=states["exited"] & ~states["returned"],
        returned=states["returned"], shocks=states["shock"] != "", new_households=states["state"] == "new",
        registered_poor=1,
    ).groupby("county_id")[["registered_poor", "packages_due", "delivered_due", "packages_this_year",
                            "delivered_this_year", "exited", "returned", "shocks", "new_households", "outlook"]].sum()
    frame = by.reindex(ids, fill_value=0)
    frame.index.name = "county_id"
    proj_county = projects["village_id"].map(village_counties(context.tables))
    frame["projects_due"] = projects["due"].groupby(proj_county).sum().reindex(ids, fill_value=0).to_numpy()
    frame["projects_started"] = (projects["due"] & projects["started"]).groupby(proj_county).sum().reindex(
        ids, fill_value=0).to_numpy()
    funding, paid = plan.funding, record.disbursed
    for name, money, when in (("planned_to_date", funding, funding["year"] < year),
                              ("disbursed_to_date", paid, paid["year"] < year),
                              ("planned_this_year", funding, funding["year"] == year),
                              ("disbursed_this_year", paid, paid["year"] == year)):
        frame[name] = money[when].groupby("county_id")["amount"].sum().reindex(ids, fill_value=0.0).to_numpy()
    frame["delivery_rate"] = np.divide(frame["delivered_due"], frame["packages_due"],
                                       out=np.full(len(frame), np.nan), where=frame["packages_due"].to_numpy() > 0)
    pop = p.county_rural_population
    planned = plan.counties.set_index("county_id").reindex(ids)
    frame["expected_exits_plan"] = planned["expected_exits"].to_numpy(dtype=float)
    frame["expected_exits_outlook"] = frame.pop("outlook").to_numpy(dtype=float)
    frame["threshold"] = p.county_threshold
    allowed = p.county_threshold * pop
    poor_plan = planned["registered_poor"].to_numpy(dtype=float)
    poor_now = frame["registered_poor"].to_numpy(dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        frame["incidence_plan"] = np.where(pop > 0, (poor_plan - frame["expected_exits_plan"]) / pop, np.nan)
        frame["incidence_outlook"] = np.where(pop > 0, (poor_now - frame["expected_exits_outlook"]) / pop, np.nan)
    frame["shortfall_plan"] = planned["shortfall_households"].to_numpy(dtype=float)
    frame["shortfall_outlook"] = np.maximum(poor_now - frame["expected_exits_outlook"] - allowed, 0.0)
    frame["at_risk"] = frame["shortfall_outlook"] > frame["shortfall_plan"] + RISK_TOL
    return frame.reset_index()[list(COLUMNS["counties.csv"])]


def _villages(states: pd.DataFrame, projects: pd.DataFrame, year: int) -> pd.DataFrame:
    due = (states["planned_package"] != "") & (states["planned_year"] < year)
    frame = states.assign(
        registered_poor=1, packages_due=due, delivered_due=due & states["delivered"],
        exited=states["exited"] & ~states["returned"], returned=states["returned"], shocks=states["shock"] != "",
        new_households=states["state"] == "new", off_track=states["reasons"] != "",
        expected_exits_plan=states["expected_exit_plan"], expected_exits_outlook=states["outlook"],
    ).groupby(["village_id", "county_id"])[["registered_poor", "packages_due", "delivered_due", "exited", "returned",
                                            "shocks", "new_households", "off_track", "expected_exits_plan",
                                            "expected_exits_outlook"]].sum().reset_index()
    counts = projects.assign(started_due=projects["due"] & projects["started"]).groupby("village_id")[
        ["due", "started_due"]].sum()
    frame["projects_due"] = frame["village_id"].map(counts["due"]).fillna(0).astype(int)
    frame["projects_started"] = frame["village_id"].map(counts["started_due"]).fillna(0).astype(int)
    return frame[list(COLUMNS["villages.csv"])]


def _watch(states: pd.DataFrame, record: Progress, context, line: float) -> pd.DataFrame:
    """Households not poor now but at risk: exited and unstable, or edge households outside the plan."""
    rows = record.households
    in_plan = rows["household_id"].isin(context.plan.households["household_id"]).to_numpy()
    income = rows["observed_income"].to_numpy(dtype=float)
    low = income < EDGE_FACTOR * line
    shock = rows["shock"].to_numpy() != ""
    out = rows["exited"].to_numpy() & ~rows["returned"].to_numpy()
    categories = {
        "unstable_exited": in_plan & out & (low | shock),
        "marginal": ~in_plan & ~rows["new"].to_numpy() & low,
        "sudden_difficulty": (out | (~in_plan & ~rows["new"].to_numpy())) & shock,
    }
    text = pd.Series("", index=rows.index)
    for name, mask in categories.items():
        text = text.mask(mask, text + np.where(text == "", "", ";") + name)
    keep = (text != "").to_numpy()
    hh = context.tables["households"].set_index("household_id")
    county_of = village_counties(context.tables)
    picked = rows[keep]
    village = picked["household_id"].map(hh["village_id"])
    return pd.DataFrame({
        "household_id": picked["household_id"].to_numpy(), "village_id": village.to_numpy(),
        "county_id": village.map(county_of).to_numpy(), "registered": in_plan[keep], "category": text[keep].to_numpy(),
        "observed_income": income[keep], "income_ratio": np.round(income[keep] / line, 4),
        "shock": picked["shock"].to_numpy(), "exit_year": picked["exit_year"].astype("Int64").to_numpy(),
    })


def _summary(context, record: Progress, states: pd.DataFrame, counties: pd.DataFrame, off_track: pd.DataFrame,
             watch: pd.DataFrame, line: float) -> dict:
    year = record.year
    due = int(counties["packages_due"].sum())
    delivered = int(counties["delivered_due"].sum())
    at_risk = counties[counties["at_risk"]]
    reasons = off_track["reasons"].str.split(";").explode().value_counts()
    headline = [
        ("packages_due", words("packages due before {year}", year=year), due, "households"),
        ("delivered_due", words("of those, delivered"), delivered, "households"),
        ("delivery_rate", words("delivery rate"), round(delivered / due, 4) if due else None, "share"),
        ("planned_to_date", words("money planned before {year}", year=year),
         float(counties["planned_to_date"].sum()), "yuan"),
        ("disbursed_to_date", words("money disbursed before {year}", year=year),
         float(counties["disbursed_to_date"].sum()), "yuan"),
        ("exited", words("households out of poverty now"), int(counties["exited"].sum()), "households"),
        ("returned", words("households that fell back into poverty"), int(counties["returned"].sum()),
         "households"),
        ("shocks", words("households hit by a shock"), int(states["shock"].ne("").sum()), "households"),
        ("new_households", words("newly identified poor households"), int(counties["new_households"].sum()),
         "households"),
        ("off_track", words("households off track"), len(off_track), "households"),
        ("watch", words("households to watch (prevention)"), len(watch), "households"),
        ("expected_exits_plan", words("expected exits, approved plan"),
         float(counties["expected_exits_plan"].sum()), "households"),
        ("expected_exits_outlook", words("expected exits, outlook"), float(counties["expected_exits_outlook"].sum()),
         "households"),
        ("counties_at_risk", words("counties whose schedule is at risk"), len(at_risk), "counties"),
    ]
    sentences = [say("By mid-{year}, {delivered:,} of the {due:,} packages due before {year} were delivered{rate}.",
                     year=year, delivered=delivered, due=due,
                     rate=words(" ({rate:.0%})", rate=delivered / due) if due else "")]
    if len(at_risk):
        regions = region_names(context.tables)
        sentences.append(say("Schedule at risk in {counties}.", counties=listed([words(
            "{county} (outlook {outlook:.2%} against {threshold:.0%}, {short:,.1f} households short)",
            county=named(r.county_id, regions), outlook=float(r.incidence_outlook), threshold=float(r.threshold),
            short=float(r.shortfall_outlook)) for r in at_risk.head(10).itertuples()], ", ")))
    else:
        sentences.append(say("No county's schedule is at risk: the outlook keeps every county where the plan had it."))
    sentences.append(say("{watch:,} households to watch for prevention (income below {factor:g} x the line of "
                         "{line:,.0f} yuan, or a shock); {off:,} households off track.", watch=len(watch),
                         factor=EDGE_FACTOR, line=float(line), off=len(off_track)))
    return {
        **titled(words("Plan against actual, mid-{year}", year=year)), "kind": "monitor",
        "scenario": context.plan.summary.get("scenario"), "plan": str(context.folder), "record_year": year,
        "record_note": record.note, "poverty_line": line, "monitoring_line": EDGE_FACTOR * line,
        "headline": [{"key": k, "label": render(label), "message": label, "value": v, "unit": unit}
                     for k, label, v, unit in headline],
        "sentences": [s["sentence"] for s in sentences], "messages": [s["message"] for s in sentences],
        "counties_at_risk": at_risk["county_id"].tolist(),
        "off_track_reasons": {name: {"households": int(reasons.get(name, 0)), "meaning": meaning}
                              for name, meaning in OFF_TRACK_REASONS.items()},
        "files": {name: {"columns": columns} for name, columns in COLUMNS.items()},
        "charts": [{"file": "counties_at_risk.png",
                    "title": "Expected incidence at the deadline: approved plan and outlook, against the threshold"}],
    }


