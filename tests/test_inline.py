"""Trials measured tiny run in the master thread on the threads executor.

A hand-off to a worker thread and back costs more than a trial of a microsecond, so
the engine runs a trial in the master when its function's trials took under
``INLINE_S`` (a running average), its task has no timeout, is not ``async def`` and
is not a shell command.  The first trials of each function go to threads (nothing is
measured yet); a function that turns slow goes back to them.  Such a trial's record
says where it ran: its worker is ``"master"``.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Any

import pytest

import dagexec as dx
from dagexec import State
from dagexec._plan import NodeSpec
from dagexec._shell import run_command
from dagexec.executors import ThreadExecutor
from dagexec.run.batching import INLINE_S, Batching
from dagexec.run.protocol import Call

SUCCEEDED, CANCELLED = State.SUCCEEDED, State.CANCELLED


class Counting(ThreadExecutor):
    """Threads that count the trials submitted to them (batches by their members)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.submitted: list[str] = []

    def submit(self, call: Any, post: Any) -> Any:
        if type(call) is Call:
            self.submitted.append(call.key)
        return super().submit(call, post)

    def submit_batch(self, batch: Any, post: Any) -> Any:
        self.submitted.extend(call.key for call in batch.calls)
        return super().submit_batch(batch, post)


@dx.task
def square(x: int) -> int:
    return x * x


@dx.task
def collect(xs: list[int]) -> int:
    return sum(xs)


def fan(n: int, task: Any = square) -> dx.CompiledGraph:
    with dx.Graph("fan") as g:
        collect([task(i) for i in range(n)])
    return g.compile()


def workers(result: dx.RunResult) -> dict[str, str]:
    return {key: trials[-1].worker for key, trials in result.trials.items()}


def test_tiny_trials_run_in_the_master_once_measured_and_say_so():
    executor = Counting(2)
    result = fan(200).run(executor=executor)
    assert result.output == sum(i * i for i in range(200))
    assert result.states == dict.fromkeys(result.states, SUCCEEDED)
    where = workers(result)
    submitted = set(executor.submitted)
    # what was submitted ran in a worker thread, everything else in the master
    assert {k for k, w in where.items() if w != "master"} == submitted
    assert all(where[k].startswith("dagexec-") for k in submitted)
    # the first squares go to threads until one has been measured; most run in the master
    assert {"square", "square-1"} <= submitted
    # (a trial slowed by the machine now and then may send a few back to the threads)
    assert sum(1 for k in where if k.startswith("square") and where[k] == "master") >= 150
    for trials in result.trials.values():
        (trial,) = trials
        assert trial.attempt == 1 and trial.state is SUCCEEDED
        assert trial.end is not None and trial.start <= trial.end


def test_threads_without_inline_submit_every_trial():
    executor = Counting(2, inline=False)
    result = fan(100).run(executor=executor)
    assert result.output == sum(i * i for i in range(100))
    assert sorted(executor.submitted) == sorted(result.trials)
    assert "master" not in workers(result).values()
    assert repr(executor) == "ThreadExecutor(max_workers=2, inline=False)"
    assert repr(ThreadExecutor(2)) == "ThreadExecutor(max_workers=2)"


def test_inline_must_be_a_bool():
    with pytest.raises(TypeError, match=r"^inline must be True or False, got 'yes'$"):
        ThreadExecutor(2, inline="yes")  # type: ignore[arg-type]


@dx.task(timeout=30)
def square_in_time(x: int) -> int:
    return x * x


def test_a_task_with_a_timeout_always_runs_in_a_thread():
    executor = Counting(2)
    result = fan(60, square_in_time).run(executor=executor)
    assert result.output == sum(i * i for i in range(60))
    assert sorted(executor.submitted) == sorted(result.trials)
    assert all(w.startswith("dagexec-") for w in workers(result).values())


SLOW_FROM = 20


@dx.task
def turns_slow(x: int) -> int:
    if x >= SLOW_FROM:
        threading.Event().wait(0.02)  # 20 ms: a thousand times the inline limit
    return x


