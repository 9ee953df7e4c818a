"""The ``dagexec`` command line (also ``python -m dagexec``).

::

    dagexec compile TARGET -o FILE.dagx        save a compiled graph
    dagexec run FILE.dagx|TARGET [options]     run it, show progress and a summary
    dagexec inspect FILE.dagx                  show a file's header, without unpickling
    dagexec dot FILE.dagx|TARGET -o OUT        draw it (.dot, .svg, .png, .html)

TARGET is ``module:attr`` or ``path/to/file.py:attr`` naming a Graph, a section, a
CompiledGraph or a function (no arguments) returning a Graph or a CompiledGraph.

Exit codes: 0 success, 1 a task failed, 2 bad usage, a bad target, bad inputs or a bad
artifact (one ``dagexec: error: ...`` message on stderr, never a traceback), 130 on
Ctrl-C. Output values go to stdout; progress, the summary and errors go to stderr.
"""

from __future__ import annotations

import argparse
import importlib
import inspect as _inspect
import json
import logging
import math
import os
import shutil
import sys
import time
import traceback
import types
import typing
from collections import Counter
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any

from ._errors import ArtifactError, DagexecError, GraphError, InputError
from ._state import State, Trial

if TYPE_CHECKING:
    from ._plan import CompiledGraph
    from ._result import RunResult

