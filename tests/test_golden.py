"""Golden values of a reference plan (``golden_pipeline.py``): what a rework of the
run engine, the plan or the cache must leave as it is.

The plan's fingerprint, its cache keys, the functions its manifest names, the dagexec
names its pickle refers to, and what a run of it does on the serial and thread
executors (states, trials, map items, outputs, the ``RunFailed`` message) are
written here as literals, computed once.

A change of any of these values means saved plans, cache entries or fingerprints
changed: users' artifacts stop loading, their caches miss, or ``--expect-fingerprint``
refuses their files.  Such a change must be deliberate and noted in CHANGELOG.md;
then compute the values again and paste them here.
"""

from __future__ import annotations

import json
import os
import pickletools
import re
import subprocess
import sys
from pathlib import Path

import cloudpickle
import golden_pipeline
import pytest

import dagexec as dx

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent

#: the graph input ``counter`` given to ``cache_keys()`` (keys depend on its value)
COUNTER = "/golden/counter"

FINGERPRINT = "2465cd77ff7fe81591e6d41e6be0f1a4c75a80f63851b242089016a8d7afcdbc"

CACHE_KEYS = {
    "numbers": "cbb74f61443266d92e338521195cd3be45604c0ebd3a6eec683f038b61302938",
    "outer/halves": "f05085ae86f208716f6d5546470b98da2f921af7004f0a402bc50075068e1c56",
    "outer/halves.0": "4361505d7bf06351e797ee63fa2242f7995dd28a9fb0cbe6d021c67aa8b245f4",
    "outer/halves.1": "8cfde43be4804f1c9533035ab297b7783a76535870dcee666020bac973de8104",
    "outer/inner/measure": "32246803c6f0df1643fc9e15cd6ea4f33ec79a6caf4d1ba8763e78c1ca9cb657",
    "outer/inner-1/measure": "00b8af0ba294d3fbdd5902f2629ec5620b28d7bd1fe22ffda1ffcc02e2971170",
    "outer/halves.0.0": "65042c3442bf1a1fdbcd1c2295900a0d9081672a9d0a493b1a10e62a08097f27",
    "outer/halves.0.1": "c03946ef61644fb98c05662cc6448883cf7539f527d678436d1dbd4f10328a02",
    "outer/inner.size": "950c495eb5c44276bc5eac793df1b46730a829e120ebe7f7616bb0726333ad62",
    "outer/combine": "27991b1d596a134285c8bcfb880a06996cea4919cf4aae0213e7dddd0bd0aa5b",
    "is_even": "cf3de06e36d37cf163156b9bed5ab506710aecc52126a0c677bb7c874c6f79d2",
    "outer.sizes": "1f5d2a97ac2293cbbb2cb48968acbc6d2e3a479d7280816681b98c8c16d0acaf",
    "outer.sizes.1": "57ca7f57b2305593e67a222aeea0f4396470bc8a29c4d8847a6cbb879a431469",
    "word": "823cf9d3045e5ad0755d47c058408506adc5f791b45b6586363d3d7490f46421",
    "word-1": "e2652fdc848caa25a66d6dee46d48ec6120db63c1a00ae2025bf4cfa2da3d8dc",
    "cond": "0587eb7fab4a41dffc8ebca410197c215f0b1973e138193956e2859265210faa",
    "echo": None,
    "stamp": None,
    "double": "d51b4beba8253d6eacca78d802da36c3cb744c07888e4639387b350610405e07",
    "shift": "65e1a30139dbd777c3852a83230cda7bfe0658ea74ea7faa60229758c0eb0ebe",
    "total": "bff8e2630f98e39fb9dcb8b1b1df931323e9a7e96af59489da499fb43b4dd7d7",
    "picky": "54cf66fc4786e7cfbab3b21ce179ee093263d0eed5958c649cb8d9935f7e1f28",
    "bump": "32bd1e0146118b640ea3325e8663c2e0cf7f9cb3f90636c19c41a14d04557b5e",
    "total-1": "738778986ee82ef98ac7337de887d4a47ff3d71b1f31812bdf8c56837a29790b",
    "flaky": "fc3e30abbb468674ee981b2087d250e8234476fb427201b56d2f787f9abb4f79",
}

