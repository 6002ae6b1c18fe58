"""The model a user would otherwise write: object-by-object PuLP, with Python loops.

:func:`build_naive` builds, from a :class:`allocator.model.problem.Problem`, the same MIP
as :func:`allocator.model.formulation.formulate` -- same candidate columns, same rows,
same objective (offset included) -- but one ``LpVariable`` per (package, year), per
(project, year), per flow (fund row, county, category) and per county shortfall, and one
``LpConstraint`` per household, project, prerequisite (household, project, year),
balance (county, category, year), source budget, category-share rule, personnel row and
county, each written with ``lpSum`` inside Python loops. Only its build is benchmarked.
(``formulate``'s free "total shortfall cap" row, sum s <= +inf unless the exact method's
second stage sets it, is left out.)

Cross-check (solves both LP relaxations with HiGHS and compares the objectives; on the
one-year instance also the MIP optimum)::

    python benchmarks/naive_pulp.py --check            # h1k-1y and h1k-5y, three policies
    python benchmarks/naive_pulp.py h10k-1y            # time the naive build of one instance
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pulp  # noqa: E402

from allocator.inputs.tables import CATEGORIES  # noqa: E402
from allocator.model.problem import Problem  # noqa: E402


@dataclass
class NaiveModel:
    prob: pulp.LpProblem
    x: dict
    y: dict
    f: dict
    s: dict

    def sizes(self) -> dict[str, int]:
        constraints = self.prob.constraints()
        return {"columns": len(self.x) + len(self.y) + len(self.f) + len(self.s),
                "rows": len(constraints), "nonzeros": sum(len(c) for c in constraints)}


def build_naive(p: Problem) -> NaiveModel:
    """The allocator MIP of ``p``, written the object-per-variable way (see the module doc)."""
    G = len(CATEGORIES)
    T = len(p.years)
    years = p.years.tolist()
    deadline = p.deadline_year
    C = len(p.county_ids)
    hard = p.policy.deadline == "hard"

    hh_county = p.household_county.tolist()
    hh_township = p.household_township.tolist()
    baseline = p.household_baseline.tolist()
    pkg_household = p.pkg_household.tolist()
    pkg_category = p.pkg_category.tolist()
    pkg_cost = p.pkg_cost.tolist()
    pkg_hours = p.pkg_hours.tolist()
    pkg_exit = p.pkg_exit.tolist()
    pkg_lag = p.pkg_lag.tolist()
    req_ptr = p.pkg_req_ptr.tolist()
    req_project = p.pkg_req_project.tolist()
    proj_county = p.proj_county.tolist()
    proj_category = p.proj_category.tolist()
    proj_cost = p.proj_cost.tolist()
    proj_duration = p.proj_duration.tolist()
    proj_mandatory = p.proj_mandatory.tolist()
    fund_source = p.fund_source.tolist()
    fund_year = p.fund_year.tolist()
    fund_amount = p.fund_amount.tolist()
    fund_category_ok = p.fund_category_ok.tolist()
    fund_county_ok = p.fund_county_ok.tolist()
    carry_over = p.source_carry_over.tolist()
    R = len(fund_amount)

    # Which (category, county, year) some fund row may pay for.
    fundable = set()
    for r in range(R):
        for g in range(G):
            if fund_category_ok[r][g]:
                for c in range(C):
                    if fund_county_ok[r][c]:
                        fundable.add((g, c, fund_year[r]))

    prob = pulp.LpProblem("naive_allocator", pulp.LpMaximize)

    # Category share rules make any spend useful (it moves the shares): then no column is
    # pruned for a late exit or a gain <= 0, and every project may be built at any time.
    shares = bool(p.policy.min_category_share or p.policy.max_category_share)

    # x[package, year]: only where prerequisites can finish first and some fund may pay,
    # and (without share rules) where the exit counts and beats the household's baseline.
    x, gain_of = {}, {}
    x_of_household = defaultdict(list)  # household -> [(package, year)]
    for k in range(len(pkg_household)):
        h = pkg_household[k]
        gain = pkg_exit[k] - baseline[h]
        if not shares and not gain > 0:
            continue
        earliest = 0
        for i in range(req_ptr[k], req_ptr[k + 1]):
            earliest = max(earliest, proj_duration[req_project[i]])
        c = hh_county[h]
        for t in range(earliest, T):
            if not shares and years[t] + pkg_lag[k] > deadline:
                continue
            if pkg_cost[k] != 0 and (pkg_category[k], c, t) not in fundable:
                continue
            x[k, t] = pulp.LpVariable(f"x_{k}_{t}", lowBound=0, upBound=1, cat=pulp.LpBinary)
            gain_of[k, t] = gain if years[t] + pkg_lag[k] <= deadline else 0.0  # exit too late: 0
            x_of_household[h].append((k, t))

    # y[project, year]: mandatory projects, and those a package with a column needs
    # (every project, in any year, under share rules).
    needed = set()
    for k, _t in x:
        for i in range(req_ptr[k], req_ptr[k + 1]):
            needed.add(req_project[i])
    y = {}
    for q in range(len(proj_cost)):
        if not (proj_mandatory[q] or q in needed or shares):
            continue
        for t in range(T):
            finish = years[t] + proj_duration[q]
            in_time = finish - 1 <= deadline if proj_mandatory[q] else (finish <= deadline or shares)
            if not in_time:
                continue
            if proj_cost[q] != 0 and (proj_category[q], proj_county[q], t) not in fundable:
                continue
            y[q, t] = pulp.LpVariable(f"y_{q}_{t}", lowBound=0, upBound=1, cat=pulp.LpBinary)

    # f[fund row, county, category] >= 0 wherever something payable could be spent.
    spend_possible = set()
    for k, t in x:
        if pkg_cost[k] > 0:
            spend_possible.add((pkg_category[k], hh_county[pkg_household[k]], t))
    for q, t in y:
        if proj_cost[q] > 0:
            spend_possible.add((proj_category[q], proj_county[q], t))
    f = {}
    for r in range(R):
        for c in range(C):
            if not fund_county_ok[r][c]:
                continue
            for g in range(G):
                if fund_category_ok[r][g] and (g, c, fund_year[r]) in spend_possible:
                    f[r, c, g] = pulp.LpVariable(f"f_{r}_{c}_{g}", lowBound=0)

    # s[county] >= 0: shortfall in households (fixed at 0 under a hard deadline).
    s = {c: pulp.LpVariable(f"s_{c}", lowBound=0, upBound=0 if hard else None) for c in range(C)}

    # Objective: expected exits, the shortfall penalised first.
    best_gain = defaultdict(float)
    for (k, _t), gain in gain_of.items():
        h = pkg_household[k]
        best_gain[h] = max(best_gain[h], gain)
    penalty = float(math.ceil(sum(best_gain.values()))) + 1.0
    prob += (pulp.lpSum(gain_of[key] * var for key, var in x.items())
             - penalty * pulp.lpSum(s.values()) + sum(baseline))

    # One plan per household.
    for _h, cols in x_of_household.items():
        prob += pulp.lpSum(x[key] for key in cols) <= 1

    # Each project at most once; a mandatory one exactly once.
    y_of_project = defaultdict(list)
    for (q, _t), var in y.items():
        y_of_project[q].append(var)
    for q in sorted(set(y_of_project) | {q for q in range(len(proj_cost)) if proj_mandatory[q]}):
        if proj_mandatory[q]:
            prob += pulp.lpSum(y_of_project[q]) == 1
        else:
            prob += pulp.lpSum(y_of_project[q]) <= 1

    # Prerequisites: for each household h, project r it may need and year t,
    # sum of its packages requiring r started by t <= sum of y[r, t''] finished by t.
    for _h, cols in x_of_household.items():
        requiring = defaultdict(list)  # project -> [(year, x var)], once per requirement
        for k, t in cols:
            for i in range(req_ptr[k], req_ptr[k + 1]):
                requiring[req_project[i]].append((t, x[k, t]))
        for r, starts in requiring.items():
            for t in range(T):
                xs = [var for t0, var in starts if t0 <= t]
                if not xs:
                    continue
                ys = [y[r, t2] for t2 in range(T) if t2 + proj_duration[r] <= t and (r, t2) in y]
                prob += pulp.lpSum(xs) <= pulp.lpSum(ys)

    # Money balance: flows into (county, category, year) = spend there.
    flows_in = defaultdict(list)
    for (r, c, g), var in f.items():
        flows_in[c, g, fund_year[r]].append(var)
    spend_in = defaultdict(list)
    for (k, t), var in x.items():
        if pkg_cost[k] > 0:
            spend_in[hh_county[pkg_household[k]], pkg_category[k], t].append(pkg_cost[k] * var)
    for (q, t), var in y.items():
        if proj_cost[q] > 0:
            spend_in[proj_county[q], proj_category[q], t].append(proj_cost[q] * var)
    for key in sorted(flows_in):
        prob += pulp.lpSum(flows_in[key]) == pulp.lpSum(spend_in[key])

    # Source budgets: a fund row's spend <= its amount (cumulative over years with carry-over).
    flows_of_row = defaultdict(list)
    for (r, _c, _g), var in f.items():
        flows_of_row[r].append(var)
    for r in range(R):
        if carry_over[fund_source[r]]:
            members = [r2 for r2 in range(R)
                       if fund_source[r2] == fund_source[r] and fund_year[r2] <= fund_year[r]]
        else:
            members = [r]
        limit = sum(fund_amount[r2] for r2 in members)
        prob += pulp.lpSum(v for r2 in members for v in flows_of_row[r2]) <= limit

    # Category shares over all years and counties.
    rules = [(CATEGORIES.index(cat), share, "min") for cat, share in p.policy.min_category_share.items()]
    rules += [(CATEGORIES.index(cat), share, "max") for cat, share in p.policy.max_category_share.items()]
    for g, share, kind in rules:
        expr = pulp.lpSum((1.0 - share if g2 == g else -share) * var for (_r, _c, g2), var in f.items())
        prob += (expr >= 0) if kind == "min" else (expr <= 0)

    # Personnel hours per county or township and year.
    county_row, township_row = {}, {}
    for i, (is_county, region, t) in enumerate(zip(p.pers_is_county.tolist(), p.pers_region.tolist(),
                                                     p.pers_year.tolist(), strict=True)):
        (county_row if is_county else township_row)[region, t] = i
    hours_terms = defaultdict(list)
    for (k, t), var in x.items():
        if pkg_hours[k] > 0:
            h = pkg_household[k]
            for row in (county_row.get((hh_county[h], t)), township_row.get((hh_township[h], t))):
                if row is not None:
                    hours_terms[row].append(pkg_hours[k] * var)
    for i, hours in enumerate(p.pers_hours.tolist()):
        prob += pulp.lpSum(hours_terms[i]) <= hours

    # County exit: poor - exits <= threshold * population + shortfall.
    exits_in = defaultdict(list)
    for (k, t), var in x.items():
        exits_in[hh_county[pkg_household[k]]].append(gain_of[k, t] * var)
    poor = p.county_registered_poor.tolist()
    base_exits = p.county_baseline_exits.tolist()
    for c in range(C):
        need = poor[c] - base_exits[c] - p.county_threshold[c] * p.county_rural_population[c]
        prob += pulp.lpSum(exits_in[c]) + s[c] >= need

    return NaiveModel(prob, x, y, f, s)


def timed_build(p: Problem) -> tuple[NaiveModel, float]:
    started = time.perf_counter()
    model = build_naive(p)
    return model, time.perf_counter() - started


def _solve_naive(model: NaiveModel, mip: bool, time_limit: float | None = None) -> tuple[str, float | None]:
    options = {"timeLimit": time_limit} if time_limit else {}
    model.prob.solve(pulp.HiGHS(mip=mip, msg=False, **options))
    return pulp.LpStatus[model.prob.status], pulp.value(model.prob.objective)


def cross_check(names=("h1k-1y", "h1k-5y"), tol: float = 1e-6) -> bool:
    """Solve the naive and allocator LP relaxations with HiGHS and compare objectives
    (and, on one-year instances, the MIP optima)."""
    from instances import load_problem

    from allocator.inputs.scenario import Policy
    from allocator.model.formulation import formulate
    from allocator.solvers.base import SolveOptions
    from allocator.solvers.highs import HighsBackend

    policies = {
        "default": Policy(),
        "shares": Policy(min_category_share={"infrastructure": 0.15, "industry": 0.10},
                         max_category_share={"housing": 0.35}),
        "hard": Policy(deadline="hard"),
    }
    ok = True
    print("| instance | policy | allocator cols/rows/nnz | naive cols/rows/nnz | allocator LP | naive LP "
          "| rel diff |")
    print("|---|---|---|---|---:|---:|---:|")
    for name in names:
        for label, policy in policies.items():
            problem, _, _ = load_problem(name, policy=policy)
            fm = formulate(problem)
            lp = HighsBackend().solve(fm.model.relaxed(), SolveOptions())
            naive, _ = timed_build(problem)
            status, naive_obj = _solve_naive(naive, mip=False)
            diff = abs(lp.objective - naive_obj) / max(1.0, abs(lp.objective))
            ok &= diff <= tol and status == "Optimal" and lp.status.value == "optimal"
            m = fm.model
            ns = naive.sizes()
            print(f"| {name} | {label} | {m.num_cols}/{m.num_rows}/{m.A.nnz} | "
                  f"{ns['columns']}/{ns['rows']}/{ns['nonzeros']} | {lp.objective:.6f} | {naive_obj:.6f} | "
                  f"{diff:.1e} |", flush=True)
            if problem.start_year == problem.deadline_year and label == "default":
                mip = HighsBackend().solve(fm.model, SolveOptions(mip_gap=0.0, time_limit=120))
                status, naive_mip = _solve_naive(naive, mip=True, time_limit=120)
                mdiff = abs(mip.objective - naive_mip) / max(1.0, abs(mip.objective))
                ok &= mdiff <= 1e-6
                print(f"| {name} | {label}, MIP optimum | | | {mip.objective:.6f} | {naive_mip:.6f} | "
                      f"{mdiff:.1e} |", flush=True)
    print("cross-check", "PASSED" if ok else "FAILED")
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="instances whose naive build to time")
    parser.add_argument("--check", action="store_true", help="compare LP objectives with allocator on h1k")
    args = parser.parse_args()
    if args.check:
        sys.exit(0 if cross_check() else 1)
    from instances import load_problem

    for name in args.names:
        problem, _, _ = load_problem(name)
        model, seconds = timed_build(problem)
        print(f"{name}: naive PuLP build {seconds:.2f} s, {model.sizes()}", flush=True)


if __name__ == "__main__":
    main()
