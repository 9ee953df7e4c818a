"""Code that travels by value, for backends whose workers do not share the master's
path (a Ray cluster): the user's module goes with each task's function.

:func:`by_value` has cloudpickle send a task's module by value while a backend
pickles (only then: another backend in the same process, loky, goes on sending it by
reference); :func:`restore_files` gives the functions that arrive that way their
source file back in the worker (cloudpickle names it ``<dynamic-code>``), so that
remote tracebacks show the file and its lines as they do for code sent by reference.
:func:`~._transport.load_spec` calls it for every function it unpickles.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import sysconfig
import types
from collections.abc import Iterator
from typing import Any

from ..plan.tokens import in_file

__all__ = ["by_value", "restore_files", "users_module"]

#: where the modules that travel by reference live: the standard library and installed packages
_INSTALLED = tuple({sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")})
_DYNAMIC = "<dynamic-code>"


@functools.lru_cache(maxsize=1024)
def users_module(fn: Any) -> types.ModuleType | None:
    """``fn``'s module where it is the user's (not the standard library's, an installed
    package's, dagexec's or ``__main__``, which cloudpickle sends by value already); else None."""
    module = sys.modules.get(getattr(fn, "__module__", "") or "")
    path = getattr(module, "__file__", None)
    if module is None or path is None or module.__name__ == "__main__" or module.__name__.startswith("dagexec"):
        return None
    return None if os.path.abspath(path).startswith(_INSTALLED) else module


@contextlib.contextmanager
def by_value(fn: Any) -> Iterator[None]:
    """While it lasts, cloudpickle sends ``fn``'s module by value where it is the user's
    (a module the user registered already stays registered)."""
    import cloudpickle

    module = users_module(fn)
    if module is None or module.__name__ in cloudpickle.list_registry_pickle_by_value():
        yield
        return
    cloudpickle.register_pickle_by_value(module)
    try:
        yield
    finally:
        cloudpickle.unregister_pickle_by_value(module)


def restore_files(fn: Any) -> None:
    """Give ``fn``, and the functions of its module that came by value with it, their
    source file back (the module's ``__file__``, which cloudpickle sends along)."""
    code = getattr(fn, "__code__", None)
    scope: dict[str, Any] = getattr(fn, "__globals__", None) or {}
    path = scope.get("__file__")
    if code is None or code.co_filename != _DYNAMIC or not isinstance(path, str):
        return  # by reference, or given its file already
    for f in [fn, *scope.values()]:
        if isinstance(f, types.FunctionType) and f.__globals__ is scope and f.__code__.co_filename == _DYNAMIC:
            f.__code__ = in_file(f.__code__, path)
