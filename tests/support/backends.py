"""Which solver backends can run here: installed and, for the commercial ones, licensed for the
tests' tiny models (their wheels' own size-limited licences are enough)."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import scipy.sparse as sp

from allocator.errors import SolverUnavailable
from allocator.solvers import BACKENDS, Backend, LinearModel, SolveOptions, get_backend

COMMERCIAL = ("copt", "gurobi")


@functools.cache
def why_unusable(name: str) -> str | None:
    """Why backend ``name`` cannot run here (package missing, or no licence for even a one-column
    model), or ``None`` when it can."""
    cls = BACKENDS[name]
    if not cls.is_available():
        return f"{cls.package} is not installed (pip install {cls.package})"
    one = LinearModel(np.ones(1), sp.csr_matrix(np.ones((1, 1))), np.array([-np.inf]), np.ones(1), np.zeros(1),
                      np.ones(1), np.zeros(1, dtype=bool))
    try:
        cls().solve(one, SolveOptions())
    except SolverUnavailable as error:
        return f"{cls.package} is installed but cannot solve here without a licence: {error}"
    return None


def usable_backend(name: str) -> Backend:
    """Backend ``name``; the test skips, saying why, when it cannot run here."""
    reason = why_unusable(name)
    if reason is not None:
        pytest.skip(reason)
    return get_backend(name)


@functools.cache
def size_limited(name: str) -> bool:
    """Whether backend ``name`` refuses a MIP of 2,001 binaries, as the free licences of COPT and
    Gurobi do (above their 2,000 variables)."""
    n = 2001
    many = LinearModel(np.ones(n), sp.csr_matrix(np.ones((1, n))), np.array([-np.inf]), np.array([5.0]),
                       np.zeros(n), np.ones(n), np.ones(n, dtype=bool))
    try:
        get_backend(name).solve(many, SolveOptions())
    except SolverUnavailable:
        return True
    return False
