"""The old home of the checks a run makes before any task runs; each name now lives
where its layer is, and is re-exported here for code that imports it from this path:

- ``as_list``, ``select``, ``bind_inputs``, ``kept_slots``: ``dagexec.plan.arguments``
  (they read only the plan);
- ``check_run_arguments``: ``dagexec.run.config``, beside ``RunConfig``;
- ``resolve_executors``, ``require_portable``: ``dagexec.executors._resolve``, beside
  ``OwnedExecutors``, the one owner of the executors a run makes;
- ``sigterm_interrupts``: ``dagexec._interrupts``.

Importing from the executors makes this module part of the surface layer.
"""

from __future__ import annotations

from ._interrupts import sigterm_interrupts
from .executors._resolve import require_portable, resolve_executors
from .plan.arguments import as_list, bind_inputs, kept_slots, select
from .run.config import check_run_arguments

__all__ = [
    "as_list",
    "bind_inputs",
    "check_run_arguments",
    "kept_slots",
    "require_portable",
    "resolve_executors",
    "select",
    "sigterm_interrupts",
]
