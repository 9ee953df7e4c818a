"""LokyExecutor (DESIGN §5, §12) with real worker processes and real faults.

Workers die by ``os._exit``, ``SIGKILL`` and a segfault; tasks sleep past their
timeout in Python and in C; Ctrl-C, SIGTERM and SIGHUP reach a master in a
subprocess, and a master killed outright leaves neither workers nor its board.
Tasks live at module level (workers import this module to find them) and
synchronise through files in ``tmp_path``: a task that must be running when a
fault happens writes a file, and the faulting task waits for it.  Every wait is
capped by ``GUARD`` only so that a broken executor fails a test instead of
hanging it; no assertion depends on how long anything took.
"""

import ctypes
import json
import os
import pickle
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import psutil
import pytest

import dagexec as dx
from dagexec import State
from dagexec.executors import LokyExecutor

SUCCEEDED = State.SUCCEEDED
FAILED = State.FAILED
UPSTREAM_FAILED = State.UPSTREAM_FAILED
TIMED_OUT = State.TIMED_OUT
CRASHED = State.CRASHED

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


def ended(pid: int) -> bool:
    """True once process ``pid`` is gone or a zombie, as psutil sees it."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


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
    return [(t.attempt, t.state) for t in result.trials[key]]


def worker_pid(trial: dx.Trial) -> int:
    assert re.fullmatch(r"pid:\d+", trial.worker), trial.worker
    return int(trial.worker[4:])


# -- tasks ---------------------------------------------------------------------------------


@dx.task
def inc(x: int) -> int:
    return x + 1


@dx.task
def add(a: int, b: int) -> int:
    return a + b


@dx.task
def getpid(x: int = 0) -> int:
    return os.getpid()


@dx.task
def explode(x: int) -> int:
    raise ValueError(f"bad value {x}")


def die(how: str) -> None:
    if how == "exit":
        os._exit(3)
    elif how == "sigkill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif how == "segfault":
        ctypes.string_at(0)
    raise AssertionError(f"still alive after {how}")


@dx.task(retries=1)
def die_once(marks: str, how: str) -> int:
    """Attempt 1 kills its own worker; attempt 2 returns the pid it ran in."""
    if count_call(f"{marks}/die_once") == 1:
        Path(f"{marks}/died").write_text(str(os.getpid()))
        die(how)
    return os.getpid()


@dx.task(retries=1)
def always_exit(x: int) -> int:
    os._exit(7)


@dx.task(retries=1)
def exit_once(marks: str, x: int) -> int:
    """Attempt 1 exits its worker once the bystander runs; attempt 2 returns ``x + 10``."""
    if count_call(f"{marks}/exit_once") == 1:
        await_path(f"{marks}/bystander-1", "the bystander to start")
        os._exit(3)
    Path(f"{marks}/retried").touch()
    return x + 10


@dx.task
def bystander(marks: str, x: int, then: str = "") -> int:
    """Run 1 waits until the pool is torn down under it; a later run waits for ``then``
    (if given), records how many loky workers it sees, and returns the run number."""
    n = count_call(f"{marks}/bystander")
    Path(f"{marks}/bystander-{n}").write_text(str(os.getpid()))
    if n == 1:
        await_path(f"{marks}/never", "the pool to be torn down")
    if then:
        await_path(then, then)
        Path(f"{marks}/workers-{n}").write_text(str(len(loky_workers(os.getppid()))))
    return n


@dx.task(retries=1, timeout=0.5)
def nap(marks: str, how: str) -> int:
    """Attempt 1 sleeps past the timeout and records the TaskTimeout it gets; attempt 2 returns."""
    if count_call(f"{marks}/nap") > 1:
        return 2
    Path(f"{marks}/nap-pid").write_text(str(os.getpid()))
    try:
        if how == "python":
            time.sleep(GUARD)
        else:
            ctypes.CDLL(None).sleep(int(GUARD))
    except dx.TaskTimeout as exc:
        # written whole, then renamed: the test reads it as soon as it exists
        Path(f"{marks}/interrupted.part").write_text(f"{type(exc).__name__}: {exc}")
        os.replace(f"{marks}/interrupted.part", f"{marks}/interrupted")
        raise
    return 1


@dx.task(timeout=0.5)
def leave_sleeper(marks: str) -> int:
    """Starts ``sleep 300`` and leaves it running, then sleeps past the timeout in Python."""
    sleeper = subprocess.Popen(["sleep", "300"])
    Path(f"{marks}/sleeper").write_text(f"{sleeper.pid} {os.getpid()}")
    time.sleep(GUARD)
    return 1


@dx.task
def once_exists(marks: str, name: str) -> str:
    """Returns ``marks`` once ``marks/name`` exists: its dependent starts after that."""
    await_path(f"{marks}/{name}", name)
    return marks


@dx.task
def occupy(marks: str) -> int:
    """Keeps its worker busy until the test writes ``go``; returns the worker's pid."""
    Path(f"{marks}/held").write_text(str(os.getpid()))
    await_path(f"{marks}/go", "the test to free the worker")
    return os.getpid()


