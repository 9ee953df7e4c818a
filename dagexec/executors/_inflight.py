"""The in-flight registry: the submissions an executor has sent and not yet reported.

Every executor whose outcomes come back on other threads (a pool's done-callback,
a cluster's events, a timer, ``abandon`` on the master) has several paths that may
end one trial, and exactly one of them must post its outcome.  :class:`InFlight`
holds each submission under a *token* of the executor's own (a submission id, a
dask key) and under the call or batch it runs; whoever :meth:`~InFlight.claim`\\ s a
submission (under the registry's lock) owns posting its outcome, and every other
path finds it gone and does nothing.

:class:`Submission` is what loky and dask record of a trial in flight; a backend
adds the fields of its own in a subclass.  This module imports only the protocol.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from time import time
from typing import Any, Generic, TypeVar

from ..run.protocol import Batch, Call

__all__ = ["InFlight", "Submission"]

K = TypeVar("K", bound=Hashable)  # the executor's token: a submission id, a dask key
S = TypeVar("S")  # the executor's record of a submission


class Submission:
    """One trial (or batch) handed to a backend, until its outcome is claimed.

    Attributes:
        call: the trial's call (a batch's first member).
        batch: the batch, or None for a single trial.
        post: where its outcome goes (the engine's ``post``).
        future: the backend's handle on it, once the backend took it.
        start: ``time.time()`` at submission, the start of an outcome the master makes.
    """

    __slots__ = ("batch", "call", "future", "post", "start")

    def __init__(self, call: Call, post: Callable[[Any], None], batch: Batch | None = None) -> None:
        self.call = call
        self.batch = batch
        self.post = post
        self.future: Any = None
        self.start = time()

    @property
    def unit(self) -> Call | Batch:
        """What the engine submitted: the batch, or the call."""
        return self.call if self.batch is None else self.batch


class InFlight(Generic[K, S]):
    """Submissions in flight, by token and by the call or batch each one runs.

    Every method takes :attr:`lock` itself; an executor may hold it around changes of
    its own to a submission's fields (never around a call of this class).
    """

    __slots__ = ("_subs", "_tokens", "lock")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._subs: dict[K, tuple[int, S]] = {}  # token -> (id of its call, submission)
        self._tokens: dict[int, K] = {}  # id(call or batch) -> token

    def __len__(self) -> int:
        return len(self._subs)

    def add(self, token: K, unit: Call | Batch, sub: S) -> None:
        """Record ``sub``, which runs ``unit``, under ``token``."""
        with self.lock:
            self._subs[token] = (id(unit), sub)
            self._tokens[id(unit)] = token

    def get(self, token: K) -> S | None:
        """The submission under ``token``, left in flight; None when it was claimed."""
        with self.lock:
            entry = self._subs.get(token)
        return None if entry is None else entry[1]

    def find(self, unit: Call | Batch) -> S | None:
        """The submission running ``unit``, left in flight; None when there is none."""
        with self.lock:
            token = self._tokens.get(id(unit))
            entry = None if token is None else self._subs.get(token)
        return None if entry is None else entry[1]

    def token_of(self, unit: Call | Batch) -> K | None:
        """The token of the submission running ``unit``, or None."""
        with self.lock:
            return self._tokens.get(id(unit))

    def claim(self, token: K) -> S | None:
        """Take the submission under ``token`` out of the registry: the one caller that
        gets it posts its outcome; None for every other (it was claimed already)."""
        with self.lock:
            entry = self._subs.pop(token, None)
            if entry is None:
                return None
            if self._tokens.get(entry[0]) == token:
                del self._tokens[entry[0]]
        return entry[1]

    def claim_unit(self, unit: Call | Batch) -> S | None:
        """:meth:`claim` by the call or batch the submission runs."""
        with self.lock:
            token = self._tokens.pop(id(unit), None)
            entry = None if token is None else self._subs.pop(token, None)
        return None if entry is None else entry[1]

    def alias(self, unit: Call | Batch, token: K) -> None:
        """Let ``unit`` find the submission under ``token`` too (a batch whose first
        members were sent again as a batch of their own)."""
        with self.lock:
            if token in self._subs:
                self._tokens[id(unit)] = token

    def drop_alias(self, unit: Call | Batch) -> None:
        """Forget what :meth:`alias` recorded for ``unit``."""
        with self.lock:
            self._tokens.pop(id(unit), None)

    def pending(self) -> list[S]:
        """The submissions in flight now, left there."""
        with self.lock:
            return [sub for _, sub in self._subs.values()]

    def clear(self) -> list[S]:
        """Forget every submission (a run ended); the ones that were in flight."""
        with self.lock:
            subs = [sub for _, sub in self._subs.values()]
            self._subs.clear()
            self._tokens.clear()
        return subs
