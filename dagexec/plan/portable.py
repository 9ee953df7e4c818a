"""What travels by value and what by reference when a plan is saved (DESIGN §6).

A "user module" is one whose file is neither in the standard library nor under a
``site-packages``/``dist-packages`` folder, and is not dagexec: its code is pickled
by value (``cloudpickle.register_pickle_by_value`` while saving).  Everything else
travels by reference; the modules of installed distributions met while pickling
become the artifact's ``requirements``, checked when it is loaded.
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import pickle
import site
import sys
import sysconfig
import threading
import types
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .compiled import CompiledGraph

__all__ = ["INSTALLED", "OTHER", "STDLIB", "USER", "check_requirements", "culprit", "dump", "module_kind",
           "requirements", "user_modules_by_value"]  # fmt: skip


# -- where a module comes from ----------------------------------------------------------

USER, INSTALLED, STDLIB, OTHER = "user", "installed", "stdlib", "other"


@functools.lru_cache(maxsize=1)
def _roots() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Real paths of the site-packages folders and of the standard library."""
    installed: set[str] = set()
    with contextlib.suppress(Exception):
        installed.update(site.getsitepackages())
    with contextlib.suppress(Exception):
        installed.add(site.getusersitepackages())
    paths = sysconfig.get_paths()
    installed.update(p for p in (paths.get("purelib"), paths.get("platlib")) if p)
    stdlib = {p for p in (paths.get("stdlib"), paths.get("platstdlib"), os.path.dirname(os.__file__)) if p}
    return _norm(installed), _norm(stdlib)


def _norm(paths: set[str]) -> tuple[str, ...]:
    return tuple(sorted({os.path.join(os.path.realpath(p), "") for p in paths}))


_kinds: dict[tuple[str, str | None], str] = {}


def module_kind(name: str, module: types.ModuleType | None = None) -> str:
    """``"user"``, ``"installed"``, ``"stdlib"`` or ``"other"`` (dagexec, built-in, no file)."""
    if module is None:
        module = sys.modules.get(name)
    file = getattr(module, "__file__", None) if module is not None else None
    cache_key = (name, file if isinstance(file, str) else None)
    kind = _kinds.get(cache_key)
    if kind is None:
        kind = _classify(name, cache_key[1])
        _kinds[cache_key] = kind
    return kind


def _classify(name: str, file: str | None) -> str:
    if name == "dagexec" or name.startswith("dagexec.") or name.startswith("__") or file is None:
        # __main__ (and __mp_main__) travel by value through cloudpickle already
        return OTHER
    real = os.path.realpath(file)
    parts = set(real.split(os.sep))
    installed, stdlib = _roots()
    if "site-packages" in parts or "dist-packages" in parts or real.startswith(installed):
        return INSTALLED
    if real.startswith(stdlib):
        return STDLIB
    return USER


@functools.lru_cache(maxsize=1)
def _top_level_distributions() -> dict[str, list[str]]:
    import importlib.metadata

    return dict(importlib.metadata.packages_distributions())


def _distribution_of(name: str) -> str | None:
    """The installed distribution that provides module ``name``, or None."""
    import importlib.metadata

    candidates = _top_level_distributions().get(name.partition(".")[0], [])
    if len(candidates) <= 1:
        return candidates[0] if candidates else None
    # a namespace package shared by several distributions: find the one with the file
    file = getattr(sys.modules.get(name), "__file__", None)
    real = os.path.realpath(file) if isinstance(file, str) else None
    for dist_name in candidates:
        with contextlib.suppress(Exception):
            dist = importlib.metadata.distribution(dist_name)
            for f in dist.files or ():
                if real is not None and os.path.realpath(str(dist.locate_file(f))) == real:
                    return dist_name
    return candidates[0]


def requirements(modules: set[str]) -> list[dict[str, Any]]:
    """One entry per installed distribution the pickled modules come from."""
    import importlib.metadata

    found: dict[str, dict[str, Any]] = {}
    for name in sorted(modules):
        if name not in sys.modules or module_kind(name) != INSTALLED:
            continue
        if name.partition(".")[0] == "cloudpickle":
            continue  # its version is a header field of its own
        dist = _distribution_of(name)
        entry_key = dist or name.partition(".")[0]
        entry = found.get(entry_key)
        if entry is None:
            version = None
            if dist is not None:
                with contextlib.suppress(Exception):
                    version = importlib.metadata.version(dist)
            entry = found[entry_key] = {"distribution": dist, "version": version, "modules": []}
        top = name.partition(".")[0]
        if top not in entry["modules"]:
            entry["modules"].append(top)
    return [found[k] for k in sorted(found)]


