"""Planning commands: validate, solve, explain, report, compare."""

from __future__ import annotations

import contextlib
import dataclasses
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
    err,
    fail_input,
    out,
    print_baselines,
    print_summary,
)
from allocator.errors import InputError, Issue, SolverUnavailable
from allocator.inputs.provenance import check_output_folder, output_folder, read_manifest
from allocator.report.i18n import language, tr


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
        fail_input(error)
    table = Table(title=f"{sc.name}: valid", show_header=False)
    for key, value in problem.sizes().items():
        table.add_row(key.replace("_", " "), f"{value:,}")
    out.print(table)


@app.command()
def solve(
    scenario: Annotated[Path, typer.Argument(help="scenario YAML")],
    out_dir: Annotated[Path | None, typer.Option("--out", help="plan folder (default plans/<name>)")] = None,
    backend: Annotated[str | None, typer.Option(help="highs | ortools | pulp | copt | gurobi")] = None,
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
    lang: Lang = None,
) -> None:
    """Solve a scenario and write its plan folder (with --scheduler or --workers: decomposed, on Dask)."""
    from allocator.inputs.scenario import load_scenario, scenario_from_dict
    from allocator.optimize.pipeline import solve as run
    from allocator.report.charts import write_plan_folder

    lang = chosen_language(lang)

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
        fail_input(error)
    except (SolverUnavailable, OSError) as error:  # OSError: e.g. no scheduler at --scheduler
        err.print(f"[red]error:[/red] {error}")
        raise typer.Exit(2) from None
    write_plan_folder(plan, folder)
    with language(lang):
        print_summary(plan.summary, folder)
        if plan.baselines:
            print_baselines(plan.summary["baselines"])
    if plan.status not in ("optimal", "feasible"):
        raise typer.Exit(1)


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
    lang: Lang = None,
) -> None:
    """Why counties miss the deadline, what binds them, and what it would take; writes difficulties.json
    (its sentences are read in either language: --lang chooses the one printed)."""
    from allocator.explain.difficulties import explain_plan, write_difficulties
    from allocator.explain.extra import SOURCE, parse_extra
    from allocator.inputs.provenance import check_output_folder

    lang = chosen_language(lang)

    try:
        more = parse_extra(extra) if extra is not None else None
        check_output_folder(plan_dir)  # difficulties.json goes there: allocator's own, before the work
        found = explain_plan(plan_dir, money=money if money is not None else more is None,
                             earliest=earliest if earliest is not None else more is None, extra=more,
                             progress=ProgressPrinter(quiet))
        write_difficulties(plan_dir, found)
    except InputError as error:  # the extra money's issues are the flag's
        fail_input(InputError([dataclasses.replace(i, file="--extra") if i.file == SOURCE else i
                                for i in error.issues], error.truncated))
    with language(lang):
        _print_difficulties(found, plan_dir)


def _print_difficulties(found: dict, folder: Path) -> None:
    """Each finding on one line (a terminal wraps it; a pipe or a log keeps the sentence whole), in
    the language in use: the stored sentences through their messages (:mod:`allocator.messages`)."""
    from allocator.inputs.names import label
    from allocator.messages import sentence as said
    from allocator.optimize.marginal import sentence

    def say(text: str, **options) -> None:
        out.print(text, soft_wrap=True, **options)

    say(f"[bold]{tr('difficulties')}[/bold] → {folder / 'difficulties.json'}")
    if found.get("sentence"):
        say(f"- {said(found, tr)}", markup=False)
    if not found["counties_off_schedule"] and not found.get("sentence"):
        say("- " + tr("every county is on schedule ({part} of {whole})").format(part=found["counties_total"],
                                                                                  whole=found["counties_total"]))
    for county in found["counties_off_schedule"]:
        say("- " + tr("{county} is {households} households short (expected incidence {incidence} against "
                      "{threshold})").format(county=label(county["county_id"], county.get("county_name")),
                                             households=f"{county['shortfall_households']:,.1f}",
                                             incidence=f"{county['expected_incidence']:.2%}",
                                             threshold=f"{county['threshold']:.0%}"), markup=False)
        if county.get("sentence"):  # the shortfall is at its hat-off year, the incidence above at the deadline
            say(f"    {said(county, tr)}", markup=False)
        for reason in county["reasons"]:
            say(f"    {said(reason, tr)}", markup=False)
    values = found.get("marginal_values") or {}
    if values.get("top"):
        say("- " + tr("marginal values ({objective}; the table: {file}):").format(
            objective=tr(values["objective"]), file=folder / values["file"]), markup=False)
    for row in values.get("top", [])[:5]:
        say(f"    {sentence(row, tr)}", markup=False)
    equity = found.get("equity") or {}
    if equity.get("rules") and equity.get("sentence"):
        say(f"- {said(equity, tr)}", markup=False)
        for rule in equity["rules"]:
            say(f"    {said(rule, tr)}", markup=False)
    if found.get("conflict"):
        say(f"- {said(found['conflict'], tr)}", markup=False)
    take = found.get("what_it_would_take")
    if take:
        verified = tr(" (verified by re-solving)") if take.get("verified") else ""
        say("- " + tr("what it would take{verified}: {sentence}").format(verified=verified, sentence=said(take, tr)),
            markup=False)
    for run in found.get("earliest_deadlines", {}).get("runs", []):
        say("- " + tr("with {deadline} as the deadline, {part} of {whole} counties could be on schedule").format(
            deadline=run["deadline"], part=run["counties_on_schedule"], whole=found["counties_total"]), markup=False)
    more = found.get("extra_money")
    if more:
        say(f"- {said(more, tr)} ({more['method']}, {more['seconds']:.0f} s)", markup=False)
        for county in more.get("counties", [])[:10]:
            say("    " + tr("{county}: {money} yuan more, {exits} expected exits").format(
                county=label(county["county_id"], county.get("county_name")), money=f"{county['extra_spend']:,.0f}",
                exits=f"{county['exits']:+,.2f}"),
                markup=False)
        if more.get("categories"):
            say("    " + tr("by category: {spend}").format(spend=tr(", ").join(
                f"{tr(c['category'])} {c['extra_spend']:+,.0f}" for c in more["categories"])), markup=False)