#: node key -> the function it runs (``module:qualname``), in plan order
FUNCTIONS = [
    ("numbers", "golden_pipeline:numbers"),
    ("outer/halves", "golden_pipeline:halves"),
    ("outer/halves.0", "dagexec._compile:getitem"),
    ("outer/halves.1", "dagexec._compile:getitem"),
    ("outer/inner/measure", "golden_pipeline:measure"),
    ("outer/inner-1/measure", "golden_pipeline:measure"),
    ("outer/halves.0.0", "dagexec._compile:getitem"),
    ("outer/halves.0.1", "dagexec._compile:getitem"),
    ("outer/inner.size", "dagexec._compile:getitem"),
    ("outer/combine", "golden_pipeline:combine"),
    ("is_even", "golden_pipeline:is_even"),
    ("outer.sizes", "dagexec._compile:getitem"),
    ("outer.sizes.1", "dagexec._compile:getitem"),
    ("word", "golden_pipeline:word"),
    ("word-1", "golden_pipeline:word"),
    ("cond", "dagexec._cond:choose"),
    ("echo", "dagexec._shell:run_command"),
    ("stamp", "golden_pipeline:stamp"),
    ("double", "golden_pipeline:double"),
    ("shift", "golden_pipeline:shift"),
    ("total", "golden_pipeline:total"),
    ("picky", "golden_pipeline:picky"),
    ("bump", "golden_pipeline:shift"),
    ("total-1", "golden_pipeline:total"),
    ("flaky", "golden_pipeline:flaky"),
]

#: every ``dagexec.*`` name that ``cloudpickle.dumps(plan)`` refers to: a saved plan
#: loads only while each of them is importable where it is now
PICKLED_NAMES = [
    "dagexec._compile.getitem",
    "dagexec._cond.choose",
    "dagexec._graph.MISSING",
    "dagexec._plan.CompiledGraph",
    "dagexec._plan.InputSpec",
    "dagexec._plan.NodeSpec",
    "dagexec._plan.SectionInfo",
    "dagexec._plan._Ref",
    "dagexec._plan._spec_from_task",
    "dagexec._shell.run_command",
    "dagexec._task.TaskOptions",
    "dagexec._task._import_task",
    "dagexec._task._import_task_copy",
    "dagexec._task._rebuild_task",
]

RUN_FAILED = (
    "1 node and 3 map items of graph 'golden' failed: 'picky[1]' (ValueError: odd: 1), 'picky[3]' "
    "(ValueError: odd: 3), 'picky[5]' (ValueError: odd: 5), 'picky' (3 of 6 items failed)"
)

FAILED = ["picky[1]", "picky[3]", "picky[5]", "picky"]

#: (key, state, its trials' states) for every node and map item, in ``states`` order
STATES = [
    ("numbers", "succeeded", ["succeeded"]),
    ("outer/halves", "succeeded", ["succeeded"]),
    ("outer/halves.0", "succeeded", ["succeeded"]),
    ("outer/halves.1", "succeeded", ["succeeded"]),
    ("outer/inner/measure", "succeeded", ["succeeded"]),
    ("outer/inner-1/measure", "succeeded", ["succeeded"]),
    ("outer/halves.0.0", "succeeded", ["succeeded"]),
    ("outer/halves.0.1", "succeeded", ["succeeded"]),
    ("outer/inner.size", "succeeded", ["succeeded"]),
    ("outer/combine", "succeeded", ["succeeded"]),
    ("is_even", "succeeded", ["succeeded"]),
    ("outer.sizes", "succeeded", ["succeeded"]),
    ("outer.sizes.1", "succeeded", ["succeeded"]),
    ("word", "succeeded", ["succeeded"]),
    ("word-1", "skipped", []),
    ("cond", "succeeded", ["succeeded"]),
    ("echo", "succeeded", ["succeeded"]),
    ("stamp", "succeeded", ["succeeded"]),
    ("double", "succeeded", []),
    ("double[0]", "succeeded", ["succeeded"]),
    ("double[1]", "succeeded", ["succeeded"]),
    ("double[2]", "succeeded", ["succeeded"]),
    ("double[3]", "succeeded", ["succeeded"]),
    ("double[4]", "succeeded", ["succeeded"]),
    ("double[5]", "succeeded", ["succeeded"]),
    ("shift", "succeeded", []),
    ("shift[0]", "succeeded", ["succeeded"]),
    ("shift[1]", "succeeded", ["succeeded"]),
    ("shift[2]", "succeeded", ["succeeded"]),
    ("shift[3]", "succeeded", ["succeeded"]),
    ("shift[4]", "succeeded", ["succeeded"]),
    ("shift[5]", "succeeded", ["succeeded"]),
    ("total", "succeeded", ["succeeded"]),
    ("picky", "failed", []),
    ("picky[0]", "succeeded", ["succeeded"]),
    ("picky[1]", "failed", ["failed"]),
    ("picky[2]", "succeeded", ["succeeded"]),
    ("picky[3]", "failed", ["failed"]),
    ("picky[4]", "succeeded", ["succeeded"]),
    ("picky[5]", "failed", ["failed"]),
    ("bump", "upstream_failed", []),
    ("bump[0]", "succeeded", ["succeeded"]),
    ("bump[1]", "upstream_failed", []),
    ("bump[2]", "succeeded", ["succeeded"]),
    ("bump[3]", "upstream_failed", []),
    ("bump[4]", "succeeded", ["succeeded"]),
    ("bump[5]", "upstream_failed", []),
    ("total-1", "upstream_failed", []),
    ("flaky", "succeeded", ["failed", "succeeded"]),
]

#: map node -> how many items it had
ITEMS = {"double": 6, "shift": 6, "picky": 6, "bump": 6}

