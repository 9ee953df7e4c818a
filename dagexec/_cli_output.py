"""Moved: where the command line writes a document lives in ``dagexec/cli/output.py``; the names below stay importable from here."""

from .cli.output import STDOUT, check_destination, stdout_for_document, write_document

__all__ = ["STDOUT", "check_destination", "stdout_for_document", "write_document"]
