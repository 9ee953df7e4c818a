"""``DaskExecutor`` on a real ``distributed.LocalCluster``: the semantics of every
executor, values that stay on the workers, crashes, resources and the command line.

One cluster of two worker processes (one thread each, declaring ``resources={"PLAIN": 1}``)
serves the whole module; a third worker, declaring ``resources={"GPU": 1}``, joins it for
the tests that ask for it.  Tasks live at module level (workers import this module to find
them) and share state through files in ``tmp_path``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import dask
import pytest
from distributed import Client, LocalCluster, Nanny
from hypothesis import HealthCheck, given, settings
from test_random_dags import build, dags, evaluate

import dagexec as dx
from dagexec import State
from dagexec.executors import DaskExecutor

SUCCEEDED = State.SUCCEEDED
FAILED = State.FAILED
UPSTREAM_FAILED = State.UPSTREAM_FAILED
CRASHED = State.CRASHED
TIMED_OUT = State.TIMED_OUT
CANCELLED = State.CANCELLED

GUARD = 30.0  # seconds before a wait is a failure
BIG = 50_000_000  # bytes of the big intermediate value


@pytest.fixture(scope="module")
def cluster():
    with LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
        resources={"PLAIN": 1},  # the two first workers: not the GPU one
    ) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def client(cluster):
    # not the default client: executor="dask" must find none unless a test makes one current
    with Client(cluster, set_as_default=False) as client:
        yield client


@pytest.fixture(scope="module")
def gpu(cluster, client):
    """A third worker, the only one that declares the resource ``GPU``."""

    async def start() -> Nanny:
        return await Nanny(
            cluster.scheduler_address,
            nthreads=1,
            resources={"GPU": 1},
            name="gpu",
            host="127.0.0.1",
            dashboard=False,
        )

    nanny = cluster.sync(start)
    client.wait_for_workers(3)
    yield nanny
    cluster.sync(nanny.close)


@pytest.fixture
def dask_ex(client):
    """A DaskExecutor on the module's client; afterwards, the cluster holds no trial of it."""
    ex = DaskExecutor(client)
    yield ex
    assert_released(client)


@pytest.fixture
def gate(tmp_path):
    """A file path that stuck tasks wait for; it appears at test end to release them."""
    path = tmp_path / "gate"
    yield str(path)
    path.touch()


# -- helpers (also used inside workers) --------------------------------------------------


def wait_until(predicate: Any, what: str) -> None:
    deadline = time.monotonic() + GUARD
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {GUARD:g} s for {what}")
        time.sleep(0.01)


def assert_released(client: Client) -> None:
    """Neither the client nor the scheduler keeps a trial's task: every future was released."""
    scheduler = client.cluster.scheduler

    def trial_keys() -> list[Any]:
        ours = re.compile(r".+-a\d+-[0-9a-f]{16}")
        return [k for k in [*client.futures, *scheduler.tasks] if isinstance(k, str) and ours.fullmatch(k)]

    wait_until(lambda: not trial_keys(), "the trials' tasks to be released")


def count_call(path: str) -> int:
    """Append a mark to ``path``; return how many marks it holds (works across processes)."""
    with open(path, "a") as f:
        f.write("x")
    with open(path) as f:
        return len(f.read())


def trial_log(result: dx.RunResult, key: str) -> list[tuple[int, State]]:
    return [(t.attempt, t.state) for t in result.trials[key]]


def workers(client: Client) -> dict[str, Any]:
    """Worker address -> name."""
    return {addr: w["name"] for addr, w in client.scheduler_info()["workers"].items()}


def gpu_address(client: Client) -> str:
    (addr,) = [a for a, name in workers(client).items() if name == "gpu"]
    return addr


def received_bytes() -> int:
    """Bytes this process has read from files, pipes and sockets (Linux's ``rchar``)."""
    with open("/proc/self/io") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("rchar:"))


# -- tasks ---------------------------------------------------------------------------------


@dx.task
def inc(x: int) -> int:
    return x + 1


@dx.task
def add(a: int, b: int) -> int:
    return a + b


@dx.task
def gather(data: dict[str, Any]) -> list[int]:
    return [data["a"], *data["pair"], data["deep"][0]["z"]]


@dx.task
def total(items: list[int]) -> int:
    return sum(items)


@dx.task
def explode(x: int) -> int:
    raise ValueError(f"bad value {x}")


@dx.task
def flaky(path: str, failures: int) -> int:
    n = count_call(path)
    if n <= failures:
        raise OSError(f"attempt {n}")
    return n


