"""Benchmark allocator end to end on the seeded instances of ``instances.py``.

For each instance (each in a fresh subprocess, so its peak RSS is its own): generate the
tables, code them (``build_problem``), then ``solve_problem`` with each chosen method,
recording the build, solve and phase seconds, objective, bound, gap, status, model size
and peak RSS. ``--naive`` also times, in another fresh subprocess, the object-by-object
PuLP build of the same model (``naive_pulp.py``) against allocator's ``formulate``.

    python benchmarks/run.py                                   # the default small set, method auto
    python benchmarks/run.py h100k-1y h100k-5y --methods lp-fix --time-limit 600
    python benchmarks/run.py h1k-1y h10k-1y h100k-1y --naive --no-solve
    python benchmarks/run.py --report                          # rebuild results/latest.md only

Every run appends its rows to ``results/results.csv`` and writes ``results/run-<id>.csv``;
``results/latest.md`` shows the newest row of each (instance, kind, method) with the
machine's facts.
"""

from __future__ import annotations

import argparse
import csv
import gc
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from instances import REGISTRY  # noqa: E402

DEFAULT_SET = ["h1k-1y", "h1k-5y", "h10k-1y", "h10k-5y", "h25k-5y", "tight-10k-5y"]

FIELDS = [
    "run_id", "date", "instance", "households", "years", "money_scale", "seed", "kind", "method_requested",
    "method", "time_limit", "threads", "status", "stopped_by", "expected_exits", "objective", "bound", "gap",
    "generate_s", "problem_s", "build_s", "solve_s", "phase_s", "plan_s", "total_s", "rows", "columns",
    "nonzeros", "integer_columns", "peak_rss_mb", "rss_before_mb", "naive_build_s", "formulate_s",
    "naive_ratio", "naive_rows", "naive_columns", "naive_nonzeros", "load_avg", "returncode", "message",
    "error", "lp_solver", "code",
]


# --- facts ------------------------------------------------------------------------------
def _status_kb(key: str) -> float:
    """A ``/proc/self/status`` field in kB (VmHWM = peak RSS, VmRSS = current)."""
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(key + ":"):
                return float(line.split()[1])
    return float("nan")


def peak_rss_mb() -> float:
    return _status_kb("VmHWM") / 1024


def machine_facts() -> dict[str, str]:
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = "unknown"
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemTotal:"):
                    mem = f"{int(line.split()[1]) / 1024 ** 2:.1f} GiB"
                    break
    except OSError:
        pass

    def version(pkg: str) -> str:
        try:
            return importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            return "-"

    return {
        "cpu": cpu, "cores": str(os.cpu_count()), "ram": mem, "os": platform.platform(),
        "python": platform.python_version(), "highspy": version("highspy"), "pulp": version("pulp"),
        "numpy": version("numpy"), "scipy": version("scipy"), "pandas": version("pandas"),
        "allocator": version("allocator"),
    }


def code_fingerprint() -> str:
    """Short SHA-256 of allocator's source files as imported (the code a row measured) and the
    time of the newest one: the source may change between runs."""
    import hashlib

    import allocator

    root = Path(allocator.__file__).resolve().parent
    digest = hashlib.sha256()
    newest = 0.0
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
        newest = max(newest, path.stat().st_mtime)
    return f"{digest.hexdigest()[:10]} ({time.strftime('%H:%M', time.localtime(newest))})"


def load_avg() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return ""


# --- the workers (run in a fresh subprocess) --------------------------------------------
def _say(tag: str, started: float, text: str) -> None:
    print(f"  [{tag} {time.perf_counter() - started:7.1f}s] {text}", flush=True)


def use_lp_solver(solver: str) -> None:
    """Experiment (not the product path): make the HiGHS backend solve every LP -- a model
    without integer columns, such as lp-fix's relaxation -- with HiGHS' ``solver`` option
    ``solver`` (``ipm`` runs crossover to a vertex). SolverSettings has no such knob, so
    this patches :class:`allocator.solvers.highs.HighsBackend` in this worker process only."""
    from dataclasses import replace

    from allocator.solvers.highs import HighsBackend

    original = HighsBackend.solve

    def solve(self, model, options):
        if not model.is_mip:
            crossover = {"run_crossover": "on"} if solver == "ipm" else {}
            extra = {"solver": solver, **crossover, **options.extra}
            options = replace(options, extra=extra)
        return original(self, model, options)

    HighsBackend.solve = solve


