"""Compiled graphs as files: plan.save, dagexec.load, dagexec.read_header (DESIGN §6).

Every plan built here holds a constant whose unpickling creates a marker file, so a
test can prove that a refused file executed nothing: the marker must not exist.
Damaged and edited files are made from real saved files, with ``pack``/``unpack``
(the format's own writer and reader) where a header field must change.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import os
import pickle
import struct
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import cloudpickle
import pytest

import dagexec as dx
from dagexec._artifact import pack, unpack
from dagexec.plan import portable as _portable

PY = f"{sys.version_info[0]}.{sys.version_info[1]}"


# -- tasks and constants (this module travels by value inside the artifacts) ------------


@dx.task
def inc(x: int) -> int:
    return x + 1


@dx.task
def add(a: int, b: int) -> int:
    return a + b


@dx.task
def tag(value: Any, label: Any) -> Any:
    return value


@dx.task
def close_enough(x: float) -> bool:
    return bool(x == pytest.approx(1.0))


def touch(path: str) -> Marker:
    """Create ``path``: called by the unpickler when it rebuilds a ``Marker``."""
    with open(path, "w"):
        pass
    return Marker(Path(path))


class Marker:
    """A constant whose unpickling creates a file."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self) -> tuple[Any, ...]:
        return (touch, (self.path,))


class FailsLater:
    """A constant that pickles at compile time and refuses once ``armed``."""

    armed = False

    def __reduce__(self) -> tuple[Any, ...]:
        if FailsLater.armed:
            raise RuntimeError("refusing to pickle")
        return (FailsLater, ())


@dataclasses.dataclass(frozen=True)
class Scale:
    factor: int


@dx.section
def twice(x: int) -> int:
    return inc(inc(x))


def build(marker: Path, name: str = "art") -> dx.CompiledGraph:
    with dx.Graph(name) as graph:
        x = graph.input("x", int, default=1)
        a = twice(x)
        graph.output(add(tag(a, Marker(marker)), inc(x)), name="total")
    return graph.compile()


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    return tmp_path / "marker"


@pytest.fixture
def saved(tmp_path: Path, marker: Path) -> Path:
    path = tmp_path / "plan.dagx"
    build(marker).save(path)
    return path


def edit(
    src: Path, dst: Path, change: Any = None, key: bytes | None = None, payload: bytes | None = None
) -> Path:
    """Write ``dst``: ``src``'s header changed by ``change(header)``, then packed again."""
    header, body, _ = unpack(src.read_bytes(), str(src))
    if change is not None:
        change(header)
    dst.write_bytes(pack(header, bytes(body) if payload is None else payload, key))
    return dst


def refused(path: Path, marker: Path, **kwargs: Any) -> dx.ArtifactError:
    with pytest.raises(dx.ArtifactError) as info:
        dx.load(path, **kwargs)
    assert not marker.exists(), "a refused file was unpickled"
    assert info.value.path == str(path)
    return info.value


@pytest.fixture(autouse=True)
def _no_key_in_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DAGEXEC_KEY", raising=False)


# -- round trips --------------------------------------------------------------------------


def test_round_trip_gives_equal_outputs_keys_and_fingerprint(saved: Path, marker: Path) -> None:
    plan = build(marker)
    loaded = dx.load(saved)
    assert marker.exists()  # the marker constant works: loading does unpickle it
    assert isinstance(loaded, dx.CompiledGraph)
    assert loaded.fingerprint == plan.fingerprint
    assert loaded.keys == plan.keys == ("twice/inc", "twice/inc-1", "tag", "inc", "add")
    assert (
        loaded.run(x=5, executor="serial").outputs
        == plan.run(x=5, executor="serial").outputs
        == {"total": 13}
    )
    assert loaded.to_dict() == plan.to_dict()


