"""Running-plan commands: monitor, replan, simulate."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from allocator.cli.common import (
    Lang,
    ProgressPrinter,
    app,
    cell,
    chosen_language,
    fail_input,
    out,
    print_summary,
)
from allocator.errors import InputError
from allocator.inputs.provenance import check_output_folder
from allocator.messages import render
from allocator.messages import sentence as said
from allocator.report.i18n import language, tr


@app.command()
def monitor(
    plan_dir: Annotated[Path, typer.Argument(help="plan folder (an approved plan or a re-plan)")],
    progress_dir: Annotated[Path, typer.Argument(help="progress record folder")],
    out_dir: Annotated[Path | None, typer.Option("--out", help="folder for the tables (default PLAN_DIR/monitor)")]
    = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="no progress output")] = False,
    lang: Lang = None,
) -> None:
    """Plan against actual: counties, villages, households off track, counties at risk and households to watch."""
    from allocator.manage.monitor import monitor_progress

    lang = chosen_language(lang)
    progress = ProgressPrinter(quiet)
    folder = out_dir or plan_dir / "monitor"
    try:
        check_output_folder(folder, "monitoring")
        progress("read the plan, its inputs and the record")
        result = monitor_progress(plan_dir, progress_dir)
    except InputError as error:
        fail_input(error)
    result.write(folder)
    with language(lang):
        _print_report(result.summary, folder)


@app.command()
def replan(
    plan_dir: Annotated[Path, typer.Argument(help="the approved plan folder")],
    progress_dir: Annotated[Path, typer.Argument(help="progress record folder")],
    out_dir: Annotated[Path, typer.Option("--out", help="folder for the new plan, its diff and the remaining problem")],
    from_year: Annotated[int | None, typer.Option("--from-year", help="first year to plan again (default: the "
                                                   "record's year); earlier years are history")] = None,
    stability: Annotated[float, typer.Option("--stability", min=0.0, help="exits a planned decision must gain to "
                                             "be changed (0: none); also reports the exits it costs")] = 0.0,
    time_limit: Annotated[float | None, typer.Option("--time-limit", help="seconds per solve")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="no progress output")] = False,
    lang: Lang = None,
) -> None:
    """Re-plan a running plan from a progress record: delivered, started and paid are pinned, the rest re-optimised."""
    from allocator.manage.replan import replan_folder

    lang = chosen_language(lang)
    try:
        check_output_folder(out_dir, "re-plan")
        result = replan_folder(plan_dir, progress_dir, from_year=from_year, stability=stability,
                               time_limit=time_limit, progress=ProgressPrinter(quiet))
    except InputError as error:
        fail_input(error, {"from_year": "--from-year"})
    result.write(out_dir)
    with language(lang):
        print_summary(result.plan.summary, out_dir)
        _print_report(result.summary, out_dir / "replan.json")
    if result.remaining.status not in ("optimal", "feasible"):
        raise typer.Exit(1)


@app.command()
def simulate(
    plan_dir: Annotated[Path, typer.Argument(help="plan folder")],
    year: Annotated[int, typer.Option("--year", help="the record is taken in the middle of this year")],
    out_dir: Annotated[Path, typer.Option("--out", help="folder for the progress record")],
    seed: Annotated[int, typer.Option(help="random seed")] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", help="no progress output")] = False,
) -> None:
    """Draw a plausible progress record from a plan (slippage, exits, returns, shocks), for testing and training."""
    from allocator.manage.simulate import simulate_progress
    from allocator.plan.context import load_plan_context

    progress = ProgressPrinter(quiet)
    try:
        check_output_folder(out_dir, "progress record")
        progress("read the plan and its inputs")
        record = simulate_progress(load_plan_context(plan_dir), year, seed)
    except InputError as error:
        fail_input(error, {"year": "--year"})
    record.write(out_dir)
    hh = record.households
    out.print(f"progress record of mid-{year} → {out_dir}: {int(hh['delivered'].sum()):,} packages delivered, "
              f"{int(hh['exited'].sum()):,} exits, {int(hh['returned'].sum()):,} returns, "
              f"{int((hh['shock'] != '').sum()):,} shocks, {int(hh['new'].sum()):,} newly identified, "
              f"{int(record.projects['started'].sum()):,} projects started, "
              f"{record.disbursed['amount'].sum():,.0f} yuan disbursed")


SINGULAR = {"households": "household", "counties": "county", "projects": "project", "flows": "flow"}


def _print_report(summary: dict, where: Path) -> None:
    """The headline numbers and sentences of a self-describing summary (monitor.json, replan.json),
    in the language in use: each label and sentence through its message (:mod:`allocator.messages`)."""
    heading = render(summary["title_message"], tr) if summary.get("title_message") else summary["title"]
    table = Table(title=f"{heading} → {where}", show_header=False)
    for row in summary["headline"]:
        value = row["value"]
        shown = tr("n/a") if value is None else f"{value:.1%}" if row["unit"] == "share" else cell(value)
        unit = "" if row["unit"] == "share" else SINGULAR.get(row["unit"], row["unit"]) if value == 1 else row["unit"]
        table.add_row(said({"sentence": row["label"], "message": row.get("message")}, tr),
                      f"{shown} {tr(unit) if unit else ''}".strip())
    out.print(table)
    messages = summary.get("messages") or summary["sentences"]
    for message in messages:
        out.print(f"- {render(message, tr)}", markup=False)