def test_a_function_that_turns_slow_goes_back_to_the_threads():
    # max_workers=2: turns_slow-0 and -1 go to threads; once one is measured, the rest
    # of the quick ones run in the master, and so do the first two slow ones (one slow
    # trial alone may be the machine's doing): after them, the others go to threads.
    # (A quick trial the machine slowed just before counts as the first of the two.)
    with dx.Graph("g") as g:
        collect([turns_slow(i) for i in range(40)])
    result = g.compile().run(executor=Counting(2))
    assert result.output == sum(range(40))
    where = workers(result)
    slow_keys = [f"turns_slow-{i}" for i in range(SLOW_FROM, 40)]
    in_master = [k for k in slow_keys if where[k] == "master"]
    assert in_master in (slow_keys[:2], slow_keys[:1], [])
    assert all(where[k].startswith("dagexec-") for k in slow_keys[len(in_master) :])
    assert sum(1 for i in range(2, SLOW_FROM) if where[f"turns_slow-{i}"] == "master") >= 10


def test_sleeping_tasks_keep_their_threads():
    # each waits on a barrier of 4: were two of them ever run one after the other in
    # one thread, the barrier would break (BrokenBarrierError fails the trial)
    barrier = threading.Barrier(4, timeout=30)

    @dx.task
    def meet(x: int) -> int:
        barrier.wait()
        return x

    with dx.Graph("g") as g:
        collect([meet(i) for i in range(12)])
    result = g.compile().run(executor=ThreadExecutor(4))
    assert result.output == sum(range(12))
    assert not any(w == "master" for k, w in workers(result).items() if k.startswith("meet"))


def test_a_shell_command_or_an_async_task_is_never_measured_quick():
    plan = fan(2)
    batching = Batching(plan, [ThreadExecutor(2)], 1, False, _FakeLoop(plan))
    assert batching.inline == [True] and batching.measured == [True]

    def outcome(took: float) -> tuple[Any, ...]:
        return (0, 1, True, 1, None, "", 100.0, 100.0 + took, "dagexec-1", "")

    spec = plan._specs[0]
    batching.observe(outcome(INLINE_S / 10))
    assert batching.quick == {spec.fn}
    batching.observe(outcome(INLINE_S * 100))  # a slow trial: the running average passes the limit
    assert batching.quick == set()
    for fn, coro in ((run_command, False), (spec.fn, True)):
        batching.specs = (NodeSpec("x", fn, None, (), None, None, None, coro), *plan._specs[1:])
        batching.est.clear()
        batching.observe(outcome(INLINE_S / 10))
        assert batching.quick == set()


class _FakeLoop:
    """The per-unit lists Batching reads, for a plan of plain nodes."""

    def __init__(self, plan: dx.CompiledGraph) -> None:
        n = len(plan._keys)
        self.route = [0] * n
        self.state = [0] * n
        self.kind = [0] * n
        self.owner = range(n)
        self.n_slots = self.n = n


def test_ctrl_c_during_a_trial_in_the_master_cancels_the_run():
    ended: list[dx.RunResult] = []

    class Record:
        def on_run_end(self, result: dx.RunResult) -> None:
            ended.append(result)

    fired: list[int] = []

    @dx.task
    def tiny(x: int) -> int:
        if x >= 30 and not fired and threading.current_thread() is threading.main_thread():
            fired.append(x)
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C, while this trial runs in the master
            time.sleep(5)  # the KeyboardInterrupt comes before this ends
        return x

    with dx.Graph("g") as g:
        collect([tiny(i) for i in range(60)])
    with pytest.raises(KeyboardInterrupt):
        g.compile().run(executor="threads", max_workers=2, callbacks=[Record()])
    (result,) = ended
    (x,) = fired
    (trial,) = result.trials[f"tiny-{x}"]
    assert (trial.state, trial.worker) == (CANCELLED, "master")
    assert result.states[f"tiny-{x}"] is CANCELLED and result.states["collect"] is CANCELLED
    # what ended before it succeeded; nothing after it ran (what was in flight on a
    # thread was abandoned and cancelled)
    assert set(result.states.values()) == {SUCCEEDED, CANCELLED}
    assert all(result.states[f"tiny-{i}"] is CANCELLED for i in range(x + 1, 60))
    assert sum(1 for i in range(2, x) if result.states[f"tiny-{i}"] is SUCCEEDED) >= 20
