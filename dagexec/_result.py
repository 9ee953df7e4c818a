"""``RunResult``: what a run returns (and what ``RunFailed.result`` holds)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from ._state import State, Trial
from .run.trials import as_trials

if TYPE_CHECKING:
    from os import PathLike

    from .plan.compiled import CompiledGraph

__all__ = ["RunResult"]


#: the states of a node that make a run not ok
_BAD = frozenset((State.FAILED, State.UPSTREAM_FAILED, State.CANCELLED))


class RunResult:
    """The states, trials and kept values of one run.

    Attributes:
        graph: the name of the graph that ran.
        states: node key -> :class:`State`, for every node of the plan, each
            ``task.map`` node followed by its items (``inv[0]``, ``inv[1]``, ...).
        outputs: output name -> value, for the outputs that were computed.
        start: ``time.time()`` when the run started.
        duration: seconds the run took.
    """

    __slots__ = (
        "_about",
        "_declared",
        "_items",
        "_plan",
        "_raw_ends",
        "_raw_trials",
        "_trials",
        "_values",
        "duration",
        "graph",
        "outputs",
        "start",
        "states",
    )

    def __init__(
        self,
        plan: CompiledGraph,
        states: dict[str, State],
        trials: dict[str, list[Trial]] | list[Any],
        outputs: dict[str, Any],
        values: dict[str, Any],
        start: float,
        duration: float,
        items: dict[str, list[str]] | None = None,
        ends: list[Any] | None = None,
    ) -> None:
        self.graph = plan.name
        self._declared = plan.outputs
        self._plan = plan  # for pictures: immutable, and holds no values of the run
        self.states = states
        # the engine's per-node records (made into Trials on first use of .trials): a
        # list of Trials, None, or (start, end, worker) of a first trial that succeeded
        # and left no log
        self._trials: dict[str, list[Trial]] | None = trials if isinstance(trials, dict) else None
        self._raw_trials: list[Any] | None = None if isinstance(trials, dict) else trials
        self._raw_ends = ends  # where a raw record is a start (a trial in the master), its end
        self.outputs = outputs
        self._values = values
        self.start = start
        self.duration = duration
        self._items = items or {}  # map node key -> its items' keys, for the maps that ran
        # for reports, set by the engine (run/result.py): the executors' names, each
        # input's repr (bounded), and the cache's decision (None: no cache)
        self._about: dict[str, Any] = {"executors": [], "inputs": {}, "cache": None}

    @property
    def trials(self) -> dict[str, list[Trial]]:
        """Node key -> the node's :class:`Trial` list, in order (empty for a node that never ran)."""
        trials = self._trials
        if trials is None:
            keys = self._plan._keys
            raw = self._raw_trials or []
            ends = self._raw_ends or [None] * len(raw)
            # a first trial that succeeded is kept compact until now
            trials = {keys[i]: as_trials(keys[i], t, ends[i]) for i, t in enumerate(raw)}
            self._trials = trials
            self._raw_trials = self._raw_ends = None
        return trials

    @property
    def ok(self) -> bool:
        """True when no node failed, was cancelled or was left out by a failure."""
        return _BAD.isdisjoint(self.states.values())

    @property
    def output(self) -> Any:
        """The value of the plan's output; with several outputs, a dict of those computed.

        Raises:
            KeyError: when the plan has one output and it was not computed, or has
                several and none was computed.
        """
        if len(self._declared) == 1:
            name = self._declared[0]
            if name in self.outputs:
                return self.outputs[name]
            raise KeyError(
                f"output {name!r} of graph {self.graph!r} was not computed (states: {self._counts()})"
            )
        if not self.outputs:
            raise KeyError(f"run of graph {self.graph!r} computed no output (states: {self._counts()})")
        return dict(self.outputs)

    @property
    def failed(self) -> list[str]:
        """Keys of the nodes and map items whose state is ``failed``, in plan order,
        each map's failed items (``inv[2]``) before the map itself."""
        out: list[str] = []
        for key, state in self.states.items():
            if key in self._items:
                out += [k for k in self._items[key] if self.states[k] is State.FAILED]
                if state is State.FAILED:
                    out.append(key)
            elif state is State.FAILED and not self._is_item(key):
                out.append(key)
        return out

    def _is_item(self, key: str) -> bool:
        """True for the key of a map's item (``inv[2]``)."""
        if not self._items or not key.endswith("]"):
            return False
        head, _, j = key[:-1].rpartition("[")
        return head in self._items and j.isdigit() and int(j) < len(self._items[head])

    def __getitem__(self, key: str) -> Any:
        """The value of node ``key``, when it was an output or kept (``keep=``).

        Raises:
            KeyError: naming the key, and why its value is not here.
        """
        try:
            return self._values[key]
        except KeyError:
            pass
        state = self.states.get(key)
        if state is None:
            raise KeyError(f"graph {self.graph!r} has no node {key!r}") from None
        if state is not State.SUCCEEDED:
            raise KeyError(f"node {key!r} has no value: it {state.value}") from None
        raise KeyError(
            f"the value of node {key!r} was released during the run; "
            f"pass keep=[{key!r}] (or keep='all') to run() to hold it"
        ) from None

    def __contains__(self, key: object) -> bool:
        return key in self._values

    def _counts(self) -> str:
        """Nodes by state; then, when maps ran, their items by state, apart:
        ``1 succeeded, 1 failed · 4 map items: 3 succeeded, 1 failed``."""
        nodes = _by_state(s for k, s in self.states.items() if not self._is_item(k))
        if not self._items:
            return nodes
        n = sum(len(keys) for keys in self._items.values())
        items = _by_state(self.states[k] for keys in self._items.values() for k in keys)
        return f"{nodes} · {n} map item{'' if n == 1 else 's'}" + (f": {items}" if items else "")

    def _n_nodes(self) -> int:
        return len(self.states) - sum(len(keys) for keys in self._items.values())

    def _failure_line(self, key: str) -> str:
        """What failed at ``key``, in one line: ``inv[2] after 2 attempt(s) [failed]:
        ZeroDivisionError: division by zero``, or for a map whose items failed
        ``inv (map): 1 of 4 items failed``."""
        trials = self.trials.get(key, [])
        items = self._items.get(key)
        if not trials and items:
            bad = sum(1 for k in items if self.states[k] is State.FAILED)
            return f"{key} (map): {bad} of {len(items)} items failed"
        last = trials[-1] if trials else None
        err = "" if last is None or last.error is None else f": {type(last.error).__name__}: {last.error}"
        return f"{key} after {len(trials)} attempt(s) [{last.state.value if last else '?'}]{err}"

    def summary(self) -> str:
        """A short text report: counts by state (a map's items counted apart), then each
        failed node with its error and attempts, a map's failed items before the map."""
        lines = [f"graph {self.graph!r}: {self._n_nodes()} nodes in {self.duration:.2f} s: {self._counts()}"]
        lines += [f"  failed {self._failure_line(key)}" for key in self.failed]
        return "\n".join(lines)

    def to_html(self, path: str | PathLike[str]) -> None:
        """Write the run report as one self-contained HTML page.

        The page shows the graph coloured by state, a timeline of every trial per
        worker, the errors with their tracebacks and a search box; click a node to
        see its function, file:line, signature, state, duration, attempts and error.
        It loads nothing from the network, so it can be attached to a CI job.

        Args:
            path: the file to write, e.g. ``"report.html"``; an existing file is replaced.

        Raises:
            RuntimeError, OSError: as :meth:`dagexec.CompiledGraph.to_html` (no ``dot``
                program; a file that cannot be written, an existing one left as it was).
        """
        from ._html import to_html

        to_html(self, path)

    def __repr__(self) -> str:
        return f"<RunResult {self.graph!r} {'ok' if self.ok else 'failed'}: {self._counts()}>"

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        """Jupyter's display: the coloured picture as SVG (``text/plain`` without Graphviz's ``dot``)."""
        from ._dot import repr_mimebundle

        return repr_mimebundle(self, include, exclude)

    def to_dot(self, *, collapse: bool | Sequence[str] | None = None, expand: bool = False) -> Any:
        """The run as a ``graphviz.Digraph``: the plan's picture with nodes coloured by state.

        Each node shows its state, the time its trials ran (``0.31 s``) and, past one,
        its number of attempts; a failed node whose last trial timed out is
        ``timed_out``. A legend gives each colour and how many nodes have it.

        Args:
            collapse: as for :meth:`dagexec.CompiledGraph.to_dot`; a collapsed section
                takes the colour of its worst state.
            expand: True to draw every node whatever the size.

        Returns:
            A ``graphviz.Digraph``; it raises what :meth:`dagexec.CompiledGraph.to_dot`
            raises.
        """
        from ._dot import to_dot

        return to_dot(self, collapse=collapse, expand=expand)


def _by_state(states: Iterable[State]) -> str:
    """``2 succeeded, 1 failed``: how many of ``states`` are in each state, in State order."""
    counts = Counter(s.value for s in states)
    return ", ".join(f"{counts[s.value]} {s.value}" for s in State if counts[s.value])
