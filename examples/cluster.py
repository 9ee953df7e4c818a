"""Distributed: one plan on a dask.distributed cluster, values kept on the workers.

Run it with ``python examples/cluster.py`` (after ``pip install "dagexec[dask]"``).
It starts a small cluster on this machine: a scheduler on 127.0.0.1 and two worker
processes, ``cpu`` and ``gpu``; only ``gpu`` declares the resource ``GPU``. Then:

1. four 20 MB partitions are made and summarised on the workers; the task that
   asks for ``resources={"GPU": 1}`` runs on ``gpu``; only the small result comes
   back to this process;
2. one run routes a task to threads here and the rest to the cluster;
3. a worker process dies in the middle of a task: that trial is ``crashed``, the
   task's retry runs on a live worker, and the run goes on.

On a real cluster, replace the ``SpecCluster`` by the scheduler's address:
``DaskExecutor("tcp://scheduler:8786")`` (see docs/distributed.md).
"""

from __future__ import annotations

import logging
import os
import tempfile
import time

from distributed import Client, Nanny, Scheduler, SpecCluster

import dagexec as dx
from dagexec.executors import DaskExecutor

MB = 1_000_000
SUFFIXES = ("", "-1", "-2", "-3")  # the keys of four calls of one task: load, load-1, ...


@dx.task
def load(part: int) -> bytes:
    """A partition of 20 MB; it stays on the worker that made it."""
    return bytes([part]) * (20 * MB)


@dx.task
def summarise(blob: bytes) -> int:
    """A small summary of a partition (runs where the partition is)."""
    return blob[0] * len(blob) // MB


@dx.task(resources={"GPU": 1})
def train(summaries: list[int]) -> str:
    """The step that needs the GPU: dask runs it only on a worker that has one."""
    return f"model fitted on {sum(summaries)}"


@dx.task(executor="local")
def settings() -> dict[str, int]:
    """Read here, in a thread of this process (a stand-in for a local file)."""
    return {"scale": 3}


@dx.task
def scaled(config: dict[str, int], part: int) -> int:
    """Runs on the cluster, from a value made in this process."""
    return config["scale"] * part


@dx.task
def total(values: list[int]) -> int:
    """The sum of the values."""
    return sum(values)


@dx.task(retries=1)
def fragile(marker: str) -> str:
    """Kills its worker process the first time it runs (the marker file says so)."""
    if not os.path.exists(marker):
        open(marker, "w").close()
        time.sleep(0.5)  # mid-task: dagexec has seen the trial start
        os._exit(1)  # no exception, no cleanup: the worker process is gone
    return "survived"


def cluster_spec() -> SpecCluster:
    """A scheduler and two single-threaded worker processes on 127.0.0.1."""
    local = {"host": "127.0.0.1", "nthreads": 1, "dashboard": False, "silence_logs": logging.ERROR}
    return SpecCluster(
        scheduler={"cls": Scheduler, "options": {"host": "127.0.0.1", "dashboard": False}},
        workers={
            "cpu": {"cls": Nanny, "options": local},
            "gpu": {"cls": Nanny, "options": {**local, "resources": {"GPU": 1}}},
        },
        silence_logs=logging.ERROR,  # the cluster's own log lines (a worker restarting, ...)
    )


def main() -> None:
    with cluster_spec() as cluster, Client(cluster) as client:
        client.wait_for_workers(2)
        names = {a: w["name"] for a, w in client.scheduler_info()["workers"].items()}
        dask = DaskExecutor(client)  # ours to keep: runs never close its client

        with dx.Graph("partitions") as graph:
            graph.output(train([summarise(load(p)) for p in range(4)]), name="model")
        result = graph.compile().run(executor=dask)
        print("model:", result.output)
        print("  train ran on:", names[result.trials["train"][0].worker])
        same = [
            result.trials[f"summarise{s}"][0].worker == result.trials[f"load{s}"][0].worker for s in SUFFIXES
        ]
        print("  each summarise ran where its partition was made:", all(same))

        with dx.Graph("mixed") as graph:
            config = settings()
            graph.output(total([scaled(config, p) for p in range(3)]), name="total")
        result = graph.compile().run(executor={"default": dask, "local": "threads"})
        print("total:", result.output)
        on_cluster = [k for k, trials in result.trials.items() if trials[0].worker in names]
        print("  ran here:", [k for k in result.trials if k not in on_cluster])
        print("  ran on the cluster:", on_cluster)

        with tempfile.TemporaryDirectory() as tmp:
            with dx.Graph("crash") as graph:
                fragile(os.path.join(tmp, "died-once"))
            result = graph.compile().run(executor=dask)
        trials = result.trials["fragile"]
        print("fragile:", [(t.attempt, str(t.state)) for t in trials], result.output)
        crash = trials[0].error
        print(f"  {type(crash).__name__}: {str(crash).replace(trials[0].worker, '<worker>')}")


if __name__ == "__main__":
    main()
