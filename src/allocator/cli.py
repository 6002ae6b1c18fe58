"""Command line: ``allocator validate | solve | identify | candidates | generate | serve | keys | sweep``.

Exit codes: 0 a plan (optimal or feasible) or a valid input; 1 no plan (infeasible or a
solver error); 2 bad input or usage (the message names file, row, column and what was
expected).
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer
import yaml
from rich.console import Console
from rich.table import Table

from allocator.errors import AllocatorError, InputError, Issue, SolverUnavailable
from allocator.inputs.provenance import check_output_folder, output_folder, read_manifest

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
generate_app = typer.Typer(no_args_is_help=True, help="Write seeded synthetic data sets.")
app.add_typer(generate_app, name="generate")
keys_app = typer.Typer(no_args_is_help=True, help="API keys of the HTTP service (stored hashed in its job store).")
app.add_typer(keys_app, name="keys")
regions_app = typer.Typer(no_args_is_help=True, help="The HTTP service's region registry, which scope is decided on.")
app.add_typer(regions_app, name="regions")
err = Console(stderr=True)
out = Console()

class ProgressPrinter:
    """Prints each phase with the time elapsed and what is known (incumbent, bound, gap)."""

    def __init__(self, quiet: bool):
        self.quiet = quiet
        self.started = time.perf_counter()

    def __call__(self, phase: str, **info) -> None:
        if self.quiet:
            return
        shown = []
        for key, value in info.items():
            if value is None:
                continue
            if isinstance(value, float):
                value = f"{value:.4%}" if key == "gap" else f"{value:,.2f}" if key != "seconds" else f"{value:.2f}s"
            elif isinstance(value, int):
                value = f"{value:,}"
            shown.append(f"{key.replace('_', ' ')} {value}")
        elapsed = time.perf_counter() - self.started
        err.print(f"[dim]{elapsed:7.2f}s[/dim] [bold]{phase}[/bold]" + ("  " + ", ".join(shown) if shown else ""))


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


def _fail_input(error: InputError, flags: dict[str, str] | None = None) -> None:
    """Print every issue and exit 2; an issue about a library argument in ``flags`` (its key,
    e.g. ``from_year``) is shown as the command-line flag that gave it (``--from-year``)."""
    err.print(f"[red]error:[/red] {len(error.issues)} problem(s) in the input"
              + (" (showing the first ones)" if error.truncated else ""))
    for issue in error.issues:
        if flags and issue.key in flags:
            issue = dataclasses.replace(issue, file=flags[issue.key], key=None)
        err.print(f"  - {issue}", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(2)


@app.command()
def validate(scenario: Annotated[Path, typer.Argument(help="scenario YAML")]) -> None:
    """Check a scenario and its tables; print what the problem holds."""
    from allocator.inputs.scenario import load_scenario
    from allocator.model.problem import build_problem
    from allocator.targeting.pipeline import load_tables

    try:
        sc = load_scenario(scenario)
        problem = build_problem(load_tables(sc), name=sc.name, start_year=sc.start_year,
                                deadline_year=sc.deadline_year, policy=sc.policy, validate=False)
    except InputError as error:
        _fail_input(error)
    table = Table(title=f"{sc.name}: valid", show_header=False)
    for key, value in problem.sizes().items():
        table.add_row(key.replace("_", " "), f"{value:,}")
    out.print(table)


@app.command()
def solve(
    scenario: Annotated[Path, typer.Argument(help="scenario YAML")],
    out_dir: Annotated[Path | None, typer.Option("--out", help="plan folder (default plans/<name>)")] = None,
    backend: Annotated[str | None, typer.Option(help="highs | ortools | pulp")] = None,
    method: Annotated[str | None, typer.Option(help="auto | exact | lp-fix | decompose")] = None,
    time_limit: Annotated[float | None, typer.Option("--time-limit", help="seconds")] = None,
    gap: Annotated[float | None, typer.Option(help="relative MIP gap, e.g. 0.001")] = None,
    threads: Annotated[int | None, typer.Option(help="solver threads")] = None,
    baselines: Annotated[bool, typer.Option("--baselines",
                                            help="also the usual rules' plans (proportional, greedy, practice)")]
    = False,
    scheduler: Annotated[str | None, typer.Option("--scheduler", help="decompose on the Dask scheduler at this "
                                                  "address, e.g. tcp://host:8786")] = None,
    workers: Annotated[int | None, typer.Option(min=1, help="decompose on a new Dask LocalCluster of N worker "
                                                "processes (ignored with --scheduler)")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="no progress output")] = False,
) -> None:
    """Solve a scenario and write its plan folder (with --scheduler or --workers: decomposed, on Dask)."""
    from allocator.inputs.scenario import load_scenario, scenario_from_dict
    from allocator.optimize.pipeline import solve as run
    from allocator.report.charts import write_plan_folder

    try:
        sc = load_scenario(scenario)
        updates = {k: v for k, v in {"backend": backend, "method": method, "time_limit": time_limit,
                                      "mip_gap": gap, "threads": threads}.items() if v is not None}
        if updates:
            raw = sc.model_dump(mode="json", exclude_none=True)
            raw["solver"].update(updates)
            sc = scenario_from_dict(raw, file=f"{scenario.name} (with command-line options)", source=sc.source)
        folder = out_dir or Path("plans") / sc.name
        check_output_folder(folder, "plan")
        plan = run(sc, progress=ProgressPrinter(quiet), baselines=baselines, scheduler=scheduler, workers=workers)
    except InputError as error:
        _fail_input(error)
    except (SolverUnavailable, OSError) as error:  # OSError: e.g. no scheduler at --scheduler
        err.print(f"[red]error:[/red] {error}")
        raise typer.Exit(2) from None
    write_plan_folder(plan, folder)
    _print_summary(plan.summary, folder)
    if plan.baselines:
        _print_baselines(plan.summary["baselines"])
    if plan.status not in ("optimal", "feasible"):
        raise typer.Exit(1)


def _path_text(path: list[dict]) -> str:
    """'2016 77.5% (target 78.5%), 2017 ...': the share of the registered poor still poor each year-end."""
    return ", ".join(f"{row['year']} {row['share']:.1%}" + (f" (target {row['target']:.1%})" if row.get("target")
                                                             is not None else "") for row in path) or "n/a"


def _print_summary(summary: dict, folder: Path) -> None:
    table = Table(title=f"plan {summary['scenario']} → {folder}", show_header=False)
    rows = [("status", summary["status"] + (f" (stopped by {summary['stopped_by']})" if summary["stopped_by"] else "")),
            ("method / backend", f"{summary['method']} / {summary['backend']}")]
    if summary.get("expected_exits") is not None:
        rows += [
            ("expected exits", f"{summary['expected_exits']:,.1f}"),
            ("sustained exits", f"{summary['sustained_exits']:,.1f} ({summary['sustained_share']:.1%})"
             if summary.get("sustained_share") is not None else "n/a"),
            ("value / bound / gap", f"{summary['value']:,.1f} / {summary['bound']:,.1f} / {summary['gap']:.3%}"
             if summary.get("gap") is not None else "n/a"),
            ("counties on schedule", f"{summary['counties_on_schedule']} of {summary['counties_total']}"),
            ("still poor by year", _path_text(summary.get("path") or [])),
            ("total shortfall (households)", f"{summary['total_shortfall']:,.1f}"
             + (f" (targets {summary['target_shortfall']:,.1f})" if summary.get("target_shortfall") else "")),
            ("total cost (yuan)", f"{summary['total_cost']:,.0f}"),
        ]
    rows.append(("build / solve seconds", f"{summary['build_seconds']:.2f} / {summary['solve_seconds']:.2f}"))
    if summary.get("message"):
        rows.append(("note", summary["message"]))
    for key, value in rows:
        table.add_row(key, value)
    out.print(table)


@app.command()
def explain(
    plan_dir: Annotated[Path, typer.Argument(help="plan folder written by allocator solve")],
    money: Annotated[bool | None, typer.Option(
        "--money/--no-money", help="find and verify the extra money needed (default: yes, unless --extra)")] = None,
    earliest: Annotated[bool | None, typer.Option(
        "--earliest/--no-earliest", help="re-solve with each year as the deadline to find the first year each "
        "county can be on schedule (one solve per year; default: yes, unless --extra)")] = None,
    extra: Annotated[str | None, typer.Option(
        "--extra", help="SOURCE:YEAR:AMOUNT: re-solve with AMOUNT yuan more of SOURCE in YEAR and say where it "
        "goes and what it buys against the marginal values")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="no progress output")] = False,
) -> None:
    """Why counties miss the deadline, what binds them, and what it would take; writes difficulties.json."""
    from allocator.explain.difficulties import explain_plan, write_difficulties
    from allocator.explain.extra import SOURCE, parse_extra
    from allocator.inputs.provenance import check_output_folder

    try:
        more = parse_extra(extra) if extra is not None else None
        check_output_folder(plan_dir)  # difficulties.json goes there: allocator's own, before the work
        found = explain_plan(plan_dir, money=money if money is not None else more is None,
                             earliest=earliest if earliest is not None else more is None, extra=more,
                             progress=ProgressPrinter(quiet))
        write_difficulties(plan_dir, found)
    except InputError as error:  # the extra money's issues are the flag's
        _fail_input(InputError([dataclasses.replace(i, file="--extra") if i.file == SOURCE else i
                                for i in error.issues], error.truncated))
    _print_difficulties(found, plan_dir)


def _print_difficulties(found: dict, folder: Path) -> None:
    """Each finding on one line (a terminal wraps it; a pipe or a log keeps the sentence whole)."""
    from allocator.optimize.marginal import sentence

    def say(text: str, **options) -> None:
        out.print(text, soft_wrap=True, **options)

    say(f"[bold]difficulties[/bold] → {folder / 'difficulties.json'}")
    if found.get("sentence"):
        say(f"- {found['sentence']}", markup=False)
    if not found["counties_off_schedule"] and not found.get("sentence"):
        say(f"- every county is on schedule ({found['counties_total']} of {found['counties_total']})")
    for county in found["counties_off_schedule"]:
        say(f"- {county['county_id']} is {county['shortfall_households']:,.1f} households short "
            f"(expected incidence {county['expected_incidence']:.2%} against {county['threshold']:.0%})",
            markup=False)
        for reason in county["reasons"]:
            say(f"    {reason['sentence']}", markup=False)
    values = found.get("marginal_values") or {}
    if values.get("top"):
        say(f"- marginal values ({values['objective']}; the table: {folder / values['file']}):", markup=False)
    for row in values.get("top", [])[:5]:
        say(f"    {sentence(row)}", markup=False)
    if found.get("conflict"):
        say(f"- {found['conflict']['sentence']}", markup=False)
    take = found.get("what_it_would_take")
    if take:
        verified = " (verified by re-solving)" if take.get("verified") else ""
        say(f"- what it would take{verified}: {take['sentence']}", markup=False)
    for run in found.get("earliest_deadlines", {}).get("runs", []):
        say(f"- with {run['deadline']} as the deadline, {run['counties_on_schedule']} of "
            f"{found['counties_total']} counties could be on schedule", markup=False)
    more = found.get("extra_money")
    if more:
        say(f"- {more['sentence']} ({more['method']}, {more['seconds']:.0f} s)", markup=False)
        for county in more.get("counties", [])[:10]:
            say(f"    {county['county_id']}: {county['extra_spend']:,.0f} yuan more, "
                f"{county['exits']:+,.2f} expected exits", markup=False)
        if more.get("categories"):
            say("    by category: " + ", ".join(f"{c['category']} {c['extra_spend']:+,.0f}"
                                              for c in more["categories"]), markup=False)


@app.command()
def report(
    plan_dir: Annotated[Path, typer.Argument(help="plan folder written by allocator solve")],
    html_file: Annotated[Path | None, typer.Option("--out", help="HTML file to write (default PLAN_DIR/report.html)")]
    = None,
    compare_with: Annotated[Path | None, typer.Option("--compare", help="another plan folder to compare with")]
    = None,
) -> None:
    """A self-contained HTML report of a plan: headline numbers, charts, difficulties, baselines."""
    from allocator.report.html import build_report

    own = plan_dir / "report.html"
    html_file = html_file or own
    if html_file.suffix.lower() not in (".html", ".htm"):
        _fail_input(InputError([Issue(str(html_file), "the report is an HTML file",
                                      expected="a name ending in .html")]))
    if html_file.exists() and html_file.resolve() != own.resolve():
        _fail_input(InputError([Issue(str(html_file), "file exists; choose a new name",
                                      expected="a file that does not exist yet (only PLAN_DIR/report.html is "
                                               "rewritten)")]))
    if compare_with is not None and not (compare_with / "summary.json").is_file():
        _fail_input(InputError([Issue(str(compare_with), "not a plan folder", expected="a folder with summary.json")]))
    folder = html_file.parent  # allocator's own folder (the plan's, or another with a manifest) lists the report
    ours = html_file.resolve() == own.resolve() or read_manifest(folder) is not None
    try:
        if ours:
            check_output_folder(folder)
        page = build_report(plan_dir, compare_with=compare_with)
    except InputError as error:
        _fail_input(error)
    folder.mkdir(parents=True, exist_ok=True)
    with output_folder(folder) if ours else contextlib.nullcontext():
        html_file.write_text(page, encoding="utf-8")
    out.print(f"[bold]report[/bold] → {html_file}")


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

    from allocator.assign.responsibility import (
        assign_responsibility,
        fill_responsible_cadres,
        households_for_assignment,
        read_cadres,
        read_teams,
    )
    from allocator.inputs.provenance import check_plan_inputs, input_fingerprint
    from allocator.inputs.tables import table_path
    from allocator.plan.plan import Plan
    from allocator.synth.teams import generate_teams
    from allocator.targeting import identify_scenario, raw_tables

    progress = ProgressPrinter(quiet)
    try:
        sc = _raw_scenario(scenario)
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
        progress("read raw tables and identify")
        raw = raw_tables(sc)
        ident = identify_scenario(sc, raw)
        folder = sc.data_dir()
        cadres = raw["cadres"] if "cadres" in raw else read_cadres(folder, raw["regions"], sc.encoding)
        seed = sc.generate.seed if sc.generate is not None else 0
        teams = (read_teams(folder, raw["regions"], sc.encoding)
                 if folder is not None and table_path(folder, "teams") is not None
                 else generate_teams(ident.villages, raw["regions"], seed=seed))
        households = households_for_assignment(ident.cards, ident.villages,
                                               plan.households if plan is not None else None,
                                               registered=sc.targeting.basis == "registry")
        progress("assign", households=len(households), cadres=len(cadres), teams=len(teams))
        result = assign_responsibility(households, cadres, ident.villages, teams, regions=raw["regions"],
                                       time_limit=time_limit, workers=workers)
    except InputError as error:
        _fail_input(error)
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
        table.add_row(key.replace("_", " "), _cell(summary[key]))
    out.print(table)
    if summary["households_unassigned"]:
        short = result.shortage[result.shortage["deficit"] > 0]
        out.print(f"{summary['households_unassigned']:,} households have no responsible cadre: capacity is short in "
                  f"{len(short)} townships (see shortage.csv)")


@app.command()
def compare(
    plan_a: Annotated[Path, typer.Argument(help="first plan folder")],
    plan_b: Annotated[Path, typer.Argument(help="second plan folder")],
    out_file: Annotated[Path | None, typer.Option("--out", help="also write the differences as CSV")] = None,
) -> None:
    """What differs between two plans: inputs (money, policy, data counts) and outcomes."""
    from allocator.plan.compare import compare_plans, inputs_sentence
    from allocator.plan.plan import Plan

    plans = []
    for folder in (plan_a, plan_b):
        if not (folder / "summary.json").is_file():
            _fail_input(InputError([Issue(str(folder), "not a plan folder", expected="a folder with summary.json")]))
        plans.append(Plan.read(folder))
    rows = compare_plans(*plans)
    if out_file is not None:
        if out_file.exists():
            _fail_input(InputError([Issue(str(out_file), "exists; choose another --out so nothing is overwritten")]))
        rows.to_csv(out_file, index=False)
    table = Table(title=f"A = {plan_a}   B = {plan_b}")
    for column in ("section", "item", "A", "B", "B - A"):
        table.add_column(column, overflow="fold")
    for row in rows.itertuples(index=False):
        table.add_row(row.section, row.item, _cell(row.a), _cell(row.b), _cell(row.change, signed=True))
    out.print(table)
    out.print(f"- {inputs_sentence(*plans)}", markup=False)


def _cell(value, signed: bool = False) -> str:
    """A number with thousands separators (2 decimals below 1,000), or the value as text."""
    if value is None or (isinstance(value, float) and value != value):
        return ""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    spec = ("+" if signed else "") + (",.0f" if abs(value) >= 1000 else ",.4g")
    return format(value, spec)


def _number(value, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def _print_baselines(rows: list[dict]) -> None:
    table = Table(title="the optimised plan against the usual rules")
    for column in ("rule", "status", "expected exits", "counties on schedule", "money idle (yuan)",
                   "uplift (exits)", "uplift (counties)"):
        table.add_column(column)
    for row in rows:
        table.add_row(row["baseline"], row["status"], _number(row["expected_exits"], ",.1f"),
                      _number(row["counties_on_schedule"], "d"), _number(row.get("money_idle"), ",.0f"),
                      _number(row["uplift_exits"], "+,.1f"), _number(row["uplift_counties"], "+d"))
    out.print(table)
    for row in rows:
        if row["status"] == "not applicable":
            out.print(f"{row['baseline']}: not applicable: {row['message']}")


@generate_app.command("canonical")
def generate_canonical(
    out_dir: Annotated[Path, typer.Argument(help="folder to write the tables and scenario.yaml into")],
    households: Annotated[int, typer.Option(min=1, help="registered poor households (about)")] = 3000,
    years: Annotated[str, typer.Option(help="START:DEADLINE, e.g. 2016:2020")] = "2016:2020",
    seed: Annotated[int, typer.Option(help="random seed")] = 0,
    money_scale: Annotated[float, typer.Option("--money-scale", min=0.0, help="multiplies every fund")] = 1.0,
    fmt: Annotated[str, typer.Option("--format", help="csv | parquet")] = "csv",
) -> None:
    """Write a seeded synthetic canonical data set and a scenario that solves it."""
    from allocator.synth import generate_canonical as generate

    start, deadline = _years(years)
    if fmt not in ("csv", "parquet"):
        err.print(f"[red]error:[/red] --format must be csv or parquet (got {fmt!r})")
        raise typer.Exit(2)
    tables = generate(households, start_year=start, deadline_year=deadline, seed=seed, money_scale=money_scale)
    scenario = {"name": out_dir.name or "generated", "start_year": start, "deadline_year": deadline, "data": ".",
                "policy": {"county_exit_threshold": {"default": 0.02, "western": 0.03}, "deadline": "soft"},
                "solver": {"backend": "highs", "method": "auto", "mip_gap": 0.001}}
    _write_generated(tables, out_dir, fmt, scenario)
    out.print(f"wrote {', '.join(f'{k} {len(v):,}' for k, v in tables.items())} rows and "
              f"{out_dir / 'scenario.yaml'}")


GENERATED = "generated data"  # the kind of folder the generate commands write


def _write_generated(tables: dict, out_dir: Path, fmt: str, scenario: dict) -> None:
    """Write generated tables and their scenario.yaml into a new or empty folder (exit 2 otherwise)."""
    from allocator.synth import write_tables

    try:
        with output_folder(out_dir, GENERATED):
            write_tables(tables, out_dir, fmt=fmt)
            (out_dir / "scenario.yaml").write_text(yaml.safe_dump(scenario, sort_keys=False))
    except InputError as error:
        _fail_input(error)
    except FileExistsError as error:
        err.print(f"[red]error:[/red] {error}")
        raise typer.Exit(2) from None


def _raw_scenario(path: Path):
    """Load a scenario that must hold raw registry data (a province preset or a raw folder)."""
    from allocator.inputs.scenario import load_scenario
    from allocator.targeting import is_raw_scenario

    sc = load_scenario(path)
    if not is_raw_scenario(sc):
        _fail_input(InputError([Issue(path.name, "the scenario's data is already canonical (no households_raw)",
                                      key="data", expected="a raw data folder or a province preset "
                                      "(county, province-small, province, province-dispersed)")]))
    return sc


@app.command()
def identify(
    scenario: Annotated[Path, typer.Argument(help="scenario YAML with raw registry data")],
    out_dir: Annotated[Path, typer.Option("--out", help="folder for the household cards and village file")],
    quiet: Annotated[bool, typer.Option("--quiet", help="no progress output")] = False,
) -> None:
    """Identify the poor (income or a failing guarantee), their reasons, edge households and poor villages."""
    import json

    from allocator.inputs.tables import write_table
    from allocator.report.charts import poor_by_county_chart
    from allocator.targeting import identify_scenario, raw_tables

    progress = ProgressPrinter(quiet)
    try:
        sc = _raw_scenario(scenario)
        check_output_folder(out_dir, "identification")
        progress("read raw tables")
        raw = raw_tables(sc)
        progress("identify", households=len(raw["households_raw"]), villages=len(raw["villages_raw"]))
        ident = identify_scenario(sc, raw)
    except InputError as error:
        _fail_input(error)
    with output_folder(out_dir, "identification"):
        write_table(ident.cards, out_dir / "household_cards.csv")
        write_table(ident.villages, out_dir / "villages.csv")
        (out_dir / "identification.json").write_text(json.dumps(ident.summary, indent=2, ensure_ascii=False))
        poor_by_county_chart(ident.cards, out_dir / "poor_by_county.png")
    _print_identification(ident.summary, out_dir)


def _print_identification(summary: dict, folder: Path) -> None:
    table = Table(title=f"identification → {folder}", show_header=False)
    table.add_row("households", f"{summary['households']:,}")
    table.add_row("poor (rule)", f"{summary['poor_households']:,} households, {summary['poor_people']:,} people")
    for reason, count in summary["households_by_reason"].items():
        table.add_row(f"  reason {reason}", f"{count:,}")
    table.add_row("edge households", f"{summary['edge_households']:,}")
    table.add_row("poor villages", f"{summary['poor_villages']:,} of {summary['villages']:,}")
    registry = summary.get("registry")
    if registry:
        table.add_row("registry inclusion error", f"{registry['inclusion_error']:.2%}"
                      if registry["inclusion_error"] is not None else "n/a")
        table.add_row("registry exclusion error", f"{registry['exclusion_error']:.2%}"
                      if registry["exclusion_error"] is not None else "n/a")
    out.print(table)


@app.command()
def candidates(
    scenario: Annotated[Path, typer.Argument(help="scenario YAML with raw registry data")],
    out_dir: Annotated[Path, typer.Option("--out", help="folder for the canonical tables and scenario.yaml")],
    fmt: Annotated[str, typer.Option("--format", help="csv | parquet")] = "csv",
    quiet: Annotated[bool, typer.Option("--quiet", help="no progress output")] = False,
) -> None:
    """Write the canonical tables (packages per poor household, village projects) and a scenario that solves them."""
    import json

    from allocator.inputs.checks import check_tables
    from allocator.inputs.provenance import input_fingerprint
    from allocator.synth import write_tables
    from allocator.targeting import prepare, raw_tables

    if fmt not in ("csv", "parquet"):
        err.print(f"[red]error:[/red] --format must be csv or parquet (got {fmt!r})")
        raise typer.Exit(2)
    progress = ProgressPrinter(quiet)
    try:
        sc = _raw_scenario(scenario)
        check_output_folder(out_dir, "candidate tables")
        progress("read raw tables")
        raw = raw_tables(sc)
        progress("identify and build candidates", households=len(raw["households_raw"]))
        result = prepare(sc, raw)
        check_tables(result.tables, sc.years)
    except InputError as error:
        _fail_input(error)
    raw_scenario = sc.model_dump(mode="json", exclude_none=True)
    raw_scenario.pop("generate", None)
    raw_scenario.pop("targeting", None)
    raw_scenario.pop("encoding", None)  # the tables are written as UTF-8
    raw_scenario["data"] = "."
    summary = {"identification": result.identification.summary, "candidates": result.candidates.summary}
    with output_folder(out_dir, "candidate tables", made_from=input_fingerprint(sc)):
        write_tables(result.tables, out_dir, fmt=fmt, overwrite=True)
        (out_dir / "scenario.yaml").write_text(yaml.safe_dump(raw_scenario, sort_keys=False))
        (out_dir / "candidates.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False, default=str))
    s = result.candidates.summary
    out.print(f"wrote {s['packages']:,} packages for {s['households_with_packages']:,} of "
              f"{s['planned_households']:,} poor households, {s['projects']:,} projects "
              f"({s['mandatory_projects']:,} mandatory) and {out_dir / 'scenario.yaml'}")
    if s["households_without_packages"]:
        out.print(f"{s['households_without_packages']:,} poor households have no useful package "
                  "(no eligible measure fixes their guarantees); they keep their baseline exit")


@generate_app.command("national")
def generate_national(
    out_dir: Annotated[Path, typer.Argument(help="new folder: one raw data folder per province")],
    seed: Annotated[int, typer.Option(help="random seed")] = 0,
    scale: Annotated[float, typer.Option(min=0.0, help="multiplies every county's households (1: 29.48 m)")]
    = 1.0,
    provinces: Annotated[str | None, typer.Option(help="only these province codes, e.g. GZ,YN")] = None,
    years: Annotated[str, typer.Option(help="START:DEADLINE, e.g. 2016:2020")] = "2016:2020",
    money_scale: Annotated[float, typer.Option("--money-scale", min=0.0, help="multiplies every fund")] = 1.0,
    quiet: Annotated[bool, typer.Option("--quiet", help="no progress output")] = False,
) -> None:
    """Stream the national preset (31 provinces' counties at 2014 proportions) to disk, county by county."""
    from rich.progress import Progress

    from allocator.synth.national import national_summary, write_national

    start, deadline = _years(years)
    codes = [c.strip() for c in provinces.split(",")] if provinces else None
    try:
        check_output_folder(out_dir, GENERATED)
    except InputError as error:
        _fail_input(error)
    with Progress(console=err, disable=quiet) as bar:
        task = bar.add_task("counties", total=None)
        try:
            with output_folder(out_dir, GENERATED):
                counties = write_national(out_dir, seed, scale=scale, provinces=codes, start_year=start,
                                          deadline_year=deadline, money_scale=money_scale,
                                          progress=lambda code, done, total: bar.update(
                                              task, advance=1, description=f"{code} {done}/{total}"))
        except (FileExistsError, ValueError) as error:
            err.print(f"[red]error:[/red] {error}")
            raise typer.Exit(2) from None
    summary = national_summary(counties)
    out.print(f"wrote {summary['provinces']} provinces, {summary['counties']:,} counties "
              f"({summary['national_poor_counties']} national poor), {summary['households']:,} registered "
              f"households to {out_dir} (provinces.csv, counties.csv, one folder per province)")


@generate_app.command("province")
def generate_province(
    out_dir: Annotated[Path, typer.Argument(help="folder to write the raw tables and scenario.yaml into")],
    preset: Annotated[str, typer.Option(help="county | province-small | province | province-dispersed")] = "county",
    seed: Annotated[int, typer.Option(help="random seed")] = 0,
    years: Annotated[str, typer.Option(help="START:DEADLINE, e.g. 2016:2020")] = "2016:2020",
    money_scale: Annotated[float, typer.Option("--money-scale", min=0.0, help="multiplies every fund")] = 1.0,
    central: Annotated[bool, typer.Option("--central", help="a central province (2 % threshold), not western")]
    = False,
    fmt: Annotated[str, typer.Option("--format", help="csv | parquet")] = "csv",
) -> None:
    """Write a seeded synthetic province as raw registry data, plus a scenario that plans it."""
    from allocator.synth.province import PROVINCE_PRESETS, generate_province_preset

    start, deadline = _years(years)
    if preset not in PROVINCE_PRESETS or fmt not in ("csv", "parquet"):
        err.print(f"[red]error:[/red] --preset must be one of {', '.join(PROVINCE_PRESETS)} and --format csv or "
                  f"parquet (got {preset!r}, {fmt!r})")
        raise typer.Exit(2)
    err.print(f"generating {preset} (seed {seed})")
    tables = generate_province_preset(preset, seed=seed, start_year=start, deadline_year=deadline,
                                      money_scale=money_scale, western=not central)
    scenario = {"name": out_dir.name or preset, "start_year": start, "deadline_year": deadline, "data": ".",
                "policy": {"county_exit_threshold": {"default": 0.02, "western": 0.03}, "deadline": "soft"},
                "targeting": {"basis": "rule"},
                "solver": {"backend": "highs", "method": "auto", "mip_gap": 0.001}}
    _write_generated(tables, out_dir, fmt, scenario)
    out.print(f"wrote {', '.join(f'{k} {len(v):,}' for k, v in tables.items())} rows and "
              f"{out_dir / 'scenario.yaml'}")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8000,
    workers: Annotated[int | None, typer.Option(min=1, help="solve worker processes (ALLOCATOR_WORKERS)")] = None,
) -> None:
    """Run the HTTP service; settings come from ALLOCATOR_* variables (README "HTTP service")."""
    import logging

    import uvicorn

    from allocator.api import create_app

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = _service_settings(**({"workers": workers} if workers is not None else {}))
    uvicorn.run(create_app(settings), host=host, port=port)


