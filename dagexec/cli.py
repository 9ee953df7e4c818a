"""The ``dagexec`` command line (also ``python -m dagexec``).

::

    dagexec compile TARGET -o FILE.dagx        save a compiled graph
    dagexec run FILE.dagx|TARGET [options]     run it, show progress and a summary
    dagexec inspect FILE.dagx                  show a file's header, without unpickling (safe on any file)
    dagexec dot FILE.dagx|TARGET -o OUT        draw it (.dot, .svg, .png, .html)
    dagexec diff A B                           nodes added, removed or changed (exit 1 if any)
    dagexec cache ls|prune DIR                 list or prune a cache folder

TARGET is ``module:attr`` or ``path/to/file.py:attr`` naming a Graph, a section, a
CompiledGraph or a function (no arguments) returning a Graph or a CompiledGraph.

Exit codes: 0 success, 1 a task failed, 2 bad usage, a bad target, bad inputs or a bad
artifact (one ``dagexec: error: ...`` message on stderr, never a traceback), 130 on
Ctrl-C. Output values go to stdout; progress, the summary and errors go to stderr.

What the command prints from a file (a header, a cache entry's meta, a message quoting
either) goes through ``printable``: a hostile file cannot write escape sequences to the
terminal.  ``run --require-signed`` (or ``DAGEXEC_REQUIRE_SIGNED``) and
``--expect-graph``/``--expect-fingerprint`` are checked by ``load_plan`` before any code
of the file or target runs.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
from pathlib import Path
from typing import Any

from ._cli_output import STDOUT, check_destination, stdout_for_document, write_document
from ._cli_report import (
    LiveDisplay,
    PlainLog,
    print_header,
    print_outputs,
    print_summary,
    printable,
    result_to_json,
    selected_count,
)
from ._cli_targets import (
    UsageError,
    age,
    duration,
    fingerprint,
    load_plan,
    parse_inputs,
    positive_int,
    resolve_target,
)
from ._envelope import SigningKeyError
from ._errors import ArtifactError, GraphError, InputError

__all__ = ["main"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

#: ``--workers`` for loky is cut to this many processes per CPU (with a warning)
MAX_PROCESSES_PER_CPU = 4

logger = logging.getLogger(__name__)


# -- commands ----------------------------------------------------------------------------
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
    from .cache.store import key_problem

    if args.cache is not None and (why := key_problem()) is not None:
        raise UsageError(f"--cache {args.cache!r}: {why}")
    if args.json is not None:
        check_destination(args.json, "--json")
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


def _cmd_run(args: argparse.Namespace) -> int:
    _check_run_usage(args)
    to_stdout = args.json == STDOUT
    with stdout_for_document(to_stdout) as document:
        plan = load_plan(args.target, args.require_signed, args.expect_graph, args.expect_fingerprint)
        inputs = parse_inputs(plan, args.input)
        if args.dry_run:
            return _dry_run(plan, inputs, args)
        callbacks: list[Any] = []
        tty = sys.stderr.isatty()
        if not args.no_progress:
            if args.cache is not None:
                total = _would_run(plan, inputs, args)
            else:
                total = selected_count(plan, args.only, args.skip)
            callbacks.append(LiveDisplay(total) if tty else PlainLog(total))
        result = plan.run(
            inputs=inputs,
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
        )
        if args.json is not None:
            data = json.dumps(result_to_json(result), indent=2) + "\n"
            write_document(args.json, data.encode("utf-8"), document)
        print_summary(result, color=tty)
        print_outputs(result, sys.stderr if to_stdout else sys.stdout)
    return EXIT_OK if result.ok else EXIT_FAILED


def _would_run(plan: Any, inputs: dict[str, Any], args: argparse.Namespace) -> int:
    """How many nodes a run with ``--cache`` would run (nothing is loaded)."""
    from .cache.decide import decide, open_store
    from .cache.keys import node_keys

    values, selected, kept = plan._input_values(inputs, {}, args.only or None, args.skip or None)
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


def _cmd_compile(args: argparse.Namespace) -> int:
    from ._artifact import read_header

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


def _cmd_inspect(args: argparse.Namespace) -> int:
    from ._artifact import read_header

    path = Path(args.file)
    if not path.is_file():
        raise UsageError(f"no such file {args.file!r}")
    print_header(path, read_header(path))
    return EXIT_OK


def _cmd_diff(args: argparse.Namespace) -> int:
    from .cache.diff import plan_diff

    a, b = load_plan(args.a), load_plan(args.b)
    changes = plan_diff(a, b)
    width = max((len(key) for _, key, _ in changes), default=0)
    for change, key, details in changes:
        print(f"{change:<8} {key:<{width}}  {'; '.join(details)}".rstrip())
    if not changes:
        print(f"no differences: {len(b)} nodes")
        return EXIT_OK
    return EXIT_FAILED


def _cmd_cache(args: argparse.Namespace) -> int:
    import time

    from .cache.store import CacheStore

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


_FORMATS = {".dot": "dot", ".gv": "dot", ".svg": "svg", ".png": "png", ".html": "html"}


def _cmd_dot(args: argparse.Namespace) -> int:
    fmt = args.format or (_FORMATS.get(Path(args.output).suffix.lower()) if args.output != STDOUT else "dot")
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


# -- parser ------------------------------------------------------------------------------
def _parser() -> argparse.ArgumentParser:
    from ._version import __version__

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
        "--executor",
        choices=("serial", "threads", "loky", "dask"),
        default="threads",
        help="default: threads; dask needs --scheduler",
    )
    p.add_argument(
        "--workers",
        metavar="N",
        type=positive_int,
        help=f"number of workers (dask: trials in flight; loky: at most {MAX_PROCESSES_PER_CPU} per CPU)",
    )
    p.add_argument(
        "--scheduler",
        metavar="ADDR",
        help="with --executor dask: the dask scheduler's address, e.g. tcp://host:8786",
    )
    p.add_argument(
        "--only", metavar="KEY", action="append", default=[], help="run KEY and what it needs; repeatable"
    )
    p.add_argument(
        "--skip", metavar="KEY", action="append", default=[], help="skip KEY and what needs it; repeatable"
    )
    p.add_argument("--cache", metavar="DIR", help="serve unchanged nodes from the cache in DIR, and fill it")
    p.add_argument(
        "--dry-run", action="store_true", help="with --cache: say what would run and why, run nothing"
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="with --cache: continue the last run of this plan and inputs; what succeeded does not run again",
    )
    p.add_argument(
        "--json", metavar="FILE", help="write the result as JSON to FILE; - writes it to standard output"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress display nor per-node log")
    p.add_argument(
        "--check-mutation",
        action="store_true",
        help="fail a trial whose task changed one of its arguments in place (docs/running.md)",
    )
    p.add_argument(
        "--require-signed",
        action="store_true",
        help="run only a saved file signed with DAGEXEC_KEY (as DAGEXEC_REQUIRE_SIGNED=1 does)",
    )
    p.add_argument("--expect-graph", metavar="NAME", help="refuse a saved file whose graph has another name")
    p.add_argument(
        "--expect-fingerprint",
        metavar="HEX",
        type=fingerprint,
        help="refuse a saved file whose plan has another fingerprint (64 hex digits, see inspect)",
    )
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("diff", help="list the nodes added, removed or changed between two plans")
    p.add_argument("a", metavar="A", help="a saved .dagx file or module:attr")
    p.add_argument("b", metavar="B", help="a saved .dagx file or module:attr")
    p.set_defaults(func=_cmd_diff)

    p = sub.add_parser("cache", help="list or prune a cache folder")
    p.add_argument("action", choices=("ls", "prune"), help="ls: list the entries; prune: remove entries")
    p.add_argument("dir", metavar="DIR", help="the cache folder")
    p.add_argument(
        "--older-than",
        metavar="AGE",
        type=duration,
        help="prune: only entries unused for longer than AGE (30s, 15m, 12h, 7d, 2w); default: all",
    )
    p.set_defaults(func=_cmd_cache)

    p = sub.add_parser("inspect", help="show a saved file's header without loading its code")
    p.add_argument("file", metavar="FILE", help="a saved .dagx file")
    p.set_defaults(func=_cmd_inspect)

    p = sub.add_parser("dot", help="draw a graph as .dot, .svg, .png or an .html page")
    p.add_argument("target", metavar="FILE|TARGET", help="a saved .dagx file or module:attr")
    p.add_argument(
        "-o",
        "--output",
        metavar="OUT",
        required=True,
        help="OUT.dot, OUT.svg, OUT.png or OUT.html; - writes to standard output",
    )
    p.add_argument(
        "--format",
        choices=tuple(sorted(set(_FORMATS.values()))),
        help="the picture's format; default: from OUT's suffix, dot for -",
    )
    p.set_defaults(func=_cmd_dot)
    return parser


class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        text = f"dagexec: {record.levelname.lower()}: {record.getMessage()}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return printable(text, newlines=True)


def _not_a_node_failure(record: logging.LogRecord) -> bool:
    # the per-node log, the live display and the summary already report failed trials
    return not (
        record.name in ("dagexec.engine", "dagexec._engine") and str(record.msg).startswith("node %r")
    )


def _error(message: str) -> None:
    # messages may quote a hostile file: its escape sequences never reach the terminal
    sys.stderr.write(f"dagexec: error: {printable(message, newlines=True)}\n")
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
    except (UsageError, ArtifactError, GraphError, InputError, SigningKeyError) as exc:
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
