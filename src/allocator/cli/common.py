"""What every group of commands shares: the app and its sub-apps, the consoles, the progress
printer, the input-error printer and the summary printers."""

from __future__ import annotations

import dataclasses
import math
import threading
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from allocator.errors import InputError, Issue
from allocator.report.i18n import ENV, LANGUAGES, check_language, language, tr
from allocator.version import __version__

HELP = ("allocator: where poverty-alleviation money, projects and people should go.\n\n"
        "Plan: validate, solve, explain, report, compare, export. Data: generate, identify, candidates. "
        "People: assign. A running plan: simulate, monitor, replan. What-if: sweep, risk. "
        "The service: serve, keys, regions.\n\n"
        "Exit codes: 0 a plan (optimal or feasible) or a valid input; 1 no plan (infeasible or a solver error); "
        "2 bad input or usage (the message names file, row, column and what was expected).")
app = typer.Typer(add_completion=False, no_args_is_help=True, help=HELP)
generate_app = typer.Typer(no_args_is_help=True, help="Write seeded synthetic data sets.")
app.add_typer(generate_app, name="generate")
keys_app = typer.Typer(no_args_is_help=True, help="API keys of the HTTP service (stored hashed in its job store).")
app.add_typer(keys_app, name="keys")
regions_app = typer.Typer(no_args_is_help=True, help="The HTTP service's region registry, which scope is decided on.")
app.add_typer(regions_app, name="regions")
err = Console(stderr=True)
out = Console()


def _print_version(asked: bool) -> None:
    if asked:
        out.print(f"allocator {__version__}")
        raise typer.Exit()


@app.callback()
def _options(version: bool = typer.Option(False, "--version", help="print the version and exit",
                                          is_eager=True, callback=_print_version)) -> None:
    """The options of ``allocator`` itself."""


Lang = Annotated[str | None, typer.Option("--lang", envvar=ENV, show_envvar=True,
                                          help="language of what is written: en or zh (default en)")]


def chosen_language(lang: str | None) -> str:
    """``--lang`` (or ALLOCATOR_LANG) as a known language code; an unknown one exits 2 saying which there are."""
    try:
        return check_language(lang)
    except ValueError:
        fail_input(InputError([Issue("--lang", f"unknown language {lang!r}",
                                     expected=f"one of {', '.join(LANGUAGES)} (--lang or {ENV})")]))


LOG_EVERY = 10.0  # seconds between a bar's lines in a pipe or a log


class _TimeLeft(TimeRemainingColumn):
    """The time left: at the pace so far for counted steps; for a phase bounded by time, its
    budget less the seconds it has spent, counting down between reports (not a pace, which
    could promise less than that)."""

    def render(self, task) -> Text:
        if task.fields.get("timed") and not task.finished:
            left = task.total - task.completed - (task.get_time() - task.fields["reported"])
            minutes, seconds = divmod(math.ceil(max(left, 0.0)), 60)  # at most: rounded up
            return Text(f"{minutes // 60:d}:{minutes % 60:02d}:{seconds:02d}", style="progress.remaining")
        return super().render(task)


