"""Batches (DESIGN §5, §12): linear chains fused into one submission, tiny trials
several to a submission, on threads and on real loky workers.

A batch must not change what a run reports: every member keeps its own trial, its
own retries and its own state, callbacks see what they would see unbatched, and a
crash, a failure or a value that cannot travel is charged to the member that caused
it.  The executors here are the real ones, subclassed only to record what the engine
hands them.  Tasks live at module level (workers import this module to find them)
and synchronise through files in ``tmp_path``; ``GUARD`` caps a wait so that a
broken engine fails a test instead of hanging it, and no assertion depends on how
long anything took.
"""

import itertools
import os
import pickle
import threading
import time
from pathlib import Path
from typing import Any, NamedTuple

import cloudpickle
import pytest

import dagexec as dx
from dagexec import State
from dagexec._worker import Batch, Call
from dagexec.executors import LokyExecutor, ThreadExecutor
from dagexec.run.batching import MAX_BATCH

SUCCEEDED = State.SUCCEEDED
FAILED = State.FAILED
UPSTREAM_FAILED = State.UPSTREAM_FAILED
CANCELLED = State.CANCELLED
CRASHED = State.CRASHED
RUNNING = State.RUNNING

GUARD = 30.0  # seconds: a cap on waiting for something that must happen, never a check


# -- helpers (also used inside workers) --------------------------------------------------


def await_path(path: str | Path, what: str) -> None:
    """Wait until ``path`` exists."""
    deadline = time.monotonic() + GUARD
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {GUARD:g} s for {what}")
        time.sleep(0.005)


def wait_until(predicate: Any, what: str) -> None:
    deadline = time.monotonic() + GUARD
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {GUARD:g} s for {what}")
        time.sleep(0.01)


def count_call(path: str) -> int:
    """Append a mark to ``path``; return how many marks it holds (works across processes)."""
    with open(path, "a") as f:
        f.write("x")
    with open(path) as f:
        return len(f.read())


def alive(pid: int) -> bool:
    """False for a process that is gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rpartition(b")")[2].split()[0] not in (b"Z", b"X")
    except FileNotFoundError:
        return False


def loky_workers(parent: int) -> set[int]:
    """Live loky worker processes whose parent is ``parent``."""
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                fields = f.read().rpartition(b")")[2].split()
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
        except OSError:
            continue
        if int(fields[1]) == parent and fields[0] not in (b"Z", b"X") and b"popen_loky_posix" in cmdline:
            found.add(int(entry))
    return found


def assert_workers_settle(most: int, gone: tuple[int, ...] = ()) -> None:
    """This process ends up with at most ``most`` loky workers, and the ``gone`` pids dead."""
    wait_until(lambda: not any(alive(pid) for pid in gone), f"processes {sorted(gone)} to end")
    wait_until(lambda: len(loky_workers(os.getpid())) <= most, f"at most {most} loky workers")


def trial_log(result: dx.RunResult, key: str) -> list[tuple[int, State]]:
    """(attempt, state) of each trial of ``key``."""
    return [(t.attempt, t.state) for t in result.trials[key]]


def all_trial_logs(result: dx.RunResult) -> dict[str, list[tuple[int, State]]]:
    return {key: trial_log(result, key) for key in result.trials}


# -- executors that record what the engine hands them ---------------------------------------


class Sent(NamedTuple):
    """One submission: a batch or a single trial, with its members' (key, attempt)."""

    batch: bool
    members: tuple[tuple[str, int], ...]
    linked: tuple[bool, ...]


class Recording:
    """Records every submission, then lets the real executor run it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sent: list[Sent] = []

    def submit(self, call: Any, post: Any) -> Any:
        if type(call) is Call:  # ThreadExecutor.submit_batch hands batches to submit too
            self.sent.append(Sent(False, ((call.key, call.attempt),), (False,)))
        return super().submit(call, post)

    def submit_batch(self, batch: Batch, post: Any) -> Any:
        members = tuple((call.key, call.attempt) for call in batch.calls)
        self.sent.append(Sent(True, members, tuple(batch.linked)))
        return super().submit_batch(batch, post)

    def sizes(self) -> list[int]:
        return [len(s.members) for s in self.sent]

    def batch_of(self, key: str, attempt: int) -> Sent:
        """The submission that carried attempt ``attempt`` of ``key``."""
        (found,) = [s for s in self.sent if (key, attempt) in s.members]
        return found


class RecordingThreads(Recording, ThreadExecutor):
    pass


class RecordingLoky(Recording, LokyExecutor):
    pass


def recording(kind: str) -> Recording:
    # threads that submit every trial: tiny ones would otherwise run in the master
    # (tests/test_inline.py), and these tests are about what goes in a submission
    return RecordingThreads(2, inline=False) if kind == "threads" else RecordingLoky(2)


KINDS = ["threads", "loky"]


class Recorder:
    """Callbacks that record (event, key, attempt, state), and the start a trial had when it began."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []
        self.starts: dict[tuple[str, int], float] = {}

    def on_trial_start(self, trial: dx.Trial) -> None:
        self.events.append(("trial_start", trial.key, trial.attempt, trial.state))
        self.starts[trial.key, trial.attempt] = trial.start

    def on_trial_end(self, trial: dx.Trial) -> None:
        self.events.append(("trial_end", trial.key, trial.attempt, trial.state))

    def on_run_end(self, result: dx.RunResult) -> None:
        self.events.append(("run_end", result.ok))


