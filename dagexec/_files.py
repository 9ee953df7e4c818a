"""Writing a file atomically: the one way saved plans, pages and cache entries are written."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Sequence

__all__ = ["write_atomic"]


def write_atomic(path: str | os.PathLike[str], parts: Sequence[bytes], durable: bool = False) -> None:
    """Write ``parts`` to a temporary file beside ``path`` and rename it over ``path``.

    A reader sees the old file or the whole new one, never a part; on any failure the
    temporary file is removed and the old file is left as it was.  With ``durable``,
    the file and then its folder are fsynced, so the new file survives a power cut
    (saved plans); without, it costs no fsync (pages, cache entries, whose damage is
    detected when they are read).
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{secrets.token_hex(6)}.tmp")
    # mode 0o666 lets the umask decide, as for any file the user creates
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with open(fd, "wb", closefd=True) as f:
            for part in parts:
                f.write(part)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if durable and hasattr(os, "O_DIRECTORY"):
        # make the rename itself durable
        with contextlib.suppress(OSError):
            dfd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
