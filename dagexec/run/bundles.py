"""``run(bundles=...)``: a repro bundle for each failed trial's last attempt (DESIGN §14).

The loop calls :meth:`BundleWriter.write` from its one failure path (``Loop.failed``),
once a trial has failed for good (no retry follows), on every executor.  The
arguments are the unit's own, filled in from the loop's values as its trial's were
(:func:`~.values.call_values`); the failing frames' locals come with the exception
from where it was raised (``__dagexec_locals__``, :func:`.worker.failing_locals`).
What the master does not hold is named and replaced: a value kept on a worker is
fetched, a fused chain's input (kept in its worker) and a stream fed item by item are
not there to write.  Writing costs nothing until a trial has failed for good; a
bundle that cannot be written is logged, and the run goes on.
"""

from __future__ import annotations

import inspect
import logging
import os
from typing import TYPE_CHECKING, Any

from .._bundle import CacheRef, pack_arguments, write_bundle
from .._envelope import resolve_key
from .._state import Trial
from .protocol import FEED, LINK, Remote
from .state import MEMBER, RELEASED
from .values import call_values, fetched

if TYPE_CHECKING:
    from .loop import Loop

logger = logging.getLogger("dagexec.engine")

__all__ = ["BundleWriter"]

#: what stands in a unit's arguments instead of a value the master does not hold
_ABSENT = {
    id(LINK): "was made in the same worker by the node before it (a fused chain) and not sent back",
    id(FEED): "is a stream fed item by item, whose items were not kept",
    id(RELEASED): "was released before the trial failed",
}


class BundleWriter:
    """Writes the run's bundles into ``folder``, signed with ``DAGEXEC_KEY`` when set."""

    def __init__(self, folder: str | os.PathLike[str], personal: bool = False) -> None:
        self.folder = os.fspath(folder)
        self.personal = personal
        self.key = resolve_key(None)

    def write(self, loop: Loop, i: int, trial: Trial) -> None:
        """Write unit ``i``'s failed ``trial`` as a bundle; ``trial.bundle`` names it."""
        try:
            trial.bundle = self._write(loop, i, trial)
        except Exception:
            logger.warning("node %r: its repro bundle could not be written", trial.key, exc_info=True)

    def _write(self, loop: Loop, i: int, trial: Trial) -> str:
        spec = loop.specs[i]
        assert spec is not None
        function = spec.task.__wrapped__ if spec.task is not None else spec.fn
        args, kwargs = call_values(loop, i)
        args, kwargs = list(args), dict(kwargs or {})
        absent: dict[str, str] = {}
        params = _positional(function)
        for k, value in enumerate(args):
            args[k] = _here(value, params[k] if k < len(params) else f"*args[{k}]", absent)
        for name, value in kwargs.items():
            kwargs[name] = _here(value, name, absent)
        args, kwargs, replaced = pack_arguments(params, args, kwargs, lambda name, k: _cached(loop, i, name, k))
        err = trial.error
        fields = {
            "graph": loop.plan.name,
            "node": trial.key,
            "attempt": trial.attempt,
            "state": trial.state.value,
            "error_type": "" if err is None else f"{type(err).__module__}.{type(err).__qualname__}",
            "error": "" if err is None else str(err),
            "traceback": trial.traceback,
            "locals": getattr(err, "__dagexec_locals__", None) or {},
            "log": trial.log,
            "replaced": {**absent, **replaced},
        }
        return write_bundle(self.folder, fields, function, args, kwargs, self.key, self.personal)


def _positional(function: Any) -> list[str]:
    """The names of ``function``'s positional parameters."""
    try:
        params = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return []
    return [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]


def _here(value: Any, name: str, absent: dict[str, str]) -> Any:
    """``value`` as the bundle holds it: fetched from the worker that keeps it, or, where
    the master holds nothing, None with the reason in ``absent``."""
    why = _ABSENT.get(id(value))
    if why is not None:
        absent[name] = why
        return None
    if type(value) is Remote:
        try:
            return fetched(value)
        except Exception as exc:
            absent[name] = f"could not be fetched from its worker ({type(exc).__name__}: {exc})"
            return None
    return value


def _cached(loop: Loop, i: int, name: str, k: int) -> CacheRef | None:
    """A reference to the cache entry of the value at position ``k`` of node ``i``'s
    arguments (``-1``: keyword ``name``), where the run's cache holds it."""
    cache = loop.cache
    if cache is None or loop.kind[i] == MEMBER or i >= len(loop.plan._keys):
        return None
    if k >= 0:
        slots = [s for p, s in loop.fills[i] or () if p == k]
    else:
        slots = [s for n, s in loop.kwfills[i] or () if n == name]
    for s in slots:
        key = cache.keys.keys[s] if s < len(cache.keys.keys) else None
        if key is not None and key in cache.store:
            return CacheRef(str(cache.store.path), key, name)
    return None
