"""The DESIGN §9 and §9b targets: which rows of a run they read, and whether they are met.

§9 sets absolute figures: a target whose row the run lacks is left out.  §9b
sets mostly ratios to what runs beside dagexec in the same run (Hamilton's
driver, a bare ``ThreadPoolExecutor``, dagexec's own serial executor), because
machines of this kind differ by up to a factor of 2 in single-thread speed; every §9b target
is listed, those whose rows the run lacks (a runner not installed, a workload
not asked for, an error) as not measured, with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "TARGETS",
    "TARGETS_9B",
    "Target9b",
    "check_targets",
    "check_targets_9b",
    "format_targets",
    "format_targets_9b",
]

QUICK_NOTE = " (--quick: smaller graphs than the targets are set for)"


#: figure -> (format of the number, unit) as the blocks write it
_SHOWN = {
    "overhead_us": ("{:.2f}", "µs/task"),
    "per_node_us": ("{:.2f}", "µs/node"),
    "median_bytes": ("{:.1f}", "MB"),
    "median_s": ("{:.3f}", "s"),
}


def shown(figure: str, value: float, unit: bool = True) -> str:
    """A target's figure as the blocks write it (with its unit, unless ``unit`` is False)."""
    fmt, name = _SHOWN.get(figure, ("{:.3f}", ""))
    number = fmt.format(value / 1e6 if figure == "median_bytes" else value)
    return f"{number} {name}" if unit and name else number


def layout(title: str, lines: list[list[str]]) -> str:
    """``title``, then ``lines`` in aligned columns (nodes and figure to the right; the
    last cell, the verdict, as it is)."""
    widths = [max(len(c[i]) for c in lines) for i in range(6)]
    right = {3, 4}
    out = [title]
    for cells in lines:
        parts = [c.rjust(widths[i]) if i in right else c.ljust(widths[i]) for i, c in enumerate(cells[:6])]
        out.append("  " + "  ".join([*parts, cells[6]]))
    return "\n".join(out)


# -- DESIGN §9 ----------------------------------------------------------------------

#: (what, workload, runner as in the rows, phase, row key, limit, how the limit reads)
TARGETS: list[tuple[str, str, str, str, str, float, str]] = [
    *(
        ("serial overhead", w, "dagexec-serial", "run", "overhead_us", 3.0, "≤ 3 µs/task")
        for w in ("chain", "fan", "layered")
    ),
    *(
        ("threads ÷ dask-threads", w, "dagexec-threads", "run", "ratio_dask", 1 / 3, "≤ 0.333")
        for w in ("chain", "fan", "layered")
    ),
    ("loky ÷ ideal", "cpu200", "dagexec-loky", "run", "ratio_ideal", 1.15, "≤ 1.15"),
    *(
        ("loky ÷ dask-processes", w, "dagexec-loky", "run", "ratio_dask", 1 / 3, "≤ 0.333")
        for w in ("fan-1k", "chain-1k", "layered-1k")
    ),
    ("build+compile", "build", "dagexec", "build+compile", "median_s", 1.0, "≤ 1 s"),
    ("build+compile", "build-chain", "dagexec", "build+compile", "median_s", 1.0, "≤ 1 s"),
    ("save+load", "save", "dagexec", "save+load", "median_s", 0.2, "≤ 0.2 s"),
    *(
        ("memory peak", "memory", r, "peak", "median_bytes", 60e6, "≤ 60 MB")
        for r in ("dagexec-serial", "dagexec-threads", "dagexec-loky")
    ),
]


