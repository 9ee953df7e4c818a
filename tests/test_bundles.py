"""Repro bundles (DESIGN §14, docs/debugging.md): ``run(bundles=...)``, ``dx.load_bundle``
and ``dagexec debug``, on every executor, with the file checked before anything in it
is unpickled."""

from __future__ import annotations

import getpass
import json
import os
import pickle
import socket
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import dagexec as dx
from dagexec import State
from dagexec import _bundle as bundle_mod


@dx.task
def numbers(n: int) -> list[int]:
    return list(range(n))


@dx.task(retries=1)
def divide(xs: list[int], by: int) -> float:
    total = sum(xs)
    print(f"dividing {total} by {by}")
    return total / by


@dx.task
def fails_on(x: int, bad: int) -> int:
    if x == bad:
        raise ValueError(f"item {x} is bad")
    return x


@dx.task
def takes(value: Any, other: int) -> int:
    raise RuntimeError(f"failed with {other}")


@pytest.fixture
def executor(every_executor: Any) -> Any:
    return every_executor


def divide_graph() -> dx.CompiledGraph:
    with dx.Graph("g") as g:
        divide(numbers(g.input("n", int)), by=g.input("by", int))
    return g.compile()


def test_the_last_attempt_of_a_failed_trial_is_a_bundle_on_every_executor(executor, tmp_path):
    result = divide_graph().run(n=4, by=0, executor=executor, bundles=tmp_path / "b", raise_on_failure=False)
    trials = result.trials["divide"]
    assert [(t.attempt, t.state) for t in trials] == [(1, State.FAILED), (2, State.FAILED)]
    assert trials[0].bundle is None
    assert trials[1].bundle == str(tmp_path / "b" / "g--divide.dxbundle")
    assert os.listdir(tmp_path / "b") == ["g--divide.dxbundle"]
    b = dx.load_bundle(trials[1].bundle)
    assert (b.graph, b.node, b.attempt, b.state) == ("g", "divide", 2, "failed")
    assert (b.error_type, b.error) == ("builtins.ZeroDivisionError", "division by zero")
    assert (b.args, b.kwargs, b.replaced) == ([[0, 1, 2, 3], 0], {}, {})  # as the plan calls it
    assert b.function.__name__ == "divide"
    assert b.log == "dividing 6 by 0\n"
    assert "ZeroDivisionError: division by zero" in b.traceback
    ((frame, names),) = b.locals.items()
    assert frame.endswith(" divide")
    assert names == {"xs": "[0, 1, 2, 3]", "by": "0", "total": "6"}
    with pytest.raises(ZeroDivisionError, match="division by zero"):
        b.reproduce()


def test_a_successful_run_writes_nothing(tmp_path):
    result = divide_graph().run(n=4, by=2, executor="threads", bundles=tmp_path / "b")
    assert result.output == 3.0
    assert not (tmp_path / "b").exists()
    assert all(t.bundle is None for ts in result.trials.values() for t in ts)


def test_each_failed_map_item_has_its_bundle(tmp_path):
    with dx.Graph("g") as g:
        fails_on.map([1, 2, 3, 4], bad=3)
    result = g.compile().run(executor="threads", fail_fast=False, bundles=tmp_path, raise_on_failure=False)
    assert result.trials["fails_on[2]"][-1].bundle == str(tmp_path / "g--fails_on_2_.dxbundle")
    assert sorted(os.listdir(tmp_path)) == ["g--fails_on_2_.dxbundle"]
    b = dx.load_bundle(result.trials["fails_on[2]"][-1].bundle)
    assert (b.node, b.args, b.kwargs) == ("fails_on[2]", [3, 3], {})  # the item, then bad=3
    with pytest.raises(ValueError, match="item 3 is bad"):
        b.reproduce()


def test_an_argument_that_does_not_pickle_is_named_and_replaced_by_its_repr(tmp_path):
    import threading

    lock = threading.Lock()
    with dx.Graph("g") as g:
        takes(lock, 5)
    result = g.compile().run(executor="serial", bundles=tmp_path, raise_on_failure=False)
    b = dx.load_bundle(result.trials["takes"][-1].bundle)
    assert b.args == [repr(lock), 5]
    assert list(b.replaced) == ["value"]
    assert b.replaced["value"].startswith("does not pickle (TypeError: cannot pickle '_thread.lock' object)")