# its timeout: far longer than its own result takes to reach the master on a loaded
# machine (1 s was seen to be too short there), far shorter than its wait in the queue
@dx.task(timeout=3.0)
def quick_pid(x: int = 0) -> int:
    return os.getpid()


@dx.task(timeout=0.5)
def stuck(marks: str) -> int:
    """Blocks SIGALRM, as C code may, then sleeps in C: only a kill stops it."""
    signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGALRM])
    Path(f"{marks}/stuck").write_text(str(os.getpid()))
    await_path(f"{marks}/bystander-1", "the bystander to start")
    ctypes.CDLL(None).sleep(int(GUARD))
    return 1


# -- construction ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_workers": 0}, "max_workers must be an int >= 1, got 0"),
        ({"max_workers": 1.5}, "max_workers must be an int >= 1, got 1.5"),
        ({"max_workers": True}, "max_workers must be an int >= 1, got True"),
        ({"grace": 0}, "grace must be a number > 0, got 0"),
    ],
)
def test_bad_arguments_are_value_errors(kwargs, message):
    with pytest.raises(ValueError) as info:
        LokyExecutor(**kwargs)
    assert str(info.value) == message


def test_executor_name_and_max_workers_give_a_loky_executor():
    with dx.Graph("g") as g:
        add(getpid(), getpid(1))
    result = g.compile().run(executor="loky", max_workers=2)
    workers = {worker_pid(result.trials[k][0]) for k in ("getpid", "getpid-1")}
    assert os.getpid() not in workers
    assert workers <= loky_workers(os.getpid())
    assert result.output == sum(worker_pid(result.trials[k][0]) for k in ("getpid", "getpid-1"))


# -- task functions travel once per run ---------------------------------------------------------


class Counted:
    """Counts its pickling in this process; each unpickling appends the worker's pid to a file."""

    pickled = 0

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        Counted.pickled += 1
        return (_unpickle_counted, (self.path,))


def _unpickle_counted(path: str) -> Counted:
    with open(path, "a") as f:
        f.write(f"{os.getpid()}\n")
    return Counted(path)


def test_a_task_function_is_pickled_once_per_run_and_unpickled_once_per_worker(tmp_path):
    counted = Counted(str(tmp_path / "unpickled"))

    @dx.task
    def scale(x: int) -> int:
        assert counted.path
        return 2 * x

    with dx.Graph("g") as g:
        add(add(scale(1), scale(2)), add(scale(3), scale(4)))
    plan = g.compile()
    executor = LokyExecutor(2)
    for run in (1, 2):
        before = Counted.pickled
        assert plan.run(executor=executor).output == 20
        assert Counted.pickled - before == 1, f"run {run}"
    # each worker unpickled the function once, and kept it for the second run
    pids = (tmp_path / "unpickled").read_text().split()
    assert 1 <= len(pids) == len(set(pids)) <= 2, pids


def test_a_kept_executor_sends_each_run_the_function_as_it_is_then():
    offset = 1

    @dx.task
    def shift(x: int) -> int:
        return x + offset

    with dx.Graph("g") as g:
        shift(1)
    plan = g.compile()
    executor = LokyExecutor(2)
    assert plan.run(executor=executor).output == 2
    offset = 10
    assert plan.run(executor=executor).output == 11


