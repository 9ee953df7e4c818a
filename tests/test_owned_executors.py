"""``OwnedExecutors``: the one owner of the executors a run makes.  Whatever way a run
leaves (refused arguments, a cache folder that cannot be opened, the end of the loop,
Ctrl-C), what it made is shut down, an executor the user passed in is not, and an
executor that raises in ``run_ended`` or ``shutdown`` is logged without costing the
run its result or its error."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import psutil
import pytest

import dagexec as dx
from dagexec.executors import SerialExecutor
from dagexec.executors._resolve import OwnedExecutors


class Recording(SerialExecutor):
    """A serial executor that writes down the run's ends and shutdowns, and may raise in them."""

    def __init__(self, name: str, calls: list[str], raises: str = "") -> None:
        super().__init__()
        self.name, self.calls, self.raises = name, calls, raises

    def run_ended(self) -> None:
        super().run_ended()  # stops watching the run's child processes
        self.calls.append(f"{self.name}.run_ended")
        if self.raises == "run_ended":
            raise RuntimeError(f"{self.name} cannot end")

    def shutdown(self, *, cancel: bool = False) -> None:
        super().shutdown(cancel=cancel)
        self.calls.append(f"{self.name}.shutdown(cancel={cancel})")
        if self.raises == "shutdown":
            raise RuntimeError(f"{self.name} cannot shut down")

    def __repr__(self) -> str:
        return f"<Recording {self.name}>"


def test_an_error_in_the_block_shuts_down_every_owned_executor_once_and_propagates(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[str] = []
    owned = OwnedExecutors([Recording("a", calls, raises="shutdown"), Recording("b", calls)])
    with pytest.raises(dx.InputError) as info, owned:
        raise dx.InputError([dx.Problem("missing input 'n'")], what="run")
    assert str(info.value) == "missing input 'n'"  # not the error of a's shutdown
    assert calls == ["a.shutdown(cancel=False)", "b.shutdown(cancel=False)"]
    owned.shutdown()
    assert len(calls) == 2
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("WARNING", "executor <Recording a> raised in shutdown")
    ]
    assert str(caplog.records[0].exc_info[1]) == "a cannot shut down"  # type: ignore[index]


def test_ctrl_c_in_the_block_shuts_down_with_cancel() -> None:
    calls: list[str] = []
    with pytest.raises(KeyboardInterrupt), OwnedExecutors([Recording("a", calls)]):
        raise KeyboardInterrupt
    assert calls == ["a.shutdown(cancel=True)"]


def test_the_end_tells_every_used_executor_and_shuts_down_only_the_owned_ones(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[str] = []
    given = Recording("given", calls, raises="run_ended")
    made = Recording("made", calls)
    with OwnedExecutors([made]) as owned:
        owned.end([given, made], interrupted=True)
    assert calls == ["given.run_ended", "made.run_ended", "made.shutdown(cancel=True)"]
    assert [r.getMessage() for r in caplog.records] == ["executor <Recording given> raised in run_ended"]


def test_a_given_executor_that_raises_at_the_end_costs_the_run_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[str] = []
    with dx.Graph("one") as graph:
        graph.output(dx.task(name="one")(lambda: 1)(), "one")
    result = graph.compile().run(executor=Recording("given", calls, raises="run_ended"))
    assert result.outputs == {"one": 1}
    assert calls == ["given.run_ended"]  # never shut down: the run did not make it
    assert [r.getMessage() for r in caplog.records if r.name == "dagexec.engine"] == [
        "executor <Recording given> raised in run_ended"
    ]


# -- loky: no worker process outlives the run that made it ---------------------------


@dx.task
def worker_pid(folder: str) -> int:
    Path(folder, str(os.getpid())).write_text("")
    return os.getpid()


@dx.task
def stops_the_run(pid: int) -> int:
    raise KeyboardInterrupt  # stops the run as Ctrl-C does (DESIGN §12)


def loky_workers() -> set[int]:
    found = set()
    for p in psutil.Process().children(recursive=True):
        try:
            if p.status() != psutil.STATUS_ZOMBIE and "loky" in " ".join(p.cmdline()):
                found.add(p.pid)
        except psutil.NoSuchProcess:
            pass
    return found


def gone(pids: set[int], timeout: float = 60.0) -> set[int]:
    """The pids still running after waiting up to ``timeout`` for them to end."""
    deadline = time.monotonic() + timeout
    while True:
        alive = set()
        for pid in pids:
            try:
                if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                    alive.add(pid)
            except psutil.NoSuchProcess:
                pass
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.05)


def test_a_loky_run_refused_for_its_arguments_leaves_no_worker(tmp_path: Path) -> None:
    with dx.Graph("pids") as graph:
        graph.output(worker_pid(graph.input("folder", str)), "pid")
    before = loky_workers()
    with pytest.raises(dx.InputError) as info:
        graph.compile().run(executor="loky", max_workers=1, only=["nope"], folder=str(tmp_path))
    assert str(info.value) == "only: unknown key 'nope': not a node or section of graph 'pids'"
    assert loky_workers() - before == set()
    assert list(tmp_path.iterdir()) == []


def test_a_loky_run_stopped_by_ctrl_c_kills_its_workers(tmp_path: Path) -> None:
    # a run that ends normally leaves loky's reusable workers to the next run; one
    # interrupted shuts its executor down with cancel, which kills them
    with dx.Graph("pids") as graph:
        graph.output(stops_the_run(worker_pid(graph.input("folder", str))), "out")
    with pytest.raises(KeyboardInterrupt):
        graph.compile().run(executor="loky", max_workers=1, folder=str(tmp_path))
    pids = {int(p.name) for p in tmp_path.iterdir()}
    assert len(pids) == 1
    assert gone(pids) == set()


def test_a_loky_run_whose_cache_cannot_be_opened_leaves_no_worker(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with dx.Graph("pids") as graph:
        graph.output(worker_pid(graph.input("folder", str)), "pid")
    before = loky_workers()
    with pytest.raises(dx.InputError) as info:
        graph.compile().run(executor="loky", cache=blocker / "store", folder=str(tmp_path / "none"))
    assert str(info.value).startswith("[Errno 20] Not a directory")
    assert loky_workers() - before == set()


def test_logged_shutdown_errors_name_the_executor(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="dagexec.engine")
    calls: list[str] = []
    owned = OwnedExecutors()
    owned.add(Recording("late", calls, raises="shutdown"))
    owned.end([], interrupted=False)
    assert calls == ["late.shutdown(cancel=False)"]
    assert [r.getMessage() for r in caplog.records] == ["executor <Recording late> raised in shutdown"]