__all__ = ["main"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

_TRUE = frozenset({"true", "1", "yes"})
_FALSE = frozenset({"false", "0", "no"})
_TB_LINES = 6  # traceback lines shown per failed node
_LOG_LINES = 5  # log lines shown per failed node


class UsageError(DagexecError):
    """Bad usage, target or input: reported as one ``dagexec: error:`` line, exit code 2."""


# -- targets ---------------------------------------------------------------------------
def _import_target_module(spec: str) -> types.ModuleType:
    """Import ``module.name`` or ``path/to/file.py``."""
    if spec.endswith(".py") or "/" in spec or os.sep in spec:
        path = Path(spec)
        if not path.is_file():
            raise UsageError(f"no such file {spec!r}")
        if path.suffix != ".py":
            raise UsageError(f"{spec!r} is not a .py file")
        folder = str(path.resolve().parent)
        if folder not in sys.path:
            sys.path.insert(0, folder)
        name = path.stem
        loaded = sys.modules.get(name)
        where = getattr(loaded, "__file__", None)
        if loaded is not None and (where is None or Path(where).resolve() != path.resolve()):
            raise UsageError(
                f"cannot import {spec!r} as module {name!r}: that name is already taken by {loaded!r}; "
                "rename the file"
            )
    else:
        name = spec
        # the console script does not put the working directory on sys.path; python -m does
        if os.getcwd() not in sys.path and "" not in sys.path:
            sys.path.insert(0, os.getcwd())
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (name == exc.name or name.startswith(exc.name + ".")):
            raise UsageError(f"cannot import module {name!r}: {exc}") from None
        raise UsageError(f"importing {spec!r} raised {_describe(exc)}") from None
    except Exception as exc:
        raise UsageError(f"importing {spec!r} raised {_describe(exc)}") from None


def _describe(exc: BaseException) -> str:
    """``Type: message (file.py:12)``, the place being the innermost frame."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = ""
    if frames:
        last = frames[-1]
        where = f" ({_relpath(last.filename)}:{last.lineno})"
    return f"{type(exc).__name__}: {exc}{where}"


def _relpath(path: str) -> str:
    try:
        return os.path.relpath(path)
    except ValueError:
        return path


def _graphs_in(module: types.ModuleType) -> list[str]:
    from ._graph import Graph
    from ._plan import CompiledGraph
    from ._section import Section

    return sorted(
        name
        for name, value in vars(module).items()
        if not name.startswith("_") and isinstance(value, (Graph, CompiledGraph, Section))
    )


def _resolve_target(target: str) -> CompiledGraph:
    """The compiled graph that ``module:attr`` or ``path/to/file.py:attr`` names."""
    module_part, sep, attr = target.rpartition(":")
    if not sep or not module_part or not attr:
        if target.endswith(".py"):
            raise UsageError(f"name the graph inside the file: {target}:ATTR")
        raise UsageError(f"no such file {target!r}; a target reads module:attr or path/to/file.py:attr")
    module = _import_target_module(module_part)
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            found = _graphs_in(module)
            hint = f"; graphs in it: {', '.join(found)}" if found else ""
            raise UsageError(f"module {module.__name__!r} has no attribute {attr!r}{hint}") from None
    return _as_plan(obj, target)


def _as_plan(obj: Any, target: str, called: bool = False) -> CompiledGraph:
    from ._graph import Graph
    from ._plan import CompiledGraph
    from ._section import Section
    from ._task import Task

    if isinstance(obj, CompiledGraph):
        return obj
    if isinstance(obj, Graph):
        return obj.compile()
    if isinstance(obj, Section):
        return obj.graph().compile()
    what = "a Graph, a section, a CompiledGraph or a function returning a Graph"
    if called:
        raise UsageError(f"{target}() returned {type(obj).__name__}, not a Graph or a CompiledGraph")
    if isinstance(obj, Task):
        raise UsageError(f"{target!r} is a task, not a graph; name {what}")
    if callable(obj) and not isinstance(obj, type):
        try:
            _inspect.signature(obj).bind()
        except TypeError:
            raise UsageError(f"{target!r} is a function that needs arguments; name {what}") from None
        except ValueError:
            pass
        try:
            made = obj()
        except GraphError:
            raise
        except Exception as exc:
            raise UsageError(f"calling {target}() raised {_describe(exc)}") from None
        return _as_plan(made, target, called=True)
    raise UsageError(f"{target!r} is {type(obj).__name__}, not {what}")


def _load_plan(target: str) -> CompiledGraph:
    """A saved file (anything that exists on disk) or a ``module:attr`` target."""
    path = Path(target)
    if path.is_file() and path.suffix != ".py":
        return _load_artifact(path)
    return _resolve_target(target)


def _load_artifact(path: Path) -> CompiledGraph:
    from ._artifact import load

    return load(path)


# -- inputs ------------------------------------------------------------------------------
def _parse_inputs(plan: CompiledGraph, pairs: list[str]) -> dict[str, Any]:
    """``-i name=value`` pairs parsed by each input's declared type."""
    specs = {spec.name: spec for spec in plan.inputs}
    values: dict[str, Any] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        name = name.strip()
        if not sep or not name:
            raise UsageError(f"-i takes name=value, got {pair!r}")
        if name in values:
            raise UsageError(f"input {name!r} is given twice")
        spec = specs.get(name)
        # an unknown name is passed on as text: run() reports it with the valid names
        values[name] = text if spec is None else parse_value(name, text, spec.type)
    return values


def parse_value(name: str, text: str, ann: Any) -> Any:
    """Parse ``text`` for input ``name`` of type ``ann``.

    ``str`` as is; ``int``, ``float`` and ``bool`` (true/false/1/0/yes/no) parsed;
    ``Optional[X]`` takes ``null`` for None; paths built from the text; an input
    without a type takes JSON when the text is JSON, else the text; anything else
    (containers included) is JSON.

    Raises:
        UsageError: naming the input and the expected type.
    """
    from ._typecheck import format_type

    def bad(why: str = "") -> UsageError:
        return UsageError(f"input {name!r} expects {format_type(ann)}{why}, got {text!r}")

    if ann is str:
        return text
    if ann is bool:
        low = text.strip().lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise bad(" (true/false, 1/0 or yes/no)")
    if ann is int or ann is float:
        try:
            return ann(text)
        except ValueError:
            raise bad() from None
    if ann is Any or ann is object:
        try:
            return json.loads(text)
        except ValueError:
            return text
    if typing.get_origin(ann) in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(ann) if a is not type(None)]
        if len(members) == 1 and len(typing.get_args(ann)) == 2:
            if text.strip().lower() in ("null", "none"):
                return None
            return parse_value(name, text, members[0])
    if isinstance(ann, type) and issubclass(ann, PurePath):
        return ann(text)
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise bad(f" as JSON ({exc})") from None
    origin = typing.get_origin(ann) or ann
    if isinstance(value, list) and origin in (tuple, set, frozenset):
        try:
            value = origin(value)
        except TypeError:
            raise bad(f" as JSON ({origin.__name__} items must be hashable)") from None
    return value


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