def test_a_huge_argument_is_a_repr_or_a_reference_to_its_cache_entry(tmp_path, monkeypatch):
    monkeypatch.setattr(bundle_mod, "MAX_ARGUMENT_BYTES", 1000)
    plan = divide_graph()
    result = plan.run(n=500, by=0, executor="serial", bundles=tmp_path / "a", raise_on_failure=False)
    b = dx.load_bundle(result.trials["divide"][-1].bundle)
    assert b.args == [repr(list(range(500)))[:997] + "...", 0]
    assert b.replaced["xs"].endswith("bytes, over 1,000; replaced by its repr")

    cache = tmp_path / "cache"
    result = plan.run(n=500, by=0, executor="serial", bundles=tmp_path / "c", cache=cache, raise_on_failure=False)
    b = dx.load_bundle(result.trials["divide"][-1].bundle)
    ref, by = b.args
    assert isinstance(ref, bundle_mod.CacheRef) and ref.folder == str(cache) and by == 0
    assert b.replaced["xs"].endswith("bytes, over 1,000: a reference to its cache entry")
    with pytest.raises(ZeroDivisionError):
        b.reproduce()  # the value loaded from the cache
    assert ref.load() == list(range(500))


def test_a_fused_chains_input_on_dask_is_named_as_absent_or_fetched(client, tmp_path):
    from dagexec.executors import DaskExecutor

    with dx.Graph("g") as g:
        fails_on(fails_on(3, bad=-1), bad=3)  # a chain: the second reads the first's value
    result = g.compile().run(executor=DaskExecutor(client), bundles=tmp_path, raise_on_failure=False)
    b = dx.load_bundle(result.trials["fails_on-1"][-1].bundle)
    if b.replaced:  # fused: the value stayed in the worker
        assert b.replaced == {"x": "was made in the same worker by the node before it (a fused chain) and not sent back"}
        assert b.args == [None, 3]
    else:
        assert b.args == [3, 3]


# -- nothing personal ---------------------------------------------------------------------


def test_nothing_personal_is_written_unless_asked(tmp_path, monkeypatch):
    import uuid

    secret = f"value-of-a-secret-{uuid.uuid4().hex}"  # made here: the module's source travels
    monkeypatch.setenv("DAGEXEC_TEST_SECRET", secret)
    workdir = tmp_path / "a-working-directory-e3b9"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    plan = divide_graph()
    result = plan.run(n=3, by=0, executor="serial", bundles=tmp_path / "plain", raise_on_failure=False)
    data = Path(result.trials["divide"][-1].bundle).read_bytes()
    host = socket.gethostname().encode()
    assert secret.encode() not in data
    assert str(workdir).encode() not in data
    assert host not in data
    user = getpass.getuser()
    if len(user) >= 5:  # a short name ("root") is a word found anywhere
        assert user.encode() not in data
    assert "personal" not in dx.load_bundle(result.trials["divide"][-1].bundle).header

    result = plan.run(
        n=3, by=0, executor="serial", bundles=tmp_path / "personal", bundle_personal=True, raise_on_failure=False
    )
    header = dx.load_bundle(result.trials["divide"][-1].bundle).header
    personal = header["personal"]
    assert (personal["user"], personal["host"], personal["cwd"]) == (user, socket.gethostname(), str(workdir))
    assert personal["environ"]["DAGEXEC_TEST_SECRET"] == secret


# -- the file is checked before anything is unpickled -------------------------------------