@dx.task
def give_lock(x: int) -> Any:
    return threading.Lock()


@dx.task
def untyped():  # no annotation: only the run-time check sees what it returns
    return "7"


@dx.task
def hold(x: Any) -> int:
    return 1


@dx.task(timeout=0.5)
def stuck(gate: str) -> int:
    """Wait until ``gate`` exists (the test's end), at most GUARD seconds."""
    limit = time.monotonic() + GUARD
    while not os.path.exists(gate) and time.monotonic() < limit:
        time.sleep(0.01)
    return 1


@dx.task(retries=1)
def die_once(marker: str) -> str:
    if not os.path.exists(marker):
        open(marker, "w").close()
        time.sleep(0.5)  # mid-task: the trial's "started" event has reached the master
        os._exit(1)
    return "survived"


@dx.task(retries=1, resources={"GPU": 1})
def die_once_on_gpu(marker: str) -> str:
    return die_once.fn(marker)


@dx.task(resources={"GPU": 1})
def pid_on_gpu(x: int = 0) -> int:
    return os.getpid()


@dx.task
def pid() -> int:
    return os.getpid()


@dx.task(executor="cluster")
def on_cluster(x: int) -> int:
    return x * 10


def note_pid(path: str, data: bytes) -> Big:
    """Rebuild a ``Big``: the unpickling process writes its pid to ``path``."""
    with open(path, "a") as f:
        f.write(f"{os.getpid()}\n")
    return Big(path, data)


class Big:
    """A big value that records, in a file, each process that unpickles it."""

    def __init__(self, path: str, data: bytes) -> None:
        self.path = path
        self.data = data

    def __reduce__(self) -> tuple[Any, ...]:
        return (note_pid, (self.path, self.data))


@dx.task
def make_big(path: str) -> Big:
    return Big(path, b"x" * BIG)


@dx.task
def size(big: Big) -> int:
    return len(big.data)


@dx.task(resources={"GPU": 1})
def size_on_gpu(big: Big) -> int:
    return len(big.data)


# -- the semantics every executor has ------------------------------------------------------


def test_runs_a_graph_with_nested_arguments(dask_ex):
    with dx.Graph("g") as g:
        n = g.input("n", int)
        a = inc(n)
        b = inc(inc(a))
        g.output(gather({"a": a, "pair": (b, 7), "deep": [{"z": add(a, b)}]}), name="gathered")
        g.output(total([a, b, inc(n)]), name="total")
    result = g.compile().run(n=1, executor=dask_ex)
    assert result.outputs == {"gathered": [2, 4, 7, 6], "total": 8}
    assert set(result.states.values()) == {SUCCEEDED}
    assert all(t.worker.startswith("tcp://127.0.0.1:") for ts in result.trials.values() for t in ts)


SETTINGS = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)

# Hypothesis warns when the global ``random`` state changes while it draws an example;
# here the strategies do not use it, but the client's and the scheduler's threads in this
# process do (distributed's retry jitter, worker sampling) whenever they like
_OTHER_THREADS_USE_RANDOM = pytest.mark.filterwarnings(
    "ignore:Do not use the `random` module inside strategies:hypothesis.errors.HypothesisDeprecationWarning"
)


@_OTHER_THREADS_USE_RANDOM
@SETTINGS
@given(dag=dags())
def test_random_dags_give_what_a_plain_evaluation_gives(client, dag):
    values, states = evaluate(dag)
    plan, keys = build(dag)
    result = plan.run(executor=DaskExecutor(client))
    assert {keys[k]: s for k, s in result.states.items()} == states
    assert result.outputs == values


@_OTHER_THREADS_USE_RANDOM
@SETTINGS
@given(dag=dags(failing=True))
def test_random_dags_with_failures_give_the_states_of_a_plain_evaluation(client, dag):
    values, states = evaluate(dag)
    plan, keys = build(dag)
    result = plan.run(executor=DaskExecutor(client), fail_fast=False, raise_on_failure=False)
    assert {keys[k]: s for k, s in result.states.items()} == states
    assert result.outputs == values


def test_retries_until_success_with_attempts_from_one(dask_ex, tmp_path):
    task = flaky.options(retries=3)
    with dx.Graph("g") as g:
        task(str(tmp_path / "count"), 2)
    result = g.compile().run(executor=dask_ex)
    assert result.output == 3
    assert trial_log(result, "flaky") == [(1, FAILED), (2, FAILED), (3, SUCCEEDED)]
    assert [str(t.error) for t in result.trials["flaky"][:2]] == ["attempt 1", "attempt 2"]


