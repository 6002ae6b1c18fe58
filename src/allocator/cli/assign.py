"""The assign command: responsible cadres and work teams."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from allocator.cli.common import (
    ProgressPrinter,
    app,
    cell,
    fail_input,
    out,
    raw_scenario,
)
from allocator.errors import InputError, Issue
from allocator.inputs.provenance import check_output_folder, output_folder, read_manifest


@app.command()
def assign(
    scenario: Annotated[Path, typer.Argument(help="scenario YAML with raw registry data (and cadres, teams)")],
    out_dir: Annotated[Path, typer.Option("--out", help="folder for the assignment (a copy of the plan with --plan)")],
    plan_dir: Annotated[Path | None, typer.Option("--plan", help="plan folder whose households get their cadres")]
    = None,
    time_limit: Annotated[float | None, typer.Option("--time-limit", help="seconds")] = None,
    workers: Annotated[int, typer.Option(min=1, help="processes solving counties in parallel")] = 2,
    quiet: Annotated[bool, typer.Option("--quiet", help="no progress output")] = False,
) -> None:
    """One responsible cadre per poor household, one work team per poor village (least travel and mismatch)."""
    import json
    import shutil

    from allocator.assign.responsibility import assign_scenario, fill_responsible_cadres
    from allocator.inputs.provenance import check_plan_inputs, input_fingerprint
    from allocator.plan.plan import Plan

    progress = ProgressPrinter(quiet)
    try:
        sc = raw_scenario(scenario)
        plan = None
        kind = "assignment"
        if plan_dir is not None:
            if not (plan_dir / "summary.json").is_file():
                raise InputError([Issue(str(plan_dir), "not a plan folder", expected="a folder with summary.json")])
            plan = Plan.read(plan_dir)
            check_plan_inputs(plan.summary, input_fingerprint(sc), plan=str(plan_dir), inputs=str(scenario))
            if out_dir.resolve() == plan_dir.resolve():  # the plan folder itself gets the cadres
                kind = (read_manifest(plan_dir) or {}).get("kind", "plan")
        check_output_folder(out_dir, kind)
        result = assign_scenario(sc, plan, time_limit=time_limit, workers=workers, progress=progress)
    except InputError as error:
        fail_input(error)
    summary = result.summary()
    with output_folder(out_dir, kind):
        if plan is not None:
            if out_dir.resolve() != plan_dir.resolve():
                shutil.copytree(plan_dir, out_dir, dirs_exist_ok=True)
            fill_responsible_cadres(plan.households, result).to_csv(out_dir / "households.csv", index=False)
        result.household_cadre.to_csv(out_dir / "household_cadre.csv", index=False)
        result.village_team.to_csv(out_dir / "teams.csv", index=False)
        result.shortage.to_csv(out_dir / "shortage.csv", index=False)
        (out_dir / "assignment.json").write_text(json.dumps(summary, indent=2, default=str))
    table = Table(title=f"assignment → {out_dir}", show_header=False)
    for key in ("status", "households", "households_assigned", "households_unassigned", "households_same_township",
                "townships_short", "capacity_missing", "poor_villages", "villages_unassigned", "gap",
                "decomposition_gap", "seconds"):
        table.add_row(key.replace("_", " "), cell(summary[key]))
    out.print(table)
    if summary["households_unassigned"]:
        short = result.shortage[result.shortage["deficit"] > 0]
        out.print(f"{summary['households_unassigned']:,} households have no responsible cadre: capacity is short in "
                  f"{len(short)} townships (see shortage.csv)")
