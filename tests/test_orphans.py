"""No process outlives a run, however its master ends (DESIGN §5, §10b, §12).

A master in a subprocess runs a plan on serial, threads or loky whose tasks start
processes that would sleep for minutes: processes a task starts itself
(``subprocess.Popen`` of a shell that starts a ``sleep``), or ``dx.shell`` commands
doing the same.  Each process writes its pid to a file.  Then the master is ended:
Ctrl-C (``SIGINT``), ``SIGTERM``, ``SIGHUP``, ``SIGKILL``, or ``SIGKILL`` to its whole
process group.  Every process it had below it, and every process a task started,
must be gone within ``GUARD`` seconds (minutes before the sleeps would end: a
process that is gone was stopped).  psutil counts them; a zombie counts as gone.

Not in the matrix: ``SIGKILL`` of a serial or threads master whose task started a
process itself.  That process is a child of the master, and nothing is left to
stop it (docs/processes.md, "What each ending guarantees").
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

GUARD = 30.0  # seconds: a cap on waiting for what must happen, never a check of speed

MASTER = textwrap.dedent(
    """
    import os
    import subprocess
    import sys
    import time

    import dagexec as dx

    executor, kind, folder = sys.argv[1], sys.argv[2], sys.argv[3]

    # a shell that starts a sleep below it, and writes: its parent, itself, the sleep
    SCRIPT = 'sleep 300 & echo "$PPID $$ $!" > {0}.tmp && mv {0}.tmp {0}; wait'

    @dx.task
    def hold(n: int) -> int:
        ready = os.path.join(folder, f"ready-{n}")
        proc = subprocess.Popen(["sh", "-c", SCRIPT.format(ready)])
        proc.wait()
        return n

    with dx.Graph("orphans") as g:
        for n in range(2):
            if kind == "popen":
                hold(n)
            else:
                dx.shell(["sh", "-c", SCRIPT.format(os.path.join(folder, f"ready-{n}"))], name=f"cmd{n}")
    g.compile().run(executor=executor, max_workers=2)
    """
)

ENDINGS = ["sigint", "sigterm", "sighup", "sigkill", "group"]


def cells() -> list[tuple[str, str, str]]:
    out = []
    for executor in ("serial", "threads", "loky"):
        for ending in ENDINGS:
            for kind in ("popen", "shell"):
                if ending == "sigkill" and kind == "popen" and executor != "loky":
                    continue  # nothing is left to stop a child of a killed master (see the docstring)
                out.append((executor, ending, kind))
    return out


def start_master(tmp_path: Path, executor: str, kind: str) -> tuple[subprocess.Popen[bytes], Path]:
    folder = tmp_path / kind
    folder.mkdir()
    script = tmp_path / "master.py"
    script.write_text(MASTER)
    env = {k: v for k, v in os.environ.items() if k != "DAGEXEC_KEY"}
    with open(folder / "stderr", "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, str(script), executor, kind, str(folder)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
            cwd=tmp_path,
            env=env,
            start_new_session=True,  # a group of its own: killing it reaches nothing else
        )
    return proc, folder


def processes_of(proc: subprocess.Popen[bytes], folder: Path, expected: int) -> list[psutil.Process]:
    """Once ``expected`` tasks hold their processes: every process below the master,
    and every process a task's shell reported."""
    deadline = time.monotonic() + GUARD
    while len(list(folder.glob("ready-?"))) < expected:
        assert proc.poll() is None, (folder / "stderr").read_text()
        assert time.monotonic() < deadline, "the tasks never started their processes"
        time.sleep(0.02)
    pids = set()
    for path in folder.glob("ready-?"):
        pids.update(int(p) for p in path.read_text().split())
    pids.discard(proc.pid)
    found = {p.pid: p for p in psutil.Process(proc.pid).children(recursive=True)}
    for pid in pids - set(found):
        found[pid] = psutil.Process(pid)  # a command in a session of its own is below the master too
    assert len(found) >= 2 * expected
    return list(found.values())


def alive(processes: list[psutil.Process]) -> list[psutil.Process]:
    left = []
    for p in processes:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                left.append(p)
        except psutil.NoSuchProcess:
            continue
    return left


def end(proc: subprocess.Popen[bytes], ending: str) -> None:
    if ending == "group":
        os.killpg(proc.pid, signal.SIGKILL)
    else:
        proc.send_signal(getattr(signal, ending.upper()))


@pytest.mark.slow
@pytest.mark.parametrize(("executor", "ending", "kind"), cells())
def test_no_process_outlives_its_master(executor: str, ending: str, kind: str, tmp_path: Path) -> None:
    proc, folder = start_master(tmp_path, executor, kind)
    processes: list[psutil.Process] = []
    try:
        processes = processes_of(proc, folder, 1 if executor == "serial" else 2)
        end(proc, ending)
        proc.wait(GUARD)
        deadline = time.monotonic() + GUARD
        while alive(processes) and time.monotonic() < deadline:
            time.sleep(0.05)
        left = [(p.pid, p.cmdline()) for p in alive(processes)]
        assert left == [], (folder / "stderr").read_text()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        for p in alive(processes):
            p.kill()
