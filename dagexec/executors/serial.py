"""``SerialExecutor``: runs each trial at once, in the master thread.

The fastest executor for tiny tasks and the friendliest to debuggers.  It cannot
pre-empt a task: a trial that returns after its task's ``timeout`` is marked
``timed_out`` and its value discarded.  On Ctrl-C the processes the trial started
are killed with what they started (:func:`~dagexec.run.worker.run_call` does it, as
it runs the trial with ``reraise_interrupt``).  From its first trial to its end, a
run watches the processes its trials start, so that they die with a killed master
(:func:`~dagexec._proctree.watch_children`).
"""

from __future__ import annotations

from collections.abc import Callable

from ..run.protocol import Call, Executor, Outcome
from ..run.worker import run_call


class SerialExecutor(Executor):
    """Runs trials one at a time in the calling thread."""

    name = "serial"
    _watch: float | None = None  # the watch over the processes of the run in progress

    @property
    def capacity(self) -> int:
        """One trial at a time."""
        return 1

    def submit(self, call: Call, post: Callable[[Outcome], None]) -> Outcome:
        """Run ``call`` now and return its outcome."""
        if self._watch is None:  # the run's first trial
            from .._proctree import watch_children

            self._watch = watch_children()
        return run_call(call, "master", reraise_interrupt=True)

    def run_ended(self) -> None:
        """The run's processes are no longer watched."""
        watch, self._watch = self._watch, None
        if watch is not None:
            from .._proctree import unwatch_children

            unwatch_children(watch)

    def __repr__(self) -> str:
        return "SerialExecutor()"