def worker_solve(job: dict) -> dict:
    """Generate, code and solve one instance with one method."""
    from instances import generate

    from allocator.inputs.scenario import SolverSettings
    from allocator.optimize.pipeline import solve_problem

    name, inst = job["instance"], REGISTRY[job["instance"]]
    tag = f"{name} {job['method']}"
    started = time.perf_counter()
    out: dict = {}
    _say(tag, started, f"generate {inst.households:,} households, {inst.start_year}-{inst.deadline_year}")
    t0 = time.perf_counter()
    tables = generate(name)
    out["generate_s"] = time.perf_counter() - t0
    _say(tag, started, f"generated in {out['generate_s']:.2f} s (peak RSS {peak_rss_mb():.0f} MB)")

    from allocator.model.problem import build_problem

    t0 = time.perf_counter()
    problem = build_problem(tables, name=name, start_year=inst.start_year, deadline_year=inst.deadline_year)
    out["problem_s"] = time.perf_counter() - t0
    out["rss_before_mb"] = peak_rss_mb()
    _say(tag, started, f"build_problem in {out['problem_s']:.2f} s: {problem.sizes()}")

    events = []

    def progress(phase: str, **info) -> None:
        events.append({"t": round(time.perf_counter() - started, 3), "phase": phase})
        shown = {k: (round(v, 6) if isinstance(v, float) else v) for k, v in info.items()
                 if k not in ("counties", "townships", "villages", "personnel_rows", "fund_rows")}
        _say(tag, started, f"{phase} {shown}")

    if job.get("lp_solver"):
        use_lp_solver(job["lp_solver"])
        _say(tag, started, f"experiment: LP relaxations solved with HiGHS solver={job['lp_solver']}")
    settings = SolverSettings(method=job["method"], time_limit=job["time_limit"], threads=job.get("threads"))
    t0 = time.perf_counter()
    plan = solve_problem(problem, settings, progress=progress)
    total = time.perf_counter() - t0
    s = plan.summary
    model = s.get("manifest", {}).get("model", {})
    out.update({
        "method": s.get("method"), "status": s.get("status"), "stopped_by": s.get("stopped_by"),
        "expected_exits": s.get("expected_exits"), "objective": s.get("objective"), "bound": s.get("bound"),
        "gap": s.get("gap"), "build_s": s.get("build_seconds"), "solve_s": s.get("solve_seconds"),
        "phase_s": json.dumps(s.get("phase_seconds", {})),
        "plan_s": total - (s.get("build_seconds") or 0) - (s.get("solve_seconds") or 0), "total_s": total,
        "rows": model.get("rows"), "columns": model.get("columns"), "nonzeros": model.get("nonzeros"),
        "integer_columns": model.get("integer_columns"), "message": s.get("message"),
        "peak_rss_mb": peak_rss_mb(), "events": events,
    })
    return out


def worker_naive(job: dict) -> dict:
    """Time the naive PuLP build of one instance, and allocator's formulate on the same problem."""
    from instances import load_problem
    from naive_pulp import timed_build

    from allocator.model.formulation import formulate

    name = job["instance"]
    tag = f"{name} naive"
    started = time.perf_counter()
    problem, gen_s, prob_s = load_problem(name)
    out: dict = {"generate_s": gen_s, "problem_s": prob_s, "rss_before_mb": peak_rss_mb()}
    _say(tag, started, f"problem ready ({gen_s:.1f} + {prob_s:.1f} s): {problem.sizes()}")
    model, seconds = timed_build(problem)
    out["naive_build_s"] = seconds
    out["peak_rss_mb"] = peak_rss_mb()
    sizes = model.sizes()
    out.update({"naive_rows": sizes["rows"], "naive_columns": sizes["columns"],
                "naive_nonzeros": sizes["nonzeros"]})
    _say(tag, started, f"naive PuLP build {seconds:.2f} s, {sizes}, peak RSS {out['peak_rss_mb']:.0f} MB")
    del model
    gc.collect()
    best = float("inf")
    reps = 3 if seconds < 60 else 1
    for _ in range(reps):
        t0 = time.perf_counter()
        fm = formulate(problem)
        best = min(best, time.perf_counter() - t0)
    out.update({"formulate_s": best, "naive_ratio": seconds / best, "rows": fm.model.num_rows,
                "columns": fm.model.num_cols, "nonzeros": int(fm.model.A.nnz),
                "build_s": best})
    _say(tag, started, f"allocator formulate {best:.3f} s (best of {reps}): naive / allocator = "
                       f"{seconds / best:.0f}x")
    return out