# -- crashes --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("how", "code"), [("exit", "EXIT(3)"), ("sigkill", "SIGKILL(-9)"), ("segfault", "SIGSEGV(-11)")]
)
def test_a_worker_that_dies_crashes_its_trial_which_is_retried(how, code, tmp_path):
    with dx.Graph("g") as g:
        inc(die_once(str(tmp_path), how))
    result = g.compile().run(executor=LokyExecutor(2))
    assert result.states == {"die_once": SUCCEEDED, "inc": SUCCEEDED}
    assert trial_log(result, "die_once") == [(1, CRASHED), (2, SUCCEEDED)]
    assert trial_log(result, "inc") == [(1, SUCCEEDED)]
    crashed, retried = result.trials["die_once"]
    dead = int((tmp_path / "died").read_text())
    assert worker_pid(crashed) == dead
    error = crashed.error
    assert type(error) is dx.WorkerCrashed
    assert str(error) == (
        f"node 'die_once': its worker process (pid {dead}) died while running attempt 1; "
        f"exit codes of the workers that died: {{{code}}}"
    )
    assert (error.key, error.pid, error.exitcodes) == ("die_once", dead, f"{{{code}}}")
    assert crashed.end is not None and crashed.start <= crashed.end
    assert result.output == worker_pid(retried) + 1
    assert worker_pid(retried) != dead
    assert_workers_settle(2, gone=(dead,))


def test_a_crash_with_no_retries_left_fails_the_node_with_worker_crashed():
    with dx.Graph("g") as g:
        inc(always_exit(1))
        inc(2)
    with pytest.raises(dx.RunFailed) as info:
        g.compile().run(executor=LokyExecutor(2), fail_fast=False)
    result = info.value.result
    assert result.states == {"always_exit": FAILED, "inc": UPSTREAM_FAILED, "inc-1": SUCCEEDED}
    assert trial_log(result, "always_exit") == [(1, CRASHED), (2, CRASHED)]
    assert trial_log(result, "inc-1") == [(1, SUCCEEDED)]
    first, last = result.trials["always_exit"]
    error = info.value.__cause__
    assert type(error) is dx.WorkerCrashed
    assert error is last.error
    assert error.pid == worker_pid(last) != worker_pid(first)
    assert str(info.value) == (
        "1 node of graph 'g' failed: 'always_exit' (WorkerCrashed: node 'always_exit': its worker "
        f"process (pid {error.pid}) died while running attempt 2; exit codes of the workers that died: "
        "{EXIT(7)})"
    )
    assert result.outputs == {"inc-1": 3}
    assert_workers_settle(2, gone=(worker_pid(first), worker_pid(last)))


def test_trials_on_other_workers_are_resubmitted_without_using_an_attempt(tmp_path):
    marks = str(tmp_path)
    with dx.Graph("g") as g:
        start = inc(0)
        add(add(exit_once(marks, start), bystander(marks, start, f"{marks}/retried")), start)
    plan = g.compile()
    assert plan.keys == ("inc", "exit_once", "bystander", "add", "add-1")
    result = plan.run(executor=LokyExecutor(2))
    # the bystander ran twice (the pool was torn down under its first run) but has
    # one trial; the value of 'inc', made before the crash, was not computed again
    assert result.output == 11 + 2 + 1
    assert {k: trial_log(result, k) for k in plan.keys} == {
        "inc": [(1, SUCCEEDED)],
        "exit_once": [(1, CRASHED), (2, SUCCEEDED)],
        "bystander": [(1, SUCCEEDED)],
        "add": [(1, SUCCEEDED)],
        "add-1": [(1, SUCCEEDED)],
    }
    crashed = result.trials["exit_once"][0]
    assert str(crashed.error) == (
        f"node 'exit_once': its worker process (pid {worker_pid(crashed)}) died while running "
        "attempt 1; exit codes of the workers that died: {EXIT(3)}"
    )
    (trial,) = result.trials["bystander"]
    assert worker_pid(trial) == int((tmp_path / "bystander-2").read_text())
    # the pool was replaced, not doubled: the second run saw two workers in all
    assert (tmp_path / "workers-2").read_text() == "2"
    first_run = int((tmp_path / "bystander-1").read_text())
    assert_workers_settle(2, gone=(worker_pid(crashed), first_run))


