"""Keys, signatures and safe reads of artifacts and cache entries (DESIGN §6, §7, §12).

Every value or plan here holds a ``Marker``, whose unpickling creates a file: a refused
file or entry must leave no marker behind, which proves nothing in it was unpickled.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import signal
import struct
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

import dagexec as dx
from dagexec._artifact import unpack as unpack_artifact
from dagexec.cache.store import CacheStore, key_problem

ROOT = Path(__file__).resolve().parent.parent
K1, K2 = (hashlib.sha256(s).hexdigest() for s in (b"one", b"two"))


def touch(path: str) -> Marker:
    """Create ``path``: called by the unpickler when it rebuilds a ``Marker``."""
    with open(path, "w"):
        pass
    return Marker(path)


class Marker:
    """A value whose unpickling creates a file."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (touch, (self.path,))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Marker) and other.path == self.path

    def __hash__(self) -> int:
        return hash(self.path)


@dx.task
def keep(value: Any) -> Any:
    return value


@dx.task
def inc(x: int) -> int:
    return x + 1


def build(marker: Path, name: str = "signed") -> dx.CompiledGraph:
    with dx.Graph(name) as graph:
        x = graph.input("x", int, default=1)
        keep(Marker(str(marker)))
        graph.output(inc(x), name="out")
    return graph.compile()


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    return tmp_path / "marker"


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DAGEXEC_KEY", raising=False)
    monkeypatch.delenv("DAGEXEC_REQUIRE_SIGNED", raising=False)


def refused(path: Path, marker: Path, **kwargs: Any) -> dx.ArtifactError:
    with pytest.raises(dx.ArtifactError) as info:
        dx.load(path, **kwargs)
    assert not marker.exists(), "a refused file was unpickled"
    assert info.value.path == str(path)
    return info.value


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage() for r in caplog.records if r.name == "dagexec.cache" and r.levelno == logging.WARNING
    ]


