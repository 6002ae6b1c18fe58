"""Backend-neutral options, result and status vocabulary, and the backend interface.

A :class:`~allocator.model.linear.LinearModel` is plain arrays (a scipy CSR matrix and numpy
vectors); a backend turns it into its own solver's model in one vectorised call where the solver allows it,
solves, and maps the native status to :class:`Status` with the raw string kept.
"""

from __future__ import annotations

import contextlib
import enum
import math
import os
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import ClassVar

import numpy as np

from allocator.errors import NoSolution
from allocator.model.linear import LinearModel

GAP_TOL = 1e-9  # a relative gap above this after an "optimal" MIP run means the gap target stopped it


class Status(str, enum.Enum):
    """One status vocabulary for every backend and method."""

    OPTIMAL = "optimal"  # proven optimal within the requested gap
    FEASIBLE = "feasible"  # stopped by a limit (or a heuristic) with a plan
    INFEASIBLE = "infeasible"
    UNBOUNDED = "unbounded"
    ERROR = "error"  # stopped with no plan, or the solver failed

    @property
    def has_solution(self) -> bool:
        return self in (Status.OPTIMAL, Status.FEASIBLE)


class StoppedBy(str, enum.Enum):
    """Why a run that has a plan stopped before closing the gap completely."""

    TIME_LIMIT = "time_limit"
    GAP = "gap"  # the relative gap target was reached (gap > 0)
    OTHER_LIMIT = "other_limit"  # node, iteration or solution limit


STOP_SOLVES = threading.Event()
"""Set, it asks this process's running and later solves to stop at once with their best point,
as at a time limit (HiGHS stops at its next MIP callback when progress is reported; other
backends run to their own limits). The HTTP service's workers set it at their hard limit."""


@dataclass
class SolveOptions:
    """Typed solver options; ``None`` means the backend's default."""

    time_limit: float | None = None  # seconds
    mip_gap: float | None = 1e-3  # relative gap at which a MIP may stop
    threads: int | None = None
    seed: int = 0
    verbose: bool = False
    presolve: bool = True  # False: skip presolve (backends without the switch ignore it)
    extra: dict = field(default_factory=dict)  # backend-specific options, passed through
    # called as progress(phase, incumbent=, bound=, gap=, seconds=) during long solves
    progress: Callable[..., None] | None = field(default=None, repr=False, compare=False)
    # a feasible point to start branch and bound from (backends that cannot use it ignore it)
    start: np.ndarray | None = field(default=None, repr=False, compare=False)
    # methods that split the model (decompose): kept columns per group of counties (None: the
    # method's default)
    group_columns: int | None = None

    def to_dict(self) -> dict:
        """The options as plain data (for the run manifest)."""
        return {k: v for k, v in self.__dict__.items() if k not in ("progress", "start")}


@dataclass
class SolveResult:
    """What a backend returns: status, why it stopped, the point, objective and bound.

    ``bound`` is the best proven bound on the objective (an upper bound when maximising).
    ``gap`` is the relative gap |bound - objective| / max(|objective|, 1), or ``None``
    when there is no plan or no bound. ``duals`` holds row duals for LPs when available.
    """

    status: Status
    raw_status: str
    backend: str
    x: np.ndarray | None = None
    objective: float | None = None
    bound: float | None = None
    stopped_by: StoppedBy | None = None
    solve_seconds: float = 0.0
    duals: np.ndarray | None = None
    message: str = ""

    @property
    def gap(self) -> float | None:
        return relative_gap(self.objective, self.bound)

    def set_mip_bound(self, bound: float) -> None:
        """A MIP run's proven bound (none where the solver reports an infinite one, |bound| >= 1e30),
        then :meth:`note_gap_stop`."""
        self.bound = bound if math.isfinite(bound) and abs(bound) < 1e30 else None
        self.note_gap_stop()

    def note_gap_stop(self) -> None:
        """A MIP run its solver calls optimal with a relative gap above 1e-9 stopped at its gap
        target, not at the optimum: ``stopped_by`` says so."""
        gap = self.gap
        if self.status is Status.OPTIMAL and gap is not None and gap > GAP_TOL:
            self.stopped_by = StoppedBy.GAP

    def solution(self) -> np.ndarray:
        """The solution vector; raises :class:`NoSolution` when the run has none."""
        if self.x is None or not self.status.has_solution:
            raise NoSolution(f"{self.backend} returned no solution (status {self.status.value}: {self.raw_status})")
        return self.x


