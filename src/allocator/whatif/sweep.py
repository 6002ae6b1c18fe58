"""What-if studies: many variants of one scenario, each solved as a task on Dask.

A variant is a set of overrides of a base scenario (:func:`allocator.inputs.scenario.apply_overrides`:
dotted keys such as ``money_scale`` or ``policy.deadline``). :func:`sweep` solves the cross
product of the values to vary (or a list of variants) on a Dask cluster, a
``distributed.LocalCluster`` of worker processes unless the address of an existing scheduler
is given, and writes into its output folder:

- ``results.csv``: one row per variant, one column per varied key, then the outcome
  (:data:`RESULT_COLUMNS`);
- ``frontier.png``: expected exits and counties on schedule against the money available;
- ``variants/<key>/``: per variant ``variant.json`` (overrides and outcome) and, with
  ``plans=True``, its plan folder (without charts), which ``allocator explain`` and
  ``allocator compare`` read.

``<key>`` is a SHA-256 of the variant's fully resolved inputs (the scenario after overrides,
the SHA-256 of its files and tables, allocator's version), so a sweep run again into the same
folder reuses every variant already solved. A variant that fails (an invalid value, a crash
on a worker) gets status ``error`` and its message; it is not cached, and the others go on.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import itertools
import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from allocator.errors import InputError, Issue, ScenarioError
from allocator.inputs.provenance import input_hashes, output_folder
from allocator.inputs.scenario import Scenario, apply_overrides, expand_keys, load_scenario
from allocator.optimize.methods import ProgressCallback, quiet
from allocator.optimize.parallel import dask_client
from allocator.optimize.pipeline import solve
from allocator.report.charts import frontier_chart
from allocator.version import __version__

RESULT_COLUMNS = ["status", "expected_exits", "sustained_exits", "value", "counties_on_schedule", "counties_total",
                  "target_shortfall", "total_shortfall",
                  "total_cost", "money_available", "bound", "gap", "seconds", "cached", "message", "variant"]
RESULTS_FILE = "results.csv"
FRONTIER_FILE = "frontier.png"
VARIANTS_FOLDER = "variants"
PLANNED = ("optimal", "feasible")


def variant_list(vary: Mapping[str, Sequence] | None = None,
                 variants: Sequence[Mapping] | None = None) -> list[dict]:
    """The variants to solve, each a dict of dotted keys: the cross product of ``variants``
    (default: one empty variant) and of every value list in ``vary``."""
    listed = [_flatten(v) for v in variants] if variants is not None else [{}]
    vary = dict(vary or {})
    grid = [dict(zip(vary, values, strict=True)) for values in itertools.product(*vary.values())]
    return [{**a, **b} for a in listed for b in grid]


def _flatten(overrides: Mapping, prefix: str = "") -> dict:
    """Nested overrides → dotted keys, the form of the results table's columns."""
    flat = {}
    for key, value in expand_keys(overrides).items():
        if isinstance(value, dict) and value:
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def variant_key(scenario: Scenario, inputs: Mapping[str, str]) -> str:
    """SHA-256 (hex, 16 characters) of a variant's fully resolved inputs: its scenario after
    overrides, the SHA-256 of its files and tables (``inputs``, see
    :func:`allocator.inputs.provenance.input_hashes`) and allocator's version."""
    text = json.dumps({"allocator": __version__, "scenario": scenario.model_dump(mode="json"),
                       "source": str(scenario.source), "inputs": dict(inputs)}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def solve_variant(scenario: Scenario, plans: bool = True) -> tuple[dict, object]:
    """Solve one variant (a Dask task): its outcome row and its Plan (None without ``plans`` or
    on failure). Any exception becomes status ``error`` with its message."""
    started = time.perf_counter()
    try:
        plan = solve(scenario)
    except Exception as error:  # noqa: BLE001 - a failed variant is a result of the sweep
        text = "; ".join(map(str, error.issues)) if isinstance(error, InputError) else str(error)
        return {"status": "error", "message": f"{type(error).__name__}: {text}",
                "seconds": round(time.perf_counter() - started, 3)}, None
    summary = plan.summary
    row = {key: summary.get(key) for key in ("status", "expected_exits", "sustained_exits", "value",
                                             "counties_on_schedule", "counties_total", "target_shortfall",
                                             "total_shortfall", "total_cost", "bound", "gap", "message")}
    budget = summary.get("budget_use") or []
    row["money_available"] = float(sum(item["amount"] for item in budget)) if budget else None
    row["seconds"] = round(time.perf_counter() - started, 3)
    return row, plan if plans else None


def sweep(base: str | Path | Scenario, vary: Mapping[str, Sequence] | None = None, *, out: str | Path,
          variants: Sequence[Mapping] | None = None, scheduler: str | None = None, workers: int | None = None,
          client=None, plans: bool = True, progress: ProgressCallback = quiet) -> pd.DataFrame:
    """Solve every variant of ``base`` on Dask and return the results table (also written to
    ``out/results.csv``, with ``out/frontier.png``).

    ``vary`` maps dotted keys to the values to try (their cross product is solved); ``variants``
    lists override mappings instead (crossed with ``vary`` when both are given). The tasks run
    on ``client`` when given, else on the scheduler at ``scheduler``, else on a LocalCluster of
    ``workers`` processes. A key the base does not have raises :class:`ScenarioError` before
    anything runs, and an ``out`` folder holding anything allocator did not write an
    :class:`InputError` (:mod:`allocator.inputs.provenance`); an invalid value or a failing solve is a
    row with status ``error`` (:func:`check_vary` finds the invalid values beforehand).
    ``progress("variants", done=, of=, status=)`` is called as each variant to solve
    finishes (cached ones are not counted: they take no time).
    """
    out = Path(out)
    scenario = base if isinstance(base, Scenario) else load_scenario(base)
    todo = variant_list(vary, variants)
    keys = list(dict.fromkeys(k for v in todo for k in v))
    _check_keys(scenario, keys)
    with output_folder(out, "sweep"):
        return _sweep(scenario, todo, keys, out, client, scheduler, workers, plans, progress)


def _sweep(scenario: Scenario, todo: list[dict], keys: list[str], out: Path, client, scheduler: str | None,
           workers: int | None, plans: bool, progress: ProgressCallback) -> pd.DataFrame:
    """The sweep's variants solved (or read from the cache) and its results written into ``out``."""
    hashes: dict[tuple, dict] = {}
    rows: list[dict] = []
    jobs: dict[str, Scenario] = {}
    for overrides in todo:
        row = {**overrides, **dict.fromkeys(RESULT_COLUMNS), "cached": False}
        try:
            resolved = apply_overrides(scenario, overrides, record=True)
        except ScenarioError as error:
            rows.append({**row, "status": "error", "message": "; ".join(map(str, error.issues))})
            continue
        files = (resolved.source, resolved.data_dir(), resolved.catalog_path())
        if files not in hashes:
            hashes[files] = input_hashes(resolved)
        key = row["variant"] = variant_key(resolved, hashes[files])
        done = _read_cached(out / VARIANTS_FOLDER / key)
        if done is not None:
            row.update(done, cached=True)
        else:
            jobs[key] = resolved
        rows.append(row)
    if jobs:
        with contextlib.ExitStack() as stack:
            if client is None:
                client = stack.enter_context(dask_client(scheduler, workers))
            finished = _run(client, jobs, plans, out, progress)
        for row in rows:
            if row["variant"] in finished:
                row.update(finished[row["variant"]])
    results = pd.DataFrame(rows, columns=[*keys, *RESULT_COLUMNS])
    results.to_csv(out / RESULTS_FILE, index=False)
    frontier_chart(results[results["status"].isin(PLANNED) & results["money_available"].notna()],
                   [k for k in keys if not _is_money_key(k)], out / FRONTIER_FILE)
    return results


def check_vary(scenario: Scenario, vary: Mapping[str, Sequence], variants: Sequence[Mapping] | None = None) -> None:
    """Raise :class:`ScenarioError` naming every value of ``vary`` that no listed variant accepts
    for its key (``allocator sweep --vary`` refuses them; values invalid only in some
    combination stay error rows)."""
    listed = [_flatten(v) for v in variants] if variants is not None else [{}]

    def rejected(overrides: dict, key: str, value) -> Issue | None:
        try:
            apply_overrides(scenario, {**overrides, key: value})
        except ScenarioError as error:
            return next((dataclasses.replace(i, file="vary") for i in error.issues if i.key == key), None)
        return None

    issues = []
    for key, values in vary.items():
        for value in values:
            found = [rejected(overrides, key, value) for overrides in listed]
            if found and all(found):
                issues.append(found[0])
    if issues:
        raise ScenarioError(issues)


def _check_keys(scenario: Scenario, keys: list[str]) -> None:
    """Unknown keys fail every variant alike: report them before anything runs."""
    probe = {key: None for key in keys}
    try:
        apply_overrides(scenario, probe)
    except ScenarioError as error:
        unknown = [issue for issue in error.issues if issue.message.startswith("unknown key")]
        if unknown:
            raise ScenarioError(unknown) from None


def _run(client, jobs: dict[str, Scenario], plans: bool, out: Path, progress: ProgressCallback) -> dict[str, dict]:
    """Submit the variants, write each one's folder as it finishes, return their rows by key."""
    from distributed import as_completed

    futures = {client.submit(solve_variant, scenario, plans, key=f"allocator-variant-{key}-{time.time_ns()}",
                             pure=False): key for key, scenario in jobs.items()}
    finished = {}
    for future in as_completed(futures):
        key = futures[future]
        if future.status != "finished":  # the task itself died (e.g. a killed worker)
            error = future.exception()
            row, plan = {"status": "error", "message": f"{type(error).__name__}: {error}"}, None
        else:
            row, plan = future.result()
        finished[key] = row
        if row["status"] != "error":
            _write_variant(out / VARIANTS_FOLDER / key, jobs[key], row, plan)
        progress("variants", done=len(finished), of=len(futures), status=row["status"])
    return finished


def _write_variant(folder: Path, scenario: Scenario, row: dict, plan) -> None:

    with output_folder(folder, "plan"):
        if plan is not None:
            plan.write(folder)
        text = json.dumps({"overrides": scenario.overrides, "outcome": row}, indent=2, default=str)
        (folder / "variant.json").write_text(text + "\n")


def _read_cached(folder: Path) -> dict | None:
    path = folder / "variant.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())["outcome"]
    except (ValueError, KeyError):
        return None  # a half-written folder: solve again


def _is_money_key(key: str) -> bool:
    return key in ("money_scale", "generate.money_scale") or key == "money" or key.startswith("money.")


def frontier_violations(results: pd.DataFrame, keys: Sequence[str], tol: float = 1e-6) -> list[str]:
    """Where the frontier goes backwards: with the other varied keys fixed, more money must
    never give more total shortfall, nor less value (sustained exits and the earliness credit)
    at the same shortfall (the model minimises shortfall first, then maximises the value). A
    solve stopped short of its proof (status feasible) can break this; a proven optimum cannot."""
    found = []
    planned = results[results["status"].isin(PLANNED) & results["money_available"].notna()]
    others = [k for k in keys if not _is_money_key(k)]
    groups = planned.groupby(others, dropna=False, sort=False) if others else [((), planned)]
    for label, group in groups:
        ordered = group.sort_values("money_available", kind="stable")
        previous = None
        for row in ordered.itertuples(index=False):
            if previous is not None and row.money_available > previous.money_available:
                before, after = previous.total_shortfall, row.total_shortfall
                worse_shortfall = after > before + tol
                value = previous.value
                less_value = abs(after - before) <= tol and row.value < value - tol * max(1.0, value)
                if worse_shortfall or less_value:
                    where = f" with {_label(others, label)}" if others else ""
                    found.append(f"money {previous.money_available:,.0f} → {row.money_available:,.0f}{where}: "
                                 f"value {previous.value:,.4f} → {row.value:,.4f}, "
                                 f"shortfall {before:,.4f} → {after:,.4f} (statuses {previous.status}, {row.status})")
            previous = row
    return found


def _label(keys: Sequence[str], values) -> str:
    values = values if isinstance(values, tuple) else (values,)
    return ", ".join(f"{k}={v}" for k, v in zip(keys, values, strict=True))


__all__ = ["RESULT_COLUMNS", "check_vary", "frontier_violations",
           "solve_variant", "sweep", "variant_key", "variant_list"]
