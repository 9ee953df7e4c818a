"""The on-disk cache store and the run journals of ``plan.run(cache="dir")`` (DESIGN §7, §10).

A store is a folder; nothing else (no server, no index file) holds its state::

    <store>/values/<key[:2]>/<key[2:]>    one entry file per cached value
    <store>/values/<key[:2]>/.<key[2:]>.<random>.tmp    an entry being written
    <store>/journal/<name>.jsonl          one run's journal

An entry is content addressed: its key (64 lowercase hex digits, a SHA-256 computed by
the caller) names its file.  Integers are big-endian::

    offset   size  field
    -------  ----  ---------------------------------------------------------------
    0           4  magic b"DXCE"
    4           2  format version (uint16), FORMAT_VERSION
    6           4  header length H (uint32)
    10          H  header: UTF-8 JSON {"key", "meta", "created", "payload_length",
                   "payload_sha256"}; created is time.time() at the write
    10+H       32  header digest: SHA-256 of bytes [0, 10+H)
    42+H        N  payload: the value pickled by cloudpickle (protocol 5), N =
                   header["payload_length"], SHA-256 in header["payload_sha256"]
    42+H+N         end of file: nothing may follow the payload

``get`` checks the file front to back (magic, version, header digest, header, key,
length, payload SHA-256) before the unpickler sees a byte.  A file failing any check,
or failing to unpickle, is a miss: it is logged once at WARNING on ``dagexec.cache``
with its path and the reason, and removed, so the next ``put`` writes it again.

``put`` pickles first, then writes a temporary file beside the entry and renames it
over the entry (``os.replace``), so readers see the old file or the new one, never a
part; two writers of one key both succeed and the last rename wins (same key, same
value).  Neither the file nor the folder is fsynced (an fsync costs about half a
millisecond per entry here, more than the tasks worth caching often take): a power
cut may leave a short or empty entry, or lose a rename, and ``get`` finds either and
makes it a miss.  An entry's last use is its file's mtime, which ``put`` and
every successful ``get`` set; ``prune`` removes by it.

A journal is append-only JSON lines.  ``Journal.append`` writes a whole line with one
``os.write`` on a descriptor opened with ``O_APPEND`` and does not fsync: a record is
in the kernel once ``append`` returns, so it survives a SIGKILL of the process, but
not a power cut.  A journal has one writer (one run); ``read`` skips a torn last line.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import os
import pickle
import re
import struct
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from ._files import write_atomic

__all__ = ["FORMAT_VERSION", "MAGIC", "CacheEntry", "CacheStore", "Journal"]

logger = logging.getLogger("dagexec.cache")

MAGIC = b"DXCE"
FORMAT_VERSION = 1
_PREFIX = struct.Struct(">4sHI")  # magic, format version, header length
_DIGEST = 32  # SHA-256 of prefix + header
_KEY = re.compile(r"[0-9a-f]{64}")
_NAME = re.compile(r"[0-9a-f]{1,128}")
# header field -> its type (numbers must not be negative)
_FIELDS: dict[str, Any] = {
    "key": str,
    "meta": dict,
    "created": (int, float),
    "payload_length": int,
    "payload_sha256": str,
}


@dataclass(frozen=True)
class CacheEntry:
    """One value in a :class:`CacheStore`, as :meth:`CacheStore.entries` lists it.

    Attributes:
        key: the cache key, 64 lowercase hex digits (a SHA-256).
        size: bytes of the entry file.
        created: ``time.time()`` when it was written.
        used: ``time.time()`` of its last use (a write or a successful get).
        meta: what :meth:`CacheStore.put` was given, e.g. ``{"node": "etl/clean"}``.
    """

    key: str
    size: int
    created: float
    used: float
    meta: dict[str, Any]


class _BadEntry(Exception):
    """Why an entry file cannot be used (internal: never leaves this module)."""


def _check_key(key: object) -> str:
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        shown = repr(key) if len(repr(key)) <= 80 else repr(key)[:77] + "..."
        raise ValueError(f"a cache key must be 64 lowercase hex digits (a SHA-256), got {shown}")
    return key


def _truncated(size: int, need: int, exact: bool = False) -> _BadEntry:
    return _BadEntry(
        f"the file is truncated: it has {size} bytes but needs {'' if exact else 'at least '}{need}"
    )


def _parse_header(data: bytes) -> tuple[dict[str, Any], int]:
    """The checked header of an entry's first bytes, and where its payload starts."""
    size = len(data)
    if size == 0:
        raise _BadEntry("the file is empty")
    if not data.startswith(MAGIC):
        if MAGIC.startswith(data[: len(MAGIC)]):
            raise _truncated(size, _PREFIX.size)
        raise _BadEntry(f"not a cache entry (it does not start with {MAGIC!r})")
    if size < _PREFIX.size:
        raise _truncated(size, _PREFIX.size)
    _, version, hlen = _PREFIX.unpack_from(data)
    if version != FORMAT_VERSION:
        raise _BadEntry(f"it is in entry format {version}, and this dagexec reads format {FORMAT_VERSION}")
    end = _PREFIX.size + hlen
    if size < end + _DIGEST:
        raise _truncated(size, end + _DIGEST)
    if not hmac.compare_digest(hashlib.sha256(data[:end]).digest(), data[end : end + _DIGEST]):
        raise _BadEntry("the header does not match its SHA-256 checksum")
    try:
        header = json.loads(data[_PREFIX.size : end].decode("utf-8"))
    except ValueError as exc:
        raise _BadEntry(f"the header is not valid JSON: {exc}") from exc
    if not isinstance(header, dict):
        raise _BadEntry("the header is not a JSON object")
    for name, typ in _FIELDS.items():
        value = header.get(name)
        negative = isinstance(value, int | float) and value < 0
        if not isinstance(value, typ) or isinstance(value, bool) or negative:
            raise _BadEntry(f"the header's {name!r} is missing or invalid")
    return header, end + _DIGEST


