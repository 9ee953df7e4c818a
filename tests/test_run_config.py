"""``RunConfig``: the options of one run, declared once, and the run's entry ``_api.run``
that ``plan.run()`` and ``dagexec run`` both call with one."""

from __future__ import annotations

import dataclasses
import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import dagexec as dx
from dagexec._api import run
from dagexec.run.config import RunConfig

ROOT = Path(__file__).resolve().parents[1]


@dx.task
def double(n: int) -> int:
    return 2 * n


def doubling() -> dx.CompiledGraph:
    with dx.Graph("doubling") as graph:
        graph.output(double(graph.input("n", int)), "twice")
    return graph.compile()


def test_run_keywords_are_the_fields_of_run_config_with_the_same_types_and_defaults() -> None:
    keywords = [
        (p.name, p.annotation, p.default)
        for p in inspect.signature(dx.CompiledGraph.run).parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    ]
    fields = [(f.name, f.type, f.default) for f in dataclasses.fields(RunConfig)]
    assert keywords == fields
    assert [f[0] for f in fields] == [
        "executor", "max_workers", "scheduler", "only", "skip", "fail_fast", "cache", "resume",
        "keep", "callbacks", "progress", "raise_on_failure", "check_mutation", "bundles", "bundle_personal",
        "events", "trace",
    ]  # fmt: skip


def test_run_documents_every_option() -> None:
    doc = inspect.getdoc(dx.CompiledGraph.run) or ""
    undocumented = [f.name for f in dataclasses.fields(RunConfig) if f"\n    {f.name}: " not in doc]
    assert undocumented == []


def test_a_run_config_is_frozen_and_slotted() -> None:
    config = RunConfig(executor="serial")
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.fail_fast = False  # type: ignore[misc]
    assert not hasattr(config, "__dict__")
    assert dataclasses.replace(config, keep="all") == RunConfig(executor="serial", keep="all")


def test_the_entry_runs_a_plan_with_a_config_and_named_inputs_win() -> None:
    plan = doubling()
    result = run(plan, {"n": 1}, RunConfig(executor="serial", keep="all"), named={"n": 4})
    assert result.outputs == {"twice": 8}
    assert result.states == {"double": dx.State.SUCCEEDED}
    assert run(plan, None, RunConfig(executor="serial"), named={"n": 5}).output == 10


def test_the_entry_checks_the_config_as_plan_run_does() -> None:
    with pytest.raises(dx.InputError) as info:
        run(doubling(), [1], RunConfig(executor="serial", fail_fast="no", max_workers=0))  # type: ignore[arg-type]
    assert str(info.value) == (
        "2 problems in run of graph 'doubling':\n"
        "- fail_fast must be True or False, got str 'no'\n"
        "- inputs must be a mapping of input names (str) to values, got list [1]"
    )
    with pytest.raises(dx.InputError) as info:
        run(doubling(), {"n": 1}, RunConfig(executor="serial", max_workers=0, resume=True))
    assert str(info.value) == (
        "2 problems in run of graph 'doubling':\n"
        "- max_workers must be an int >= 1, got 0\n"
        "- resume=True needs cache=: the folder whose journal the run continues"
    )


def test_the_config_module_loads_neither_the_loop_nor_the_executors() -> None:
    code = "import sys, json, dagexec.run.config; print(json.dumps(sorted(sys.modules)))"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    loaded = json.loads(done.stdout)
    assert [m for m in loaded if m in ("dagexec._engine", "dagexec.executors", "loky")] == []