class _LeavesAMark:
    """Unpickling it creates the file ``path``."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (self.path, "w"))


def marked_bundle(tmp_path: Path, key: bytes | None = None) -> tuple[Path, Path]:
    mark = tmp_path / "unpickled"
    fields = {
        "graph": "g", "node": "n", "attempt": 1, "state": "failed", "error_type": "E", "error": "",
        "traceback": "", "locals": {}, "log": "", "replaced": {},
    }  # fmt: skip
    path = bundle_mod.write_bundle(str(tmp_path / "b"), fields, _LeavesAMark(str(mark)), [], {}, key)
    return Path(path), mark


def test_a_sound_bundle_is_unpickled_as_the_control(tmp_path):
    path, mark = marked_bundle(tmp_path)
    dx.load_bundle(path).function.close()  # the payload's object: the open file
    assert mark.exists()


def _tamper(data: bytes) -> bytes:
    return data[:-5] + bytes([data[-5] ^ 1]) + data[-4:]


@pytest.mark.parametrize(
    ("change", "reason", "message"),
    [
        (_tamper, "corrupted", "the payload does not match its SHA-256 checksum (the file is corrupted)"),
        (lambda d: d[: len(d) // 2], "truncated", None),
        (lambda d: b"DAGX" + d[4:], "foreign", None),
        (lambda d: b"", "empty", None),
    ],
)
def test_a_damaged_bundle_is_refused_and_nothing_in_it_runs(tmp_path, change, reason, message):
    path, mark = marked_bundle(tmp_path)
    path.write_bytes(change(path.read_bytes()))
    with pytest.raises(dx.ArtifactError) as info:
        dx.load_bundle(path)
    assert isinstance(info.value, dx.BundleError)
    assert info.value.reason == reason
    if message is not None:
        assert str(info.value) == f"cannot open {str(path)!r}: {message}"
    assert not mark.exists()


def test_signatures_follow_the_artifacts_key_rules(tmp_path, monkeypatch):
    signed, mark = marked_bundle(tmp_path / "s", key=b"k1")
    unsigned, _ = marked_bundle(tmp_path / "u")
    cases = [(signed, b"k2", "bad-signature"), (unsigned, b"k1", "unsigned"), (signed, None, "key-required")]
    for path, key, reason in cases:
        with pytest.raises(dx.BundleError) as info:
            dx.load_bundle(path, key=key)
        assert info.value.reason == reason, path
    monkeypatch.setenv("DAGEXEC_REQUIRE_SIGNED", "1")
    with pytest.raises(dx.BundleError) as info:
        dx.load_bundle(unsigned)
    assert info.value.reason == "unsigned"
    assert not mark.exists() and not (tmp_path / "u" / "unpickled").exists()
    monkeypatch.delenv("DAGEXEC_REQUIRE_SIGNED")
    dx.load_bundle(signed, key=b"k1").function.close()
    assert mark.exists()


def test_bundles_are_signed_with_dagexec_key(tmp_path, monkeypatch):
    monkeypatch.setenv("DAGEXEC_KEY", "a-key")
    result = divide_graph().run(n=3, by=0, executor="serial", bundles=tmp_path, raise_on_failure=False)
    path = result.trials["divide"][-1].bundle
    assert dx.load_bundle(path).error == "division by zero"  # verified with DAGEXEC_KEY
    monkeypatch.delenv("DAGEXEC_KEY")
    with pytest.raises(dx.BundleError) as info:
        dx.load_bundle(path)
    assert info.value.reason == "key-required"


def test_bad_bundles_arguments_are_input_errors(tmp_path, monkeypatch):
    with pytest.raises(dx.InputError, match="bundles must be a folder"):
        divide_graph().run(n=3, by=1, bundles=3)
    monkeypatch.setenv("DAGEXEC_KEY", "")
    with pytest.raises(dx.InputError, match="bundles: "):
        divide_graph().run(n=3, by=1, bundles=tmp_path)


# -- dagexec debug, from another directory, the module gone --------------------------------

MODULE = textwrap.dedent(
    """
    import os
    import dagexec as dx

    @dx.task
    def numbers(n: int) -> list:
        return list(range(n))

    @dx.task
    def divide(xs: list, by: int) -> float:
        total = sum(xs)
        if os.path.exists(os.environ.get("FIXED", "/nonexistent")):
            return 0.0
        return total / by

    with dx.Graph("g") as graph:
        divide(numbers(graph.input("n", int)), by=graph.input("by", int))
    """
)


def cli(*args: str, cwd: Path, stdin: str = "", env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dagexec", *args],
        cwd=cwd, input=stdin, capture_output=True, text=True, timeout=120, env={**os.environ, **(env or {})},
    )  # fmt: skip


@pytest.fixture
def bundle_of_a_gone_module(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    src.mkdir()
    (src / "pipe_gone.py").write_text(MODULE)
    run = cli("run", "pipe_gone.py:graph", "-i", "n=4", "-i", "by=0", "--bundles", "../bundles",
              "--no-progress", "--json", "../result.json", cwd=src)  # fmt: skip
    assert run.returncode == 1, run.stderr
    assert "divide: repro bundle ../bundles/g--divide.dxbundle (dagexec debug FILE)" in run.stderr
    doc = json.loads((tmp_path / "result.json").read_text())
    assert doc["trials"]["divide"][-1]["bundle"] == "../bundles/g--divide.dxbundle"
    (src / "pipe_gone.py").unlink()
    (tmp_path / "elsewhere").mkdir()
    return tmp_path / "bundles" / "g--divide.dxbundle"


def test_dagexec_debug_no_pdb_reproduces_the_error_of_a_module_gone(bundle_of_a_gone_module, tmp_path):
    done = cli("debug", str(bundle_of_a_gone_module), "--no-pdb", cwd=tmp_path / "elsewhere")
    assert done.returncode == 1, done.stderr
    lines = done.stderr.splitlines()
    assert lines[:2] == ["node 'divide' of graph 'g', attempt 1: failed", "  builtins.ZeroDivisionError: division by zero"]
    assert lines[-1] == "ZeroDivisionError: division by zero"
    assert "    return total / by" in lines  # the source travelled with the bundle


def test_dagexec_debug_exits_0_when_it_no_longer_fails(bundle_of_a_gone_module, tmp_path):
    fixed = tmp_path / "fixed"
    fixed.touch()
    done = cli("debug", str(bundle_of_a_gone_module), "--no-pdb", cwd=tmp_path / "elsewhere", env={"FIXED": str(fixed)})
    assert done.returncode == 0, done.stderr
    assert done.stdout == "node 'divide' no longer fails: the call returned\n"


def test_dagexec_debug_opens_pdb_at_the_failing_line(bundle_of_a_gone_module, tmp_path):
    done = cli("debug", str(bundle_of_a_gone_module), cwd=tmp_path / "elsewhere", stdin="p total, by\nq\n")
    assert done.returncode == 1, done.stderr
    assert "-> return total / by" in done.stdout
    assert "(6, 0)" in done.stdout


def test_dagexec_debug_refuses_a_tampered_bundle_before_running_anything(bundle_of_a_gone_module, tmp_path):
    data = bundle_of_a_gone_module.read_bytes()
    bundle_of_a_gone_module.write_bytes(_tamper(data))
    done = cli("debug", str(bundle_of_a_gone_module), "--no-pdb", cwd=tmp_path / "elsewhere")
    assert done.returncode == 2
    assert done.stderr == (
        f"dagexec: error: cannot open {str(bundle_of_a_gone_module)!r}: the payload does not match its "
        "SHA-256 checksum (the file is corrupted)\n"
    )


def test_a_bundle_header_pickles_nothing(tmp_path):
    path, mark = marked_bundle(tmp_path)
    header = bundle_mod.read_bundle_header(path)
    assert header["node"] == "n" and header["verified"] is False
    assert not mark.exists()
    assert pickle.loads(pickle.dumps(header)) == header


def test_the_html_report_names_the_bundle(tmp_path):
    result = divide_graph().run(n=3, by=0, executor="serial", bundles=tmp_path / "b", raise_on_failure=False)
    result.to_html(tmp_path / "report.html")
    page = (tmp_path / "report.html").read_text()
    assert '<dt>repro bundle</dt><dd><pre id="detail-bundle">' in page
    assert json.dumps(str(tmp_path / "b" / "g--divide.dxbundle")) in page.replace("\\/", "/")


def test_dagexec_inspect_shows_a_bundles_header(bundle_of_a_gone_module, tmp_path):
    done = cli("inspect", str(bundle_of_a_gone_module), cwd=tmp_path / "elsewhere")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[:2] == ["node 'divide' of graph 'g', attempt 1: failed", "  builtins.ZeroDivisionError: division by zero"]
    assert lines[3:5] == ["needs: nothing installed", "by value: pipe_gone"]
    assert lines[5].endswith(" divide: xs=[0, 1, 2, 3], by=0, total=6")
    bundle_of_a_gone_module.write_bytes(_tamper(bundle_of_a_gone_module.read_bytes()))
    refused = cli("inspect", str(bundle_of_a_gone_module), cwd=tmp_path / "elsewhere")
    assert refused.returncode == 2 and "the payload does not match its SHA-256 checksum" in refused.stderr
