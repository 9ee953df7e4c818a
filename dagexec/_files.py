"""Writing a file atomically: the one way saved plans, pages and cache entries are written.

A file ``name`` is written as ``.<name>.<12 hex digits>.tmp`` beside it, then renamed
over it.  A writer killed between the two (``kill -9``, a power cut) leaves its
temporary file behind: :func:`remove_stale_temps` removes those of one target that
nobody has written to for :data:`STALE_AFTER` seconds (saving a plan calls it), and
``CacheStore.prune`` those of the cache.  Nothing here imports the rest of dagexec.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
import stat
import time
from collections.abc import Sequence

__all__ = ["STALE_AFTER", "remove_stale_temps", "temp_pattern", "write_atomic"]

logger = logging.getLogger(__name__)

# A temporary file is stale once unchanged this long: a live writer changes it with
# every write, and no save or cache write pauses for minutes between two.
STALE_AFTER = 600.0


def temp_pattern(name: str) -> re.Pattern[str]:
    """The names of the temporary files :func:`write_atomic` makes for ``name``."""
    return re.compile(rf"\.{re.escape(name)}\.[0-9a-f]{{12}}\.tmp")


def write_atomic(
    path: str | os.PathLike[str],
    parts: Sequence[bytes],
    durable: bool = False,
    dir_fd: int | None = None,
) -> None:
    """Write ``parts`` to a temporary file beside ``path`` and rename it over ``path``.

    A reader sees the old file or the whole new one, never a part; on any failure the
    temporary file is removed and the old file is left as it was.  With ``durable``,
    the file and then its folder are fsynced, so the new file survives a power cut
    (saved plans); without, it costs no fsync (pages, cache entries, whose damage is
    detected when they are read).  With ``dir_fd``, ``path`` is a name in that open
    folder, and no symbolic link is followed to reach it (the cache store).

    Raises:
        OSError: when the file cannot be written; the old file is left as it was.
    """
    path = os.fspath(path)
    if dir_fd is None:
        folder = os.path.dirname(os.path.abspath(path))
        tmp = os.path.join(folder, f".{os.path.basename(path)}.{secrets.token_hex(6)}.tmp")
    else:
        tmp = f".{path}.{secrets.token_hex(6)}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0) | getattr(os, "O_NOFOLLOW", 0)
    # mode 0o666 lets the umask decide, as for any file the user creates
    fd = os.open(tmp, flags, 0o666, dir_fd=dir_fd)
    try:
        with open(fd, "wb", closefd=True) as f:
            for part in parts:
                f.write(part)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=dir_fd)
        raise
    if durable:
        _sync_folder(folder if dir_fd is None else None, dir_fd)


def _sync_folder(folder: str | None, dir_fd: int | None) -> None:
    """Make a rename in ``folder`` (or the open folder ``dir_fd``) durable."""
    if dir_fd is not None:
        with contextlib.suppress(OSError):
            os.fsync(dir_fd)
        return
    if folder is None or not hasattr(os, "O_DIRECTORY"):
        return
    with contextlib.suppress(OSError):
        dfd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def remove_stale_temps(path: str | os.PathLike[str], older_than: float = STALE_AFTER) -> list[str]:
    """Remove the temporary files that killed writers of ``path`` left beside it.

    Only regular files named as :func:`write_atomic` names ``path``'s temporary files,
    and unchanged for more than ``older_than`` seconds, are removed: never another
    target's, never a writer's at work, never a symbolic link.  Failures are ignored
    (another process may remove the same file first).

    Returns:
        The names removed.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    pattern = temp_pattern(os.path.basename(path))
    now = time.time()
    removed = []
    try:
        names = [e.name for e in os.scandir(folder) if pattern.fullmatch(e.name)]
    except OSError:
        return []
    for name in names:
        where = os.path.join(folder, name)
        with contextlib.suppress(OSError):
            st = os.stat(where, follow_symlinks=False)
            if stat.S_ISREG(st.st_mode) and now - st.st_mtime > older_than:
                os.unlink(where)
                removed.append(name)
                logger.info("removed %s, left by a writer that was stopped", where)
    return removed