def relative_gap(objective: float | None, bound: float | None) -> float | None:
    """|bound - objective| / max(|objective|, 1); ``None`` if either is missing."""
    if objective is None or bound is None or not math.isfinite(bound):
        return None
    return abs(bound - objective) / max(abs(objective), 1.0)


@dataclass
class Conflict:
    """An irreducible infeasible subsystem: rows and columns whose bounds cannot all hold.

    ``row_side`` / ``col_side`` say which bound of each takes part: ``lower``, ``upper`` or
    ``boxed`` (both). Empty when none was found; ``lp_status`` then says why (the LP
    relaxation's HiGHS model status: feasible, or stopped by the time limit)."""

    rows: np.ndarray
    row_side: list[str]
    cols: np.ndarray
    col_side: list[str]
    lp_status: str = "Infeasible"

    @property
    def found(self) -> bool:
        return bool(len(self.rows) or len(self.cols))


class Backend:
    """A solver backend: small class with a name, capabilities and ``solve``."""

    name: ClassVar[str]
    package: ClassVar[str]  # the pip package that provides it
    supports_mip: ClassVar[bool] = True
    supports_duals: ClassVar[bool] = False
    supports_iis: ClassVar[bool] = False  # finds an irreducible infeasible subsystem (:meth:`iis`)

    @classmethod
    def is_available(cls) -> bool:
        """Cheap check that the backend's package can be imported."""
        import importlib.util

        return importlib.util.find_spec(cls.package.replace("-", "_")) is not None

    @classmethod
    def version(cls) -> str:
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version(cls.package)
        except PackageNotFoundError:
            return "unknown"

    def solve(self, model: LinearModel, options: SolveOptions) -> SolveResult:  # pragma: no cover
        raise NotImplementedError

    def iis(self, model: LinearModel, time_limit: float | None = None) -> Conflict:  # pragma: no cover
        """An IIS of the LP relaxation of ``model`` (backends with ``supports_iis``)."""
        raise NotImplementedError


def solver_parameters(model: LinearModel, options: SolveOptions, names: tuple[str, str, str, str],
                      presolve_off: object, fixed: dict | None = None) -> dict:
    """A solver's parameters for ``options``: ``fixed`` ones, then the time limit, the MIP gap
    (MIPs only), threads and presolve off (as ``presolve_off``) under the solver's own
    ``names`` (time, gap, threads, presolve), then ``options.extra`` verbatim."""
    time_name, gap_name, threads_name, presolve_name = names
    values = dict(fixed or {})
    if options.time_limit is not None:
        values[time_name] = float(options.time_limit)
    if options.mip_gap is not None and model.is_mip:
        values[gap_name] = float(options.mip_gap)
    if options.threads is not None:
        values[threads_name] = int(options.threads)
    if not options.presolve:
        values[presolve_name] = presolve_off
    values.update(options.extra)
    return values


@contextlib.contextmanager
def stdout_closed() -> Iterator[None]:
    """File descriptor 1 on the null device for the block: solver libraries print banners and
    licence checks from C, whatever their log settings say, and that must not mix with a
    command's output."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 1)
            yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def settle_infeasible_or_unbounded(
    backend: Backend, model: LinearModel, options: SolveOptions, elapsed: float
) -> tuple[Status, str]:
    """Tell "infeasible" from "unbounded" by solving ``model`` without its objective.

    Called when a solver only says "infeasible or unbounded" (or may say "infeasible" for
    either). The feasibility problem cannot be unbounded: a plan means the model is
    unbounded, "infeasible" is final. If the check itself is inconclusive (a limit), the
    model is reported infeasible and the message says that it was not proven.
    """
    if not np.any(model.c):
        return Status.INFEASIBLE, "infeasible (a zero objective cannot be unbounded)"
    remaining = None if options.time_limit is None else max(options.time_limit - elapsed, 0.0)
    probe = backend.solve(model.without_objective(), replace(options, time_limit=remaining))
    if probe.status.has_solution:
        return Status.UNBOUNDED, "feasible with a zero objective, so unbounded"
    if probe.status is Status.INFEASIBLE:
        return Status.INFEASIBLE, "infeasible (confirmed with a zero objective)"
    return Status.INFEASIBLE, f"infeasible or unbounded; the check stopped: {probe.raw_status}"