def _service_settings(**overrides):
    """The HTTP service's settings from the environment (exit 2 with the reason if invalid)."""
    from pydantic import ValidationError

    from allocator.api import Settings

    try:
        return Settings(**overrides)
    except ValidationError as error:
        err.print(f"[red]error:[/red] invalid ALLOCATOR_* setting: {error}", markup=False)
        raise typer.Exit(2) from None


def _key_store(create: bool = False):
    """The job store the service's settings name, said on stderr; a missing one is refused
    unless ``create`` (a key made in the wrong store would never work)."""
    from allocator.api.store import open_store

    url = _service_settings().database_url()
    err.print(f"job store: {url}", markup=False, highlight=False)
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file() and not create:
        err.print("[red]error:[/red] no job store there: set ALLOCATOR_DATA_DIR (or ALLOCATOR_DB_URL) as the "
                  "service has it, or pass --create to make a new store")
        raise typer.Exit(2)
    try:
        return open_store(url)
    except ValueError as error:
        err.print(f"[red]error:[/red] {error}")
        raise typer.Exit(2) from None


@keys_app.command("create")
def keys_create(
    region: Annotated[str, typer.Option(help="region id whose subtree the key may see; '*' for all (admin)")],
    name: Annotated[str, typer.Option(help="who or what the key is for")] = "",
    create: Annotated[bool, typer.Option("--create", help="make the job store if there is none yet")] = False,
) -> None:
    """Make an API key; the key itself is printed once, on the last line, and only its hash is kept."""
    from allocator.api.auth import create_key

    try:
        record, key = create_key(_key_store(create), region, name)
    except ValueError as error:
        err.print(f"[red]error:[/red] {error}")
        raise typer.Exit(2) from None
    err.print(f"key {record.key_id} for region {record.region}; keep it now, it cannot be shown again:")
    print(key)