# -- timeouts -------------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["python", "libc"])
def test_a_task_past_its_timeout_gets_task_timeout_in_its_worker(how, tmp_path):
    marks = str(tmp_path)
    with dx.Graph("g") as g:
        inc(nap(marks, how))
        add(inc(1), inc(2))
    # a grace longer than any test: the worker is not killed, the task stops itself
    result = g.compile().run(executor=LokyExecutor(2, grace=10 * GUARD))
    assert result.states == {
        "nap": SUCCEEDED,
        "inc": SUCCEEDED,
        "inc-1": SUCCEEDED,
        "inc-2": SUCCEEDED,
        "add": SUCCEEDED,
    }
    assert result.outputs == {"inc": 3, "add": 5}
    assert trial_log(result, "nap") == [(1, TIMED_OUT), (2, SUCCEEDED)]
    error = result.trials["nap"][0].error
    assert type(error) is dx.TaskTimeout
    assert str(error) == "node 'nap' timed out after 0.5 s"
    assert (error.key, error.timeout) == ("nap", 0.5)
    await_path(tmp_path / "interrupted", "the task to see its TaskTimeout")
    assert (tmp_path / "interrupted").read_text() == "TaskTimeout: node 'nap' timed out after 0.5 s"
    napper = int((tmp_path / "nap-pid").read_text())
    assert alive(napper)
    assert_workers_settle(2)


def test_a_task_stopped_by_its_timeout_leaves_no_process_it_started(tmp_path):
    with dx.Graph("g") as g:
        leave_sleeper(str(tmp_path))
    # a grace longer than any test: the worker is not killed, the task stops itself
    executor = LokyExecutor(1, grace=10 * GUARD)
    result = g.compile().run(executor=executor, raise_on_failure=False)
    assert trial_log(result, "leave_sleeper") == [(1, TIMED_OUT)]
    sleeper, worker = map(int, (tmp_path / "sleeper").read_text().split())
    try:
        wait_until(lambda: ended(sleeper), "the sleep the timed-out task started to end")
    finally:
        if alive(sleeper):
            os.kill(sleeper, signal.SIGKILL)
    # the task's TaskTimeout stopped it, not a kill of its worker, which runs the next trial
    assert alive(worker)
    with dx.Graph("h") as h:
        getpid()
    assert h.compile().run(executor=executor).output == worker


def test_a_task_that_does_not_stop_has_its_worker_killed_and_other_work_resubmitted(tmp_path):
    marks = str(tmp_path)
    with dx.Graph("g") as g:
        # stuck starts once the bystander runs, however long its worker took to start:
        # its worker is killed 0.7 s after that, with the bystander's first run
        stuck(once_exists(marks, "bystander-1"))
        inc(bystander(marks, 0))
    result = g.compile().run(executor=LokyExecutor(2, grace=0.2), fail_fast=False, raise_on_failure=False)
    assert result.states == {
        "once_exists": SUCCEEDED,
        "stuck": FAILED,
        "bystander": SUCCEEDED,
        "inc": SUCCEEDED,
    }
    assert {k: trial_log(result, k) for k in result.states} == {
        "once_exists": [(1, SUCCEEDED)],
        "stuck": [(1, TIMED_OUT)],
        "bystander": [(1, SUCCEEDED)],
        "inc": [(1, SUCCEEDED)],
    }
    assert str(result.trials["stuck"][0].error) == "node 'stuck' timed out after 0.5 s"
    # the bystander's first run was killed with the pool; its second run returned 2
    assert result.outputs == {"inc": 3}
    killed = int((tmp_path / "stuck").read_text())
    first_run = int((tmp_path / "bystander-1").read_text())
    assert_workers_settle(2, gone=(killed, first_run))


def test_a_timeout_counts_from_the_trials_start_not_from_its_submission(tmp_path):
    # every LokyExecutor of a process shares loky's pool: while `occupy` keeps its only
    # worker busy, quick_pid waits in loky's queue past its timeout and the grace
    marks = str(tmp_path)
    with dx.Graph("holder") as holder:
        occupy(marks)
    held: dict[str, dx.RunResult] = {}
    thread = threading.Thread(
        target=lambda: held.update(result=holder.compile().run(executor=LokyExecutor(1)))
    )
    thread.start()
    try:
        await_path(tmp_path / "held", "the only worker to be busy")
        free = threading.Timer(4.5, (tmp_path / "go").touch)  # after timeout + grace
        free.start()
        with dx.Graph("timed") as timed:
            quick_pid()
        result = timed.compile().run(executor=LokyExecutor(1, grace=0.2), raise_on_failure=False)
    finally:
        (tmp_path / "go").touch()
        thread.join(GUARD)
    assert trial_log(result, "quick_pid") == [(1, SUCCEEDED)]
    # it ran in the worker occupy kept busy, so it started only once occupy returned
    assert result.output == held["result"].output == worker_pid(result.trials["quick_pid"][0])


