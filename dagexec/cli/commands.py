"""The commands of the ``dagexec`` command line: one function per command, each taking
the parsed arguments and returning the exit code (``cmd_run``, ``cmd_compile``,
``cmd_inspect``, ``cmd_diff``, ``cmd_cache``, ``cmd_dot``), with the checks and helpers
they share.  The parser that picks one, and the handling of errors, are in
:mod:`dagexec.cli`.

A command raises ``UsageError`` (or another error ``main`` knows) for bad usage; it
never prints a traceback, and it checks what it can before anything runs.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import threading
import time
from pathlib import Path
from typing import Any

from .output import STDOUT, check_destination, stdout_for_document, write_document
from .report import (
    LiveDisplay,
    PlainLog,
    print_header,
    print_outputs,
    print_summary,
    printable,
    result_to_json,
    selected_count,
)
from .targets import UsageError, age, load_plan, parse_inputs, resolve_target

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "FORMATS",
    "MAX_PROCESSES_PER_CPU",
    "cmd_cache",
    "cmd_compile",
    "cmd_diff",
    "cmd_dot",
    "cmd_inspect",
    "cmd_run",
]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

#: seconds between two writes of a ``--report-live`` page (and between its reloads)
LIVE_REPORT_S = 3.0

#: ``--workers`` for loky is cut to this many processes per CPU (with a warning)
MAX_PROCESSES_PER_CPU = 4

logger = logging.getLogger(__name__)


def _check_run_usage(args: argparse.Namespace) -> None:
    """The checks of ``run``'s options that need neither the plan nor its code."""
    if args.scheduler is not None and args.executor != "dask":
        raise UsageError("--scheduler is used only with --executor dask")
    if args.executor == "dask" and args.scheduler is None and not _dask_address_configured():
        raise UsageError(
            "--executor dask needs the scheduler's address: --scheduler tcp://host:8786 "
            "(or the environment variable DASK_SCHEDULER_ADDRESS)"
        )
    if args.dry_run and args.cache is None:
        raise UsageError("--dry-run needs --cache DIR: it says what the cache would serve")
    if args.dry_run and args.json is not None:
        raise UsageError("--dry-run writes no --json: nothing runs")
    if args.resume and args.cache is None:
        raise UsageError("--resume needs --cache DIR: the folder whose journal the run continues")
    from ..cache.store import key_problem

    if args.cache is not None and (why := key_problem()) is not None:
        raise UsageError(f"--cache {args.cache!r}: {why}")
    if args.json is not None:
        check_destination(args.json, "--json")
    if args.events is not None:
        check_destination(args.events, "--events")
    if args.report_live and args.report is None:
        raise UsageError("--report-live needs --report FILE: the page it rewrites")
    if args.report is not None:
        if args.report == STDOUT:
            raise UsageError("--report needs a file: the page is written when the run ends")
        check_destination(args.report, "--report")
        if shutil.which("dot") is None:
            raise UsageError("--report needs Graphviz's dot program to draw the graph: install graphviz")
    if args.json == STDOUT and args.events == STDOUT:
        raise UsageError("--json - and --events - would share standard output: give one a file")
    if args.executor == "loky" and args.workers is not None:
        args.workers = _capped_processes(args.workers)


def _capped_processes(workers: int) -> int:
    """``--workers`` for an executor of processes, at most MAX_PROCESSES_PER_CPU per CPU."""
    from loky import cpu_count

    cpus: int = cpu_count()
    cap = MAX_PROCESSES_PER_CPU * cpus
    if workers <= cap:
        return workers
    logger.warning(
        "--workers %d is more than %d processes per CPU (%d CPU%s here): %d loky workers start",
        workers, MAX_PROCESSES_PER_CPU, cpus, "" if cpus == 1 else "s", cap,
    )  # fmt: skip
    return cap


