"""The base class of every runner: what run.py and the workloads ask of one.

See runners.py for what a runner is and how to add one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from shapes import Dag

__all__ = ["Runner"]


class Runner:
    """Base class; see the docstring of runners.py."""

    name = ""
    family = ""
    mode = ""
    #: the largest graph :meth:`build` is measured on (None: no cap)
    max_build_nodes: int | None = None
    #: the most timed repetitions of :meth:`build` (None: as many as ``--reps``)
    max_build_reps: int | None = None
    #: modules the runner imports (beyond dagexec), and the pip requirement giving them
    requires: tuple[str, ...] = ()
    install_hint = "pip install -e '.[bench]'"

    def missing(self) -> str | None:
        """Why this runner cannot run here (a module it needs is not installed), or None."""
        import importlib.util

        absent = [m for m in self.requires if importlib.util.find_spec(m) is None]
        if not absent:
            return None
        return f"{', '.join(absent)} not installed ({self.install_hint})"

    def source(self, dag: Dag) -> Any:
        """What :meth:`build` starts from, as a user would have written it (untimed)."""
        return dag

    def prepare(self, dag: Dag) -> Any:
        """Everything the timed phases need, made once per process (untimed)."""
        raise NotImplementedError

    def phases(self, prepared: Any) -> dict[str, Callable[[], Any]]:
        """Timed phases by name; ``"run"`` is the main one."""
        return {"run": lambda: self.run(prepared)}

    def run(self, prepared: Any) -> Any:
        """Run the prepared graph once; return the checksum."""
        raise NotImplementedError

    def build(self, source: Any) -> Any:
        """Build the runner's graph from ``source``, what :meth:`source` made of a Dag
        (timed by the build workloads)."""
        raise NotImplementedError

    #: ``compile(built) -> runnable``, or None when the library has no such step
    compile: Callable[[Any], Any] | None = None

    def versions(self) -> dict[str, str]:
        """Library versions to record with the results."""
        return {}

    def info(self) -> dict[str, Any]:
        """Facts the runner saw while it was measured, kept in the results."""
        return {}
