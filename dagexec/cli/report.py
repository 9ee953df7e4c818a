"""What the command line shows of a run: progress (live or plain), the summary
table, output values and the ``--json`` report; and what ``inspect`` shows of a file.

Tables and reports are drawn by rich to the terminal's width; where the stream is not
a terminal (a pipe, a file, a CI log) nothing is wrapped, whatever ``COLUMNS`` says,
so that each error and each traceback line stays one line that ``grep`` finds
(:func:`console`)."""

from __future__ import annotations

import math
import sys
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from .._state import State, Trial

if TYPE_CHECKING:
    from .._result import RunResult
    from ..plan.compiled import CompiledGraph


_TB_LINES = 6  # traceback lines shown per failed node
_LOG_LINES = 20  # log lines shown per failed node (its tail)
_NO_WRAP = 1_000_000  # the width of a console that is not a terminal: no line is that long


def console(stderr: bool, color: bool = False) -> Any:
    """A rich Console on stderr or stdout: the terminal's width on a terminal, else one
    that wraps no line."""
    tty = (sys.stderr if stderr else sys.stdout).isatty()
    from rich.console import Console

    return Console(stderr=stderr, no_color=not color, highlight=False, width=None if tty else _NO_WRAP)


# -- progress ----------------------------------------------------------------------------
def _trial_line(trial: Trial) -> str:
    text = f"{trial.state.value:<10} {trial.key}"
    if trial.attempt > 1:
        text += f" (attempt {trial.attempt})"
    if trial.duration is not None:
        text += f" in {trial.duration:.2f} s"
    if trial.error is not None:
        text += f": {type(trial.error).__name__}: {trial.error}"
    return text


class PlainLog:
    """One line on stderr per finished trial, for logs and pipes."""

    def __init__(self, total: int) -> None:
        self._start = time.time()
        self._total = total

    def on_run_start(self, plan: CompiledGraph) -> None:
        self._start = time.time()
        sys.stderr.write(f"running graph {plan.name!r} ({self._total} of {len(plan)} nodes)\n")
        sys.stderr.flush()

    def on_trial_end(self, trial: Trial) -> None:
        elapsed = time.time() - self._start
        sys.stderr.write(f"[{elapsed:8.2f} s] {_trial_line(trial)}\n")
        sys.stderr.flush()


class LiveDisplay:
    """A rich progress bar with the running nodes, for a terminal."""

    def __init__(self, total: int) -> None:
        from .._progress import make_progress

        self._progress = make_progress(running=True, transient=True)
        self._total = total
        self._running: dict[str, None] = {}
        self._task: Any = None

    def _update(self) -> None:
        keys = list(self._running)
        text = ", ".join(keys[:3]) + (f" +{len(keys) - 3}" if len(keys) > 3 else "")
        self._progress.update(self._task, running=text)

    def on_run_start(self, plan: CompiledGraph) -> None:
        self._task = self._progress.add_task(plan.name, total=self._total, running="")
        self._progress.start()

    def on_trial_start(self, trial: Trial) -> None:
        self._running[trial.key] = None
        self._update()

    def on_trial_end(self, trial: Trial) -> None:
        self._running.pop(trial.key, None)
        if trial.state is State.SUCCEEDED:
            self._progress.advance(self._task)
        else:
            self._progress.console.print(f"[red]{_trial_line(trial)}[/red]", markup=True, highlight=False)
        self._update()

    def on_run_end(self, result: RunResult) -> None:
        self._progress.stop()


def selected_count(plan: CompiledGraph, only: list[str], skip: list[str]) -> int:
    """How many nodes a run with ``only``/``skip`` will run (the progress total)."""
    from .._errors import Problem
    from ..plan.arguments import select

    problems: list[Problem] = []
    return sum(select(plan, only, skip, problems)) if (only or skip) else len(plan)


