"""How trials become a dask graph: their arguments, the handles on their values, the
graph :meth:`~dagexec.executors.dask.DaskExecutor.flush` sends.

A trial's task reads an input made on the cluster through the input's dask key: a
call's arguments hold ``Remote`` handles, which :func:`swap_remotes` replaces by the
future of the task that makes the value, or, for a member of a group (several
siblings in one task, whose value is the tuple of theirs), by a nested task that
takes its element (:class:`Elem`).  dask moves the value from worker to worker; the
master never sees it.
"""

from __future__ import annotations

import collections
import operator
import time
from typing import Any

from ..._walk import Path, replace
from ...run.protocol import Batch, Call, Executor, Outcome, Remote, crashed_outcome
from .._transport import dump_call
from .._transport import swap_remotes as swap_in

__all__ = ["Elem", "graph_of", "member_value", "no_futures", "not_sent", "resources_of", "swap_remotes"]

class Elem:
    """A handle on member ``k``'s value in a group's task (whose value is the tuple of
    its members'): the group's ``future`` and ``k``."""

    __slots__ = ("future", "k")

    def __init__(self, future: Any, k: int) -> None:
        self.future = future
        self.k = k

    def task(self) -> Any:
        """What a reader's task holds in its place: a dask task that takes the element."""
        from dask._task_spec import Task, TaskRef

        return Task(None, operator.getitem, TaskRef(self.future.key), self.k)

    def __repr__(self) -> str:
        return f"<element {self.k} of {self.future!r}>"


def swap_remotes(call: Call, owner: Executor) -> tuple[Any, Any, list[Path]]:
    """``call``'s arguments with each Remote of ``owner`` replaced by its future (a
    group member's by an :class:`Elem` task), and the path of each in ``(args, kwargs)``
    (:func:`~.._transport.swap_remotes`)."""
    return swap_in(call, owner, lambda r: r.task() if type(r) is Elem else r)


def graph_of(dsk: dict[str, Any], token: str) -> Any:
    """``dsk`` as the graph expression ``client.get`` sends, named by ``token``: dask
    would otherwise name it by a hash of every task in it (a tenth of a second for a
    thousand tasks).  The plain dict where this dask has no such expression."""
    try:
        from dask._expr import LLGExpr
    except ImportError:
        return dsk
    return LLGExpr(dsk, _determ_token=token)  # type: ignore[no-untyped-call]


def resources_of(gathered: dict[str, tuple[Any, ...]]) -> collections.defaultdict[str, Any]:
    """The ``resources`` of each gathered task that asks for some, by dask key (a
    batch's members ask for the same)."""
    found = {dkey: entry[0].call.spec.resources for dkey, entry in gathered.items() if entry[0].call.spec.resources}
    return collections.defaultdict(dict, found)  # dask asks it of every key


def not_sent(call: Call, args: Any, kwargs: Any, exc: Exception, refused: str) -> Outcome:
    """The outcome of a call dask would not take (``args`` and ``kwargs`` as swapped):
    failed, naming the argument that does not pickle; else crashed with the client's
    error (a closed client), which ``refused`` words."""
    plain = Call(call.idx, call.attempt, call.spec, no_futures(args), no_futures(kwargs))
    found = dump_call(plain, (plain.args, plain.kwargs))
    if not isinstance(found, bytes):
        return found
    return crashed_outcome(call, exc, time.time(), refused)


def no_futures(value: Any) -> Any:
    """``value`` with dask futures replaced by None (to find what does not pickle)."""
    from distributed import Future

    return replace(value, lambda leaf: None if isinstance(leaf, Future) else leaf)


def member_value(owner: Executor, future: Any, batch: Batch | None, idx: int) -> Remote | None:
    """The handle on the value unit ``idx`` makes in the task of ``future`` (running
    ``batch``, or one call): the future itself for a call or a chain's last member,
    an :class:`Elem` of it for a group's member, None for a chain's other members."""
    if batch is None:
        return Remote(owner, future)
    if any(batch.linked):
        return Remote(owner, future) if batch.calls[-1].idx == idx else None
    for k, call in enumerate(batch.calls):
        if call.idx == idx:
            return Remote(owner, Elem(future, k))
    return None
