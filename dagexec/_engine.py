"""The old home of the run loop, now :mod:`dagexec.run.loop` and the modules beside it.

The names other modules and saved code import from here stay importable: ``Executor``
and ``crashed_outcome`` (from :mod:`dagexec.run.protocol`), ``_Run`` (the loop,
:class:`dagexec.run.loop.Loop`), ``_Callbacks``, ``_run_failed``, the node states
``_PENDING`` .. ``_CANCELLED`` and ``_RELEASED``, and the batching limits.
"""

from __future__ import annotations

from .run.batching import BATCH_BUDGET_S, MAX_BATCH, TINY_S
from .run.loop import Loop
from .run.maps import MapRun
from .run.protocol import Executor, crashed_outcome
from .run.result import run_failed
from .run.state import (
    CACHED,
    CANCELLED,
    FAILED,
    HAS_VALUE,
    PENDING,
    RELEASED,
    RUNNING,
    SKIPPED,
    STATES,
    SUCCEEDED,
    UPSTREAM_FAILED,
)
from .run.trials import Callbacks

__all__ = ["BATCH_BUDGET_S", "MAX_BATCH", "TINY_S", "Executor", "crashed_outcome"]

_Run = Loop
_Callbacks = Callbacks
_MapRun = MapRun
_run_failed = run_failed
_PENDING, _RUNNING, _SUCCEEDED, _FAILED = PENDING, RUNNING, SUCCEEDED, FAILED
_UPSTREAM_FAILED, _SKIPPED, _CACHED, _CANCELLED = UPSTREAM_FAILED, SKIPPED, CACHED, CANCELLED
_HAS_VALUE, _STATES, _RELEASED = HAS_VALUE, STATES, RELEASED