# -- results -----------------------------------------------------------------------------
def _jsonable(value: Any) -> Any:
    """``value`` where JSON holds it (tuples as lists), else its repr."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: _jsonable(v) for k, v in value.items()}
    return repr(value)


def _trial_json(trial: Any, fields: tuple[str, ...]) -> dict[str, Any]:
    """A trial's ``--json`` fields; a stream producer's items and a failed trial's repro
    bundle too, where there are."""
    full = trial.to_dict()
    out = {f: full[f] for f in fields}
    for extra in ("items", "bundle"):
        if extra in full:
            out[extra] = full[extra]
    return out


def result_to_json(result: RunResult) -> dict[str, Any]:
    """The ``--json`` document of a run (DESIGN §8)."""
    fields = ("attempt", "state", "start", "end", "error", "log")
    return {
        "ok": result.ok,
        "outputs": {name: _jsonable(value) for name, value in result.outputs.items()},
        "states": {key: state.value for key, state in result.states.items()},
        "trials": {key: [_trial_json(t, fields) for t in trials] for key, trials in result.trials.items()},
        "duration": result.duration,
    }


def _tail(text: str, n: int) -> list[str]:
    return [line for line in text.rstrip().splitlines()[-n:]]


def printable(text: str, newlines: bool = False) -> str:
    """``text`` safe for a terminal: each control or invisible formatting character
    (escape sequences, bidirectional overrides, and newlines unless ``newlines``)
    written as its Python escape, e.g. ``\\x1b``."""
    if text.isprintable():
        return text
    return "".join(
        ch if ch.isprintable() or (newlines and ch == "\n") else ch.encode("unicode_escape").decode("ascii")
        for ch in text
    )


def add_row(table: Any, *cells: str) -> None:
    """A table row of plain text: brackets in keys, types and errors are not markup,
    and control characters are shown escaped (:func:`printable`)."""
    from rich.text import Text

    table.add_row(*(Text(printable(cell)) for cell in cells))


def print_summary(result: RunResult, color: bool) -> None:
    """The summary table on stderr: nodes by state, then each failed node with its error."""
    from rich import box
    from rich.table import Table

    out = console(stderr=True, color=color)
    # a task.map's items are counted apart from the nodes
    counts = Counter(s.value for k, s in result.states.items() if not result._is_item(k))
    items = Counter(result.states[k].value for keys in result._items.values() for k in keys)
    out.print(f"graph {result.graph!r}: {result._n_nodes()} nodes in {result.duration:.2f} s")
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    table.add_column("state")
    table.add_column("nodes", justify="right")
    if result._items:
        table.add_column("map items", justify="right")
    for state in State:
        if counts[state.value] or items[state.value]:
            cells = [str(counts[state.value])] + ([str(items[state.value])] if result._items else [])
            add_row(table, state.value, *cells)
    out.print(table)
    failed = result.failed
    if not failed:
        return
    out.print(f"{len(failed)} failed:")
    bad = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    bad.add_column("node")
    bad.add_column("attempts", justify="right")
    bad.add_column("last trial")
    bad.add_column("error")
    for key in failed:
        trials = result.trials.get(key, [])
        last = trials[-1] if trials else None
        err = "" if last is None or last.error is None else f"{type(last.error).__name__}: {last.error}"
        if not trials and key in result._items:  # a map: its items ran, it did not
            add_row(bad, key, "", "map", result._failure_line(key).partition(": ")[2])
            continue
        add_row(bad, key, str(len(trials)), last.state.value if last else "", err)
    out.print(bad)
    for key in failed:
        trials = result.trials.get(key, [])
        if not trials:
            continue
        last = trials[-1]
        if last.bundle is not None:
            out.print(f"{key}: repro bundle {last.bundle} (dagexec debug FILE)", style="bold", markup=False)
        lines = _tail(last.traceback, _TB_LINES)
        if lines:
            out.print(f"{key}: traceback (last lines)", style="bold", markup=False)
            out.print("\n".join("  " + line for line in lines), markup=False)
        log = _tail(last.log, _LOG_LINES)
        if log:
            out.print(f"{key}: log (last lines)", style="bold", markup=False)
            out.print("\n".join("  " + line for line in log), markup=False)


def print_outputs(result: RunResult, file: TextIO) -> None:
    """Each computed output as ``name = repr``, on ``file`` (stdout, or stderr when
    stdout holds a document)."""
    from .._typecheck import short_repr

    for name, value in result.outputs.items():
        file.write(f"{name} = {short_repr(value, 200)}\n")


# -- inspect -----------------------------------------------------------------------------
def _signature_state(header: dict[str, Any]) -> str:
    if not header.get("signed"):
        return "unsigned"
    if header.get("verified"):
        return "signed, verified with DAGEXEC_KEY"
    return "signed, not verified (set DAGEXEC_KEY to check it)"


def print_header(path: Path, header: dict[str, Any]) -> None:
    """What ``dagexec inspect`` shows of a saved file's header, on stdout; every text
    from the file goes through :func:`printable`."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    screen = console(stderr=False)

    def table(title: str, *columns: str) -> Table:
        screen.print(Text(printable(title), style="bold"))
        t = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
        for col in columns:
            t.add_column(col)
        return t

    manifest: dict[str, Any] = header.get("manifest") or {}
    python = f"{header.get('python_implementation', '')} {header.get('python_version', '')}".strip()
    info = table(f"{path}", "field", "value")
    rows = [
        ("graph", str(header.get("graph"))),
        ("nodes", str(header.get("node_count", len(manifest.get("nodes", []))))),
        ("fingerprint", str(header.get("fingerprint"))),
        ("signature", _signature_state(header)),
        ("format", str(header.get("format_version"))),
        ("dagexec", str(header.get("dagexec_version"))),
        ("python", python),
        ("cloudpickle", str(header.get("cloudpickle_version"))),
        ("payload", f"{header.get('payload_length')} bytes, sha256 {header.get('payload_sha256')}"),
        ("code inside", ", ".join(header.get("by_value") or []) or "-"),
    ]
    for label, value in rows:
        add_row(info, label, value)
    screen.print(info)
    screen.print()
    requirements = header.get("requirements") or []
    if not requirements:
        screen.print(Text("requirements", style="bold"), ": none beyond dagexec", sep="")
    reqs = table("requirements", "distribution", "version", "modules") if requirements else None
    for req in requirements:
        add_row(
            reqs, str(req.get("distribution")), str(req.get("version")), ", ".join(req.get("modules") or [])
        )
    if reqs is not None:
        screen.print(reqs)
    screen.print()
    inputs = table("inputs", "name", "type", "default")
    for spec in manifest.get("inputs", []):
        default = "(required)" if spec.get("required") else str(spec.get("default", ""))
        add_row(inputs, str(spec.get("name")), str(spec.get("type")), default)
    screen.print(inputs)
    screen.print()
    outputs = table("outputs", "name", "node")
    for out in manifest.get("outputs", []):
        add_row(outputs, str(out.get("name")), str(out.get("key")))
    screen.print(outputs)
    screen.print()
    nodes = table("nodes", "key", "task", "function", "deps", "call site")
    for node in manifest.get("nodes", []):
        add_row(
            nodes,
            str(node.get("key")),
            str(node.get("task")),
            str(node.get("function")),
            ", ".join(node.get("deps", [])),
            str(node.get("call_site")),
        )
    screen.print(nodes)
