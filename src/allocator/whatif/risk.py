"""Risk of a plan: how its outcome spreads over sampled futures, on Dask.

A plan's numbers are expectations: each registered poor household is out of poverty at the
end of year t with the chance the model gives it (its package's ``exit_probability`` from
start + lag on, which already folds in the catalogue's income sd, the measures' failure rates
and the return risk; its baseline chance by then otherwise). :func:`plan_risk` samples ``draws``
futures of the plan as it stands (the decisions are fixed; nothing is re-optimised):

- **households**: one uniform U_h per household and draw, kept through the years; the
  household is out at the end of year t when U_h < its chance then, and *sustained* when
  U_h < its ``sustained_probability``. Each household keeps exactly its planned chance, so
  the mean over draws tends to the plan's expected numbers. With ``correlation`` rho > 0 the
  uniforms of a county share a common shock (a Gaussian copula: U_h = Phi(sqrt(rho) Z_county +
  sqrt(1 - rho) e_h)), a bad year for a county's industry or labour market: the same chances,
  a wider spread. rho = 0 (default) is the model's own assumption, independent households.
- **costs**: with ``cost_overrun`` s > 0 the planned spend of each (county, category, year)
  cell is multiplied by a lognormal factor of mean 1 and relative sd s (cells independent);
  the money needed is their sum. Overruns do not change who exits: they say how much more
  money the plan needs to be delivered as planned.

Per draw, a county meets its hat-off year when its registered poor still poor at the end of
that year are at most its threshold x its rural population (the model's county exit row,
:func:`allocator.model.formulation.county_exit`, with ``counties.csv``'s tolerance), and the
deadline when that holds at the deadline's year-end.

Each draw has its own random stream, seeded by (``seed``, draw number), so the result is the
same for the same seed whatever the number of workers or the size of the chunks. The draws
run in chunks, one Dask task per chunk, on a LocalCluster of ``workers`` processes (as
:func:`allocator.whatif.sweep.sweep`), on the scheduler at ``scheduler``, on ``client``, or
in the calling process with ``workers=0``. ``spread=False`` makes every draw the nominal plan
(each household at its expected value, costs as planned): its numbers are the plan's exactly.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.special import ndtr

from allocator.errors import InputError, Issue
from allocator.inputs.names import region_names
from allocator.inputs.provenance import output_folder
from allocator.model.problem import CATEGORY_INDEX
from allocator.optimize.methods import ProgressCallback, quiet
from allocator.optimize.parallel import dask_client
from allocator.plan.context import PlanContext, load_plan_context
from allocator.plan.plan import ON_SCHEDULE_TOL, json_default

RISK_CSV = "risk.csv"
RISK_JSON = "risk.json"
KIND = "risk"
FOLDER = "risk"  # the default output folder inside the plan folder
BAD_SHARE = 0.10  # "the bad 10 % of draws": money needed at its 90th percentile and the mean beyond
MAX_CHUNK = 50  # draws per Dask task at most
CHUNKS_PER_WORKER = 4
COUNTY_COLUMNS = ["county_id", "county_name", "registered_poor", "hat_off_year", "allowed_poor", "on_schedule",
                  "expected_poor_at_hat_off", "p_on_time", "p_deadline", "poor_at_hat_off_mean",
                  "poor_at_hat_off_p10", "poor_at_hat_off_p50", "poor_at_hat_off_p90", "poor_at_deadline_mean",
                  "planned_spend", "money_needed_p90"]


@dataclass
class RiskInputs:
    """What every draw needs, built once from the plan and shipped once to the workers."""

    exits: np.ndarray  # (H, T): each registered poor household's chance to be out at the end of year t
    sustained: np.ndarray  # (H,): its sustained probability (households.csv)
    county: np.ndarray  # (H,): its county index
    registered: np.ndarray  # (C,): registered poor households per county
    allowed: np.ndarray  # (C,): threshold x rural population, the poor a county may keep
    hat_off: np.ndarray  # (C,): year index of the county's hat-off year
    spend: np.ndarray  # (C, G, T): planned spend per county, category and year
    target_members: np.ndarray  # (K, H) bool: the households each annual target covers
    target_year: np.ndarray  # (K,) year index
    target_share: np.ndarray  # (K,) largest share still poor
    correlation: float = 0.0
    cost_overrun: float = 0.0
    spread: bool = True


def draw_chunk(inputs: RiskInputs, seed: int, first: int, count: int) -> dict[str, np.ndarray]:
    """Draws ``first`` .. ``first + count - 1`` (a Dask task): per draw the poor at each year-end,
    the sustained exits, each county's poor at its hat-off year and at the deadline, whether each
    annual target is met, and the money needed (in all, per year and per county)."""
    H, T = inputs.exits.shape
    C, K = len(inputs.registered), len(inputs.target_year)
    out = {"poor": np.zeros((count, T)), "sustained": np.zeros(count), "county_hat_off": np.zeros((count, C)),
           "county_deadline": np.zeros((count, C)), "target_met": np.zeros((count, K), dtype=bool),
           "money": np.zeros(count), "money_year": np.zeros((count, T)), "money_county": np.zeros((count, C))}
    for i in range(count):
        rng = np.random.default_rng([seed, first + i])
        if inputs.spread:
            u = _uniforms(rng, inputs.county, C, inputs.correlation)
            outcome = (u[:, None] < inputs.exits).astype(float)
            sustained = float(np.count_nonzero(u < inputs.sustained))
        else:
            outcome = inputs.exits
            sustained = float(inputs.sustained.sum())
        spend = inputs.spend
        if inputs.spread and inputs.cost_overrun > 0:
            s2 = math.log1p(inputs.cost_overrun ** 2)
            spend = spend * np.exp(math.sqrt(s2) * rng.standard_normal(spend.shape) - s2 / 2)
        by_county = np.stack([np.bincount(inputs.county, weights=outcome[:, t], minlength=C) for t in range(T)],
                             axis=1) if C else np.zeros((0, T))
        out["poor"][i] = float(H) - outcome.sum(axis=0)
        out["sustained"][i] = sustained
        out["county_hat_off"][i] = inputs.registered - by_county[np.arange(C), inputs.hat_off]
        out["county_deadline"][i] = inputs.registered - by_county[:, T - 1] if C else 0.0
        for k in range(K):
            members = inputs.target_members[k]
            poor = members.sum() - outcome[members, inputs.target_year[k]].sum()
            out["target_met"][i, k] = max(poor - inputs.target_share[k] * members.sum(), 0.0) <= ON_SCHEDULE_TOL
        out["money"][i] = spend.sum()
        out["money_year"][i] = spend.sum(axis=(0, 1))
        out["money_county"][i] = spend.sum(axis=(1, 2))
    return out


def _uniforms(rng, county: np.ndarray, counties: int, rho: float) -> np.ndarray:
    """One uniform in [0, 1) per household; with ``rho`` > 0 a county's share a common shock."""
    if rho <= 0:
        return rng.random(len(county))
    z = math.sqrt(rho) * rng.standard_normal(counties)[county] + math.sqrt(1 - rho) * rng.standard_normal(len(county))
    return np.minimum(ndtr(z), np.nextafter(1.0, 0.0))