class _PlainLog:
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


class _LiveDisplay:
    """A rich progress bar with the running nodes, for a terminal."""

    def __init__(self, total: int) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[running]}", style="dim"),
            console=Console(stderr=True),
            transient=True,
        )
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


def _selected_count(plan: CompiledGraph, only: list[str], skip: list[str]) -> int:
    from ._errors import Problem
    from ._prepare import select

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


def result_to_json(result: RunResult) -> dict[str, Any]:
    """The ``--json`` document of a run (DESIGN §8)."""
    fields = ("attempt", "state", "start", "end", "error", "log")
    return {
        "ok": result.ok,
        "outputs": {name: _jsonable(value) for name, value in result.outputs.items()},
        "states": {key: state.value for key, state in result.states.items()},
        "trials": {
            key: [{f: t.to_dict()[f] for f in fields} for t in trials]
            for key, trials in result.trials.items()
        },
        "duration": result.duration,
    }


def _tail(text: str, n: int) -> list[str]:
    return [line for line in text.rstrip().splitlines()[-n:]]


def _add_row(table: Any, *cells: str) -> None:
    """A table row of plain text: brackets in keys, types and errors are not markup."""
    from rich.text import Text

    table.add_row(*(Text(cell) for cell in cells))


def _print_summary(result: RunResult, color: bool) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table

    console = Console(stderr=True, no_color=not color, highlight=False)
    counts = Counter(state.value for state in result.states.values())
    console.print(f"graph {result.graph!r}: {len(result.states)} nodes in {result.duration:.2f} s")
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    table.add_column("state")
    table.add_column("nodes", justify="right")
    for state in State:
        if counts[state.value]:
            _add_row(table, state.value, str(counts[state.value]))
    console.print(table)
    failed = result.failed
    if not failed:
        return
    console.print(f"{len(failed)} failed:")
    bad = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    bad.add_column("node")
    bad.add_column("attempts", justify="right")
    bad.add_column("last trial")
    bad.add_column("error")
    for key in failed:
        trials = result.trials.get(key, [])
        last = trials[-1] if trials else None
        err = "" if last is None or last.error is None else f"{type(last.error).__name__}: {last.error}"
        _add_row(bad, key, str(len(trials)), last.state.value if last else "", err)
    console.print(bad)
    for key in failed:
        trials = result.trials.get(key, [])
        if not trials:
            continue
        last = trials[-1]
        lines = _tail(last.traceback, _TB_LINES)
        if lines:
            console.print(f"{key}: traceback (last lines)", style="bold", markup=False)
            console.print("\n".join("  " + line for line in lines), markup=False)
        log = _tail(last.log, _LOG_LINES)
        if log:
            console.print(f"{key}: log (last lines)", style="bold", markup=False)
            console.print("\n".join("  " + line for line in log), markup=False)


def _print_outputs(result: RunResult) -> None:
    from ._typecheck import short_repr

    for name, value in result.outputs.items():
        print(f"{name} = {short_repr(value, 200)}")


# -- commands ----------------------------------------------------------------------------
def _cmd_run(args: argparse.Namespace) -> int:
    plan = _load_plan(args.target)
    inputs = _parse_inputs(plan, args.input)
    callbacks: list[Any] = []
    tty = sys.stderr.isatty()
    if not args.no_progress:
        total = _selected_count(plan, args.only, args.skip)
        callbacks.append(_LiveDisplay(total) if tty else _PlainLog(total))
    json_path = Path(args.json) if args.json else None
    if json_path is not None and not json_path.parent.is_dir():
        raise UsageError(f"cannot write --json {args.json!r}: no such folder {str(json_path.parent)!r}")
    result = plan.run(
        inputs=inputs,
        executor=args.executor,
        max_workers=args.workers,
        only=args.only or None,
        skip=args.skip or None,
        callbacks=callbacks,
        raise_on_failure=False,
    )
    if json_path is not None:
        json_path.write_text(json.dumps(result_to_json(result), indent=2) + "\n", encoding="utf-8")
    _print_summary(result, color=tty)
    _print_outputs(result)
    return EXIT_OK if result.ok else EXIT_FAILED