def test_exhausted_retries_fail_the_node_and_its_dependents(dask_ex, tmp_path):
    task = flaky.options(retries=1, retry_delay=0.01)
    with dx.Graph("g") as g:
        bad = task(str(tmp_path / "count"), 5)
        inc(inc(bad))
        good = inc(1)
        inc(good)
    result = g.compile().run(executor=dask_ex, fail_fast=False, raise_on_failure=False)
    assert result.states == {
        "flaky": FAILED,
        "inc": UPSTREAM_FAILED,
        "inc-1": UPSTREAM_FAILED,
        "inc-2": SUCCEEDED,
        "inc-3": SUCCEEDED,
    }
    assert trial_log(result, "flaky") == [(1, FAILED), (2, FAILED)]
    assert result.trials["inc"] == []
    assert result.outputs == {"inc-3": 3}


def test_failure_brings_back_the_exception_and_its_remote_traceback(dask_ex):
    with dx.Graph("g") as g:
        explode(inc(1))
    with pytest.raises(dx.RunFailed) as info:
        g.compile().run(executor=dask_ex)
    assert str(info.value) == "1 node of graph 'g' failed: 'explode' (ValueError: bad value 2)"
    cause = info.value.__cause__
    assert type(cause) is ValueError and str(cause) == "bad value 2"
    trial = info.value.result.trials["explode"][0]
    assert trial.error is cause
    assert trial.worker.startswith("tcp://127.0.0.1:")
    assert trial.traceback.startswith("Traceback (most recent call last):\n")
    assert ", in explode\n" in trial.traceback
    assert trial.traceback.endswith("ValueError: bad value 2\n")
    assert trial.traceback.rstrip() in str(cause.__cause__)  # shown when RunFailed is printed


def test_run_time_type_check_fails_the_trial_and_is_not_retried(dask_ex):
    with dx.Graph("g") as g:
        inc.options(retries=3)(untyped())
    result = g.compile().run(executor=dask_ex, raise_on_failure=False)
    assert result.states == {"untyped": SUCCEEDED, "inc": FAILED}
    assert trial_log(result, "inc") == [(1, FAILED)]
    assert str(result.trials["inc"][0].error) == "node 'inc': parameter 'x' expects int but got str '7'"


def test_a_result_that_cannot_pickle_fails_its_node_by_name(dask_ex):
    with dx.Graph("g") as g:
        give_lock(1)
    result = g.compile().run(executor=dask_ex, raise_on_failure=False)
    error = result.trials["give_lock"][0].error
    assert type(error).__name__ == "PicklingError"
    assert str(error).startswith("node 'give_lock': its result of type _thread.lock cannot be pickled: ")


def test_an_argument_that_cannot_pickle_fails_its_trial_by_name(client, dask_ex):
    with dx.Graph("g") as g:
        lock = g.input("lock", Any)
        hold.options(name="uses")(lock)
    result = g.compile().run(lock=threading.Lock(), executor=dask_ex, raise_on_failure=False)
    trial = result.trials["uses"][0]
    assert (trial.state, trial.worker) == (FAILED, "master")
    assert str(trial.error).startswith(
        "node 'uses': an argument of type _thread.lock cannot be pickled to send it to a process: "
    )


def test_a_timed_out_trial_is_abandoned_and_other_work_goes_on(client, dask_ex, gate):
    with dx.Graph("g") as g:
        stuck(gate)
        inc(inc(1))
    result = g.compile().run(executor=dask_ex, raise_on_failure=False)
    assert result.states == {"stuck": FAILED, "inc": SUCCEEDED, "inc-1": SUCCEEDED}
    trial = result.trials["stuck"][0]
    assert (trial.state, str(trial.error)) == (TIMED_OUT, "node 'stuck' timed out after 0.5 s")
    assert result.outputs == {"inc-1": 3}


@dx.task(resources={"GPU": 1})
def slow_on_gpu() -> int:
    time.sleep(2.0)
    return 1


# its timeout is far shorter than its wait for the GPU (2 s) and far longer than the
# time its own result takes to reach the master on a loaded machine
@dx.task(resources={"GPU": 1}, timeout=1.0)
def quick_on_gpu() -> int:
    return 2