@keys_app.command("list")
def keys_list() -> None:
    """The keys of the job store: id, region, name, created and revoked."""
    table = Table(title="API keys")
    for column in ("key id", "region", "name", "created", "revoked"):
        table.add_column(column)
    for key in _key_store().keys():
        table.add_row(key.key_id, key.region, key.name, key.created_at, key.revoked_at or "")
    out.print(table)


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="the key id shown by keys create or keys list")]) -> None:
    """Revoke a key: requests with it get 401 from then on."""
    if not _key_store().revoke_key(key_id):
        err.print(f"[red]error:[/red] no active key {key_id!r}")
        raise typer.Exit(2)
    out.print(f"key {key_id} revoked")


@regions_app.command("load")
def regions_load(
    file: Annotated[Path, typer.Argument(help="a regions table (CSV or Parquet: region_id, parent_id, level, name)")],
    create: Annotated[bool, typer.Option("--create", help="make the job store if there is none yet")] = False,
) -> None:
    """Register the region tree in the job store: new regions are added; a known region keeps its
    parent and level (a change is refused, naming the rows)."""
    from allocator.api.regions import read_region_file, register

    store = _key_store(create)
    try:
        added = store.add_regions(register(store.registry(), read_region_file(file)))
    except InputError as error:
        _fail_input(error)
    out.print(f"{added:,} new region(s) registered; {len(store.registry()):,} in all")