@dataclass
class Risk:
    """The risk of a plan: ``counties`` (risk.csv), ``summary`` (risk.json) and every draw's
    numbers in ``draws`` (arrays by name, one row per draw)."""

    counties: pd.DataFrame
    summary: dict
    draws: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def write(self, folder: str | Path) -> Path:
        """Write risk.csv and risk.json into ``folder`` (refused when it holds anything allocator
        did not write, see :mod:`allocator.inputs.provenance`); returns the folder."""
        folder = Path(folder)
        with output_folder(folder, KIND):
            self.counties.to_csv(folder / RISK_CSV, index=False)
            (folder / RISK_JSON).write_text(json.dumps(self.summary, indent=2, default=json_default) + "\n")
        return folder


def check_risk_options(draws, seed=0, cost_overrun=0.0, correlation=0.0, spread=True, workers=None) -> None:
    """Raise :class:`InputError` naming every bad option (the keys are the library's argument names)."""
    issues = []

    def bad(key: str, expected: str, found) -> None:
        issues.append(Issue("risk options", "invalid value", key=key, expected=expected, found=repr(found)))

    if not _is_int(draws) or draws <= 0:
        bad("draws", "a whole number of draws >= 1", draws)
    if not _is_int(seed) or seed < 0:
        bad("seed", "a whole number >= 0", seed)
    if not _is_number(cost_overrun) or cost_overrun < 0:
        bad("cost_overrun", "a relative sd >= 0 (e.g. 0.15)", cost_overrun)
    if not _is_number(correlation) or not 0 <= correlation < 1:
        bad("correlation", "a number in [0, 1)", correlation)
    if workers is not None and (not _is_int(workers) or workers < 0):
        bad("workers", "a whole number >= 0 (0: no Dask, in this process)", workers)
    if not spread and _is_number(cost_overrun) and cost_overrun > 0:
        issues.append(Issue("risk options", "a nominal run (no spread) takes the planned costs", key="cost_overrun",
                            expected="0 without spread", found=repr(cost_overrun)))
    if issues:
        raise InputError(issues)


