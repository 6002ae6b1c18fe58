"""Counties solved apart (the county rule makes them independent), in parallel processes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from allocator.assign.contract import MISMATCH_KM, OTHER_TOWNSHIP_KM, UNASSIGNED_KM
from allocator.assign.transport import dense_costs, metres_between, solve_transport
from allocator.optimize.methods import ProgressCallback, quiet

RELAXATION_TOL = 1e-3  # solve the no-county-rule relaxation of a county when the simple bound is this far off


@dataclass
class CountyWork:
    """The data of one county's household problem (picklable, for worker processes)."""

    g_unit: np.ndarray
    g_need: np.ndarray
    g_town: np.ndarray
    supply: np.ndarray
    cross: np.ndarray  # per supply node: lower bound (m) on serving it from another county, inf if none
    c_unit: np.ndarray
    c_skill: np.ndarray
    c_town: np.ndarray
    capacity: np.ndarray
    candidates: int
    deadline: float | None


def _county_costs(work: CountyWork) -> Callable[[int, int], np.ndarray]:
    mismatch_m, town_m = round(MISMATCH_KM * 1000), round(OTHER_TOWNSHIP_KM * 1000)

    def cost_rows(a: int, b: int) -> np.ndarray:
        cost = metres_between(work.g_unit[a:b], work.c_unit)
        need = work.g_need[a:b, None]
        cost += mismatch_m * ((need != 0) & ((need & work.c_skill[None, :]) == 0))
        cost += town_m * (work.g_town[a:b, None] != work.c_town[None, :])
        return cost

    return dense_costs(cost_rows, len(work.supply), len(work.capacity))


def _solve_county(work: CountyWork) -> dict:
    """One county: the exact flow under the county rule, then the bound without it."""
    unassigned = round(UNASSIGNED_KM * 1000)
    cost_rows = _county_costs(work)
    sol = solve_transport(cost_rows, work.supply, work.capacity, unassigned, work.candidates, work.deadline)
    # without the county rule: an uncapacitated 'served from outside' option at its lower bound
    outside = np.minimum(unassigned, work.cross).astype(np.int64)
    simple = int((work.supply * np.minimum(sol.u, outside)).sum() - (np.minimum(
        work.capacity.astype(np.int64), int(work.supply.sum())) * sol.w).sum())
    relaxed_solved = False
    if sol.objective - simple > RELAXATION_TOL * max(sol.objective, 1):
        relaxed = solve_transport(cost_rows, work.supply, work.capacity, outside, work.candidates, work.deadline,
                             start=(sol.all_g, sol.all_j))
        province = max(simple, relaxed.bound)
        relaxed_solved = True
    else:
        province = simple
    return {"arc_g": sol.arc_g, "arc_j": sol.arc_j, "arc_flow": sol.arc_flow, "objective": sol.objective,
            "bound": sol.bound, "province_bound": min(province, sol.bound), "rounds": sol.rounds, "arcs": sol.arcs,
            "proven": sol.proven, "relaxed_solved": relaxed_solved}


def run_counties(works: list[CountyWork], workers: int, progress: ProgressCallback = quiet) -> list[dict]:
    """Solve the counties, in ``workers`` forked processes when more than one (same results);
    ``progress("assign: counties", done=, of=)`` as each one finishes."""
    import multiprocessing as mp

    out: list[dict] = [{}] * len(works)
    if workers > 1 and len(works) > 1 and "fork" in mp.get_all_start_methods():
        from concurrent.futures import ProcessPoolExecutor, as_completed

        order = np.argsort([-len(w.supply) * max(len(w.capacity), 1) for w in works], kind="stable")
        with ProcessPoolExecutor(max_workers=min(workers, len(works)), mp_context=mp.get_context("fork")) as pool:
            futures = {pool.submit(_solve_county, works[i]): int(i) for i in order}  # largest first
            for done, future in enumerate(as_completed(futures), start=1):
                out[futures[future]] = future.result()
                progress("assign: counties", done=done, of=len(works))
        return out
    for i, work in enumerate(works):
        out[i] = _solve_county(work)
        progress("assign: counties", done=i + 1, of=len(works))
    return out


def spread_flow(group_of: np.ndarray, arc_g: np.ndarray, arc_j: np.ndarray, arc_flow: np.ndarray) -> np.ndarray:
    """The server of each member of each supply node: flows split over the members in order."""
    order = np.argsort(group_of, kind="stable")
    arcs = np.lexsort((arc_j, arc_g))
    server = np.repeat(arc_j[arcs], arc_flow[arcs])
    out = np.empty(len(group_of), dtype=np.int64)
    out[order] = server
    return out


__all__ = ["CountyWork", "RELAXATION_TOL", "run_counties", "spread_flow"]
