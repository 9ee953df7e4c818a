"""The executor protocol, the executing side and the pickled transport, under their old path.

They live in :mod:`dagexec.run.protocol` (``Call``, ``Batch``, ``BatchDone``,
``Remote``, ``LINK``, outcomes), :mod:`dagexec.run.worker` (``run_call``),
:mod:`dagexec.run.batches` (``run_batch``) and :mod:`dagexec.executors._transport` (``dump_call``,
``run_pickled``, ``SpecPickler``); this module re-exports them for executors written
against ``dagexec._worker`` (docs/executors.md).  It sits with the executors, the
only layer that may import all three.
"""

from __future__ import annotations

from ._interrupts import interrupt_hooks
from .executors._transport import (
    Blobs,
    SpecPickler,
    WorkerSpec,
    dump_call,
    dump_outcome,
    load_outcome,
    load_spec,
    run_pickled,
    spec_fields,
)
from .run.batches import run_batch
from .run.protocol import (
    LINK,
    O_ATTEMPT,
    O_END,
    O_ERROR,
    O_IDX,
    O_LOG,
    O_OK,
    O_START,
    O_TRACEBACK,
    O_VALUE,
    O_WORKER,
    Batch,
    BatchDone,
    Call,
    Outcome,
    Remote,
    failed_outcome,
)
from .run.worker import background_loop, install_worker_capture, run_call, run_call_async

__all__ = [
    "LINK",
    "Blobs",
    "SpecPickler",
    "load_spec",
    "install_worker_capture",
    "interrupt_hooks",
    "WorkerSpec",
    "spec_fields",
    "Batch",
    "Remote",
    "BatchDone",
    "Call",
    "Outcome",
    "dump_call",
    "dump_outcome",
    "failed_outcome",
    "load_outcome",
    "run_batch",
    "run_call",
    "run_pickled",
    "background_loop",
    "run_call_async",
]

#: the fields of an outcome, by position (:mod:`dagexec.run.protocol` names them ``O_*``)
IDX, ATTEMPT, OK, VALUE, ERROR, TRACEBACK, START, END, WORKER, LOG = (
    O_IDX,
    O_ATTEMPT,
    O_OK,
    O_VALUE,
    O_ERROR,
    O_TRACEBACK,
    O_START,
    O_END,
    O_WORKER,
    O_LOG,
)