def test_a_timeout_counts_from_the_start_not_from_the_wait_in_dasks_queue(client, gpu, dask_ex):
    with dx.Graph("g") as g:
        slow_on_gpu()  # first in plan order: starts first, on the one GPU worker
        quick_on_gpu()  # waits for it there, far longer than its own timeout
    result = g.compile().run(executor=dask_ex)
    assert result.outputs == {"slow_on_gpu": 1, "quick_on_gpu": 2}
    (slow,), (quick,) = result.trials["slow_on_gpu"], result.trials["quick_on_gpu"]
    assert (slow.state, quick.state) == (SUCCEEDED, SUCCEEDED)
    assert quick.start >= slow.end  # it did wait, 2 s, with a timeout of 1 s


# -- what travels, and where ----------------------------------------------------------------


def test_a_big_intermediate_stays_on_the_worker_that_made_it(client, dask_ex, tmp_path):
    record = tmp_path / "unpickled"
    record.touch()
    with dx.Graph("g") as g:
        size(make_big(str(record)))
    before = received_bytes()
    result = g.compile().run(executor=dask_ex)
    received = received_bytes() - before
    assert result.output == BIG
    # the consumer ran where the value was: nobody unpickled it, the master read little
    assert result.trials["size"][0].worker == result.trials["make_big"][0].worker
    assert record.read_text() == ""
    assert received < 2_000_000, received


def test_a_big_intermediate_moves_from_worker_to_worker_not_through_the_master(
    client, gpu, dask_ex, tmp_path
):
    record = tmp_path / "unpickled"
    record.touch()
    with dx.Graph("g") as g:
        size_on_gpu(make_big.options(resources={"PLAIN": 1})(str(record)))
    before = received_bytes()
    result = g.compile().run(executor=dask_ex)
    received = received_bytes() - before
    assert result.output == BIG
    maker = result.trials["make_big"][0].worker
    assert maker != gpu_address(client)
    assert result.trials["size_on_gpu"][0].worker == gpu_address(client)
    pids = client.run(os.getpid)
    assert record.read_text() == f"{pids[gpu_address(client)]}\n"  # unpickled once: in the consumer
    assert received < 2_000_000, received


def test_only_outputs_and_kept_values_come_back(dask_ex):
    with dx.Graph("g") as g:
        a = inc(1)
        b = inc(a)
        g.output(inc(b), name="out")
    result = g.compile().run(executor=dask_ex, keep=["inc"])
    assert result.outputs == {"out": 4}
    assert result["inc"] == 2
    with pytest.raises(KeyError, match="inc-1"):
        result["inc-1"]


def test_resources_send_a_task_to_the_only_worker_that_declares_them(client, gpu, dask_ex):
    with dx.Graph("g") as g:
        for i in range(3):
            g.output(pid_on_gpu(i), name=f"p{i}")
        g.output(pid(), name="anywhere")
    result = g.compile().run(executor=dask_ex)
    address = gpu_address(client)
    gpu_pid = client.run(os.getpid, workers=[address])[address]
    assert {result.outputs[f"p{i}"] for i in range(3)} == {gpu_pid}
    assert {result.trials[k][0].worker for k in ("pid_on_gpu", "pid_on_gpu-1", "pid_on_gpu-2")} == {address}


def test_threads_and_the_cluster_in_one_run(client, dask_ex):
    with dx.Graph("g") as g:
        a = inc(1)  # threads
        b = on_cluster(a)  # on the cluster, from a value made in a thread
        c = inc(b)  # threads, from a value kept on the cluster
        g.output(total([on_cluster(c), c, b]), name="out")
    result = g.compile().run(executor={"default": "threads", "cluster": dask_ex})
    assert result.output == 210 + 21 + 20
    where = {k: ts[0].worker for k, ts in result.trials.items()}
    assert [k for k, w in where.items() if w.startswith("tcp://")] == ["on_cluster", "on_cluster-1"]


# -- crashes -----------------------------------------------------------------------------------


def test_a_worker_that_dies_mid_task_crashes_its_trial_and_the_run_goes_on(client, dask_ex, tmp_path):
    n = len(client.nthreads())
    with dx.Graph("g") as g:
        die_once(str(tmp_path / "died"))
        inc(inc(1))
    result = g.compile().run(executor=dask_ex)
    assert result.outputs == {"die_once": "survived", "inc-1": 3}
    assert trial_log(result, "die_once") == [(1, CRASHED), (2, SUCCEEDED)]
    crashed = result.trials["die_once"][0]
    error = crashed.error
    assert isinstance(error, dx.WorkerCrashed)
    assert crashed.worker.startswith("tcp://127.0.0.1:")
    assert str(error) == f"node 'die_once': its dask worker {crashed.worker} died while running attempt 1"
    assert (error.key, error.worker) == ("die_once", crashed.worker)
    wait_until(lambda: len(client.nthreads()) == n, "the nanny to restart the worker")