def _is_int(value) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, int | float | np.number) and not isinstance(value, bool) and math.isfinite(value)


def risk_inputs(context: PlanContext, *, cost_overrun: float = 0.0, correlation: float = 0.0,
                spread: bool = True) -> RiskInputs:
    """The nominal plan as arrays: each household's chance to be out per year-end, as
    :func:`allocator.plan.plan.exit_matrix` computes it, and the planned spend grid, as
    :func:`allocator.plan.plan.spend_grid` (the same order of sums, so the nominal numbers are
    the plan's to the last bit). Raises :class:`InputError` when the plan has no solution or its
    decisions are not among its model's packages and projects."""
    plan, p = context.plan, context.problem
    if plan.summary.get("expected_exits") is None:
        raise InputError([Issue(str(context.folder / "summary.json"), "the plan has no solution, so no risk to "
                                "sample", key="status", found=repr(plan.status))])
    H, T, C = len(p.household_ids), len(p.years), len(p.county_ids)
    exits = p.baseline_at(np.arange(T)).T.copy() if H else np.zeros((0, T))
    hh = plan.households
    chosen = hh[hh["start_year"].notna() & (hh["package_id"].fillna("") != "")]
    pkg = pd.MultiIndex.from_arrays([p.household_ids[p.pkg_household], p.pkg_ids]).get_indexer(
        pd.MultiIndex.from_arrays([chosen["household_id"].astype(str), chosen["package_id"].astype(str)]))
    _unknown(context, "households.csv", chosen, pkg, "package_id")
    order = np.argsort(pkg, kind="stable")  # the model's column order: spend sums as the plan's did
    pkg = pkg[order]
    year = chosen["start_year"].to_numpy(dtype=np.int64)[order] - p.start_year
    household = p.pkg_household[pkg]
    first = year + p.pkg_lag[pkg]
    for t in range(T):
        now = first <= t
        exits[household[now], t] = p.pkg_exit[pkg[now]]
    counted = np.zeros(H, dtype=bool)
    counted[household[first <= T - 1]] = True
    best = np.zeros(H)
    best[household] = p.pkg_sustained[pkg]
    sustained = np.where(counted, best, p.household_baseline)

    spend = np.zeros((C, len(CATEGORY_INDEX), T))
    np.add.at(spend, (p.household_county[household], p.pkg_category[pkg], year), p.pkg_cost[pkg])
    projects = plan.projects
    proj = pd.MultiIndex.from_arrays([p.village_ids[p.proj_village], p.proj_ids]).get_indexer(
        pd.MultiIndex.from_arrays([projects["village_id"].astype(str), projects["project_id"].astype(str)]))
    _unknown(context, "projects.csv", projects, proj, "project_id")
    order = np.argsort(proj, kind="stable")
    proj, proj_year = proj[order], projects["start_year"].to_numpy(dtype=np.int64)[order] - p.start_year
    np.add.at(spend, (p.proj_county[proj], p.proj_category[proj], proj_year), p.proj_cost[proj])

    members = np.array([p.target_households(k) for k in range(len(p.target_year))], dtype=bool).reshape(-1, H)
    return RiskInputs(exits=exits, sustained=sustained, county=p.household_county.astype(np.int64),
                      registered=p.county_registered_poor.astype(float),
                      allowed=p.county_threshold * p.county_rural_population, hat_off=p.county_hat_off.copy(),
                      spend=spend, target_members=members, target_year=p.target_year.copy(),
                      target_share=p.target_share.copy(), correlation=float(correlation),
                      cost_overrun=float(cost_overrun), spread=bool(spread))