def cmd_run(args: argparse.Namespace) -> int:
    _check_run_usage(args)
    to_stdout = STDOUT in (args.json, args.events)
    with stdout_for_document(to_stdout) as document:
        plan = load_plan(args.target, args.require_signed, args.expect_graph, args.expect_fingerprint)
        inputs = parse_inputs(plan, args.input)
        if args.dry_run:
            return _dry_run(plan, inputs, args)
        live = LIVE_REPORT_S if args.report_live else None
        callbacks: list[Any] = [] if args.report is None else [ReportAtEnd(args.report, live)]
        tty = sys.stderr.isatty()
        if not args.no_progress:
            if args.cache is not None:
                total = _would_run(plan, inputs, args)
            else:
                total = selected_count(plan, args.only, args.skip)
            callbacks.append(LiveDisplay(total) if tty else PlainLog(total))
        from .._api import run
        from ..run.config import RunConfig

        config = RunConfig(
            executor=args.executor,
            max_workers=args.workers,
            scheduler=args.scheduler,
            cache=args.cache,
            resume=args.resume,
            only=args.only or None,
            skip=args.skip or None,
            callbacks=callbacks,
            raise_on_failure=False,
            check_mutation=args.check_mutation,
            bundles=args.bundles,
            events=None if args.events is None else document if args.events == STDOUT else args.events,
        )
        result = run(plan, inputs, config)
        if args.json is not None:
            data = json.dumps(result_to_json(result), indent=2) + "\n"
            write_document(args.json, data.encode("utf-8"), document)
        print_summary(result, color=tty)
        print_outputs(result, sys.stderr if to_stdout else sys.stdout)
    return EXIT_OK if result.ok else EXIT_FAILED


class ReportAtEnd:
    """``--report FILE``: the run report written when the run ends, whatever its end
    (a run callback, so a Ctrl-C's cancelled run is written too); a page that cannot be
    written is logged, and the run's own end stands.  With ``live`` (``--report-live``),
    also rewritten every ``live`` seconds while the run lasts, from the trials heard of
    so far, as a page that reloads itself; the run's own thread only records trials."""

    def __init__(self, path: str, live: float | None = None) -> None:
        self.path = path
        self.live = live
        self.lock = threading.Lock()  # guards ``trials``
        self.writing = threading.Lock()  # one page written at a time; the last is the run's end
        self.trials: dict[str, dict[int, Any]] = {}  # key -> attempt -> its Trial, as heard of
        self.ended = threading.Event()
        if live is not None:  # hears of trials only where the page shows them as they go
            self.on_trial_start = self.on_trial_end = self._heard

    def on_run_start(self, plan: Any) -> None:
        """Start rewriting the page (with ``live``)."""
        self.plan, self.start = plan, time.time()
        if self.live is not None:
            threading.Thread(target=self._rewrite, name="dagexec-report", daemon=True).start()

    def _heard(self, trial: Any) -> None:
        with self.lock:
            self.trials.setdefault(trial.key, {})[trial.attempt] = trial

    def on_run_end(self, result: Any) -> None:
        """Write the page of ``result``."""
        self.ended.set()
        with self.writing:
            result.to_html(self.path)
        logger.info("wrote the run report %s", self.path)

    def _rewrite(self) -> None:
        from .._html import to_html

        assert self.live is not None
        while not self.ended.wait(self.live):
            with self.writing:
                if self.ended.is_set():
                    return
                try:
                    to_html(self._so_far(), self.path, refresh=self.live)
                except Exception:
                    logger.warning("the live run report %s could not be written", self.path, exc_info=True)

    def _so_far(self) -> Any:
        """The run as far as its trials tell: each node's state that of its last trial
        heard of (failed for a failure that may yet be retried), pending before any."""
        from .._result import RunResult
        from .._state import State

        with self.lock:
            trials = {k: [by[a] for a in sorted(by)] for k, by in self.trials.items()}
        live = {State.RUNNING: State.RUNNING, State.SUCCEEDED: State.SUCCEEDED, State.CANCELLED: State.CANCELLED}
        states = {k: live.get(trials[k][-1].state, State.FAILED) if k in trials else State.PENDING for k in self.plan.keys}
        records = {k: trials.get(k, []) for k in self.plan.keys}
        return RunResult(self.plan, states, records, {}, {}, self.start, time.time() - self.start)


