"""``run(check_mutation=True)``: fail a trial that changed one of its arguments in place.

On serial and threads the readers of a value share one object; on processes and
clusters each trial gets a copy.  A task that changes an argument in place therefore
gives results that depend on the executor (docs/running.md, *Executors*).

With the check on, the run swaps each task's function, for that run only, for a
:class:`MutationCheck` around it (:func:`checked_specs`).  The check digests every
argument (a hash of its pickled bytes) before and after the call, where the trial
runs: in the worker process on loky, on the worker on dask.  An argument whose
digest changed fails the trial with :class:`~dagexec.MutationError`, naming the node,
the parameter and where the value came from (a node, a graph input, a constant).
Values that do not pickle, and ``None``, numbers, strings and bytes (which cannot
change), are not digested.  With the check off nothing is wrapped: the run's path
is the same as without this module.
"""

from __future__ import annotations

import hashlib
import inspect
import pickle
from typing import TYPE_CHECKING, Any

from ._errors import MutationError

if TYPE_CHECKING:
    from .plan.compiled import CompiledGraph
    from .plan.specs import NodeSpec

__all__ = ["MutationCheck", "checked_specs"]

#: types whose values cannot change in place: never digested
_ATOMS = frozenset({type(None), bool, int, float, complex, str, bytes, range})

#: (position or keyword name, parameter name, where the value came from)
Param = tuple["int | str", str, str]


class MutationCheck:
    """A task's function that fails its call when it changed an argument in place.

    Attributes:
        key: the node key (an item's key, ``inv[2]``, for a map's item).
        params: ``(position or name, parameter, producer)`` for each argument.
    """

    __slots__ = ("coro", "fn", "items", "key", "params", "task")

    def __init__(
        self, task: Any, key: str, params: tuple[Param, ...], coro: bool, items: Any = None, fn: Any = None
    ) -> None:
        self.task = task  # travels to worker processes by reference (DESIGN §11)
        self.fn = task.__wrapped__ if fn is None else fn
        self.key = key
        self.params = params
        self.coro = coro  # an async def task: the check runs once its coroutine has ended
        self.items = items  # for a map: how to name where item j came from (see for_item)

    def __reduce__(self) -> tuple[Any, ...]:
        fn = None if self.fn is self.task.__wrapped__ else self.fn
        return (MutationCheck, (self.task, self.key, self.params, self.coro, self.items, fn))

    def for_item(self, j: int, key: str) -> MutationCheck:
        """The check of a map's item ``j``, whose key is ``key``: its first argument
        is the item, which came from the map's list."""
        kind, what = self.items
        if kind == "map":  # a chained map: the item is the value of that map's item j
            source = f"node '{what}[{j}]'"
        elif kind == "list":  # a list written in the call: each element's own source
            source = what[j] if j < len(what) else "a constant"
        else:
            source = f"item {j} of {what}"
        params = tuple((w, name, source if w == 0 else src) for w, name, src in self.params)
        return MutationCheck(self.task, key, params, self.coro, None, self.fn)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        before = self._digests(args, kwargs)
        try:
            value = self.fn(*args, **kwargs)
        except Exception as exc:
            self._compare(before, args, kwargs, exc)
            raise
        if self.coro:
            return self._awaited(value, before, args, kwargs)
        self._compare(before, args, kwargs)
        return value

    async def _awaited(self, coro: Any, before: list[bytes | None], args: Any, kwargs: Any) -> Any:
        try:
            value = await coro
        except Exception as exc:
            self._compare(before, args, kwargs, exc)
            raise
        self._compare(before, args, kwargs)
        return value

    def _value(self, where: int | str, args: Any, kwargs: dict[str, Any]) -> Any:
        if isinstance(where, int):
            return args[where] if where < len(args) else None
        return kwargs.get(where)

    def _digests(self, args: Any, kwargs: dict[str, Any]) -> list[bytes | None]:
        return [digest(self._value(where, args, kwargs)) for where, _, _ in self.params]

    def _compare(
        self, before: list[bytes | None], args: Any, kwargs: dict[str, Any], exc: BaseException | None = None
    ) -> None:
        for (where, name, source), old in zip(self.params, before, strict=True):
            if old is not None and digest(self._value(where, args, kwargs)) != old:
                error = MutationError(
                    f"node {self.key!r} changed its argument {name!r} in place (the value came from "
                    f"{source}); a task must not change its arguments: copy the value first",
                    self.key,
                    name,
                    source,
                )
                raise error from exc