def _unknown(context: PlanContext, table: str, frame: pd.DataFrame, index: np.ndarray, column: str) -> None:
    missing = np.flatnonzero(index < 0)
    if len(missing):
        row = frame.iloc[missing[0]]
        raise InputError([Issue(str(context.folder / table), "the plan's decision is not in its model (the plan "
                                "and its inputs do not belong together); solve again", row=int(frame.index[
                                    missing[0]]) + 2, column=column, found=str(row[column]))])


def plan_risk(plan: str | Path | PlanContext, draws: int, *, seed: int = 0, cost_overrun: float = 0.0,
              correlation: float = 0.0, spread: bool = True, workers: int | None = None,
              scheduler: str | None = None, client=None, chunk: int | None = None,
              progress: ProgressCallback = quiet) -> Risk:
    """Sample ``draws`` futures of a plan (a plan folder, or a context from
    :func:`allocator.plan.context.load_plan_context`) and return its :class:`Risk`: per county the
    chance to meet its hat-off year and the deadline, per year the distribution of the poor,
    and the money needed in the bad 10 % of draws against the plan's spend.

    ``cost_overrun`` is the relative sd of the cost of each (county, category, year) cell,
    ``correlation`` the share of a household's outcome that is its county's common shock, and
    ``spread=False`` takes every household at its expected value (the nominal plan). The draws
    run in chunks of ``chunk`` (default: a few per worker) on Dask: on ``client``, on the
    scheduler at ``scheduler``, else on a LocalCluster of ``workers`` processes (default: the
    cores); ``workers=0`` runs them in this process. The result depends on ``seed`` only, not
    on the workers or the chunks. ``progress("draws", done=, of=)`` is called as chunks finish.
    Bad options or plan folders raise :class:`InputError`."""
    check_risk_options(draws, seed, cost_overrun, correlation, spread, workers)
    if chunk is not None and (not _is_int(chunk) or chunk < 1):
        raise InputError([Issue("risk options", "invalid value", key="chunk", expected="a whole number >= 1",
                                found=repr(chunk))])
    started = time.perf_counter()
    context = plan if isinstance(plan, PlanContext) else load_plan_context(plan)
    inputs = risk_inputs(context, cost_overrun=cost_overrun, correlation=correlation, spread=spread)
    parallel = client is not None or scheduler is not None or workers != 0
    size = chunk or max(1, min(MAX_CHUNK, math.ceil(draws / (CHUNKS_PER_WORKER * max(workers or 2, 1)))))
    starts = list(range(0, draws, size))
    parts: dict[int, dict] = {}
    if parallel:
        with contextlib.ExitStack() as stack:
            if client is None:
                client = stack.enter_context(dask_client(scheduler, workers))
            parts = _run(client, inputs, seed, starts, size, draws, progress)
    else:
        for first in starts:
            parts[first] = draw_chunk(inputs, seed, first, min(size, draws - first))
            progress("draws", done=first + min(size, draws - first), of=draws)
    samples = {name: np.concatenate([parts[first][name] for first in starts]) for name in parts[starts[0]]}
    return _summarise(context, inputs, samples, draws=draws, seed=seed, workers=workers, chunk=size,
                      seconds=time.perf_counter() - started)


