"""Where the command line writes a document (``run --json``, ``dot -o``): a file, or
standard output for ``-`` (DESIGN §8, §12 "Standard streams").

A destination is checked before anything runs (:func:`check_destination`): a folder,
a path whose folder is missing, or a folder where no file can be made, is bad usage
(exit code 2), not a failure found after the run and its side effects.  The check
makes and removes one empty temporary file in the folder, as the write at the end
does (:func:`write_document`: a temporary file renamed over the destination).

With ``-`` standard output holds the document alone: :func:`stdout_for_document`
keeps a copy of descriptor 1 for it and points descriptor 1 at standard error
meanwhile, so whatever else would reach standard output (the ``name = value`` lines,
a task's ``print``, a worker process, a command) goes to standard error.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from .._files import write_atomic
from .targets import UsageError

__all__ = ["STDOUT", "check_destination", "stdout_for_document", "write_document"]

STDOUT = "-"


def check_destination(text: str, option: str = "") -> None:
    """Refuse a destination that the command could not write at the end.

    Args:
        text: the path given, or ``-`` (standard output: always fine).
        option: the option's name for the message, e.g. ``"--json"``.

    Raises:
        UsageError: for a folder, a path whose folder is missing, or a folder where no
            file can be made.
    """
    if text == STDOUT:
        return
    what = f"{option} {text!r}" if option else repr(text)
    path = Path(text)
    if path.is_dir() or text.endswith(("/", os.sep)):
        raise UsageError(f"cannot write {what}: it is a folder")
    folder = path.parent
    if not folder.is_dir():
        raise UsageError(f"cannot write {what}: no such folder {str(folder)!r}")
    try:
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise UsageError(
            f"cannot write {what}: no file can be made in the folder {str(folder)!r} ({exc.strerror or exc})"
        ) from None
    os.close(fd)
    os.unlink(probe)


@contextlib.contextmanager
def stdout_for_document(wanted: bool) -> Iterator[BinaryIO | None]:
    """With ``wanted``: a binary stream on standard output for the one document, while
    descriptor 1 writes to standard error; without: None, nothing changed.

    Descriptor 1 is restored when the block ends, whatever ends it.
    """
    if not wanted:
        yield None
        return
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        with os.fdopen(os.dup(saved), "wb") as document:
            yield document
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def write_document(text: str, data: bytes, document: BinaryIO | None) -> None:
    """Write ``data`` to the destination ``text``: ``document`` for ``-``, else the file,
    atomically.

    Raises:
        OSError: when the file cannot be written.
    """
    if text == STDOUT:
        assert document is not None, "stdout_for_document(True) gives the stream for '-'"
        document.write(data)
        document.flush()
    else:
        write_atomic(text, [data])
