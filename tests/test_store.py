"""The cache store (dagexec/cache/store.py, DESIGN §7, §10); its journals are in test_journal.py.

Damaged entries are made from real entry files, cut or edited byte by byte; the
concurrency and crash tests use real processes, synchronized on files.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import struct
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from dagexec.cache.store import CacheEntry, CacheStore

ROOT = Path(__file__).resolve().parent.parent
K1, K2, K3 = (hashlib.sha256(s).hexdigest() for s in (b"one", b"two", b"three"))


@dataclasses.dataclass
class Point:
    x: int
    y: int


def entry_file(store: CacheStore, key: str) -> Path:
    return store.path / "values" / key[:2] / key[2:]


def header_length(data: bytes) -> int:
    return int(struct.unpack_from(">I", data, 6)[0])


def temp_files(store: CacheStore) -> list[Path]:
    return sorted(store.path.rglob("*.tmp"))


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage() for r in caplog.records if r.name == "dagexec.cache" and r.levelno == logging.WARNING
    ]


def run_python(code: str, *args: str, **popen: Any) -> subprocess.Popen[str]:
    env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG") if k in os.environ}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *popen.pop("path", [])])
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **popen,
    )


def wait_for(path: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.005)


# -- put, get, in ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [42, {"rows": [1, 2, 3], "name": "é"}, bytes(range(256)) * 20480, Point(1, 2)],
    ids=["int", "dict", "bytes-5MB", "user-class"],
)
def test_put_then_get_returns_an_equal_value(tmp_path: Path, value: Any) -> None:
    store = CacheStore(tmp_path / "cache")
    assert store.put(K1, value, {"node": "etl/clean"}) is True
    assert store.get(K1) == (True, value)
    assert CacheStore(tmp_path / "cache").get(K1) == (True, value)
    assert temp_files(store) == []


def test_store_makes_its_folder_and_parents(tmp_path: Path) -> None:
    store = CacheStore(tmp_path / "a" / "b")
    assert store.path == tmp_path / "a" / "b"
    assert store.path.is_dir()
    assert repr(store) == f"CacheStore({str(tmp_path / 'a' / 'b')!r})"


def test_get_of_an_absent_key_is_a_quiet_miss(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = CacheStore(tmp_path)
    assert store.get(K1) == (False, None)
    assert warnings(caplog) == []


def test_in_says_whether_an_entry_file_exists(tmp_path: Path) -> None:
    store = CacheStore(tmp_path)
    assert K1 not in store
    store.put(K1, None)
    assert K1 in store
    assert K2 not in store
    assert store.get(K1) == (True, None)


def test_entry_files_are_named_by_their_key(tmp_path: Path) -> None:
    store = CacheStore(tmp_path)
    store.put(K1, 1)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()) == [
        f"values/{K1[:2]}/{K1[2:]}"
    ]
    assert entry_file(store, K1).read_bytes()[:6] == b"DXCE\x00\x02"


@pytest.mark.parametrize(
    "key",
    ["abc", K1.upper(), K1 + "0", K1[:-1] + "g", "x" * 100, None],
    ids=["short", "upper", "long", "not-hex", "long-repr", "none"],
)
def test_a_key_that_is_not_64_lowercase_hex_digits_is_a_value_error(tmp_path: Path, key: Any) -> None:
    store = CacheStore(tmp_path)
    shown = repr(key) if len(repr(key)) <= 80 else repr(key)[:77] + "..."
    message = f"a cache key must be 64 lowercase hex digits (a SHA-256), got {shown}"
    for call in (lambda: store.get(key), lambda: store.put(key, 1), lambda: key in store):
        with pytest.raises(ValueError) as e:
            call()
        assert e.value.args == (message,)
    assert list(tmp_path.iterdir()) == []


def test_meta_that_json_cannot_write_is_a_type_error(tmp_path: Path) -> None:
    store = CacheStore(tmp_path)
    with pytest.raises(TypeError) as e:
        store.put(K1, 1, {"when": {1, 2}})
    assert (
        str(e.value)
        == "cache entry meta must hold only JSON values: Object of type set is not JSON serializable"
    )
    assert K1 not in store
    assert temp_files(store) == []


# -- entries and prune ------------------------------------------------------------------


def test_entries_list_meta_sizes_and_times_oldest_use_first(tmp_path: Path) -> None:
    store = CacheStore(tmp_path)
    before = time.time()
    store.put(K1, "a", {"node": "etl/clean", "task": "etl:clean"})
    store.put(K2, list(range(100)), {"node": "etl/load"})
    after = time.time()
    os.utime(entry_file(store, K1), (2000.0, 2000.0))
    os.utime(entry_file(store, K2), (1000.0, 1000.0))
    entries = store.entries()
    created = [e.created for e in entries]
    assert all(before <= c <= after for c in created)
    assert entries == [
        CacheEntry(K2, entry_file(store, K2).stat().st_size, created[0], 1000.0, {"node": "etl/load"}),
        CacheEntry(
            K1,
            entry_file(store, K1).stat().st_size,
            created[1],
            2000.0,
            {"node": "etl/clean", "task": "etl:clean"},
        ),
    ]


def test_entries_skip_damaged_files_and_temporary_files(tmp_path: Path) -> None:
    store = CacheStore(tmp_path)
    store.put(K1, "a")
    store.put(K2, "b")
    data = entry_file(store, K2).read_bytes()
    entry_file(store, K2).write_bytes(data[:-1])
    (entry_file(store, K1).parent / f".{K1[2:]}.0123456789ab.tmp").write_bytes(b"DXCE")
    assert [e.key for e in store.entries()] == [K1]


def test_a_successful_get_refreshes_the_last_use(tmp_path: Path) -> None:
    store = CacheStore(tmp_path)
    store.put(K1, 1)
    os.utime(entry_file(store, K1), (1000.0, 1000.0))
    assert store.get(K1) == (True, 1)
    assert entry_file(store, K1).stat().st_mtime > time.time() - 60


def test_prune_removes_entries_unused_for_more_than_older_than(tmp_path: Path) -> None:
    store = CacheStore(tmp_path)
    for key in (K1, K2, K3):
        store.put(key, key, {"node": key[:4]})
    now = time.time()
    os.utime(entry_file(store, K1), (now - 7200, now - 7200))
    os.utime(entry_file(store, K2), (now - 600, now - 600))
    stale_tmp = entry_file(store, K3).parent / f".{K3[2:]}.0123456789ab.tmp"
    stale_tmp.write_bytes(b"left by a killed writer")
    os.utime(stale_tmp, (now - 7200, now - 7200))
    listed = {e.key: e for e in store.entries()}
    assert store.prune(older_than=3600) == [listed[K1]]
    assert [e.key for e in store.entries()] == [K2, K3]
    assert temp_files(store) == []
    assert store.prune(older_than=3600) == []
    assert store.get(K1) == (False, None)
    assert store.get(K2) == (True, K2)


def test_prune_none_removes_every_entry(tmp_path: Path) -> None:
    store = CacheStore(tmp_path)
    store.put(K1, 1)
    store.put(K2, 2)
    os.utime(entry_file(store, K2), (1000.0, 1000.0))
    entry_file(store, K3).parent.mkdir(parents=True, exist_ok=True)
    entry_file(store, K3).write_bytes(b"")
    listed = store.entries()
    assert store.prune() == listed
    assert [k for k in (K1, K2, K3) if k in store] == []
    assert store.entries() == []


# -- damaged entries -----------------------------------------------------------------------


def _flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]


# name -> (damage(data, H, other) -> bytes, reason(data, H) -> str); H is the header length
DAMAGE: dict[str, tuple[Any, Any]] = {
    "empty": (lambda d, h, o: b"", lambda d, h: "the file is empty"),
    "cut-in-magic": (
        lambda d, h, o: d[:3],
        lambda d, h: "the file is truncated: it has 3 bytes but needs at least 10",
    ),
    "cut-in-prefix": (
        lambda d, h, o: d[:8],
        lambda d, h: "the file is truncated: it has 8 bytes but needs at least 10",
    ),
    "cut-in-header": (
        lambda d, h, o: d[:30],
        lambda d, h: f"the file is truncated: it has 30 bytes but needs at least {42 + h}",
    ),
    "cut-in-digest": (
        lambda d, h, o: d[: 10 + h + 5],
        lambda d, h: f"the file is truncated: it has {15 + h} bytes but needs at least {42 + h}",
    ),
    "cut-after-digest": (
        lambda d, h, o: d[: 42 + h],
        lambda d, h: f"the file is truncated: it has {42 + h} bytes but needs {len(d)}",
    ),
    "cut-in-payload": (
        lambda d, h, o: d[:-1],
        lambda d, h: f"the file is truncated: it has {len(d) - 1} bytes but needs {len(d)}",
    ),
    "bytes-after-payload": (lambda d, h, o: d + b"xyz", lambda d, h: "it has 3 bytes after the payload"),
    "flipped-payload-byte": (
        lambda d, h, o: _flip(d, len(d) - 20),
        lambda d, h: "the payload does not match its SHA-256 checksum",
    ),
    "flipped-header-byte": (
        lambda d, h, o: _flip(d, 20),
        lambda d, h: "the header does not match its SHA-256 checksum",
    ),
    "flipped-digest-byte": (
        lambda d, h, o: _flip(d, 10 + h),
        lambda d, h: "the header does not match its SHA-256 checksum",
    ),
    "foreign": (
        lambda d, h, o: b"PK\x03\x04" + d[4:],
        lambda d, h: "not a cache entry (it does not start with b'DXCE')",
    ),
    "format-version": (
        lambda d, h, o: d[:4] + b"\x00\x01" + d[6:],
        lambda d, h: "it is in entry format 1, and this dagexec reads format 2",
    ),
    "another-keys-entry": (lambda d, h, o: o, lambda d, h: f"it holds the entry of key {K2!r}"),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_entry_is_a_logged_miss_and_is_removed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, damage: str
) -> None:
    store = CacheStore(tmp_path)
    store.put(K1, {"value": list(range(50))})
    store.put(K2, "other")
    path = entry_file(store, K1)
    data = path.read_bytes()
    make, reason = DAMAGE[damage]
    path.write_bytes(make(data, header_length(data), entry_file(store, K2).read_bytes()))
    caplog.set_level(logging.WARNING, "dagexec.cache")
    assert store.get(K1) == (False, None)
    assert warnings(caplog) == [f"removed cache entry {path}: {reason(data, header_length(data))}"]
    assert not path.exists()
    assert store.get(K1) == (False, None)
    assert len(warnings(caplog)) == 1
    assert store.put(K1, "again") is True
    assert store.get(K1) == (True, "again")
    assert store.get(K2) == (True, "other")


def test_an_entry_whose_class_cannot_be_imported_here_is_a_logged_miss(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "shapes_only_there.py").write_text("class Shape:\n    sides = 3\n")
    writer = run_python(
        """
        import sys
        from dagexec.cache.store import CacheStore
        from shapes_only_there import Shape
        assert CacheStore(sys.argv[1]).put(sys.argv[2], Shape())
        """,
        str(tmp_path / "cache"),
        K1,
        path=[str(elsewhere)],
    )
    assert writer.communicate(timeout=60) == ("", "")
    assert writer.returncode == 0
    store = CacheStore(tmp_path / "cache")
    assert K1 in store
    caplog.set_level(logging.WARNING, "dagexec.cache")
    assert store.get(K1) == (False, None)
    assert warnings(caplog) == [
        f"removed cache entry {entry_file(store, K1)}: "
        "unpickling failed: ModuleNotFoundError: No module named 'shapes_only_there'"
    ]
    assert K1 not in store
    assert store.put(K1, 3) is True
    assert store.get(K1) == (True, 3)


def test_a_value_that_does_not_pickle_is_not_stored(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = CacheStore(tmp_path)
    caplog.set_level(logging.WARNING, "dagexec.cache")
    assert store.put(K1, threading.Lock(), {"node": "etl/clean"}) is False
    assert store.put(K2, {"lock": threading.Lock()}) is False
    assert warnings(caplog) == [
        "cannot cache the value of node 'etl/clean': a _thread.lock that cannot be pickled: "
        "TypeError: cannot pickle '_thread.lock' object",
        f"cannot cache the value of key {K2[:12]}...: a dict that cannot be pickled: "
        "TypeError: cannot pickle '_thread.lock' object",
    ]
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []
    assert (K1 in store, K2 in store) == (False, False)
    assert store.put(K1, 1) is True


# -- several processes at once --------------------------------------------------------------

WRITER = """
import sys, os, time
from dagexec.cache.store import CacheStore
from pathlib import Path
store, me, shared, own, go = CacheStore(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], Path(sys.argv[5])
while not go.exists():
    time.sleep(0.001)
