"""Solver backends by name: HiGHS, OR-Tools and PuLP (CBC), and where licensed COPT and Gurobi,
behind one interface.

Each backend takes a :class:`LinearModel` and :class:`SolveOptions` and returns a
:class:`SolveResult` in one status vocabulary. Backend modules import their solver
package only when solving, so this registry imports without any of them installed.
"""

from __future__ import annotations

from allocator.errors import SolverUnavailable
from allocator.model.linear import LinearModel
from allocator.solvers.base import Backend, SolveOptions, SolveResult, Status, StoppedBy
from allocator.solvers.copt import CoptBackend
from allocator.solvers.gurobi import GurobiBackend
from allocator.solvers.highs import HighsBackend
from allocator.solvers.ortools import OrtoolsBackend
from allocator.solvers.pulp import PulpBackend

__all__ = [
    "BACKENDS", "Backend", "LinearModel", "SolveOptions", "SolveResult", "Status", "StoppedBy",
    "available_backends", "get_backend", "iis_backend",
]

# open-source first: available_backends() and iis_backend() prefer them in this order
BACKENDS: dict[str, type[Backend]] = {
    b.name: b for b in (HighsBackend, OrtoolsBackend, PulpBackend, CoptBackend, GurobiBackend)
}


def available_backends() -> list[str]:
    """Names of the backends whose solver package is installed, in preference order."""
    return [name for name, cls in BACKENDS.items() if cls.is_available()]


def iis_backend() -> Backend:
    """The first installed backend that finds an IIS (``supports_iis``)."""
    for name in available_backends():
        if BACKENDS[name].supports_iis:
            return BACKENDS[name]()
    raise SolverUnavailable("no installed solver backend finds an IIS: pip install highspy")


def get_backend(name: str) -> Backend:
    """A backend instance by name.

    Raises
    ------
    SolverUnavailable
        When ``name`` is unknown (the message lists the installed backends) or its
        package is missing (the message says what to install).
    """
    cls = BACKENDS.get(name.strip().lower())
    if cls is None:
        installed = ", ".join(available_backends()) or "none"
        raise SolverUnavailable(
            f"unknown solver backend {name!r}; installed: {installed} (known: {', '.join(BACKENDS)})"
        )
    if not cls.is_available():
        raise SolverUnavailable(
            f"solver backend {name!r} needs the package {cls.package!r}: pip install {cls.package}"
        )
    return cls()
