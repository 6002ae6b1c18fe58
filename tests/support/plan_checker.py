"""Independent plan checker for allocator plans.

Built from the written specification only (nothing under src/ is read or
imported), so it can catch bugs in the engine.  It reads the input tables and
a plan folder, recomputes every quantity and returns violation messages.
"""
from __future__ import annotations

import json
from collections import namedtuple
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

STATUSES = ("optimal", "feasible", "infeasible", "error")
MAX_MESSAGES_PER_CHECK = 50
EXIT_TOL = 1e-9
_Target = namedtuple("_Target", "region_id year max_poor_share inside short")
_TRUE = {"true", "1", "1.0", "yes", "y", "t"}
_FALSE = {"false", "0", "0.0", "no", "n", "f"}


# --------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------
class _Report:
    """Collects messages, capping each check at MAX_MESSAGES_PER_CHECK."""

    def __init__(self) -> None:
        self.msgs: list[str] = []

    def add(self, msg: str) -> None:
        self.msgs.append(msg)

    def rows(self, df: pd.DataFrame, fmt, label: str) -> None:
        """Add fmt(row) for each row of df (only violating rows are passed)."""
        if df.empty:
            return
        for row in df.head(MAX_MESSAGES_PER_CHECK).itertuples(index=False):
            self.msgs.append(fmt(row))
        if len(df) > MAX_MESSAGES_PER_CHECK:
            self.msgs.append(f"{label}: ... and {len(df) - MAX_MESSAGES_PER_CHECK} more")


def _m(x) -> str:
    """Money format."""
    return "nan" if pd.isna(x) else f"{float(x):,.2f}"


def _y(x) -> str:
    """Year format."""
    if pd.isna(x):
        return "?"
    return str(int(x)) if float(x).is_integer() else str(x)


def _g(x) -> str:
    return "nan" if pd.isna(x) else f"{float(x):.6g}"


def _money_bad(a, b, tol):
    """True where |a-b| exceeds abs 0.01 + rel tol."""
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    scale = np.maximum(np.abs(a), np.abs(b))
    return ~(np.abs(a - b) <= 0.01 + tol * scale)


def _stringify(df: pd.DataFrame) -> pd.DataFrame:
    """All columns as stripped strings, missing -> ''."""
    out = {}
    for c in df.columns:
        s = df[c]
        if pd.api.types.is_bool_dtype(s):
            s = s.map({True: "true", False: "false"})
        elif pd.api.types.is_float_dtype(s):
            vals = s.dropna()
            if len(vals) and (vals % 1 == 0).all():
                s = s.astype("Int64")
        elif s.dtype == object:
            s = s.map(lambda v: ";".join(map(str, v)) if isinstance(v, (list, tuple, np.ndarray)) else v)
        s = s.astype(object).where(s.notna(), "")
        out[str(c).strip()] = s.astype(str).str.strip().astype(object)  # object: fast isin/merge on ids
    return pd.DataFrame(out, index=df.index)


def _read_csv(path: Path) -> pd.DataFrame:
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    return _stringify(df)


def _read_table(folder: Path, name: str, required: bool = True) -> pd.DataFrame | None:
    for ext in ("csv", "parquet"):
        p = Path(folder) / f"{name}.{ext}"
        if p.exists():
            if ext == "csv":
                return _read_csv(p)
            return _stringify(pd.read_parquet(p))
    if required:
        raise FileNotFoundError(f"input table {name}.csv/.parquet not found in {folder}")
    return None


def _num(s: pd.Series) -> pd.Series:
    return pd.to_numeric(s.astype(str).str.strip().replace("", np.nan), errors="coerce").astype(float)


def _int_year(s: pd.Series) -> pd.Series:
    """Numeric year, NaN when missing or not an integer."""
    v = _num(s)
    return v.where(v == np.round(v))


def _bool(s: pd.Series, default=None, name: str = "") -> pd.Series:
    """Parse booleans; '' -> default; unknown -> error (default given) or NaN."""
    low = s.astype(str).str.strip().str.lower()
    out = pd.Series(np.nan, index=s.index, dtype=object)
    out[low.isin(_TRUE)] = True
    out[low.isin(_FALSE)] = False
    if default is not None:
        out[low == ""] = default
        bad = out.isna()
        if bad.any():
            raise ValueError(f"bad boolean in {name}: {sorted(set(low[bad]))[:5]}")
        return out.astype(bool)
    return out


def _col(df: pd.DataFrame, name: str, default: str = "") -> pd.Series:
    return df[name] if name in df.columns else pd.Series(default, index=df.index, dtype=object)


def _split_long(df: pd.DataFrame, keys: list[str], col: str, out: str) -> pd.DataFrame:
    """Explode a ';'-list column into long form (keys..., out); empty items dropped."""
    long = df[keys].assign(**{out: df[col].astype(str).str.split(";")}).explode(out)
    long[out] = long[out].astype(str).str.strip()
    return long[long[out] != ""].reset_index(drop=True)


# --------------------------------------------------------------------------
# inputs
# --------------------------------------------------------------------------
def _ancestors(regions: pd.DataFrame) -> pd.DataFrame:
    """Long table (region_id, ancestor_id, depth) including the region itself."""
    parent = regions.drop_duplicates("region_id").set_index("region_id")["parent_id"]
    cur = pd.DataFrame({"region_id": regions["region_id"], "ancestor_id": regions["region_id"], "depth": 0})
    parts = [cur]
    for depth in range(1, len(regions) + 1):
        cur = cur.assign(ancestor_id=cur["ancestor_id"].map(parent), depth=depth)
        cur = cur[cur["ancestor_id"].notna() & (cur["ancestor_id"] != "")]
        if cur.empty:
            break
        parts.append(cur)
    return pd.concat(parts, ignore_index=True)


def _thresholds(policy: dict) -> tuple[float, float]:
    cet = policy.get("county_exit_threshold")
    if cet is None:
        return 0.02, 0.03
    if isinstance(cet, (int, float)):
        return float(cet), float(cet)
    return float(cet.get("default", 0.02)), float(cet.get("western", 0.03))


