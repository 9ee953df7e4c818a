"""The pieces of a plan: what a node's trial needs, and how a plan describes itself.

``_Ref`` marks where a value goes in an argument template, and ``collect_refs`` finds
the slots a template reads; :class:`NodeSpec` is what the executing side needs to run
one node's trial; :class:`InputSpec`, :class:`NodeInfo` and :class:`SectionInfo`
describe a plan's inputs, nodes and sections.  They live apart from
:class:`~dagexec.CompiledGraph` (``compiled``) so that compiling, hashing and running
can use them without the plan's methods.

Saved plans pickle ``_Ref``, ``NodeSpec``, ``_spec_from_task``, ``InputSpec`` and
``SectionInfo`` by reference under ``dagexec._plan``, where they were first defined:
their ``__module__`` stays ``dagexec._plan``, which re-exports them, so files saved
before and after this layout load alike and a pickled plan names the same globals.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._walk import replacer

if TYPE_CHECKING:
    from .._task import Task
    from .compiled import CompiledGraph

__all__ = ["InputSpec", "NodeInfo", "NodeSpec", "SectionInfo", "collect_refs"]

#: the module that saved plans name for the classes and functions pickled by reference
PICKLED_AS = "dagexec._plan"


class _Ref:
    """A place in an argument template where the value of ``slot`` goes."""

    __module__ = PICKLED_AS
    __slots__ = ("slot",)

    def __init__(self, slot: int) -> None:
        self.slot = slot

    def __repr__(self) -> str:
        return f"_Ref({self.slot})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (_Ref, (self.slot,))


#: a walk that calls back at each ``_Ref`` only and, the call handing it back, copies nothing
_visit_refs = replacer(types=(_Ref,))


def collect_refs(value: Any, reads: dict[int, None]) -> None:
    """Add the slot of every ``_Ref`` inside the template ``value`` to ``reads``, in order."""

    def note(ref: _Ref) -> _Ref:
        reads[ref.slot] = None
        return ref

    _visit_refs(value, note)


@dataclass(slots=True, eq=False, repr=False)  # pickled as before: its slots by name
class NodeSpec:
    """What the executing side needs to run one node's trial.

    Attributes:
        key: the node key (for messages).
        fn: the function to call.
        task: the Task (None for ``node[k]`` and section outputs), for pickling by reference.
        checks: ``(position_or_name, param, annotation)`` triples to type-check, or ().
        ret: the return annotation to check, or None.
        timeout: the task's timeout in seconds, or None.
        resources: the task's ``resources`` option (placement on a cluster), or None.
        coro: True when ``fn`` is an ``async def``: the executing side awaits it on an
            event loop (``docs/dynamic.md``).
    """

    __module__ = PICKLED_AS
    key: str
    fn: Callable[..., Any]
    task: Task | None
    checks: tuple[tuple[int | str, str, Any], ...]
    ret: Any
    timeout: float | None
    resources: dict[str, float] | None = None
    coro: bool = False

    def __reduce__(self) -> tuple[Any, ...]:
        if self.task is not None:
            return (
                _spec_from_task,
                (self.key, self.task, self.checks, self.ret, self.timeout, self.resources, self.coro),
            )
        return (
            NodeSpec,
            (self.key, self.fn, None, self.checks, self.ret, self.timeout, self.resources, self.coro),
        )

    def __repr__(self) -> str:
        return f"<NodeSpec {self.key!r}>"


def _spec_from_task(
    key: str,
    task: Task,
    checks: tuple[Any, ...],
    ret: Any,
    timeout: float | None,
    resources: dict[str, float] | None = None,
    coro: bool = False,
) -> NodeSpec:
    return NodeSpec(key, task.__wrapped__, task, checks, ret, timeout, resources, coro)


_spec_from_task.__module__ = PICKLED_AS


@dataclass(slots=True, eq=False, repr=False)  # pickled as before: its slots by name
class InputSpec:
    """A graph input of a plan.

    Attributes:
        name: the input's name.
        type: its declared annotation.
        default: its default, or ``dagexec.MISSING`` when required.
        required: True when ``run()`` must give it.
        readers: keys of the nodes that read it.
    """

    __module__ = PICKLED_AS
    name: str
    type: Any
    default: Any
    slot: int
    readers: tuple[str, ...]

    @property
    def required(self) -> bool:
        """True when the input has no default."""
        from .._graph import MISSING

        return self.default is MISSING

    def __repr__(self) -> str:
        from .._typecheck import format_type

        d = "" if self.required else f" = {self.default!r}"
        return f"<Input {self.name}: {format_type(self.type)}{d}>"


class NodeInfo:
    """A read-only description of one node of a plan (``plan.nodes``).

    Attributes:
        key: the node key.
        idx: its position in the topological order.
        task: the task name (``"getitem"`` for ``node[k]``, ``"pack"`` for a section output).
        function: ``module:qualname`` of the function.
        call_site: ``path/to/file.py:14`` where it was created.
        section: the path of its innermost section, or ``""``.
        deps: keys of the nodes it waits for.
        options: its resolved task options, or None.
    """

    __slots__ = ("call_site", "deps", "function", "idx", "key", "options", "section", "task")

    def __init__(self, plan: CompiledGraph, idx: int) -> None:
        self.key = plan._keys[idx]
        self.idx = idx
        self.task = plan._task_names[idx]
        fn = plan._specs[idx].fn
        self.function = f"{getattr(fn, '__module__', '?')}:{getattr(fn, '__qualname__', repr(fn))}"
        self.call_site = plan._sites[idx]
        self.section = plan._section_of[idx]
        self.deps = tuple(plan._keys[d] for d in plan._deps[idx])
        self.options = plan._opts[idx]

    def __repr__(self) -> str:
        return f"<NodeInfo {self.key!r} task={self.task!r}>"


@dataclass(slots=True, eq=False, repr=False)  # pickled as before: its slots by name
class SectionInfo:
    """One section call of a plan (``plan.sections``).

    Attributes:
        path: the section's path, e.g. ``"etl-1"`` or ``"nightly/etl"``.
        name: the section's name.
        parent: the enclosing section's path, or ``""``.
        inputs: parameter name -> key of the node or input it receives, or the
            constant's repr.
        output: the key (node, input or constant repr) that the section's value is.
        nodes: keys of the plan's nodes inside it (nested sections included).
        call_site: where the section was called.
    """

    __module__ = PICKLED_AS
    path: str
    name: str
    parent: str
    inputs: dict[str, str]
    output: str
    nodes: tuple[str, ...]
    call_site: str

    def __repr__(self) -> str:
        return f"<SectionInfo {self.path!r} with {len(self.nodes)} nodes>"