# -- a pool that refuses work -----------------------------------------------------------------------

AT_EXIT_SCRIPT = textwrap.dedent(
    """
    import atexit
    import json

    import dagexec as dx
    from dagexec.executors import LokyExecutor

    @dx.task(retries=1)
    def inc(x: int) -> int:
        return x + 1

    def plan():
        with dx.Graph("late") as g:
            inc(1)
        return g.compile()

    def run_at_exit():
        # loky's pools refuse work once the interpreter shuts down, fresh ones too
        result = plan().run(executor=executor, raise_on_failure=False)
        trials = result.trials["inc"]
        print(json.dumps({
            "state": result.states["inc"].value,
            "trials": [[t.attempt, t.state.value, t.worker] for t in trials],
            "error": [type(trials[-1].error).__name__, str(trials[-1].error)],
            "cause": repr(trials[-1].error.__cause__),
        }), flush=True)

    if __name__ == "__main__":
        executor = LokyExecutor(1)
        print(plan().run(executor=executor).output, flush=True)
        atexit.register(run_at_exit)
    """
)


def test_a_trial_no_pool_takes_is_crashed_and_retried_as_a_crash(tmp_path):
    script = tmp_path / "at_exit.py"
    script.write_text(AT_EXIT_SCRIPT)
    out = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path, timeout=10 * GUARD
    )
    assert out.returncode == 0, out.stderr
    first, report = out.stdout.splitlines()
    assert first == "2"
    refused = "RuntimeError: cannot schedule new futures after interpreter shutdown"
    assert json.loads(report) == {
        "state": "failed",
        "trials": [[1, "crashed", "master"], [2, "crashed", "master"]],
        "error": ["WorkerCrashed", f"node 'inc': loky's process pool refused the trial: {refused}"],
        "cause": "RuntimeError('cannot schedule new futures after interpreter shutdown')",
    }


# -- what cannot travel --------------------------------------------------------------------------


