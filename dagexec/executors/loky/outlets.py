"""The items a pipe in a loky worker sends to the master for a map over its stream.

DESIGN §13: on loky, a map's items travel in batches through the master, bounded.  A
pipe with ``outlets`` (:mod:`dagexec.run.pipes`) connects, from its worker, to one
listener of the master process (:class:`Hub`, an ``AF_UNIX`` socket with a random
authentication key, made on first use); the connection carries the pipe's items one
way and the master's "taken" the other.  Data flow::

    worker: run_pipe --post(Items)--> send_bytes(pickled idx, items) ----+
            batch.taken <-- _acks thread <-- b"1" <-- Hub.more(batch)    |
    master: Hub reader thread (one per pipe) <---------------------------+
              --> post(Items(batch, idx, items)) --> the run loop's queue

The worker waits for its last items to be taken before the pipe's outcomes go back,
so the master has every item of a stream before the pipe's end.  A pipe whose run
stops (the board's ``STOP_MARK``) or whose master closes the connection stops
waiting.
"""

from __future__ import annotations

import logging
import os
import pickle
import tempfile
import threading
from collections.abc import Callable
from typing import Any

from ...run.pipes import wait_taken
from ...run.protocol import Batch, Items

logger = logging.getLogger("dagexec.executors.loky")

#: seconds between two looks at the board while a pipe waits for "taken"
_LOOK_S = 0.05


class Hub:
    """The master's end: a listener, and a thread per pipe connected to it."""

    def __init__(self) -> None:
        from multiprocessing.connection import Listener

        self.authkey = os.urandom(32)
        folder = tempfile.mkdtemp(prefix="dagexec-outlets-")
        self.address = os.path.join(folder, "socket")
        self.listener = Listener(self.address, family="AF_UNIX", authkey=self.authkey)
        self.lock = threading.Lock()
        self.expected: dict[int, tuple[Batch, Callable[[Any], None]]] = {}  # sid -> its batch, post
        self.conns: dict[int, Any] = {}  # id(batch) -> its connection
        self.sent: set[int] = set()  # id(batch) of each pipe that has sent items
        threading.Thread(target=self._accept, name="dagexec-loky-outlets", daemon=True).start()

    def expect(self, sid: int, batch: Batch, post: Callable[[Any], None]) -> tuple[str, bytes]:
        """Pipe ``batch`` (submission ``sid``) is to connect: where, with which key."""
        with self.lock:
            self.expected[sid] = (batch, post)
        return self.address, self.authkey

    def sent_any(self, batch: Batch) -> bool:
        """Whether pipe ``batch`` has sent items (it cannot run again: they left; the
        engine counts them as its producer's)."""
        with self.lock:
            return id(batch) in self.sent

    def more(self, batch: Batch) -> None:
        """The master took ``batch``'s items: tell its pipe."""
        with self.lock:
            conn = self.conns.get(id(batch))
        if conn is not None:
            try:
                conn.send_bytes(b"1")
            except OSError:
                pass  # the pipe ended

    def forget(self, sid: int, batch: Batch) -> None:
        """``batch`` ended (or was abandoned): its connection closes."""
        with self.lock:
            self.expected.pop(sid, None)
            conn = self.conns.pop(id(batch), None)
            self.sent.discard(id(batch))
        if conn is not None:
            conn.close()

    def _accept(self) -> None:
        while True:
            try:
                conn = self.listener.accept()
            except Exception:  # a worker died during the handshake, or a stranger knocked
                logger.debug("an outlet connection was refused", exc_info=True)
                continue
            threading.Thread(target=self._read, args=(conn,), name="dagexec-loky-outlet", daemon=True).start()

    def _read(self, conn: Any) -> None:
        try:
            sid = conn.recv()
            with self.lock:
                batch, post = self.expected.pop(sid)
                self.conns[id(batch)] = conn
            while True:
                idx, items = pickle.loads(conn.recv_bytes())
                with self.lock:
                    self.sent.add(id(batch))
                post(Items(batch, idx, items))
        except (EOFError, OSError, KeyError):
            conn.close()  # the pipe ended, or was forgotten


_hub: Hub | None = None
_hub_lock = threading.Lock()


def get_hub() -> Hub:
    """The process's :class:`Hub`, made on first use."""
    global _hub
    with _hub_lock:
        if _hub is None:
            _hub = Hub()
        return _hub


# -- the worker's end ----------------------------------------------------------------------
def connect(sid: int, batch: Batch, where: tuple[str, bytes], stopped: Callable[[], bool]) -> Any:
    """In a worker: connect pipe ``batch`` to the master; returns its ``post``.  A thread
    sets ``batch.taken`` at each "taken", and ``batch.stopped`` when the run stops."""
    from multiprocessing.connection import Client

    conn = Client(where[0], family="AF_UNIX", authkey=where[1])
    conn.send(sid)
    batch.taken = threading.Event()
    batch.taken.set()
    threading.Thread(target=_acks, args=(conn, batch, stopped), name="dagexec-outlet-acks", daemon=True).start()

    def post(items: Items) -> None:
        import cloudpickle

        conn.send_bytes(cloudpickle.dumps((items.idx, items.items)))

    post.conn = conn  # type: ignore[attr-defined]
    return post


def _acks(conn: Any, batch: Batch, stopped: Callable[[], bool]) -> None:
    taken = batch.taken
    assert taken is not None
    try:
        while True:
            if conn.poll(_LOOK_S):
                conn.recv_bytes()
                taken.set()
            elif stopped():
                break
    except (EOFError, OSError):
        pass
    batch.stopped = True  # the run stopped, or the master closed: the pipe gives no more
    taken.set()


def finish(batch: Batch, post: Any) -> None:
    """In a worker, the pipe ended: wait until its last items are taken, then close."""
    wait_taken(batch)
    post.conn.close()