def _would_run(plan: Any, inputs: dict[str, Any], args: argparse.Namespace) -> int:
    """How many nodes a run with ``--cache`` would run (nothing is loaded)."""
    from ..cache.decide import decide, open_store
    from ..cache.keys import node_keys
    from ..plan.arguments import bind_arguments

    values, selected, kept = bind_arguments(plan, inputs, {}, args.only or None, args.skip or None)
    store = open_store(args.cache)
    assert store is not None  # --cache was given
    return sum(decide(plan, store, node_keys(plan, values), selected, kept, load=False).runs)


def _dry_run(plan: Any, inputs: dict[str, Any], args: argparse.Namespace) -> int:
    found = plan.explain(inputs, cache=args.cache, only=args.only or None, skip=args.skip or None)
    width = max((len(e.key) for e in found), default=0)
    for e in found:
        why = "; ".join(e.reasons)
        print(f"{e.action:<8} {e.key:<{width}}  {why}".rstrip())
    counts = {a: sum(e.action == a for e in found) for a in ("run", "cached", "skipped")}
    print(
        f"{len(found)} nodes: {counts['run']} would run, {counts['cached']} cached"
        + (f", {counts['skipped']} skipped" if counts["skipped"] else "")
    )
    return EXIT_OK


def _dask_address_configured() -> bool:
    try:
        import dask
    except ImportError:
        return False
    return bool(dask.config.get("scheduler-address", None))


def cmd_compile(args: argparse.Namespace) -> int:
    from .._artifact import read_header

    if Path(args.target).is_file() and not args.target.endswith(".py"):
        raise UsageError(f"compile takes module:attr or path/to/file.py:attr, got the file {args.target!r}")
    plan = resolve_target(args.target)
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


def cmd_inspect(args: argparse.Namespace) -> int:
    from .._artifact import read_header
    from .._bundle import read_bundle_header

    path = Path(args.file)
    if not path.exists():
        raise UsageError(f"no such file {args.file!r}")
    if _starts_with(path, b"DXRB"):  # a repro bundle: its header, nothing unpickled
        _print_bundle_header(read_bundle_header(path))
        return EXIT_OK
    # read_header refuses what is not a regular file (a FIFO, a device, a folder)
    print_header(path, read_header(path))
    return EXIT_OK


def _starts_with(path: Path, magic: bytes) -> bool:
    """Whether the regular file ``path`` starts with ``magic`` (anything else: False)."""
    try:
        if not path.is_file():
            return False
        with path.open("rb") as f:
            return f.read(len(magic)) == magic
    except OSError:
        return False


def _print_bundle_header(header: dict[str, Any]) -> None:
    """What ``dagexec inspect`` shows of a repro bundle."""
    from .._bundle import describe
    from .report import printable

    signed = "unsigned" if not header["signed"] else "signed, verified" if header["verified"] else "signed"
    lines = [
        describe(header),
        f"written by dagexec {header['dagexec_version']}, {header['python_implementation']} "
        f"{header['python_version']}; {signed}",
        f"needs: {', '.join(r['distribution'] + '==' + r['version'] for r in header['requirements']) or 'nothing installed'}",
        f"by value: {', '.join(header['by_value']) or 'nothing'}",
    ]
    for frame, names in header["locals"].items():
        lines.append(f"  {frame}: " + ", ".join(f"{k}={v}" for k, v in names.items()))
    print(printable("\n".join(lines), newlines=True))