def test_a_trial_queued_on_a_worker_that_dies_keeps_its_attempt(client, gpu, dask_ex, tmp_path):
    with dx.Graph("g") as g:
        die_once_on_gpu(str(tmp_path / "died"))  # first in plan order: starts first
        pid_on_gpu()  # queued behind it on the same worker
    result = g.compile().run(executor=dask_ex)
    assert trial_log(result, "die_once_on_gpu") == [(1, CRASHED), (2, SUCCEEDED)]
    assert trial_log(result, "pid_on_gpu") == [(1, SUCCEEDED)]
    address = gpu_address(client)  # the restarted worker
    assert result.trials["pid_on_gpu"][0].worker == address
    assert result.trials["die_once_on_gpu"][0].worker != address


# -- choosing the cluster ------------------------------------------------------------------------


def test_dask_by_name_without_a_client_says_how_to_make_one():
    with dx.Graph("g") as g:
        inc(1)
    plan = g.compile()
    message = (
        "executor 'dask' needs a dask.distributed client, and there is none: make one first "
        "(distributed.Client(address) or distributed.Client(distributed.LocalCluster())), "
        "give run() scheduler='tcp://host:8786', or pass DaskExecutor('tcp://host:8786')"
    )
    with dask.config.set({"scheduler-address": None}):
        with pytest.raises(dx.InputError) as info:
            plan.run(executor="dask")
        assert str(info.value) == message
        with pytest.raises(ValueError) as direct:
            DaskExecutor()
        assert str(direct.value) == message


def test_dask_by_name_uses_the_current_client(client):
    with dx.Graph("g") as g:
        inc(1)
    with client.as_current():
        result = g.compile().run(executor="dask")
    assert result.output == 2
    assert result.trials["inc"][0].worker in workers(client)
    assert_released(client)


def test_scheduler_option_connects_a_client_of_the_run(client, cluster):
    with dx.Graph("g") as g:
        a = inc(1)
        on_cluster(a)
    plan = g.compile()
    clients = set(cluster.scheduler.clients)
    result = plan.run(executor="dask", scheduler=cluster.scheduler_address)
    assert result.output == 20
    result = plan.run(executor={"default": "threads", "cluster": "dask"}, scheduler=cluster.scheduler_address)
    assert result.output == 20
    assert result.trials["inc"][0].worker.startswith("dagexec-")
    assert result.trials["on_cluster"][0].worker in workers(client)
    wait_until(lambda: set(cluster.scheduler.clients) == clients, "the runs' clients to close")
    with pytest.raises(dx.InputError) as info:
        plan.run(executor="threads", scheduler=cluster.scheduler_address)
    assert str(info.value) == (
        f"scheduler={cluster.scheduler_address!r} is used only with executor='dask' (or a route "
        "mapped to 'dask'), but the run's executor is 'threads'"
    )


PIPELINE = textwrap.dedent(
    """
    import dagexec as dx

    @dx.task
    def load(n: int) -> list[int]:
        return list(range(n))

    @dx.task
    def total(rows: list[int]) -> int:
        return sum(rows)

    with dx.Graph("sums") as sums:
        sums.output(total(load(sums.input("n", int))), name="total")
    """
)


def cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DAGEXEC_KEY")}
    env.pop("DASK_SCHEDULER_ADDRESS", None)
    env["DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT"] = "2s"  # for the unreachable scheduler
    cmd = [sys.executable, "-m", "dagexec", *args]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=60)