def _load_inputs(data_dir: Path, policy: dict) -> dict:
    regions = _read_table(data_dir, "regions")
    villages = _read_table(data_dir, "villages")
    households = _read_table(data_dir, "households")
    packages = _read_table(data_dir, "packages")
    projects = _read_table(data_dir, "projects")
    funds = _read_table(data_dir, "funds")
    personnel = _read_table(data_dir, "personnel", required=False)
    targets = _read_table(data_dir, "targets", required=False)

    regions = regions.assign(
        parent_id=_col(regions, "parent_id"),
        level=regions["level"].str.lower(),
        western=_bool(_col(regions, "western"), False, "regions.western"),
        rural_population=_num(_col(regions, "rural_population")).fillna(0.0),
        hat_off_year=_int_year(_col(regions, "hat_off_year")),
    )
    anc = _ancestors(regions)
    level = regions.drop_duplicates("region_id").set_index("region_id")["level"]
    county_of = (
        anc[anc["ancestor_id"].map(level) == "county"]
        .sort_values("depth")
        .drop_duplicates("region_id")
        .set_index("region_id")["ancestor_id"]
    )
    default_thr, western_thr = _thresholds(policy)
    counties = regions.loc[regions["level"] == "county", ["region_id", "western", "rural_population", "hat_off_year"]]
    counties = counties.rename(columns={"region_id": "county_id"}).drop_duplicates("county_id")
    counties["threshold"] = np.where(counties["western"], western_thr, default_thr)

    villages = villages.assign(county_id=villages["township_id"].map(county_of).fillna(""))
    households = households.assign(
        registered_poor=_bool(households["registered_poor"], False, "households.registered_poor"),
        baseline_exit_probability=_num(_col(households, "baseline_exit_probability")).fillna(0.0),
        # the chance the household is truly poor; empty or absent: 1 for the registered
        poverty_in=_num(_col(households, "poverty_probability")),
    ).merge(villages[["village_id", "township_id", "county_id"]], on="village_id", how="left")
    households[["township_id", "county_id"]] = households[["township_id", "county_id"]].fillna("")

    packages = packages.assign(
        cost=_num(packages["cost"]).fillna(0.0),
        personnel_hours=_num(_col(packages, "personnel_hours")).fillna(0.0),
        exit_probability=_num(packages["exit_probability"]),
        sustained_probability=_num(_col(packages, "sustained_probability")),
        lag_years=_num(_col(packages, "lag_years")).fillna(0.0),
        requires=_col(packages, "requires"),
    ).drop_duplicates(["household_id", "package_id"])

    projects = projects.assign(
        cost=_num(projects["cost"]).fillna(0.0),
        duration_years=_num(projects["duration_years"]).fillna(0.0),
        mandatory=_bool(_col(projects, "mandatory"), False, "projects.mandatory"),
    ).drop_duplicates(["village_id", "project_id"])
    projects = projects.merge(villages[["village_id", "county_id"]], on="village_id", how="left")
    projects["county_id"] = projects["county_id"].fillna("")

    funds = funds.assign(
        year=_int_year(funds["year"]),
        amount=_num(funds["amount"]).fillna(0.0),
        categories=_col(funds, "categories", "*").replace("", "*"),
        regions=_col(funds, "regions", "*").replace("", "*"),
        carry_over=_bool(_col(funds, "carry_over"), False, "funds.carry_over"),
        carry_over_years=_num(_col(funds, "carry_over_years")),
        min_spend_share=_num(_col(funds, "min_spend_share")).fillna(0.0),
    )
    if personnel is not None:
        personnel = personnel.assign(year=_int_year(personnel["year"]), hours=_num(personnel["hours"]).fillna(0.0))

    if targets is not None:
        targets = targets.assign(year=_int_year(targets["year"]), max_poor_share=_num(targets["max_poor_share"]))
    return dict(regions=regions, anc=anc, counties=counties, villages=villages, households=households,
                packages=packages, projects=projects, funds=funds, personnel=personnel, targets=targets)


# --------------------------------------------------------------------------
# plan
# --------------------------------------------------------------------------
_PLAN_COLUMNS = {
    "households": ["household_id", "village_id", "county_id", "package_id", "category", "start_year", "cost",
                   "exit_probability", "sustained_probability", "exit_year"],
    "projects": ["village_id", "project_id", "category", "start_year", "cost", "mandatory"],
    "funding": ["source_id", "county_id", "category", "year", "amount"],
    "counties": ["county_id", "registered_poor", "expected_exits", "expected_incidence", "threshold", "on_schedule",
                 "shortfall_households", "spend", "hat_off_year", "achieved_hat_off_year"],
    "path": ["year", "region_id", "registered_poor", "expected_poor", "target", "shortfall"],
}
_SUMMARY_KEYS = ["status", "expected_exits", "sustained_exits", "household_years", "value", "total_cost",
                 "counties_on_schedule", "counties_total", "total_shortfall", "target_shortfall", "objective", "bound",
                 "gap"]


def _load_plan(plan_dir: Path, rep: _Report) -> dict | None:
    plan = {}
    for name, cols in _PLAN_COLUMNS.items():
        p = plan_dir / f"{name}.csv"
        if not p.exists():
            rep.add(f"plan: {name}.csv missing")
            continue
        df = _read_csv(p)
        missing = [c for c in cols if c not in df.columns]
        if missing:
            rep.add(f"plan: {name}.csv lacks columns {missing}")
            continue
        plan[name] = df
    return plan if len(plan) == len(_PLAN_COLUMNS) else None


# --------------------------------------------------------------------------
# checks
# --------------------------------------------------------------------------
def _check_households(ctx: dict, rep: _Report) -> pd.DataFrame:
    """Rules 1-3; returns one row per registered poor household with its expected exit."""
    inp, ph, years, deadline = ctx["inp"], ctx["plan"]["households"], ctx["years"], ctx["deadline"]
    hh = inp["households"]
    rp = hh[hh["registered_poor"]]

    # rule 1
    dup = ph[ph["household_id"].duplicated()].drop_duplicates("household_id")
    rep.rows(dup, lambda r: f"rule 1 households: household {r.household_id} appears more than once", "rule 1")
    extra = ph[~ph["household_id"].isin(rp["household_id"])].drop_duplicates("household_id")
    extra = extra.assign(known=extra["household_id"].isin(hh["household_id"]))
    rep.rows(extra, lambda r: f"rule 1 households: household {r.household_id} is "
             f"{'not registered poor' if r.known else 'not in the inputs'} but is in households.csv", "rule 1")
    missing = rp[~rp["household_id"].isin(ph["household_id"])]
    rep.rows(missing, lambda r: f"rule 1 households: registered poor household {r.household_id} missing", "rule 1")

    p1 = ph.drop_duplicates("household_id").merge(
        rp[["household_id", "village_id", "county_id", "township_id", "baseline_exit_probability",
            "poverty_in"]].rename(
            columns={"village_id": "village_id_in", "county_id": "county_id_in", "township_id": "township_in",
                     "baseline_exit_probability": "baseline_in"}),
        on="household_id")
    bad = p1[(p1["village_id"] != p1["village_id_in"]) | (p1["county_id"] != p1["county_id_in"])]
    rep.rows(bad, lambda r: f"rule 1 households: household {r.household_id} has village/county "
             f"{r.village_id}/{r.county_id}, inputs say {r.village_id_in}/{r.county_id_in}", "rule 1")

    # rule 2
    p1 = p1.assign(start=_int_year(p1["start_year"]), plan_cost=_num(p1["cost"]),
                   plan_exit=_num(p1["exit_probability"]))
    pk = inp["packages"].rename(columns={"category": "category_in", "cost": "cost_in", "exit_probability": "pkg_exit",
                                         "sustained_probability": "pkg_sustained", "lag_years": "lag_in",
                                         "personnel_hours": "hours_in", "requires": "requires_in"})
    p1 = p1.merge(pk[["household_id", "package_id", "category_in", "cost_in", "pkg_exit", "pkg_sustained", "lag_in",
                      "hours_in", "requires_in"]],
                  on=["household_id", "package_id"], how="left", indicator=True)
    has_pkg = p1["package_id"] != ""
    found = p1["_merge"] == "both"
    bad = p1[has_pkg & ~found]
    rep.rows(bad, lambda r: f"rule 2 package: household {r.household_id} chooses package {r.package_id} "
             f"which is not one of its packages", "rule 2")
    ok = p1[found]
    bad = ok[ok["category"] != ok["category_in"]]
    rep.rows(bad, lambda r: f"rule 2 package: household {r.household_id} package {r.package_id} category "
             f"{r.category} != input {r.category_in}", "rule 2")
    bad = ok[_money_bad(ok["plan_cost"], ok["cost_in"], ctx["tol"])]
    rep.rows(bad, lambda r: f"rule 2 package: household {r.household_id} package {r.package_id} cost "
             f"{_m(r.plan_cost)} != input {_m(r.cost_in)}", "rule 2")
    bad = p1[has_pkg & ~p1["start"].isin(years)]
    rep.rows(bad, lambda r: f"rule 2 package: household {r.household_id} package {r.package_id} start_year "
             f"{r.start_year!r} not in {years[0]}..{years[-1]}", "rule 2")
    bad = p1[~has_pkg & ((p1["start_year"] != "") | (p1["plan_cost"].fillna(0.0) != 0))]
    rep.rows(bad, lambda r: f"rule 2 package: household {r.household_id} has no package but start_year "
             f"{r.start_year!r} / cost {r.cost!r}", "rule 2")

    # rule 3: the exit counts from the end of start + lag; sustained when it also lasts
    counted = found & (p1["start"] + p1["lag_in"] <= deadline)
    p1["exit"] = np.where(counted, p1["pkg_exit"], p1["baseline_in"])
    p1["exit_from"] = np.where(counted, p1["start"] + p1["lag_in"], np.nan)
    sustained = p1["pkg_sustained"].where(p1["pkg_sustained"].notna(), p1["pkg_exit"])
    p1["sustained"] = np.where(counted, sustained, p1["baseline_in"])
    p1["chosen"] = found
    bad = p1[~(np.abs(p1["plan_exit"] - p1["exit"]) <= EXIT_TOL)]
    rep.rows(bad, lambda r: f"rule 3 exit: household {r.household_id} exit_probability {_g(r.plan_exit)} "
             f"!= expected {_g(r.exit)}", "rule 3")
    got = _num(p1["sustained_probability"])
    bad = p1[~(np.abs(got - p1["sustained"]) <= EXIT_TOL)]
    rep.rows(bad, lambda r: f"rule 3 sustained: household {r.household_id} sustained_probability "
             f"{r.sustained_probability!r} != expected {_g(r.sustained)}", "rule 3")
    # rule 3: the household's poverty probability q (empty: 1) as in the inputs
    p1["q"] = p1["poverty_in"].fillna(1.0)
    if "poverty_probability" in p1.columns:
        got = _num(p1["poverty_probability"])
        bad = p1[~(np.abs(got - p1["q"]) <= EXIT_TOL)]
        rep.rows(bad, lambda r: f"rule 3 poverty probability: household {r.household_id} poverty_probability "
                 f"{r.poverty_probability!r} != input {_g(r.q)}", "rule 3")
    got = _int_year(p1["exit_year"])
    bad = p1[~((got == p1["exit_from"]) | (got.isna() & p1["exit_from"].isna()))]
    rep.rows(bad, lambda r: f"rule 3 exit year: household {r.household_id} exit_year {r.exit_year!r} != "
             f"{_y(r.exit_from)}", "rule 3")
    return p1