def _years(years: str) -> tuple[int, int]:
    try:
        start, deadline = (int(part) for part in years.split(":"))
    except ValueError:
        err.print(f"[red]error:[/red] --years must be START:DEADLINE like 2016:2020 (got {years!r})")
        raise typer.Exit(2) from None
    return start, deadline


@app.command()
def monitor(
    plan_dir: Annotated[Path, typer.Argument(help="plan folder (an approved plan or a re-plan)")],
    progress_dir: Annotated[Path, typer.Argument(help="progress record folder")],
    out_dir: Annotated[Path | None, typer.Option("--out", help="folder for the tables (default PLAN_DIR/monitor)")]
    = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="no progress output")] = False,
) -> None:
    """Plan against actual: counties, villages, households off track, counties at risk and households to watch."""
    from allocator.manage.monitor import monitor_progress

    progress = ProgressPrinter(quiet)
    folder = out_dir or plan_dir / "monitor"
    try:
        check_output_folder(folder, "monitoring")
        progress("read the plan, its inputs and the record")
        result = monitor_progress(plan_dir, progress_dir)
    except InputError as error:
        _fail_input(error)
    result.write(folder)
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
) -> None:
    """Re-plan a running plan from a progress record: delivered, started and paid are pinned, the rest re-optimised."""
    from allocator.manage.replan import replan_folder

    try:
        check_output_folder(out_dir, "re-plan")
        result = replan_folder(plan_dir, progress_dir, from_year=from_year, stability=stability,
                               time_limit=time_limit, progress=ProgressPrinter(quiet))
    except InputError as error:
        _fail_input(error, {"from_year": "--from-year"})
    result.write(out_dir)
    _print_summary(result.plan.summary, out_dir)
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
        _fail_input(error, {"year": "--year"})
    record.write(out_dir)
    hh = record.households
    out.print(f"progress record of mid-{year} → {out_dir}: {int(hh['delivered'].sum()):,} packages delivered, "
              f"{int(hh['exited'].sum()):,} exits, {int(hh['returned'].sum()):,} returns, "
              f"{int((hh['shock'] != '').sum()):,} shocks, {int(hh['new'].sum()):,} newly identified, "
              f"{int(record.projects['started'].sum()):,} projects started, "
              f"{record.disbursed['amount'].sum():,.0f} yuan disbursed")