def test_the_command_line_runs_a_saved_plan_on_the_cluster(client, cluster, tmp_path):
    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    project.mkdir()
    elsewhere.mkdir()
    (project / "pipe.py").write_text(PIPELINE)
    proc = cli(project, "compile", "pipe:sums", "-o", "plan.dagx")
    assert proc.returncode == 0, proc.stderr
    shutil.move(project / "plan.dagx", elsewhere / "plan.dagx")
    shutil.rmtree(project)  # the code travels inside the file, and from there to the workers
    address = cluster.scheduler_address
    run = ("run", "plan.dagx", "-i", "n=5", "--no-progress")
    proc = cli(elsewhere, *run, "--executor", "dask", "--scheduler", address, "--json", "r.json")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "total = 10\n"
    report = json.loads((elsewhere / "r.json").read_text())
    assert report["states"] == {"load": "succeeded", "total": "succeeded"}
    proc = cli(elsewhere, *run, "--scheduler", address)
    assert (proc.returncode, proc.stderr) == (
        2,
        "dagexec: error: --scheduler is used only with --executor dask\n",
    )
    proc = cli(elsewhere, *run, "--executor", "dask", "--scheduler", "tcp://127.0.0.1:9")
    assert proc.returncode == 2
    assert proc.stderr.startswith(
        "dagexec: error: executor 'dask' cannot reach the scheduler at 'tcp://127.0.0.1:9': "
    )
    proc = cli(elsewhere, *run, "--executor", "dask")
    assert (proc.returncode, proc.stderr) == (
        2,
        "dagexec: error: --executor dask needs the scheduler's address: --scheduler tcp://host:8786 "
        "(or the environment variable DASK_SCHEDULER_ADDRESS)\n",
    )


INTERRUPTED = textwrap.dedent(
    """
    import json
    import os
    import sys
    import time

    import dagexec as dx

    started, gate = sys.argv[1], sys.argv[2]

    @dx.task
    def block() -> int:
        open(started, "w").close()
        while not os.path.exists(gate):  # the test opens the gate when it ends
            time.sleep(0.01)
        return 1

    @dx.task
    def inc(x: int) -> int:
        return x + 1

    class Record:
        results = []

        def on_run_end(self, result):
            self.results.append(result)

    with dx.Graph("g") as g:
        inc(block())
        inc(1)

    if __name__ == "__main__":
        report = {}
        try:
            g.compile().run(executor="dask", max_workers=1, callbacks=[Record()])
        except KeyboardInterrupt:
            report["raised"] = "KeyboardInterrupt"
        (result,) = Record.results
        report["states"] = {k: s.value for k, s in result.states.items()}
        report["trials"] = {k: [[t.attempt, t.state.value] for t in ts] for k, ts in result.trials.items()}
        print(json.dumps(report))
    """
)


def test_sigint_cancels_the_trials_on_the_cluster_and_reraises(client, cluster, tmp_path, gate):
    script, started = tmp_path / "plan.py", str(tmp_path / "started")
    script.write_text(INTERRUPTED)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["DASK_SCHEDULER_ADDRESS"] = cluster.scheduler_address
    clients = set(cluster.scheduler.clients)
    proc = subprocess.Popen(
        [sys.executable, str(script), started, gate],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env=env,
    )
    try:
        wait_until(lambda: os.path.exists(started) or proc.poll() is not None, "the task to start")
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=GUARD)  # the task would block until the test ends
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert json.loads(out) == {
        "raised": "KeyboardInterrupt",
        "states": {"block": "cancelled", "inc": "cancelled", "inc-1": "cancelled"},
        "trials": {"block": [[1, "cancelled"]], "inc": [], "inc-1": []},
    }
    # the run's client is gone, and the scheduler forgot every task of the run
    wait_until(lambda: set(cluster.scheduler.clients) == clients, "the run's client to close")
    assert_released(client)


@dx.task
async def async_double(x: int) -> int:
    import asyncio

    await asyncio.sleep(0.001)
    return 2 * x


def test_async_tasks_are_awaited_in_the_dask_workers(dask_ex):
    with dx.Graph("g") as g:
        g.output(add(async_double(1), async_double(2)), name="out")
    result = g.compile().run(executor=dask_ex)
    assert result.output == 6
    assert all(t.worker.startswith("tcp://127.0.0.1:") for ts in result.trials.values() for t in ts)


def test_a_map_runs_each_item_as_a_dask_task(dask_ex):
    with dx.Graph("g") as g:
        g.output(total(inc.map([1, 2, 3])), name="out")
    result = g.compile().run(executor=dask_ex)
    assert result.output == 9
    assert [k for k in result.trials if k.startswith("inc[")] == ["inc[0]", "inc[1]", "inc[2]"]
    assert all(result.trials[f"inc[{j}]"][0].worker.startswith("tcp://") for j in range(3))


def test_a_maps_list_as_an_output_holds_the_items_values(dask_ex):
    with dx.Graph("g") as g:
        items = inc.map([1, 2, 3])
        g.output(items, name="items")
        g.output(total(items), name="total")
    result = g.compile().run(executor=dask_ex)
    assert result.outputs == {"items": [2, 3, 4], "total": 9}
