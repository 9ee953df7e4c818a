"""dagexec: build and run DAG computational graphs from plain Python functions.

::

    import dagexec as dx

    @dx.task
    def double(x: int) -> int:
        return 2 * x

    with dx.Graph("demo") as graph:
        n = graph.input("n", int, default=3)
        graph.output(double(double(n)), name="result")

    print(graph.compile().run(n=5, executor="serial").output)   # 20
"""

from __future__ import annotations

import logging

from ._artifact import load, read_header
from ._bundle import Bundle, BundleError, load_bundle
from ._cond import cond, switch
from ._envelope import SigningKeyError
from ._errors import (
    ArtifactError,
    CallError,
    DagexecError,
    GraphError,
    InputError,
    MutationError,
    NodeAttributeError,
    Problem,
    RemoteError,
    RunFailed,
    TaskTimeout,
    TypeCheckError,
    WorkerCrashed,
)
from ._graph import MISSING, Graph, Node, SectionNode, current_graph
from ._plan import CompiledGraph, InputSpec, NodeInfo, SectionInfo
from ._result import RunResult
from ._section import Section, section
from ._shell import CommandFailed, CommandOutput, CommandResult, shell
from ._state import Outcome, State, Trial
from ._task import Task, TaskOptions, task
from ._version import __version__
from .cache.decide import Explanation
from .cache.store import CacheEntry, CacheStore
from .run.protocol import Executor

__all__ = [
    "MISSING",
    "ArtifactError",
    "Bundle",
    "BundleError",
    "CacheEntry",
    "CacheStore",
    "CallError",
    "CommandFailed",
    "CommandOutput",
    "CommandResult",
    "CompiledGraph",
    "DagexecError",
    "Executor",
    "Explanation",
    "Graph",
    "GraphError",
    "InputError",
    "InputSpec",
    "MutationError",
    "Node",
    "NodeAttributeError",
    "NodeInfo",
    "Outcome",
    "Problem",
    "RemoteError",
    "RunFailed",
    "RunResult",
    "Section",
    "SectionInfo",
    "SectionNode",
    "SigningKeyError",
    "State",
    "TaskTimeout",
    "Task",
    "TaskOptions",
    "Trial",
    "TypeCheckError",
    "WorkerCrashed",
    "__version__",
    "cond",
    "current_graph",
    "load",
    "load_bundle",
    "read_header",
    "section",
    "shell",
    "switch",
    "task",
]

logging.getLogger("dagexec").addHandler(logging.NullHandler())
