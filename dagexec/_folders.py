"""Opening a folder without following a symbolic link: the one way the cache store
(``dagexec/cache/store.py``) and the run journals (``dagexec/cache/journal.py``) reach the
folders below a store's own.

Each folder is opened with ``O_DIRECTORY | O_NOFOLLOW`` relative to its parent's
descriptor (or by its path, where the last part alone must not be a link); the files
inside are then opened relative to the folder's descriptor by
``_envelope.open_regular``, which refuses links and anything but a regular file.  So
a link planted anywhere below the store cannot send a read, a write or a removal
outside it.  Nothing here imports the rest of dagexec.
"""

from __future__ import annotations

import contextlib
import errno
import os

__all__ = ["FolderRefused", "open_folder"]

_DIR_FLAGS = (
    os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
)
_NOT_FOLLOWED = (errno.ELOOP, errno.ENOTDIR)  # a link (or a file) where a folder must be


class FolderRefused(OSError):
    """A folder below the store cannot be opened without following a link (the message
    says why: a symbolic link or a file stands there, or opening it failed)."""


def open_folder(name: str, dir_fd: int | None = None, *, create: bool = False, what: str = "") -> int:
    """A descriptor of the folder ``name`` (relative to ``dir_fd``), never reached through
    a symbolic link; made first, when missing, if ``create``.  The one way the store and
    its journals open a folder below the store's own.

    Raises:
        FileNotFoundError: when it, or a folder above it, is missing (and not ``create``).
        FolderRefused: when it cannot be opened, naming it as ``what`` (default ``name``).
        OSError: when it cannot be made.
    """
    if create:
        with contextlib.suppress(FileExistsError):
            if dir_fd is None:
                os.makedirs(name, exist_ok=True)
            else:
                os.mkdir(name, dir_fd=dir_fd)
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
    except FileNotFoundError:
        raise
    except OSError as exc:
        if exc.errno in _NOT_FOLLOWED:
            why = "is not a folder but a symbolic link or a file (the store never follows links)"
        else:
            why = f"cannot be opened: {exc.strerror or exc}"
        raise FolderRefused(f"{what or name} {why}") from exc
