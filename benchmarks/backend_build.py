"""Time how long each solver backend takes to build (not solve) a large sparse model.

Seeded instance: ``n`` binary columns, ``n`` "<=" rows, ~5 nonzeros per column. Solver
packages are imported before timing. For OR-Tools it also times the rejected route
(highspy writes MPS, ModelBuilder imports it); for PuLP also the MPS file it writes for
CBC at solve time. Run::

    python benchmarks/backend_build.py --n 100000
"""

from __future__ import annotations

import argparse
import importlib
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from allocator.solvers import BACKENDS, LinearModel, available_backends


def instance(n: int, seed: int = 0) -> LinearModel:
    """A seeded knapsack-like MIP with ``n`` columns, ``n`` rows and ~5n nonzeros."""
    rng = np.random.default_rng(seed)
    nnz = 5 * n
    A = sp.csr_matrix((rng.random(nnz), (rng.integers(0, n, nnz), rng.integers(0, n, nnz))), shape=(n, n))
    return LinearModel(
        c=rng.random(n), A=A, row_lo=np.full(n, -np.inf), row_hi=np.ones(n),
        col_lo=np.zeros(n), col_hi=np.ones(n), integrality=np.ones(n, dtype=bool),
    )


def build_highs(model: LinearModel) -> None:
    import highspy

    from allocator.solvers.highs import _to_highs_lp

    highspy.Highs().passModel(_to_highs_lp(model))


def build_ortools(model: LinearModel) -> None:
    from allocator.solvers.ortools import _to_model_builder

    _to_model_builder(model)


def build_ortools_via_mps(model: LinearModel) -> None:
    import highspy
    from ortools.linear_solver.python import model_builder as mb

    from allocator.solvers.highs import _to_highs_lp

    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.passModel(_to_highs_lp(model))
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "model.mps")
        h.writeModel(path)
        mb.Model().import_from_mps_file(path)


def build_pulp(model: LinearModel) -> None:
    from allocator.solvers.pulp import _to_pulp

    _to_pulp(model)


def build_pulp_and_write(model: LinearModel) -> None:
    """PuLP's build plus the MPS file it writes for CBC at solve time."""
    from allocator.solvers.pulp import _to_pulp

    prob, _ = _to_pulp(model)
    with tempfile.TemporaryDirectory() as tmp:
        prob.writeMPS(str(Path(tmp) / "model.mps"), rename=1)


BUILDERS = {
    "highs": build_highs, "ortools": build_ortools, "ortools (MPS route)": build_ortools_via_mps,
    "pulp": build_pulp, "pulp (+ MPS write for CBC)": build_pulp_and_write,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    args = parser.parse_args()
    model = instance(args.n)
    installed = available_backends()
    for name in installed:  # import the solver packages before any timing
        importlib.import_module(BACKENDS[name].package)
    print(f"{args.n} columns, {args.n} rows, {model.A.nnz} nonzeros; {platform.node()} {time.strftime('%F')}")
    print("| backend | build s |\n|---|---:|")
    for name, build in BUILDERS.items():
        if name.split()[0] not in installed:
            continue
        start = time.perf_counter()
        build(model)
        print(f"| {name} | {time.perf_counter() - start:.2f} |")


if __name__ == "__main__":
    main()