class LockedError(Exception):
    """An exception that cannot be pickled: it holds a lock."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.lock = threading.Lock()


class PairError(Exception):
    """Pickles, but does not unpickle: ``args`` holds one value and ``__init__`` needs two."""

    def __init__(self, a: str, b: str) -> None:
        super().__init__(f"{a} and {b}")


def _refuse(what: str) -> None:
    raise ValueError(f"{what} refuses to unpickle")


class Unloadable:
    """Pickles, but does not unpickle."""

    def __init__(self, what: str) -> None:
        self.what = what

    def __reduce__(self) -> tuple[Any, ...]:
        return (_refuse, (self.what,))


@dx.task
def give_lock(x: int) -> Any:
    return threading.Lock()


@dx.task
def give_unloadable(x: int) -> Any:
    return Unloadable("the result")


@dx.task
def fail_locked(x: int) -> int:
    raise LockedError("held")


@dx.task
def fail_pair(x: int) -> int:
    raise PairError("this", "that")


@dx.task
def hold(x: Any) -> int:
    return os.getpid()


@pytest.mark.parametrize(
    ("task", "error_type", "message"),
    [
        (
            give_lock,
            pickle.PicklingError,
            "node 'give_lock': its result of type _thread.lock cannot be pickled: "
            "cannot pickle '_thread.lock' object",
        ),
        (
            give_unloadable,
            pickle.UnpicklingError,
            "node 'give_unloadable': its result cannot be unpickled: ValueError: the result refuses to unpickle",
        ),
        (fail_locked, dx.RemoteError, "test_loky.LockedError: held"),
        (fail_pair, dx.RemoteError, "test_loky.PairError: this and that"),
    ],
)
def test_what_cannot_travel_back_fails_its_node_by_name_and_leaves_the_pool_whole(task, error_type, message):
    with dx.Graph("g") as g:
        task(1)
        getpid()
    result = g.compile().run(executor=LokyExecutor(2), fail_fast=False, raise_on_failure=False)
    key = task.task_name
    assert result.states == {key: FAILED, "getpid": SUCCEEDED}
    assert trial_log(result, key) == [(1, FAILED)]
    (trial,) = result.trials[key]
    assert type(trial.error) is error_type
    assert str(trial.error) == message
    # the pool was not broken: both workers live on
    assert {worker_pid(trial), result.outputs["getpid"]} <= loky_workers(os.getpid())


def test_an_exception_that_cannot_travel_keeps_its_type_name_and_remote_traceback():
    with dx.Graph("g") as g:
        fail_pair(1)
    with pytest.raises(dx.RunFailed) as info:
        g.compile().run(executor=LokyExecutor(2))
    cause = info.value.__cause__
    assert isinstance(cause, dx.RemoteError)
    assert (cause.type_name, cause.message) == ("test_loky.PairError", "this and that")
    assert 'raise PairError("this", "that")' in cause.traceback
    assert cause.traceback.endswith("test_loky.PairError: this and that\n")


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
            Unloadable("the argument"),
            pickle.UnpicklingError,
            "node 'hold': its arguments cannot be unpickled in its worker: "
            "ValueError: the argument refuses to unpickle",
            True,
        ),
    ],
)
def test_an_argument_that_cannot_travel_fails_its_node_by_name(value, error_type, message, in_worker):
    with dx.Graph("g") as g:
        hold(g.input("x"))
        getpid()
    result = g.compile().run(x=value, executor=LokyExecutor(2), fail_fast=False, raise_on_failure=False)
    assert result.states == {"hold": FAILED, "getpid": SUCCEEDED}
    (trial,) = result.trials["hold"]
    assert type(trial.error) is error_type
    assert str(trial.error) == message
    workers = loky_workers(os.getpid())
    assert result.outputs["getpid"] in workers
    if in_worker:
        assert worker_pid(trial) in workers
    else:
        assert trial.worker == "master"


def test_a_task_error_comes_back_with_its_remote_traceback():
    with dx.Graph("g") as g:
        explode(inc(2))
    with pytest.raises(dx.RunFailed) as info:
        g.compile().run(executor=LokyExecutor(2))
    (trial,) = info.value.result.trials["explode"]
    assert type(trial.error) is ValueError and str(trial.error) == "bad value 3"
    assert info.value.__cause__ is trial.error
    assert worker_pid(trial) != os.getpid()
    assert trial.traceback.startswith("Traceback (most recent call last):\n")
    assert 'raise ValueError(f"bad value {x}")' in trial.traceback
    assert trial.traceback.endswith("ValueError: bad value 3\n")


@dx.task
def interrupt_when(path: str) -> int:
    await_path(path, "the other run's trial to start")
    raise KeyboardInterrupt("stop this run")


def test_an_interrupted_run_does_not_fail_another_runs_trials_on_the_shared_pool(tmp_path):
    marks = str(tmp_path)
    with dx.Graph("a") as a:
        interrupt_when(f"{marks}/bystander-1")
    with dx.Graph("b") as b:
        inc(bystander(marks, 0))
    plan_a, plan_b = a.compile(), b.compile()
    results: list[dx.RunResult] = []
    other = threading.Thread(
        target=lambda: results.append(plan_b.run(executor=LokyExecutor(2), raise_on_failure=False))
    )
    other.start()
    # run 'a' owns its executor: the interrupt kills the pool, under b's first trial
    with pytest.raises(KeyboardInterrupt):
        plan_a.run(executor="loky", max_workers=2)
    other.join(GUARD)
    (result,) = results
    assert {k: trial_log(result, k) for k in result.states} == {
        "bystander": [(1, SUCCEEDED)],
        "inc": [(1, SUCCEEDED)],
    }
    assert result.output == 3
    assert_workers_settle(2, gone=(int((tmp_path / "bystander-1").read_text()),))


# -- routing ---------------------------------------------------------------------------------------


@dx.task(executor="cpu")
def crunch(n: int) -> int:
    return os.getpid()


@dx.task
def fetch(n: int) -> int:
    return n


def test_io_tasks_run_in_threads_and_cpu_tasks_in_processes_in_one_run():
    with dx.Graph("g") as g:
        add(crunch(fetch(1)), fetch(crunch(2)))
    result = g.compile().run(executor={"default": "threads", "cpu": "loky"}, max_workers=2, keep="all")
    assert result.states == {k: SUCCEEDED for k in ("fetch", "crunch", "crunch-1", "fetch-1", "add")}
    for key in ("crunch", "crunch-1"):
        (trial,) = result.trials[key]
        assert worker_pid(trial) == result[key] != os.getpid()
    for key in ("fetch", "fetch-1", "add"):
        (trial,) = result.trials[key]
        # in a thread, or (the threads executor runs trials measured tiny there) the master
        assert re.fullmatch(r"dagexec-\d+|master", trial.worker), trial.worker
    assert re.fullmatch(r"dagexec-\d+", result.trials["fetch"][0].worker)  # the first is never measured


# -- functions that travel by value ------------------------------------------------------------------

MAIN_SCRIPT = textwrap.dedent(
    """
    import json
    import os
    from dataclasses import dataclass

    import dagexec as dx
    from dagexec.executors import LokyExecutor

    @dataclass
    class Box:
        value: int

    @dx.task(retries=1)
    def unbox(b: Box) -> int:
        return b.value * 2

    def make_adder(n: int):
        @dx.task
        def add_n(x: int) -> int:
            return x + n
        return add_n

    square = dx.task(lambda x: x * x).options(name="square")

    @dx.task
    def where(*values: int) -> list:
        return [os.getpid(), *values]

    if __name__ == "__main__":
        with dx.Graph("main") as g:
            where(make_adder(5)(unbox(Box(21))), square(3), make_adder(100)(1))
        result = g.compile(portable=True).run(executor=LokyExecutor(2))
        print(json.dumps({"output": result.output, "master": os.getpid(),
                          "workers": sorted({t.worker for ts in result.trials.values() for t in ts})}))
    """
)


def test_main_module_functions_closures_and_lambdas_travel_to_workers(tmp_path):
    script = tmp_path / "main_tasks.py"
    script.write_text(MAIN_SCRIPT)
    out = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path, timeout=10 * GUARD
    )
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    pid, *values = report["output"]
    assert values == [47, 9, 101]
    assert pid != report["master"]
    assert f"pid:{pid}" in report["workers"]
    assert all(re.fullmatch(r"pid:\d+", w) for w in report["workers"])


# -- Ctrl-C, SIGTERM and SIGHUP -----------------------------------------------------------------------

INTERRUPT_SCRIPT = textwrap.dedent(
    """
    import json
    import os
    import sys
    import threading

    import dagexec as dx
    from dagexec.executors import LokyExecutor

    how, started = sys.argv[1], sys.argv[2]

    @dx.task
    def block() -> int:
        open(os.path.join(started, str(os.getpid())), "w").close()
        threading.Event().wait(120)  # far longer than the test waits for this process
        return 1

    @dx.task
    def inc(x: int) -> int:
        return x + 1

    class Record:
        results = []

        def on_run_end(self, result):
            self.results.append(result)

    if __name__ == "__main__":
        with dx.Graph("g") as g:
            inc(block())
            inc(block())
            inc(1)
        executor = LokyExecutor(2) if how == "instance" else "loky"
        report = {}
        try:
            g.compile().run(executor=executor, max_workers=None if how == "instance" else 2,
                            callbacks=[Record()])
        except KeyboardInterrupt as exc:
            report["raised"] = type(exc).__name__
        (result,) = Record.results
        report["states"] = {k: s.value for k, s in result.states.items()}
        report["trials"] = {k: [[t.attempt, t.state.value, t.end is not None] for t in ts]
                            for k, ts in result.trials.items()}
        print(json.dumps(report), flush=True)
    """
)


def marked_processes(marker: str) -> list[int]:
    """Processes whose environment holds ``marker``."""
    needle = marker.encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                if needle in f.read().split(b"\0"):
                    found.append(int(entry))
        except OSError:
            continue
    return found


@pytest.mark.parametrize(
    ("sig", "target", "how"),
    [
        (signal.SIGINT, "master", "name"),
        (signal.SIGTERM, "master", "name"),
        (signal.SIGHUP, "master", "name"),  # a closed terminal, a dropped ssh session
        (signal.SIGINT, "group", "name"),  # a terminal's Ctrl-C reaches the workers too
        (signal.SIGINT, "master", "instance"),  # an executor the run does not own
    ],
)
def test_ctrl_c_sigterm_and_sighup_cancel_the_run_and_leave_no_process(sig, target, how, tmp_path):
    script = tmp_path / "plan.py"
    script.write_text(INTERRUPT_SCRIPT)
    started = tmp_path / "started"
    started.mkdir()
    marker = f"DAGEXEC_TEST_RUN={uuid.uuid4().hex}"
    env = dict(os.environ, DAGEXEC_TEST_RUN=marker.partition("=")[2])
    proc = subprocess.Popen(
        [sys.executable, str(script), how, str(started)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env=env,
        start_new_session=True,
    )
    try:
        wait_until(lambda: len(os.listdir(started)) == 2 or proc.poll() is not None, "both tasks to start")
        assert proc.poll() is None, proc.communicate()
        if target == "group":
            os.killpg(proc.pid, sig)
        else:
            proc.send_signal(sig)
        # the tasks would block for 120 s: ending within the guard means the signal stopped them
        out, err = proc.communicate(timeout=GUARD)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    assert proc.returncode == 0, err
    assert json.loads(out) == {
        "raised": "KeyboardInterrupt",
        "states": {k: "cancelled" for k in ("block", "inc", "block-1", "inc-1", "inc-2")},
        "trials": {
            "block": [[1, "cancelled", True]],
            "inc": [],
            "block-1": [[1, "cancelled", True]],
            "inc-1": [],
            "inc-2": [],
        },
    }
    workers = {int(name) for name in os.listdir(started)}
    assert proc.pid not in workers
    wait_until(lambda: not marked_processes(marker), "every process of the run to end")


# -- a master killed outright --------------------------------------------------------------------

KILLED_SCRIPT = textwrap.dedent(
    """
    import os
    import sys
    import threading

    import dagexec as dx

    @dx.task
    def block(n: int) -> int:
        open(os.path.join(sys.argv[1], str(os.getpid())), "w").close()
        threading.Event().wait(120)  # far longer than the test waits for this process
        return n

    @dx.task
    def inc(n: int) -> int:
        return n + 1

    if __name__ == "__main__":
        with dx.Graph("g") as g:
            if sys.argv[2] == "block":
                block(1)
                block(2)
            else:
                g.output(inc(1), "y")
        print(g.compile().run(executor="loky", max_workers=2).outputs)
    """
)


def boards_of(pid: int) -> list[Path]:
    return sorted(Path("/dev/shm").glob(f"dagexec-board-{pid}-*"))


def test_a_killed_master_s_workers_stop_and_the_next_start_removes_its_board(tmp_path):
    script = tmp_path / "plan.py"
    script.write_text(KILLED_SCRIPT)
    started = tmp_path / "started"
    started.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "DAGEXEC_KEY"}
    proc = subprocess.Popen(
        [sys.executable, str(script), str(started), "block"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
        env=env,
        start_new_session=True,
    )
    decoy = Path("/dev/shm") / f"dagexec-board-{os.getpid()}-decoy"  # a live owner: left alone
    decoy.touch()
    try:
        wait_until(lambda: len(os.listdir(started)) == 2 or proc.poll() is not None, "both tasks to start")
        assert proc.poll() is None, proc.communicate()
        workers = [psutil.Process(int(name)) for name in os.listdir(started)]
        assert [p.ppid() for p in workers] == [proc.pid, proc.pid]
        assert len(boards_of(proc.pid)) == 1
        proc.kill()  # SIGKILL: the master cleans up nothing
        proc.wait()
        # a worker that went on would run its task for 120 s: gone within the guard, it was stopped
        wait_until(
            lambda: not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in workers),
            "the workers of the killed master to stop",
        )
        assert len(boards_of(proc.pid)) == 1  # nothing removed it yet
        after = subprocess.run(
            [sys.executable, str(script), str(started), "inc"],
            capture_output=True, text=True, cwd=tmp_path, env=env, timeout=GUARD,
        )  # fmt: skip
        assert (after.returncode, after.stdout) == (0, "{'y': 2}\n"), after.stderr
        assert boards_of(proc.pid) == []
        assert decoy.exists()
    finally:
        decoy.unlink()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


KEY_SCRIPT = textwrap.dedent(
    """
    import json
    import os
    import subprocess

    import dagexec as dx

    @dx.task
    def look() -> list:
        child = subprocess.run(["sh", "-c", "echo ${DAGEXEC_KEY-unset}"], capture_output=True, text=True)
        return [os.environ.get("DAGEXEC_KEY"), child.stdout.strip()]

    if __name__ == "__main__":
        with dx.Graph("g") as g:
            g.output(look(), "seen")
        print(json.dumps([os.environ.get("DAGEXEC_KEY"), g.compile().run(executor="loky", max_workers=1).output]))
    """
)


def test_loky_workers_and_what_their_tasks_start_do_not_get_dagexec_key(tmp_path):
    script = tmp_path / "plan.py"
    script.write_text(KEY_SCRIPT)
    env = dict(os.environ, DAGEXEC_KEY="s3cret-key")
    proc = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=GUARD
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == ["s3cret-key", [None, "unset"]]
