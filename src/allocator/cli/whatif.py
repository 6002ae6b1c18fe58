"""The sweep command: what-if studies on Dask."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer
import yaml
from rich.table import Table

from allocator.cli.common import (
    ProgressPrinter,
    app,
    err,
    fail_input,
    number,
    out,
)
from allocator.errors import InputError, Issue
from allocator.inputs.provenance import check_output_folder


def parse_vary(texts: Sequence[str]) -> dict[str, list]:
    """``["KEY=V1,V2", ...]`` (the command line's ``--vary``) → ``{KEY: [V1, V2]}``; each value is
    read as YAML, so ``0.5`` is a number, ``hard`` a string and ``null`` None."""
    vary: dict[str, list] = {}
    for text in texts:
        key, sep, values = text.partition("=")
        if not sep or not key.strip() or not values.strip():
            raise InputError([Issue("--vary", "expected KEY=V1,V2,...", found=repr(text))])
        try:
            vary[key.strip()] = [yaml.safe_load(value) for value in values.split(",")]
        except yaml.YAMLError as error:
            raise InputError([Issue("--vary", f"a value is not valid YAML: {error}", key=key.strip())]) from None
    return vary


@app.command()
def sweep(
    base: Annotated[Path, typer.Argument(help="base scenario YAML")],
    out_dir: Annotated[Path, typer.Option("--out", help="folder for results.csv, frontier.png and variants/")],
    vary: Annotated[list[str] | None, typer.Option("--vary", help="KEY=V1,V2,... (repeat; the cross product is "
                                                   "solved), e.g. money_scale=0.5,1,1.5")] = None,
    variants_file: Annotated[Path | None, typer.Option("--variants", help="YAML list of override mappings, one per "
                                                       "variant (crossed with --vary)")] = None,
    scheduler: Annotated[str | None, typer.Option("--scheduler", help="address of an existing Dask scheduler, e.g. "
                                                  "tcp://host:8786 (default: a LocalCluster)")] = None,
    workers: Annotated[int | None, typer.Option(min=1, help="LocalCluster worker processes (default: the cores)")]
    = None,
    plans: Annotated[bool, typer.Option("--plans/--no-plans", help="keep each variant's plan folder")] = True,
    quiet: Annotated[bool, typer.Option("--quiet", help="no progress output")] = False,
) -> None:
    """Solve variants of a scenario on Dask: results.csv, a frontier chart, a folder per variant (reused)."""
    from allocator.inputs.scenario import load_scenario
    from allocator.whatif.sweep import RESULT_COLUMNS, check_vary, frontier_violations
    from allocator.whatif.sweep import sweep as run_sweep

    try:
        check_output_folder(out_dir, "sweep")
        listed = None
        if variants_file is not None:
            listed = yaml.safe_load(variants_file.read_text()) if variants_file.is_file() else None
            if not (isinstance(listed, list) and all(isinstance(v, dict) for v in listed)):
                raise InputError([Issue(str(variants_file), "expected a YAML list of override mappings")])
        varied = parse_vary(vary or [])
        check_vary(load_scenario(base), varied, listed)
        results = run_sweep(base, varied, variants=listed, out=out_dir, scheduler=scheduler, workers=workers,
                            plans=plans, progress=ProgressPrinter(quiet))
    except InputError as error:
        fail_input(error)
    except OSError as error:  # e.g. no scheduler at --scheduler
        err.print(f"[red]error:[/red] {error}")
        raise typer.Exit(2) from None
    varied = [c for c in results.columns if c not in RESULT_COLUMNS]
    table = Table(title=f"sweep of {base.name}: {len(results)} variants → {out_dir / 'results.csv'}")
    for column in (*varied, "status", "exits", "on schedule", "cost (yuan)", "gap"):
        table.add_column(column, overflow="fold")
    for row in results.head(40).astype(object).where(results.notna(), None).to_dict("records"):
        table.add_row(*(str(row[key]) for key in varied), row["status"] + (" (cached)" if row["cached"] else ""),
                      number(row["expected_exits"], ",.1f"), number(row["counties_on_schedule"], ".0f"),
                      number(row["total_cost"], ",.0f"), number(row["gap"], ".3%"))
    out.print(table)
    failed = results[results["status"] == "error"]
    for message in failed["message"].drop_duplicates().head(10):
        out.print(f"- variant failed: {message}", markup=False)
    for text in frontier_violations(results, varied):
        out.print(f"- warning: more money gives a worse plan: {text}", markup=False)
    if len(failed):
        raise typer.Exit(1)


RISK_FLAGS = {"draws": "--draws", "seed": "--seed", "cost_overrun": "--cost-overrun", "correlation": "--correlation",
              "workers": "--workers"}


@app.command()
def risk(
    plan_dir: Annotated[Path, typer.Argument(help="plan folder")],
    draws: Annotated[int, typer.Option("--draws", help="futures to sample (>= 1)")],
    seed: Annotated[int, typer.Option("--seed", help="random seed: the same seed gives the same result, whatever "
                                      "the workers")] = 0,
    out_dir: Annotated[Path | None, typer.Option("--out", help="folder for risk.csv and risk.json (default "
                                                 "PLAN_DIR/risk)")] = None,
    cost_overrun: Annotated[float, typer.Option("--cost-overrun", help="relative sd of the cost of each county, "
                                                "category and year (e.g. 0.15; default 0: costs as planned)")] = 0.0,
    correlation: Annotated[float, typer.Option("--correlation", help="share of a household's outcome that is its "
                                               "county's common shock, in [0, 1) (default 0: independent)")] = 0.0,
    spread: Annotated[bool, typer.Option("--spread/--no-spread", help="--no-spread: every draw is the nominal plan "
                                         "(each household at its expected value)")] = True,
    scheduler: Annotated[str | None, typer.Option("--scheduler", help="address of an existing Dask scheduler, e.g. "
                                                  "tcp://host:8786 (default: a LocalCluster)")] = None,
    workers: Annotated[int | None, typer.Option("--workers", help="LocalCluster worker processes (default: the "
                                                "cores; 0: no Dask, in this process)")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="no progress output")] = False,
) -> None:
    """Sample futures of a plan on Dask: each county's chance to meet its hat-off year and the deadline, the poor
    per year, the money needed in the bad 10 % of draws."""
    from allocator.whatif.risk import check_risk_options, default_folder, plan_risk

    folder = out_dir or default_folder(plan_dir)
    progress = ProgressPrinter(quiet)
    try:
        check_risk_options(draws, seed, cost_overrun, correlation, spread, workers)
        check_output_folder(folder, "risk")
        progress("read the plan and its inputs")
        result = plan_risk(plan_dir, draws, seed=seed, cost_overrun=cost_overrun, correlation=correlation,
                           spread=spread, workers=workers, scheduler=scheduler, progress=progress)
        result.write(folder)
    except InputError as error:
        fail_input(error, RISK_FLAGS)
    except OSError as error:  # e.g. no scheduler at --scheduler
        err.print(f"[red]error:[/red] {error}")
        raise typer.Exit(2) from None
    _print_risk(result, folder)


def _print_risk(result, folder: Path) -> None:
    """The counties' chances, the poor per year and the money at risk, as tables."""
    summary = result.summary
    table = Table(title=f"risk of {summary['scenario']}: {summary['draws']:,} draws, seed {summary['seed']} → "
                        f"{folder}")
    for column in ("county", "hat-off year", "on schedule (plan)", "P(on time)", "P(deadline)",
                   "poor at hat-off p10 / p50 / p90", "allowed"):
        table.add_column(column, overflow="fold")
    for row in result.counties.head(40).itertuples():
        name = f"{row.county_name} ({row.county_id})" if row.county_name else row.county_id
        table.add_row(name, str(row.hat_off_year), "yes" if row.on_schedule else "no", f"{row.p_on_time:.1%}",
                      f"{row.p_deadline:.1%}", f"{row.poor_at_hat_off_p10:,.0f} / {row.poor_at_hat_off_p50:,.0f} / "
                      f"{row.poor_at_hat_off_p90:,.0f}", f"{row.allowed_poor:,.1f}")
    out.print(table)
    years = Table(title="still poor at each year-end (households)")
    for column in ("year", "plan (expected)", "mean", "p10", "p50", "p90", "share p90"):
        years.add_column(column)
    for row in summary["by_year"]:
        years.add_row(str(row["year"]), f"{row['expected_poor']:,.1f}", f"{row['poor_mean']:,.1f}",
                      f"{row['poor_p10']:,.0f}", f"{row['poor_p50']:,.0f}", f"{row['poor_p90']:,.0f}",
                      f"{row['share_p90']:.1%}")
    out.print(years)
    money = summary["money"]
    out.print(f"money: planned {money['planned_spend']:,.0f} yuan; needed in the bad 10 % of draws "
              f"{money['p90_needed']:,.0f} (90th percentile, {money['extra_p90']:+,.0f}; mean of the worst 10 % "
              f"{money['bad_10_mean_needed']:,.0f}); available {money['money_available']:,.0f}", markup=False)
    counties = summary["counties"]
    if counties["total"]:
        out.print(f"all {counties['total']} counties on time in {counties['p_all_on_time']:.1%} of draws, by the "
                  f"deadline in {counties['p_all_deadline']:.1%}", markup=False)