class TouchOnFailure:
    """Creates ``path`` when the master records a failed trial."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def on_trial_end(self, trial: dx.Trial) -> None:
        if trial.state is FAILED:
            self.path.touch()


# -- tasks ------------------------------------------------------------------------------------


@dx.task
def inc(x: int) -> int:
    return x + 1


@dx.task
def add(a: int, b: int) -> int:
    return a + b


@dx.task
def collect(items: list[Any]) -> list[Any]:
    return list(items)


@dx.task(retries=1)
def flaky_inc(x: int, marks: str) -> int:
    """Attempt 1 raises; attempt 2 returns ``x + 1``."""
    if count_call(f"{marks}/flaky_inc") == 1:
        raise ValueError(f"first attempt at {x}")
    return x + 1


@dx.task
def explode(x: int) -> int:
    raise ValueError(f"bad value {x}")


@dx.task
def hold(x: Any) -> int:
    return 1


@dx.task(timeout=GUARD)
def timed_inc(x: int) -> int:
    return x + 1


@dx.task(retries=1)
def tiny(i, dies_at=""):
    """Squares ``i``; the first call given ``dies_at`` writes its pid there and exits its worker."""
    if dies_at and not os.path.exists(dies_at):
        Path(dies_at).write_text(str(os.getpid()))
        os._exit(3)
    return i * i


@dx.task(retries=1)
def exit_once_inc(x: int, marks: str) -> int:
    """Attempt 1 writes its pid to ``marks/died`` and exits its worker; attempt 2 returns ``x + 1``."""
    if not os.path.exists(f"{marks}/died"):
        Path(f"{marks}/died").write_text(str(os.getpid()))
        os._exit(3)
    return x + 1


@dx.task
def exit_always(x: int) -> int:
    os._exit(3)


@dx.task
def inc_when_failure_seen(x: int, marks: str) -> int:
    """Says it started, then returns only once the master has recorded a failure."""
    Path(f"{marks}/started").touch()
    await_path(f"{marks}/failure-seen", "the master to record the failure")
    return x + 1


@dx.task
def explode_once_started(marks: str) -> int:
    await_path(f"{marks}/started", "the chain's second member to start")
    raise ValueError("bad")


# values that record where they are pickled and unpickled


class Token:
    """A value that appends ``dump <pid> <n>`` to ``log`` when pickled and
    ``load <pid> <n>`` when unpickled."""

    def __init__(self, n: int, log: str) -> None:
        self.n = n
        self.log = log

    def __reduce__(self) -> tuple[Any, ...]:
        with open(self.log, "a") as f:
            f.write(f"dump {os.getpid()} {self.n}\n")
        return (_load_token, (self.n, self.log))


def _load_token(n: int, log: str) -> Token:
    with open(log, "a") as f:
        f.write(f"load {os.getpid()} {n}\n")
    return Token(n, log)


def token_events(log: Path) -> list[tuple[str, int, int]]:
    if not log.exists():
        return []
    return [
        (what, int(pid), int(n)) for what, pid, n in (line.split() for line in log.read_text().splitlines())
    ]


@dx.task
def first_token(log: str) -> Token:
    return Token(0, log)


@dx.task
def next_token(t: Token) -> Token:
    return Token(t.n + 1, t.log)


class Locked:
    """A value that does not pickle: it holds a lock."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.lock = threading.Lock()


@dx.task
def make_locked(x: int) -> Locked:
    return Locked(x)


@dx.task
def use_locked(v: Locked) -> int:
    with v.lock:
        return v.n + 1


@dx.task
def refuse(v: Any) -> int:
    raise ValueError(f"refused {type(v).__name__}")


# -- fused chains ---------------------------------------------------------------------------------


def chain_plan(n: int) -> dx.CompiledGraph:
    with dx.Graph("chain") as g:
        x = inc(g.input("start", int))
        for _ in range(n - 1):
            x = inc(x)
    return g.compile()