def test_round_trip_of_closures_nested_functions_dataclasses_and_option_copies(tmp_path: Path) -> None:
    def make_scaler(k: int) -> Any:
        @dx.task
        def scale(x: int, s: Scale) -> int:
            return x * s.factor * k

        return scale

    def nested(x: int) -> int:
        def helper(y: int) -> int:
            return y - 1

        return helper(x)

    with dx.Graph("shapes") as graph:
        x = graph.input("x", int)
        a = make_scaler(10)(x, Scale(2))
        b = make_scaler(100)(x, Scale(3))
        c = dx.task(nested)(inc.options(name="bump")(a))
        graph.output(add(add(b, c), 0), name="out")
    plan = graph.compile()
    plan.save(tmp_path / "shapes.dagx")
    loaded = dx.load(tmp_path / "shapes.dagx")
    assert loaded.keys == plan.keys
    assert loaded.fingerprint == plan.fingerprint
    assert loaded.run(x=2, executor="serial").output == plan.run(x=2, executor="serial").output == 640


def test_signed_round_trip_with_key_argument_and_environment(
    tmp_path: Path, marker: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan = build(marker)
    plan.save(tmp_path / "a.dagx", key=b"secret")
    assert dx.load(tmp_path / "a.dagx", key="secret").run(executor="serial").output == 5
    monkeypatch.setenv("DAGEXEC_KEY", "secret")
    plan.save(tmp_path / "b.dagx")
    assert dx.read_header(tmp_path / "b.dagx")["signed"] is True
    assert dx.load(tmp_path / "b.dagx").run(executor="serial").output == 5
    assert dx.load(tmp_path / "a.dagx").fingerprint == plan.fingerprint


def test_signed_file_is_refused_without_a_key_and_not_unpickled(tmp_path: Path, marker: Path) -> None:
    path = tmp_path / "signed.dagx"
    build(marker).save(path, key=b"secret")
    with pytest.raises(dx.ArtifactError) as info:
        dx.load(path)
    assert str(info.value) == (
        f"cannot load {str(path)!r}: it is signed and no key was given to verify it "
        "(pass key= or set DAGEXEC_KEY)"
    )
    assert info.value.reason == "key-required"
    assert not marker.exists()
    assert dx.load(path, key=b"secret").name == "art"


def test_saving_leaves_the_pickle_by_value_registry_as_it_was(tmp_path: Path, marker: Path) -> None:
    before = sorted(cloudpickle.list_registry_pickle_by_value())
    build(marker).save(tmp_path / "a.dagx")
    assert sorted(cloudpickle.list_registry_pickle_by_value()) == before


# -- damaged files ------------------------------------------------------------------------


def _flip(data: bytes, offset: int) -> bytes:
    return data[:offset] + bytes([data[offset] ^ 0x01]) + data[offset + 1 :]


def _layout(data: bytes) -> tuple[int, int]:
    """(end of header digest, start of payload) of an unsigned artifact."""
    (hlen,) = struct.unpack_from(">I", data, 6)
    end = 10 + hlen + 32
    return end, end


def test_empty_file_is_refused(tmp_path: Path, marker: Path) -> None:
    path = tmp_path / "empty.dagx"
    path.write_bytes(b"")
    err = refused(path, marker)
    assert (err.reason, str(err)) == ("empty", f"cannot load {str(path)!r}: the file is empty")


@pytest.mark.parametrize(
    "where", ["in-magic", "in-prefix", "in-header", "in-digest", "in-payload", "last-byte"]
)
def test_truncated_file_is_refused(saved: Path, marker: Path, where: str) -> None:
    data = saved.read_bytes()
    digest_end, payload_start = _layout(data)
    cut, need = {
        "in-magic": (2, "at least 10"),
        "in-prefix": (7, "at least 10"),
        "in-header": (30, f"at least {digest_end}"),
        "in-digest": (digest_end - 5, f"at least {digest_end}"),
        "in-payload": ((payload_start + len(data)) // 2, str(len(data))),
        "last-byte": (len(data) - 1, str(len(data))),
    }[where]
    saved.write_bytes(data[:cut])
    err = refused(saved, marker)
    assert (err.reason, str(err)) == (
        "truncated",
        f"cannot load {str(saved)!r}: the file is truncated: it has {cut} bytes but needs {need}",
    )


def test_flipped_payload_byte_is_refused(saved: Path, marker: Path) -> None:
    data = saved.read_bytes()
    saved.write_bytes(_flip(data, len(data) - 20))
    err = refused(saved, marker)
    assert (err.reason, str(err)) == (
        "corrupted",
        f"cannot load {str(saved)!r}: the payload does not match its SHA-256 checksum (the file is corrupted)",
    )


@pytest.mark.parametrize("offset", [12, 60, -1])
def test_flipped_header_byte_is_refused(saved: Path, marker: Path, offset: int) -> None:
    data = saved.read_bytes()
    digest_end, _ = _layout(data)
    saved.write_bytes(_flip(data, digest_end - 33 if offset == -1 else offset))
    err = refused(saved, marker)
    assert (err.reason, str(err)) == (
        "corrupted",
        f"cannot load {str(saved)!r}: the header does not match its SHA-256 checksum (the file is corrupted)",
    )


def test_bytes_after_the_payload_are_refused(saved: Path, marker: Path) -> None:
    saved.write_bytes(saved.read_bytes() + b"\x00\x00\x00")
    err = refused(saved, marker)
    assert (err.reason, str(err)) == (
        "corrupted",
        f"cannot load {str(saved)!r}: the file has 3 bytes after the payload (the file is corrupted)",
    )


@pytest.mark.parametrize("kind", ["pickle", "text", "zip"])
def test_foreign_file_is_refused(tmp_path: Path, marker: Path, kind: str) -> None:
    path = tmp_path / "foreign.dagx"
    path.write_bytes(
        {
            "pickle": pickle.dumps(Marker(marker)),
            "text": b"DAG: not really\n",
            "zip": b"PK\x03\x04" + bytes(40),
        }[kind]
    )
    err = refused(path, marker)
    assert (err.reason, str(err)) == (
        "foreign",
        f"cannot load {str(path)!r}: not a dagexec artifact (it does not start with b'DAGX')",
    )


@pytest.mark.parametrize("version", [0, 2, 65535])
def test_other_format_version_is_refused(saved: Path, marker: Path, version: int) -> None:
    data = saved.read_bytes()
    saved.write_bytes(data[:4] + struct.pack(">H", version) + data[6:])
    err = refused(saved, marker)
    assert (err.reason, str(err)) == (
        "format-version",
        f"cannot load {str(saved)!r}: it is in artifact format {version}, and this dagexec reads format 1; "
        "load it with the dagexec version that saved it, or save the plan again",
    )


def test_other_python_minor_version_is_refused(saved: Path, marker: Path, tmp_path: Path) -> None:
    path = edit(saved, tmp_path / "old.dagx", lambda h: h.update(python_version="2.7"))
    err = refused(path, marker)
    assert (err.reason, str(err)) == (
        "python-version",
        f"cannot load {str(path)!r}: it was saved by CPython 2.7 and this is CPython {PY} "
        "(pickled code only loads in the same Python minor version); load it with CPython 2.7 "
        "or save the plan again with this one",
    )


def test_unsigned_file_is_refused_when_a_key_is_set(
    saved: Path, marker: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    message = (
        f"cannot load {str(saved)!r}: the artifact is not signed, but a key is set (key= or DAGEXEC_KEY); "
        "save the plan again with that key to sign it"
    )
    err = refused(saved, marker, key=b"secret")
    assert (err.reason, str(err)) == ("unsigned", message)
    monkeypatch.setenv("DAGEXEC_KEY", "secret")
    err = refused(saved, marker)
    assert (err.reason, str(err)) == ("unsigned", message)


def test_wrongly_signed_file_is_refused(
    tmp_path: Path, marker: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "signed.dagx"
    build(marker).save(path, key=b"right")
    message = (
        f"cannot load {str(path)!r}: the signature does not match the key "
        "(a different key signed it, or the file was changed after signing)"
    )
    err = refused(path, marker, key=b"wrong")
    assert (err.reason, str(err)) == ("bad-signature", message)
    monkeypatch.setenv("DAGEXEC_KEY", "wrong")
    err = refused(path, marker)
    assert (err.reason, str(err)) == ("bad-signature", message)


def test_resigned_payload_from_another_file_is_refused(tmp_path: Path, marker: Path) -> None:
    # a file whose checksums are all right, signed with a key the loader does not use
    good = tmp_path / "good.dagx"
    build(marker).save(good, key=b"right")
    forged = edit(good, tmp_path / "forged.dagx", lambda h: h.update(graph="other"), key=b"attacker")
    err = refused(forged, marker, key=b"right")
    assert err.reason == "bad-signature"


def test_missing_requirement_is_refused_naming_it(saved: Path, marker: Path, tmp_path: Path) -> None:
    need = {"distribution": "dagexec-no-such-dist", "version": "1.2.3", "modules": ["dagexec_no_such_module"]}
    path = edit(saved, tmp_path / "needs.dagx", lambda h: h["requirements"].append(need))
    err = refused(path, marker)
    assert (err.reason, str(err)) == (
        "requirements",
        f"cannot load {str(path)!r}: it needs dagexec-no-such-dist==1.2.3 (module dagexec_no_such_module), "
        "not installed here; install it and load it again",
    )
    assert dx.read_header(path)["requirements"] == [need]
    assert not marker.exists()


def test_unreadable_file_is_refused(tmp_path: Path, marker: Path) -> None:
    path = tmp_path / "nowhere.dagx"
    err = refused(path, marker)
    assert (err.reason, str(err)) == ("unreadable", f"cannot load {str(path)!r}: No such file or directory")
    assert isinstance(err.__cause__, FileNotFoundError)


def test_payload_that_is_not_a_plan_or_does_not_unpickle_is_refused(saved: Path, tmp_path: Path) -> None:
    other = edit(saved, tmp_path / "other.dagx", payload=pickle.dumps([1, 2]))
    with pytest.raises(dx.ArtifactError) as info:
        dx.load(other)
    assert (info.value.reason, str(info.value)) == (
        "not-a-plan",
        f"cannot load {str(other)!r}: its payload is a list, not a CompiledGraph",
    )
    broken = edit(saved, tmp_path / "broken.dagx", payload=b"\x80\x05K")
    with pytest.raises(dx.ArtifactError) as info:
        dx.load(broken)
    assert (info.value.reason, str(info.value)) == (
        "unpickle-failed",
        f"cannot load {str(broken)!r}: unpickling the plan failed: UnpicklingError: pickle data was truncated",
    )


# -- read_header ----------------------------------------------------------------------------


def test_read_header_describes_the_plan_without_unpickling(saved: Path, marker: Path) -> None:
    header = dx.read_header(saved)
    assert not marker.exists()
    plan = build(marker)
    manifest = plan.to_dict()
    payload_length = header["payload_length"]
    assert header == {
        "format_version": 1,
        "dagexec_version": dx.__version__,
        "python_version": PY,
        "python_implementation": sys.implementation.name,
        "cloudpickle_version": cloudpickle.__version__,
        "graph": "art",
        "fingerprint": plan.fingerprint,
        "node_count": 5,
        "requirements": [],  # no code in this plan refers to an installed package
        "by_value": [__name__],
        "manifest": manifest,
        "payload_length": payload_length,
        "payload_sha256": header["payload_sha256"],
        "signed": False,
        "verified": False,
    }
    assert saved.stat().st_size > payload_length > 0
    assert json.loads(json.dumps(header)) == header


def test_read_header_checks_what_load_checks(saved: Path, marker: Path, tmp_path: Path) -> None:
    data = saved.read_bytes()
    saved.write_bytes(_flip(data, len(data) - 1))
    with pytest.raises(dx.ArtifactError) as info:
        dx.read_header(saved)
    assert info.value.reason == "corrupted"
    signed = tmp_path / "signed.dagx"
    build(marker).save(signed, key=b"k")
    assert dx.read_header(signed)["verified"] is False
    assert dx.read_header(signed, key=b"k")["verified"] is True
    with pytest.raises(dx.ArtifactError) as info:
        dx.read_header(signed, key=b"other")
    assert info.value.reason == "bad-signature"
    assert not marker.exists()


def test_requirements_list_installed_packages_the_code_refers_to(tmp_path: Path, marker: Path) -> None:
    with dx.Graph("approx") as graph:
        graph.output(close_enough(1.0))
    plan = graph.compile()
    plan.save(tmp_path / "a.dagx")
    assert dx.read_header(tmp_path / "a.dagx")["requirements"] == [
        {"distribution": "pytest", "version": importlib.metadata.version("pytest"), "modules": ["pytest"]}
    ]
    assert dx.load(tmp_path / "a.dagx").run(executor="serial").output is True


# -- writing ---------------------------------------------------------------------------------


def test_non_portable_plan_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    lock = threading.Lock()

    @dx.task
    def locked(x: int) -> int:
        with lock:
            return x

    with dx.Graph("locks") as graph:
        locked(1)
    plan = graph.compile()
    with pytest.raises(dx.GraphError) as info:
        plan.save(tmp_path / "locks.dagx")
    (problem,) = plan.pickle_problems
    assert str(info.value) == problem.message
    assert sorted(os.listdir(tmp_path)) == []


def test_overwrite_is_atomic_and_leaves_no_temporary_file(tmp_path: Path, marker: Path) -> None:
    path = tmp_path / "plan.dagx"
    build(marker, "first").save(path)
    build(marker, "second").save(path)
    assert sorted(os.listdir(tmp_path)) == ["plan.dagx"]
    assert dx.load(path).name == "second"


def test_failed_save_leaves_the_old_file_intact(tmp_path: Path, marker: Path) -> None:
    path = tmp_path / "plan.dagx"
    build(marker).save(path)
    old = path.read_bytes()
    with dx.Graph("later") as graph:
        tag(1, FailsLater())
    plan = graph.compile()
    before = sorted(cloudpickle.list_registry_pickle_by_value())
    FailsLater.armed = True
    try:
        with pytest.raises(dx.ArtifactError) as info:
            plan.save(path)
    finally:
        FailsLater.armed = False
    assert (info.value.reason, str(info.value)) == (
        "unpicklable",
        f"cannot save graph 'later' to {str(path)!r}: node 'tag' cannot be pickled by value: "
        "RuntimeError: refusing to pickle",
    )
    assert path.read_bytes() == old
    assert sorted(os.listdir(tmp_path)) == ["plan.dagx"]
    assert sorted(cloudpickle.list_registry_pickle_by_value()) == before


def test_failed_rename_removes_the_temporary_file(tmp_path: Path, marker: Path) -> None:
    target = tmp_path / "taken"
    target.mkdir()
    (target / "keep").write_text("x")
    with pytest.raises(OSError):
        build(marker).save(target)
    assert sorted(os.listdir(tmp_path)) == ["taken"]
    assert sorted(os.listdir(target)) == ["keep"]


def test_bad_keys_are_refused(tmp_path: Path, marker: Path) -> None:
    plan = build(marker)
    with pytest.raises(TypeError) as type_error:
        plan.save(tmp_path / "a.dagx", key=123)  # type: ignore[arg-type]
    assert str(type_error.value) == "key must be bytes or str, got int"
    with pytest.raises(dx.SigningKeyError) as value_error:
        plan.save(tmp_path / "a.dagx", key=b"")
    assert isinstance(value_error.value, (dx.DagexecError, ValueError))
    assert str(value_error.value) == (
        f"cannot save graph 'art' to {str(tmp_path / 'a.dagx')!r}: the key is empty; "
        "pass the signing key, or key=None"
    )
    assert value_error.value.source == "key="
    assert sorted(os.listdir(tmp_path)) == []


def test_module_kinds() -> None:
    assert _portable.module_kind(__name__) == "user"
    assert _portable.module_kind("json") == "stdlib"
    assert _portable.module_kind("pytest") == "installed"
    assert _portable.module_kind("dagexec._plan") == "other"
    assert _portable.module_kind("sys") == "other"


# -- another process, another folder ---------------------------------------------------------

USER_MODULE = """
import dagexec as dx

SUFFIX = "!"


def shout(text):
    return text.upper() + SUFFIX


@dx.task
def greet(name: str) -> str:
    return shout("hello " + name)


@dx.task
def length(text: str) -> int:
    return len(text)


def make():
    with dx.Graph("greeting") as graph:
        name = graph.input("name", str, default="world")
        text = greet(name)
        graph.output(text, name="text")
        graph.output(length(text), name="length")
    return graph.compile()
"""

RUNNER = """
import json, sys
import dagexec as dx
try:
    import {module}
except ModuleNotFoundError:
    importable = False
else:
    importable = True
plan = dx.load(sys.argv[1])
out = {{"importable": importable, "fingerprint": plan.fingerprint}}
for executor in sys.argv[2:]:
    out[executor] = plan.run(name="ci", executor=executor).outputs
print(json.dumps(out))
"""


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: os.environ[k] for k in ("PATH", "HOME", "SYSTEMROOT", "LANG") if k in os.environ}
    env.update(extra)
    return env


def _run_elsewhere(cwd: Path, artifact: Path, module: str, *executors: str, **env: str) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-c", RUNNER.format(module=module), str(artifact), *executors],
        cwd=cwd,
        env=_clean_env(**env),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


def test_plan_from_a_folder_module_runs_where_that_module_cannot_be_imported(tmp_path: Path) -> None:
    src, elsewhere = tmp_path / "src", tmp_path / "elsewhere"
    src.mkdir()
    elsewhere.mkdir()
    (src / "greetmod_artifact.py").write_text(textwrap.dedent(USER_MODULE))
    sys.path.insert(0, str(src))
    try:
        import greetmod_artifact  # type: ignore[import-not-found]

        plan = greetmod_artifact.make()
        plan.save(tmp_path / "greet.dagx", key=b"ci-key")
        header = dx.read_header(tmp_path / "greet.dagx")
    finally:
        sys.path.remove(str(src))
        sys.modules.pop("greetmod_artifact", None)
    assert header["by_value"] == ["greetmod_artifact"]
    assert header["requirements"] == []
    out = _run_elsewhere(
        elsewhere, tmp_path / "greet.dagx", "greetmod_artifact", "serial", "loky", DAGEXEC_KEY="ci-key"
    )
    expected = {"text": "HELLO CI!", "length": 9}
    assert out == {"importable": False, "fingerprint": plan.fingerprint, "serial": expected, "loky": expected}


def test_plan_saved_from_a_main_script_runs_in_another_folder(tmp_path: Path) -> None:
    here, elsewhere = tmp_path / "here", tmp_path / "elsewhere"
    here.mkdir()
    elsewhere.mkdir()
    script = here / "make_plan.py"
    script.write_text(textwrap.dedent(USER_MODULE) + "\nmake().save('main.dagx')\n")
    subprocess.run([sys.executable, str(script)], cwd=here, env=_clean_env(), check=True, timeout=120)
    out = _run_elsewhere(elsewhere, here / "main.dagx", "make_plan", "threads")
    assert out["importable"] is False
    assert out["threads"] == {"text": "HELLO CI!", "length": 9}