def _print_report(summary: dict, where: Path) -> None:
    """The headline numbers and sentences of a self-describing summary (monitor.json, replan.json)."""
    table = Table(title=f"{summary['title']} → {where}", show_header=False)
    for row in summary["headline"]:
        value = row["value"]
        shown = "n/a" if value is None else f"{value:.1%}" if row["unit"] == "share" else _cell(value)
        table.add_row(row["label"], f"{shown} {row['unit'] if row['unit'] != 'share' else ''}".strip())
    out.print(table)
    for sentence in summary["sentences"]:
        out.print(f"- {sentence}", markup=False)


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
    quiet: Annotated[bool, typer.Option("--quiet", help="no progress bar")] = False,
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
                            plans=plans, progress=not quiet)
    except InputError as error:
        _fail_input(error)
    except OSError as error:  # e.g. no scheduler at --scheduler
        err.print(f"[red]error:[/red] {error}")
        raise typer.Exit(2) from None
    varied = [c for c in results.columns if c not in RESULT_COLUMNS]
    table = Table(title=f"sweep of {base.name}: {len(results)} variants → {out_dir / 'results.csv'}")
    for column in (*varied, "status", "exits", "on schedule", "cost (yuan)", "gap"):
        table.add_column(column, overflow="fold")
    for row in results.head(40).astype(object).where(results.notna(), None).to_dict("records"):
        table.add_row(*(str(row[key]) for key in varied), row["status"] + (" (cached)" if row["cached"] else ""),
                      _number(row["expected_exits"], ",.1f"), _number(row["counties_on_schedule"], ".0f"),
                      _number(row["total_cost"], ",.0f"), _number(row["gap"], ".3%"))
    out.print(table)
    failed = results[results["status"] == "error"]
    for message in failed["message"].drop_duplicates().head(10):
        out.print(f"- variant failed: {message}", markup=False)
    for text in frontier_violations(results, varied):
        out.print(f"- warning: more money gives a worse plan: {text}", markup=False)
    if len(failed):
        raise typer.Exit(1)


def main() -> None:
    """Entry point: run the app; any allocator error becomes a message, never a traceback."""
    try:
        app()
    except AllocatorError as error:
        err.print(f"[red]error:[/red] {error}")
        sys.exit(2)


if __name__ == "__main__":
    main()