@pytest.mark.parametrize("length", [200, 2 * MAX_BATCH + 10])
@pytest.mark.parametrize("kind", KINDS)
def test_a_chain_runs_in_few_submissions_with_one_trial_per_node(kind, length):
    plan = chain_plan(length)
    keys = plan.keys
    assert keys == ("inc", *(f"inc-{k}" for k in range(1, length)))
    assert plan.run(start=5, executor="serial").output == 5 + length
    executor = recording(kind)
    result = plan.run(start=5, executor=executor)
    assert result.output == 5 + length
    assert result.outputs == {keys[-1]: 5 + length}
    # one batch per MAX_BATCH members, each member but the first linked to the one before
    chunks = [keys[k : k + MAX_BATCH] for k in range(0, length, MAX_BATCH)]
    assert len(executor.sent) <= length // MAX_BATCH + 1
    assert executor.sent == [
        Sent(True, tuple((key, 1) for key in chunk), (False,) + (True,) * (len(chunk) - 1))
        for chunk in chunks
    ]
    assert result.states == dict.fromkeys(keys, SUCCEEDED)
    assert all_trial_logs(result) == {key: [(1, SUCCEEDED)] for key in keys}
    trials = [result.trials[key][0] for key in keys]
    for trial, key in zip(trials, keys, strict=True):
        assert trial.key == key
        assert trial.end is not None and trial.start <= trial.end
        assert trial.error is None and trial.traceback == ""
    for before, after in itertools.pairwise(trials):
        assert before.start <= before.end <= after.start
    # the members of one batch ran on one worker
    for chunk in chunks:
        assert len({result.trials[key][0].worker for key in chunk}) == 1
    if kind == "loky":
        assert {t.worker for t in trials} <= {f"pid:{pid}" for pid in loky_workers(os.getpid())}


@pytest.mark.parametrize("kind", KINDS)
def test_a_chain_member_gets_its_predecessor_by_position_twice_by_keyword_and_after_only(kind):
    with dx.Graph("g") as g:
        a = inc(1)  # 2
        b = add(a, a)  # 4: reads a twice
        c = add(a=b, b=10)  # 14: reads b by keyword
        d = inc(100).after(c)  # 101: waits for c, reads nothing of it
        inc(d)  # 102
    plan = g.compile()
    assert plan.keys == ("inc", "add", "add-1", "inc-1", "inc-2")
    links = plan._chain_links()
    assert [plan.keys[j] if j >= 0 else None for j in links] == ["add", "add-1", "inc-1", "inc-2", None]
    executor = recording(kind)
    result = plan.run(executor=executor, keep="all")
    assert executor.sizes() == [5]
    assert {key: result[key] for key in plan.keys} == {
        "inc": 2,
        "add": 4,
        "add-1": 14,
        "inc-1": 101,
        "inc-2": 102,
    }
    assert all_trial_logs(result) == {key: [(1, SUCCEEDED)] for key in plan.keys}


def test_a_chain_is_fused_only_where_its_members_share_an_executor():
    routed = inc.options(name="elsewhere", executor="other")
    with dx.Graph("g") as g:
        inc(inc(routed(inc(inc(0)))))
    plan = g.compile()
    assert plan.keys == ("inc", "inc-1", "elsewhere", "inc-2", "inc-3")
    default, other = RecordingThreads(2, inline=False), RecordingThreads(2, inline=False)
    result = plan.run(executor={"default": default, "other": other})
    assert result.output == 5
    assert default.sent == [
        Sent(True, (("inc", 1), ("inc-1", 1)), (False, True)),
        Sent(True, (("inc-2", 1), ("inc-3", 1)), (False, True)),
    ]
    assert other.sent == [Sent(False, (("elsewhere", 1),), (False,))]
    assert all_trial_logs(result) == {key: [(1, SUCCEEDED)] for key in plan.keys}


def token_chain(log: Path, n: int, *, middle_output: bool = False) -> dx.CompiledGraph:
    """first_token -> next_token -> ... -> next_token-28 (for n = 30)."""
    with dx.Graph("tokens") as g:
        t = first_token(str(log))
        for k in range(1, n):
            t = next_token(t)
            if middle_output and k == 11:
                g.output(t, name="middle")
        if middle_output:
            g.output(t, name="last")
    return g.compile()


def test_a_fused_chain_keeps_its_values_in_the_worker(tmp_path):
    log = tmp_path / "tokens"
    plan = token_chain(log, 30)
    executor = RecordingLoky(2)
    result = plan.run(executor=executor)
    assert executor.sizes() == [30]
    assert result.output.n == 29
    # only the output was pickled (in its worker) and unpickled (here)
    (worker,) = {t.worker for trials in result.trials.values() for t in trials}
    assert token_events(log) == [("dump", int(worker[4:]), 29), ("load", os.getpid(), 29)]
    assert all_trial_logs(result) == {key: [(1, SUCCEEDED)] for key in plan.keys}
    with pytest.raises(KeyError, match="next_token-10"):
        result["next_token-10"]


@pytest.mark.parametrize("how", ["keep", "output"])
def test_a_kept_member_of_a_fused_chain_comes_back(how, tmp_path):
    log = tmp_path / "tokens"
    plan = token_chain(log, 30, middle_output=how == "output")
    keep = ["next_token-10"] if how == "keep" else None
    executor = RecordingLoky(2)
    result = plan.run(executor=executor, keep=keep)
    assert executor.sizes() == [30]
    assert result["next_token-10"].n == 11
    assert result["next_token-28"].n == 29
    if how == "output":
        assert {name: v.n for name, v in result.outputs.items()} == {"middle": 11, "last": 29}
    loaded = sorted(n for what, pid, n in token_events(log) if what == "load" and pid == os.getpid())
    assert loaded == [11, 29]
    assert sorted(n for what, _, n in token_events(log) if what == "dump") == [11, 29]
    assert all_trial_logs(result) == {key: [(1, SUCCEEDED)] for key in plan.keys}


