"""Exceptions of allocator: one error grammar, builtin-derived classes.

Bad input raises :class:`InputError` carrying every problem found (up to a cap), each an
:class:`Issue` that names the file, the row or id, the column, what was expected and what
was found. Infeasible or stopped solves are *results*, never exceptions.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_ISSUES = 20


@dataclass(frozen=True)
class Issue:
    """One problem found in the input: where it is and what was expected."""

    file: str
    message: str
    row: int | None = None
    id: str | None = None
    column: str | None = None
    key: str | None = None  # a key path in a YAML file, e.g. 'policy.deadline'
    expected: str | None = None
    found: str | None = None

    def __str__(self) -> str:
        where = self.file
        if self.row is not None:
            where += f" row {self.row}"
        if self.id is not None:
            where += f" (id {self.id})"
        if self.column is not None:
            where += f", column '{self.column}'"
        if self.key is not None:
            where += f", key '{self.key}'"
        text = f"{where}: {self.message}"
        if self.expected is not None:
            text += f"; expected {self.expected}"
        if self.found is not None:
            text += f" (found {self.found})"
        return text

    def to_dict(self) -> dict:
        """Structured form for JSON (the HTTP service returns these as 422 bodies)."""
        return {k: v for k, v in self.__dict__.items() if v is not None}


class AllocatorError(Exception):
    """Base class of every error allocator raises on purpose."""


class InputError(AllocatorError, ValueError):
    """The scenario or its tables are invalid; ``issues`` lists every problem found."""

    def __init__(self, issues: list[Issue], truncated: bool = False):
        self.issues = list(issues)
        self.truncated = truncated
        lines = [str(i) for i in self.issues]
        if truncated:
            lines.append(f"(stopped after {len(self.issues)} problems)")
        super().__init__(
            f"{len(self.issues)} problem(s) in the input:\n  " + "\n  ".join(lines)
        )


class ScenarioError(InputError):
    """The scenario YAML itself is invalid (keys, types, values)."""


class InputMismatch(InputError):
    """Inputs that do not belong together: a plan made from other data, a progress record drawn
    from another plan (the HTTP service answers 409)."""


class SolverUnavailable(AllocatorError, RuntimeError):
    """A backend was requested that is unknown or whose package is not installed."""


class NoSolution(AllocatorError, RuntimeError):
    """A solution was asked of a result that has none (infeasible, error)."""


class IssueCollector:
    """Collects issues up to ``MAX_ISSUES`` and raises them together."""

    def __init__(self, limit: int = MAX_ISSUES):
        self.issues: list[Issue] = []
        self._cells: set[tuple] = set()
        self.limit = limit
        self.truncated = False

    def add(self, file: str, message: str, **where) -> None:
        """Record one issue; skip a second one on a cell already reported; beyond the
        limit only remember that there were more."""
        cell = (file, where.get("row"), where.get("column"))
        if where.get("row") is not None and cell in self._cells:
            return
        if len(self.issues) >= self.limit:
            self.truncated = True
            return
        self._cells.add(cell)
        self.issues.append(Issue(file=file, message=message, **where))

    @property
    def full(self) -> bool:
        """True once the limit is reached: callers may stop looking."""
        return len(self.issues) >= self.limit

    def raise_if_any(self, cls: type[InputError] = InputError) -> None:
        """Raise ``cls`` with every collected issue, if any were collected."""
        if self.issues:
            raise cls(self.issues, self.truncated)
