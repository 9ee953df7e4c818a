"""Run journals (dagexec/cache/journal.py, DESIGN §7): records that survive a killed writer,
and a file reached as carefully as the store's entries: never through a symbolic link,
never anything but a regular file.

Links and FIFOs are real ones made in ``tmp_path``; a test that could block on a FIFO
runs in a subprocess with a timeout.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import dagexec as dx
from dagexec._folders import FolderRefused
from dagexec.cache.journal import Journal
from dagexec.cache.store import CacheStore

ROOT = Path(__file__).resolve().parent.parent


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage() for r in caplog.records if r.name == "dagexec.cache" and r.levelno == logging.WARNING
    ]


def run_python(code: str, *args: str) -> subprocess.Popen[str]:
    env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG") if k in os.environ}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(path: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.005)


# -- journal ------------------------------------------------------------------------------------


def test_journal_appends_records_and_reads_them_in_order(tmp_path: Path) -> None:
    store = CacheStore(tmp_path)
    journal = store.journal("0a1b")
    assert journal.path == tmp_path / "journal" / "0a1b.jsonl"
    assert repr(journal) == f"Journal({str(journal.path)!r})"
    assert journal.read() == []
    with journal:
        journal.append({"node": "etl/clean", "state": "done", "attempt": 1})
        journal.append({"node": "etl/load", "state": "failed", "error": "ValueError: é"})
    assert journal.path.read_text("utf-8") == (
        '{"node":"etl/clean","state":"done","attempt":1}\n'
        '{"node":"etl/load","state":"failed","error":"ValueError: é"}\n'
    )
    with store.journal("0a1b") as again:
        again.append({"node": "etl/load", "state": "done"})
        assert again.read() == [
            {"node": "etl/clean", "state": "done", "attempt": 1},
            {"node": "etl/load", "state": "failed", "error": "ValueError: é"},
            {"node": "etl/load", "state": "done"},
        ]
    assert store.journal("ff").read() == []


@pytest.mark.parametrize("name", ["", "run-1", "ABCD", "../x", "a" * 129])
def test_a_journal_name_that_is_not_hex_is_a_value_error(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError) as e:
        CacheStore(tmp_path).journal(name)
    assert e.value.args == (f"a journal name must be 1 to 128 lowercase hex digits, got {name!r:.80}",)


def test_journal_ignores_a_torn_last_line_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = CacheStore(tmp_path)
    with store.journal("01") as journal:
        journal.append({"i": 0})
        journal.append({"i": 1})
    with open(journal.path, "ab") as f:
        f.write(b'{"i": 2, "na')
    caplog.set_level(logging.WARNING, "dagexec.cache")
    assert journal.read() == [{"i": 0}, {"i": 1}]
    assert warnings(caplog) == [f"journal {journal.path}: ignored its torn last line (12 bytes, no newline)"]
    caplog.clear()
    # the next writer ends the torn line before its first record
    with store.journal("01") as journal:
        journal.append({"i": 3})
    assert journal.read() == [{"i": 0}, {"i": 1}, {"i": 3}]
    assert warnings(caplog) == [f"journal {journal.path}: ignored line 3, which is not a JSON object"]


JOURNAL_WRITER = """
import sys
from pathlib import Path
from dagexec.cache.store import CacheStore
journal = CacheStore(sys.argv[1]).journal("c0ffee")
i = 0
while True:
    journal.append({"i": i, "node": f"etl/n-{i}", "pad": "x" * (i % 300)})
    i += 1
    if i == 500:
        Path(sys.argv[2]).touch()