# -- tiny trials ------------------------------------------------------------------------------------


def fan_plan(n: int, dies: int | None = None, dies_at: str = "") -> dx.CompiledGraph:
    with dx.Graph("fan") as g:
        collect([tiny(i, dies_at) if i == dies else tiny(i) for i in range(n)])
    return g.compile()


def test_tiny_trials_on_loky_go_several_to_a_submission():
    plan = fan_plan(300)
    expected = [i * i for i in range(300)]
    assert plan.run(executor="serial").output == expected
    executor = RecordingLoky(2)
    result = plan.run(executor=executor)
    assert result.output == expected
    # some submission carried several independent trials
    assert any(s.batch and s.linked.count(False) > 1 for s in executor.sent)
    assert len(executor.sent) < 300
    # every trial was submitted once
    members = sorted(m for s in executor.sent for m in s.members)
    assert members == sorted((key, 1) for key in plan.keys)
    assert result.states == dict.fromkeys(plan.keys, SUCCEEDED)
    assert all_trial_logs(result) == {key: [(1, SUCCEEDED)] for key in plan.keys}


def layered_plan(layers: int, width: int) -> dx.CompiledGraph:
    """``layers`` layers of ``width`` nodes, each adding two nodes of the layer before."""
    with dx.Graph("layered") as g:
        row = [inc(i) for i in range(width)]
        for _ in range(layers - 1):
            row = [add(row[k], row[(k + 1) % width]) for k in range(width)]
        collect(row)
    return g.compile()


def test_every_ready_tiny_trial_goes_in_the_batch():
    plan = layered_plan(20, 25)
    expected = plan.run(executor="serial").output
    executor = RecordingLoky(2)
    result = plan.run(executor=executor)
    assert result.output == expected
    assert all_trial_logs(result) == {key: [(1, SUCCEEDED)] for key in plan.keys}
    # what is ready goes in one submission, not shared out between the two workers:
    # 500 nodes in a few dozen submissions, not in one per few nodes
    assert len(executor.sent) <= len(plan.keys) // 10, str(executor.sizes())
    assert max(executor.sizes()) >= 20


def test_tiny_trials_are_not_batched_on_threads():
    executor = RecordingThreads(2, inline=False)
    plan = fan_plan(50)
    result = plan.run(executor=executor)
    assert result.output == [i * i for i in range(50)]
    assert executor.sizes() == [1] * 51
    assert not any(s.batch for s in executor.sent)


# -- failures inside a batch ----------------------------------------------------------------------


def abcd(middle: Any, *args: Any) -> dx.Graph:
    """a -> b -> c -> d, ``c`` calling ``middle``."""
    with dx.Graph("g") as g:
        a = inc.options(name="a")(1)
        b = inc.options(name="b")(a)
        c = middle.options(name="c")(b, *args)
        inc.options(name="d")(c)
    return g


@pytest.mark.parametrize("kind", KINDS)
def test_a_failed_member_is_retried_and_what_follows_it_runs_once(kind, tmp_path):
    plan = abcd(flaky_inc, str(tmp_path)).compile()
    executor = recording(kind)
    result = plan.run(executor=executor)
    assert result.output == 5
    assert result.states == dict.fromkeys("abcd", SUCCEEDED)
    assert all_trial_logs(result) == {
        "a": [(1, SUCCEEDED)],
        "b": [(1, SUCCEEDED)],
        "c": [(1, FAILED), (2, SUCCEEDED)],
        "d": [(1, SUCCEEDED)],
    }
    failed = result.trials["c"][0]
    assert type(failed.error) is ValueError
    assert str(failed.error) == "first attempt at 3"
    assert 'raise ValueError(f"first attempt at {x}")' in failed.traceback
    # d was in the first batch but did not run there; the retry took it along
    assert executor.sent == [
        Sent(True, (("a", 1), ("b", 1), ("c", 1), ("d", 1)), (False, True, True, True)),
        Sent(True, (("c", 2), ("d", 1)), (False, True)),
    ]


