"""Export commands: export (a plan folder as one Excel workbook)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from allocator.cli.common import Lang, app, chosen_language, fail_input, out
from allocator.errors import InputError, Issue


@app.command()
def export(
    plan_dir: Annotated[Path, typer.Argument(help="plan folder written by allocator solve")],
    xlsx: Annotated[Path, typer.Option("--xlsx", help="the Excel workbook to write (.xlsx)")],
    force: Annotated[bool, typer.Option("--force", help="overwrite FILE if it exists")] = False,
    lang: Lang = None,
    near_households: Annotated[float | None, typer.Option(
        "--near-households", min=0, help="the near-misses sheet: counties within this many households of their "
        "threshold (default 5)")] = None,
) -> None:
    """The plan as one Excel workbook, names beside ids.

    Sheets: summary, path, counties, counties near their threshold, villages, households, projects,
    funding, budget use and difficulties, in the language of --lang. FILE is not overwritten unless --force."""
    from allocator.report.workbook import write_workbook

    lang = chosen_language(lang)
    if xlsx.suffix.lower() != ".xlsx":
        fail_input(InputError([Issue(str(xlsx), "the export is an Excel workbook", expected="a name ending in .xlsx")]))
    if xlsx.is_dir() or (xlsx.exists() and not force):
        fail_input(InputError([Issue(str(xlsx), "a folder" if xlsx.is_dir() else "file exists",
                                     expected="a file that does not exist yet, or --force to overwrite it")]))
    if not xlsx.parent.is_dir():
        fail_input(InputError([Issue(str(xlsx.parent), "folder does not exist", expected="an existing folder")]))
    try:
        near = {} if near_households is None else {"near_households": near_households}  # else the default
        write_workbook(plan_dir, xlsx, lang=lang, **near)
    except InputError as error:
        fail_input(error)
    out.print(f"[bold]workbook[/bold] → {xlsx}")