for i in range(60):
    assert store.put(shared, (me, bytes(200_000)), {"node": "shared"})
    assert store.put(own, (own, i % 3), {"node": me})
"""

READER = """
import logging, sys, time
from dagexec.cache.store import CacheStore
from pathlib import Path
logging.basicConfig(level=logging.WARNING)
store, shared, go, stop = CacheStore(sys.argv[1]), sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4])
own = sys.argv[5:]
while not go.exists():
    time.sleep(0.001)
hits = 0
while True:
    last = stop.exists()
    for key in [shared, *own]:
        ok, value = store.get(key)
        if ok:
            hits += 1
            good = value in [("a", bytes(200_000)), ("b", bytes(200_000))] if key == shared else value in [(key, 0), (key, 1), (key, 2)]
            assert good, (key, value)
        else:
            assert value is None
    if last:
        break
print(hits)
"""


def test_processes_putting_and_getting_at_once_never_see_a_partial_entry(tmp_path: Path) -> None:
    cache, go, stop = tmp_path / "cache", tmp_path / "go", tmp_path / "stop"
    store = CacheStore(cache)
    own = {"a": K2, "b": K3}
    writers = [run_python(WRITER, str(cache), me, K1, own[me], str(go)) for me in ("a", "b")]
    reader = run_python(READER, str(cache), K1, str(go), str(stop), K2, K3)
    try:
        go.touch()
        for w in writers:
            assert w.communicate(timeout=60) == ("", "")
            assert w.returncode == 0
        stop.touch()
        out, err = reader.communicate(timeout=60)
        assert (reader.returncode, err) == (0, "")
    finally:
        for proc in [*writers, reader]:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert int(out) >= 3
    assert store.get(K1)[1] in [("a", bytes(200_000)), ("b", bytes(200_000))]
    assert store.get(K2) == (True, (K2, 59 % 3))
    assert store.get(K3) == (True, (K3, 59 % 3))
    assert sorted(e.meta["node"] for e in store.entries()) == ["a", "b", "shared"]
    assert temp_files(store) == []