def python(code: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh Python that imports this dagexec; fails the test past 60 s."""
    full = {k: os.environ[k] for k in ("PATH", "HOME", "LANG") if k in os.environ}
    full["PYTHONPATH"] = str(ROOT)
    full.update(env or {})
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        env=full,
        capture_output=True,
        text=True,
        timeout=60,
    )


# -- an empty key is an error, never "no key" ----------------------------------------------


def test_an_empty_dagexec_key_refuses_to_load_even_an_unsigned_file(
    tmp_path: Path, marker: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "plan.dagx"
    build(marker).save(path)
    monkeypatch.setenv("DAGEXEC_KEY", "")
    message = (
        f"cannot load {str(path)!r}: DAGEXEC_KEY is set but empty (what a secret that is not available "
        "expands to); set it to the signing key, or unset it"
    )
    err = refused(path, marker)
    assert (err.reason, str(err)) == ("empty-key", message)
    assert isinstance(err.__cause__, dx.SigningKeyError)
    with pytest.raises(dx.ArtifactError) as info:
        dx.read_header(path)
    assert (info.value.reason, str(info.value)) == ("empty-key", message)
    monkeypatch.delenv("DAGEXEC_KEY")
    assert dx.load(path).name == "signed"


def test_an_empty_key_argument_refuses_to_load(tmp_path: Path, marker: Path) -> None:
    path = tmp_path / "plan.dagx"
    build(marker).save(path)
    for key in (b"", ""):
        err = refused(path, marker, key=key)
        assert (err.reason, str(err)) == (
            "empty-key",
            f"cannot load {str(path)!r}: the key is empty; pass the signing key, or key=None",
        )


def test_an_empty_dagexec_key_refuses_to_save(
    tmp_path: Path, marker: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DAGEXEC_KEY", "")
    path = tmp_path / "plan.dagx"
    with pytest.raises(dx.SigningKeyError) as info:
        build(marker).save(path)
    assert isinstance(info.value, dx.DagexecError)
    assert str(info.value) == (
        f"cannot save graph 'signed' to {str(path)!r}: DAGEXEC_KEY is set but empty (what a secret that "
        "is not available expands to); set it to the signing key, or unset it"
    )
    assert info.value.source == "DAGEXEC_KEY"
    assert sorted(os.listdir(tmp_path)) == []


def test_an_empty_key_in_a_subprocess_environment_refuses_what_would_run(
    tmp_path: Path, marker: Path
) -> None:
    path = tmp_path / "plan.dagx"
    build(marker).save(path)
    proc = python(
        """
        import sys, dagexec as dx
        try:
            dx.load(sys.argv[1])
        except dx.ArtifactError as e:
            print(e.reason)
        """,
        str(path),
        env={"DAGEXEC_KEY": ""},
    )
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "empty-key\n", "")
    assert not marker.exists()


# -- requiring signatures -----------------------------------------------------------------------


def test_require_signed_refuses_an_unsigned_file(tmp_path: Path, marker: Path) -> None:
    path = tmp_path / "plan.dagx"
    build(marker).save(path)
    err = refused(path, marker, require_signed=True)
    assert (err.reason, str(err)) == (
        "unsigned",
        f"cannot load {str(path)!r}: the artifact is not signed, and only signed files are loaded here "
        "(require_signed=True, --require-signed or DAGEXEC_REQUIRE_SIGNED); "
        "save the plan with a key (key= or DAGEXEC_KEY) to sign it",
    )


def test_require_signed_loads_a_file_signed_with_the_key_and_refuses_it_without(
    tmp_path: Path, marker: Path
) -> None:
    path = tmp_path / "plan.dagx"
    build(marker).save(path, key=b"k")
    err = refused(path, marker, require_signed=True)
    assert err.reason == "key-required"
    assert dx.load(path, key=b"k", require_signed=True).run(executor="serial").output == 2


@pytest.mark.parametrize(
    ("value", "refuses"),
    [
        ("1", True),
        ("yes", True),
        ("TRUE", True),
        ("maybe", True),
        ("0", False),
        ("false", False),
        ("", False),
    ],
)
def test_dagexec_require_signed_applies_to_every_load_and_fails_closed(
    tmp_path: Path, marker: Path, monkeypatch: pytest.MonkeyPatch, value: str, refuses: bool
) -> None:
    path = tmp_path / "plan.dagx"
    build(marker).save(path)
    monkeypatch.setenv("DAGEXEC_REQUIRE_SIGNED", value)
    if refuses:
        # the variable wins over the argument: a runner's setting cannot be turned off by code
        assert refused(path, marker, require_signed=False).reason == "unsigned"
    else:
        assert dx.load(path).name == "signed"


def test_read_header_shows_an_unsigned_file_whatever_is_required(
    tmp_path: Path, marker: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "plan.dagx"
    build(marker).save(path)
    monkeypatch.setenv("DAGEXEC_REQUIRE_SIGNED", "1")
    header = dx.read_header(path)
    assert (header["signed"], header["verified"], header["graph"]) == (False, False, "signed")


# -- what a signature does not bind: pin the plan ----------------------------------------------


def test_an_older_signed_file_is_accepted_by_its_signature_and_refused_by_a_pin(
    tmp_path: Path, marker: Path
) -> None:
    old, new = tmp_path / "old.dagx", tmp_path / "etl.dagx"
    older = build(marker, "etl")
    older.save(old, key=b"k")
    with dx.Graph("etl") as graph:
        graph.output(inc(inc(graph.input("x", int, default=1))), name="out")
    current = graph.compile()
    current.save(new, key=b"k")
    old.replace(new)  # an attacker copies the older, validly signed file over the new one
    assert dx.read_header(new, key=b"k")["verified"] is True
    err = refused(new, marker, key=b"k", expect_fingerprint=current.fingerprint)
    assert (err.reason, str(err)) == (
        "unexpected-plan",
        f"cannot load {str(new)!r}: it holds the plan of fingerprint {older.fingerprint}, "
        f"and fingerprint {current.fingerprint} is expected",
    )
    assert dx.load(new, key=b"k", expect_graph="etl").name == "etl"  # the name alone does not tell


def test_expect_graph_refuses_a_signed_file_that_holds_another_graph(tmp_path: Path, marker: Path) -> None:
    path = tmp_path / "etl.dagx"
    build(marker, "cleanup").save(path, key=b"k")
    err = refused(path, marker, key=b"k", expect_graph="etl")
    assert (err.reason, str(err)) == (
        "unexpected-plan",
        f"cannot load {str(path)!r}: it holds graph 'cleanup', and graph 'etl' is expected",
    )


def test_expected_plan_loads_and_a_bad_fingerprint_is_a_value_error(tmp_path: Path, marker: Path) -> None:
    path = tmp_path / "plan.dagx"
    plan = build(marker)
    plan.save(path, key=b"k")
    loaded = dx.load(path, key=b"k", expect_graph="signed", expect_fingerprint=plan.fingerprint.upper())
    assert loaded.fingerprint == plan.fingerprint
    with pytest.raises(ValueError) as info:
        dx.load(path, key=b"k", expect_fingerprint="abc")
    assert str(info.value) == "expect_fingerprint must be 64 hex digits (a plan's fingerprint), got 'abc'"


# -- only regular files, bounded reads -------------------------------------------------------


def test_load_refuses_a_fifo_at_once(tmp_path: Path) -> None:
    fifo = tmp_path / "plan.dagx"
    os.mkfifo(fifo)
    proc = python(
        """
        import sys, dagexec as dx
        try:
            dx.load(sys.argv[1])
        except dx.ArtifactError as e:
            print(e.reason)
            print(e)
        """,
        str(fifo),
    )
    assert (proc.returncode, proc.stderr) == (0, "")
    assert proc.stdout == (
        f"not-regular\ncannot load {str(fifo)!r}: it is a named pipe (FIFO), not a regular file "
        "(only regular files are read)\n"
    )


def test_load_refuses_a_device_without_reading_it(tmp_path: Path) -> None:
    path = tmp_path / "zero.dagx"
    path.symlink_to("/dev/zero")  # read without bound, it would never end
    proc = python(
        """
        import resource, sys, dagexec as dx
        # a regression must fail this test, not exhaust the machine's memory
        resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))
        try:
            dx.load(sys.argv[1])
        except dx.ArtifactError as e:
            print(e.reason)
            print(e)
        """,
        str(path),
    )
    assert (proc.returncode, proc.stderr) == (0, "")
    assert proc.stdout == (
        f"not-regular\ncannot load {str(path)!r}: it is a character device, not a regular file "
        "(only regular files are read)\n"
    )


def test_load_refuses_a_folder(tmp_path: Path, marker: Path) -> None:
    path = tmp_path / "folder.dagx"
    path.mkdir()
    err = refused(path, marker)
    assert (err.reason, str(err)) == (
        "not-regular",
        f"cannot load {str(path)!r}: it is a folder, not a regular file (only regular files are read)",
    )


def test_a_header_claiming_more_bytes_than_the_file_holds_is_truncated(tmp_path: Path, marker: Path) -> None:
    path = tmp_path / "plan.dagx"
    build(marker).save(path)
    header, payload, _ = unpack_artifact(path.read_bytes())
    text = json.dumps({**header, "payload_length": 10**15}, separators=(",", ":")).encode()
    forged = struct.pack(">4sHI", b"DAGX", 1, len(text)) + text
    forged += hashlib.sha256(forged).digest() + bytes(payload)
    path.write_bytes(forged)
    err = refused(path, marker)
    assert (err.reason, str(err)) == (
        "truncated",
        f"cannot load {str(path)!r}: the file is truncated: it has {len(forged)} bytes "
        f"but needs {len(forged) - len(payload) + 10**15}",
    )


# -- signed cache entries ----------------------------------------------------------------------


def entry_file(store: CacheStore, key: str) -> Path:
    return store.path / "values" / key[:2] / key[2:]


def test_a_store_with_a_key_refuses_an_unsigned_entry_before_unpickling(
    tmp_path: Path, marker: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert CacheStore(tmp_path).put(K1, Marker(str(marker))) is True
    store = CacheStore(tmp_path, key=b"team")
    caplog.set_level(logging.WARNING, "dagexec.cache")
    assert store.get(K1) == (False, None)
    assert not marker.exists()
    assert warnings(caplog) == [
        f"removed cache entry {entry_file(store, K1)}: it is not signed, and the store has a key"
    ]
    assert store.put(K1, 41) is True
    assert store.get(K1) == (True, 41)


def test_a_store_with_a_key_refuses_an_entry_signed_with_another(
    tmp_path: Path, marker: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert CacheStore(tmp_path, key="theirs").put(K1, Marker(str(marker))) is True
    caplog.set_level(logging.WARNING, "dagexec.cache")
    assert CacheStore(tmp_path, key="ours").get(K1) == (False, None)
    assert not marker.exists()
    assert warnings(caplog) == [
        f"removed cache entry {entry_file(CacheStore(tmp_path), K1)}: the signature does not match "
        "the store's key (a different key signed it, or the file was changed after signing)"
    ]


def test_a_signed_entry_moved_under_another_key_is_a_miss(
    tmp_path: Path, marker: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = CacheStore(tmp_path, key=b"team")
    assert store.put(K1, Marker(str(marker))) is True
    entry_file(store, K2).parent.mkdir(parents=True, exist_ok=True)
    entry_file(store, K1).replace(entry_file(store, K2))
    caplog.set_level(logging.WARNING, "dagexec.cache")
    assert store.get(K2) == (False, None)
    assert not marker.exists()
    assert warnings(caplog) == [
        f"removed cache entry {entry_file(store, K2)}: it holds the entry of key {K1!r}"
    ]


def test_the_store_takes_its_key_from_dagexec_key_and_signs_entries(
    tmp_path: Path, marker: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DAGEXEC_KEY", "from-env")
    store = CacheStore(tmp_path)
    assert (store.signed, repr(store)) == (True, f"CacheStore({str(tmp_path)!r}, signed)")
    assert store.put(K1, [1, 2]) is True
    data = entry_file(store, K1).read_bytes()
    (hlen,) = struct.unpack_from(">I", data, 6)
    assert json.loads(data[10 : 10 + hlen])["signed"] is True
    assert CacheStore(tmp_path, key="from-env").get(K1) == (True, [1, 2])
    assert CacheStore(tmp_path, key="other").get(K1) == (False, None)
    monkeypatch.delenv("DAGEXEC_KEY")
    keyless = CacheStore(tmp_path)
    assert keyless.signed is False
    assert keyless.put(K2, "plain") is True
    assert keyless.get(K2) == (True, "plain")


def test_a_keyless_store_reads_a_signed_entry(tmp_path: Path) -> None:
    CacheStore(tmp_path, key=b"k").put(K1, {"a": 1})
    assert CacheStore(tmp_path).get(K1) == (True, {"a": 1})


def test_an_empty_key_or_required_signatures_without_a_key_refuse_to_open_a_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(dx.SigningKeyError) as info:
        CacheStore(tmp_path, key=b"")
    assert str(info.value) == "the key is empty; pass the signing key, or key=None"
    monkeypatch.setenv("DAGEXEC_KEY", "")
    with pytest.raises(dx.SigningKeyError) as info:
        CacheStore(tmp_path)
    assert info.value.source == "DAGEXEC_KEY"
    monkeypatch.delenv("DAGEXEC_KEY")
    monkeypatch.setenv("DAGEXEC_REQUIRE_SIGNED", "1")
    with pytest.raises(dx.SigningKeyError) as info:
        CacheStore(tmp_path)
    assert str(info.value) == (
        "signed files are required (DAGEXEC_REQUIRE_SIGNED) and no key is set: a cache store without a "
        "key neither signs nor checks its entries; set DAGEXEC_KEY or pass CacheStore(path, key=...)"
    )
    assert CacheStore(tmp_path, key=b"k").signed is True
    assert CacheStore(tmp_path, require_signed=False).signed is False


def test_key_problem_says_why_a_store_without_key_cannot_open_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert key_problem() is None
    monkeypatch.setenv("DAGEXEC_KEY", "")
    assert key_problem() == (
        "DAGEXEC_KEY is set but empty (what a secret that is not available expands to); "
        "set it to the signing key, or unset it"
    )
    monkeypatch.delenv("DAGEXEC_KEY")
    monkeypatch.setenv("DAGEXEC_REQUIRE_SIGNED", "1")
    assert key_problem() == (
        "signed files are required (DAGEXEC_REQUIRE_SIGNED) and no key is set: a cache store without a "
        "key neither signs nor checks its entries; set DAGEXEC_KEY or pass CacheStore(path, key=...)"
    )
    monkeypatch.setenv("DAGEXEC_KEY", "k")
    assert key_problem() is None
    assert not any(tmp_path.iterdir())  # it opens nothing


def test_a_store_with_a_key_is_not_pickled(tmp_path: Path) -> None:
    with pytest.raises(TypeError) as info:
        pickle.dumps(CacheStore(tmp_path, key=b"secret"))
    assert str(info.value) == (
        "a CacheStore with a key is not pickled, so that its key never travels; open the store where it is needed"
    )
    again = pickle.loads(pickle.dumps(CacheStore(tmp_path)))
    assert again.path == tmp_path


def test_a_run_with_dagexec_key_signs_its_entries_and_skips_planted_unsigned_ones(
    tmp_path: Path, marker: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with dx.Graph("cached") as graph:
        graph.output(inc(graph.input("x", int)), name="out")
    plan = graph.compile()
    cache = tmp_path / "cache"
    (key,) = plan.cache_keys(x=1).values()
    assert key is not None
    CacheStore(cache).put(key, Marker(str(marker)))  # planted by someone without the key
    monkeypatch.setenv("DAGEXEC_KEY", "ci")
    result = plan.run(x=1, cache=cache, executor="serial")
    assert (result.output, result.states) == (2, {"inc": dx.State.SUCCEEDED})
    assert not marker.exists()
    again = plan.run(x=1, cache=cache, executor="serial")
    assert (again.output, again.states) == (2, {"inc": dx.State.CACHED})
    assert CacheStore(cache, key="ci").get(key) == (True, 2)
    assert CacheStore(cache, key="other").get(key) == (False, None)


# -- links: the store never follows one ---------------------------------------------------------


def _outside(tmp_path: Path) -> tuple[Path, list[Path]]:
    outside = tmp_path / "outside"
    outside.mkdir()
    files = [outside / K1[2:], outside / "notes.txt", outside / f".{K1[2:]}.0123456789ab.tmp"]
    for f in files:
        f.write_bytes(b"precious")
        os.utime(f, (1000.0, 1000.0))
    return outside, files


def test_prune_never_follows_a_symlinked_shard(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = CacheStore(tmp_path / "cache")
    store.put(K2, "mine")
    outside, files = _outside(tmp_path)
    (store.path / "values" / K1[:2]).symlink_to(outside, target_is_directory=True)
    caplog.set_level(logging.WARNING, "dagexec.cache")
    removed = store.prune()
    assert [e.key for e in removed] == [K2]
    assert [f.read_bytes() for f in files] == [b"precious"] * 3
    assert (store.path / "values" / K1[:2]).is_symlink()
    assert warnings(caplog) == [
        f"cache store {store.path}: ignored values/{K1[:2]}, a symbolic link (the store never follows links)"
    ]
    assert store.entries() == []


def test_a_symlinked_entry_is_neither_read_nor_removed(
    tmp_path: Path, marker: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # a real, valid entry outside the store, reached only through the link
    elsewhere = CacheStore(tmp_path / "elsewhere")
    elsewhere.put(K1, Marker(str(marker)))
    store = CacheStore(tmp_path / "cache")
    store.put(K2, "mine")
    link = entry_file(store, K1)
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(entry_file(elsewhere, K1))
    caplog.set_level(logging.WARNING, "dagexec.cache")
    assert store.get(K1) == (False, None)
    assert not marker.exists()
    assert warnings(caplog) == [
        f"cannot use cache entry {link}: it is a symbolic link, not a regular file "
        "(only regular files are read); it is left as it is"
    ]
    assert K1 not in store
    assert [e.key for e in store.prune()] == [K2]
    assert link.is_symlink()
    assert entry_file(elsewhere, K1).exists()


def test_a_symlinked_values_folder_is_never_written_nor_read(
    tmp_path: Path, marker: Path, caplog: pytest.LogCaptureFixture
) -> None:
    elsewhere = CacheStore(tmp_path / "elsewhere")
    elsewhere.put(K1, Marker(str(marker)))
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "values").symlink_to(elsewhere.path / "values", target_is_directory=True)
    store = CacheStore(cache)
    caplog.set_level(logging.WARNING, "dagexec.cache")
    assert store.get(K1) == (False, None)
    assert store.put(K2, "x") is False
    assert store.prune() == []
    assert not marker.exists()
    assert sorted(p.name for p in (elsewhere.path / "values").iterdir()) == [K1[:2]]
    assert entry_file(elsewhere, K1).exists()
    reason = "values is not a folder but a symbolic link or a file (the store never follows links)"
    assert warnings(caplog) == [
        f"cannot use cache entry {entry_file(store, K1)}: {reason}",
        f"cannot write cache entry {entry_file(store, K2)}: {reason}",
        f"cache store {store.path}: {reason}",
    ]


def test_put_into_a_symlinked_shard_writes_nothing_outside(tmp_path: Path) -> None:
    store = CacheStore(tmp_path / "cache")
    outside, files = _outside(tmp_path)
    store.path.joinpath("values").mkdir()
    (store.path / "values" / K1[:2]).symlink_to(outside, target_is_directory=True)
    assert store.put(K1, "value") is False
    assert sorted(p.name for p in outside.iterdir()) == sorted(f.name for f in files)
    assert [f.read_bytes() for f in files] == [b"precious"] * 3


def test_prune_leaves_files_that_are_not_the_stores_own(tmp_path: Path) -> None:
    store = CacheStore(tmp_path)
    store.put(K1, 1)
    shard = entry_file(store, K1).parent
    foreign = [shard / "README", shard / "x.tmp", store.path / "values" / "zz"]
    foreign[2].mkdir()
    for f in foreign[:2]:
        f.write_text("keep me")
        os.utime(f, (1000.0, 1000.0))
    assert [e.key for e in store.prune()] == [K1]
    assert all(f.exists() for f in foreign)


def test_get_refuses_a_fifo_entry_at_once(tmp_path: Path) -> None:
    store = CacheStore(tmp_path)
    fifo = entry_file(store, K1)
    fifo.parent.mkdir(parents=True)
    os.mkfifo(fifo)
    proc = python(
        """
        import logging, sys
        from dagexec.cache.store import CacheStore
        logging.basicConfig(level=logging.WARNING, format="%(message)s")
        print(CacheStore(sys.argv[1]).get(sys.argv[2]))
        """,
        str(tmp_path),
        K1,
    )
    assert (proc.returncode, proc.stdout) == (0, "(False, None)\n")
    assert proc.stderr == (
        f"cannot use cache entry {fifo}: it is a named pipe (FIFO), not a regular file "
        "(only regular files are read); it is left as it is\n"
    )
    assert fifo.exists()


def test_an_entry_whose_header_claims_more_bytes_than_the_file_is_a_miss(
    tmp_path: Path, marker: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = CacheStore(tmp_path)
    store.put(K1, Marker(str(marker)))
    path = entry_file(store, K1)
    data = path.read_bytes()
    (hlen,) = struct.unpack_from(">I", data, 6)
    header = json.loads(data[10 : 10 + hlen])
    payload = data[10 + hlen + 32 :]
    text = json.dumps({**header, "payload_length": 2**40}).encode()
    head = struct.pack(">4sHI", b"DXCE", 2, len(text)) + text
    forged = head + hashlib.sha256(head).digest() + payload
    path.write_bytes(forged)
    caplog.set_level(logging.WARNING, "dagexec.cache")
    assert store.get(K1) == (False, None)
    assert not marker.exists()
    need = len(head) + 32 + 2**40
    assert warnings(caplog) == [
        f"removed cache entry {path}: the file is truncated: it has {len(forged)} bytes but needs {need}"
    ]
    assert store.entries() == []


# -- temporary files of killed saves --------------------------------------------------------------

STALLED_WRITER = """
import sys, time
from pathlib import Path
from dagexec._files import write_atomic

