"""The CLI's progress printer: bars for phases that say how far they are, lines in a log."""

from __future__ import annotations

import io

from rich.console import Console

import allocator.cli.common as common
from allocator.cli.common import ProgressPrinter


def _printer(terminal: bool) -> tuple[ProgressPrinter, Console]:
    console = Console(file=io.StringIO(), force_terminal=terminal, width=160)
    return ProgressPrinter(False, console=console), console


def test_a_phase_bounded_by_time_is_a_bar_of_at_most_the_time_left_until_it_finishes():
    show, screen = _printer(terminal=True)
    show("prices", step=10, max_steps=500, seconds=1.0, budget=8.0)
    (task,) = show.bars.tasks
    assert common._TimeLeft().render(task).plain == "0:00:07"  # the budget less the seconds spent, not a pace
    task.fields["reported"] -= 3.0  # 3 s later, no report yet: it counts down
    assert common._TimeLeft().render(task).plain == "0:00:04"
    show("prices", step=20, max_steps=500, seconds=9.0, budget=8.0)  # a step past the budget: not the end
    assert show.bars is not None
    show("prices", step=23, max_steps=500, seconds=9.2, budget=8.0, finished=True)
    assert show.bars is None
    drawn = screen.file.getvalue()
    assert "left at most" in drawn and "9/8s" in drawn and "step 23, max steps 500" in drawn
    assert "finished" not in drawn


def test_bars_close_only_when_every_phase_drawn_has_ended():
    show, _ = _printer(terminal=True)
    show("improvement round", round=1, seconds=2.0, budget=20.0)
    show("counties", done=1, of=1)
    assert show.bars is not None  # the rounds go on
    show("improvement round", round=2, seconds=3.0, budget=20.0, finished=True)
    assert show.bars is None


def test_in_a_log_a_bar_phase_is_a_line_at_its_end_and_one_every_log_every_seconds(monkeypatch):
    show, log = _printer(terminal=False)
    for done in range(1, 51):
        show("variants", done=done, of=50, status="optimal")
    show("prices", step=10, seconds=1.0, budget=8.0)
    show("prices", step=12, seconds=1.2, budget=8.0, finished=True)
    show("plan ready", status="optimal")
    lines = log.file.getvalue().splitlines()
    assert len(lines) == 3 and "done 50, of 50" in lines[0] and "step 12" in lines[1] and "plan ready" in lines[2]
    assert "finished" not in lines[1]

    monkeypatch.setattr(common, "LOG_EVERY", 0.0)  # a long phase: a line at every report past LOG_EVERY
    show, log = _printer(terminal=False)
    for done in range(1, 4):
        show("variants", done=done, of=3)
    assert log.file.getvalue().count("variants") == 3
