"""Where the user's code called into dagexec: ``path/to/file.py:14``.

A frame's line number is worked out by scanning its code's line table, which costs
more than the rest of recording a task call, so each place is looked up once: per
code object and offset, and for the last code seen at each offset (a graph built in a
loop asks for the same place again and again and gets the same tuple back).
"""

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


# id(code) -> (code, {f_lasti: (filename, line)}), or (code, None) for dagexec's own code.
# A frame's line number is worked out by scanning its code's line table, which cost more
# than recording the rest of a task call; a graph built in a loop asks again and again
# for the same few places, and gets the same tuple back each time.  The code is held
# so that its id is not reused while the entry lives.
_by_code: dict[int, tuple[Any, dict[int, tuple[str, int]] | None]] = {}
_CODES_MAX = 1024  # codes remembered before the table starts again


def frame_site(f: Any) -> tuple[str, int] | None:
    """``(filename, line)`` where frame ``f`` is, or None when ``f`` runs dagexec's own code."""
    code = f.f_code
    hit = _by_code.get(id(code))
    if hit is None or hit[0] is not code:
        if len(_by_code) >= _CODES_MAX:
            _by_code.clear()
        hit = _by_code[id(code)] = (code, None if _is_internal(code.co_filename) else {})
    lines = hit[1]
    if lines is None:
        return None
    lasti = f.f_lasti
    site = lines.get(lasti)
    if site is None:
        site = lines[lasti] = (code.co_filename, f.f_lineno)
    return site


# f_lasti -> (code, (filename, line)): the place last asked for at that offset, the code
# beside it, so that a call recorded again and again from one place (a graph built in a
# loop) finds its site with one lookup (:func:`site_at`).
sites_at: dict[int, tuple[Any, tuple[str, int]]] = {}


def site_at(f: Any) -> tuple[str, int] | None:
    """:func:`frame_site` of ``f``, remembered in :data:`sites_at` when ``f`` is the user's."""
    site = frame_site(f)
    if site is not None:
        if len(sites_at) >= _CODES_MAX:
            sites_at.clear()
        sites_at[f.f_lasti] = (f.f_code, site)
    return site


def user_frame(skip: int = 0) -> tuple[str, int]:
    """The (filename, line) of the innermost frame outside dagexec.

    Args:
        skip: frames above the caller known to be dagexec's own (a shortcut).
    """
    f: Any = sys._getframe(1 + skip)
    while f is not None:
        site = frame_site(f)
        if site is not None:
            return site
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
