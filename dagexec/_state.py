"""States of nodes and trials, the Trial record, and the Outcome a trigger-rule task
receives of each upstream node."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

__all__ = ["Outcome", "State", "Trial"]

T = TypeVar("T")


class State(str, enum.Enum):
    """The state of a node or of a trial.

    Node states: ``pending``, ``running``, ``succeeded``, ``failed``,
    ``upstream_failed``, ``skipped``, ``cached``, ``cancelled``.
    Trial states: ``running``, ``succeeded``, ``failed``, ``timed_out``, ``crashed``,
    ``cancelled``.
    """

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    UPSTREAM_FAILED = "upstream_failed"
    SKIPPED = "skipped"
    CACHED = "cached"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"
    CRASHED = "crashed"

    def __str__(self) -> str:
        return self.value

    @property
    def done(self) -> bool:
        """True for a state that no longer changes."""
        return self not in (State.PENDING, State.RUNNING)


@dataclass(slots=True, eq=False, repr=False)  # pickled as before: its slots by name
class Trial:
    """One attempt at running a node's task.

    Attributes:
        key: the node key.
        attempt: 1 for the first attempt, 2 for the first retry, and so on.
        state: ``running`` while it runs, then ``succeeded``, ``failed``, ``timed_out``,
            ``crashed`` or ``cancelled``.
        start: ``time.time()`` when the trial began running.
        end: ``time.time()`` when it stopped, or None while it runs.
        worker: where it ran (``"master"``, a thread name, ``"pid:1234"``).
        error: the task's exception, when it could be brought back.
        traceback: the traceback of the error as text.
        log: what the task logged and printed (empty when nothing was captured).
        items: for a stream producer's trial, the items it yielded; else None.
        bundle: the repro bundle written for this trial (``run(bundles=...)``), or None.
    """

    key: str
    attempt: int
    state: State = State.RUNNING
    start: float = 0.0
    end: float | None = None
    worker: str = ""
    error: BaseException | None = None
    traceback: str = ""
    log: str = ""
    items: int | None = None
    bundle: str | None = None

    def __setstate__(self, state: Any) -> None:
        """Its slots by name; a Trial pickled before ``items`` or ``bundle`` loads with none."""
        for name, value in {"items": None, "bundle": None, **state[1]}.items():
            object.__setattr__(self, name, value)

    @property
    def duration(self) -> float | None:
        """Seconds the trial ran, or None while it runs."""
        return None if self.end is None else self.end - self.start

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able view: attempt, state, start, end, worker, error, log (and
        items, for a stream producer's trial; bundle, where one was written)."""
        out: dict[str, Any] = {
            "attempt": self.attempt,
            "state": self.state.value,
            "start": self.start,
            "end": self.end,
            "worker": self.worker,
            "error": None if self.error is None else f"{type(self.error).__name__}: {self.error}",
            "log": self.log,
        }
        if self.items is not None:
            out["items"] = self.items
        if self.bundle is not None:
            out["bundle"] = self.bundle
        return out

    def __repr__(self) -> str:
        return f"<Trial {self.key!r} attempt={self.attempt} {self.state.value}>"


class Outcome(Generic[T]):
    """How an upstream node ended: what a parameter annotated ``dx.Outcome`` (or a
    container of them, ``list[dx.Outcome]``) receives for each node it is given
    (DESIGN §17).  Mostly for trigger-rule tasks (``trigger="all_done"``), which run
    whatever their upstreams end as.

    Attributes:
        key: the upstream node's key (a graph input's name).
        state: its node state: ``succeeded``, ``cached``, ``failed``,
            ``upstream_failed``, ``skipped`` or ``cancelled``.
        value: its value where it has one (``succeeded``, ``cached``), else None.
        error: where it failed, the exception of its last trial (a map's: of its first
            failed item; a ``TaskTimeout`` or ``WorkerCrashed`` says how), else None.
    """

    __slots__ = ("error", "key", "state", "value")

    def __init__(self, key: str, state: State, value: T | None = None, error: BaseException | None = None) -> None:
        self.key = key
        self.state = state
        self.value = value
        self.error = error

    @property
    def ok(self) -> bool:
        """True where the node has a value (``succeeded`` or ``cached``)."""
        return self.state in (State.SUCCEEDED, State.CACHED)

    def __repr__(self) -> str:
        if self.ok:
            return f"Outcome({self.key!r}, {self.state.value}, value={self.value!r})"
        error = f", error={self.error!r}" if self.error is not None else ""
        return f"Outcome({self.key!r}, {self.state.value}{error})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (Outcome, (self.key, self.state, self.value, self.error))
