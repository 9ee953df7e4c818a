"""Every exception dagexec raises.

::

    DagexecError
     +-- GraphError (ValueError)      building or compiling a graph went wrong
     +-- InputError (ValueError)      bad arguments to CompiledGraph.run()
     +-- CallError (TypeError)        a task called wrongly, or a Node asked for a value
     +-- NodeAttributeError (AttributeError)  an attribute asked of a Node, which has none
     +-- TypeCheckError (TypeError)   a value does not match its annotation at run time
     +-- MutationError                a task changed an argument in place (run(check_mutation=True))
     +-- TaskTimeout (TimeoutError)   a trial ran past its task's timeout
     +-- WorkerCrashed                the worker process running a trial died
     +-- RemoteError                  a task's exception that could not travel back
     +-- RunFailed                    a run ended with failed nodes; ``.result`` has them all
     +-- ArtifactError (ValueError)   a saved plan file cannot be loaded; ``.reason`` says why

Each error carries its facts as attributes as well as in its message.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from ._result import RunResult

__all__ = [
    "ArtifactError",
    "CallError",
    "DagexecError",
    "GraphError",
    "InputError",
    "MutationError",
    "NodeAttributeError",
    "Problem",
    "RemoteError",
    "RunFailed",
    "TaskTimeout",
    "TypeCheckError",
    "WorkerCrashed",
]


class DagexecError(Exception):
    """Base class of every exception raised by dagexec."""

    #: the constructor's arguments after the message, by attribute name: an error that
    #: names them is rebuilt whole when unpickled (coming back from a worker process)
    _reduce_fields: ClassVar[tuple[str, ...]] = ()

    def __reduce__(self) -> str | tuple[Any, ...]:
        if not self._reduce_fields:
            return super().__reduce__()
        return (type(self), (self.args[0], *(getattr(self, f) for f in self._reduce_fields)))


@dataclass(frozen=True)
class Problem:
    """One problem found while building, compiling or starting a run.

    Attributes:
        message: the full sentence, naming the node, the parameter and the call site.
        key: the node key (or input name) concerned, when there is one.
        param: the parameter concerned, when there is one.
        call_site: ``path/to/file.py:14`` where the node was created, when known.
    """

    message: str
    key: str | None = None
    param: str | None = None
    call_site: str | None = None

    def __str__(self) -> str:
        return self.message


def _join(problems: list[Problem], what: str) -> str:
    if len(problems) == 1:
        return problems[0].message
    lines = [f"{len(problems)} problems in {what}:"]
    lines += [f"- {p.message}" for p in problems]
    return "\n".join(lines)


def _site_order(p: Problem) -> tuple[str, int, str]:
    site = p.call_site or ""
    path, _, line = site.rpartition(":")
    return (path, int(line) if line.isdigit() else 0, p.message)


class _ProblemsError(DagexecError, ValueError):
    problems: tuple[Problem, ...]

    def __init__(self, problems: list[Problem] | Problem | str, what: str = "graph") -> None:
        if isinstance(problems, str):
            problems = [Problem(problems)]
        elif isinstance(problems, Problem):
            problems = [problems]
        ordered = sorted(problems, key=_site_order)
        self.problems = tuple(ordered)
        super().__init__(_join(ordered, what))

    @property
    def key(self) -> str | None:
        """The node key of the first problem."""
        return self.problems[0].key

    @property
    def param(self) -> str | None:
        """The parameter of the first problem."""
        return self.problems[0].param

    @property
    def call_site(self) -> str | None:
        """The call site of the first problem."""
        return self.problems[0].call_site


class GraphError(_ProblemsError):
    """A graph cannot be built or compiled; ``.problems`` lists every problem found."""


class InputError(_ProblemsError):
    """``run()`` was given bad arguments; ``.problems`` lists every problem found."""


class CallError(DagexecError, TypeError):
    """A task was called with arguments its signature rejects, or a Node was asked for a value."""

    def __init__(self, message: str, key: str | None = None, call_site: str | None = None):
        super().__init__(message)
        self.key = key
        self.call_site = call_site


class NodeAttributeError(DagexecError, AttributeError):
    """An attribute was asked of a Node, which has no value until the plan runs.

    Attributes:
        key: the node key.
        name: the attribute asked for.
    """

    def __init__(self, message: str, key: str, name: str) -> None:
        super().__init__(message)
        self.key = key
        self.name = name


class TypeCheckError(DagexecError, TypeError):
    """A value given to or returned by a task does not match its annotation."""

    _reduce_fields = ("key", "param")

    def __init__(self, message: str, key: str, param: str | None) -> None:
        super().__init__(message)
        self.key = key
        self.param = param


class MutationError(DagexecError):
    """A task changed one of its arguments in place (seen by ``run(check_mutation=True)``).

    Attributes:
        key: the node (or map item) whose trial changed it.
        param: the parameter's name.
        producer: where the value came from: ``node 'load'``, ``graph input 'path'``,
            ``a constant``, ...
    """

    _reduce_fields = ("key", "param", "producer")

    def __init__(self, message: str, key: str, param: str, producer: str) -> None:
        super().__init__(message)
        self.key = key
        self.param = param
        self.producer = producer


class TaskTimeout(DagexecError, TimeoutError):
    """A trial ran past its task's ``timeout``."""

    _reduce_fields = ("key", "timeout")

    def __init__(self, message: str, key: str | None = None, timeout: float | None = None):
        super().__init__(message)
        self.key = key
        self.timeout = timeout


