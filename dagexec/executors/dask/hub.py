"""The event topics of one dask client, shared by the executors a run uses on it.

A :class:`~dagexec.executors.dask.DaskExecutor` joins its client's hub when a run
first submits to it (:func:`join_hub`) and leaves it when the run ends
(:func:`leave_hub`); the last to leave unsubscribes.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from . import DaskExecutor

logger = logging.getLogger("dagexec.executors.dask")


class _Hub:
    """The event topics of one client, shared by the executors a run uses on it.

    ``"all"`` tells of dead workers; the trial topic (one per client, so that the
    events the scheduler keeps stay bounded however many executors and runs there
    are) carries every trial's reports (:mod:`.reports`): a failure alone, successes
    and late "started" reports several to an event.  A client has one
    handler per topic: a handler of ``"all"`` the application had set is called
    first, and set back when the last executor leaves.
    """

    def __init__(self, client: Any) -> None:
        self.client = client
        self.topic = f"dagexec-{client.id}"
        self.members: list[DaskExecutor] = []
        self.previous: Any = None

    def join(self, ex: DaskExecutor) -> None:
        if not self.members:
            previous = getattr(self.client, "_event_handlers", {}).get("all")
            # the client keeps a handler after unsubscribe_topic: one of an earlier run's
            # hub is no handler of the application's
            self.previous = None if isinstance(getattr(previous, "__self__", None), _Hub) else previous
            self.client.subscribe_topic(self.topic, self.on_trial_event)
            self.client.subscribe_topic("all", self.on_event)
        self.members.append(ex)

    def leave(self, ex: DaskExecutor) -> bool:
        """Whether the hub has no member left (and is unsubscribed)."""
        if ex in self.members:
            self.members.remove(ex)
        if self.members:
            return False
        if self.client.status == "running":
            self.client.unsubscribe_topic(self.topic)
            if self.previous is not None:
                self.client.subscribe_topic("all", self.previous)
            else:
                self.client.unsubscribe_topic("all")
        return True

    def on_trial_event(self, event: Any) -> None:
        msg = event[1]
        members = tuple(self.members)
        for report in msg["r"] if "r" in msg else (msg,):  # a worker's successes of a few ms
            for ex in members:
                if ex._on_trial_event(report):
                    break

    async def on_event(self, event: Any) -> None:
        previous = self.previous
        if previous is not None:
            try:
                ret = previous(event)
                if hasattr(ret, "__await__"):
                    await ret
            except Exception:
                logger.warning("the client's own handler of topic 'all' raised", exc_info=True)
        msg = event[1]
        if not isinstance(msg, dict) or msg.get("action") != "remove-worker" or msg.get("expected"):
            return
        for ex in list(self.members):
            try:
                ex._worker_died(str(msg.get("worker")), msg.get("processing-tasks") or ())
            except Exception:
                logger.warning("%r failed to handle a dead worker", ex, exc_info=True)


_hubs: dict[int, _Hub] = {}  # id(client) -> its hub, while a run uses it
_hubs_lock = threading.Lock()


def join_hub(client: Any, ex: DaskExecutor) -> _Hub:
    """The hub of ``client``, with ``ex`` among its members (subscribed on the first).

    Raises:
        Exception: whatever the client raises when it refuses the subscription (closed).
    """
    with _hubs_lock:
        hub = _hubs.get(id(client))
        if hub is None or hub.client is not client:
            hub = _hubs[id(client)] = _Hub(client)
        try:
            hub.join(ex)
        except BaseException:
            if not hub.members and _hubs.get(id(client)) is hub:
                del _hubs[id(client)]
            raise
    return hub


def leave_hub(hub: _Hub, ex: DaskExecutor) -> None:
    """``ex`` leaves ``hub``; the last member unsubscribes (a failure is logged)."""
    try:
        with _hubs_lock:
            if hub.leave(ex) and _hubs.get(id(hub.client)) is hub:
                del _hubs[id(hub.client)]
    except Exception:
        logger.warning("could not unsubscribe from the dask client's events", exc_info=True)


def cancel_soon(client: Any, futures: list[Any]) -> None:
    """Cancel ``futures`` (also if running) without waiting, from any thread."""

    async def cancel() -> None:
        try:
            await client.cancel(futures, asynchronous=True, force=True)
        except Exception:
            logger.info("cancelling dask futures failed", exc_info=True)

    try:
        client.loop.add_callback(cancel)
    except Exception:
        logger.info("cancelling dask futures failed", exc_info=True)
