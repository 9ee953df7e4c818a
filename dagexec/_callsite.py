"""Where the user's code called into dagexec: ``path/to/file.py:14``."""

from __future__ import annotations

import os
import sys
from typing import Any

_PKG_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
_SKIP_PREFIXES: tuple[str, ...] = (_PKG_DIR,)
try:  # wrapt's pure-Python proxies add frames of their own
    import wrapt as _wrapt

    _SKIP_PREFIXES += (os.path.dirname(os.path.abspath(_wrapt.__file__)) + os.sep,)
except ImportError:  # pragma: no cover
    pass

_skip_cache: dict[str, bool] = {}


def _is_internal(filename: str) -> bool:
    hit = _skip_cache.get(filename)
    if hit is None:
        hit = os.path.abspath(filename).startswith(_SKIP_PREFIXES)
        _skip_cache[filename] = hit
    return hit


def user_frame(skip: int = 0) -> tuple[str, int]:
    """The (filename, line) of the innermost frame outside dagexec.

    Args:
        skip: frames above the caller known to be dagexec's own (a shortcut).
    """
    f: Any = sys._getframe(1 + skip)
    cache = _skip_cache
    while f is not None:
        filename = f.f_code.co_filename
        hit = cache.get(filename)
        if hit is None:
            hit = _is_internal(filename)
        if not hit:
            return filename, f.f_lineno
        f = f.f_back
    return "<unknown>", 0


def format_site(site: tuple[str, int] | None) -> str:
    """``path/to/file.py:14``, relative to the working directory when under it."""
    if site is None:
        return "<unknown>"
    filename, line = site
    if filename.startswith(("<", "[")):
        return f"{filename}:{line}"
    try:
        rel = os.path.relpath(filename)
    except ValueError:  # another drive on Windows
        rel = filename
    if rel.startswith(".." + os.sep) or rel == "..":
        rel = filename
    return f"{rel}:{line}"