OUTPUTS = {
    "stamp": "counter.stamp",
    "echoed": "even-even-even-even done\n",
    "report": {"sizes": [4, 4], "head": 0, "tail": [3, 4, 5], "set": [1, 7], "window": (4, 9, None)},
    "shifted": 90,
    "flaky": 2,
}

REPR = (
    "<RunResult 'golden' failed: 21 succeeded, 1 failed, 2 upstream_failed, 1 skipped · 24 map items: "
    "18 succeeded, 3 failed, 3 upstream_failed>"
)


@pytest.fixture(scope="module")
def plan() -> dx.CompiledGraph:
    return golden_pipeline.build().compile()


def pickled_globals(data: bytes) -> set[str]:
    """``module.name`` of every GLOBAL and STACK_GLOBAL in a pickle.

    STACK_GLOBAL takes its module and name from the two strings pushed just before
    it, which may come from the memo; MEMOIZE and PUT push nothing.
    """
    names: set[str] = set()
    memo: dict[int, object] = {}
    pushed: list[object] = []
    for op, arg, _ in pickletools.genops(data):
        if op.name == "GLOBAL":
            names.add(str(arg).replace(" ", "."))
            pushed.append(None)
        elif op.name == "STACK_GLOBAL":
            names.add(f"{pushed[-2]}.{pushed[-1]}")
            pushed.append(None)
        elif op.name == "MEMOIZE":
            memo[len(memo)] = pushed[-1]
        elif op.name in ("PUT", "BINPUT", "LONG_BINPUT"):
            memo[int(arg)] = pushed[-1]
        elif op.name in ("GET", "BINGET", "LONG_BINGET"):
            pushed.append(memo[int(arg)])
        elif op.name in ("SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE"):
            pushed.append(arg)
        else:
            pushed.append(None)
    return names


def test_the_fingerprint_is_pinned(plan):
    assert plan.fingerprint == FINGERPRINT


def test_the_cache_keys_are_pinned(plan):
    keys = plan.cache_keys(counter=COUNTER)
    assert list(keys.items()) == list(CACHE_KEYS.items())


def test_the_manifest_names_the_pinned_functions(plan):
    manifest = plan.to_dict()
    assert manifest["fingerprint"] == FINGERPRINT
    assert [(n["key"], n["function"]) for n in manifest["nodes"]] == FUNCTIONS


def test_a_pickled_plan_refers_to_the_pinned_dagexec_names(plan):
    data = cloudpickle.dumps(plan)
    names = pickled_globals(data)
    assert "golden_pipeline.Window" in names  # the walk found the globals at all
    assert sorted(n for n in names if n.split(".")[0] == "dagexec") == PICKLED_NAMES
    assert cloudpickle.loads(data).fingerprint == FINGERPRINT


@pytest.mark.parametrize("executor", ["serial", "threads"])
def test_a_run_with_a_retry_and_failed_map_items_is_pinned(plan, tmp_path, executor):
    counter = tmp_path / "counter"
    with pytest.raises(dx.RunFailed) as info:
        plan.run(counter=str(counter), executor=executor, max_workers=2, fail_fast=False)
    assert str(info.value) == RUN_FAILED
    assert info.value.failed == FAILED
    result = info.value.result
    assert result.failed == FAILED
    assert info.value.__cause__ is result.trials["picky[1]"][0].error
    assert [
        (k, s.value, [t.state.value for t in result.trials[k]]) for k, s in result.states.items()
    ] == STATES
    assert [[t.attempt for t in result.trials[k]] for k in ("flaky", "picky[1]")] == [[1, 2], [1]]
    items: dict[str, int] = {}
    for key in result.states:
        item = re.fullmatch(r"(.+)\[\d+\]", key)
        if item is not None:
            items[item[1]] = items.get(item[1], 0) + 1
    assert items == ITEMS
    assert result.outputs == OUTPUTS
    assert repr(result) == REPR
    assert counter.read_text() == "2"  # flaky ran twice, and only twice
    assert (tmp_path / "counter.stamp").read_text() == "even-even-even-even"


SEEDED = """
import json, sys
sys.path[:0] = sys.argv[1:3]
import golden_pipeline
plan = golden_pipeline.build().compile()
print(json.dumps({"fingerprint": plan.fingerprint, "keys": plan.cache_keys(counter=sys.argv[3])}))
"""


@pytest.mark.parametrize("seed", ["0", "4242"])
def test_the_fingerprint_and_cache_keys_do_not_depend_on_the_hash_seed(seed):
    env = {**os.environ, "PYTHONHASHSEED": seed}
    env.pop("PYTHONPATH", None)
    out = subprocess.run(
        [sys.executable, "-c", SEEDED, str(TESTS), str(ROOT), COUNTER],
        check=True,
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
    )
    got = json.loads(out.stdout)
    assert got["fingerprint"] == FINGERPRINT
    assert list(got["keys"].items()) == list(CACHE_KEYS.items())