def digest(value: Any) -> bytes | None:
    """A hash of ``value``'s pickled bytes (pickle, else cloudpickle); None for a value
    that cannot change in place or that does not pickle."""
    if type(value) in _ATOMS:
        return None
    try:
        data = pickle.dumps(value, protocol=5)
    except Exception:
        try:
            import cloudpickle

            data = cloudpickle.dumps(value)
        except Exception:
            return None
    return hashlib.blake2b(data, digest_size=16).digest()


def checked_specs(plan: CompiledGraph) -> tuple[NodeSpec, ...]:
    """The plan's specs with each task's function inside a :class:`MutationCheck`
    (the nodes dagexec makes itself, ``node[k]`` and section outputs, are left as
    they are)."""
    from .plan.specs import NodeSpec

    specs = []
    for i, spec in enumerate(plan._specs):
        if spec.task is None:
            specs.append(spec)
            continue
        check = MutationCheck(spec.task, spec.key, _params(plan, i), spec.coro, _items(plan, i), spec.fn)
        specs.append(
            NodeSpec(spec.key, check, None, spec.checks, spec.ret, spec.timeout, spec.resources, spec.coro)
        )
    return tuple(specs)


def _params(plan: CompiledGraph, i: int) -> tuple[Param, ...]:
    """Each argument of node ``i``: its place in the call, its parameter's name and
    where its value comes from."""
    args = plan._args[i]
    names = _positional_names(plan._specs[i].fn, len(args))
    filled = dict(plan._fills[i])  # position -> the slot whose value goes there
    params: list[Param] = [(k, names[k], _source(plan, t, filled.get(k))) for k, t in enumerate(args)]
    by_name = dict(plan._kwfills[i])
    params += [
        (name, name, _source(plan, t, by_name.get(name))) for name, t in (plan._kwargs[i] or {}).items()
    ]
    return tuple(params)


def _items(plan: CompiledGraph, i: int) -> Any:
    """For a map node: how to name where each item comes from (:meth:`MutationCheck.for_item`)."""
    from .plan.specs import _Ref

    if i not in plan._maps:
        return None
    t = plan._args[i][0]
    slot = dict(plan._fills[i]).get(0, t.slot if type(t) is _Ref else None)
    if slot is not None:
        if slot in plan._maps:
            return ("map", plan._keys[slot])
        return ("of", _slot(plan, slot))
    if isinstance(t, (list, tuple)):
        return ("list", tuple(_source(plan, e) for e in t))
    return ("of", "a constant")


def _positional_names(fn: Any, n: int) -> list[str]:
    try:
        parameters = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return [f"argument {k}" for k in range(n)]
    positional = [p.name for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    rest = next((p.name for p in parameters if p.kind is p.VAR_POSITIONAL), "args")
    return [positional[k] if k < len(positional) else f"{rest}[{k - len(positional)}]" for k in range(n)]


def _source(plan: CompiledGraph, template: Any, slot: int | None = None) -> str:
    """Where an argument's value comes from (the value of ``slot``, or the argument's
    template): ``node 'load'``, ``graph input 'path'``, ``a constant``, or a container
    of those (``a list holding node 'a', node 'b'``)."""
    from .plan.specs import _Ref, collect_refs

    if slot is not None:
        return _slot(plan, slot)
    if type(template) is _Ref:
        return _slot(plan, template.slot)
    refs: dict[int, None] = {}
    collect_refs(template, refs)
    if not refs:
        return "a constant"
    return f"a {type(template).__name__} holding {', '.join(_slot(plan, s) for s in refs)}"


def _slot(plan: CompiledGraph, slot: int) -> str:
    n = len(plan._keys)
    if slot < n:
        return f"node {plan._keys[slot]!r}"
    if slot - n < len(plan._inputs):
        return f"graph input {plan._inputs[slot - n].name!r}"
    return "a constant"