def _run(client, inputs: RiskInputs, seed: int, starts: list[int], size: int, draws: int,
         progress: ProgressCallback) -> dict[int, dict]:
    """Submit one task per chunk (the inputs scattered once to every worker); their draws by first draw."""
    from distributed import as_completed

    shared = client.scatter(inputs, broadcast=True)
    stamp = time.time_ns()
    futures = {client.submit(draw_chunk, shared, seed, first, min(size, draws - first),
                             key=f"allocator-risk-{seed}-{first}-{stamp}", pure=False): first for first in starts}
    parts, done = {}, 0
    for future in as_completed(futures):
        first = futures[future]
        parts[first] = future.result()
        done += len(parts[first]["money"])
        progress("draws", done=done, of=draws)
    return parts


def _stats(values: np.ndarray, axis: int = 0) -> dict[str, np.ndarray]:
    """mean, p10, p50, p90 along ``axis``; the mean as first value + the mean of the differences, so
    that draws that are all the same give that value exactly."""
    values = np.asarray(values, dtype=float)
    ref = np.take(values, [0], axis=axis)
    return {"mean": (ref + np.mean(values - ref, axis=axis, keepdims=True)).squeeze(axis),
            **{f"p{q}": np.percentile(values, q, axis=axis) for q in (10, 50, 90)}}


def _bad_tail(values: np.ndarray) -> tuple[float, float]:
    """The 90th percentile of ``values`` and the mean of the draws at or above it (the bad 10 %)."""
    p90 = float(np.percentile(values, 100 * (1 - BAD_SHARE)))
    tail = np.sort(values)[-max(1, math.ceil(BAD_SHARE * len(values))):]
    return p90, float(tail[0] + np.mean(tail - tail[0]))


