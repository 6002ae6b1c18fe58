"""Progress events recorded from the library, checked, and replayed through the CLI's printer."""

from __future__ import annotations

import io
import threading

from rich.console import Console

from allocator.cli.common import ProgressPrinter


class Recorder:
    """A progress callback that keeps every (phase, facts) it is given, from any thread."""

    def __init__(self):
        self.events: list[tuple[str, dict]] = []
        self.lock = threading.Lock()

    def __call__(self, phase: str, **info) -> None:
        with self.lock:
            self.events.append((phase, info))

    def of(self, phase: str) -> list[dict]:
        return [info for name, info in self.events if name == phase]


def check_counted(reports: list[dict]) -> int:
    """``done`` rises by one from 1 to ``of``, which never changes: the total."""
    assert reports, "no report"
    total = reports[0]["of"]
    assert [r["of"] for r in reports] == [total] * len(reports)
    assert [r["done"] for r in reports] == list(range(1, total + 1))
    return total


def check_timed(reports: list[dict]) -> None:
    """``seconds`` rises under one ``budget``; the last report, and only it, says ``finished``."""
    assert reports, "no report"
    budget = reports[0]["budget"]
    assert budget > 0 and all(r["budget"] == budget for r in reports)
    seconds = [r["seconds"] for r in reports]
    assert seconds == sorted(seconds) and seconds[0] >= 0
    assert [bool(r.get("finished")) for r in reports] == [False] * (len(reports) - 1) + [True]


def replay(events: list[tuple[str, dict]], phase: str) -> tuple[str, str]:
    """What the printer draws for ``phase``'s reports on a terminal (the bars closed at its end)
    and in a log (its lines)."""
    shown = [(name, info) for name, info in events if name == phase]
    screen = Console(file=io.StringIO(), force_terminal=True, width=160)
    show = ProgressPrinter(False, console=screen)
    for name, info in shown:
        show(name, **info)
    assert show.bars is None, "the bar stayed open after the phase's last report"
    log = Console(file=io.StringIO(), force_terminal=False, width=160)
    write = ProgressPrinter(False, console=log)
    for name, info in shown:
        write(name, **info)
    lines = [line for line in log.file.getvalue().splitlines() if phase in line]
    return screen.file.getvalue(), "\n".join(lines)


def check_drawn(events: list[tuple[str, dict]], phase: str, timed: bool = False) -> None:
    """A bar for ``phase`` on a terminal (time left, or at most the time left when ``timed``),
    closed at its end, and a single line for it in a log (its reports take under LOG_EVERY)."""
    drawn, logged = replay(events, phase)
    assert phase in drawn and "━" in drawn
    assert ("left at most" in drawn) == timed and "left" in drawn
    assert len(logged.splitlines()) == 1, logged