@pytest.mark.parametrize("kind", KINDS)
def test_a_failed_member_fails_its_dependents_and_spares_other_branches(kind):
    g = abcd(explode)
    with g:
        inc.options(name="f")(inc.options(name="e")(10))
    plan = g.compile()
    executor = recording(kind)
    with pytest.raises(dx.RunFailed) as info:
        plan.run(executor=executor, fail_fast=False)
    assert str(info.value) == "1 node of graph 'g' failed: 'c' (ValueError: bad value 3)"
    result = info.value.result
    assert result.states == {
        "a": SUCCEEDED,
        "b": SUCCEEDED,
        "c": FAILED,
        "d": UPSTREAM_FAILED,
        "e": SUCCEEDED,
        "f": SUCCEEDED,
    }
    assert all_trial_logs(result) == {
        "a": [(1, SUCCEEDED)],
        "b": [(1, SUCCEEDED)],
        "c": [(1, FAILED)],
        "d": [],
        "e": [(1, SUCCEEDED)],
        "f": [(1, SUCCEEDED)],
    }
    assert result.outputs == {"f": 12}
    assert type(info.value.__cause__) is ValueError
    assert executor.batch_of("c", 1).members == (("a", 1), ("b", 1), ("c", 1), ("d", 1))
    assert executor.batch_of("f", 1).members == (("e", 1), ("f", 1))


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", KINDS)
def test_fail_fast_cancels_the_chain_members_that_had_not_started(kind, tmp_path):
    marks = str(tmp_path)
    with dx.Graph("g") as g:
        h1 = inc.options(name="h1")(0)
        h2 = inc_when_failure_seen.options(name="h2")(h1, marks)
        inc.options(name="h4")(inc.options(name="h3")(h2))
        inc.options(name="after_bad")(explode_once_started.options(name="bad")(marks))
    plan = g.compile()
    executor = recording(kind)
    with pytest.raises(dx.RunFailed) as info:
        plan.run(executor=executor, callbacks=[TouchOnFailure(tmp_path / "failure-seen")])
    result = info.value.result
    # h2 was running when the failure was recorded and finished; h3 and h4 would have
    # started after it: they count as not run
    assert result.states == {
        "h1": SUCCEEDED,
        "h2": SUCCEEDED,
        "h3": CANCELLED,
        "h4": CANCELLED,
        "bad": FAILED,
        "after_bad": UPSTREAM_FAILED,
    }
    assert all_trial_logs(result) == {
        "h1": [(1, SUCCEEDED)],
        "h2": [(1, SUCCEEDED)],
        "h3": [],
        "h4": [],
        "bad": [(1, FAILED)],
        "after_bad": [],
    }
    assert result.outputs == {}
    assert executor.batch_of("h1", 1).members == (("h1", 1), ("h2", 1), ("h3", 1), ("h4", 1))


@pytest.mark.parametrize("kind", KINDS)
def test_callbacks_on_a_fused_chain_see_what_they_see_unbatched(kind, tmp_path):
    def run(executor: Any, marks: Path) -> tuple[Recorder, dx.RunResult]:
        marks.mkdir()
        rec = Recorder()
        result = abcd(flaky_inc, str(marks)).compile().run(executor=executor, callbacks=[rec])
        return rec, result

    serial, _ = run("serial", tmp_path / "serial")
    executor = recording(kind)
    rec, result = run(executor, tmp_path / kind)
    assert rec.events == serial.events
    assert rec.events == [
        ("trial_start", "a", 1, RUNNING),
        ("trial_end", "a", 1, SUCCEEDED),
        ("trial_start", "b", 1, RUNNING),
        ("trial_end", "b", 1, SUCCEEDED),
        ("trial_start", "c", 1, RUNNING),
        ("trial_end", "c", 1, FAILED),
        ("trial_start", "c", 2, RUNNING),
        ("trial_end", "c", 2, SUCCEEDED),
        ("trial_start", "d", 1, RUNNING),
        ("trial_end", "d", 1, SUCCEEDED),
        ("run_end", True),
    ]
    assert executor.sizes() == [4, 2]
    # a chained member's trial started when it really did, not when the batch was sent
    for key in "bd":
        (trial,) = result.trials[key]
        assert rec.starts[key, 1] == trial.start
    for before, after in ("ab", "bc"):
        assert result.trials[before][0].end <= rec.starts[after, 1]


# -- crashes -------------------------------------------------------------------------------------


def test_a_worker_that_dies_in_a_chain_crashes_only_the_member_it_ran(tmp_path):
    marks = str(tmp_path)
    with dx.Graph("g") as g:
        inc(inc(exit_once_inc(inc(inc(0)), marks)))
    plan = g.compile()
    keys = ("inc", "inc-1", "exit_once_inc", "inc-2", "inc-3")
    assert plan.keys == keys
    executor = RecordingLoky(2)
    result = plan.run(executor=executor)
    assert result.output == 5
    assert result.states == dict.fromkeys(keys, SUCCEEDED)
    assert all_trial_logs(result) == {
        "inc": [(1, SUCCEEDED)],
        "inc-1": [(1, SUCCEEDED)],
        "exit_once_inc": [(1, CRASHED), (2, SUCCEEDED)],
        "inc-2": [(1, SUCCEEDED)],
        "inc-3": [(1, SUCCEEDED)],
    }
    dead = int((tmp_path / "died").read_text())
    crashed = result.trials["exit_once_inc"][0]
    assert type(crashed.error) is dx.WorkerCrashed
    assert str(crashed.error) == (
        f"node 'exit_once_inc': its worker process (pid {dead}) died while running attempt 1; "
        "exit codes of the workers that died: {EXIT(3)}"
    )
    assert crashed.worker == f"pid:{dead}"
    assert crashed.end is not None and crashed.start <= crashed.end
    # the members before it ran again (their outcomes died with the worker) and were
    # reported before the crash, then the chain went on from the crashed member;
    # no member but the crashed one used an attempt
    assert executor.sent == [
        Sent(True, tuple((key, 1) for key in keys), (False, True, True, True, True)),
        Sent(True, (("inc", 1), ("inc-1", 1)), (False, True)),
        Sent(True, (("exit_once_inc", 2), ("inc-2", 1), ("inc-3", 1)), (False, True, True)),
    ]
    assert all(result.trials[key][-1].worker != f"pid:{dead}" for key in keys)
    assert_workers_settle(2, gone=(dead,))