def _summarise(context: PlanContext, inputs: RiskInputs, samples: dict, *, draws: int, seed: int,
               workers: int | None, chunk: int, seconds: float) -> Risk:
    plan, p = context.plan, context.problem
    H, T = inputs.exits.shape
    C = len(p.county_ids)
    hat = samples["county_hat_off"]
    dead = samples["county_deadline"]
    on_time = np.maximum(hat - inputs.allowed, 0.0) <= ON_SCHEDULE_TOL
    on_deadline = np.maximum(dead - inputs.allowed, 0.0) <= ON_SCHEDULE_TOL
    names = region_names(context.tables)
    planned = plan.counties.set_index("county_id") if len(plan.counties) else pd.DataFrame()
    hat_stats = _stats(hat) if C else {k: np.zeros(0) for k in ("mean", "p10", "p50", "p90")}
    out_at_hat_off = inputs.exits[np.arange(H), inputs.hat_off[inputs.county]] if H else np.zeros(0)
    nominal_hat = inputs.registered - np.bincount(inputs.county, weights=out_at_hat_off, minlength=C)
    counties = pd.DataFrame({
        "county_id": p.county_ids.astype(str),
        "county_name": [names.get(str(c), "") for c in p.county_ids],
        "registered_poor": inputs.registered.astype(np.int64),
        "hat_off_year": p.start_year + inputs.hat_off,
        "allowed_poor": inputs.allowed,
        "on_schedule": [bool(planned["on_schedule"].get(str(c), False)) if len(planned) else False
                        for c in p.county_ids],
        "expected_poor_at_hat_off": nominal_hat,
        "p_on_time": on_time.mean(axis=0),
        "p_deadline": on_deadline.mean(axis=0),
        "poor_at_hat_off_mean": hat_stats["mean"], "poor_at_hat_off_p10": hat_stats["p10"],
        "poor_at_hat_off_p50": hat_stats["p50"], "poor_at_hat_off_p90": hat_stats["p90"],
        "poor_at_deadline_mean": _stats(dead)["mean"] if C else np.zeros(0),
        "planned_spend": inputs.spend.sum(axis=(1, 2)),
        "money_needed_p90": np.percentile(samples["money_county"], 100 * (1 - BAD_SHARE), axis=0) if C
        else np.zeros(0),
    }, columns=COUNTY_COLUMNS)

    poor = _stats(samples["poor"])
    share = _stats(samples["poor"] / max(H, 1))
    nominal_poor = float(H) - inputs.exits.sum(axis=0)
    by_year = [{"year": int(p.years[t]), "registered_poor": int(H), "expected_poor": float(nominal_poor[t]),
                **{f"poor_{k}": float(v[t]) for k, v in poor.items()},
                **{f"share_{k}": float(v[t]) for k, v in share.items()}} for t in range(T)]
    money = samples["money"]
    p90, tail = _bad_tail(money)
    spend = float(inputs.spend.sum())
    available = float(p.fund_amount.sum())
    year_p90 = np.percentile(samples["money_year"], 100 * (1 - BAD_SHARE), axis=0)
    targets = [{"region_id": str(p.target_region[k]), "year": int(p.years[p.target_year[k]]),
                "max_poor_share": float(p.target_share[k]), "p_met": float(samples["target_met"][:, k].mean())}
               for k in range(len(p.target_year))]
    sustained = _stats(samples["sustained"])
    manifest = plan.summary.get("manifest") or {}
    summary = {
        "kind": KIND, "plan": str(context.folder), "scenario": plan.summary.get("scenario"),
        "plan_fingerprint": plan.summary.get("plan_fingerprint"),
        "input_fingerprint": manifest.get("input_fingerprint"),
        "draws": int(draws), "seed": int(seed), "cost_overrun": inputs.cost_overrun,
        "correlation": inputs.correlation, "spread": inputs.spread,
        "workers": workers, "chunk": int(chunk), "seconds": round(seconds, 3),
        "nominal": {"expected_poor": [float(v) for v in nominal_poor], "total_cost": spend,
                    "expected_exits": plan.summary.get("expected_exits"),
                    "sustained_exits": plan.summary.get("sustained_exits"),
                    "counties_on_schedule": plan.summary.get("counties_on_schedule"),
                    "counties_total": plan.summary.get("counties_total")},
        "counties": {"total": int(C), "p_all_on_time": float(on_time.all(axis=1).mean()) if C else None,
                     "p_all_deadline": float(on_deadline.all(axis=1).mean()) if C else None,
                     "expected_on_time": float(on_time.sum(axis=1).mean()) if C else None},
        "by_year": by_year,
        "sustained_exits": {k: float(v) for k, v in sustained.items()},
        "targets": targets,
        "money": {"planned_spend": spend, "money_available": available,
                  "mean_needed": float(_stats(money)["mean"]), "p90_needed": p90, "bad_10_mean_needed": tail,
                  "extra_p90": p90 - spend, "p_over_available": float((money > available * (1 + 1e-12)).mean()),
                  "by_year": [{"year": int(p.years[t]), "planned_spend": float(inputs.spend[:, :, t].sum()),
                               "p90_needed": float(year_p90[t])} for t in range(T)]},
    }
    return Risk(counties, summary, samples)


def default_folder(plan_dir: str | Path) -> Path:
    """Where ``allocator risk`` writes by default: ``PLAN_DIR/risk/``."""
    return Path(plan_dir) / FOLDER


__all__ = ["Risk", "RiskInputs", "check_risk_options", "default_folder", "draw_chunk", "plan_risk", "risk_inputs"]