def _unpack(data: bytes, key: str) -> Any:
    """The value in an entry file's bytes, every check done before unpickling."""
    header, start = _parse_header(data)
    if header["key"] != key:
        raise _BadEntry(f"it holds the entry of key {header['key'][:80]!r}")
    total = start + header["payload_length"]
    if len(data) < total:
        raise _truncated(len(data), total, exact=True)
    if len(data) > total:
        raise _BadEntry(f"it has {len(data) - total} bytes after the payload")
    payload = memoryview(data)[start:]
    if hashlib.sha256(payload).hexdigest() != header["payload_sha256"]:
        raise _BadEntry("the payload does not match its SHA-256 checksum")
    try:
        return pickle.loads(payload)
    except Exception as exc:
        raise _BadEntry(f"unpickling failed: {type(exc).__name__}: {exc}") from exc


def _type_name(value: Any) -> str:
    cls = type(value)
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


class CacheStore:
    """A folder of checksummed, content-addressed values and run journals (DESIGN §7).

    Safe to share between threads and processes; see the module docstring for the layout.

    Example::

        store = CacheStore(".dagexec-cache")
        store.put(key, [1, 2, 3], {"node": "etl/clean"})
        hit, value = store.get(key)
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        """Open the store at ``path``, making the folder (and its parents) if missing.

        Raises:
            OSError: when the folder cannot be made.
        """
        self._path = Path(path).absolute()
        self._path.mkdir(parents=True, exist_ok=True)
        self._values = os.path.join(str(self._path), "values", "")  # entry paths as text: cheap

    @property
    def path(self) -> Path:
        """The store's folder."""
        return self._path

    def __repr__(self) -> str:
        return f"CacheStore({str(self._path)!r})"

    def _file(self, key: str) -> str:
        return f"{self._values}{key[:2]}{os.sep}{key[2:]}"

    def __contains__(self, key: object) -> bool:
        """Whether an entry file for ``key`` exists (cheap: the file is not checked).

        Raises:
            ValueError: when ``key`` is not 64 lowercase hex digits.
        """
        return os.path.isfile(self._file(_check_key(key)))

    def get(self, key: str) -> tuple[bool, Any]:
        """The value stored under ``key``: ``(True, value)``, or ``(False, None)`` for a miss.

        An unusable entry file is a miss; it is logged at WARNING and removed.

        Raises:
            ValueError: when ``key`` is not 64 lowercase hex digits.
        """
        path = self._file(_check_key(key))
        try:
            with open(path, "rb") as f:
                data = f.read()
                ident = os.fstat(f.fileno())
        except FileNotFoundError:
            return False, None
        except OSError as exc:
            self._discard(path, None, f"it cannot be read: {exc.strerror or exc}")
            return False, None
        try:
            value = _unpack(data, key)
        except _BadEntry as bad:
            self._discard(path, ident, str(bad))
            return False, None
        with contextlib.suppress(OSError):
            os.utime(path)
        return True, value

    def _discard(self, path: str, ident: os.stat_result | None, reason: str) -> None:
        """Log and remove a bad entry file, unless a writer has replaced it since it was read."""
        try:
            now = os.stat(path)
            if ident is None or (now.st_ino, now.st_dev) == (ident.st_ino, ident.st_dev):
                os.unlink(path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            logger.warning(
                "cannot use cache entry %s (%s) nor remove it: %s", path, exc.strerror or exc, reason
            )
            return
        logger.warning("removed cache entry %s: %s", path, reason)

    def put(self, key: str, value: Any, meta: Mapping[str, Any] | None = None) -> bool:
        """Store ``value`` under ``key``, replacing any entry there.

        Args:
            key: 64 lowercase hex digits (a SHA-256 of what made the value).
            value: anything cloudpickle pickles.
            meta: JSON-able facts kept in the header and listed by :meth:`entries`,
                e.g. ``{"node": "etl/clean", "task": "etl:clean"}``.

        Returns:
            True when the entry is written; False (logged at WARNING, the store
            unchanged) when the value cannot be pickled or the file cannot be written.

        Raises:
            ValueError: when ``key`` is not 64 lowercase hex digits.
            TypeError: when ``meta`` holds something JSON cannot write.
        """
        entry = self._pack(key, value, meta)
        return entry is not None and self._write(key, entry)

    def _pack(self, key: str, value: Any, meta: Mapping[str, Any] | None) -> list[bytes] | None:
        """The bytes of ``value``'s entry, or None (logged) when it cannot be pickled."""
        import cloudpickle

        _check_key(key)
        fields = dict(meta or {})
        try:
            payload = cloudpickle.dumps(value, protocol=5)
        except Exception as exc:
            node = fields.get("node")
            what = f"the value of node {node!r}" if node is not None else f"the value of key {key[:12]}..."
            logger.warning(
                "cannot cache %s: a %s that cannot be pickled: %s: %s",
                what, _type_name(value), type(exc).__name__, exc,
            )  # fmt: skip
            return None
        header = {
            "key": key,
            "meta": fields,
            "created": time.time(),
            "payload_length": len(payload),
            "payload_sha256": hashlib.sha256(payload).hexdigest(),
        }
        try:
            text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        except (TypeError, ValueError) as exc:
            raise TypeError(f"cache entry meta must hold only JSON values: {exc}") from exc
        head = _PREFIX.pack(MAGIC, FORMAT_VERSION, len(text)) + text
        return [head, hashlib.sha256(head).digest(), payload]

    def _write(self, key: str, entry: list[bytes]) -> bool:
        """Write an entry that :meth:`_pack` made, atomically; False (logged) on failure."""
        path = self._file(_check_key(key))
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            write_atomic(path, entry)
        except OSError as exc:
            logger.warning("cannot write cache entry %s: %s", path, exc.strerror or exc)
            return False
        return True

    def _files(self) -> Iterator[tuple[Path, str]]:
        """Every file under ``values/`` with the key its name gives ('' for anything else)."""
        with contextlib.suppress(FileNotFoundError):
            for shard in sorted(os.scandir(self._path / "values"), key=lambda e: e.name):
                if shard.is_dir():
                    for f in sorted(os.scandir(shard.path), key=lambda e: e.name):
                        key = shard.name + f.name
                        yield Path(f.path), key if _KEY.fullmatch(key) else ""

    def _entry(self, path: Path, key: str) -> CacheEntry | None:
        """The entry in ``path`` from its header, or None when it is not a readable entry."""
        try:
            with open(path, "rb") as f:
                st = os.fstat(f.fileno())
                data = f.read(_PREFIX.size)
                if len(data) == _PREFIX.size:
                    data += f.read(_PREFIX.unpack(data)[2] + _DIGEST)
            header, start = _parse_header(data)
        except (OSError, _BadEntry):
            return None
        if header["key"] != key or st.st_size != start + header["payload_length"]:
            return None
        return CacheEntry(key, st.st_size, float(header["created"]), st.st_mtime, header["meta"])

    def entries(self) -> list[CacheEntry]:
        """Every readable entry (its header checked, not its payload), oldest use first.

        Raises:
            OSError: when the store's folder cannot be listed.
        """
        found = [e for path, key in self._files() if key and (e := self._entry(path, key))]
        return sorted(found, key=lambda e: (e.used, e.key))

    def prune(self, older_than: float | None = None) -> list[CacheEntry]:
        """Remove the entries unused for more than ``older_than`` seconds (None: all of them).

        Unreadable entry files and temporary files left by a killed writer go by the same
        rule, judged by their mtime.

        Returns:
            The entries removed, oldest use first.

        Raises:
            OSError: when the store's folder cannot be listed.
        """
        now = time.time()
        removed = []
        for path, key in self._files():
            entry = self._entry(path, key) if key else None
            with contextlib.suppress(OSError):
                used = entry.used if entry else os.stat(path).st_mtime
                if older_than is None or now - used > older_than:
                    os.unlink(path)
                    if entry:
                        removed.append(entry)
        return sorted(removed, key=lambda e: (e.used, e.key))

    def journal(self, name: str) -> Journal:
        """The journal ``journal/<name>.jsonl`` of this store (created by its first append).

        Raises:
            ValueError: when ``name`` is not 1 to 128 lowercase hex digits.
        """
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise ValueError(f"a journal name must be 1 to 128 lowercase hex digits, got {name!r:.80}")
        return Journal(self._path / "journal" / f"{name}.jsonl")




class Journal:
    """An append-only file of JSON records, one a line, that survives a killed writer.

    Use it as a context manager, or call :meth:`close`, to release its descriptor.
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

    def append(self, record: Mapping[str, Any]) -> None:
        """Add ``record`` as one line, written by one ``os.write`` (no fsync; module docstring).

        Raises:
            TypeError, ValueError: when ``record`` holds something JSON cannot write.
            OSError: when the file cannot be opened or written.
        """
        line = (json.dumps(dict(record), separators=(",", ":"), ensure_ascii=False) + "\n").encode("utf-8")
        if self._fd is None:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self._path, os.O_RDWR | os.O_APPEND | os.O_CREAT | getattr(os, "O_BINARY", 0), 0o666)
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

        Raises:
            OSError: when the file exists but cannot be read.
        """
        try:
            data = self._path.read_bytes()
        except FileNotFoundError:
            return []
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
