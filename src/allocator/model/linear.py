"""The backend-neutral linear model: what the formulation builds and every backend solves."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp


@dataclass
class LinearModel:
    """``sense`` c·x subject to row_lo <= A x <= row_hi, col_lo <= x <= col_hi.

    ``integrality`` marks integer columns. Infinite bounds are ``±inf``. ``offset`` is a
    constant added to the objective.
    """

    c: np.ndarray
    A: sp.csr_matrix
    row_lo: np.ndarray
    row_hi: np.ndarray
    col_lo: np.ndarray
    col_hi: np.ndarray
    integrality: np.ndarray
    sense: str = "max"
    offset: float = 0.0

    def __post_init__(self) -> None:
        m, n = self.A.shape
        for name, arr, size in (
            ("c", self.c, n),
            ("col_lo", self.col_lo, n),
            ("col_hi", self.col_hi, n),
            ("integrality", self.integrality, n),
            ("row_lo", self.row_lo, m),
            ("row_hi", self.row_hi, m),
        ):
            if len(arr) != size:
                raise ValueError(f"LinearModel.{name} has length {len(arr)}, expected {size}")
        if self.sense not in ("max", "min"):
            raise ValueError(f"LinearModel.sense must be 'max' or 'min' (got {self.sense!r})")

    @property
    def num_cols(self) -> int:
        return self.A.shape[1]

    @property
    def num_rows(self) -> int:
        return self.A.shape[0]

    @property
    def is_mip(self) -> bool:
        return bool(np.any(self.integrality))

    def relaxed(self) -> LinearModel:
        """The LP relaxation: same model with every column continuous."""
        return LinearModel(
            self.c, self.A, self.row_lo, self.row_hi, self.col_lo, self.col_hi,
            np.zeros(self.num_cols, dtype=bool), self.sense, self.offset,
        )

    def with_bounds(self, col_lo: np.ndarray, col_hi: np.ndarray) -> LinearModel:
        """Same model with other column bounds (used to fix columns)."""
        return LinearModel(
            self.c, self.A, self.row_lo, self.row_hi, col_lo, col_hi,
            self.integrality, self.sense, self.offset,
        )

    def without_objective(self) -> LinearModel:
        """Same constraints with a zero objective: a feasibility problem.

        A zero objective cannot be unbounded, so solving this tells "infeasible" from
        "unbounded" when a solver only reports that the model is one or the other.
        """
        return LinearModel(
            np.zeros(self.num_cols), self.A, self.row_lo, self.row_hi, self.col_lo,
            self.col_hi, self.integrality, self.sense, self.offset,
        )

    def scaled(self, row_scale: np.ndarray, col_scale: np.ndarray) -> LinearModel:
        """The same model in other units: row i times ``row_scale[i]``, column j's variable divided
        by ``col_scale[j]``. The objective is unchanged; a point of the scaled model times
        ``col_scale`` is a point of this one, and its row duals times ``row_scale`` are this one's."""
        A = sp.diags(row_scale) @ self.matrix("csr") @ sp.diags(col_scale)
        return LinearModel(
            self.c * col_scale, A.tocsr(), self.row_lo * row_scale, self.row_hi * row_scale,
            self.col_lo / col_scale, self.col_hi / col_scale, self.integrality, self.sense, self.offset,
        )

    def matrix(self, fmt: str = "csr") -> sp.spmatrix:
        """``A`` as float64 ``"csr"`` or ``"csc"`` with duplicate entries summed.

        Solvers that take index arrays expect one entry per (row, column); the caller's
        matrix is copied only when it is not already in that form.
        """
        A = self.A.asformat(fmt)
        if A.dtype != np.float64 or not A.has_canonical_format:
            A = A.astype(np.float64, copy=A is self.A)
            A.sum_duplicates()
        return A

    def objective_value(self, x: np.ndarray) -> float:
        return float(self.c @ x + self.offset)

    def max_violation(self, x: np.ndarray) -> float:
        """Largest violation of any row or column bound by ``x`` (0 when feasible)."""
        ax = self.A @ x
        viol = [
            np.max(self.row_lo - ax, initial=0.0),
            np.max(ax - self.row_hi, initial=0.0),
            np.max(self.col_lo - x, initial=0.0),
            np.max(x - self.col_hi, initial=0.0),
        ]
        return float(max(viol))


__all__ = ["LinearModel"]
