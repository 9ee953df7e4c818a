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

A pipe whose producer feeds a map (``Batch.outlets``) runs in steps: up to its next
item for the map, which goes to the master (:class:`~dagexec.run.protocol.Items`);
the pipe resumes when the engine has taken it (:meth:`SerialExecutor.more`), so the
map's item trials run in the master thread between the producer's items.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

from ..run.batches import run_batch
from ..run.pipes import pipe_steps
from ..run.protocol import Batch, BatchDone, Call, Executor, Items, Outcome
from ..run.worker import run_call


class SerialExecutor(Executor):
    """Runs trials one at a time in the calling thread."""

    name = "serial"
    outlets = True
    _watch: float | None = None  # the watch over the processes of the run in progress

    def __init__(self) -> None:
        # the pipes paused after posting items for a map: batch -> (its steps, post)
        self._paused: dict[Batch, tuple[Generator[tuple[int, list[Any]], None, BatchDone], Any]] = {}

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

    def submit_batch(self, batch: Batch, post: Callable[[Any], None]) -> BatchDone | None:
        """Run ``batch`` now (a pipe interleaved, :mod:`dagexec.run.pipes`) and return
        its members' outcomes."""
        if self._watch is None:
            self.run_starting()
        if batch.outlets:
            self._paused[batch] = (pipe_steps(batch, "master"), post)
            return self._step(batch)
        return run_batch(batch, "master")

    def _step(self, batch: Batch) -> BatchDone | None:
        """Run paused pipe ``batch`` up to its next items for a map (posted: None) or
        its end (its BatchDone)."""
        steps, post = self._paused[batch]
        try:
            k, items = next(steps)
        except StopIteration as end:
            del self._paused[batch]
            return end.value  # type: ignore[no-any-return]
        except BaseException:
            del self._paused[batch]
            raise
        post(Items(batch, batch.calls[k].idx, items))
        return None

    def more(self, batch: Batch) -> None:
        """The engine took a pipe's items: the pipe runs on, to its next ones."""
        if batch in self._paused:
            post = self._paused[batch][1]
            done = self._step(batch)
            if done is not None:
                post(done)

    def stop_batch(self, batch: Batch) -> None:
        """fail_fast stopped the run: a paused pipe runs on to its end, giving no more."""
        self.more(batch)

    def abandon(self, call: Call | Batch) -> None:
        """The run was interrupted: a paused pipe's generators are closed."""
        paused = self._paused.pop(call, None) if type(call) is Batch else None
        if paused is not None:
            paused[0].close()

    def run_ended(self) -> None:
        """The run's processes are no longer watched."""
        watch, self._watch = self._watch, None
        if watch is not None:
            from .._proctree import unwatch_children

            unwatch_children(watch)

    def __repr__(self) -> str:
        return "SerialExecutor()"