class ProgressPrinter:
    """Prints each phase with the time elapsed and what is known (incumbent, bound, gap).

    A phase that says how far along it is is a progress bar on a terminal: one that counts
    its steps (``done`` of ``of``: county groups, explain's re-solves per year, sweep
    variants, assign's counties, the national preset's counties) shows the time left; one
    bounded by time (``seconds`` of at most ``budget``: prices, improvement rounds under a
    time limit) shows at most the time left, since it may stop sooner (its ``finished``
    report fills the bar). In a pipe or a log such a phase is one line when it ends, and one
    every ``LOG_EVERY`` seconds while it runs; every other report is one line."""

    def __init__(self, quiet: bool, console: Console | None = None):
        self.quiet = quiet
        self.console = console or err
        self.started = time.perf_counter()
        self.bars: Progress | None = None
        self.tasks: dict[str, TaskID] = {}
        self.running: set[str] = set()  # phases drawn that have not ended
        self.logged: dict[str, float] = {}  # a bar's phase in a log: when it began or last printed a line
        self.lock = threading.Lock()  # explain reports from its re-solves' threads

    def __call__(self, phase: str, **info) -> None:
        if self.quiet:
            return
        done, of = info.pop("done", None), info.pop("of", None)
        seconds, budget = info.get("seconds"), info.get("budget")
        finished = bool(info.pop("finished", False))
        counted = isinstance(done, int) and isinstance(of, int) and of > 0
        timed = isinstance(seconds, float | int) and isinstance(budget, float | int) and budget > 0
        ended = finished or (counted and done >= of)
        if (counted or timed) and self.console.is_terminal:
            with self.lock:
                if counted:
                    self._advance(phase, done, of, f"{done}/{of}", "left", _facts(info), ended, timed=False)
                else:  # a finished phase's total is the time it took: the bar fills
                    rest = _facts({k: v for k, v in info.items() if k not in ("seconds", "budget")})
                    self._advance(phase, seconds, seconds if finished else budget, f"{seconds:.0f}/{budget:.0f}s",
                                  "left at most", rest, ended, timed=True)
            return
        if counted or timed:
            with self.lock:
                now = time.perf_counter()
                if not ended and now - self.logged.setdefault(phase, now) < LOG_EVERY:
                    return
                self.logged[phase] = now
                if ended:
                    del self.logged[phase]
        shown = _facts({"done": done, "of": of, **info})
        elapsed = time.perf_counter() - self.started
        console = self.bars.console if self.bars is not None else self.console  # above a live bar
        console.print(f"[dim]{elapsed:7.2f}s[/dim] [bold]{phase}[/bold]" + ("  " + shown if shown else ""),
                      soft_wrap=True)  # one line per report in a pipe or a log; the terminal wraps it

    def _advance(self, phase: str, done: float, of: float, count: str, left: str, facts: str, ended: bool,
                 timed: bool) -> None:
        """Move the phase's bar to ``done`` of ``of``; the bars close once every phase drawn has ended (a
        time-bounded step past its budget has not)."""
        if self.bars is None:
            self.bars = Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                                 TextColumn("{task.fields[count]}"), TimeElapsedColumn(),
                                 TextColumn("{task.fields[left]}"), _TimeLeft(),
                                 TextColumn("{task.fields[facts]}", markup=False), console=self.console)
            self.bars.start()
        fields = {"count": count, "left": left, "facts": facts, "timed": timed, "reported": self.bars.get_time()}
        if phase not in self.tasks:
            self.tasks[phase] = self.bars.add_task(phase, total=of, completed=done, **fields)
        self.bars.update(self.tasks[phase], completed=done, total=of, **fields)
        if ended:
            self.running.discard(phase)
        else:
            self.running.add(phase)
        if not self.running:
            self.bars.stop()
            self.bars, self.tasks = None, {}


def _facts(info: dict) -> str:
    """'step 40, gap 1.2000%, seconds 3.10s': a report's facts as text (None left out)."""
    shown = []
    for key, value in info.items():
        if value is None:
            continue
        if isinstance(value, float):
            value = (f"{value:.4%}" if key == "gap" else f"{value:.2f}s" if key in ("seconds", "budget")
                     else f"{value:,.2f}")
        elif isinstance(value, int) and not isinstance(value, bool):
            value = f"{value}" if key == "year" or key.endswith("_year") else f"{value:,}"  # 2018, not 2,018
        shown.append(f"{key.replace('_', ' ')} {value}")
    return ", ".join(shown)