def worker_main(job_json: str) -> None:
    job = json.loads(job_json)
    try:
        code = code_fingerprint()
        out = (worker_naive if job["kind"] == "naive" else worker_solve)(job)
        out["code"] = code
    except BaseException as error:  # report every failure, with its traceback, to the parent
        out = {"status": "crashed", "error": "".join(traceback.format_exception(error)),
               "peak_rss_mb": peak_rss_mb()}
        print(out["error"], file=sys.stderr, flush=True)
    with open(job["result_path"], "w") as handle:
        json.dump(out, handle, default=str)


# --- the driver ---------------------------------------------------------------------------
def run_job(job: dict, timeout: float | None) -> dict:
    """Run one job in a fresh Python process and read back its result."""
    with tempfile.TemporaryDirectory(prefix="allocator-bench-") as tmp:
        job = {**job, "result_path": str(Path(tmp) / "result.json")}
        cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(job)]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        try:
            proc = subprocess.run(cmd, env=env, timeout=timeout)
            rc = proc.returncode
        except subprocess.TimeoutExpired:
            rc = "timeout"
        path = Path(job["result_path"])
        out = json.loads(path.read_text()) if path.exists() else {}
    out["returncode"] = rc
    if rc != 0 and "status" not in out:
        out["status"] = "killed" if rc in (-9, 137) else f"failed (rc {rc})"
    return out


def fmt(value, digits: int = 2) -> str:
    if value in (None, "", "None"):
        return "-"
    try:
        return f"{float(value):,.{digits}f}"
    except (TypeError, ValueError):
        return str(value)


def render(rows: list[dict], facts: dict, notes: str = "") -> str:
    """The markdown report: solve results, then naive-build results."""
    lines = [
        f"Machine: {facts['cpu']}, {facts['cores']} cores, {facts['ram']} RAM; {facts['os']}; Python "
        f"{facts['python']}, highspy {facts['highspy']}, PuLP {facts['pulp']}, numpy {facts['numpy']}, "
        f"scipy {facts['scipy']}, pandas {facts['pandas']}. Rows dated {min(r['date'] for r in rows)[:16]}"
        f" to {max(r['date'] for r in rows)[:16]}; allocator source "
        f"{', '.join(sorted({r.get('code') or '?' for r in rows}))} (sha256 prefix, newest file's time).",
        "",
    ]
    if notes:
        lines += [notes, ""]
    solves = [r for r in rows if r["kind"] == "solve"]
    if solves:
        lines += [
            "| instance | method | status (stopped by) | expected exits | LP/MIP bound | gap | generate s "
            "| build_problem s | build s | solve s | phases s | plan s | rows / cols / nnz | peak RSS MB "
            "| load avg |",
            "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---|---:|---|",
        ]
        for r in solves:
            phases = r.get("phase_s") or "{}"
            try:
                phases = ", ".join(f"{k} {v:.1f}" for k, v in json.loads(phases).items())
            except (TypeError, ValueError):
                pass
            status = r.get("status") or "-"
            if r.get("stopped_by") not in (None, "", "None"):
                status += f" ({r['stopped_by']})"
            method = r.get("method") or r.get("method_requested")
            if r.get("method_requested") not in (None, "", method):
                method = f"{r['method_requested']} → {method}"
            if r.get("lp_solver"):
                method += f" (LP by {r['lp_solver']}*)"
            gap = "-" if r.get("gap") in (None, "", "None") else f"{100 * float(r['gap']):.3f}%"
            size = (f"{int(float(r['rows'])):,} / {int(float(r['columns'])):,} / "
                    f"{int(float(r['nonzeros'])):,}"
                    if r.get("rows") not in (None, "", "None") else "-")
            lines.append(
                f"| {r['instance']} | {method} | {status} | {fmt(r.get('expected_exits'), 1)} "
                f"| {fmt(r.get('bound'), 1)} | {gap} | {fmt(r.get('generate_s'))} "
                f"| {fmt(r.get('problem_s'))} "
                f"| {fmt(r.get('build_s'), 3)} | {fmt(r.get('solve_s'), 1)} | {phases} "
                f"| {fmt(r.get('plan_s'))} "
                f"| {size} | {fmt(r.get('peak_rss_mb'), 0)} | {r.get('load_avg', '')} |")
        lines.append("")
    naive = [r for r in rows if r["kind"] == "naive"]
    if naive:
        lines += [
            "Model build only, same process, same Problem: allocator's vectorised `formulate` (best of 3 "
            "below 60 s) against the object-by-object PuLP model of `naive_pulp.py` (same columns and rows).",
            "",
            "| instance | rows / cols / nnz | allocator build s | naive PuLP build s | naive / allocator "
            "| RSS before build MB | peak RSS after naive build MB | load avg |",
            "|---|---|---:|---:|---:|---:|---:|---|",
        ]
        for r in naive:
            if r.get("naive_build_s") in (None, "", "None"):
                lines.append(f"| {r['instance']} | {r.get('status')} | - | - | - | - | "
                             f"{fmt(r.get('peak_rss_mb'), 0)} | {r.get('load_avg', '')} |")
                continue
            size = (f"{int(float(r['naive_rows'])):,} / {int(float(r['naive_columns'])):,} / "
                    f"{int(float(r['naive_nonzeros'])):,}")
            lines.append(
                f"| {r['instance']} | {size} | {fmt(r.get('formulate_s'), 3)} "
                f"| {fmt(r.get('naive_build_s'))} "
                f"| {fmt(r.get('naive_ratio'), 0)}x | {fmt(r.get('rss_before_mb'), 0)} "
                f"| {fmt(r.get('peak_rss_mb'), 0)} | {r.get('load_avg', '')} |")
        lines.append("")
    return "\n".join(lines)


