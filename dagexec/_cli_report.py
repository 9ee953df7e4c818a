"""Moved: what the command line shows of a run lives in ``dagexec/cli/report.py``; the names below stay importable from here."""

from .cli.report import (
    LiveDisplay,
    PlainLog,
    add_row,
    console,
    print_header,
    print_outputs,
    print_summary,
    printable,
    result_to_json,
    selected_count,
)

__all__ = [
    "LiveDisplay",
    "PlainLog",
    "add_row",
    "console",
    "print_header",
    "print_outputs",
    "print_summary",
    "printable",
    "result_to_json",
    "selected_count",
]