def _exit_by_year(ctx: dict, hh: pd.DataFrame) -> pd.DataFrame:
    """Each registered poor household's chance to be out of poverty at each year-end: the
    package's exit probability from start + lag on, else the baseline reached at a constant
    yearly rate, 1 - (1 - b)^((year - start + 1) / T)."""
    years = ctx["years"]
    T = len(years)
    out = {}
    for i, year in enumerate(years):
        base = 1.0 - (1.0 - hh["baseline_in"]) ** ((i + 1) / T)
        out[year] = np.where(hh["exit_from"] <= year, hh["pkg_exit"], base)
    return pd.DataFrame(out, index=hh.index)


def _check_projects(ctx: dict, rep: _Report) -> pd.DataFrame:
    """Rule 4; returns built projects that exist in the inputs (with input values)."""
    inp, pp, years, deadline = ctx["inp"], ctx["plan"]["projects"], ctx["years"], ctx["deadline"]
    key = ["village_id", "project_id"]
    dup = pp[pp.duplicated(key)].drop_duplicates(key)
    rep.rows(dup, lambda r: f"rule 4 projects: project {r.village_id}/{r.project_id} built more than once", "rule 4")
    p1 = pp.drop_duplicates(key)
    p1 = p1.assign(start=_int_year(p1["start_year"]), plan_cost=_num(p1["cost"]), plan_mand=_bool(p1["mandatory"]))
    pj = inp["projects"].rename(columns={"category": "category_in", "cost": "cost_in", "mandatory": "mand_in",
                                         "duration_years": "duration_in", "county_id": "county_id_in"})
    p1 = p1.merge(pj[key + ["category_in", "cost_in", "mand_in", "duration_in", "county_id_in"]],
                  on=key, how="left", indicator=True)
    bad = p1[p1["_merge"] != "both"]
    rep.rows(bad, lambda r: f"rule 4 projects: project {r.village_id}/{r.project_id} not in the inputs", "rule 4")
    ok = p1[p1["_merge"] == "both"].copy()
    bad = ok[ok["category"] != ok["category_in"]]
    rep.rows(bad, lambda r: f"rule 4 projects: project {r.village_id}/{r.project_id} category {r.category} "
             f"!= input {r.category_in}", "rule 4")
    bad = ok[_money_bad(ok["plan_cost"], ok["cost_in"], ctx["tol"])]
    rep.rows(bad, lambda r: f"rule 4 projects: project {r.village_id}/{r.project_id} cost {_m(r.plan_cost)} "
             f"!= input {_m(r.cost_in)}", "rule 4")
    bad = ok[ok["plan_mand"].isna() | (ok["plan_mand"] != ok["mand_in"])]
    rep.rows(bad, lambda r: f"rule 4 projects: project {r.village_id}/{r.project_id} mandatory "
             f"{r.mandatory!r} != input {r.mand_in}", "rule 4")
    bad = p1[~p1["start"].isin(years)]
    rep.rows(bad, lambda r: f"rule 4 projects: project {r.village_id}/{r.project_id} start_year "
             f"{r.start_year!r} not in {years[0]}..{years[-1]}", "rule 4")

    mand = inp["projects"][inp["projects"]["mandatory"]].merge(ok[key + ["start"]], on=key, how="left")
    mand = mand.assign(finish=mand["start"] + mand["duration_years"] - 1)
    bad = mand[mand["start"].isna() | ~(mand["finish"] <= deadline)]
    rep.rows(bad, lambda r: f"rule 4 mandatory: project {r.village_id}/{r.project_id} "
             + ("not built" if pd.isna(r.start) else
                f"starts {_y(r.start)} and finishes {_y(r.finish)} > deadline {deadline}"), "rule 4")
    return ok


def _check_prerequisites(ctx: dict, hh: pd.DataFrame, built: pd.DataFrame, rep: _Report) -> None:
    """Rule 5."""
    chosen = hh[hh["chosen"] & hh["start"].notna()]
    req = _split_long(chosen, ["household_id", "package_id", "village_id_in", "start"], "requires_in", "req")
    req = req.merge(built[["village_id", "project_id", "start", "duration_in"]].rename(
        columns={"village_id": "village_id_in", "project_id": "req", "start": "proj_start"}),
        on=["village_id_in", "req"], how="left")
    req = req.assign(done=req["proj_start"] + req["duration_in"])
    bad = req[~(req["done"] <= req["start"])]
    rep.rows(bad, lambda r: f"rule 5 prerequisite: household {r.household_id} package {r.package_id} starts "
             f"{_y(r.start)} but project {r.village_id_in}/{r.req} "
             + ("is not built" if pd.isna(r.proj_start) else f"is only finished for {_y(r.done)}"), "rule 5")


def _spend(hh: pd.DataFrame, built: pd.DataFrame) -> pd.DataFrame:
    """Recomputed spend per (county_id, category, year)."""
    pk = hh[hh["chosen"] & hh["start"].notna()]
    parts = [
        pd.DataFrame({"county_id": pk["county_id_in"], "category": pk["category_in"], "year": pk["start"],
                      "spend": pk["cost_in"]}),
        pd.DataFrame({"county_id": built["county_id_in"], "category": built["category_in"], "year": built["start"],
                      "spend": built["cost_in"]}).dropna(subset=["year"]),
    ]
    parts = [p for p in parts if len(p)]
    if not parts:
        return pd.DataFrame({"county_id": pd.Series(dtype=object), "category": pd.Series(dtype=object),
                             "year": pd.Series(dtype=float), "spend": pd.Series(dtype=float)})
    return pd.concat(parts, ignore_index=True).groupby(["county_id", "category", "year"], as_index=False)["spend"].sum()


