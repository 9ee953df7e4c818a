"""``CompiledGraph``: the frozen plan a run executes.

Layout (every per-node field is a tuple indexed by ``idx``, the node's position in
topological order)::

    slots:   [0, n)        node values          (idx == slot)
             [n, n+m)      graph input values
             [n+m, ...)    constants that outputs resolve to

    keys[idx]        "etl/clean-1"
    specs[idx]       NodeSpec: what the executing side needs (key, fn, type checks)
    args[idx]        positional argument template: constants, with _Ref(slot) where
                     a value goes; fills[idx] lists the (position, slot) pairs
    kwargs[idx]      keyword template or None; kwfills[idx] its (name, slot) pairs
    nested[idx]      True when some _Ref sits inside a container (filled by walking)
    deps[idx]        upstream node idxs (data and after()), unique
    dependents[idx]  downstream node idxs
    reads[idx]       slots whose values idx reads (nodes and inputs), unique
    n_readers[slot]  how many nodes read a slot: its value is released after the last
    conds            per dx.cond: (its idx, the predicate's slot, then-branch idxs,
                     otherwise-branch idxs); the engine skips the untaken branch
    maps             idxs of task.map nodes: args[idx][0] is the list of items, and
                     the engine makes one trial per item

The run loop only indexes these tuples; it never searches the graph or touches keys.

The pieces a plan holds (``NodeSpec``, ``InputSpec``, ``NodeInfo``, ``SectionInfo``,
``_Ref``) are in ``specs``.  Saved plans pickle ``CompiledGraph`` by reference as
``dagexec._plan.CompiledGraph``, where it was first defined: its ``__module__`` stays
``dagexec._plan``, which re-exports it (see ``specs``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from .._errors import GraphError, Problem
from .direct import Direct, direct_calls
from .links import chain_links, node_levels
from .specs import PICKLED_AS, InputSpec, NodeInfo, NodeSpec, SectionInfo
from .streams import StreamFeeds, stream_feeds

if TYPE_CHECKING:
    from os import PathLike

    from .._result import RunResult
    from .._task import TaskOptions
    from ..cache.decide import Explanation

__all__ = ["CompiledGraph"]

T = TypeVar("T")

#: fields computed on first use, never pickled
_CACHED = frozenset({"_fingerprint", "_levels", "_links", "_plain", "_streams"})
#: the fields a file from before conds, maps and trigger rules lacks, as such a plan has them
_ADDED_LATER: dict[str, Any] = {"_conds": (), "_maps": frozenset(), "_gates": {}}


class CompiledGraph:
    """A validated, immutable, serializable plan: what ``graph.compile()`` returns.

    Run it with :meth:`run`; describe it with :attr:`nodes`, :attr:`inputs`,
    :attr:`outputs`, :attr:`sections` and :meth:`to_dict`.
    """

    __module__ = PICKLED_AS
    __slots__ = (
        "_aliases",
        "_args",
        "_conds",
        "_consts",
        "_dependents",
        "_deps",
        "_fills",
        "_fingerprint",
        "_gates",
        "_index",
        "_inputs",
        "_keys",
        "_kwargs",
        "_kwfills",
        "_levels",
        "_links",
        "_maps",
        "_n_readers",
        "_nested",
        "_opts",
        "_outputs",
        "_pickle_problems",
        "_plain",
        "_reads",
        "_routes",
        "_section_of",
        "_sections",
        "_sites",
        "_specs",
        "_streams",
        "_task_names",
        "name",
    )

    name: str
    _keys: tuple[str, ...]
    _index: dict[str, int]
    _specs: tuple[NodeSpec, ...]
    _args: tuple[tuple[Any, ...], ...]
    _fills: tuple[tuple[tuple[int, int], ...], ...]
    _kwargs: tuple[dict[str, Any] | None, ...]
    _kwfills: tuple[tuple[tuple[str, int], ...], ...]
    _nested: tuple[bool, ...]
    _deps: tuple[tuple[int, ...], ...]
    _dependents: tuple[tuple[int, ...], ...]
    _reads: tuple[tuple[int, ...], ...]
    _n_readers: tuple[int, ...]
    _opts: tuple[TaskOptions | None, ...]
    _routes: tuple[str, ...]
    _task_names: tuple[str, ...]
    _sites: tuple[str, ...]
    _section_of: tuple[str, ...]
    _inputs: tuple[InputSpec, ...]
    _outputs: tuple[tuple[str, int], ...]
    _consts: tuple[Any, ...]
    _aliases: dict[str, int]
    _sections: tuple[SectionInfo, ...]
    _conds: tuple[tuple[Any, ...], ...]  # (chooser, predicate slot, *branches): compile._conds
    _maps: frozenset[int]
    _gates: dict[int, tuple[str, tuple[int | str, ...]]]  # gated node -> (rule, Outcome params): plan/triggers.py
    _pickle_problems: tuple[Problem, ...]
    _fingerprint: str | None
    _links: tuple[int, ...] | None
    _levels: tuple[int, ...] | None
    _plain: tuple[Direct | None, ...] | None
    _streams: StreamFeeds | None

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("a CompiledGraph is immutable")

    def _set(self, **fields: Any) -> None:
        for k, v in fields.items():
            object.__setattr__(self, k, v)

    # -- pickling: every field but the cached fingerprint and links ------------------
    def __getstate__(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__slots__ if k not in _CACHED}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._set(**{**_ADDED_LATER, **state}, _fingerprint=None, _levels=None, _links=None, _plain=None, _streams=None)

    def _derived(self, slot: str, make: Callable[[CompiledGraph], T]) -> T:
        """What ``make`` computes from the plan, kept in ``slot`` (one of ``_CACHED``)
        after the first use."""
        value: T | None = getattr(self, slot)
        if value is None:
            value = make(self)
            object.__setattr__(self, slot, value)
        return value

    def _chain_links(self) -> tuple[int, ...]:
        """Per node, the node that continues its linear chain, or -1 (:func:`.links.chain_links`)."""
        return self._derived("_links", chain_links)

    def _node_levels(self) -> tuple[int, ...]:
        """Per node, its level (:func:`.links.node_levels`)."""
        return self._derived("_levels", node_levels)

    def _stream_feeds(self) -> StreamFeeds:
        """The plan's stream producers and the parameters they feed (:func:`.streams.stream_feeds`)."""
        return self._derived("_streams", stream_feeds)

    def _plain_units(self) -> tuple[Direct | None, ...]:
        """Per node, what the engine needs to run its first trial in the master without
        a call object (:mod:`dagexec.run.here`), or None when it may not: a map node, a
        call with containers to fill, an ``async`` task, a timeout (:mod:`.direct`)."""
        return self._derived("_plain", direct_calls)

    # -- description ---------------------------------------------------------------
    def __len__(self) -> int:
        """Number of nodes that run."""
        return len(self._keys)

    def __repr__(self) -> str:
        return f"<CompiledGraph {self.name!r}: {len(self._keys)} nodes, fingerprint {self.fingerprint[:12]}>"

    @property
    def keys(self) -> tuple[str, ...]:
        """Node keys in topological order."""
        return self._keys

    @property
    def nodes(self) -> tuple[NodeInfo, ...]:
        """Every node, in the compiled topological order."""
        return tuple(NodeInfo(self, i) for i in range(len(self._keys)))

    @property
    def inputs(self) -> tuple[InputSpec, ...]:
        """The graph inputs, in declaration order."""
        return self._inputs

    @property
    def outputs(self) -> tuple[str, ...]:
        """The output names, in declaration order."""
        return tuple(name for name, _ in self._outputs)

    @property
    def sections(self) -> tuple[SectionInfo, ...]:
        """Every section call, outer before inner."""
        return self._sections

    @property
    def portable(self) -> bool:
        """True when every task function and constant pickles with cloudpickle."""
        return not self._pickle_problems

    @property
    def pickle_problems(self) -> tuple[Problem, ...]:
        """What does not pickle (empty when :attr:`portable`)."""
        return self._pickle_problems

    def require_portable(self, why: str) -> None:
        """Raise unless the plan is portable.

        Raises:
            GraphError: listing everything that does not pickle.
        """
        if self._pickle_problems:
            problems = list(self._pickle_problems)
            raise GraphError(
                problems, what=f"graph {self.name!r} ({why} needs every task and constant to pickle)"
            )

    @property
    def fingerprint(self) -> str:
        """A SHA-256 hex digest of the structure, constants and task code.

        Stable across processes and machines for the same code; computed on first use.
        """
        fp = self._fingerprint
        if fp is None:
            from .fingerprint import plan_fingerprint

            fp = plan_fingerprint(self)
            object.__setattr__(self, "_fingerprint", fp)
        return fp

    def node(self, key: str) -> NodeInfo:
        """The :class:`NodeInfo` of ``key``.

        Raises:
            KeyError: when the plan has no such node.
        """
        idx = self._index.get(key)
        if idx is None:
            raise KeyError(f"plan {self.name!r} has no node {key!r}")
        return NodeInfo(self, idx)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able manifest of the plan: no functions, no values."""
        from .._typecheck import format_type, short_repr

        return {
            "name": self.name,
            "fingerprint": self.fingerprint,
            "inputs": [
                {
                    "name": i.name,
                    "type": format_type(i.type),
                    "required": i.required,
                    **({} if i.required else {"default": short_repr(i.default)}),
                }
                for i in self._inputs
            ],
            "outputs": [{"name": name, "key": self._slot_key(slot)} for name, slot in self._outputs],
            "nodes": [
                {
                    "key": n.key,
                    "task": n.task,
                    "function": n.function,
                    "deps": list(n.deps),
                    "section": n.section,
                    "call_site": n.call_site,
                }
                for n in self.nodes
            ],
            "sections": [
                {
                    "path": s.path,
                    "name": s.name,
                    "parent": s.parent,
                    "inputs": dict(s.inputs),
                    "output": s.output,
                    "nodes": list(s.nodes),
                    "call_site": s.call_site,
                }
                for s in self._sections
            ],
            "portable": self.portable,
        }

    def to_dot(self, *, collapse: bool | Sequence[str] | None = None, expand: bool = False) -> Any:
        """The plan as a ``graphviz.Digraph``: nodes labelled with key and task, inputs and
        outputs apart, sections as nested clusters, edges labelled with the parameter they feed.

        Args:
            collapse: True to draw each outermost section as one node, False for none,
                or a list of section paths; None collapses every section when the plan
                has more than 1,000 nodes (and the picture says so).
            expand: True to draw every node whatever the size.

        Returns:
            A ``graphviz.Digraph`` (its ``.source`` is the DOT text; rendering to SVG or
            PNG needs Graphviz's ``dot`` program).

        Raises:
            ImportError: when the ``graphviz`` package is not installed.
            ValueError: for an unknown section path in ``collapse``, or ``expand=True``
                with ``collapse``.
        """
        from .._dot import to_dot

        return to_dot(self, collapse=collapse, expand=expand)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        """Jupyter's display: the picture as SVG (``text/plain`` without Graphviz's ``dot``)."""
        from .._dot import repr_mimebundle

        return repr_mimebundle(self, include, exclude)

    def to_html(self, path: str | PathLike[str]) -> None:
        """Write the plan as one self-contained HTML page: click a node to see its details.

        The page holds the picture as SVG (rendered by Graphviz's ``dot``) and a
        little JS, and loads nothing from the network (docs/pictures.md).

        Args:
            path: the file to write, e.g. ``"plan.html"``; an existing file is replaced.

        Raises:
            RuntimeError: when Graphviz's ``dot`` program is not installed.
            OSError: when the file cannot be written; an existing file is left as it was.
        """
        from .._html import to_html

        to_html(self, path)

    def save(self, path: str | PathLike[str], key: bytes | str | None = None) -> None:
        """Write the plan to ``path`` as an artifact that :func:`dagexec.load` reads back.

        The file is written atomically (a temporary file beside it, then a rename).
        The code of the user's own modules travels inside it; installed packages
        travel by reference and are listed as requirements (docs/artifacts.md).

        Args:
            path: where to write, e.g. ``"etl.dagx"``; an existing file is replaced.
            key: bytes or str to sign the file with (HMAC-SHA256); None uses the
                ``DAGEXEC_KEY`` environment variable when it is set, else leaves the
                file unsigned.

        Raises:
            SigningKeyError: when ``key``, or ``DAGEXEC_KEY``, is set but empty (what a
                missing CI secret expands to); nothing is written.
            TypeError: when ``key`` is not bytes or str.
            GraphError: when the plan is not portable, before anything is written.
            ArtifactError: (reason ``unpicklable``) when the user's code does not
                pickle by value; nothing is written.
            OSError: when the file cannot be written; an existing file is left as it was.
        """
        from .._artifact import save

        save(self, path, key)

    def _slot_key(self, slot: int) -> str:
        n = len(self._keys)
        if slot < n:
            return self._keys[slot]
        if slot < n + len(self._inputs):
            return self._inputs[slot - n].name
        from .._typecheck import short_repr

        return short_repr(self._consts[slot - n - len(self._inputs)])

    # -- the cache -----------------------------------------------------------------
    def cache_keys(
        self, inputs: Mapping[str, Any] | None = None, **input_values: Any
    ) -> dict[str, str | None]:
        """Every node's cache key for these graph inputs (None: not cacheable), computed
        without running anything (``docs/cache.md``).

        Raises:
            InputError: for missing, unknown or wrongly typed inputs.
        """
        from ..cache.keys import node_keys
        from .arguments import bind_arguments

        values = bind_arguments(self, inputs, input_values, None, None).input_values
        return dict(zip(self._keys, node_keys(self, values).keys, strict=True))

    def explain(
        self,
        inputs: Mapping[str, Any] | None = None,
        *,
        cache: Any,
        only: Sequence[str] | str | None = None,
        skip: Sequence[str] | str | None = None,
        keep: Sequence[str] | str | None = None,
        **input_values: Any,
    ) -> list[Explanation]:
        """What ``run(cache=cache, ...)`` would do with each node, and why, in plan
        order; nothing runs and no value is loaded.

        Raises:
            InputError: for bad inputs, ``only``/``skip`` or ``keep`` keys.
            TypeError: when ``cache`` is neither a folder nor a CacheStore.
        """
        from ..cache.decide import explain, open_store
        from ..cache.keys import node_keys
        from .arguments import bind_arguments

        store = open_store(cache)
        if store is None:
            raise TypeError("explain() needs cache=: a folder or a dagexec.CacheStore")
        values, selected, kept = bind_arguments(self, inputs, input_values, only, skip, keep)
        return explain(self, store, node_keys(self, values), selected, kept)

    # -- running ---------------------------------------------------------------------
    def run(
        self,
        inputs: Mapping[str, Any] | None = None,
        *,
        executor: Any = "threads",
        max_workers: int | None = None,
        scheduler: str | None = None,
        only: Sequence[str] | str | None = None,
        skip: Sequence[str] | str | None = None,
        fail_fast: bool = True,
        cache: Any = None,
        resume: bool = False,
        keep: Sequence[str] | str | None = None,
        callbacks: Sequence[Any] = (),
        progress: bool = False,
        raise_on_failure: bool = True,
        check_mutation: bool = False,
        bundles: str | PathLike[str] | None = None,
        bundle_personal: bool = False,
        events: Any = None,
        trace: bool | None = None,
        **input_values: Any,
    ) -> RunResult:
        """Run the plan and return its :class:`~dagexec.RunResult`.

        Args:
            inputs: graph input values by name (the form that works for any name).
            executor: ``"serial"``, ``"threads"``, ``"loky"``, ``"dask"``, an
                executor object, a ``concurrent.futures.Executor``, or a mapping from
                route names (``@task(executor="cpu")``) to those, with ``"default"``
                for the rest.
            max_workers: workers for executors created from a name (for ``"dask"``,
                the trials in flight on the cluster).
            scheduler: for ``executor="dask"`` only: the address of the dask
                scheduler to run on (``"tcp://host:8786"``), through a client the
                run makes and closes; default: the current client.
            only: run just these keys or section paths and what they need.
            skip: do not run these keys or sections, nor what needs them.
            fail_fast: on a failure, cancel what has not started (default), or with
                False keep running branches that do not depend on it.
            cache: a folder or a :class:`~dagexec.CacheStore`: nodes whose cache key
                is in it are ``cached`` (their values loaded only where needed), the
                values of the nodes that run are written to it (``docs/cache.md``).
            resume: with ``cache``, continue the last run of this plan with these
                inputs from its journal: what succeeded there does not run again (a
                killed run, or one that failed), and its trials come first in the result.
            keep: keys (or ``"all"``) whose values stay in the result besides outputs.
            callbacks: objects with any of ``on_run_start(plan)``,
                ``on_trial_start(trial)``, ``on_trial_end(trial)``, ``on_run_end(result)``.
            progress: show a progress bar on stderr.
            raise_on_failure: raise :class:`~dagexec.RunFailed` when a node failed.
            check_mutation: digest every argument before and after each trial, where
                the trial runs, and fail a trial that changed one in place with
                :class:`~dagexec.MutationError` (naming the node, the parameter and
                where the value came from); values that do not pickle are not
                checked.  Off by default: it costs a pickling of each argument twice.
            bundles: a folder: each failed trial (its last attempt) is written there
                as a repro bundle, named by its ``Trial.bundle`` (docs/debugging.md).
            bundle_personal: also write the user and host names, the working
                directory and the environment variables into each bundle.
            events: a file's path, or an open stream: the run's events as JSON lines,
                each flushed as written (docs/observability.md).
            trace: OpenTelemetry spans of the run and of each trial, through the
                caller's tracer provider (``dagexec[otel]``); None: as
                ``DAGEXEC_TRACE=1`` says (docs/observability.md).
            **input_values: graph input values by name.

        Returns:
            The run's result.

        Raises:
            InputError: for bad inputs, ``only``/``skip`` keys or executors (also
                ``"dask"`` with no client to use, or ``scheduler`` with another
                executor), or any argument of the wrong type (``inputs`` that is not
                a mapping, ``fail_fast="no"``, ``cache=""``, ...), before anything
                is made or runs.
            RunFailed: when a node failed and ``raise_on_failure`` is True.
            KeyboardInterrupt: on Ctrl-C, after unfinished nodes are marked cancelled.
        """
        options = {k: v for k, v in locals().items() if k not in ("self", "inputs", "input_values")}
        from .._api import run
        from ..run.config import RunConfig

        return run(self, inputs, RunConfig(**options), named=input_values)
