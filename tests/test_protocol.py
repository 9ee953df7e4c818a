"""The executor protocol's homes: dagexec.run.protocol, dagexec.run.worker and
dagexec.executors._transport, and the old paths that re-export them."""

from __future__ import annotations

import operator

from test_layers import ROOT, layer_of, scan

import dagexec as dx
import dagexec._engine as engine
import dagexec._worker as old_worker
from dagexec import _capture
from dagexec.executors import _transport
from dagexec.run import batches, protocol, worker
from dagexec.run.protocol import (
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
    Call,
)

# What dagexec._worker exported when it held all of this (docs/executors.md cites it).
OLD_WORKER_NAMES = (
    "LINK", "Blobs", "SpecPickler", "load_spec", "install_worker_capture", "interrupt_hooks",
    "WorkerSpec", "spec_fields", "Batch", "Remote", "BatchDone", "Call", "Outcome", "dump_call",
    "dump_outcome", "failed_outcome", "load_outcome", "run_batch", "run_call", "run_pickled",
    "run_call_async", "background_loop",
)  # fmt: skip


def _home(name: str) -> object:
    for module in (protocol, worker, batches, _transport):
        if hasattr(module, name):
            return getattr(module, name)
    from dagexec import _interrupts

    return getattr(_interrupts, name)


def test_the_old_worker_path_exports_the_same_objects_as_their_new_homes() -> None:
    assert [n for n in OLD_WORKER_NAMES if getattr(old_worker, n) is not _home(n)] == []
    assert (old_worker.IDX, old_worker.OK, old_worker.LOG) == (0, 2, 9)


def test_the_engine_and_the_package_re_export_the_executor_base_class() -> None:
    assert engine.Executor is protocol.Executor
    assert dx.Executor is protocol.Executor
    assert engine.crashed_outcome is protocol.crashed_outcome


class _Spec:
    def __init__(self, key: str, fn: object) -> None:
        self.key, self.fn, self.checks, self.ret, self.timeout, self.coro = key, fn, (), None, None, False


def _shout(text: str) -> str:
    print("shouting")
    return text.upper()


def test_the_outcome_constants_name_the_fields_run_call_fills() -> None:
    _capture.install()  # as a run does
    try:
        out = worker.run_call(Call(7, 2, _Spec("shout", _shout), ("hi",), None), "w1")
    finally:
        _capture.uninstall()
    assert len(out) == 10
    assert (out[O_IDX], out[O_ATTEMPT], out[O_OK], out[O_VALUE]) == (7, 2, True, "HI")
    assert (out[O_ERROR], out[O_TRACEBACK], out[O_WORKER], out[O_LOG]) == (None, "", "w1", "shouting\n")
    assert out[O_START] <= out[O_END]
    bad = worker.run_call(Call(3, 1, _Spec("div", operator.truediv), (1, 0), None), "w2")
    assert (bad[O_IDX], bad[O_OK], bad[O_VALUE], type(bad[O_ERROR])) == (3, False, None, ZeroDivisionError)
    assert bad[O_TRACEBACK].endswith("ZeroDivisionError: division by zero\n")


def test_crashed_outcome_names_the_backend_error_as_its_cause() -> None:
    error = OSError("pool gone")
    out = protocol.crashed_outcome(Call(1, 3, _Spec("n", _shout), (), None), error, 5.0, "lost")
    fields = (out[O_IDX], out[O_ATTEMPT], out[O_OK], out[O_START], out[O_WORKER])
    assert fields == (1, 3, False, 5.0, "master")
    assert type(out[O_ERROR]) is dx.WorkerCrashed
    assert str(out[O_ERROR]) == "node 'n': lost: OSError: pool gone"
    assert out[O_ERROR].__cause__ is error


def test_the_protocol_imports_only_leaf_modules() -> None:
    imported = sorted(imp.imported for imp in scan(ROOT).imports if imp.importer == "dagexec.run.protocol")
    assert imported == ["dagexec._errors"]
    assert [layer_of(name) for name in imported] == ["leaf"]