class Stalls:
    '''Parts that hand over one and then hang: a writer stopped mid-write.'''
    def __len__(self):
        return 2
    def __getitem__(self, i):
        if i == 1:
            Path(sys.argv[2]).touch()
            time.sleep(600)
        if i > 1:
            raise IndexError(i)
        return b"DAGX" + bytes(100_000)

write_atomic(sys.argv[1], Stalls(), durable=True)
"""


def test_save_removes_the_stale_temporary_file_of_a_killed_save(tmp_path: Path, marker: Path) -> None:
    target, ready = tmp_path / "plan.dagx", tmp_path / "ready"
    env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG") if k in os.environ}
    env["PYTHONPATH"] = str(ROOT)
    writer = subprocess.Popen([sys.executable, "-c", STALLED_WRITER, str(target), str(ready)], env=env)
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert writer.poll() is None, "the writer ended before it stalled"
            assert time.monotonic() < deadline, "the writer never started writing"
            time.sleep(0.01)
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=60)
    assert writer.returncode == -signal.SIGKILL
    (left,) = [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert left.name.startswith(".plan.dagx.") and left.stat().st_size > 0
    fresh = tmp_path / ".plan.dagx.0123456789ab.tmp"  # a save at work right now
    others = [tmp_path / ".other.dagx.0123456789ab.tmp", tmp_path / ".plan.dagx.notmine.tmp"]
    for f in [fresh, *others]:
        f.write_bytes(b"x")
    for f in [left, *others]:
        os.utime(f, (time.time() - 3600, time.time() - 3600))
    build(marker).save(target)
    assert not left.exists()
    assert fresh.exists() and all(f.exists() for f in others)
    assert dx.load(target).name == "signed"
