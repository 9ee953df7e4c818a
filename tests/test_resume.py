"""``--resume`` never drops a value it needs (DESIGN §7): a node the journal says is done
whose value the run needs (an output, ``keep=``, or a node that runs reads it) and the
store cannot give back (pruned since, never written) runs again, with its earlier trials
kept in the record.

The command-line tests run ``dagexec`` in fresh processes on a real store, kill one
with SIGKILL, and prune the store with ``dagexec cache prune`` between the runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import dagexec as dx

PIPELINE = textwrap.dedent(
    """
    import os
    import time

    import dagexec as dx

    HERE = os.path.dirname(os.path.abspath(__file__))

    def mark(name):
        with open(os.path.join(HERE, "calls"), "a") as f:
            f.write(name + "\\n")

    @dx.task
    def fetch(n: int) -> list[int]:
        mark("fetch")
        return list(range(n))

    @dx.task
    def size(xs: list[int]) -> int:
        mark("size")
        return len(xs)

    @dx.task(cache=False)
    def publish(xs: list[int]) -> int:
        mark("publish")  # a side effect that no output needs: never again on resume
        return len(xs)

    @dx.task
    def crunch(xs: list[int]) -> int:
        mark("crunch")
        if os.path.exists(os.path.join(HERE, "hang")):
            time.sleep(120)  # far longer than the test waits: it is killed here
        if os.path.exists(os.path.join(HERE, "fail")):
            raise RuntimeError("crunch failed")
        return sum(xs)

    with dx.Graph("r") as r:
        xs = fetch(r.input("n", int))
        r.output(crunch(xs), name="crunched")
        r.output(size(xs), name="size")
        publish(xs)
    """
)


def project(tmp_path: Path, flag: str) -> Path:
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "pipe.py").write_text(PIPELINE)
    (folder / flag).touch()
    return folder


def command(*args: str) -> tuple[list[str], dict[str, str]]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DAGEXEC_KEY")}
    return [sys.executable, "-m", "dagexec", *args], env


def dagexec(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cmd, env = command(*args)
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def run_args(cache: Path, *extra: str) -> list[str]:
    return [
        "run",
        "pipe:r",
        "-i",
        "n=4",
        "--cache",
        str(cache),
        "--no-progress",
        "--executor",
        "serial",
        *extra,
    ]


def calls(folder: Path) -> Counter[str]:
    return Counter((folder / "calls").read_text().split())


def prune(folder: Path, cache: Path) -> None:
    proc = dagexec(folder, "cache", "prune", str(cache))
    assert proc.returncode == 0 and proc.stdout.startswith("removed 2 entries, "), (proc.stdout, proc.stderr)


def attempts(report: dict[str, Any], key: str) -> list[tuple[int, str]]:
    return [(t["attempt"], t["state"]) for t in report["trials"][key]]


def test_a_resumed_run_runs_again_the_done_nodes_pruned_since_a_failure(tmp_path):
    folder, cache = project(tmp_path, "fail"), tmp_path / "cache"
    proc = dagexec(folder, *run_args(cache, "--json", "first.json"))
    assert proc.returncode == 1, proc.stderr
    assert calls(folder) == Counter(fetch=1, size=1, publish=1, crunch=1)
    prune(folder, cache)  # fetch's and size's entries, written by the failed run
    (folder / "fail").unlink()
    proc = dagexec(folder, *run_args(cache, "--resume", "--json", "r.json"))
    assert proc.returncode == 0, proc.stderr
    report = json.loads((folder / "r.json").read_text())
    assert report["outputs"] == {"crunched": 6, "size": 4}
    assert report["states"] == dict.fromkeys(("fetch", "crunch", "size", "publish"), "succeeded")
    assert calls(folder) == Counter(fetch=2, size=2, publish=1, crunch=2)
    assert attempts(report, "size") == [
        (1, "succeeded"),
        (1, "succeeded"),
    ]  # the earlier run's, then this one's
    assert attempts(report, "fetch") == [(1, "succeeded"), (1, "succeeded")]
    assert attempts(report, "crunch") == [(1, "failed"), (1, "succeeded")]
    assert attempts(report, "publish") == [(1, "succeeded")]


def test_a_run_killed_mid_way_then_pruned_resumes_with_every_output(tmp_path):
    folder, cache = project(tmp_path, "hang"), tmp_path / "cache"
    cmd, env = command(*run_args(cache))
    proc = subprocess.Popen(cmd, cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60  # a guard against a hung child, not a timing assertion
        while not (folder / "calls").exists() or "crunch" not in calls(folder):
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.01)
        proc.kill()  # SIGKILL: no handler runs
    finally:
        proc.communicate(timeout=60)
    assert calls(folder) == Counter(fetch=1, size=1, publish=1, crunch=1)
    prune(folder, cache)
    (folder / "hang").unlink()
    proc = dagexec(folder, *run_args(cache, "--resume", "--json", "r.json"))
    assert proc.returncode == 0, proc.stderr
    report = json.loads((folder / "r.json").read_text())
    assert report["outputs"] == {"crunched": 6, "size": 4}
    assert calls(folder) == Counter(fetch=2, size=2, publish=1, crunch=2)
    assert attempts(report, "size") == [(1, "succeeded"), (1, "succeeded")]
    assert attempts(report, "crunch") == [(1, "succeeded")]  # killed: its trial never ended


class Handle:
    """A value that does not pickle: it is never written to the store."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.lock = threading.Lock()


def test_outputs_and_kept_values_never_written_run_again_on_resume(tmp_path):
    ran: list[str] = []
    flag = tmp_path / "fail"
    flag.touch()

    @dx.task(cache=False)
    def stamp() -> str:
        ran.append("stamp")
        return "stamped"

    @dx.task
    def handle() -> Handle:
        ran.append("handle")
        return Handle(7)

    @dx.task
    def fragile() -> int:
        ran.append("fragile")
        if flag.exists():
            raise RuntimeError("not yet")
        return 1

    with dx.Graph("g") as g:
        g.output(stamp(), name="stamp")
        handle()
        g.output(fragile(), name="fragile")
    plan = g.compile()
    first = plan.run(cache=tmp_path / "c", executor="serial", keep=["handle"], raise_on_failure=False)
    assert {k: s.value for k, s in first.states.items()} == {
        "stamp": "succeeded",
        "handle": "succeeded",
        "fragile": "failed",
    }
    assert sorted(ran) == ["fragile", "handle", "stamp"]
    flag.unlink()
    ran.clear()
    result = plan.run(cache=tmp_path / "c", executor="serial", keep=["handle"], resume=True)
    assert sorted(ran) == ["fragile", "handle", "stamp"]
    assert result.outputs == {"stamp": "stamped", "fragile": 1}
    assert result["handle"].n == 7
    assert [(t.attempt, t.state.value) for t in result.trials["stamp"]] == [
        (1, "succeeded"),
        (1, "succeeded"),
    ]
    # without keep=, a done node whose value nobody needs does not run again
    ran.clear()
    plan.run(cache=tmp_path / "c", executor="serial", resume=True)
    assert ran == ["stamp"]  # handle is done and unneeded; fragile is in the store
