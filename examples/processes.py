"""Processes: CPU-bound tasks in worker processes, IO-bound tasks in threads, one run.

Run it with ``python examples/processes.py``. Counting primes is pure-Python CPU
work, which threads cannot run in parallel, so those tasks are routed to a
``LokyExecutor``; the tasks that only wait are routed to threads. The script then
shows what happens when a worker process dies, when a task runs past its
``timeout``, and where a task's traceback goes when it fails in a worker.
"""

from __future__ import annotations

import os
import tempfile
import time

import dagexec as dx
from dagexec.executors import LokyExecutor


@dx.task(executor="io")
def fetch_range(part: int) -> tuple[int, int]:
    """The numbers to search, ``[lo, hi)`` (a stand-in for a slow lookup)."""
    time.sleep(0.05)
    return part * 25_000, (part + 1) * 25_000


@dx.task(executor="cpu")
def count_primes(bounds: tuple[int, int]) -> int:
    """How many primes lie in ``[lo, hi)``, by trial division: CPU work only."""
    lo, hi = bounds
    found = 0
    for n in range(max(lo, 2), hi):
        d = 2
        while d * d <= n:
            if n % d == 0:
                break
            d += 1
        else:
            found += 1
    return found


@dx.task(executor="io")
def total(counts: list[int]) -> int:
    """The sum of the counts."""
    return sum(counts)


@dx.task(executor="cpu", retries=1)
def fragile(marker: str) -> str:
    """Kills its own worker process the first time it runs (the marker file says so)."""
    if not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(1)  # no exception, no cleanup: the process is gone, as after a segfault
    return "survived"


@dx.task(executor="cpu", timeout=0.5)
def too_slow() -> str:
    """Runs past its timeout; TaskTimeout is raised inside it, in its worker."""
    time.sleep(30)
    return "never"


@dx.task(executor="cpu")
def parse(text: str) -> int:
    """Fails in the worker: the traceback comes back as text."""
    return int(text)


def kind(worker: str) -> str:
    """'process' for a trial that ran in a worker process, 'thread' otherwise."""
    return "process" if worker.startswith("pid:") else "thread"


def main() -> None:
    # One LokyExecutor for the "cpu" route: 2 worker processes. The run does not
    # shut down an executor it is given, so the same pool serves every run below.
    routes = {"default": "threads", "io": "threads", "cpu": LokyExecutor(max_workers=2)}

    with dx.Graph("primes") as graph:
        graph.output(total([count_primes(fetch_range(part)) for part in range(4)]), name="primes")
    result = graph.compile().run(executor=routes)
    print("primes below 100,000:", result.output)
    for key in ("fetch_range", "count_primes", "total"):
        print(f"  {key} ran in a {kind(result.trials[key][0].worker)}")

    # A worker that dies fails only the trial it was running, as 'crashed'; the
    # crash uses an attempt, and retries=1 gives the node a second one.
    with tempfile.TemporaryDirectory() as tmp:
        with dx.Graph("crash") as graph:
            fragile(os.path.join(tmp, "crashed-once"))
        result = graph.compile().run(executor=routes)
    trials = result.trials["fragile"]
    print("fragile:", [(t.attempt, str(t.state)) for t in trials], result.output)
    crash = trials[0].error
    print(f"  {type(crash).__name__}: exit codes {crash.exitcodes}")

    # A trial past its timeout is 'timed_out' and its node failed.
    with dx.Graph("slow") as graph:
        too_slow()
    result = graph.compile().run(executor=routes, raise_on_failure=False)
    trial = result.trials["too_slow"][0]
    print("too_slow:", str(result.states["too_slow"]), str(trial.state), f"({trial.error})")

    # The task's own exception comes back; its traceback is text on the trial.
    with dx.Graph("bad") as graph:
        parse("forty-two")
    try:
        graph.compile().run(executor=routes)
    except dx.RunFailed as exc:
        trial = exc.result.trials["parse"][0]
        print("parse:", repr(exc.__cause__))
        print("  last traceback line:", trial.traceback.splitlines()[-1])


if __name__ == "__main__":
    main()