class WorkerCrashed(DagexecError):
    """The worker process running a trial died (a segfault, ``os._exit``, a kill, OOM).

    Attributes:
        key: the node key.
        pid: the worker's process id, when known.
        exitcodes: what the executor reported of the dead workers' exit codes
            (e.g. ``"{SIGSEGV(-11)}"``), or ``""``.
        worker: the dead worker's address (e.g. a dask worker's
            ``"tcp://10.0.0.5:40123"``), when the executor knows one, else None.
    """

    _reduce_fields = ("key", "pid", "exitcodes", "worker")

    def __init__(
        self,
        message: str,
        key: str | None = None,
        pid: int | None = None,
        exitcodes: str = "",
        worker: str | None = None,
    ):
        super().__init__(message)
        self.key = key
        self.pid = pid
        self.exitcodes = exitcodes
        self.worker = worker


class RemoteError(DagexecError):
    """Stands for a task's exception that could not be brought back from where it ran.

    Attributes:
        type_name: the qualified name of the original exception's type.
        message: ``str()`` of the original exception.
        traceback: the remote traceback as text.
    """

    def __init__(self, type_name: str, message: str, traceback: str = "") -> None:
        super().__init__(f"{type_name}: {message}")
        self.type_name = type_name
        self.message = message
        self.traceback = traceback

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.type_name, self.message, self.traceback))


class RunFailed(DagexecError):
    """A run ended with failed nodes.

    Attributes:
        result: the :class:`~dagexec.RunResult` with every state and trial.
        failed: the keys of the failed nodes, in the order they failed, each
            ``task.map`` node preceded by its failed items (``inv[2]``).
    """

    def __init__(self, message: str, result: RunResult, failed: list[str]) -> None:
        super().__init__(message)
        self.result = result
        self.failed = failed


class ArtifactError(DagexecError, ValueError):
    """A saved plan file cannot be loaded (or saved); nothing in it was executed.

    Attributes:
        reason: a short word for what is wrong, e.g. ``"truncated"``, ``"corrupted"``,
            ``"foreign"``, ``"unsigned"``, ``"bad-signature"`` (docs/artifacts.md lists them).
        path: the file concerned.
    """

    _reduce_fields = ("reason", "path")

    def __init__(self, message: str, reason: str, path: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.path = path