def test_callbacks_pair_each_trial_start_with_its_end_when_a_worker_dies_in_a_chain(tmp_path):
    marks = str(tmp_path)
    with dx.Graph("g") as g:
        inc(inc(exit_once_inc(inc(inc(0)), marks)))
    plan = g.compile()
    rec = Recorder()
    result = plan.run(executor=RecordingLoky(2), callbacks=[rec])
    assert result.output == 5

    def events_of(key: str) -> list[tuple[Any, ...]]:
        return [e[2:] for e in rec.events if e[0] != "run_end" and e[1] == key]

    # what each node's callbacks see is what they would see unbatched: the members
    # that ran again after the crash started once, and ended once
    assert {key: events_of(key) for key in plan.keys} == {
        "inc": [(1, RUNNING), (1, SUCCEEDED)],
        "inc-1": [(1, RUNNING), (1, SUCCEEDED)],
        "exit_once_inc": [(1, RUNNING), (1, CRASHED), (2, RUNNING), (2, SUCCEEDED)],
        "inc-2": [(1, RUNNING), (1, SUCCEEDED)],
        "inc-3": [(1, RUNNING), (1, SUCCEEDED)],
    }


@pytest.mark.parametrize("fail_fast", [False, True])
def test_a_crash_with_no_retries_left_in_a_chain_fails_its_member_and_spares_those_before(fail_fast):
    # run alone, inc and inc-1 would have succeeded before exit_always ran: they did
    with dx.Graph("g") as g:
        inc(inc(exit_always(inc(inc(0)))))
    plan = g.compile()
    assert plan.keys == ("inc", "inc-1", "exit_always", "inc-2", "inc-3")
    executor = RecordingLoky(2)
    result = plan.run(executor=executor, fail_fast=fail_fast, raise_on_failure=False)
    assert executor.batch_of("exit_always", 1).members == (
        ("inc", 1),
        ("inc-1", 1),
        ("exit_always", 1),
        ("inc-2", 1),
        ("inc-3", 1),
    )
    assert result.states == {
        "inc": SUCCEEDED,
        "inc-1": SUCCEEDED,
        "exit_always": FAILED,
        "inc-2": UPSTREAM_FAILED,
        "inc-3": UPSTREAM_FAILED,
    }
    assert all_trial_logs(result) == {
        "inc": [(1, SUCCEEDED)],
        "inc-1": [(1, SUCCEEDED)],
        "exit_always": [(1, CRASHED)],
        "inc-2": [],
        "inc-3": [],
    }
    crashed = result.trials["exit_always"][0]
    assert type(crashed.error) is dx.WorkerCrashed
    assert_workers_settle(2, gone=(crashed.error.pid,))


def test_a_worker_that_dies_in_a_batch_of_tiny_trials_crashes_only_its_trial(tmp_path):
    died = tmp_path / "died"
    plan = fan_plan(300, dies=100, dies_at=str(died))
    executor = RecordingLoky(2)
    result = plan.run(executor=executor)
    assert result.output == [i * i for i in range(300)]
    assert result.states == dict.fromkeys(plan.keys, SUCCEEDED)
    logs = all_trial_logs(result)
    assert logs.pop("tiny-100") == [(1, CRASHED), (2, SUCCEEDED)]
    assert logs == {key: [(1, SUCCEEDED)] for key in plan.keys if key != "tiny-100"}
    # it died inside a batch of independent trials
    sent = executor.batch_of("tiny-100", 1)
    assert sent.batch and sent.linked.count(False) > 1
    dead = int(died.read_text())
    crashed = result.trials["tiny-100"][0]
    assert str(crashed.error) == (
        f"node 'tiny-100': its worker process (pid {dead}) died while running attempt 1; "
        "exit codes of the workers that died: {EXIT(3)}"
    )
    assert_workers_settle(2, gone=(dead,))


# -- values that cannot travel --------------------------------------------------------------------


def test_a_value_that_does_not_pickle_may_pass_along_a_chain_on_loky():
    with dx.Graph("g") as g:
        inc(use_locked(make_locked(inc(1))))
    plan = g.compile()
    executor = RecordingLoky(2)
    result = plan.run(executor=executor)
    assert result.output == 4
    assert executor.sizes() == [4]
    assert all_trial_logs(result) == {key: [(1, SUCCEEDED)] for key in plan.keys}