def check_requirements(header: dict[str, Any]) -> tuple[list[str], list[str]]:
    """What of ``header``'s requirements this Python lacks, and what it has in another version.

    Each as ``"dist==version (module m)"`` / ``"dist 1.0 (saved with 1.1)"``.  Looks at
    installed metadata and module specs only; imports nothing.
    """
    import importlib.metadata
    import importlib.util

    missing, different = [], []
    for req in header.get("requirements") or ():
        dist, version, mods = req.get("distribution"), req.get("version"), req.get("modules") or []
        label = f"{dist}=={version}" if dist and version else str(dist or ", ".join(mods))
        try:
            if dist is not None:
                installed = importlib.metadata.version(dist)
                if version and installed != version:
                    different.append(f"{dist} {installed} (saved with {version})")
            if any(importlib.util.find_spec(m) is None for m in mods):
                raise ModuleNotFoundError
        except (importlib.metadata.PackageNotFoundError, ModuleNotFoundError, ValueError):
            missing.append(f"{label} (module {', '.join(mods)})" if mods else label)
    return missing, different


# -- pickling --------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _pickler_class() -> Any:
    import cloudpickle

    class _Pickler(cloudpickle.Pickler):  # type: ignore[misc]
        """cloudpickle's pickler, noting the module of each class, function and module it meets."""

        def __init__(self, file: io.BytesIO, modules: set[str]) -> None:
            super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
            self._modules = modules
            self._types: set[type] = set()

        def reducer_override(self, obj: Any) -> Any:
            t = type(obj)
            if t in self._types:  # an instance of a class already noted
                return super().reducer_override(obj)
            if t is types.ModuleType:
                self._modules.add(obj.__name__)
            elif t is types.FunctionType or t is types.BuiltinFunctionType or issubclass(t, type):
                m = getattr(obj, "__module__", None)
                if isinstance(m, str):
                    self._modules.add(m)
            else:
                self._types.add(t)
                self._modules.add(t.__module__)
            return super().reducer_override(obj)

    return _Pickler


def dump(obj: Any, modules: set[str]) -> bytes:
    buf = io.BytesIO()
    _pickler_class()(buf, modules).dump(obj)
    return buf.getvalue()


# register_pickle_by_value is process-wide: one save at a time changes it
_registry_lock = threading.Lock()


@contextlib.contextmanager
def user_modules_by_value() -> Any:
    """Register every user module by value for the block; restore the registry after."""
    import cloudpickle

    with _registry_lock:
        already = set(cloudpickle.list_registry_pickle_by_value())
        added: list[str] = []
        tracked = _tracked_classes()
        try:
            for name, module in list(sys.modules.items()):
                if (
                    isinstance(module, types.ModuleType)
                    and getattr(module, "__name__", None) == name
                    and name not in already
                    and module_kind(name, module) == USER
                ):
                    with contextlib.suppress(ValueError):
                        cloudpickle.register_pickle_by_value(module)
                        added.append(name)
            yield
        finally:
            _forget_classes(tracked, set(added))
            for name in added:
                with contextlib.suppress(ValueError):
                    cloudpickle.unregister_pickle_by_value(sys.modules.get(name) or types.ModuleType(name))


def _tracked_classes() -> set[type]:
    from cloudpickle import cloudpickle as cp

    with cp._DYNAMIC_CLASS_TRACKER_LOCK:
        return set(cp._DYNAMIC_CLASS_TRACKER_BY_CLASS.keys())


def _forget_classes(before: set[type], modules: set[str]) -> None:
    """Untrack the module-level classes that went by value only because of ``modules``.

    cloudpickle tracks each class it pickles by value, and unpickling such a class in
    the same process sets the unpickled attributes on the tracked original: loading an
    artifact in the process that saved it would then patch the user's classes.
    Untracked, they load as new classes, as they do in any other process.
    """
    from cloudpickle import cloudpickle as cp

    with cp._DYNAMIC_CLASS_TRACKER_LOCK:
        by_class, by_id = cp._DYNAMIC_CLASS_TRACKER_BY_CLASS, cp._DYNAMIC_CLASS_TRACKER_BY_ID
        for cls, tracker_id in list(by_class.items()):
            if cls not in before and getattr(cls, "__module__", None) in modules:
                del by_class[cls]
                by_id.pop(tracker_id, None)


def culprit(plan: CompiledGraph) -> str | None:
    """The first node whose task or arguments fail to pickle, as ``node 'k'``."""
    for idx, key in enumerate(plan._keys):
        try:
            dump((plan._specs[idx], plan._args[idx], plan._kwargs[idx]), set())
        except Exception:
            return f"node {key!r}"
    return None
