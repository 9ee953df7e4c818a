"""The stream workload (DESIGN §9b, §13): items of ~100 bytes through a three-stage stream.

A producer yields ``n`` records of 100 characters; ``parse`` (a stage) cuts each
into its number and its text, ``keep`` (a stage) keeps the records whose number is
not a multiple of 7, and ``measure`` (a fed reader) sums their text lengths.  The
plain runner is the same three generators chained in one process (the floor); the
dagexec runners run the graph ``measure(keep(parse(records(n))))``, one pipe.  The
peer is ``dask.bag``, the nearest thing to a stream of Python items that runs here:
the same steps per item (``map``, ``map``, ``filter``, ``sum``) over ``range(n)`` cut
into 16 partitions, each partition's items flowing through the steps as iterators
(no stream between tasks: a partition is one task), on dask's ``sync`` and
``threads`` schedulers.

Phase ``run`` is seconds; ``µs/task`` is then per item per stage, over the plain
chain (``nodes`` is items x 3).  Phase ``peak`` (bytes, one repetition per round of
at most 2) is the peak resident memory above what was in use before, summed over
the main process and its workers (:func:`memory.rss_peak`): the buffers hold a
handful of items, so a stream of a million items should not cost more than a few
megabytes (DESIGN §9b: the buffers + 10 MB).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from memory import rss_peak
from runners import DagexecRunner, Runner
from shapes import Dag
from workload_base import Workload, time_calls

import dagexec as dx

__all__ = ["StreamWorkload"]

STAGES = 3


def records(n: int) -> Iterator[str]:
    pad = "x" * 91
    for k in range(n):
        yield f"{k:08d},{pad}"


def parse(lines: Iterator[str]) -> Iterator[tuple[int, str]]:
    for line in lines:
        yield int(line[:8]), line[9:]


def keep(rows: Iterator[tuple[int, str]]) -> Iterator[tuple[int, str]]:
    for row in rows:
        if row[0] % 7:
            yield row


def measure(rows: Iterable[tuple[int, str]]) -> int:
    return sum(len(text) for _, text in rows)


_records, _parse, _keep, _measure = (dx.task(f) for f in (records, parse, keep, measure))

#: dask.bag's partitions of the items
PARTITIONS = 16
_PAD = "x" * 91


def record_of(k: int) -> str:
    return f"{k:08d},{_PAD}"


def parse_one(line: str) -> tuple[int, str]:
    return int(line[:8]), line[9:]


def kept(row: tuple[int, str]) -> bool:
    return bool(row[0] % 7)


def text_length(row: tuple[int, str]) -> int:
    return len(row[1])


class _Items(Dag):
    """Only a length: items x stages (the table's ``nodes``)."""

    __slots__ = ("n",)

    def __init__(self, n: int) -> None:
        super().__init__("stream", [], [])
        self.n = n

    def __len__(self) -> int:
        return self.n * STAGES


class StreamWorkload(Workload):
    """See the module docstring."""

    kind = "run"
    ratio_phases = {"run": "run"}  # noqa: RUF012
    units = {"peak": "bytes"}  # noqa: RUF012

    def applies_to(self, runner: Runner) -> bool:
        return runner.name in ("plain", "dagexec-serial", "dagexec-threads", "dagexec-loky", "dask-sync", "dask-threads")

    def size(self, runner: Runner, quick: bool) -> int:
        return self._quick if quick else self._size

    def make(self, runner: Runner, quick: bool) -> Dag:
        return _Items(self.size(runner, quick))

    def measure(self, runner: Runner, dag: Dag, reps: int) -> tuple[dict[str, list[float]], Any]:
        n = len(dag) // STAGES
        if runner.family == "plain":

            def call() -> Any:
                return measure(keep(parse(records(n))))

        elif runner.family == "dask":
            import dask.bag as db

            scheduler = getattr(runner, "scheduler", "sync")

            def call() -> Any:
                bag = db.from_sequence(range(n), npartitions=PARTITIONS)
                rows = bag.map(record_of).map(parse_one).filter(kept).map(text_length)
                return rows.sum().compute(scheduler=scheduler)

        else:
            assert isinstance(runner, DagexecRunner)
            with dx.Graph("stream") as g:
                g.output(_measure(_keep(_parse(_records(n)))), name="total")
            plan = g.compile()
            ex, workers = runner.executor, runner.max_workers

            def call() -> Any:
                return plan.run(executor=ex, max_workers=workers).output

        out: dict[str, list[float]] = {}
        out["run"], checksum = time_calls(call, reps)
        out["peak"] = []
        for _ in range(min(reps, 2)):
            _, procs = rss_peak(call)
            out["peak"].append(float(sum(p["peak_bytes"] or 0 for p in procs)))
        return out, checksum
