"""The journal of a run with a cache, and what ``resume=True`` reads from it (DESIGN §7).

Every run with a cache appends a record per ended trial to one journal per plan and
set of graph inputs (``journal_name``), so a run killed mid-way leaves every finished
trial on record; a resumed run reads the last run's trials back (``earlier_trials``)
and treats the nodes that succeeded there as done (``cache.decide`` says which of
them run again: those whose value it needs and the store cannot give back).

A journal (:class:`Journal`, ``<store>/journal/<name>.jsonl``) is append-only JSON
lines.  ``append`` writes a whole line with one ``os.write`` on a descriptor opened
with ``O_APPEND`` and does not fsync: a record is in the kernel once ``append``
returns, so it survives a SIGKILL of the process, but not a power cut.  A journal has
one writer (one run); ``read`` skips a torn last line.

Its file is reached as the store's entries are, and is as careful: the folder is
opened without following a link (``_folders.open_folder``) and the file relative to
it with ``O_NOFOLLOW`` and without blocking (``_envelope.open_regular``).  A
symbolic link, a FIFO or anything but a regular file where the journal would be is
neither read nor written: ``read`` logs it and reads ``[]``, ``append`` raises
``OSError``, and :class:`JournalWriter` logs that once and goes on without a journal
(a resumed run runs again what that run did).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from .._envelope import EnvelopeError, open_regular, read_regular
from .._folders import FolderRefused, open_folder
from ..plan.tokens import NoToken
from .keys import value_key

if TYPE_CHECKING:
    from .._plan import CompiledGraph

__all__ = ["Journal", "JournalWriter", "earlier_trials", "journal_name"]

logger = logging.getLogger("dagexec.cache")


def journal_name(plan: CompiledGraph, input_values: list[Any]) -> str:
    """The journal of runs of ``plan`` with these graph inputs: one file per pair.

    Raises:
        NoToken: for a graph input that does not pickle (naming it): runs with such
            inputs cannot be told apart, so they have no journal and cannot resume.
    """
    h = hashlib.sha256(plan.fingerprint.encode())
    for inp, value in zip(plan._inputs, input_values, strict=True):
        try:
            token = value_key(value)
        except NoToken as exc:
            raise NoToken(f"input {inp.name}: {exc}") from None
        h.update(b"\0" + token.encode())
    return h.hexdigest()[:32]


class Journal:
    """An append-only file of JSON records, one a line, that survives a killed writer.

    Neither its folder nor its file is reached through a symbolic link, and only a
    regular file is read or written (module docstring).  Use it as a context manager,
    or call :meth:`close`, to release its descriptor.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._fd: int | None = None  # opened by the first append, kept open until close()

    @property
    def path(self) -> Path:
        """The journal's file."""
        return self._path

    def __repr__(self) -> str:
        return f"Journal({str(self._path)!r})"

    def _folder(self, create: bool) -> int:
        """A descriptor of the journal's folder, never reached through a link.

        Raises:
            FileNotFoundError: when it is missing (and not ``create``).
            FolderRefused: when a link or a file stands there, or it cannot be opened.
        """
        folder = self._path.parent
        return open_folder(str(folder), create=create, what=f"journal folder {folder}")

    def append(self, record: Mapping[str, Any]) -> None:
        """Add ``record`` as one line, written by one ``os.write`` (no fsync; module docstring).

        Raises:
            TypeError, ValueError: when ``record`` holds something JSON cannot write.
            OSError: when the file or its folder is a link or not what it must be, or
                cannot be opened or written.
        """
        line = (json.dumps(dict(record), separators=(",", ":"), ensure_ascii=False) + "\n").encode("utf-8")
        if self._fd is None:
            folder = self._folder(create=True)
            try:
                fd = open_regular(self._path.name, dir_fd=folder, follow_symlinks=False, append=True)[0]
            except EnvelopeError as err:
                raise OSError(f"journal {self._path}: {err.message}") from err
            finally:
                os.close(folder)
            self._fd = fd
            # a writer killed mid-line left a torn line: end it, so that this record starts a line
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                os.write(fd, b"\n")
        written = os.write(self._fd, line)
        if written != len(line):
            raise OSError(f"journal {self._path}: wrote {written} of {len(line)} bytes (is the disk full?)")

    def read(self) -> list[dict[str, Any]]:
        """Every complete record, in order; a missing file reads as ``[]``.

        A torn last line, or a line that is not a JSON object, is skipped with a WARNING.
        A link, or anything but a regular file, where the file or its folder would be
        is left as it is and reads as ``[]``, with a WARNING.

        Raises:
            OSError: when the file exists but cannot be read.
        """
        try:
            folder = self._folder(create=False)
        except FileNotFoundError:
            return []
        except FolderRefused as exc:
            logger.warning("%s; no journal is read", exc)
            return []
        try:
            data = read_regular(self._path.name, dir_fd=folder, follow_symlinks=False)[0]
        except EnvelopeError as err:
            if isinstance(err.__cause__, FileNotFoundError):
                return []
            if err.check != "not-regular":
                raise OSError(f"journal {self._path}: {err.message}") from err
            logger.warning("journal %s: %s; it is not read, and is left as it is", self._path, err.message)
            return []
        finally:
            os.close(folder)
        return self._records(data)

    def _records(self, data: bytes) -> list[dict[str, Any]]:
        lines = data.split(b"\n")
        tail = lines.pop()  # b"" when the file ends with a newline
        if tail:
            logger.warning(
                "journal %s: ignored its torn last line (%d bytes, no newline)", self._path, len(tail)
            )
        records = []
        for number, line in enumerate(lines, 1):
            try:
                record = json.loads(line.decode("utf-8"))
            except ValueError:
                record = None
            if isinstance(record, dict):
                records.append(record)
            else:
                logger.warning("journal %s: ignored line %d, which is not a JSON object", self._path, number)
        return records

    def close(self) -> None:
        """Close the journal's descriptor; a later append opens it again."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def __enter__(self) -> Journal:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()


class JournalWriter:
    """A run callback that appends a record per trial to the run's journal.

    Records: ``{"run", "event": "start", "time"}``, then per ended trial ``{"run",
    "node", "attempt", "state", "start", "end", "worker", "error", "traceback"}``, and
    ``{"run", "event": "end", "ok"}`` when the run ends (not after a SIGKILL).
    """

    def __init__(self, journal: Journal, run_id: str) -> None:
        self.journal = journal
        self.run_id = run_id
        self._failed = False  # the first failure is logged, and the run goes on without a journal

    def _append(self, record: dict[str, Any]) -> None:
        if self._failed:
            return
        try:
            self.journal.append(record)
        except Exception as exc:
            self._failed = True
            self.journal.close()
            logger.warning(
                "cannot write the run's journal (a resumed run runs again what this run does from here): %s", exc,
                exc_info=not isinstance(exc, OSError),
            )  # fmt: skip

    def on_run_start(self, plan: Any) -> None:
        import time

        self._append({"run": self.run_id, "event": "start", "time": time.time()})

    def on_trial_end(self, trial: Any) -> None:
        err = trial.error
        self._append(
            {
                "run": self.run_id,
                "node": trial.key,
                "attempt": trial.attempt,
                "state": trial.state.value,
                "start": trial.start,
                "end": trial.end,
                "worker": trial.worker,
                "error": None if err is None else [type(err).__qualname__, str(err)],
                "traceback": trial.traceback,
            }
        )

    def on_run_end(self, result: Any) -> None:
        self._append({"run": self.run_id, "event": "end", "ok": result.ok})
        self.journal.close()


def earlier_trials(records: list[dict[str, Any]], index: dict[str, int]) -> dict[int, list[Any]]:
    """The trials of the last run in ``records``, per node idx, as :class:`Trial` objects."""
    from .._errors import RemoteError
    from .._state import State, Trial

    runs = [r["run"] for r in records if r.get("event") == "start"]
    if not runs:
        return {}
    last = runs[-1]
    out: dict[int, list[Any]] = {}
    for r in records:
        if r.get("run") != last or "node" not in r or r["node"] not in index:
            continue
        try:
            err = r.get("error")
            error = None if not err else RemoteError(str(err[0]), str(err[1]), str(r.get("traceback") or ""))
            trial = Trial(
                r["node"], int(r["attempt"]), State(r["state"]), float(r["start"]),
                None if r.get("end") is None else float(r["end"]), str(r.get("worker") or ""),
                error, str(r.get("traceback") or ""),
            )  # fmt: skip
        except (KeyError, TypeError, ValueError):
            continue  # a record of another version
        out.setdefault(index[r["node"]], []).append(trial)
    return out