def test_an_output_that_does_not_pickle_fails_only_its_own_member():
    with dx.Graph("g") as g:
        make_locked(inc(inc(1)))
        inc(inc(10))
    plan = g.compile()
    assert plan.keys == ("inc", "inc-1", "make_locked", "inc-2", "inc-3")
    executor = RecordingLoky(2)
    result = plan.run(executor=executor, fail_fast=False, raise_on_failure=False)
    assert executor.batch_of("make_locked", 1).members == (("inc", 1), ("inc-1", 1), ("make_locked", 1))
    assert result.states == {
        "inc": SUCCEEDED,
        "inc-1": SUCCEEDED,
        "make_locked": FAILED,
        "inc-2": SUCCEEDED,
        "inc-3": SUCCEEDED,
    }
    assert all_trial_logs(result) == {
        "inc": [(1, SUCCEEDED)],
        "inc-1": [(1, SUCCEEDED)],
        "make_locked": [(1, FAILED)],
        "inc-2": [(1, SUCCEEDED)],
        "inc-3": [(1, SUCCEEDED)],
    }
    error = result.trials["make_locked"][0].error
    assert type(error) is pickle.PicklingError
    assert str(error) == (
        f"node 'make_locked': its result of type {Locked.__module__}.Locked cannot be pickled: "
        "cannot pickle '_thread.lock' object"
    )
    assert result.outputs == {"inc-3": 12}


@pytest.mark.parametrize("why", ["kept", "next one failed"])
def test_a_member_whose_value_must_come_back_and_cannot_fails_and_its_dependents_do_not_run(why):
    # the value of make_locked must come back when it is kept, or when the member
    # that read it failed (a retry would need it): it cannot, so make_locked fails,
    # as it would have run alone, and what reads it never ran as far as the run knows
    with dx.Graph("g") as g:
        (use_locked if why == "kept" else refuse)(make_locked(inc(1)))
    plan = g.compile()
    after = plan.keys[2]
    executor = RecordingLoky(2)
    keep = ["make_locked"] if why == "kept" else None
    result = plan.run(executor=executor, keep=keep, fail_fast=False, raise_on_failure=False)
    assert executor.sizes() == [3]
    assert result.states == {"inc": SUCCEEDED, "make_locked": FAILED, after: UPSTREAM_FAILED}
    assert all_trial_logs(result) == {"inc": [(1, SUCCEEDED)], "make_locked": [(1, FAILED)], after: []}
    error = result.trials["make_locked"][0].error
    assert type(error) is pickle.PicklingError
    assert str(error) == (
        f"node 'make_locked': its result of type {Locked.__module__}.Locked cannot be pickled: "
        "cannot pickle '_thread.lock' object"
    )
    assert result.failed == ["make_locked"]


class Unloadable:
    """Pickles, but does not unpickle."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (_refuse, ())


def _refuse() -> None:
    raise ValueError("the argument refuses to unpickle")


@pytest.mark.parametrize(
    ("value", "error_type", "message", "in_worker"),
    [
        (
            threading.Lock(),
            pickle.PicklingError,
            "node 'hold': an argument of type _thread.lock cannot be pickled to send it to a process: "
            "cannot pickle '_thread.lock' object",
            False,
        ),
        (
            Unloadable(),
            pickle.UnpicklingError,
            "node 'hold': its arguments cannot be unpickled in its worker: "
            "ValueError: the argument refuses to unpickle",
            True,
        ),
    ],
    ids=["does-not-pickle", "does-not-unpickle"],
)
def test_a_batch_whose_arguments_cannot_travel_runs_its_members_alone(value, error_type, message, in_worker):
    with dx.Graph("g") as g:
        inc(inc(hold(g.input("x"))))
        inc(inc(10))
    plan = g.compile()
    assert plan.keys == ("hold", "inc", "inc-1", "inc-2", "inc-3")
    executor = RecordingLoky(2)
    result = plan.run(x=value, executor=executor, fail_fast=False, raise_on_failure=False)
    assert result.states == {
        "hold": FAILED,
        "inc": UPSTREAM_FAILED,
        "inc-1": UPSTREAM_FAILED,
        "inc-2": SUCCEEDED,
        "inc-3": SUCCEEDED,
    }
    assert all_trial_logs(result) == {
        "hold": [(1, FAILED)],
        "inc": [],
        "inc-1": [],
        "inc-2": [(1, SUCCEEDED)],
        "inc-3": [(1, SUCCEEDED)],
    }
    (trial,) = result.trials["hold"]
    assert type(trial.error) is error_type
    assert str(trial.error) == message
    if in_worker:
        assert trial.worker.startswith("pid:")
    else:
        assert trial.worker == "master"
    # the batch was tried once, then hold went alone
    assert [s for s in executor.sent if ("hold", 1) in s.members] == [
        Sent(True, (("hold", 1), ("inc", 1), ("inc-1", 1)), (False, True, True)),
        Sent(False, (("hold", 1),), (False,)),
    ]
    assert result.outputs == {"inc-3": 12}


# -- the plan's chain links -------------------------------------------------------------------------


def test_chain_links_follow_only_linear_single_reader_edges_without_timeouts():
    def node(task: Any, name: str, *args: Any, **kwargs: Any) -> Any:
        return task.options(name=name)(*args, **kwargs)

    with dx.Graph("g") as g:
        c0 = node(inc, "chain0", 0)
        c1 = node(inc, "chain1", c0)
        node(inc, "chain2", c1)
        f = node(inc, "fan", 0)
        node(inc, "fan_left", f)
        node(inc, "fan_right", f)
        d = node(inc, "top", 0)
        left = node(inc, "left", d)
        right = node(inc, "right", d)
        node(add, "bottom", left, right)
        n = node(inc, "in_list", 0)
        node(collect, "reads_list", [n, 1])
        t = node(inc, "before_timeout", 0)
        node(timed_inc, "with_timeout", t)
        node(inc, "after_timeout", node(timed_inc, "timeout_head", 0))
    plan = g.compile()
    links = plan._chain_links()
    assert links is plan._chain_links()
    keys = plan.keys
    assert {keys[i]: keys[j] if j >= 0 else None for i, j in enumerate(links)} == {
        "chain0": "chain1",
        "chain1": "chain2",
        "chain2": None,
        "fan": None,
        "fan_left": None,
        "fan_right": None,
        "top": None,
        "left": None,
        "right": None,
        "bottom": None,
        "in_list": None,
        "reads_list": None,
        "before_timeout": None,
        "with_timeout": None,
        "timeout_head": None,
        "after_timeout": None,
    }


def test_chain_links_are_computed_again_after_unpickling_not_pickled():
    plan = chain_plan(4)
    assert plan._links is None
    links = plan._chain_links()
    assert links == (1, 2, 3, -1)
    assert plan._links == links
    copy = cloudpickle.loads(cloudpickle.dumps(plan))
    assert copy._links is None
    assert "_links" not in plan.__getstate__()
    assert copy._chain_links() == links
    assert copy.run(start=0, executor=RecordingThreads(2)).output == 4


@dx.task(retries=1)
def square_dies_once_at_5(i: int, dies_at: str) -> int:
    """Squares ``i``; item 5's first trial writes its pid to ``dies_at`` and exits its worker."""
    if i == 5 and not os.path.exists(dies_at):
        Path(dies_at).write_text(str(os.getpid()))
        os._exit(3)
    return i * i


