"""The ``dagexec`` command line (also ``python -m dagexec``).

::

    dagexec compile TARGET -o FILE.dagx        save a compiled graph
    dagexec run FILE.dagx|TARGET [options]     run it, show progress and a summary
    dagexec inspect FILE.dagx                  show a file's header, without unpickling (safe on any file)
    dagexec debug FILE.dxbundle [--no-pdb]     rerun a failed trial from its repro bundle, pdb at the error
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

This module holds the parser and ``main``, which picks a command, shows the library's
warnings on stderr and turns the errors above into exit codes.  The rest of the package:
``commands`` (one function per command), ``targets`` (targets, ``-i`` inputs and option
values), ``report`` (progress, the summary, ``--json``, ``inspect``'s table) and
``output`` (where ``--json`` and ``dot -o`` write).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from typing import Any, Final

from .._envelope import SigningKeyError
from .._errors import ArtifactError, GraphError, InputError
from .commands import (
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    FORMATS,
    MAX_PROCESSES_PER_CPU,
    cmd_cache,
    cmd_compile,
    cmd_debug,
    cmd_diff,
    cmd_dot,
    cmd_inspect,
    cmd_run,
)
from .report import printable
from .targets import UsageError, duration, fingerprint, positive_int

__all__ = ["main"]


# -- parser ------------------------------------------------------------------------------
def _parser() -> argparse.ArgumentParser:
    from .._version import __version__

    parser = argparse.ArgumentParser(
        prog="dagexec",
        description="Compile, run, inspect and draw dagexec graphs.",
        epilog="TARGET is module:attr or path/to/file.py:attr (a Graph, a section, a CompiledGraph "
        "or a function returning a Graph). Exit codes: 0 success, 1 a task failed, 2 bad usage, "
        "target, input or artifact.",
    )
    parser.add_argument("--version", action="version", version=f"dagexec {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = _command(sub, "compile", cmd_compile, "compile a graph and save it to a file")
    p.add_argument("target", metavar="TARGET", help="module:attr or path/to/file.py:attr")
    p.add_argument("-o", "--output", metavar="FILE", required=True, help="the file to write (.dagx)")

    _add_run_options(_command(sub, "run", cmd_run, "run a saved file or a target"))

    p = _command(sub, "diff", cmd_diff, "list the nodes added, removed or changed between two plans")
    for name in ("a", "b"):
        p.add_argument(name, metavar=name.upper(), help="a saved .dagx file or module:attr")

    p = _command(sub, "cache", cmd_cache, "list or prune a cache folder")
    p.add_argument("action", choices=("ls", "prune"), help="ls: list the entries; prune: remove entries")
    p.add_argument("dir", metavar="DIR", help="the cache folder")
    p.add_argument(
        "--older-than",
        metavar="AGE",
        type=duration,
        help="prune: only entries unused for longer than AGE (30s, 15m, 12h, 7d, 2w); default: all",
    )

    p = _command(sub, "debug", cmd_debug, "rerun a failed trial from its repro bundle, under pdb")
    p.add_argument("file", metavar="FILE", help="a repro bundle (.dxbundle)")
    p.add_argument("--no-pdb", action="store_true", help="print the traceback instead: exit 1 if it "
                   "still fails, 0 if it no longer does")

    p = _command(sub, "inspect", cmd_inspect, "show a saved file's header without loading its code")
    p.add_argument("file", metavar="FILE", help="a saved .dagx file")

    p = _command(sub, "dot", cmd_dot, "draw a graph as .dot, .svg, .png or an .html page")
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
        choices=tuple(sorted(set(FORMATS.values()))),
        help="the picture's format; default: from OUT's suffix, dot for -",
    )
    return parser


def _command(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], name: str, func: Callable[..., int], help: str
) -> argparse.ArgumentParser:
    """The parser of command ``name``, which ``main`` runs with ``func``."""
    p = sub.add_parser(name, help=help)
    p.set_defaults(func=func)
    return p


def _add_run_options(p: argparse.ArgumentParser) -> None:
    """``run``'s target and options, in the order ``dagexec run --help`` lists them."""
    for flags, options in _RUN_ARGUMENTS:
        if options.get("action") == "append":
            options = {**options, "default": []}  # a list of its own for each parse
        p.add_argument(*flags, **options)


_APPEND: Final = {"action": "append"}
_SWITCH: Final = {"action": "store_true"}
_WITH_CACHE: Final = "with --cache: "

#: ``run``'s arguments: (flags, options of ``add_argument``)
_RUN_ARGUMENTS: Final[tuple[tuple[tuple[str, ...], dict[str, Any]], ...]] = (
    (("target",), {"metavar": "FILE|TARGET", "help": "a saved .dagx file or module:attr"}),
    (("-i", "--input"), {"metavar": "NAME=VALUE", **_APPEND, "help": "a graph input, parsed by its "
        "declared type (JSON for containers); repeat for several"}),
    (("--executor",), {"choices": ("serial", "threads", "loky", "dask", "ray"), "default": "threads",
        "help": "default: threads; dask needs --scheduler; ray joins RAY_ADDRESS, else starts a local Ray"}),
    (("--workers",), {"metavar": "N", "type": positive_int, "help": "number of workers (dask: trials "
        f"in flight; loky: at most {MAX_PROCESSES_PER_CPU} per CPU)"}),
    (("--scheduler",), {"metavar": "ADDR",
        "help": "with --executor dask: the dask scheduler's address, e.g. tcp://host:8786"}),
    (("--only",), {"metavar": "KEY", **_APPEND, "help": "run KEY and what it needs; repeatable"}),
    (("--skip",), {"metavar": "KEY", **_APPEND, "help": "skip KEY and what needs it; repeatable"}),
    (("--cache",), {"metavar": "DIR", "help": "serve unchanged nodes from the cache in DIR, and fill it"}),
    (("--dry-run",), {**_SWITCH, "help": _WITH_CACHE + "say what would run and why, run nothing"}),
    (("--resume",), {**_SWITCH, "help": _WITH_CACHE + "continue the last run of this plan and inputs; "
        "what succeeded does not run again"}),
    (("--json",), {"metavar": "FILE",
        "help": "write the result as JSON to FILE; - writes it to standard output"}),
    (("--events",), {"metavar": "FILE", "help": "write the run's events to FILE as JSON lines, each "
        "flushed as written (docs/observability.md); - writes them to standard output"}),
    (("--report",), {"metavar": "FILE", "help": "write the run report, one HTML page (docs/pictures.md), "
        "to FILE when the run ends, whatever its end: success, failure or Ctrl-C"}),
    (("--report-live",), {**_SWITCH, "help": "with --report: rewrite the page every few seconds while "
        "the run lasts; the open page reloads itself"}),
    (("--no-progress",), {**_SWITCH, "help": "no progress display nor per-node log"}),
    (("--bundles",), {"metavar": "DIR", "help": "write each failed trial to DIR as a repro bundle "
        "(dagexec debug FILE reruns it; docs/debugging.md)"}),
    (("--check-mutation",), {**_SWITCH,
        "help": "fail a trial whose task changed one of its arguments in place (docs/running.md)"}),
    (("--require-signed",), {**_SWITCH,
        "help": "run only a saved file signed with DAGEXEC_KEY (as DAGEXEC_REQUIRE_SIGNED=1 does)"}),
    (("--expect-graph",), {"metavar": "NAME", "help": "refuse a saved file whose graph has another name"}),
    (("--expect-fingerprint",), {"metavar": "HEX", "type": fingerprint,
        "help": "refuse a saved file whose plan has another fingerprint (64 hex digits, see inspect)"}),
)  # fmt: skip


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
