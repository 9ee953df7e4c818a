"""Incremental re-runs with ``run(cache=...)``: keys, what runs, the store's failures,
``explain``/``--dry-run``, ``dagexec diff`` and ``dagexec cache`` (DESIGN §7).

Tests that change code write a pipeline module into ``tmp_path`` and run it in fresh
``python`` processes, so a key computed in one process must be found by another.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

import dagexec as dx
from dagexec import State
from dagexec.cache.store import CacheStore

SUCCEEDED, CACHED, FAILED = State.SUCCEEDED, State.CACHED, State.FAILED


def note(name: str) -> None:
    """Record a call in the file $CALLS_FILE (a global list would be hashed by value,
    and change the tasks' keys as it grows).  Worker processes started before the
    test (loky's reusable pool) lack the variable: their calls are not counted."""
    path = os.environ.get("CALLS_FILE")
    if path:
        with open(path, "a") as f:
            f.write(name + "\n")


@pytest.fixture(autouse=True)
def calls_file(tmp_path, monkeypatch):
    path = tmp_path / "calls.txt"
    monkeypatch.setenv("CALLS_FILE", str(path))
    return path


@dx.task
def load(n: int) -> list[int]:
    note("load")
    return list(range(n))


@dx.task
def double(xs: list[int]) -> list[int]:
    note("double")
    return [2 * x for x in xs]


@dx.task
def total(xs: list[int]) -> int:
    note("total")
    return sum(xs)


@dx.task
def count(xs: list[int]) -> int:
    note("count")
    return len(xs)


@dx.task(cache=False)
def report(t: int) -> str:
    note("report")
    return f"total={t}"


def pipeline() -> dx.CompiledGraph:
    with dx.Graph("p") as g:
        n = g.input("n", int)
        xs = load(n)
        t = total(double(xs))
        g.output(report(t), name="report")
        g.output(count(xs), name="count")
    return g.compile()


def states(result: dx.RunResult) -> dict[str, str]:
    return {k: s.value for k, s in result.states.items()}


def run(plan: dx.CompiledGraph, cache: Any, **kw: Any) -> tuple[dx.RunResult, list[str]]:
    path = Path(os.environ["CALLS_FILE"])
    path.write_text("")
    result = plan.run(cache=cache, executor="serial", **kw)
    return result, sorted(path.read_text().split())


def entry_path(store: CacheStore, key: str) -> Path:
    return store.path / "values" / key[:2] / key[2:]


# -- what runs ----------------------------------------------------------------------------


def test_a_rerun_with_nothing_changed_runs_only_what_cannot_be_cached(tmp_path):
    plan = pipeline()
    first, ran = run(plan, tmp_path / "c", n=4)
    assert ran == ["count", "double", "load", "report", "total"]
    assert first.outputs == {"report": "total=12", "count": 4}
    second, ran = run(plan, tmp_path / "c", n=4)
    assert ran == ["report"]  # cache=False: always runs
    assert second.outputs == {"report": "total=12", "count": 4}
    assert states(second) == {
        "load": "cached",
        "double": "cached",
        "total": "cached",
        "report": "succeeded",
        "count": "cached",
    }
    assert second.trials["load"] == [] and len(second.trials["report"]) == 1


def test_an_input_change_reruns_the_nodes_that_depend_on_it(tmp_path):
    with dx.Graph("g") as g:
        a, b = g.input("a", int), g.input("b", int)
        g.output(count(load(a)), name="ca")
        g.output(count.options(name="cb")(load.options(name="lb")(b)), name="cb")
    plan = g.compile()
    run(plan, tmp_path, a=2, b=3)
    result, ran = run(plan, tmp_path, a=2, b=5)
    assert ran == ["count", "load"]
    assert states(result) == {"load": "cached", "count": "cached", "lb": "succeeded", "cb": "succeeded"}
    assert result.outputs == {"ca": 2, "cb": 5}


def test_two_nodes_with_the_same_code_and_inputs_share_one_entry(tmp_path):
    with dx.Graph("g") as g:
        n = g.input("n", int)
        g.output(total(load(n)), name="first")
        g.output(total.options(name="again")(load.options(name="load-again")(n)), name="second")
    plan = g.compile()
    keys = plan.cache_keys(n=3)
    assert keys["load"] == keys["load-again"] and keys["total"] == keys["again"]
    run(plan, tmp_path, n=3)
    assert len(CacheStore(tmp_path).entries()) == 2


def test_nodes_that_only_cached_nodes_need_do_not_run(tmp_path):
    plan = pipeline()
    run(plan, tmp_path, n=4)
    store = CacheStore(tmp_path)
    keys = plan.cache_keys(n=4)
    for key in ("load", "double"):
        entry_path(store, keys[key]).unlink()
    result, ran = run(plan, tmp_path, n=4)
    # total and count are in the store; nothing that runs needs load or double
    assert ran == ["report"]
    assert states(result)["load"] == "cached" and states(result)["double"] == "cached"
    assert keys["load"] not in store  # not run, so not written again


def test_an_output_whose_entry_is_gone_runs_and_loads_what_it_needs(tmp_path):
    plan = pipeline()
    run(plan, tmp_path, n=4)
    store = CacheStore(tmp_path)
    entry_path(store, plan.cache_keys(n=4)["count"]).unlink()
    result, ran = run(plan, tmp_path, n=4)
    assert ran == ["count", "report"]  # count reads load's value, loaded from the store
    assert states(result)["load"] == "cached" and result.outputs["count"] == 4


class Counted:
    """A value that appends a line to ``path`` each time it is unpickled."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (_unpickled, (self.path,))


def _unpickled(path: str) -> Counted:
    with open(path, "a") as f:
        f.write("x")
    return Counted(path)


@dx.task
def make_counted(path: str) -> Counted:
    return Counted(path)


@dx.task
def size_of(c: Counted) -> int:
    return 1


@dx.task(cache=False)
def use(c: Counted) -> int:
    return 2


def test_a_cached_value_is_loaded_only_when_something_that_runs_reads_it(tmp_path):
    marks = tmp_path / "marks"
    marks.touch()
    with dx.Graph("g") as g:
        c = make_counted(str(marks))
        g.output(size_of(c), name="size")
    plan = g.compile()
    plan.run(cache=tmp_path / "c", executor="serial")
    assert marks.read_text() == ""
    result = plan.run(cache=tmp_path / "c", executor="serial")
    assert states(result) == {"make_counted": "cached", "size_of": "cached"}
    assert marks.read_text() == ""  # nothing read make_counted's value: never unpickled
    with dx.Graph("g") as g:
        g.output(use(make_counted(str(marks))), name="used")
    result = g.compile().run(cache=tmp_path / "c", executor="serial")
    assert states(result) == {"make_counted": "cached", "use": "succeeded"}
    assert marks.read_text() == "x"  # loaded once, for use


def test_keep_returns_a_cached_value(tmp_path):
    plan = pipeline()
    run(plan, tmp_path, n=3)
    result, _ = run(plan, tmp_path, n=3, keep=["double"])
    assert result["double"] == [0, 2, 4]
    with pytest.raises(KeyError, match="load"):
        result["load"]


def test_a_failed_node_is_not_cached_and_runs_again(tmp_path):
    @dx.task
    def fragile(x: int, fail: bool) -> int:
        if fail:
            raise ValueError("no")
        return x

    with dx.Graph("g") as g:
        fail = g.input("fail", bool)
        g.output(total(double(load(3))), name="t")
        g.output(fragile(1, fail), name="f")
    plan = g.compile()
    first = plan.run(cache=tmp_path, executor="serial", fail=True, raise_on_failure=False)
    assert states(first)["fragile"] == "failed"
    second = plan.run(cache=tmp_path, executor="serial", fail=True, raise_on_failure=False)
    assert states(second) == {"load": "cached", "double": "cached", "total": "cached", "fragile": "failed"}


@pytest.mark.parametrize("executor", ["threads", "loky"])
def test_values_made_on_other_executors_are_written_and_served(executor, tmp_path):
    plan = pipeline()
    first = plan.run(cache=tmp_path, executor=executor, n=5)
    assert states(first) == dict.fromkeys(states(first), "succeeded")
    keys = plan.cache_keys(n=5)
    store = CacheStore(tmp_path)
    assert {k for k in keys if keys[k] is not None and keys[k] in store} == {"load", "double", "total", "count"}
    second = plan.run(cache=tmp_path, executor=executor, n=5)
    assert states(second)["double"] == "cached" and second.outputs == first.outputs


# -- the store's failures -------------------------------------------------------------------


@pytest.mark.parametrize("damage", ["empty", "truncated", "flipped"])
def test_a_damaged_entry_is_a_miss_then_rewritten(damage, tmp_path, caplog):
    plan = pipeline()
    run(plan, tmp_path, n=4)
    store = CacheStore(tmp_path)
    path = entry_path(store, plan.cache_keys(n=4)["count"])
    data = path.read_bytes()
    if damage == "empty":
        path.write_bytes(b"")
    elif damage == "truncated":
        path.write_bytes(data[: len(data) // 2])
    else:
        path.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))
    with caplog.at_level(logging.WARNING, logger="dagexec.cache"):
        result, ran = run(plan, tmp_path, n=4)
    assert result.outputs == {"report": "total=12", "count": 4}
    assert ran == ["count", "report"]
    assert [r.levelname for r in caplog.records if r.name == "dagexec.cache"] == ["WARNING"]
    assert str(path) in caplog.records[0].getMessage()
    again, ran = run(plan, tmp_path, n=4)
    assert ran == ["report"] and states(again)["count"] == "cached"


def test_a_bad_cache_argument_is_an_input_error(tmp_path):
    with pytest.raises(dx.InputError) as info:
        pipeline().run(cache=42, n=1)
    assert str(info.value) == "cache must be a folder or a dagexec.CacheStore, got int"


# -- explain and the command line --------------------------------------------------------------

PIPELINE = textwrap.dedent(
    """
    import dagexec as dx
    from helpers import scale

    @dx.task
    def load(n: int) -> list[int]:
        return list(range(n))

    @dx.task
    def clean(xs: list[int]) -> list[int]:
        return [x for x in xs if x % 2 == 0]

    @dx.task
    def scaled(xs: list[int]) -> list[int]:
        return [scale(x) for x in xs]

    @dx.task
    def total(xs: list[int]) -> int:
        return sum(xs)

    @dx.task
    def size(xs: list[int]) -> int:
        return len(xs)

    with dx.Graph("pipe") as pipe:
        n = pipe.input("n", int)
        xs = load(n)
        pipe.output(total(scaled(clean(xs))), name="total")
        pipe.output(size(xs), name="size")
    """
)
HELPERS = "def scale(x):\n    return x * 10\n"


def write_pipeline(folder: Path, pipeline: str = PIPELINE, helpers: str = HELPERS) -> None:
    folder.mkdir(exist_ok=True)
    (folder / "pipe.py").write_text(pipeline)
    (folder / "helpers.py").write_text(helpers)


def cli(cwd: Path, *args: str, seed: str = "0") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DAGEXEC_KEY")}
    env["PYTHONHASHSEED"] = seed
    cmd = [sys.executable, "-m", "dagexec", *args]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def run_json(cwd: Path, cache: Path, *extra: str, seed: str = "0") -> dict[str, Any]:
    proc = cli(cwd, "run", "pipe:pipe", "-i", "n=6", "--cache", str(cache), "--no-progress",
               "--executor", "serial", "--json", "r.json", *extra, seed=seed)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    data: dict[str, Any] = json.loads((cwd / "r.json").read_text())
    return data


def dry_run(cwd: Path, cache: Path) -> list[list[str]]:
    proc = cli(cwd, "run", "pipe:pipe", "-i", "n=6", "--cache", str(cache), "--dry-run")
    assert proc.returncode == 0, proc.stderr
    return [line.split(None, 2) for line in proc.stdout.splitlines()]


def test_changing_one_function_reruns_it_and_its_descendants_only(tmp_path):
    project, cache = tmp_path / "project", tmp_path / "cache"
    write_pipeline(project)
    assert run_json(project, cache)["outputs"] == {"total": 60, "size": 6}
    assert dry_run(project, cache) == [
        ["cached", "load", "in the store"],
        ["cached", "clean", "in the store"],
        ["cached", "scaled", "in the store"],
        ["cached", "total", "in the store"],
        ["cached", "size", "in the store"],
        ["5", "nodes:", "0 would run, 5 cached"],
    ]
    write_pipeline(project, PIPELINE.replace("x % 2 == 0", "x % 3 == 0"))
    assert dry_run(project, cache) == [
        ["cached", "load", "in the store"],
        ["run", "clean", "code changed: pipe:clean"],
        ["run", "scaled", "upstream will run: clean"],
        ["run", "total", "upstream will run: scaled"],
        ["cached", "size", "in the store"],
        ["5", "nodes:", "3 would run, 2 cached"],
    ]
    report = run_json(project, cache, seed="12345")  # another hash seed: the same keys
    assert report["states"] == {
        "load": "cached",
        "clean": "succeeded",
        "scaled": "succeeded",
        "total": "succeeded",
        "size": "cached",
    }
    assert report["outputs"] == {"total": 30, "size": 6}


def test_changing_a_helper_invalidates_the_task_that_calls_it(tmp_path):
    project, cache = tmp_path / "project", tmp_path / "cache"
    write_pipeline(project)
    run_json(project, cache)
    write_pipeline(project, helpers="def scale(x):\n    return x * 100\n")
    assert dry_run(project, cache)[:5] == [
        ["cached", "load", "in the store"],
        ["cached", "clean", "in the store"],
        ["run", "scaled", "code changed: helpers:scale"],
        ["run", "total", "upstream will run: scaled"],
        ["cached", "size", "in the store"],
    ]
    report = run_json(project, cache)
    assert report["outputs"] == {"total": 600, "size": 6}
    assert [k for k, s in report["states"].items() if s == "succeeded"] == ["scaled", "total"]


def test_dry_run_matches_what_the_run_then_does_node_by_node(tmp_path):
    project, cache = tmp_path / "project", tmp_path / "cache"
    write_pipeline(project)
    for step in range(3):
        if step == 1:
            write_pipeline(project, PIPELINE.replace("return len(xs)", "return len(xs) + 0"))
        if step == 2:
            (project / "pipe.py").write_text((project / "pipe.py").read_text() + "\n\n# moved nothing\n")
        planned = {row[1]: row[0] for row in dry_run(project, cache)[:-1]}
        done = run_json(project, cache)["states"]
        assert {k: "run" if s == "succeeded" else s for k, s in done.items()} == planned


def test_keys_are_the_same_in_processes_with_other_hash_seeds_and_folders(tmp_path):
    script = "import json, pipe; print(json.dumps(pipe.pipe.compile().cache_keys(n=6)))"
    found = []
    for folder, seed in (("a", "0"), ("b", "4242")):
        write_pipeline(tmp_path / folder)
        env = {**os.environ, "PYTHONHASHSEED": seed}
        proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path / folder, env=env,
                              capture_output=True, text=True, timeout=60)  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        found.append(json.loads(proc.stdout))
    assert found[0] == found[1]
    assert all(isinstance(k, str) and len(k) == 64 for k in found[0].values())


def test_two_runs_at_once_on_one_store_both_succeed(tmp_path):
    project, cache = tmp_path / "project", tmp_path / "cache"
    write_pipeline(project)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    cmd = [sys.executable, "-m", "dagexec", "run", "pipe:pipe", "-i", "n=6", "--cache", str(cache),
           "--no-progress", "--executor", "threads"]  # fmt: skip
    procs = [subprocess.Popen(cmd, cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]  # fmt: skip
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert [o[0] for o in outs] == ["total = 60\nsize = 6\n"] * 2
    assert [row[0] for row in dry_run(project, cache)[:-1]] == ["cached"] * 5


def test_dry_run_needs_a_cache(tmp_path):
    write_pipeline(tmp_path)
    proc = cli(tmp_path, "run", "pipe:pipe", "-i", "n=6", "--dry-run")
    assert (proc.returncode, proc.stderr) == (
        2,
        "dagexec: error: --dry-run needs --cache DIR: it says what the cache would serve\n",
    )


def test_diff_lists_nodes_added_removed_and_changed(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    write_pipeline(a)
    changed = PIPELINE.replace("x % 2 == 0", "x % 3 == 0").replace(
        'pipe.output(size(xs), name="size")', 'pipe.output(size(load(7)), name="size")'
    )
    write_pipeline(b, changed)
    for folder in (a, b):
        assert cli(folder, "compile", "pipe:pipe", "-o", str(tmp_path / f"{folder.name}.dagx")).returncode == 0
    proc = cli(tmp_path, "diff", "a.dagx", "a.dagx")
    assert (proc.returncode, proc.stdout) == (0, "no differences: 5 nodes\n")
    proc = cli(tmp_path, "diff", "a.dagx", "b.dagx")
    assert proc.returncode == 1, proc.stderr
    assert [line.split() for line in proc.stdout.splitlines()] == [
        ["changed", "clean", "code:", "pipe:clean"],
        ["changed", "scaled", "upstream:", "clean"],
        ["changed", "total", "upstream:", "scaled"],
        ["added", "load-1"],
        ["changed", "size", "upstream:", "load-1;", "no", "longer", "reads:", "load"],
    ]


def test_cache_ls_and_prune(tmp_path):
    project, cache = tmp_path / "project", tmp_path / "cache"
    write_pipeline(project)
    run_json(project, cache)
    proc = cli(tmp_path, "cache", "ls", str(cache))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert sorted(line.split()[-1] for line in lines[:-1]) == sorted(
        f"pipe:{k}" for k in ("load", "clean", "scaled", "total", "size")
    )
    assert lines[-1].startswith("5 entries, ")
    store = CacheStore(cache)
    old = store.entries()[0]
    path = entry_path(store, old.key)
    os.utime(path, (time.time() - 3 * 86400, time.time() - 3 * 86400))
    proc = cli(tmp_path, "cache", "prune", str(cache), "--older-than", "2d")
    assert proc.stdout == f"removed 1 entries, {old.size:,} bytes\n"
    assert not path.exists() and len(store.entries()) == 4
    proc = cli(tmp_path, "cache", "prune", str(cache))
    assert proc.stdout.startswith("removed 4 entries, ")
    assert store.entries() == []
    proc = cli(tmp_path, "cache", "prune", str(cache), "--older-than", "soon")
    assert proc.returncode == 2
    assert "expects a duration such as 30s, 15m, 12h, 7d or 2w, got 'soon'" in proc.stderr


# -- resume ------------------------------------------------------------------------------------

RESUMABLE = textwrap.dedent(
    """
    import os
    import time

    import dagexec as dx

    HERE = os.path.dirname(os.path.abspath(__file__))

    def mark(name):
        with open(os.path.join(HERE, "calls"), "a") as f:
            f.write(name + "\\n")

    @dx.task
    def fetch(n: int) -> list[int]:
        mark("fetch")
        return list(range(n))

    @dx.task(cache=False)
    def publish(xs: list[int]) -> int:
        mark("publish")  # a side effect: must not happen twice
        return len(xs)

    @dx.task
    def crunch(xs: list[int]) -> int:
        mark("crunch")
        if os.path.exists(os.path.join(HERE, "hang")):
            time.sleep(120)  # far longer than the test waits: it is killed here
        if os.path.exists(os.path.join(HERE, "fail")):
            raise RuntimeError("crunch failed")
        return sum(xs)

    with dx.Graph("r") as r:
        xs = fetch(r.input("n", int))
        r.output(crunch(xs), name="crunched")  # readied with publish; the last readied runs first
        publish(xs)  # not an output: a resumed run has no need of its value
    """
)


def calls(folder: Path) -> list[str]:
    return (folder / "calls").read_text().split()


def run_resumable(project: Path, cache: Path, *extra: str) -> tuple[int, dict[str, Any]]:
    proc = cli(project, "run", "pipe:r", "-i", "n=4", "--cache", str(cache), "--no-progress",
               "--executor", "serial", "--json", "r.json", *extra)  # fmt: skip
    return proc.returncode, json.loads((project / "r.json").read_text())


def test_a_run_killed_mid_way_resumes_without_running_finished_nodes_again(tmp_path):
    project, cache = tmp_path / "project", tmp_path / "cache"
    project.mkdir()
    (project / "pipe.py").write_text(RESUMABLE)
    (project / "hang").touch()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    cmd = [sys.executable, "-m", "dagexec", "run", "pipe:r", "-i", "n=4", "--cache", str(cache),
           "--no-progress", "--executor", "serial"]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60  # a guard against a hung child, not a timing assertion
        while not (project / "calls").exists() or "crunch" not in calls(project):
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.01)
        proc.kill()  # SIGKILL: no handler runs, nothing is flushed by the process
    finally:
        proc.communicate(timeout=60)
    assert calls(project) == ["fetch", "publish", "crunch"]
    (project / "hang").unlink()
    code, report = run_resumable(project, cache, "--resume")
    assert code == 0
    assert calls(project) == ["fetch", "publish", "crunch", "crunch"]  # publish did not run again
    assert report["states"] == {"fetch": "cached", "publish": "succeeded", "crunch": "succeeded"}
    assert report["outputs"] == {"crunched": 6}
    assert [(t["attempt"], t["state"]) for t in report["trials"]["publish"]] == [(1, "succeeded")]
    assert [(t["attempt"], t["state"]) for t in report["trials"]["crunch"]] == [(1, "succeeded")]


def test_resume_after_a_failure_runs_the_failed_node_and_keeps_its_earlier_trial(tmp_path):
    project, cache = tmp_path / "project", tmp_path / "cache"
    project.mkdir()
    (project / "pipe.py").write_text(RESUMABLE)
    (project / "fail").touch()
    code, report = run_resumable(project, cache)
    assert (code, report["states"]["crunch"]) == (1, "failed")
    (project / "fail").unlink()
    code, report = run_resumable(project, cache, "--resume")
    assert code == 0
    assert calls(project) == ["fetch", "publish", "crunch", "crunch"]
    assert [(t["attempt"], t["state"]) for t in report["trials"]["crunch"]] == [(1, "failed"), (1, "succeeded")]
    assert report["trials"]["crunch"][0]["error"] == "RemoteError: RuntimeError: crunch failed"
    # without --resume, the side effect happens again (publish is cache=False)
    code, report = run_resumable(project, cache)
    assert calls(project)[-1] == "publish" and report["states"]["crunch"] == "cached"


def test_resume_needs_a_cache():
    with pytest.raises(dx.InputError) as info:
        pipeline().run(n=1, resume=True)
    assert "resume=True needs cache=: the folder whose journal the run continues" in str(info.value)


FACTOR = 2


@dx.task
def scale_by_global(x: int) -> int:
    return x * FACTOR


def test_a_global_rebound_between_two_runs_changes_the_key(tmp_path):
    global FACTOR
    with dx.Graph("g") as g:
        g.output(scale_by_global(5), name="v")
    plan = g.compile()
    assert plan.run(cache=tmp_path, executor="serial").output == 10
    FACTOR = 3
    try:
        result = plan.run(cache=tmp_path, executor="serial")
        assert (result.output, states(result)) == (15, {"scale_by_global": "succeeded"})
    finally:
        FACTOR = 2


@dx.task
def pick(xs: list[int], k: int) -> int:
    return xs[k]


@dx.task
def length(text: str) -> int:
    return len(text)


def test_explain_gives_every_reason(tmp_path):
    def build(k: int) -> dx.CompiledGraph:
        with dx.Graph("e") as g:
            n = g.input("n", int)
            xs = load(n)
            g.output(pick(xs, k), name="picked")
            g.output(length(report.options(name="side")(total(xs))), name="side")
        return g.compile()

    plan = build(1)
    assert str(plan.explain(cache=tmp_path, n=3)[0]) == "run      load  (not cached yet)"
    found = {e.key: (e.action, e.reasons) for e in plan.explain(cache=tmp_path, n=3)}
    assert found == {
        "load": ("run", ("not cached yet",)),
        "pick": ("run", ("upstream will run: load",)),
        "total": ("run", ("upstream will run: load",)),
        "side": ("run", ("cache=False",)),
        "length": ("run", ("upstream not cacheable: side",)),
    }
    plan.run(cache=tmp_path, executor="serial", n=3)
    found = {e.key: (e.action, e.reasons) for e in build(2).explain(cache=tmp_path, n=4)}
    assert found == {
        "load": ("run", ("input changed: n",)),
        "pick": ("run", ("constants changed", "upstream will run: load")),
        "total": ("run", ("upstream will run: load",)),
        "side": ("run", ("cache=False",)),
        "length": ("run", ("upstream not cacheable: side",)),
    }
    store = CacheStore(tmp_path)
    entry_path(store, plan.cache_keys(n=3)["pick"]).unlink()
    found = {e.key: (e.action, e.reasons) for e in plan.explain(cache=tmp_path, n=3)}
    assert found["pick"] == ("run", ("not cached yet",))  # no entry of pick is left in the store
    assert found["load"] == ("cached", ("in the store",))
    assert found["total"] == ("cached", ("in the store",))
    skipped = {e.key: e.action for e in plan.explain(cache=tmp_path, n=3, skip=["side"])}
    assert skipped == {"load": "cached", "pick": "run", "total": "cached", "side": "skipped", "length": "skipped"}


@dx.section
def summary(n: int) -> int:
    return total(double(load(n)))


def test_a_section_whose_output_is_cached_does_not_run_inside(tmp_path):
    with dx.Graph("s") as g:
        g.output(report(summary(g.input("n", int))), name="r")
    plan = g.compile()
    run(plan, tmp_path, n=3)
    store = CacheStore(tmp_path)
    keys = plan.cache_keys(n=3)
    for key in ("summary/load", "summary/double"):
        entry_path(store, keys[key]).unlink()
    result, ran = run(plan, tmp_path, n=3)
    assert ran == ["report"]
    assert {k: s for k, s in states(result).items() if k.startswith("summary/")} == {
        "summary/load": "cached",
        "summary/double": "cached",
        "summary/total": "cached",
    }