def test_callbacks_pair_each_trial_start_with_its_end_when_a_worker_dies_in_a_chunk_of_map_items(tmp_path):
    died = tmp_path / "died"
    square = square_dies_once_at_5.options(chunksize=4)
    with dx.Graph("g") as g:
        g.output(square.map(list(range(8)), dies_at=str(died)), name="v")
    rec = Recorder()
    result = g.compile().run(executor=RecordingLoky(2), callbacks=[rec])
    assert result.output == [i * i for i in range(8)]

    def events_of(key: str) -> list[tuple[Any, ...]]:
        return [e[2:] for e in rec.events if e[0] != "run_end" and e[1] == key]

    # item 5 died in the chunk 4..7: items 6 and 7 were sent back unrun and ran again, and
    # callbacks see their trial start once and end once, as a node's
    key = "square_dies_once_at_5"
    for k in range(8):
        expected = [(1, RUNNING), (1, SUCCEEDED)]
        if k == 5:
            expected = [(1, RUNNING), (1, CRASHED), (2, RUNNING), (2, SUCCEEDED)]
        assert events_of(f"{key}[{k}]") == expected
        trials = [(t.attempt, t.state) for t in result.trials[f"{key}[{k}]"]]
        assert trials == [e for e in expected if e[1] != RUNNING]
    assert_workers_settle(2, gone=(int(died.read_text()),))


def test_a_map_node_under_a_tiny_trial_on_the_stack_expands_and_is_not_batched_as_a_trial():
    # one worker: the map over a constant list is ready from the start, and stays on the
    # stack under ``first`` while it runs; ``first``'s end measures inc as tiny and puts
    # its two readers on top of the map.  A batch of tiny trials built from the stack must
    # stop at the map node (taken as a plain trial, inc was called with the whole list)
    with dx.Graph("g") as g:
        first = inc(0)
        mapped = inc.map([10, 20, 30])
        g.output(mapped, name="m")
        g.output(collect([inc(first), inc(first)]), name="b")
    plan = g.compile()
    assert plan.keys.index(first.key) < plan.keys.index(mapped.key)
    executor = RecordingLoky(1)
    readers = {key for key in plan.keys if key not in (first.key, mapped.key) and key.startswith("inc")}
    batched = 0
    for _ in range(4):  # inc measured tiny is the machine's doing: at least once is enough
        executor.sent.clear()
        result = plan.run(executor=executor)
        assert result.output == {"m": [11, 21, 31], "b": [2, 2]}
        assert result.states[mapped.key] is SUCCEEDED
        assert [s.members for s in executor.sent if (mapped.key, 1) in s.members] == []
        batched += any(s.batch and readers <= {k for k, _ in s.members} for s in executor.sent)
    assert batched > 0
