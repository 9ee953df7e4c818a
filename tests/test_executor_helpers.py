"""The helpers the process and cluster executors share (docs/executors.md): the
in-flight registry, the words of a crash, markers that pickle by name, the swap of
dask's handles inside argument containers, and the lazy registry of
``dagexec.executors`` that is the protocol's public home."""

from __future__ import annotations

import collections
import pickle
import subprocess
import sys
import threading
from typing import Any

import cloudpickle

import dagexec as dx
import dagexec.executors as executors
from dagexec.executors import _crash
from dagexec.executors._inflight import InFlight, Submission
from dagexec.executors.dask.graph import swap_remotes
from dagexec.executors.dask.worker import _FAILED, _lost_input
from dagexec.run import batches, protocol, worker
from dagexec.run.protocol import LINK, O_ERROR, O_OK, O_START, O_WORKER, Batch, Call, Remote

Pair = collections.namedtuple("Pair", ["left", "right"])


class _Spec:
    def __init__(self, key: str) -> None:
        self.key = key


def _call(key: str = "n", attempt: int = 1, args: Any = (), kwargs: Any = None) -> Call:
    return Call(0, attempt, _Spec(key), args, kwargs)


# -- the in-flight registry ---------------------------------------------------------------


def test_each_submission_in_flight_is_claimed_by_exactly_one_of_many_threads() -> None:
    inflight: InFlight[int, str] = InFlight()
    calls = [_call(f"n{k}") for k in range(2000)]
    for k, call in enumerate(calls):
        inflight.add(k, call, f"sub{k}")
    won: list[list[str]] = [[] for _ in range(8)]
    go = threading.Barrier(8)

    def claim_all(me: int) -> None:
        go.wait()
        for k, call in enumerate(calls):  # half by token, half by call
            sub = inflight.claim(k) if (k + me) % 2 else inflight.claim_unit(call)
            if sub is not None:
                won[me].append(sub)

    threads = [threading.Thread(target=claim_all, args=(me,)) for me in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    claimed = sorted(sub for subs in won for sub in subs)
    assert claimed == sorted(f"sub{k}" for k in range(2000))
    assert (len(inflight), inflight.pending(), inflight.find(calls[0]), inflight.token_of(calls[0])) == (
        0,
        [],
        None,
        None,
    )


def test_a_batch_aliased_to_the_rerun_of_its_head_finds_that_submission() -> None:
    inflight: InFlight[int, str] = InFlight()
    head_call, batch_call = _call("a"), _call("b")
    batch = Batch([batch_call], [False], [False])
    head = Batch([head_call], [False], [False])
    inflight.add(7, head, "rerun")
    inflight.alias(batch, 7)
    assert (inflight.find(batch), inflight.token_of(batch), inflight.find(head)) == ("rerun", 7, "rerun")
    assert inflight.claim(7) == "rerun"
    assert inflight.find(head) is None
    assert inflight.token_of(batch) == 7  # an alias outlives the claim until dropped
    inflight.drop_alias(batch)
    assert inflight.token_of(batch) is None
    inflight.alias(batch, 7)  # no submission under 7 any more: nothing recorded
    assert inflight.token_of(batch) is None


def test_clear_forgets_every_submission_and_returns_them() -> None:
    inflight: InFlight[str, Submission] = InFlight()
    subs = [Submission(_call(k), print) for k in "abc"]
    for sub in subs:
        inflight.add(sub.call.key, sub.unit, sub)
    assert inflight.clear() == subs
    assert (len(inflight), inflight.get("a"), inflight.find(subs[0].call)) == (0, None, None)


# -- the words of a crash -------------------------------------------------------------------


def test_a_dead_worker_s_crash_says_who_died_and_the_exit_codes() -> None:
    broken = (
        "A process in the executor was terminated abruptly while the future was running "
        "or pending. The exit codes of the workers are {SIGKILL(-9)}"
    )
    codes = _crash.exit_codes(broken)
    error = _crash.worker_died(_call("etl", 2), "its worker process (pid 41)", pid=41, codes=codes)
    assert type(error) is dx.WorkerCrashed
    assert str(error) == (
        "node 'etl': its worker process (pid 41) died while running attempt 2; "
        "exit codes of the workers that died: {SIGKILL(-9)}"
    )
    assert (error.key, error.pid, error.exitcodes, error.worker) == ("etl", 41, "{SIGKILL(-9)}", None)
    dask = _crash.worker_died(_call("etl"), "its dask worker tcp://h:1", worker="tcp://h:1")
    assert str(dask) == "node 'etl': its dask worker tcp://h:1 died while running attempt 1"
    assert (dask.pid, dask.exitcodes, dask.worker) == (None, "", "tcp://h:1")
    assert _crash.exit_codes("no codes here") == ""


def test_a_lost_trial_s_outcome_is_failed_with_nothing_logged() -> None:
    error = RuntimeError("gone")
    out = _crash.died_outcome(_call("k"), error, 3.0, "pid:9", "the pool's text")
    assert out[:O_START] == (0, 1, False, None, error, "the pool's text")
    assert (out[O_WORKER], out[-1]) == ("pid:9", "")
    refused = protocol.crashed_outcome(_call("k"), OSError("closed"), 1.0, _crash.refused("the dask client"))
    assert not refused[O_OK]
    assert str(refused[O_ERROR]) == "node 'k': the dask client refused the trial: OSError: closed"


# -- markers ----------------------------------------------------------------------------------


def test_markers_unpickle_as_the_very_same_object_with_pickle_and_cloudpickle() -> None:
    for marker in (LINK, _FAILED):
        assert pickle.loads(pickle.dumps(marker)) is marker
        assert pickle.loads(cloudpickle.dumps(marker)) is marker
    assert (repr(LINK), repr(_FAILED)) == ("LINK", "<failed trial>")


# -- dask's handles in argument containers ---------------------------------------------------------


class _Owner(protocol.Executor):
    def fetch(self, remotes: list[Remote]) -> list[Any]:
        return [f"value of {r.ref}" for r in remotes]


def test_dask_swaps_its_own_handles_for_futures_at_any_depth_and_records_where() -> None:
    owner, other = _Owner(), _Owner()
    mine = [Remote(owner, f"future{k}") for k in range(4)]
    foreign = Remote(other, "elsewhere")
    args = [mine[0], Pair(mine[1], 5), {"x": [foreign, mine[2]]}, {mine[3]}, 7]
    new_args, new_kwargs, inputs = swap_remotes(_call(args=args, kwargs={"k": (mine[0],), "j": 3}), owner)
    assert new_args == ["future0", Pair("future1", 5), {"x": [foreign, "future2"]}, {"value of future3"}, 7]
    assert type(new_args[1]) is Pair
    assert new_kwargs == {"k": ("future0",), "j": 3}
    assert inputs == [(0,), (1, 0), (2, "x", 1), ("k", 0)]
    plain = ((1, [2]), {"a": 3})
    assert swap_remotes(_call(args=plain[0], kwargs=plain[1]), owner) == (plain[0], plain[1], [])


def test_a_worker_finds_a_lost_input_at_the_paths_the_master_recorded() -> None:
    args = [1, Pair(2, [3, _FAILED])]
    lost = _lost_input("n", args, {"k": 4}, [(0,), (1, 1, 1)])
    assert (
        str(lost) == "node 'n': an input was lost with a dask worker, and dask's recomputation of it failed"
    )
    assert _lost_input("n", args, {"k": _FAILED}, [(0,)]) is None
    assert _lost_input("n", args, {"k": [_FAILED]}, [("k", 0)]) is not None


# -- the package: the protocol's public home, loading no backend ----------------------------------


def test_the_executors_package_re_exports_the_protocol_as_the_same_objects() -> None:
    for name in ("Executor", "Call", "Batch", "BatchDone", "Remote", "Outcome", "crashed_outcome"):
        assert getattr(executors, name) is getattr(protocol, name)
    for name in ("run_call", "run_call_async"):
        assert getattr(executors, name) is getattr(worker, name)
    assert executors.run_batch is batches.run_batch


def test_importing_the_executors_package_loads_no_backend_until_one_is_named() -> None:
    script = (
        "import sys, dagexec, dagexec.executors as e\n"
        "loaded = lambda: sorted(m for m in sys.modules if m.split('.')[0] in ('loky', 'distributed', 'dask', 'ray')"
        " or m.startswith(('dagexec.executors.loky', 'dagexec.executors.dask', 'dagexec.executors.ray')))\n"
        "print(loaded())\n"
        "from dagexec.executors import LokyExecutor\n"
        "print(LokyExecutor.__module__, 'dagexec.executors.dask' in sys.modules)\n"
        "print(e.make_executor('serial')[0], sorted(e.EXECUTORS), 'ray' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == [
        "[]",
        "dagexec.executors.loky False",
        "SerialExecutor() ['dask', 'loky', 'ray', 'serial', 'threads'] False",
    ]