"""


def test_journal_of_a_sigkilled_writer_reads_as_its_complete_records(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store, ready = CacheStore(tmp_path / "cache"), tmp_path / "ready"
    writer = run_python(JOURNAL_WRITER, str(store.path), str(ready))
    try:
        wait_for(ready)
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.communicate(timeout=60)
    assert writer.returncode == -signal.SIGKILL
    caplog.set_level(logging.WARNING, "dagexec.cache")
    records = store.journal("c0ffee").read()
    assert len(records) >= 500
    assert records == [{"i": i, "node": f"etl/n-{i}", "pad": "x" * (i % 300)} for i in range(len(records))]
    # a kill inside a write that crosses a page may leave a torn last line, never more
    torn = f"journal {store.journal('c0ffee').path}: ignored its torn last line ("
    assert len(warnings(caplog)) <= 1
    assert all(m.startswith(torn) for m in warnings(caplog))
    with store.journal("c0ffee") as journal:
        journal.append({"resumed": True})
    assert journal.read()[-1] == {"resumed": True}
    assert len(journal.read()) == len(records) + 1


def test_a_closed_journal_opens_again_on_append(tmp_path: Path) -> None:
    journal = CacheStore(tmp_path).journal("ab")
    journal.close()
    journal.append({"a": 1})
    journal.close()
    journal.close()
    journal.append({"a": 2})
    del journal
    assert Journal(tmp_path / "journal" / "ab.jsonl").read() == [{"a": 1}, {"a": 2}]


# -- never through a link, never anything but a regular file ------------------------------------

NOT_A_FILE = "it is {what}, not a regular file (only regular files are read)"
LINKED_FOLDER = (
    "journal folder {folder} is not a folder but a symbolic link or a file (the store never follows links)"
)
NOT_WRITTEN = "cannot write the run's journal (a resumed run runs again what this run does from here): "


def test_a_journal_folder_that_is_a_link_is_neither_written_nor_read(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store, outside = CacheStore(tmp_path / "cache"), tmp_path / "outside"
    outside.mkdir()
    (outside / "ab.jsonl").write_text('{"planted": 1}\n')
    (store.path / "journal").symlink_to(outside, target_is_directory=True)
    journal = store.journal("ab")
    with pytest.raises(FolderRefused) as e:
        journal.append({"a": 1})
    assert str(e.value) == LINKED_FOLDER.format(folder=store.path / "journal")
    caplog.set_level(logging.WARNING, "dagexec.cache")
    assert journal.read() == []
    assert warnings(caplog) == [LINKED_FOLDER.format(folder=store.path / "journal") + "; no journal is read"]
    assert os.listdir(outside) == ["ab.jsonl"]
    assert (outside / "ab.jsonl").read_text() == '{"planted": 1}\n'


@pytest.mark.parametrize("target_exists", [True, False], ids=["to-a-file", "dangling"])
def test_a_journal_file_that_is_a_link_is_neither_written_nor_read(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, target_exists: bool
) -> None:
    store, target = CacheStore(tmp_path / "cache"), tmp_path / "thesis.tex"
    if target_exists:
        target.write_text('{"planted": 1}\n')
    journal = store.journal("ab")
    journal.path.parent.mkdir()
    journal.path.symlink_to(target)
    refused = f"journal {journal.path}: " + NOT_A_FILE.format(what="a symbolic link")
    with pytest.raises(OSError) as e:
        journal.append({"a": 1})
    assert (type(e.value), str(e.value)) == (OSError, refused)
    caplog.set_level(logging.WARNING, "dagexec.cache")
    assert journal.read() == []
    assert warnings(caplog) == [refused + "; it is not read, and is left as it is"]
    assert journal.path.is_symlink()
    if target_exists:
        assert target.read_text() == '{"planted": 1}\n'
    else:
        assert not target.exists()  # a dangling link never makes its target


def _one_node_plan() -> dx.CompiledGraph:
    @dx.task
    def one() -> int:
        return 1

    with dx.Graph("journalled") as g:
        g.output(one(), name="one")
    return g.compile()


def test_a_cached_run_writes_and_reads_no_journal_through_a_planted_link(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache, outside = tmp_path / "cache", tmp_path / "outside"
    cache.mkdir()
    outside.mkdir()
    (cache / "journal").symlink_to(outside, target_is_directory=True)
    plan = _one_node_plan()
    caplog.set_level(logging.WARNING, "dagexec.cache")
    result = plan.run(cache=cache, executor="serial")
    assert (result.ok, result.outputs) == (True, {"one": 1})
    linked = LINKED_FOLDER.format(folder=cache / "journal")
    assert warnings(caplog) == [NOT_WRITTEN + linked]
    caplog.clear()
    result = plan.run(cache=cache, executor="serial", resume=True)
    assert result.states == {"one": dx.State.CACHED}
    assert warnings(caplog) == [linked + "; no journal is read", NOT_WRITTEN + linked]
    assert os.listdir(outside) == []


FIFO_JOURNAL = """
import logging, os, sys
import dagexec as dx
from dagexec.cache.journal import journal_name
from dagexec.cache.store import CacheStore

logging.basicConfig(format="%(message)s", level=logging.WARNING)

@dx.task
def one() -> int:
    return 1

with dx.Graph("fifo") as g:
    g.output(one(), name="one")
plan = g.compile()
journal = CacheStore(sys.argv[1]).journal(journal_name(plan, []))
os.makedirs(journal.path.parent)
os.mkfifo(journal.path)
print(journal.path, flush=True)
print(journal.read(), flush=True)
try:
    journal.append({"a": 1})
except OSError as exc:
    print(type(exc).__name__, exc, flush=True)
for resume in (False, True):
    result = plan.run(cache=sys.argv[1], executor="serial", resume=resume)
    print(f"resume={resume}", result.states, flush=True)
"""


def test_a_fifo_journal_neither_blocks_nor_is_used(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    proc = run_python(FIFO_JOURNAL, str(cache))
    try:
        out, err = proc.communicate(timeout=60)  # a FIFO opened to read waits for a writer: forever
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    path, *lines = out.splitlines()
    assert Path(path).parent == cache / "journal"
    refused = f"journal {path}: " + NOT_A_FILE.format(what="a named pipe (FIFO)")
    assert lines == [
        "[]",
        f"OSError {refused}",
        "resume=False {'one': <State.SUCCEEDED: 'succeeded'>}",
        "resume=True {'one': <State.CACHED: 'cached'>}",
    ]
    assert err.splitlines() == [
        f"{refused}; it is not read, and is left as it is",
        NOT_WRITTEN + refused,
        f"{refused}; it is not read, and is left as it is",
        NOT_WRITTEN + refused,
    ]
