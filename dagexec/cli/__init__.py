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

from .._envelope import SigningKeyError
from .._errors import ArtifactError, GraphError, InputError
from .commands import (
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    FORMATS,
    MAX_PROCESSES_PER_CPU,
    cmd_cache,
    cmd_compile,
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

    p = sub.add_parser("compile", help="compile a graph and save it to a file")
    p.add_argument("target", metavar="TARGET", help="module:attr or path/to/file.py:attr")
    p.add_argument("-o", "--output", metavar="FILE", required=True, help="the file to write (.dagx)")
    p.set_defaults(func=cmd_compile)

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
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("diff", help="list the nodes added, removed or changed between two plans")
    p.add_argument("a", metavar="A", help="a saved .dagx file or module:attr")
    p.add_argument("b", metavar="B", help="a saved .dagx file or module:attr")
    p.set_defaults(func=cmd_diff)

    p = sub.add_parser("cache", help="list or prune a cache folder")
    p.add_argument("action", choices=("ls", "prune"), help="ls: list the entries; prune: remove entries")
    p.add_argument("dir", metavar="DIR", help="the cache folder")
    p.add_argument(
        "--older-than",
        metavar="AGE",
        type=duration,
        help="prune: only entries unused for longer than AGE (30s, 15m, 12h, 7d, 2w); default: all",
    )
    p.set_defaults(func=cmd_cache)

    p = sub.add_parser("inspect", help="show a saved file's header without loading its code")
    p.add_argument("file", metavar="FILE", help="a saved .dagx file")
    p.set_defaults(func=cmd_inspect)

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
        choices=tuple(sorted(set(FORMATS.values()))),
        help="the picture's format; default: from OUT's suffix, dot for -",
    )
    p.set_defaults(func=cmd_dot)
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
