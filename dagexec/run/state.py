"""The states a node or a map item is in while a run goes, as the small ints the loop
keeps in its flat lists, and the marker of a value released after its last reader.

The loop compares ints on its hot path; :data:`STATES` turns one into the public
:class:`~dagexec.State` when the run ends.  ``JOINING`` and the unit arrays of
docs/run-engine.md come here when map items become units.
"""

from __future__ import annotations

from typing import Any

from .._state import State

PENDING, RUNNING, SUCCEEDED, FAILED, UPSTREAM_FAILED, SKIPPED, CACHED, CANCELLED = range(8)
#: the states in which a node has a value
HAS_VALUE = (SUCCEEDED, CACHED)
#: each int state's public State
STATES = (
    State.PENDING,
    State.RUNNING,
    State.SUCCEEDED,
    State.FAILED,
    State.UPSTREAM_FAILED,
    State.SKIPPED,
    State.CACHED,
    State.CANCELLED,
)


class _Released:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<released>"


#: the value of a slot after its last reader finished (unless kept)
RELEASED: Any = _Released()