def _check_money(ctx: dict, spend: pd.DataFrame, rep: _Report) -> pd.DataFrame:
    """Rule 6; returns the parsed flows."""
    inp, tol = ctx["inp"], ctx["tol"]
    fl = ctx["plan"]["funding"]
    fl = fl.assign(year=_int_year(fl["year"]), amount=_num(fl["amount"])).reset_index(drop=True)
    fl["fid"] = np.arange(len(fl))
    bad = fl[fl["year"].isna() | fl["amount"].isna()]
    rep.rows(bad, lambda r: f"rule 6 money: flow {r.source_id}/{r.county_id}/{r.category} has unparsable "
             f"year or amount", "rule 6")
    fl = fl.dropna(subset=["year", "amount"])
    bad = fl[fl["amount"] < 0]
    rep.rows(bad, lambda r: f"rule 6 money: negative flow {_m(r.amount)} from {r.source_id} to {r.county_id} "
             f"{r.category} {_y(r.year)}", "rule 6")

    keys = ["county_id", "category", "year"]
    cmp = spend.merge(fl.groupby(keys, as_index=False)["amount"].sum(), on=keys, how="outer")
    cmp[["spend", "amount"]] = cmp[["spend", "amount"]].fillna(0.0)
    bad = cmp[_money_bad(cmp["spend"], cmp["amount"], tol)]
    rep.rows(bad, lambda r: f"rule 6 money: county {r.county_id} {r.category} {_y(r.year)} flows {_m(r.amount)} "
             f"!= spend {_m(r.spend)}", "rule 6")

    funds = inp["funds"]
    fk = ["source_id", "year"]
    m = fl.merge(funds[fk].drop_duplicates(), on=fk, how="left", indicator=True)
    bad = m[m["_merge"] != "both"]
    rep.rows(bad, lambda r: f"rule 6 eligibility: flow from source {r.source_id} year {_y(r.year)} has no "
             f"funds row", "rule 6")
    known = fl[fl["fid"].isin(m.loc[m["_merge"] == "both", "fid"])]

    cats = _split_long(funds, fk, "categories", "category")
    ok_ids = known.merge(cats, on=fk + ["category"])["fid"]
    star = known.merge(cats[cats["category"] == "*"], on=fk)["fid"]
    bad = known[~known["fid"].isin(ok_ids) & ~known["fid"].isin(star)]
    rep.rows(bad, lambda r: f"rule 6 eligibility: source {r.source_id} year {_y(r.year)} may not fund "
             f"category {r.category} (county {r.county_id})", "rule 6")

    regs = _split_long(funds, fk, "regions", "region")
    anc = inp["anc"].rename(columns={"region_id": "county_id", "ancestor_id": "region"})[["county_id", "region"]]
    ok_ids = known.merge(regs, on=fk).merge(anc, on=["county_id", "region"])["fid"]
    star = known.merge(regs[regs["region"] == "*"], on=fk)["fid"]
    bad = known[~known["fid"].isin(ok_ids) & ~known["fid"].isin(star)]
    rep.rows(bad, lambda r: f"rule 6 eligibility: source {r.source_id} year {_y(r.year)} may not fund "
             f"county {r.county_id}", "rule 6")
    bad = fl[~fl["county_id"].isin(inp["counties"]["county_id"])].drop_duplicates("county_id")
    rep.rows(bad, lambda r: f"rule 6 eligibility: flow to {r.county_id} which is not a county", "rule 6")
    return fl


def _check_budgets(ctx: dict, fl: pd.DataFrame, rep: _Report) -> None:
    """Rule 7: every source pays each year's spend from money it still holds, oldest first:
    its own year's amount without carry-over; with carry-over, what earlier years left, except
    money older than carry_over_years, which is recalled. And the pace: cumulative spend
    through a year >= min_spend_share x cumulative amount through it."""
    tol, years = ctx["tol"], ctx["years"]
    funds = ctx["inp"]["funds"]
    used = fl.groupby(["source_id", "year"])["amount"].sum()
    ctx["leftover"] = {}  # (source, year) -> (money it still holds after the year's spend, carry-over?)
    for source, rows in funds.groupby("source_id"):
        carry = bool(rows["carry_over"].any())
        recall = rows["carry_over_years"].dropna()
        recall = int(recall.iloc[0]) if carry and len(recall) else None
        amount = rows.groupby("year")["amount"].sum()
        pace = rows.set_index("year")["min_spend_share"]
        held: list[list[float]] = []  # [year, money left], oldest first
        spent_total = amount_total = 0.0
        for year in years:
            if not carry:
                held = []
            held = [h for h in held if recall is None or year - h[0] <= recall]
            held.append([year, float(amount.get(year, 0.0))])
            need = float(used.get((source, year), 0.0))
            have = sum(h[1] for h in held)
            if need > have + 0.01 + tol * abs(have):
                rep.add(f"rule 7 budget: source {source} year {year} spends {_m(need)} > the {_m(have)} it still "
                        "holds" + (" (carry-over" + (f", recalled after {recall} years)" if recall is not None
                                                     else ")") if carry else ""))
            for h in held:
                take = min(h[1], need)
                h[1] -= take
                need -= take
            ctx["leftover"][(source, year)] = (sum(h[1] for h in held), carry)
            spent_total += float(used.get((source, year), 0.0))
            amount_total += float(amount.get(year, 0.0))
            share = float(pace.get(year, 0.0)) if year in pace.index else 0.0
            if share > 0 and spent_total < share * amount_total - 0.01 - tol * amount_total:
                rep.add(f"rule 7 pace: source {source} has spent {_m(spent_total)} by {year} < {share:.0%} of "
                        f"{_m(amount_total)}")


def _check_shares(ctx: dict, spend: pd.DataFrame, rep: _Report) -> None:
    """Rule 8."""
    tol, policy = ctx["tol"], ctx["policy"]
    total = float(spend["spend"].sum())
    if total == 0:
        return
    by_cat = spend.groupby("category")["spend"].sum()
    for cat, lo in (policy.get("min_category_share") or {}).items():
        share = float(by_cat.get(cat, 0.0)) / total
        if share < float(lo) - tol:
            rep.add(f"rule 8 share: category {cat} share {share:.6f} < min {float(lo):.6f} "
                    f"(spend {_m(by_cat.get(cat, 0.0))} of {_m(total)})")
    for cat, hi in (policy.get("max_category_share") or {}).items():
        share = float(by_cat.get(cat, 0.0)) / total
        if share > float(hi) + tol:
            rep.add(f"rule 8 share: category {cat} share {share:.6f} > max {float(hi):.6f} "
                    f"(spend {_m(by_cat.get(cat, 0.0))} of {_m(total)})")


def _check_source_rules(ctx: dict, fl: pd.DataFrame, rep: _Report) -> None:
    """Rule 8b: category shares of one source's spend, and county floors (each county a source
    pays anything gets at least its share of that source's spend)."""
    tol, policy = ctx["tol"], ctx["policy"]
    for kind in ("min", "max"):
        for source, shares in (policy.get(f"{kind}_source_category_share") or {}).items():
            mine = fl[fl["source_id"] == source]
            total = float(mine["amount"].sum())
            for cat, bound in shares.items():
                got = float(mine.loc[mine["category"] == cat, "amount"].sum())
                if (kind == "min" and got < float(bound) * total - 0.01 - tol * total) or (
                        kind == "max" and got > float(bound) * total + 0.01 + tol * total):
                    rep.add(f"rule 8b source share: {source} spends {_m(got)} of {_m(total)} on {cat}, "
                            f"{kind} share {float(bound):.2%}")
    for source, share in (policy.get("county_floor_share") or {}).items():
        mine = fl[fl["source_id"] == source]
        total = float(mine["amount"].sum())
        by_county = mine.groupby("county_id")["amount"].sum()
        for county, got in by_county.items():
            if got < float(share) * total - 0.01 - tol * total:
                rep.add(f"rule 8b county floor: {county} gets {_m(got)} of {source}'s {_m(total)} < {float(share):.2%}")