def fail_input(error: InputError, flags: dict[str, str] | None = None) -> None:
    """Print every issue and exit 2; an issue about a library argument in ``flags`` (its key,
    e.g. ``from_year``) is shown as the command-line flag that gave it (``--from-year``)."""
    err.print(f"[red]error:[/red] {len(error.issues)} problem(s) in the input"
              + (" (showing the first ones)" if error.truncated else ""))
    for issue in error.issues:
        if flags and issue.key in flags:
            issue = dataclasses.replace(issue, file=flags[issue.key], key=None)
        err.print(f"  - {issue}", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def path_text(path: list[dict]) -> str:
    """'2016 77.5% (target 78.5%), 2017 ...': the share of the registered poor still poor each year-end."""
    return tr(", ").join(f"{row['year']} {row['share']:.1%}" + (
        " " + tr("(target {target})").format(target=f"{row['target']:.1%}") if row.get("target") is not None
        else "") for row in path) or tr("n/a")


def print_summary(summary: dict, folder: Path) -> None:
    """The plan's headline as a table, in the language in use (:func:`allocator.report.i18n.language`);
    the status in words (a run that found no plan in its time is not a crash) with the next step when
    there is one."""
    from allocator.report.titles import shortfall_proven_least, shortfall_text, status_words

    words, step = status_words(summary)
    with language("en"):  # the status code is shown beside its words unless they are the same English word
        plain = status_words(summary)[0] == summary["status"]
    table = Table(title=tr("plan {scenario} → {folder}").format(scenario=summary["scenario"], folder=folder),
                  show_header=False)
    status = words if plain else tr("{words}; status: {status}").format(words=words, status=summary["status"])
    rows = [("status", status), ("method / backend", f"{summary['method']} / {summary['backend']}")]
    if step:
        rows.append(("next step", step.replace("PLAN_DIR", str(folder)).replace("`", "")))
    if summary.get("expected_exits") is not None:
        value = tr("n/a")
        if summary.get("gap") is not None:
            value = (f"{summary['value']:,.1f} / {summary['bound']:,.1f} / {summary['gap']:.3%}"
                     if shortfall_proven_least(summary) else f"{summary['value']:,.1f} / "
                     + tr("bound not shown: the shortfall is not proven least"))
        rows += [
            ("expected exits", f"{summary['expected_exits']:,.1f}"),
            ("sustained exits", f"{summary['sustained_exits']:,.1f} ({summary['sustained_share']:.1%})"
             if summary.get("sustained_share") is not None else tr("n/a")),
            ("value / bound / gap", value),
            ("counties on schedule", tr("{part} of {whole}").format(part=summary["counties_on_schedule"],
                                                                    whole=summary["counties_total"])),
            ("still poor by year", path_text(summary.get("path") or [])),
            ("total shortfall (households)", shortfall_text(summary)),
            ("total cost (yuan)", f"{summary['total_cost']:,.0f}"),
        ]
        equity = summary.get("equity") or {}
        if equity.get("rules"):
            rows.append(("county exit rates", tr("{low} to {high}").format(
                low=f"{equity['min_exit_rate']:.1%}", high=f"{equity['max_exit_rate']:.1%}")))
            prices = summary.get("price_of_fairness") or {}
            if prices:
                rows.append(("price of fairness (exits)", ", ".join(
                    f"{tr(rule)} {cell(value) if value is not None else tr('n/a')}" for rule, value in prices.items())))
        targeting = summary.get("targeting") or {}
        if targeting.get("expected_inclusion_error") or targeting.get("expected_exclusion_error") is not None:
            from allocator.report.titles import targeting_text

            rows.append(("expected targeting error", targeting_text(targeting)))
    rows.append(("build / solve seconds", f"{summary['build_seconds']:.2f} / {summary['solve_seconds']:.2f}"))
    if summary.get("message"):
        rows.append(("note", summary["message"]))
    for key, value in rows:
        table.add_row(tr(key), value)
    out.print(table)


def cell(value, signed: bool = False) -> str:
    """A number with thousands separators (2 decimals below 1,000), or the value as text."""
    if value is None or (isinstance(value, float) and value != value):
        return ""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    spec = ("+" if signed else "") + (",.0f" if abs(value) >= 1000 else ",.4g")
    return format(value, spec)


def number(value, spec: str) -> str:
    return tr("n/a") if value is None else format(value, spec)


def print_baselines(rows: list[dict]) -> None:
    """The usual rules' plans against the optimised one, in the language in use."""
    table = Table(title=tr("the optimised plan against the usual rules"))
    for column in ("rule", "status", "expected exits", "counties on schedule", "money idle (yuan)",
                   "uplift (exits)", "uplift (counties)"):
        table.add_column(tr(column))
    for row in rows:
        table.add_row(tr(row["baseline"]), tr(row["status"]), number(row["expected_exits"], ",.1f"),
                      number(row["counties_on_schedule"], "d"), number(row.get("money_idle"), ",.0f"),
                      number(row["uplift_exits"], "+,.1f"), number(row["uplift_counties"], "+d"))
    out.print(table)
    for row in rows:
        if row["status"] == "not applicable":
            out.print(f"{tr(row['baseline'])}: {tr('not applicable')}: {row['message']}")


def raw_scenario(path: Path):
    """Load a scenario that must hold raw registry data (a province preset or a raw folder)."""
    from allocator.inputs.scenario import load_scenario
    from allocator.targeting import is_raw_scenario

    sc = load_scenario(path)
    if not is_raw_scenario(sc):
        fail_input(InputError([Issue(path.name, "the scenario's data is already canonical (no households_raw)",
                                      key="data", expected="a raw data folder or a province preset "
                                      "(county, province-small, province, province-dispersed)")]))
    return sc