def _cmd_compile(args: argparse.Namespace) -> int:
    from ._artifact import read_header

    if Path(args.target).is_file() and not args.target.endswith(".py"):
        raise UsageError(f"compile takes module:attr or path/to/file.py:attr, got the file {args.target!r}")
    plan = _resolve_target(args.target)
    out = Path(args.output)
    if not out.parent.is_dir():
        raise UsageError(f"cannot write {args.output!r}: no such folder {str(out.parent)!r}")
    plan.save(out)
    header = read_header(out)
    signed = "signed" if header["signed"] else "unsigned"
    sys.stderr.write(
        f"wrote {args.output}: graph {plan.name!r}, {len(plan)} nodes, {signed}, "
        f"fingerprint {plan.fingerprint[:12]}\n"
    )
    return EXIT_OK


def _cmd_inspect(args: argparse.Namespace) -> int:
    from ._artifact import read_header

    path = Path(args.file)
    if not path.is_file():
        raise UsageError(f"no such file {args.file!r}")
    _print_header(path, read_header(path))
    return EXIT_OK


def _signature_state(header: dict[str, Any]) -> str:
    if not header.get("signed"):
        return "unsigned"
    if header.get("verified"):
        return "signed, verified with DAGEXEC_KEY"
    return "signed, not verified (set DAGEXEC_KEY to check it)"


def _print_header(path: Path, header: dict[str, Any]) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False)

    def table(title: str, *columns: str) -> Table:
        console.print(f"[bold]{title}[/bold]")
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
        _add_row(info, label, value)
    console.print(info)
    console.print()
    requirements = header.get("requirements") or []
    if not requirements:
        console.print("[bold]requirements[/bold]: none beyond dagexec")
    reqs = table("requirements", "distribution", "version", "modules") if requirements else None
    for req in requirements:
        _add_row(
            reqs, str(req.get("distribution")), str(req.get("version")), ", ".join(req.get("modules") or [])
        )
    if reqs is not None:
        console.print(reqs)
    console.print()
    inputs = table("inputs", "name", "type", "default")
    for spec in manifest.get("inputs", []):
        default = "(required)" if spec.get("required") else str(spec.get("default", ""))
        _add_row(inputs, str(spec.get("name")), str(spec.get("type")), default)
    console.print(inputs)
    console.print()
    outputs = table("outputs", "name", "node")
    for out in manifest.get("outputs", []):
        _add_row(outputs, str(out.get("name")), str(out.get("key")))
    console.print(outputs)
    console.print()
    nodes = table("nodes", "key", "task", "function", "deps", "call site")
    for node in manifest.get("nodes", []):
        _add_row(
            nodes,
            str(node.get("key")),
            str(node.get("task")),
            str(node.get("function")),
            ", ".join(node.get("deps", [])),
            str(node.get("call_site")),
        )
    console.print(nodes)


_PICTURES = (".dot", ".gv", ".svg", ".png", ".html")


def _cmd_dot(args: argparse.Namespace) -> int:
    out = Path(args.output)
    suffix = out.suffix.lower()
    if suffix not in _PICTURES:
        raise UsageError(f"cannot tell the picture format of {args.output!r}; use .dot, .svg, .png or .html")
    if suffix in (".svg", ".png", ".html") and shutil.which("dot") is None:
        raise UsageError(
            f"writing {suffix} needs the Graphviz 'dot' program, which is not installed; "
            "install Graphviz (https://graphviz.org/download/) or write .dot"
        )
    if not out.parent.is_dir():
        raise UsageError(f"cannot write {args.output!r}: no such folder {str(out.parent)!r}")
    plan = _load_plan(args.target)
    if suffix == ".html":
        plan.to_html(out)
    elif suffix in (".dot", ".gv"):
        out.write_text(plan.to_dot().source, encoding="utf-8")
    else:
        out.write_bytes(plan.to_dot().pipe(format=suffix[1:]))
    sys.stderr.write(f"wrote {args.output}: graph {plan.name!r}, {len(plan)} nodes\n")
    return EXIT_OK