def _check_personnel(ctx: dict, hh: pd.DataFrame, rep: _Report) -> None:
    """Rule 9."""
    pers, tol = ctx["inp"]["personnel"], ctx["tol"]
    if pers is None or pers.empty:
        return
    pk = hh[hh["chosen"] & hh["start"].notna()][["township_in", "start", "hours_in"]]
    anc = ctx["inp"]["anc"].rename(columns={"region_id": "township_in", "ancestor_id": "region_id"})
    used = (pk.merge(anc[["township_in", "region_id"]], on="township_in")
            .groupby(["region_id", "start"], as_index=False)["hours_in"].sum()
            .rename(columns={"start": "year", "hours_in": "used"}))
    p = pers.merge(used, on=["region_id", "year"], how="left").fillna({"used": 0.0})
    bad = p[p["used"] > p["hours"] * (1 + tol) + tol]
    rep.rows(bad, lambda r: f"rule 9 personnel: region {r.region_id} year {_y(r.year)} uses "
             f"{r.used:,.2f} hours > {r.hours:,.2f}", "rule 9")


def _check_counties(ctx: dict, hh: pd.DataFrame, spend: pd.DataFrame, rep: _Report) -> pd.DataFrame:
    """Rule 10; returns the recomputed county table (columns r_*)."""
    tol, inp, years = ctx["tol"], ctx["inp"], ctx["years"]
    agg = hh.groupby("county_id_in").agg(r_rp=("household_id", "size"), r_exits=("exit", "sum"))
    c = inp["counties"].rename(columns={"threshold": "r_thr", "rural_population": "r_pop"}).set_index("county_id")
    c = c[["r_thr", "r_pop", "hat_off_year"]].join(agg, how="left").fillna({"r_rp": 0, "r_exits": 0.0})
    c["r_hat"] = c.pop("hat_off_year").fillna(ctx["deadline"])
    c["r_spend"] = spend.groupby("county_id")["spend"].sum().reindex(c.index).fillna(0.0)
    by_year = ctx["exits_by_year"].groupby(hh["county_id_in"]).sum().reindex(c.index).fillna(0.0)
    short = np.maximum(0.0, c["r_rp"].to_numpy()[:, None] - by_year[years].to_numpy()
                       - (c["r_thr"] * c["r_pop"]).to_numpy()[:, None])  # per county and year-end
    at_hat = np.searchsorted(years, c["r_hat"].to_numpy())
    c["r_short"] = short[np.arange(len(c)), np.clip(at_hat, 0, len(years) - 1)]
    meets = short <= tol
    c["r_achieved"] = np.where(meets.any(axis=1), np.array(years)[np.argmax(meets, axis=1)], np.nan)
    c["r_on"] = c["r_short"] <= tol
    c["r_inc"] = (c["r_rp"] - c["r_exits"]) / c["r_pop"].where(c["r_pop"] != 0)
    c = c.reset_index()

    pc = ctx["plan"]["counties"]
    dup = pc[pc["county_id"].duplicated()].drop_duplicates("county_id")
    rep.rows(dup, lambda r: f"rule 10 counties: county {r.county_id} listed more than once", "rule 10")
    need = c[c["r_rp"] > 0]
    bad = need[~need["county_id"].isin(pc["county_id"])]
    rep.rows(bad, lambda r: f"rule 10 counties: county {r.county_id} with {int(r.r_rp)} registered poor "
             f"missing from counties.csv", "rule 10")
    bad = pc[~pc["county_id"].isin(c["county_id"])].drop_duplicates("county_id")
    rep.rows(bad, lambda r: f"rule 10 counties: {r.county_id} in counties.csv is not a county", "rule 10")

    m = pc.drop_duplicates("county_id").merge(c, on="county_id")
    checks = [
        ("registered_poor", "r_rp", lambda a, b: ~(np.abs(a - b) <= 1e-9)),
        ("expected_exits", "r_exits", lambda a, b: ~(np.abs(a - b) <= tol + tol * np.abs(b))),
        ("threshold", "r_thr", lambda a, b: ~(np.abs(a - b) <= 1e-9)),
        ("shortfall_households", "r_short", lambda a, b: ~(np.abs(a - b) <= 10 * tol)),
        ("spend", "r_spend", lambda a, b: _money_bad(a, b, tol)),
        ("expected_incidence", "r_inc", lambda a, b: b.notna() & ~(np.abs(a - b) <= tol)),
        ("hat_off_year", "r_hat", lambda a, b: ~(a == b)),
        ("achieved_hat_off_year", "r_achieved", lambda a, b: ~((a == b) | (a.isna() & b.isna()))),
    ]
    for col, ref, is_bad in checks:
        mm = m.assign(got=_num(m[col]), ref=m[ref])
        bad = mm[np.asarray(is_bad(mm["got"], mm["ref"]), dtype=bool)]
        rep.rows(bad, lambda r, col=col: f"rule 10 counties: county {r.county_id} {col} {_g(r.got)} "
                 f"!= recomputed {_g(r.ref)}", "rule 10")
    got = _bool(m["on_schedule"])
    mask = got.isna() | (got != m["r_on"])
    rep.rows(m[mask], lambda r: f"rule 10 counties: county {r.county_id} on_schedule {r.on_schedule!r} but "
             f"shortfall is {_g(r.r_short)}", "rule 10")

    if str(ctx["policy"].get("deadline", "soft")).lower() == "hard":
        bad = need[~need["r_on"]]
        rep.rows(bad, lambda r: f"rule 10 hard deadline: county {r.county_id} is off schedule "
                 f"(shortfall {_g(r.r_short)} households)", "rule 10")
    return c


def _targets(ctx: dict) -> pd.DataFrame:
    """The annual targets in force: the targets table, with policy.annual_targets replacing its
    scenario-wide rows (region_id empty)."""
    table = ctx["inp"]["targets"]
    rows = (table[["region_id", "year", "max_poor_share"]] if table is not None
            else pd.DataFrame({"region_id": [], "year": [], "max_poor_share": []}))
    policy_targets = ctx["policy"].get("annual_targets") or {}
    if policy_targets:
        rows = pd.concat([rows[rows["region_id"] != ""],
                          pd.DataFrame({"region_id": "", "year": [float(y) for y in policy_targets],
                                        "max_poor_share": [float(v) for v in policy_targets.values()]})])
    return rows.reset_index(drop=True)


def _members(ctx: dict, hh: pd.DataFrame, region: str) -> pd.Series:
    """Which registered poor households a region holds ('' = the whole scenario)."""
    if region == "":
        return pd.Series(True, index=hh.index)
    anc = ctx["inp"]["anc"]
    return hh["county_id_in"].isin(set(anc.loc[anc["ancestor_id"] == region, "region_id"]))


def _target_shortfalls(ctx: dict, hh: pd.DataFrame) -> list:
    """Each annual target over a region with registered poor: (region_id, year, max_poor_share,
    inside, short), short = max(0, expected poor at the year-end - max_poor_share x registered)."""
    exits, out = ctx["exits_by_year"], []
    for t in _targets(ctx).itertuples(index=False):
        inside = _members(ctx, hh, t.region_id)
        if not inside.any():
            continue
        poor = float(inside.sum()) - float(exits.loc[inside, int(t.year)].sum())
        short = max(poor - float(t.max_poor_share) * float(inside.sum()), 0.0)
        out.append(_Target(t.region_id, int(t.year), float(t.max_poor_share), inside, short))
    return out