def check_targets(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per DESIGN §9 target whose row this run has (the others are left out)."""
    found = {(r["workload"], r["runner"], r["phase"]): r for r in rows if "unit" in r}
    out = []
    for what, workload, runner, phase, key, limit, reads in TARGETS:
        row = found.get((workload, runner, phase))
        if row is None or key not in row:
            continue
        entry = {
            "target": what,
            "workload": workload,
            "runner": runner,
            "phase": phase,
            "nodes": row["nodes"],
            "figure": key,
            "value": row[key],
            "limit": limit,
            "limit_reads": reads,
            "met": row[key] <= limit,
        }
        if "error" in row:
            entry["error"] = row["error"]
        out.append(entry)
    return out


def format_targets(targets: list[dict[str, Any]], quick: bool) -> str:
    """The §9 block: one line per target, with this run's figure and its verdict."""
    lines = []
    for t in targets:
        verdict = "ERROR " + t["error"] if "error" in t else "met" if t["met"] else "NOT met"
        lines.append(
            [
                t["target"],
                t["workload"],
                t["runner"],
                f"{t['nodes']:,}",
                shown(t["figure"], t["value"]),
                t["limit_reads"],
                verdict,
            ]
        )
    if not lines:
        return "DESIGN §9 targets: none of their rows in this run"
    return layout("DESIGN §9 targets" + (QUICK_NOTE if quick else ""), lines)


# -- DESIGN §9b ---------------------------------------------------------------------


@dataclass(frozen=True)
class Target9b:
    """One §9b target: the figure ``key`` of the row (``workload``, ``runner``,
    ``phase``), divided, when ``over`` is set, by the figure of the row (``workload``,
    ``over[0]``, ``over[1]``) with the same key; met when at most ``limit``."""

    what: str
    workload: str
    runner: str
    phase: str
    key: str
    limit: float
    reads: str
    over: tuple[str, str] | None = None


_RUN = ("chain", "fan", "layered")
_PARALLEL = ("fan", "layered")
_THREADS = "dagexec-threads-2"

TARGETS_9B: list[Target9b] = [
    *(Target9b("threads overhead", w, _THREADS, "run", "overhead_us", 3.0, "≤ 3 µs/task") for w in _RUN),
    *(
        Target9b(
            "serial ÷ hamilton", w, "dagexec-serial", "run", "overhead_us", 0.2, "≤ 0.2", ("hamilton", "run")
        )
        for w in _RUN
    ),
    *(
        Target9b("threads ÷ serial", w, _THREADS, "run", "overhead_us", 2.0, "≤ 2", ("dagexec-serial", "run"))
        for w in _PARALLEL
    ),
    *(
        Target9b(
            "threads ÷ threadpool", w, _THREADS, "run", "overhead_us", 0.5, "≤ 0.5", ("threadpool", "run")
        )
        for w in _PARALLEL
    ),
    Target9b("build+compile", "build", "dagexec", "build+compile", "median_s", 0.5, "≤ 0.5 s"),
    Target9b("build+compile", "build-chain", "dagexec", "build+compile", "median_s", 0.5, "≤ 0.5 s"),
    Target9b(
        "build+compile ÷ hamilton build",
        "build",
        "dagexec",
        "build+compile",
        "per_node_us",
        1 / 15,
        "≤ 1/15 (0.067)",
        ("hamilton", "build"),
    ),
    Target9b("sleep ÷ ideal", "sleep100", "dagexec-threads", "run", "ratio_ideal", 1.05, "≤ 1.05"),
    *(
        Target9b("dask cluster ÷ dask.delayed", w, "dagexec-dask", "run", "ratio_dask", limit, reads)
        for w, limit, reads in (("chain-1k", 0.2, "≤ 0.2"), ("fan-1k", 1.0, "≤ 1"), ("layered-1k", 1.0, "≤ 1"))
    ),
    Target9b("build+compile", "build-1m", "dagexec", "build+compile", "median_s", 8.0, "≤ 8 s"),
    Target9b("peak memory", "build-1m", "dagexec", "peak", "median_bytes", 2e9, "≤ 2 GB"),
]


def _why_missing(rows: list[dict[str, Any]], workloads: list[str], workload: str, runner: str) -> str:
    """Why the run has no figure for (``workload``, ``runner``)."""
    if workload not in workloads:
        return f"not measured (run with --workloads {workload})"
    for r in rows:
        if r["workload"] == workload and r["runner"] == runner:
            if "not_measured" in r:
                return f"not measured: {runner}: {r['not_measured']}"
            if "error" in r and "unit" not in r:
                return f"ERROR {runner}: {r['error']}"
    return f"not measured: no {runner} row in this run"


def _figure(
    rows: list[dict[str, Any]], workloads: list[str], workload: str, runner: str, phase: str, key: str
) -> tuple[dict[str, Any] | None, str]:
    """``(row, "")`` when the run has (``workload``, ``runner``, ``phase``) with ``key``,
    else ``(None, why not)``."""
    for r in rows:
        if (r["workload"], r["runner"], r["phase"]) == (workload, runner, phase) and "unit" in r:
            if key in r:
                return r, ""
            return None, f"not measured: {runner} has no {key} (no plain-loop row?)"
    return None, _why_missing(rows, workloads, workload, runner)


def check_targets_9b(rows: list[dict[str, Any]], workloads: list[str]) -> list[dict[str, Any]]:
    """One entry per DESIGN §9b target: its figure and verdict, or why it has none.

    ``workloads`` are the workloads this run was asked for.
    """
    out = []
    for t in TARGETS_9B:
        entry: dict[str, Any] = {
            "target": t.what,
            "workload": t.workload,
            "runner": t.runner if t.over is None else f"{t.runner} ÷ {t.over[0]}",
            "phase": t.phase,
            "figure": t.key,
            "limit": t.limit,
            "limit_reads": t.reads,
        }
        row, why = _figure(rows, workloads, t.workload, t.runner, t.phase, t.key)
        other = None
        if row is not None and t.over is not None:
            other, why = _figure(rows, workloads, t.workload, *t.over, t.key)
        if row is None or (t.over is not None and other is None):
            out.append({**entry, "not_measured": why})
            continue
        assert row is not None
        entry["nodes"] = row["nodes"]
        value = row[t.key]
        if other is not None:
            entry.update(numerator=value, denominator=other[t.key], denominator_nodes=other["nodes"])
            if other[t.key] <= 0:
                out.append({**entry, "not_measured": f"{t.over[0]}'s {t.key} is not above 0"})
                continue
            value = value / other[t.key]
        entry.update(value=value, met=value <= t.limit)
        errors = [r["error"] for r in (row, other) if r is not None and "error" in r]
        if errors:
            entry["error"] = "; ".join(errors)
        out.append(entry)
    return out


def format_targets_9b(targets: list[dict[str, Any]], quick: bool) -> str:
    """The §9b block: every target, with this run's figure and verdict, or why it has none."""
    lines = []
    for t in targets:
        if "not_measured" in t:
            lines.append(
                [t["target"], t["workload"], t["runner"], "", "", t["limit_reads"], t["not_measured"]]
            )
            continue
        figure = shown("ratio" if "denominator" in t else t["figure"], t["value"])
        if "denominator" in t:  # "0.244 (7.77 / 31.90 µs/task)": what the ratio is of
            num, den = shown(t["figure"], t["numerator"], unit=False), shown(t["figure"], t["denominator"])
            on = f", on {t['denominator_nodes']:,} nodes" if t["denominator_nodes"] != t["nodes"] else ""
            figure += f" ({num} / {den}{on})"
        verdict = "ERROR " + t["error"] if "error" in t else "met" if t["met"] else "NOT met"
        lines.append(
            [t["target"], t["workload"], t["runner"], f"{t['nodes']:,}", figure, t["limit_reads"], verdict]
        )
    return layout("DESIGN §9b targets" + (QUICK_NOTE if quick else ""), lines)