def cmd_diff(args: argparse.Namespace) -> int:
    from ..cache.diff import plan_diff

    a, b = load_plan(args.a), load_plan(args.b)
    changes = plan_diff(a, b)
    width = max((len(key) for _, key, _ in changes), default=0)
    for change, key, details in changes:
        print(f"{change:<8} {key:<{width}}  {'; '.join(details)}".rstrip())
    if not changes:
        print(f"no differences: {len(b)} nodes")
        return EXIT_OK
    return EXIT_FAILED


def cmd_cache(args: argparse.Namespace) -> int:
    import time

    from ..cache.store import CacheStore

    if not Path(args.dir).is_dir():
        raise UsageError(f"no such cache folder {args.dir!r}")
    # listing and pruning read headers only, never a value: no key is needed
    store = CacheStore(args.dir, require_signed=False)
    if args.action == "prune":
        removed = store.prune(args.older_than)
        freed = sum(e.size for e in removed)
        print(f"removed {len(removed)} entries, {freed:,} bytes")
        return EXIT_OK
    now = time.time()
    entries = store.entries()
    for e in entries:
        node, graph = (e.meta.get(f) for f in ("node", "graph"))
        where = f"{graph if isinstance(graph, str) else '?'}:{node if isinstance(node, str) else '?'}"
        print(f"{e.key[:12]}  {e.size:>12,}  used {age(now - e.used):>4} ago  {printable(where)}")
    print(f"{len(entries)} entries, {sum(e.size for e in entries):,} bytes")
    return EXIT_OK


#: the picture format of each suffix ``dot -o`` knows
FORMATS = {".dot": "dot", ".gv": "dot", ".svg": "svg", ".png": "png", ".html": "html"}


def cmd_dot(args: argparse.Namespace) -> int:
    fmt = args.format or (FORMATS.get(Path(args.output).suffix.lower()) if args.output != STDOUT else "dot")
    if fmt is None:
        raise UsageError(
            f"cannot tell the picture format of {args.output!r}; use .dot, .svg, .png or .html, or --format"
        )
    if fmt != "dot" and shutil.which("dot") is None:
        raise UsageError(
            f"writing .{fmt} needs the Graphviz 'dot' program, which is not installed; "
            "install Graphviz (https://graphviz.org/download/) or write .dot"
        )
    check_destination(args.output)
    with stdout_for_document(args.output == STDOUT) as document:
        plan = load_plan(args.target)
        if fmt == "html":
            data = _html_page(plan)
        elif fmt == "dot":
            data = plan.to_dot().source.encode("utf-8")
        else:
            data = plan.to_dot().pipe(format=fmt)
        write_document(args.output, data, document)
    where = "standard output" if args.output == STDOUT else args.output
    sys.stderr.write(f"wrote {where}: graph {plan.name!r}, {len(plan)} nodes\n")
    return EXIT_OK


def _html_page(plan: Any) -> bytes:
    """The bytes of ``plan.to_html()``'s page (it writes only files)."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="dagexec-") as folder:
        page = Path(folder) / "plan.html"
        plan.to_html(page)
        return page.read_bytes()


def cmd_debug(args: argparse.Namespace) -> int:
    """``dagexec debug FILE``: check the bundle (nothing unpickled), say what failed, and
    rerun the function with its recorded arguments in a fresh process, which opens pdb
    post-mortem where it raises (``--no-pdb``: prints the traceback).  The exit code is
    the rerun's: 1 when it failed again, 0 when it no longer fails."""
    import subprocess

    from .._bundle import describe, read_bundle_header
    from .report import printable

    header = read_bundle_header(args.file)  # refuses a bad file before anything runs
    print(printable(describe(header), newlines=True), file=sys.stderr)
    code = "import sys; from dagexec._bundle import debug_main; sys.exit(debug_main(sys.argv[1], sys.argv[2] == '1'))"
    flag = "0" if args.no_pdb else "1"
    return subprocess.run([sys.executable, "-c", code, os.path.abspath(args.file), flag], check=False).returncode
