"""Benchmark dagexec against a plain loop, dask.delayed, Hamilton and a bare
ThreadPoolExecutor (DESIGN §9 and §9b).

Usage (from the repository root)::

    python bench/run.py                    # every default workload: over 10 minutes on 2 cores
    python bench/run.py --quick            # smaller graphs, fewer repetitions: a smoke run
    python bench/run.py --workloads build-1m   # on request only: a million nodes
    python bench/run.py --workloads chain,fan --runners plain,dagexec-serial
    python bench/run.py --workloads chain,fan,layered --rounds 3   # every pair 3 times, pooled
    python bench/run.py --one chain dagexec-serial            # one measurement, JSON on stdout
    python bench/run.py --one chain dagexec-serial --profile  # cProfile of one timed run

Each (workload, runner) pair is measured in a fresh subprocess; a runner whose
library is not installed is reported as not measured.  With ``--rounds N`` every pair
is measured N times, all pairs once per round, and each pair's times are pooled: on a
machine whose speed moves over tens of seconds, each runner then meets the slow
stretches about as often as the others, and the ratios between them hold.  The table and the DESIGN
§9 and §9b targets (``targets.py``) go to stdout, the results to
``bench/results/latest.json``; see bench/README.md.  The dagexec measured is the one of this checkout.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
# this checkout's dagexec, whatever is installed; worker processes inherit sys.path
sys.path[:0] = [str(HERE), str(HERE.parent)]

from runners import RUNNERS  # noqa: E402
from targets import check_targets, check_targets_9b, format_targets, format_targets_9b  # noqa: E402
from workloads import WORKLOADS  # noqa: E402

FULL_REPS = 5
QUICK_REPS = 2
MARK = "@@bench-result "


# -- the child: one (workload, runner) pair ------------------------------------------


def measure_one(workload: str, runner: str, quick: bool, reps: int) -> dict[str, Any]:
    wl = WORKLOADS[workload]
    rn = RUNNERS[runner]
    dag = wl.make(rn, quick)
    phases, checksum = wl.measure(rn, dag, reps)
    res = {
        "workload": workload,
        "runner": runner,
        "nodes": len(dag),
        "phases": phases,
        "checksum": checksum,
        "versions": rn.versions(),
    }
    info = {**wl.info(), **rn.info()}
    if info:
        res["info"] = info
    return res


def profile_one(workload: str, runner: str, quick: bool, top: int) -> None:
    """cProfile one run of the main phase (after a warm-up), sorted by tottime."""
    import cProfile
    import gc
    import pstats

    wl = WORKLOADS[workload]
    rn = RUNNERS[runner]
    if wl.kind != "run":
        raise SystemExit(f"--profile works on run workloads, not {workload!r}")
    dag = wl.make(rn, quick)
    fn = rn.phases(rn.prepare(dag))["run"]
    fn()
    gc.collect()
    prof = cProfile.Profile()
    prof.runcall(fn)
    print(f"cProfile of one run: workload {workload} ({len(dag)} nodes), runner {runner}")
    pstats.Stats(prof, stream=sys.stdout).sort_stats("tottime").print_stats(top)


# -- the parent: every pair, then the table ------------------------------------------


def run_child(workload: str, runner: str, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--one", workload, runner, "--reps", str(args.reps)]
    if args.quick:
        cmd.append("--quick")
    timeout = max(args.timeout, WORKLOADS[workload].min_timeout_s)
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"workload": workload, "runner": runner, "error": f"timeout after {timeout:g} s"}
    wall = time.perf_counter() - t0
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(MARK):
            res: dict[str, Any] = json.loads(line[len(MARK) :])
            res["wall_s"] = wall
            return res
    tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    return {"workload": workload, "runner": runner, "error": f"exit {proc.returncode}: {tail}"}


def merge_rounds(before: dict[str, Any] | None, res: dict[str, Any]) -> dict[str, Any]:
    """One pair's result over the rounds so far: each phase's times of every round, in
    one list (an error in any round is the pair's result)."""
    if before is None or "phases" not in before or "phases" not in res:
        return res if before is None or "error" in res else before
    phases = {ph: [*ts, *res["phases"].get(ph, [])] for ph, ts in before["phases"].items()}
    return {**before, "phases": phases, "wall_s": before.get("wall_s", 0.0) + res.get("wall_s", 0.0)}


def median(times: list[float]) -> float:
    return statistics.median(times)


def make_rows(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (workload, runner, phase), with overheads and ratios to dask."""
    by_pair = {(r["workload"], r["runner"]): r for r in results}
    rows: list[dict[str, Any]] = []
    for res in results:
        wl = WORKLOADS[res["workload"]]
        rn = RUNNERS[res["runner"]]
        base = {
            "workload": wl.name,
            "runner": rn.name if wl.kind in ("run", "memory") else rn.family,
            "family": rn.family,
            "mode": rn.mode,
        }
        if "error" in res:
            rows.append({**base, "phase": "", "error": res["error"]})
            continue
        if "not_measured" in res:
            rows.append({**base, "phase": "", "not_measured": res["not_measured"]})
            continue
        nodes = res["nodes"]
        plain = by_pair.get((wl.name, "plain"))
        if plain is not None and "error" in plain:
            plain = None
        ideal = wl.ideal_s(nodes)
        for phase, figures in res["phases"].items():
            unit = wl.unit_of(phase)
            med = median(figures)
            row: dict[str, Any] = {
                **base,
                "phase": phase,
                "nodes": nodes,
                "unit": unit,
                f"median_{unit}": med,
                f"min_{unit}": min(figures),
                f"max_{unit}": max(figures),
                "times_s" if unit == "s" else f"figures_{unit}": figures,
            }
            if "info" in res:
                row["info"] = res["info"]
            if ideal is not None and unit == "s":
                row["ideal_s"] = ideal
                row["ratio_ideal"] = med / ideal
            if wl.kind in ("run", "memory"):
                if plain is not None:
                    if wl.kind == "run" and wl.overhead:
                        row["overhead_us"] = (med - median(plain["phases"]["run"])) / nodes * 1e6
                    if plain["checksum"] != res["checksum"]:
                        row["error"] = f"checksum {res['checksum']} != plain loop's {plain['checksum']}"
            elif unit == "s":
                row["per_node_us"] = med / nodes * 1e6
            rows.append(row)

    # a dagexec row against the dask rows of the same workload and mode
    measured = [r for r in rows if "median_s" in r]
    for row in measured:
        wl = WORKLOADS[row["workload"]]
        key = "overhead_us" if wl.kind == "run" else "per_node_us"
        target = wl.ratio_phases.get(row["phase"])
        if row["family"] != "dagexec" or target is None or key not in row:
            continue
        for other in measured:
            if (
                other["workload"] != row["workload"]
                or other["family"] != "dask"
                or other["mode"] != row["mode"]
                or other.get(key, 0) <= 0
            ):
                continue
            if other["phase"] == target:
                row["ratio_dask"] = row[key] / other[key]
            elif other["phase"] == f"{target}, optimize_graph=False":
                row["ratio_dask_noopt"] = row[key] / other[key]
    return rows


def show(figure: float, unit: str) -> tuple[str, str]:
    """A figure as the table writes it: (number, unit)."""
    if unit == "bytes":
        return f"{figure / 1e6:.1f}", "MB"
    return f"{figure:.4f}", unit


def format_table(rows: list[dict[str, Any]]) -> str:
    head = ["workload", "runner", "nodes", "median", "unit", "µs/task", "÷dask", "÷dask noopt", "÷ideal"]
    lines = []
    for row in rows:
        main = WORKLOADS[row["workload"]].main_phase
        label = row["runner"] if row["phase"] in (main, "") else f"{row['runner']} [{row['phase']}]"
        if "unit" not in row:
            why = f"not measured: {row['not_measured']}" if "not_measured" in row else f"ERROR {row['error']}"
            lines.append([row["workload"], label, "", "", "", "", "", "", "", why])
            continue
        per = row.get("overhead_us", row.get("per_node_us"))
        unit = row["unit"]
        cells = [
            row["workload"],
            label,
            f"{row['nodes']:,}",
            *show(row[f"median_{unit}"], unit),
            "" if unit != "s" else "-" if per is None else f"{per:.2f}",
            f"{row['ratio_dask']:.3f}" if "ratio_dask" in row else "",
            f"{row['ratio_dask_noopt']:.3f}" if "ratio_dask_noopt" in row else "",
            f"{row['ratio_ideal']:.3f}" if "ratio_ideal" in row else "",
        ]
        if "error" in row:
            cells.append(f"ERROR {row['error']}")
        lines.append(cells)
    widths = [max(len(h), *(len(c[i]) for c in lines if i < len(c))) for i, h in enumerate(head)]
    right = {2, 3, 5, 6, 7, 8}

    def fmt(cells: list[str]) -> str:
        out = []
        for i, c in enumerate(cells):
            if i >= len(widths):
                out.append(c)
            else:
                out.append(c.rjust(widths[i]) if i in right else c.ljust(widths[i]))
        return "  ".join(out).rstrip()

    sep = "  ".join("-" * w for w in widths)
    return "\n".join([fmt(head), sep, *(fmt(c) for c in lines)])


NOTES = """\
median:  of the repetitions: seconds, or for memory MB (10^6 bytes) above the baseline taken right before.
µs/task: run workloads: (median - plain loop's median) / nodes, the per-task overhead;
         build, save: median / nodes (dask is measured on fewer nodes: its build is quadratic).
         cpu200, sleep100: '-', a parallel run has no per-task overhead over a loop; read ÷ideal.
÷dask:   the dagexec figure divided by dask's in the same mode (serial ~ dask sync); below 1 is better.
         'noopt': against dask.compute(..., optimize_graph=False), dask without its graph optimisation.
÷ideal:  cpu200: median / (tasks x 20 ms / 2 cores); 1.15 is DESIGN §9's limit, the plain loop sits near 2.
         sleep100: median / (tasks x 10 ms / 4 threads); 1.05 is DESIGN §9b's limit, the plain loop sits near 4.
memory:  peak resident memory, each process's own peak above its baseline, summed over the main process
         and its worker processes; [peak, main process]: the main process alone; [tracemalloc]: the
         peak traced by tracemalloc in the main process (Python allocations, every thread).
         build-1m [peak]: the measuring process's peak resident memory while building and compiling,
         above its size right before (the graph's description, made before, is not counted)."""


def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(HERE), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--one", nargs=2, metavar=("WORKLOAD", "RUNNER"), help="measure one pair in this process")
    p.add_argument("--profile", action="store_true", help="with --one: cProfile one run instead")
    p.add_argument("--top", type=int, default=25, help="with --profile: entries to print")
    p.add_argument("--quick", action="store_true", help="smaller graphs, fewer repetitions")
    p.add_argument("--reps", type=int, help=f"timed repetitions (default {FULL_REPS}, --quick {QUICK_REPS})")
    p.add_argument("--workloads", help=f"comma-separated, from: {','.join(WORKLOADS)}")
    p.add_argument("--runners", help=f"comma-separated, from: {','.join(RUNNERS)}")
    p.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="measure every pair this many times, round after round, each pair's times pooled (default 1)",
    )
    p.add_argument("--timeout", type=float, default=240.0, help="seconds per pair (default 240)")
    p.add_argument("--out", default=str(HERE / "results" / "latest.json"), help="JSON results file")
    args = p.parse_args(argv)
    if args.reps is None:
        args.reps = QUICK_REPS if args.quick else FULL_REPS

    if args.one:
        workload, runner = args.one
        if workload not in WORKLOADS or runner not in RUNNERS:
            p.error(f"unknown workload or runner; workloads: {list(WORKLOADS)}, runners: {list(RUNNERS)}")
        env = WORKLOADS[workload].env
        if any(os.environ.get(k) != v for k, v in env.items()):
            # read at interpreter start-up (the allocator's settings): start again with them
            os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **env})
        if args.profile:
            profile_one(workload, runner, args.quick, args.top)
        else:
            print(MARK + json.dumps(measure_one(workload, runner, args.quick, args.reps)), flush=True)
        return 0

    workloads = (
        args.workloads.split(",") if args.workloads else [w for w in WORKLOADS if WORKLOADS[w].default]
    )
    runners = args.runners.split(",") if args.runners else list(RUNNERS)
    for name in workloads:
        if name not in WORKLOADS:
            p.error(f"unknown workload {name!r}; choose from {list(WORKLOADS)}")
    for name in runners:
        if name not in RUNNERS:
            p.error(f"unknown runner {name!r}; choose from {list(RUNNERS)}")

    load_before = os.getloadavg()
    commit_before = git_commit()
    t0 = time.perf_counter()
    pairs = [(w, r) for w in workloads for r in runners if WORKLOADS[w].applies_to(RUNNERS[r])]
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    for round_ in range(args.rounds):
        for w, r in pairs:
            absent = RUNNERS[r].missing()
            res = {"workload": w, "runner": r, "not_measured": absent} if absent else run_child(w, r, args)
            merged[w, r] = merge_rounds(merged.get((w, r)), res)
            status = (
                res.get("error")
                or res.get("not_measured")
                or ", ".join(
                    f"{ph} {' '.join(show(median(ts), WORKLOADS[w].unit_of(ph)))}"
                    for ph, ts in res["phases"].items()
                )
            )
            where = f" (round {round_ + 1})" if args.rounds > 1 else ""
            print(f"  {w:<11} {r:<17} {status}{where}", file=sys.stderr, flush=True)
    results = [merged[pair] for pair in pairs]
    total = time.perf_counter() - t0

    rows = make_rows(results)
    targets = check_targets(rows)
    targets_9b = check_targets_9b(rows, workloads)
    print(format_table(rows))
    print()
    print(NOTES)
    print()
    print(format_targets(targets, args.quick))
    print()
    print(format_targets_9b(targets_9b, args.quick))
    messages = [r for r in results if "graph_messages" in r.get("info", {})]
    if messages:
        print("\ngraph messages per run (update_graph messages the cluster's scheduler received):")
        for r in messages:
            print(f"  {r['workload']:<11} {r['runner']:<17} {r['info']['graph_messages']}")
    load_after = os.getloadavg()
    print(
        f"\n{len(results)} measurements in {total:.0f} s ({'quick' if args.quick else 'full'}, {args.reps} reps"
        f"{f' x {args.rounds} rounds' if args.rounds > 1 else ''});"
        f" load average {load_before[0]:.2f} before, {load_after[0]:.2f} after"
    )

    versions: dict[str, str] = {}
    for res in results:
        versions.update(res.get("versions", {}))
    doc = {
        "meta": {
            "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "quick": args.quick,
            "reps": args.reps,
            "rounds": args.rounds,
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "commit": commit_before,
            "commit_after": git_commit(),
            "versions": versions,
            "total_s": total,
            "loadavg_before": load_before,
            "loadavg_after": load_after,
        },
        "workloads": {w: WORKLOADS[w].description for w in workloads},
        "rows": rows,
        "targets": targets,
        "targets_9b": targets_9b,
        "raw": results,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"results written to {out}")
    return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