# -- parser ------------------------------------------------------------------------------
def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expects an int >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expects an int >= 1, got {text!r}")
    return value


def _parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="dagexec",
        description="Compile, run, inspect and draw dagexec graphs.",
        epilog="TARGET is module:attr or path/to/file.py:attr (a Graph, a section, a CompiledGraph "
        "or a function returning a Graph). Exit codes: 0 success, 1 a task failed, 2 bad usage, "
        "target, input or artifact.",
    )
    parser.add_argument("--version", action="version", version=f"dagexec {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("compile", help="compile a graph and save it to a file")
    p.add_argument("target", metavar="TARGET", help="module:attr or path/to/file.py:attr")
    p.add_argument("-o", "--output", metavar="FILE", required=True, help="the file to write (.dagx)")
    p.set_defaults(func=_cmd_compile)

    p = sub.add_parser("run", help="run a saved file or a target")
    p.add_argument("target", metavar="FILE|TARGET", help="a saved .dagx file or module:attr")
    p.add_argument(
        "-i",
        "--input",
        metavar="NAME=VALUE",
        action="append",
        default=[],
        help="a graph input, parsed by its declared type (JSON for containers); repeat for several",
    )
    p.add_argument(
        "--executor", choices=("serial", "threads", "loky"), default="threads", help="default: threads"
    )
    p.add_argument("--workers", metavar="N", type=_positive_int, help="number of workers")
    p.add_argument(
        "--only", metavar="KEY", action="append", default=[], help="run KEY and what it needs; repeatable"
    )
    p.add_argument(
        "--skip", metavar="KEY", action="append", default=[], help="skip KEY and what needs it; repeatable"
    )
    p.add_argument("--json", metavar="FILE", help="write the result as JSON to FILE")
    p.add_argument("--no-progress", action="store_true", help="no progress display nor per-node log")
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("inspect", help="show a saved file's header without loading its code")
    p.add_argument("file", metavar="FILE", help="a saved .dagx file")
    p.set_defaults(func=_cmd_inspect)

    p = sub.add_parser("dot", help="draw a graph as .dot, .svg, .png or an .html page")
    p.add_argument("target", metavar="FILE|TARGET", help="a saved .dagx file or module:attr")
    p.add_argument(
        "-o", "--output", metavar="OUT", required=True, help="OUT.dot, OUT.svg, OUT.png or OUT.html"
    )
    p.set_defaults(func=_cmd_dot)
    return parser


class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        text = f"dagexec: {record.levelname.lower()}: {record.getMessage()}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def _not_a_node_failure(record: logging.LogRecord) -> bool:
    # the per-node log, the live display and the summary already report failed trials
    return not (
        record.name in ("dagexec.engine", "dagexec._engine") and str(record.msg).startswith("node %r")
    )


def _error(message: str) -> None:
    sys.stderr.write(f"dagexec: error: {message}\n")
    sys.stderr.flush()


def main(argv: list[str] | None = None) -> int:
    """Run the ``dagexec`` command line.

    Args:
        argv: the arguments after the program name (default: ``sys.argv[1:]``).

    Returns:
        The exit code: 0 success, 1 a task failed, 2 bad usage, target, input or
        artifact, 130 interrupted.

    Raises:
        Nothing for the failures above; a bug inside dagexec propagates with its traceback.
    """
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    # the library never configures logging; the command shows its warnings on stderr
    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(logging.WARNING)
    handler.setFormatter(_Formatter())
    handler.addFilter(_not_a_node_failure)
    log = logging.getLogger("dagexec")
    log.addHandler(handler)
    try:
        code: int = args.func(args)
    except (UsageError, ArtifactError, GraphError, InputError) as exc:
        _error(str(exc))
        return EXIT_USAGE
    except KeyboardInterrupt:
        _error("interrupted")
        return EXIT_INTERRUPTED
    except OSError as exc:
        _error(f"{exc.strerror or exc}: {exc.filename!r}" if exc.filename else str(exc))
        return EXIT_USAGE
    finally:
        log.removeHandler(handler)
    return code