def _check_path(ctx: dict, hh: pd.DataFrame, rep: _Report) -> float:
    """Rule 12: path.csv's expected poor per year (whole scenario and each county) and each
    annual target's shortfall; returns the total target shortfall."""
    tol, years = ctx["tol"], ctx["years"]
    exits = ctx["exits_by_year"]
    path = ctx["plan"]["path"].assign(year=lambda d: _int_year(d["year"]), got=lambda d: _num(d["expected_poor"]),
                                      got_target=lambda d: _num(d["target"]), got_short=lambda d: _num(d["shortfall"]))
    path = path.set_index(["region_id", "year"])
    county_of_hh = hh["county_id_in"]
    regions = [""] + sorted(set(county_of_hh))
    for region in regions:
        inside = _members(ctx, hh, region)
        for year in years:
            want = float(inside.sum()) - float(exits.loc[inside, year].sum())
            if (region, year) not in path.index:
                rep.add(f"rule 12 path: no row for region {region!r} year {year}")
                continue
            got = float(path.loc[(region, year), "got"])
            if not abs(got - want) <= tol * max(1.0, abs(want)):
                rep.add(f"rule 12 path: region {region!r} year {year} expected_poor {_g(got)} != recomputed {_g(want)}")
    total = 0.0
    for t in _target_shortfalls(ctx, hh):
        short = t.short
        total += short
        key = (t.region_id, int(t.year))
        if key not in path.index:
            rep.add(f"rule 12 target: no path row for the target of {t.region_id!r} in {int(t.year)}")
            continue
        row = path.loc[key]
        if not abs(float(row["got_target"]) - float(t.max_poor_share)) <= 1e-9:
            rep.add(f"rule 12 target: {t.region_id!r} {int(t.year)} target {row['target']!r} != {t.max_poor_share}")
        if not abs(float(row["got_short"]) - short) <= 10 * tol * max(1.0, short):
            rep.add(f"rule 12 target: {t.region_id!r} {int(t.year)} shortfall {row['shortfall']!r} != recomputed "
                    f"{_g(short)}")
        if str(ctx["policy"].get("deadline", "soft")).lower() == "hard" and short > 10 * tol:
            rep.add(f"rule 12 hard deadline: {t.region_id!r} misses its {int(t.year)} target by {_g(short)} households")
    return total

SHORT_TOL = 1e-4  # households: a target shortfall below this is solver noise, not "behind"


def _removal_is_safe(ctx: dict, category: str) -> bool:
    """Whether dropping a package of this category can break no rule: no share rule on total
    spend, no per-source rule that asks for this category or caps another, no county floor and no
    disbursement pace (the plan's flows do not say which source paid one household)."""
    policy = ctx["policy"]
    if policy.get("min_category_share") or policy.get("max_category_share") or policy.get("county_floor_share"):
        return False
    if (policy.get("equity") or {}).get("county_floor_per_poor") is not None:
        return False
    if policy.get("max_source_category_share"):
        return False
    if any(category in (shares or {}) for shares in (policy.get("min_source_category_share") or {}).values()):
        return False
    return not (ctx["inp"]["funds"]["min_spend_share"] > 0).any()


def _source_takes(ctx: dict, fl: pd.DataFrame, spend: pd.DataFrame, source: str, category: str, county: str,
                  extra: float) -> bool:
    """Whether `source` paying `extra` more on `category` in `county` keeps every share and
    floor rule (per source and over total spend)."""
    policy, tol = ctx["policy"], 1e-9
    mine = fl[fl["source_id"] == source]
    total = float(mine["amount"].sum()) + extra
    by_cat = mine.groupby("category")["amount"].sum()
    for cat, lo in ((policy.get("min_source_category_share") or {}).get(source) or {}).items():
        if float(by_cat.get(cat, 0.0)) + extra * (cat == category) < float(lo) * total - tol * total:
            return False
    for cat, hi in ((policy.get("max_source_category_share") or {}).get(source) or {}).items():
        if cat == category and float(by_cat.get(cat, 0.0)) + extra > float(hi) * total + tol * total:
            return False
    floor = (policy.get("county_floor_share") or {}).get(source)
    if floor is not None:
        paid = mine.groupby("county_id")["amount"].sum()
        paid[county] = float(paid.get(county, 0.0)) + extra
        if (paid < float(floor) * total - tol * total).any():
            return False
    grand = float(spend["spend"].sum()) + extra
    all_cat = spend.groupby("category")["spend"].sum()
    for cat, lo in (policy.get("min_category_share") or {}).items():
        if float(all_cat.get(cat, 0.0)) + extra * (cat == category) < float(lo) * grand - tol * grand:
            return False
    for cat, hi in (policy.get("max_category_share") or {}).items():
        if cat == category and float(all_cat.get(cat, 0.0)) + extra > float(hi) * grand + tol * grand:
            return False
    return True