def append_row(path: Path, row: dict) -> None:
    """Append ``row`` to the cumulative CSV (rewritten first if its header is an older one)."""
    if path.exists():
        with open(path, newline="") as handle:
            header = next(csv.reader(handle), [])
        if header != FIELDS:
            old = read_rows(path)
            with open(path, "w", newline="") as handle:
                writer = csv.DictWriter(handle, fieldnames=FIELDS, extrasaction="ignore")
                writer.writeheader()
                writer.writerows({k: (r.get(k) or "") for k in FIELDS} for r in old)
    new = not path.exists()
    with open(path, "a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDS)
        if new:
            writer.writeheader()
        writer.writerow(row)


def read_rows(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def latest_rows(rows: list[dict], keep_all: bool = False) -> list[dict]:
    """The newest row of each (instance, kind, method requested) -- or every row -- in registry order."""
    newest: dict[tuple, dict] = {}
    for i, r in enumerate(rows):
        newest[(r["instance"], r["kind"], r["method_requested"], r.get("lp_solver") or "", i if keep_all else 0)] = r
    order = {name: i for i, name in enumerate(REGISTRY)}
    return sorted(newest.values(), key=lambda r: (r["kind"] != "solve", order.get(r["instance"], 99),
                                                  r["method_requested"], r.get("lp_solver") or ""))


def write_report(out_dir: Path, facts: dict, since: str = "", keep_all: bool = False) -> Path:
    rows = latest_rows([r for r in read_rows(out_dir / "results.csv") if r["run_id"] >= since], keep_all)
    path = out_dir / "latest.md"
    if rows:
        which = "every row" if keep_all else "newest row per instance and method"
        path.write_text(f"# allocator benchmarks ({which}{', runs ' + since + ' on' if since else ''})\n\n"
                        + render(rows, facts) + "\n")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("names", nargs="*", help=f"instances (default: {' '.join(DEFAULT_SET)}); "
                                                  f"known: {' '.join(REGISTRY)}")
    parser.add_argument("--time-limit", type=float, default=300.0, help="solver time limit per solve, s")
    parser.add_argument("--methods", default="auto", help="comma-separated: auto, exact, lp-fix, decompose")
    parser.add_argument("--threads", type=int, default=None, help="HiGHS threads (default: HiGHS' own)")
    parser.add_argument("--lp-solver", choices=("simplex", "ipm", "pdlp"), default=None,
                        help="experiment: HiGHS algorithm for LP relaxations (default: allocator's own)")
    parser.add_argument("--naive", action="store_true", help="also time the naive PuLP build")
    parser.add_argument("--no-solve", action="store_true", help="skip the solves (with --naive: build only)")
    parser.add_argument("--out", type=Path, default=HERE / "results", help="results folder")
    parser.add_argument("--report", action="store_true",
                        help="only rebuild OUT/latest.md from OUT/results.csv")
    parser.add_argument("--since", default="", metavar="RUN_ID",
                        help="with --report: only rows of runs RUN_ID (e.g. 20261128-1600) and later")
    parser.add_argument("--all", action="store_true", help="with --report: every row, not the newest per key")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker_main(args.worker)
        return

    facts = machine_facts()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.report:
        print(write_report(args.out, facts, args.since, args.all).read_text())
        return
    names = args.names or DEFAULT_SET
    unknown = [n for n in names if n not in REGISTRY]
    if unknown:
        parser.error(f"unknown instance(s) {', '.join(unknown)}; known: {', '.join(REGISTRY)}")
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    bad = [m for m in methods if m not in ("auto", "exact", "lp-fix", "decompose")]
    if bad:
        parser.error(f"unknown method(s) {', '.join(bad)}")

    run_id = time.strftime("%Y%m%d-%H%M%S")
    print(f"run {run_id}: {facts['cpu']}, {facts['cores']} cores, {facts['ram']}, Python {facts['python']}, "
          f"highspy {facts['highspy']}; load average {load_avg()}", flush=True)
    jobs = []
    for name in names:
        if not args.no_solve:
            jobs += [{"kind": "solve", "instance": name, "method": m} for m in methods]
        if args.naive:
            jobs.append({"kind": "naive", "instance": name, "method": "-"})

    rows = []
    all_csv = args.out / "results.csv"
    for job in jobs:
        job.update(time_limit=args.time_limit, threads=args.threads,
                   lp_solver=args.lp_solver if job["kind"] == "solve" else None)
        inst = REGISTRY[job["instance"]]
        row = {k: "" for k in FIELDS}
        row.update({
            "run_id": run_id, "date": time.strftime("%Y-%m-%d %H:%M:%S"), "instance": job["instance"],
            "households": inst.households, "years": inst.years, "money_scale": inst.money_scale,
            "seed": inst.seed, "kind": job["kind"], "method_requested": job["method"],
            "time_limit": args.time_limit, "threads": args.threads or "", "load_avg": load_avg(),
            "lp_solver": job["lp_solver"] or "",
        })
        print(f"== {job['instance']} {job['kind']} {job['method']} (load average {row['load_avg']})",
              flush=True)
        timeout = None if job["kind"] == "naive" else 3 * args.time_limit + 1800
        started = time.perf_counter()
        out = run_job(job, timeout)
        out.pop("events", None)
        row.update({k: out[k] for k in FIELDS if k in out})
        for key in ("error", "message"):
            row[key] = (row[key] or "").replace("\n", " | ")[:2000]
        print(f"== {job['instance']} {job['kind']} {job['method']}: {row.get('status') or 'done'} in "
              f"{time.perf_counter() - started:.1f} s wall, peak RSS {fmt(row.get('peak_rss_mb'), 0)} MB"
              + (f", objective {fmt(row.get('objective'), 3)}, gap {fmt(row.get('gap'), 6)}"
                 if job["kind"] == "solve" else f", naive/allocator {fmt(row.get('naive_ratio'), 0)}x"),
              flush=True)
        rows.append(row)
        append_row(all_csv, row)
        write_report(args.out, facts)

    with open(args.out / f"run-{run_id}.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    md = render(rows, facts)
    (args.out / f"run-{run_id}.md").write_text(f"# allocator benchmarks, run {run_id}\n\n{md}\n")
    print()
    print(md)
    print(f"wrote {args.out / f'run-{run_id}.csv'}, {all_csv} and {args.out / 'latest.md'}")


if __name__ == "__main__":
    main()
