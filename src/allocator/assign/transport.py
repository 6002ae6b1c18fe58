"""The transportation engine: great-circle costs and a min-cost flow with arcs priced in round by round."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

EARTH_RADIUS_KM = 6371.0088
PRICING_ARCS = 24  # arcs added per supply node and pricing round
MAX_ROUNDS = 100
BLOCK = 4_000_000  # cost entries computed at once (memory ~ 8 bytes each, a few times)
DENSE_LIMIT = 20_000_000  # cost entries kept in memory (int32) instead of recomputed each pricing round


# --- geometry ------------------------------------------------------------------------------
def great_circle_km(lat1, lon1, lat2, lon2) -> np.ndarray:
    """Great-circle distance in km (haversine, vectorised; arrays broadcast)."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dlat, dlon = p2 - p1, np.radians(lon2) - np.radians(lon1)
    a = np.sin(dlat / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dlon / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


def unit_vectors(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    p, q = np.radians(lat), np.radians(lon)
    return np.column_stack([np.cos(p) * np.cos(q), np.cos(p) * np.sin(q), np.sin(p)])


def metres_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Whole metres between unit vectors ``a`` (rows) and ``b`` (columns), element-wise."""
    chord2 = np.zeros((len(a), len(b)))
    for k in range(3):
        diff = a[:, k, None] - b[None, :, k]
        chord2 += diff * diff
    chord = np.sqrt(chord2)
    return np.rint(2000.0 * EARTH_RADIUS_KM * np.arcsin(np.minimum(chord / 2, 1.0))).astype(np.int64)


# --- the transportation engine -------------------------------------------------------------
@dataclass
class _Flow:
    """Solution of one transportation problem (integer costs)."""

    arc_g: np.ndarray  # supply node of each used arc
    arc_j: np.ndarray  # server of each used arc (-1: unassigned)
    arc_flow: np.ndarray
    objective: int
    bound: int
    u: np.ndarray  # full-graph dual of each supply node (min over all servers, and unassigned)
    w: np.ndarray  # dual price of each server's capacity (>= 0)
    rounds: int
    arcs: int
    proven: bool
    all_g: np.ndarray | None = None  # every arc of the last sparse graph (to start a related solve)
    all_j: np.ndarray | None = None


def _potentials(n_nodes: int, tails: np.ndarray, heads: np.ndarray, costs: np.ndarray, source: int) -> np.ndarray:
    """Shortest-path distances from ``source`` (Bellman-Ford, vectorised over arcs; no negative cycles)."""
    order = np.argsort(heads, kind="stable")
    t, c, h = tails[order], costs[order].astype(np.float64), heads[order]
    uniq, start = np.unique(h, return_index=True)
    d = np.full(n_nodes, np.inf)
    d[source] = 0.0
    for _ in range(n_nodes + 1):
        best = np.minimum.reduceat(d[t] + c, start)
        improve = best < d[uniq]
        if not improve.any():
            return d
        d[uniq[improve]] = best[improve]
    raise RuntimeError("negative cycle in the residual graph: the flow is not optimal")


def dense_costs(cost_rows: Callable[[int, int], np.ndarray], G: int, J: int) -> Callable[[int, int], np.ndarray]:
    """Compute the costs once (int32, whole metres fit) when they fit in DENSE_LIMIT entries."""
    if G * J > DENSE_LIMIT:
        return cost_rows
    full = np.empty((G, J), dtype=np.int32)
    step = max(1, BLOCK // max(J, 1))
    for a in range(0, G, step):
        full[a:a + step] = cost_rows(a, min(G, a + step))
    return lambda a, b: full[a:b]


def solve_transport(cost_rows: Callable[[int, int], np.ndarray], supply: np.ndarray, capacity: np.ndarray,
               unassigned: int | np.ndarray, candidates: int, deadline: float | None,
               start: tuple[np.ndarray, np.ndarray] | None = None) -> _Flow:
    """Exact transportation problem with an 'unassigned' option, by min-cost flow with pricing.

    ``cost_rows(a, b)`` returns the integer costs of supply nodes a..b-1 to every server;
    ``unassigned`` is the cost of leaving one unit of a supply node unserved (one number or
    one per node). See the module doc for the pricing and the bound.
    """
    from ortools.graph.python import min_cost_flow

    G, J = len(supply), len(capacity)
    supply = supply.astype(np.int64)
    total = int(supply.sum())
    out_cost = np.broadcast_to(np.asarray(unassigned, dtype=np.int64), (G,)).copy()
    if J == 0 or G == 0:
        obj = int((supply * out_cost).sum())
        return _Flow(np.arange(G), np.full(G, -1), supply, obj, obj, out_cost, np.zeros(J, dtype=np.int64), 0, 0,
                     True)
    capacity = np.minimum(capacity.astype(np.int64), total)
    cost_rows = dense_costs(cost_rows, G, J)
    step = max(1, BLOCK // J)
    k = min(candidates, J)
    eg, ej, ec = [], [], []
    for a in range(0, G, step):
        block = cost_rows(a, min(G, a + step))
        if start is not None:  # the arcs of an earlier solve on the same costs
            inside = (start[0] >= a) & (start[0] < a + len(block))
            g, j = start[0][inside], start[1][inside]
            eg.append(g)
            ej.append(j)
            ec.append(block[g - a, j].astype(np.int64))
            continue
        idx = np.argpartition(block, k - 1, axis=1)[:, :k] if k < J else np.broadcast_to(np.arange(J), block.shape)
        eg.append(np.repeat(np.arange(a, a + len(block)), idx.shape[1]))
        ej.append(idx.ravel())
        ec.append(np.take_along_axis(block, idx, axis=1).ravel().astype(np.int64))
    eg, ej, ec = np.concatenate(eg), np.concatenate(ej).astype(np.int64), np.concatenate(ec)
    T = G + J
    nodes = np.arange(T + 1, dtype=np.int32)
    supplies = np.r_[supply, np.zeros(J, dtype=np.int64), -total]
    js, gs = np.arange(J), np.arange(G)
    rounds = 0
    while True:
        rounds += 1
        E = len(eg)
        smcf = min_cost_flow.SimpleMinCostFlow()
        smcf.add_arcs_with_capacity_and_unit_cost(
            np.r_[eg, G + js, gs].astype(np.int32),
            np.r_[G + ej, np.full(J, T), np.full(G, T)].astype(np.int32),
            np.r_[supply[eg], capacity, supply].astype(np.int64),
            np.r_[ec, np.zeros(J, dtype=np.int64), out_cost].astype(np.int64))
        smcf.set_nodes_supplies(nodes, supplies)
        code = smcf.solve()
        if code != smcf.OPTIMAL:
            raise RuntimeError(f"min-cost flow returned status {code} on a problem that is always feasible")
        flow = smcf.flows(np.arange(E + J + G, dtype=np.int32))
        f_e, f_c, f_u = flow[:E], flow[E:E + J], flow[E + J:]
        objective = int(smcf.optimal_cost())
        # residual graph (arcs g->j and g->T are uncapacitated in the LP; j->T has capacity)
        used, spare, loaded, left = f_e > 0, f_c < capacity, f_c > 0, f_u > 0
        n_spare, n_loaded, n_left = int(spare.sum()), int(loaded.sum()), int(left.sum())
        tails = np.r_[eg, G + ej[used], G + js[spare], np.full(n_loaded, T), gs, np.full(n_left, T)]
        heads = np.r_[G + ej, eg[used], np.full(n_spare, T), G + js[loaded], np.full(G, T), gs[left]]
        costs = np.r_[ec, -ec[used], np.zeros(n_spare + n_loaded, dtype=np.int64), out_cost, -out_cost[left]]
        pi = _potentials(T + 1, tails, heads, costs, T)
        w = np.where(np.isfinite(pi[G:T]), np.maximum(0.0, -pi[G:T]), 0.0).astype(np.int64)
        u_e = (-pi[:G]).astype(np.int64)  # every supply node is reachable from T (it sends flow)
        # price every pair: full-graph dual bound and the pairs with negative reduced cost
        lb = -int((capacity * w).sum())
        u_full = np.empty(G, dtype=np.int64)
        new_g, new_j, new_c = [], [], []
        for a in range(0, G, step):
            b = min(G, a + step)
            block = cost_rows(a, b)
            priced = block + w[None, :]
            u_full[a:b] = np.minimum(out_cost[a:b], priced.min(axis=1))
            viol = priced < u_e[a:b, None]
            rows = np.flatnonzero(viol.any(axis=1))
            if len(rows):
                sub = np.where(viol[rows], priced[rows], np.iinfo(np.int64).max)
                r = min(PRICING_ARCS, J)
                pick = np.argpartition(sub, r - 1, axis=1)[:, :r] if r < J else np.broadcast_to(np.arange(J), sub.shape)
                ok = np.take_along_axis(viol[rows], pick, axis=1).ravel()
                new_g.append(np.repeat(a + rows, pick.shape[1])[ok])
                new_j.append(pick.ravel()[ok])
                new_c.append(np.take_along_axis(block[rows], pick, axis=1).ravel()[ok].astype(np.int64))
        lb += int((supply * u_full).sum())
        lb = min(lb, objective)
        n_new = sum(len(x) for x in new_g)
        if lb == objective or n_new == 0 or rounds >= MAX_ROUNDS or (deadline is not None
                                                                     and time.monotonic() > deadline):
            break
        eg = np.r_[eg, np.concatenate(new_g)]
        ej = np.r_[ej, np.concatenate(new_j)]
        ec = np.r_[ec, np.concatenate(new_c)]
    keep = f_e > 0
    arc_g = np.r_[eg[keep], gs[left]]
    arc_j = np.r_[ej[keep], np.full(n_left, -1)]
    arc_flow = np.r_[f_e[keep], f_u[left]]
    return _Flow(arc_g, arc_j, arc_flow, objective, lb, u_full, w, rounds, len(eg), lb == objective, eg, ej)


__all__ = ["BLOCK", "DENSE_LIMIT", "EARTH_RADIUS_KM", "MAX_ROUNDS", "PRICING_ARCS", "dense_costs", "great_circle_km",
           "metres_between", "solve_transport", "unit_vectors"]
