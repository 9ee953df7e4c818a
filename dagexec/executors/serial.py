"""``SerialExecutor``: runs each trial at once, in the master thread.

The fastest executor for tiny tasks and the friendliest to debuggers.  It cannot
pre-empt a task: a trial that returns after its task's ``timeout`` is marked
``timed_out`` and its value discarded.  On Ctrl-C the processes the trial started
are killed with what they started (:func:`~dagexec.run.worker.run_call` does it, as
it runs the trial with ``reraise_interrupt``).  The engine runs a plain node's trial
itself, as :meth:`SerialExecutor.submit` would (:mod:`dagexec.run.here`, without a
call object: the fast path).  From its start to its end, a run watches the processes
its trials start, so that they die with a killed master
(:func:`~dagexec._proctree.watch_children`).
"""

from __future__ import annotations

from collections.abc import Callable

from ..run.batches import run_batch
from ..run.protocol import Batch, BatchDone, Call, Executor, Outcome
from ..run.worker import run_call


class SerialExecutor(Executor):
    """Runs trials one at a time in the calling thread."""

    name = "serial"
    _watch: float | None = None  # the watch over the processes of the run in progress

    @property
    def capacity(self) -> int:
        """One trial at a time."""
        return 1

    @property
    def runs_in_master(self) -> bool:  # type: ignore[override]
        """True: the engine runs plain trials itself, as :meth:`submit` would; False in a
        subclass that overrides :meth:`submit`, whose every trial is then submitted."""
        return type(self).submit is SerialExecutor.submit

    @property
    def batches(self) -> bool:  # type: ignore[override]
        """True: a pipe (a stream and what it feeds), or a chain the engine does not run
        itself, runs as one batch (:meth:`submit_batch`); False in a subclass that
        overrides :meth:`submit`, which then sees every trial (a stream's producer runs
        alone, its readers iterate over its list)."""
        return type(self).submit is SerialExecutor.submit

    def run_starting(self) -> None:
        """From here to its end, the run watches the processes its trials start."""
        if self._watch is None:
            from .._proctree import watch_children

            self._watch = watch_children()

    def submit(self, call: Call, post: Callable[[Outcome], None]) -> Outcome:
        """Run ``call`` now and return its outcome."""
        if self._watch is None:  # not told of the run (an engine of another kind)
            self.run_starting()
        return run_call(call, "master", reraise_interrupt=True)

    def submit_batch(self, batch: Batch, post: Callable[[BatchDone], None]) -> BatchDone:
        """Run ``batch`` now (a pipe interleaved, :mod:`dagexec.run.pipes`) and return
        its members' outcomes."""
        if self._watch is None:
            self.run_starting()
        return run_batch(batch, "master")

    def run_ended(self) -> None:
        """The run's processes are no longer watched."""
        watch, self._watch = self._watch, None
        if watch is not None:
            from .._proctree import unwatch_children

            unwatch_children(watch)

    def __repr__(self) -> str:
        return "SerialExecutor()"
