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