def _check_idle_money(ctx: dict, summary: dict, hh: pd.DataFrame, built: pd.DataFrame, fl: pd.DataFrame,
                      spend: pd.DataFrame, rep: _Report) -> None:
    """Rule 13: no money a rule lets the plan spend sits idle while the path is behind a target
    and a package that would help is affordable (optimised plans that ran to their end; baselines
    and plans stopped by their time limit are not asked).

    Checked as a swap a planner could make by hand, so a violation is certain: a household of a
    region behind its target takes a package (or starts one in another year) that leaves it at
    least as likely out of poverty at every year-end and as likely to stay out, lowers a behind
    target's shortfall, and is paid whole by one source from money that is idle in its start year
    and stays idle after (so no later payment needed it), with its prerequisites built, personnel
    hours to spare, and every share and floor rule kept. Money the old package frees is not counted."""
    if str(summary.get("method", "")).startswith("baseline") or summary.get("stopped_by") == "time_limit":
        return  # the usual rules are not optimised; a plan cut short by its time limit reports its gap instead
    equity = ctx["policy"].get("equity") or {}
    if equity.get("max_exit_rate_spread") is not None or equity.get("objective") == "maxmin":
        return  # a swap changes county exit rates, which the spread cap or the max-min stage may forbid
    behind = [t for t in _target_shortfalls(ctx, hh) if t.short > SHORT_TOL]
    if not behind:
        return
    inp, years, deadline = ctx["inp"], ctx["years"], ctx["deadline"]
    exits = ctx["exits_by_year"]
    near = np.zeros(len(hh), dtype=bool)
    for t in behind:
        near |= t.inside.to_numpy()
    base = hh.reset_index(drop=True).assign(row=np.arange(len(hh)))[near]
    cols = ["household_id", "package_id", "category", "cost", "exit_probability", "sustained_probability",
            "lag_years", "requires", "personnel_hours"]
    cand = base[["row", "household_id", "package_id", "chosen", "start", "cost_in", "category_in", "hours_in",
                 "sustained", "county_id_in", "village_id_in", "township_in"]].rename(
        columns={"package_id": "old_package", "start": "old_start", "cost_in": "old_cost",
                 "category_in": "old_category", "hours_in": "old_hours", "sustained": "old_sustained"}).merge(
        inp["packages"][cols], on="household_id")
    cand = cand.merge(pd.DataFrame({"new_start": np.array(years, dtype=float)}), how="cross")
    cand = cand[~((cand["package_id"] == cand["old_package"]) & (cand["new_start"] == cand["old_start"]))]
    cand = cand[cand["new_start"] + cand["lag_years"] <= deadline].reset_index(drop=True)
    if cand.empty:
        return

    # at least as likely out at every year-end and to stay out; the gain on the behind targets
    now = exits.to_numpy()[cand["row"].to_numpy()]
    grid = np.array(years, dtype=float)[None, :]
    first = (cand["new_start"] + cand["lag_years"]).to_numpy()[:, None]
    b = hh["baseline_in"].to_numpy()[cand["row"].to_numpy()][:, None]
    baseline = 1.0 - (1.0 - b) ** ((grid - years[0] + 1) / len(years))
    after = np.where(first <= grid, cand["exit_probability"].to_numpy()[:, None], baseline)
    sustained = cand["sustained_probability"].fillna(cand["exit_probability"])
    keep = (after >= now - 1e-9).all(axis=1) & (sustained.to_numpy() >= cand["old_sustained"].to_numpy() - 1e-9)
    gain = np.zeros(len(cand))
    for t in behind:
        inside = t.inside.to_numpy()[cand["row"].to_numpy()]
        y = years.index(t.year)
        gain += inside * np.minimum(np.maximum(after[:, y] - now[:, y], 0.0), t.short)
    cand = cand.assign(gain=gain)[keep & (gain > SHORT_TOL)]
    cand = cand[~cand["chosen"] | cand["old_category"].map(lambda c: _removal_is_safe(ctx, c))]
    if cand.empty:
        return

    # prerequisites finished by the new start
    done = built.assign(done=built["start"] + built["duration_in"]).groupby(["village_id", "project_id"])["done"].min()
    def ready(r) -> bool:
        need = [x.strip() for x in str(r.requires).split(";") if x.strip()]
        return all(done.get((r.village_id_in, x), np.inf) <= r.new_start for x in need)
    cand = cand[[ready(r) for r in cand.itertuples(index=False)]]

    # personnel hours to spare in the new start year (hours the old package frees that year count)
    pers = inp["personnel"]
    if pers is not None and not pers.empty and not cand.empty:
        anc = inp["anc"].rename(columns={"region_id": "township_in", "ancestor_id": "region_id"})[
            ["township_in", "region_id"]]
        busy = hh[hh["chosen"] & hh["start"].notna()][["township_in", "start", "hours_in"]].merge(anc, on="township_in")
        used = busy.groupby(["region_id", "start"])["hours_in"].sum()
        spare = pers.assign(spare=pers["hours"] - [used.get((r, y), 0.0) for r, y in zip(pers["region_id"],
                                                                                      pers["year"], strict=True)])
        spare = spare.set_index(["region_id", "year"])["spare"]
        def staffed(r) -> bool:
            freed = r.old_hours if r.chosen and r.old_start == r.new_start else 0.0
            for region in anc.loc[anc["township_in"] == r.township_in, "region_id"]:
                key = (region, r.new_start)
                if key in spare.index and r.personnel_hours > spare[key] + freed + 1e-9:
                    return False
            return True
        cand = cand[[staffed(r) for r in cand.itertuples(index=False)]]

    # one source with idle money that may pay it, keeping every share and floor rule
    funds = inp["funds"]
    left = ctx.get("leftover", {})
    found = []
    for r in cand.sort_values(["gain", "household_id", "package_id", "new_start"],
                              ascending=[False, True, True, True]).itertuples(index=False):
        if any(f[0] == r.household_id for f in found):
            continue
        for row in funds[funds["year"] == r.new_start].itertuples(index=False):
            cats = {c.strip() for c in str(row.categories).split(";")}
            regs = {x.strip() for x in str(row.regions).split(";")}
            lineage = set(inp["anc"].loc[inp["anc"]["region_id"] == r.county_id_in, "ancestor_id"])
            if not ("*" in cats or r.category in cats) or not ("*" in regs or regs & lineage):
                continue
            held, carry = left.get((row.source_id, int(r.new_start)), (0.0, False))
            idle = min([held] + [left[(row.source_id, y)][0] for y in years
                                 if carry and y > r.new_start and (row.source_id, y) in left])
            if r.cost <= idle - 0.01 and _source_takes(ctx, fl, spend, row.source_id, r.category, r.county_id_in,
                                                      float(r.cost)):
                found.append((r.household_id, r, row.source_id, idle))
                break
    for household_id, r, source, idle in found[:MAX_MESSAGES_PER_CHECK]:
        rep.add(f"rule 13 idle money: household {household_id} ({r.county_id_in}) could take package {r.package_id} "
                f"({r.category}, {_m(r.cost)} from {_y(r.new_start)}) paid by {source}'s {_m(idle)} idle from "
                f"{_y(r.new_start)} on, lowering target shortfalls by {_g(r.gain)} households")
    if len(found) > MAX_MESSAGES_PER_CHECK:
        rep.add(f"rule 13: ... and {len(found) - MAX_MESSAGES_PER_CHECK} more")


def _check_summary(ctx: dict, summary: dict, hh: pd.DataFrame, spend: pd.DataFrame, counties: pd.DataFrame,
                   target_short: float, rep: _Report) -> None:
    """Rule 11."""
    tol = ctx["tol"]
    missing = [k for k in _SUMMARY_KEYS if k not in summary]
    if missing:
        rep.add(f"rule 11 summary: missing keys {missing}")

    def num(key):
        try:
            return float(summary.get(key))
        except (TypeError, ValueError):
            return float("nan")

    exits = float(hh["exit"].sum())
    got = num("expected_exits")
    if not abs(got - exits) <= tol * max(1.0, abs(exits)):
        rep.add(f"rule 11 summary: expected_exits {_g(got)} != recomputed {_g(exits)}")
    total = float(spend["spend"].sum())
    got = num("total_cost")
    if _money_bad([got], [total], tol)[0]:
        rep.add(f"rule 11 summary: total_cost {_m(got)} != recomputed spend {_m(total)}")
    pc = ctx["plan"]["counties"]
    on = int(_bool(pc["on_schedule"]).eq(True).sum())
    if num("counties_on_schedule") != on:
        rep.add(f"rule 11 summary: counties_on_schedule {summary.get('counties_on_schedule')} != {on} in "
                f"counties.csv")
    if num("counties_total") != len(pc):
        rep.add(f"rule 11 summary: counties_total {summary.get('counties_total')} != {len(pc)} rows in "
                f"counties.csv")
    short = float(counties["r_short"].sum()) + target_short
    got = num("total_shortfall")
    if not abs(got - short) <= 10 * tol * max(1.0, short):
        rep.add(f"rule 11 summary: total_shortfall {_g(got)} != recomputed {_g(short)} (counties and targets)")
    got = num("target_shortfall")
    if not abs(got - target_short) <= 10 * tol * max(1.0, target_short):
        rep.add(f"rule 11 summary: target_shortfall {_g(got)} != recomputed {_g(target_short)}")
    sustained = float(hh["sustained"].sum())
    got = num("sustained_exits")
    if not abs(got - sustained) <= tol * max(1.0, sustained):
        rep.add(f"rule 11 summary: sustained_exits {_g(got)} != recomputed {_g(sustained)}")
    years_out = float(ctx["exits_by_year"].to_numpy().sum())
    got = num("household_years")
    if not abs(got - years_out) <= tol * max(1.0, years_out):
        rep.add(f"rule 11 summary: household_years {_g(got)} != recomputed {_g(years_out)}")
    weight = float(ctx["policy"].get("earliness_weight", 0.02))
    q = hh["q"].to_numpy(dtype=float)
    if ctx["policy"].get("targeting_weights"):  # each household's part weighed by its poverty probability
        value = float(hh["sustained"].to_numpy(dtype=float) @ q) + weight * float(
            ctx["exits_by_year"].to_numpy().sum(axis=1) @ q)
        words = "q-weighted sustained exits + {weight} x q-weighted household-years"
    else:
        value = sustained + weight * years_out
        words = "sustained exits + {weight} x household-years"
    got = num("value")
    if not abs(got - value) <= tol * max(1.0, value):
        rep.add(f"rule 11 summary: value {_g(got)} != {words.format(weight=weight)} = {_g(value)}")
    if "weighted_expected_exits" in summary:
        weighted = float(hh["exit"].to_numpy(dtype=float) @ q)
        got = num("weighted_expected_exits")
        if not abs(got - weighted) <= tol * max(1.0, abs(weighted)):
            rep.add(f"rule 11 summary: weighted_expected_exits {_g(got)} != recomputed sum of q x exit "
                    f"{_g(weighted)}")
    if "targeting" in summary:
        _check_targeting(ctx, summary.get("targeting") or {}, rep)


