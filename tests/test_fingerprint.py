"""``plan.fingerprint`` and keys: stable across processes and hash seeds (DESIGN §2, §4)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import cloudpickle

import dagexec as dx

# A graph with every kind of node and constants whose iteration order depends on
# the hash seed (sets of strings, a frozenset inside a dict).
MODULE = textwrap.dedent(
    """
    import dagexec as dx

    @dx.task(tags=("io",), retry_on=(OSError,))
    def load(path: str, columns: set[str]) -> list[str]:
        return sorted(columns)

    @dx.task(nout=2)
    def split(rows: list[str]):
        return rows[:1], rows[1:]

    @dx.task
    def join(a: list[str], b: list[str], options: dict) -> str:
        return ",".join(a + b)

    @dx.section(retries=1)
    def etl(path: str) -> str:
        head, tail = split(load(path, {"alpha", "beta", "gamma", "delta", "epsilon"}))
        return join(head, tail, {"mode": frozenset({"x", "y", "z"}), "limit": 3})

    def build():
        with dx.Graph("stable") as graph:
            path = graph.input("path", str)
            default = graph.input("default", list[str], default=["a"])
            eu = etl(path)
            us = etl("us.csv")
            graph.output(join([eu], [us], {"sources": {"eu", "us"}}), "report")
            graph.output(default, "default")
        return graph
    """
)

SCRIPT = textwrap.dedent(
    """
    import json, sys
    sys.path.insert(0, sys.argv[1])
    import fpmod
    plan = fpmod.build().compile()
    print(json.dumps({"keys": list(plan.keys), "fingerprint": plan.fingerprint,
                      "outputs": list(plan.outputs),
                      "sections": [s.path for s in plan.sections]}))
    """
)


def _in_subprocess(tmp_path: Path, seed: str) -> dict[str, object]:
    env = {**os.environ, "PYTHONHASHSEED": seed}
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path)],
        check=True,
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def _load(path: Path, name: str = "fpmod") -> ModuleType:
    """Import ``path`` as a fresh module called ``name``."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _fingerprint(source: str, tmp_path: Path, subdir: str) -> str:
    folder = tmp_path / subdir
    folder.mkdir()
    (folder / "fpmod.py").write_text(source)
    return str(_load(folder / "fpmod.py").build().compile().fingerprint)


def test_keys_and_fingerprint_are_the_same_under_two_hash_seeds(tmp_path: Path) -> None:
    (tmp_path / "fpmod.py").write_text(MODULE)
    first = _in_subprocess(tmp_path, "0")
    second = _in_subprocess(tmp_path, "4242")
    assert first == second
    assert first["keys"] == [
        "etl/load",
        "etl/split",
        "etl/split.0",
        "etl/split.1",
        "etl/join",
        "etl-1/load",
        "etl-1/split",
        "etl-1/split.0",
        "etl-1/split.1",
        "etl-1/join",
        "join",
    ]
    assert first["outputs"] == ["report", "default"]
    assert first["sections"] == ["etl", "etl-1"]
    # and this process (whatever its seed) agrees
    assert _fingerprint(MODULE, tmp_path, "here") == first["fingerprint"]


def test_fingerprint_ignores_line_numbers_and_file_paths(tmp_path: Path) -> None:
    moved = MODULE.replace("\n\n", "\n\n\n\n").replace("def build():", "# a comment\n\ndef build():")
    assert moved != MODULE
    assert _fingerprint(MODULE, tmp_path, "a") == _fingerprint(moved, tmp_path, "b")


def test_fingerprint_changes_when_task_code_changes(tmp_path: Path) -> None:
    changed = MODULE.replace('return ",".join(a + b)', 'return ";".join(a + b)')
    assert changed != MODULE
    assert _fingerprint(MODULE, tmp_path, "a") != _fingerprint(changed, tmp_path, "b")


def test_fingerprint_changes_when_a_constant_changes(tmp_path: Path) -> None:
    changed = MODULE.replace('"limit": 3', '"limit": 4')
    assert changed != MODULE
    set_changed = MODULE.replace('"epsilon"}', '"zeta"}')
    assert set_changed != MODULE
    base = _fingerprint(MODULE, tmp_path, "a")
    assert base != _fingerprint(changed, tmp_path, "b")
    assert base != _fingerprint(set_changed, tmp_path, "c")


def test_fingerprint_changes_with_options_structure_inputs_and_name(tmp_path: Path) -> None:
    variants = {
        "options": MODULE.replace("@dx.section(retries=1)", "@dx.section(retries=2)"),
        "structure": MODULE.replace('us = etl("us.csv")', 'us = etl("us.csv")\n        etl("extra")'),
        "input default": MODULE.replace('default=["a"]', 'default=["b"]'),
        "graph name": MODULE.replace('dx.Graph("stable")', 'dx.Graph("renamed")'),
        "output name": MODULE.replace('"report")', '"summary")'),
    }
    base = _fingerprint(MODULE, tmp_path, "base")
    fingerprints = {
        what: _fingerprint(source, tmp_path, what.replace(" ", "_")) for what, source in variants.items()
    }
    assert all(source != MODULE for source in variants.values())
    assert {what: fp != base for what, fp in fingerprints.items()} == dict.fromkeys(variants, True)
    assert len(set(fingerprints.values())) == len(variants)


@dx.task
def double(x: int) -> int:
    return 2 * x


def test_fingerprint_is_the_same_for_a_rebuilt_graph_and_after_pickling() -> None:
    def build() -> dx.CompiledGraph:
        with dx.Graph("rebuilt") as graph:
            n = graph.input("n", int)
            double(double(n))
        return graph.compile()

    plan = build()
    fingerprint = plan.fingerprint
    assert len(fingerprint) == 64
    assert int(fingerprint, 16) >= 0
    assert plan.fingerprint == fingerprint
    assert build().fingerprint == fingerprint
    assert cloudpickle.loads(cloudpickle.dumps(plan)).fingerprint == fingerprint
    assert repr(plan) == f"<CompiledGraph 'rebuilt': 2 nodes, fingerprint {fingerprint[:12]}>"


NAMEDTUPLE_MODULE = textwrap.dedent(
    """
    import collections
    import dagexec as dx

    Window = collections.namedtuple("Window", "size tags")

    @dx.task
    def use(w: Window) -> int:
        return w.size

    def build():
        with dx.Graph("stable") as graph:
            use(Window(1, {"alpha", "beta", "gamma", "delta", "eps"}))
        return graph
    """
)


def test_a_namedtuple_constant_holding_a_set_has_one_fingerprint_under_every_hash_seed(
    tmp_path: Path,
) -> None:
    # its pickle lists the set in hash-seed order; the fingerprint walks it instead
    (tmp_path / "fpmod.py").write_text(NAMEDTUPLE_MODULE)
    prints = {_in_subprocess(tmp_path, seed)["fingerprint"] for seed in ("0", "1", "2", "3")}
    assert len(prints) == 1


def test_a_later_option_counts_in_the_fingerprint_only_away_from_its_default() -> None:
    def fingerprint(**options: object) -> str:
        with dx.Graph("g") as g:
            double.options(**options)(1)
        return g.compile().fingerprint

    base = fingerprint()
    assert fingerprint(buffer=64) == base  # the default: as a plan from before the option
    assert fingerprint(buffer=8) != base
    assert fingerprint(buffer=8) == fingerprint(buffer=8)
