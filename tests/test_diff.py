"""``dagexec diff`` agrees with the cache keys (DESIGN §7): a node is ``changed`` exactly
when a part of its key changed, diff names the part, and it exits 0 when no node was
added or removed and no key changed, whatever the modules are called.

The command-line tests save real plans with ``dagexec compile`` from modules written
to ``tmp_path``, and compare them with ``dagexec diff`` in fresh processes.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import dagexec as dx
from dagexec.cache.diff import plan_diff

PIPELINE = textwrap.dedent(
    """
    import dagexec as dx
    from {helpers} import scale

    @dx.task
    def load(n: int) -> list[int]:
        return list(range(n))

    @dx.task
    def clean(xs: list[int]) -> list[int]:
        return [scale(x) for x in xs if x % 2 == 0]

    @dx.task
    def total(xs: list[int]) -> int:
        return sum(xs)

    with dx.Graph("pipe") as pipe:
        pipe.output(total({body}), name="total")
    """
)
HELPERS = "def scale(x):\n    return x * 10\n"


def dagexec(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DAGEXEC_KEY")}
    cmd = [sys.executable, "-m", "dagexec", *args]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def save(tmp_path: Path, name: str, body: str, module: str = "pipe", helpers: str = "helpers") -> None:
    """Write ``module.py`` (and its helpers) in a folder of its own and compile it to
    ``tmp_path/name.dagx``."""
    folder = tmp_path / name
    folder.mkdir()
    (folder / f"{module}.py").write_text(PIPELINE.format(helpers=helpers, body=body))
    (folder / f"{helpers}.py").write_text(HELPERS)
    proc = dagexec(folder, "compile", f"{module}:pipe", "-o", str(tmp_path / f"{name}.dagx"))
    assert proc.returncode == 0, proc.stderr


def test_diff_says_that_a_node_now_reads_another_upstream(tmp_path):
    save(tmp_path, "a", "clean(load(pipe.input('n', int)))")
    save(tmp_path, "b", "load(pipe.input('n', int))")
    proc = dagexec(tmp_path, "diff", "a.dagx", "b.dagx")
    assert (proc.returncode, proc.stdout) == (
        1,
        "changed  total  upstream: load; no longer reads: clean\nremoved  clean\n",
    ), proc.stderr


def test_identical_code_under_other_module_names_is_no_difference(tmp_path):
    body = "clean(load(pipe.input('n', int)))"
    save(tmp_path, "a", body)
    save(tmp_path, "b", body, module="etl", helpers="tools")
    proc = dagexec(tmp_path, "diff", "a.dagx", "b.dagx")
    assert (proc.returncode, proc.stdout) == (0, "no differences: 3 nodes\n"), proc.stderr
    # and the cache agrees: what one plan wrote, the other finds
    run = dagexec(tmp_path, "run", "a.dagx", "-i", "n=5", "--cache", "c", "--no-progress")
    assert (run.returncode, run.stdout) == (0, "total = 60\n"), run.stderr
    dry = dagexec(tmp_path, "run", "b.dagx", "-i", "n=5", "--cache", "c", "--dry-run")
    assert dry.stdout.splitlines()[-1] == "3 nodes: 0 would run, 3 cached", dry.stderr


def test_a_changed_helper_is_named_whatever_the_module_is_called(tmp_path):
    body = "clean(load(pipe.input('n', int)))"
    save(tmp_path, "a", body)
    save(tmp_path, "b", body, module="etl", helpers="tools")
    (tmp_path / "b" / "tools.py").write_text("def scale(x):\n    return x * 100\n")
    proc = dagexec(tmp_path / "b", "compile", "etl:pipe", "-o", str(tmp_path / "b.dagx"))
    assert proc.returncode == 0, proc.stderr
    proc = dagexec(tmp_path, "diff", "a.dagx", "b.dagx")
    assert (proc.returncode, proc.stdout) == (
        1,
        "changed  clean  code: tools:scale\nchanged  total  upstream: clean\n",
    ), proc.stderr


# -- the API: diff and the cache keys agree ----------------------------------------------------


@dx.task
def load(n: int) -> list[int]:
    return list(range(n))


@dx.task
def pick(xs: list[int], k: int) -> int:
    return xs[k]


@dx.task
def sub(a: int, b: int) -> int:
    return a - b


@dx.task
def shout(x: int) -> str:
    return f"{x}!"


def build(variant: str) -> dx.CompiledGraph:
    with dx.Graph("g") as g:
        n = g.input("n", int)
        m = g.input("m", int, default=2)
        xs = load(n)
        first = pick(xs, 0 if variant != "constant" else 1)
        last = pick.options(name="last")(xs if variant != "input" else load(m), 3)
        pair = (last, first) if variant == "swapped" else (first, last)
        diff = sub(*pair)
        speak = shout.options(cache=variant != "uncached")
        g.output(speak(diff), name="said")
        g.output(sub.options(name="gap")(diff, 1), name="gap")
    return g.compile()


def changes(a: str, b: str) -> dict[str, tuple[str, ...]]:
    found = plan_diff(build(a), build(b))
    assert all(change == "changed" for change, _, _ in found)
    return {key: details for _, key, details in found}


def keys_that_differ(a: str, b: str) -> set[str]:
    ka, kb = build(a).cache_keys(n=5, m=5), build(b).cache_keys(n=5, m=5)
    return {key for key in ka if ka[key] != kb[key]}


def test_diff_names_each_part_of_a_key_that_changed():
    assert changes("base", "base") == {}
    assert changes("base", "constant") == {
        "pick": ("constants",),
        "sub": ("upstream: pick",),
        "shout": ("upstream: sub",),
        "gap": ("upstream: sub",),
    }
    assert changes("base", "swapped") == {
        "sub": ("arguments",),
        "shout": ("upstream: sub",),
        "gap": ("upstream: sub",),
    }
    assert changes("base", "uncached") == {"shout": ("cache=False",)}


def test_diff_changes_are_exactly_the_keys_that_changed():
    for variant in ("base", "constant", "swapped", "uncached"):
        assert set(changes("base", variant)) == keys_that_differ("base", variant), variant


def test_diff_names_inputs_read_and_nodes_no_longer_read():
    found = plan_diff(build("base"), build("input"))
    assert found == [
        ("added", "load-1", ()),
        ("changed", "last", ("upstream: load-1", "no longer reads: load")),
        ("changed", "sub", ("upstream: last",)),
        ("changed", "shout", ("upstream: sub",)),
        ("changed", "gap", ("upstream: sub",)),
    ]
    with dx.Graph("g") as g:
        g.output(load(g.input("m", int, default=3)), name="xs")
    with dx.Graph("g") as h:
        h.output(load(h.input("m", int, default=4)), name="xs")
    with dx.Graph("g") as k:
        k.output(load(k.input("n", int)), name="xs")
    assert plan_diff(g.compile(), h.compile()) == [("changed", "load", ("input default: m",))]
    assert plan_diff(g.compile(), k.compile()) == [("changed", "load", ("inputs: n",))]