def _check_targeting(ctx: dict, facts: dict, rep: _Report) -> None:
    """Rule 11 targeting: expected inclusion error = sum over registered households of 1 - q (and
    its share of the registered); expected exclusion error = sum of q over non-registered
    households with q given and above 0 (and its share of the expected poor), else null."""
    tol = ctx["tol"]
    hh = ctx["inp"]["households"]
    registered = hh[hh["registered_poor"]].drop_duplicates("household_id")
    q = registered["poverty_in"].fillna(1.0).to_numpy(dtype=float)
    inclusion = float((1.0 - q).sum())
    outside = hh[~hh["registered_poor"]]["poverty_in"].dropna().to_numpy(dtype=float)
    exclusion = float(outside[outside > 0].sum()) if len(outside) else None
    expected_poor = float(q.sum()) + (exclusion or 0.0)
    want = {"expected_inclusion_error": inclusion,
            "expected_inclusion_error_share": inclusion / len(q) if len(q) else None,
            "expected_exclusion_error": exclusion,
            "expected_exclusion_error_share": None if exclusion is None or expected_poor <= 0
            else exclusion / expected_poor}
    for key, value in want.items():
        got = facts.get(key)
        if value is None or got is None:
            if (value is None) != (got is None):
                rep.add(f"rule 11 targeting: {key} {got!r} != recomputed {value!r}")
            continue
        if not abs(float(got) - value) <= tol * max(1.0, abs(value)):
            rep.add(f"rule 11 targeting: {key} {_g(got)} != recomputed {_g(value)}")


EQUITY_RATE_TOL = 1e-6


def _check_equity(ctx: dict, summary: dict, counties: pd.DataFrame, fl: pd.DataFrame, rep: _Report) -> None:
    """Rule 14: equity (policy.equity). Every county's flows over all sources and years >=
    county_floor_per_poor x its registered poor; max - min of the county exit rates (recomputed
    expected exits at the deadline / registered poor) <= max_exit_rate_spread; summary.json's
    equity.min_exit_rate and max_exit_rate equal the recomputed ones; with the max-min objective,
    the plan's lowest rate is at least its first stage's; price_of_fairness names the rules in force."""
    tol, equity = ctx["tol"], ctx["policy"].get("equity") or {}
    c = counties[counties["r_rp"] > 0]
    rates = (c["r_exits"] / c["r_rp"]).to_numpy(dtype=float)
    low, high = (float(rates.min()), float(rates.max())) if len(rates) else (None, None)
    rules = [name for name, on in (("county_floor_per_poor", equity.get("county_floor_per_poor") is not None),
                                   ("max_exit_rate_spread", equity.get("max_exit_rate_spread") is not None),
                                   ("maxmin", equity.get("objective") == "maxmin")) if on]
    facts = summary.get("equity")
    if not isinstance(facts, dict):
        if rules or "equity" in summary:  # plans of an engine without equity rules may lack it
            rep.add("rule 14 equity: summary.json has no equity object")
        facts = {}
    for key, ref in (("min_exit_rate", low), ("max_exit_rate", high)):
        got = facts.get(key)
        if facts and ref is not None and (got is None or not abs(float(got) - ref) <= EQUITY_RATE_TOL):
            rep.add(f"rule 14 equity: summary equity.{key} {got!r} != recomputed {_g(ref)}")
    floor = equity.get("county_floor_per_poor")
    if floor is not None:
        paid = fl.groupby("county_id")["amount"].sum()
        for r in c.itertuples():
            got = float(paid.get(r.county_id, 0.0))
            need = float(floor) * float(r.r_rp)
            if got < need - 0.01 - tol * need:
                rep.add(f"rule 14 equity floor: county {r.county_id} gets {_m(got)} over all sources and years "
                        f"< {_m(need)} ({float(floor):,.2f} x {int(r.r_rp)} registered poor)")
    cap = equity.get("max_exit_rate_spread")
    if cap is not None and low is not None and high - low > float(cap) + EQUITY_RATE_TOL:
        rep.add(f"rule 14 equity spread: county exit rates range {low:.6f}..{high:.6f}, spread "
                f"{high - low:.6f} > cap {float(cap):.6f}")
    stage = facts.get("maxmin_stage") or {}
    if equity.get("objective") == "maxmin" and stage.get("lowest_exit_rate") is not None and low is not None \
            and low < float(stage["lowest_exit_rate"]) - EQUITY_RATE_TOL:
        rep.add(f"rule 14 equity max-min: the lowest county exit rate {low:.6f} is below the max-min stage's "
                f"{float(stage['lowest_exit_rate']):.6f}")
    prices = summary.get("price_of_fairness")
    if not rules and prices is None:
        return
    if not isinstance(prices, dict):
        rep.add("rule 14 equity: summary.json has no price_of_fairness object")
    elif summary.get("method") and not str(summary.get("method")).startswith("baseline") \
            and equity.get("price_of_fairness", "auto") != "off" and sorted(prices) != sorted(rules):
        rep.add(f"rule 14 equity: price_of_fairness names {sorted(prices)}, the rules in force are {sorted(rules)}")


# --------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------
def check_plan(data_dir, plan_dir, *, start_year, deadline_year, policy=None, tol=1e-6) -> list[str]:
    """Recompute everything from inputs and return a list of violation messages."""
    rep = _Report()
    plan_dir = Path(plan_dir)
    try:
        summary = json.loads((plan_dir / "summary.json").read_text())
    except (OSError, ValueError) as exc:
        return [f"summary: cannot read summary.json ({exc})"]
    if not isinstance(summary, dict):
        return ["summary: summary.json is not an object"]
    status = str(summary.get("status", "")).strip()
    if status not in STATUSES:
        return [f"summary: status {summary.get('status')!r} is not one of {list(STATUSES)}"]
    if status in ("infeasible", "error"):
        return []

    policy = dict(policy or {})
    plan = _load_plan(plan_dir, rep)
    if plan is None:
        return rep.msgs
    ctx = dict(inp=_load_inputs(Path(data_dir), policy), plan=plan, policy=policy, tol=tol,
               deadline=int(deadline_year), years=list(range(int(start_year), int(deadline_year) + 1)))

    hh = _check_households(ctx, rep)
    built = _check_projects(ctx, rep)
    _check_prerequisites(ctx, hh, built, rep)
    spend = _spend(hh, built)
    flows = _check_money(ctx, spend, rep)
    _check_budgets(ctx, flows, rep)
    _check_shares(ctx, spend, rep)
    _check_personnel(ctx, hh, rep)
    _check_source_rules(ctx, flows, rep)
    ctx["exits_by_year"] = _exit_by_year(ctx, hh)
    counties = _check_counties(ctx, hh, spend, rep)
    target_short = _check_path(ctx, hh, rep)
    _check_idle_money(ctx, summary, hh, built, flows, spend, rep)
    _check_summary(ctx, summary, hh, spend, counties, target_short, rep)
    _check_equity(ctx, summary, counties, flows, rep)
    return rep.msgs


def check_scenario_plan(scenario_yaml_path, plan_dir, tol=1e-6) -> list[str]:
    """check_plan with start/deadline/data/policy taken from a scenario YAML."""
    path = Path(scenario_yaml_path)
    sc = yaml.safe_load(path.read_text()) or {}
    data_dir = path.parent / str(sc["data"])
    return check_plan(data_dir, plan_dir, start_year=int(sc["start_year"]), deadline_year=int(sc["deadline_year"]),
                      policy=sc.get("policy") or {}, tol=tol)


def assert_plan_ok(data_dir, plan_dir, *, start_year, deadline_year, policy=None, tol=1e-6) -> None:
    """Raise AssertionError listing the first 20 violations, if any."""
    msgs = check_plan(data_dir, plan_dir, start_year=start_year, deadline_year=deadline_year, policy=policy, tol=tol)
    if msgs:
        raise AssertionError(f"{len(msgs)} plan violation(s):\n" + "\n".join(msgs[:20]))