@app.command()
def report(
    plan_dir: Annotated[Path, typer.Argument(help="plan folder written by allocator solve")],
    html_file: Annotated[Path | None, typer.Option("--out", help="HTML file to write (default PLAN_DIR/report.html)")]
    = None,
    compare_with: Annotated[Path | None, typer.Option("--compare", help="another plan folder to compare with")]
    = None,
    lang: Lang = None,
    near_households: Annotated[float | None, typer.Option(
        "--near-households", min=0, help="near misses: counties within this many households of their threshold "
        "(default 5)")] = None,
    near_yuan: Annotated[float | None, typer.Option(
        "--near-yuan", min=0, help="near misses: households whose observed income (from allocator monitor's "
        "record) is within this many yuan of the poverty line (default 500)")] = None,
) -> None:
    """A self-contained HTML report of a plan: headline numbers, charts, difficulties, baselines, near misses."""
    from allocator.report.html import build_report

    lang = chosen_language(lang)

    own = plan_dir / "report.html"
    html_file = html_file or own
    if html_file.suffix.lower() not in (".html", ".htm"):
        fail_input(InputError([Issue(str(html_file), "the report is an HTML file",
                                      expected="a name ending in .html")]))
    if html_file.exists() and html_file.resolve() != own.resolve():
        fail_input(InputError([Issue(str(html_file), "file exists; choose a new name",
                                      expected="a file that does not exist yet (only PLAN_DIR/report.html is "
                                               "rewritten)")]))
    if compare_with is not None and not (compare_with / "summary.json").is_file():
        fail_input(InputError([Issue(str(compare_with), "not a plan folder", expected="a folder with summary.json")]))
    folder = html_file.parent  # allocator's own folder (the plan's, or another with a manifest) lists the report
    ours = html_file.resolve() == own.resolve() or read_manifest(folder) is not None
    try:
        if ours:
            check_output_folder(folder)
        near = {key: value for key, value in (("near_households", near_households), ("near_yuan", near_yuan))
                if value is not None}  # the report's own defaults otherwise
        page = build_report(plan_dir, compare_with=compare_with, lang=lang, **near)
    except InputError as error:
        fail_input(error)
    folder.mkdir(parents=True, exist_ok=True)
    with output_folder(folder) if ours else contextlib.nullcontext():
        html_file.write_text(page, encoding="utf-8")
    out.print(f"[bold]report[/bold] → {html_file}")


@app.command()
def compare(
    plan_a: Annotated[Path, typer.Argument(help="first plan folder")],
    plan_b: Annotated[Path, typer.Argument(help="second plan folder")],
    out_file: Annotated[Path | None, typer.Option("--out", help="also write the differences as CSV")] = None,
    lang: Lang = None,
) -> None:
    """What differs between two plans: inputs (money, policy, data counts) and outcomes.

    A plan with no solution is said to have none: its outcomes are missing, never zeros."""
    from allocator.plan.compare import compare_plans, inputs_sentence, unsolved
    from allocator.plan.plan import Plan
    from allocator.report.titles import TITLES, title, unsolved_sentence

    lang = chosen_language(lang)

    plans = []
    for folder in (plan_a, plan_b):
        if not (folder / "summary.json").is_file():
            fail_input(InputError([Issue(str(folder), "not a plan folder", expected="a folder with summary.json")]))
        plans.append(Plan.read(folder))
    rows = compare_plans(*plans)
    if out_file is not None:
        if out_file.exists():
            fail_input(InputError([Issue(str(out_file), "exists; choose another --out so nothing is overwritten")]))
        rows.to_csv(out_file, index=False)
    with language(lang):
        table = Table(title=f"A = {plan_a}   B = {plan_b}")
        for column in ("section", "item", "A", "B", "B - A"):
            table.add_column(tr(column), overflow="fold")
        for row in rows.itertuples(index=False):  # an item is its key (scripts read it); in Chinese its title
            item = title(f"summary.{row.item}") if lang != "en" and f"summary.{row.item}" in TITLES else row.item
            table.add_row(tr(row.section), item, cell(row.a), cell(row.b), cell(row.change, signed=True))
        out.print(table)
        for name in unsolved(*plans):
            out.print(f"- {unsolved_sentence(name)}", markup=False)
        out.print(f"- {inputs_sentence(*plans, translate=tr)}", markup=False)
