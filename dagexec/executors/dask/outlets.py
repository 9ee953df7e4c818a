"""The items a pipe on a dask worker sends to the master for a map over its stream.

DESIGN §13: on dask, a map's items travel in batches through the master, bounded, as
on loky.  A pipe with ``outlets`` (:mod:`dagexec.run.pipes`) sends each batch of items
as an event on the run's topic (``{"k": dask key, "o": producer, "v": pickled items}``,
through the scheduler, like the trials' reports); the master posts them to the run
loop (:func:`items_posted`) and, once it has taken them, sets the
``distributed.Event`` named after the pipe's task (:func:`tell_taken`), which the pipe
waits for before it sends again (:class:`Taken`).  Data flow::

    worker: run_pipe --post--> worker.log_event(topic, items) --> scheduler --+
            Taken.wait <-- distributed.Event "dagexec-taken-<key>" <--+        |
    master: DaskExecutor.more(batch) --> tell_taken ------------------+        |
            the hub's handler <-------------------------------------------------+
              --> Items(batch, producer, items) --> the run loop's queue

The pipe waits for its last items to be taken before its "ended" event goes, so the
master has every item of a stream before the pipe's end.
"""

from __future__ import annotations

import logging
import pickle
import time
from typing import Any

from ...run.pipes import STOP_MARK, wait_taken
from ...run.protocol import Batch, Items

logger = logging.getLogger("dagexec.executors.dask")

#: seconds between two looks of a pipe at its "taken" event while it has items to send
LOOK_S = 0.005


def taken_name(dkey: str) -> str:
    """The name of the ``distributed.Event`` the master sets when it took a pipe's items."""
    return f"dagexec-taken-{dkey}"


class Taken:
    """``batch.taken`` on a dask worker: the pipe's "taken" event, read through the
    scheduler at most every :data:`LOOK_S` (a round trip each), and the pipe's stop
    board (``board[0] == STOP_MARK``: the run stopped, nobody takes more)."""

    __slots__ = ("batch", "board", "event", "flag", "next")

    def __init__(self, dkey: str, batch: Batch, board: Any) -> None:
        from distributed import Event

        event: Any = Event
        self.event = event(taken_name(dkey))
        self.batch = batch
        self.board = board
        self.flag = True  # nothing sent yet: the first items go at once
        self.next = 0.0

    def is_set(self) -> bool:
        now = time.monotonic()
        if not self.flag and now >= self.next:
            self.next = now + LOOK_S
            self.flag = bool(self.event.is_set())
        return self.flag

    def set(self) -> None:
        self.flag = True

    def clear(self) -> None:
        self.flag = False
        self.event.clear()

    def wait(self, timeout: float) -> bool:
        if not self.flag:
            self.flag = bool(self.event.wait(timeout))
        if not self.flag and self.board[0] == STOP_MARK:
            self.batch.stopped = True
        return self.flag


def connect(worker: Any, topic: str, dkey: str, batch: Batch, outlets: dict[int, int], board: Any) -> Any:
    """On a worker: make pipe ``batch`` send its maps' items to the master; its ``post``."""
    import cloudpickle

    batch.outlets = outlets
    batch.taken = Taken(dkey, batch, board)  # type: ignore[assignment]

    def post(items: Items) -> None:
        worker.log_event(topic, {"k": dkey, "o": items.idx, "v": cloudpickle.dumps(items.items)})

    return post


def finish(batch: Batch) -> None:
    """On a worker, the pipe ended: wait until its last items are taken."""
    wait_taken(batch)


def items_posted(batch: Batch, msg: dict[str, Any]) -> Items:
    """In the master, the event of a pipe's items: what the run loop takes."""
    return Items(batch, msg["o"], pickle.loads(msg["v"]))


def tell_taken(client: Any, dkey: str) -> None:
    """In the master: the pipe running as ``dkey`` may send again."""
    from distributed import Event

    event: Any = Event
    try:
        event(taken_name(dkey), client=client).set()
    except Exception:
        logger.info("pipe %r could not be told its items were taken", dkey, exc_info=True)
