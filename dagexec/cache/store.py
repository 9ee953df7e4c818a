"""The on-disk cache store of ``plan.run(cache="dir")`` (DESIGN §7, §10).

A store is a folder; nothing else (no server, no index file) holds its state::

    <store>/values/<key[:2]>/<key[2:]>    one entry file per cached value
    <store>/values/<key[:2]>/.<key[2:]>.<12 hex>.tmp    an entry being written
    <store>/journal/<name>.jsonl          one run's journal

An entry is content addressed: its key (64 lowercase hex digits, a SHA-256 computed by
the caller) names its file.  It is a file envelope (``dagexec/_envelope.py``, the
format of saved plans too), integers big-endian::

    offset   size  field
    -------  ----  ---------------------------------------------------------------
    0           4  magic b"DXCE"
    4           2  format version (uint16), FORMAT_VERSION
    6           4  header length H (uint32)
    10          H  header: UTF-8 JSON {"key", "meta", "created", "payload_length",
                   "payload_sha256", "signed"}; created is time.time() at the write
    10+H       32  header digest: SHA-256 of bytes [0, 10+H)
    42+H        S  signature, S = 32 when header["signed"] else 0:
                   HMAC-SHA256(key, bytes [0, 42+H) + payload)
    42+H+S      N  payload: the value pickled by cloudpickle (protocol 5), N =
                   header["payload_length"], SHA-256 in header["payload_sha256"]
    42+H+S+N       end of file: nothing may follow the payload

**Keys.**  A store opened with a key (``CacheStore(path, key=...)``, else
``DAGEXEC_KEY``) signs every entry it writes and reads only entries signed with that
key: an unsigned or wrongly signed entry is a miss before a byte of it is unpickled.
The header holds the entry's cache key, so a signed entry moved under another key's
name is a miss too.  A store without a key writes unsigned entries and reads signed
ones without checking their signature: its folder must be trusted, because an entry
is a pickle and unpickling runs code.  HMACs are computed only when a key is set.

**Links.**  The store never follows a symbolic link below its own folder: ``values``,
each shard folder and each entry (and ``journal`` and each journal file) are opened
with ``O_NOFOLLOW`` relative to their parent's descriptor, so neither ``get``,
``put``, ``prune`` nor a journal reads, writes or removes anything outside the store.
Only regular files are read, and never past the size they had when opened.

``get`` checks the file front to back (magic, version, header digest, header, length,
payload SHA-256, signature, key) before the unpickler sees a byte.  A file failing any
check, or failing to unpickle, is a miss: it is logged once at WARNING on
``dagexec.cache`` with its path and the reason, and removed, so the next ``put``
writes it again.  What is not an entry file (a link, a FIFO, a folder) is logged and
left alone.

``put`` pickles first, then writes a temporary file beside the entry and renames it
over the entry (``os.replace``), so readers see the old file or the new one, never a
part; two writers of one key both succeed and the last rename wins (same key, same
value).  Neither the file nor the folder is fsynced (an fsync costs about half a
millisecond per entry here, more than the tasks worth caching often take): a power
cut may leave a short or empty entry, or lose a rename, and ``get`` finds either and
makes it a miss.  An entry's last use is its file's mtime, which ``put`` and
every successful ``get`` set; ``prune`` removes by it, and removes nothing but entry
files and the store's own temporary files.

``journal(name)`` is a run journal (``dagexec/cache/journal.py``), reached the same way:
folders by ``_folders.open_folder``, files by ``_envelope.open_regular``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import re
import stat
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import _envelope as envelope
from .._envelope import KEY_ENV, REQUIRE_ENV, EnvelopeError, SigningKeyError
from .._files import write_atomic
from .._folders import FolderRefused, open_folder

if TYPE_CHECKING:
    from .journal import Journal

__all__ = ["FORMAT_VERSION", "MAGIC", "CacheEntry", "CacheStore", "key_problem"]

logger = logging.getLogger("dagexec.cache")

MAGIC = b"DXCE"
FORMAT_VERSION = 2  # 2: the envelope's "signed" field and optional HMAC
_KEY = re.compile(r"[0-9a-f]{64}")
_NAME = re.compile(r"[0-9a-f]{1,128}")
_SHARD = re.compile(r"[0-9a-f]{2}")
_ENTRY = re.compile(r"[0-9a-f]{62}")
_TEMP = re.compile(r"\.[0-9a-f]{62}\.[0-9a-f]{12}\.tmp")


def _bad_field(header: dict[str, Any]) -> str | None:
    if type(header.get("key")) is not str:
        return "key"
    if type(header.get("meta")) is not dict:
        return "meta"
    created = header.get("created")
    if not isinstance(created, int | float) or isinstance(created, bool) or created < 0:
        return "created"
    return None


_FORMAT = envelope.Format(
    MAGIC,
    FORMAT_VERSION,
    noun="a cache entry",
    kind="entry",
    bad_field=_bad_field,
    messages={
        "unsigned": "it is not signed, and the store has a key",
        "bad-signature": "the signature does not match the store's key "
        "(a different key signed it, or the file was changed after signing)",
    },
)


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


def _type_name(value: Any) -> str:
    cls = type(value)
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


def _store_key(key: bytes | str | None, require_signed: bool | None) -> bytes | None:
    """The key a store opened with ``key`` and ``require_signed`` signs with (see CacheStore)."""
    resolved = envelope.resolve_key(key)
    required = envelope.signatures_required() if require_signed is None else require_signed
    if required and resolved is None:
        raise SigningKeyError(
            f"signed files are required ({REQUIRE_ENV}) and no key is set: a cache store without a key "
            f"neither signs nor checks its entries; set {KEY_ENV} or pass CacheStore(path, key=...)",
            REQUIRE_ENV,
        )
    return resolved


def key_problem() -> str | None:
    """Why ``CacheStore(path)`` cannot open here (``DAGEXEC_KEY`` set but empty, or
    signatures required and no key), or None: checked before a run with a cache."""
    try:
        _store_key(None, None)
    except SigningKeyError as exc:
        return str(exc)
    return None


class CacheStore:
    """A folder of checksummed, content-addressed values and run journals (DESIGN §7).

    Safe to share between threads and processes; see the module docstring for the
    layout, the keys and the links.  Without a key the folder must be trusted: an
    entry is a pickle, and reading it runs code.

    Example::

        store = CacheStore(".dagexec-cache", key=b"team secret")
        store.put(key, [1, 2, 3], {"node": "etl/clean"})
        hit, value = store.get(key)
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        key: bytes | str | None = None,
        *,
        require_signed: bool | None = None,
    ) -> None:
        """Open the store at ``path``, making the folder (and its parents) if missing.

        Args:
            path: the store's folder; it may be a symbolic link itself, but nothing
                below it is followed.
            key: bytes or str to sign entries with; entries not signed with it are
                misses.  None: ``DAGEXEC_KEY`` when it is set, else no key.
            require_signed: refuse to open the store without a key; None lets
                ``DAGEXEC_REQUIRE_SIGNED`` decide.

        Raises:
            SigningKeyError: when the key (or ``DAGEXEC_KEY``) is set but empty, or
                signatures are required and no key is set.
            TypeError: when ``key`` is not bytes or str.
            OSError: when the folder cannot be made.
        """
        self._key = _store_key(key, require_signed)
        self._path = Path(path).absolute()
        self._path.mkdir(parents=True, exist_ok=True)
        self._values = os.path.join(str(self._path), "values")
        self._prefix = self._values + os.sep  # entry paths as text: cheap

    @property
    def path(self) -> Path:
        """The store's folder."""
        return self._path

    @property
    def signed(self) -> bool:
        """Whether the store has a key: it signs its entries and reads only those it signed."""
        return self._key is not None

    def __repr__(self) -> str:
        return f"CacheStore({str(self._path)!r}{', signed' if self._key is not None else ''})"

    def __reduce__(self) -> tuple[Any, ...]:
        if self._key is not None:
            raise TypeError(
                "a CacheStore with a key is not pickled, so that its key never travels; "
                "open the store where it is needed"
            )
        return (type(self), (str(self._path),))

    def _file(self, key: str) -> str:
        return f"{self._prefix}{key[:2]}{os.sep}{key[2:]}"

    def __contains__(self, key: object) -> bool:
        """Whether an entry file for ``key`` exists (cheap: the file is not checked).

        Raises:
            ValueError: when ``key`` is not 64 lowercase hex digits.
        """
        try:
            st = os.stat(self._file(_check_key(key)), follow_symlinks=False)
        except OSError:
            return False
        return stat.S_ISREG(st.st_mode)

    @contextlib.contextmanager
    def _shard(self, shard: str, create: bool = False) -> Iterator[int]:
        """A descriptor of ``values/<shard>``, reached without following any link.

        Raises:
            FileNotFoundError: when a folder on the way is missing (and not ``create``).
            FolderRefused: when a link or a file stands where a folder must be.
            OSError: when a folder cannot be made.
        """
        values = open_folder(self._values, create=create, what="values")
        try:
            fd = open_folder(shard, values, create=create, what=f"values{os.sep}{shard}")
        finally:
            os.close(values)
        try:
            yield fd
        finally:
            os.close(fd)

    def get(self, key: str) -> tuple[bool, Any]:
        """The value stored under ``key``: ``(True, value)``, or ``(False, None)`` for a miss.

        An unusable entry file is a miss, logged at WARNING and removed: damaged, in
        another format, unsigned or wrongly signed when the store has a key, or failing
        to unpickle.  A link, a folder or a FIFO where the entry would be is a miss,
        logged and left alone.  Nothing is unpickled before every check has passed.

        Raises:
            ValueError: when ``key`` is not 64 lowercase hex digits.
        """
        _check_key(key)
        try:
            with self._shard(key[:2]) as shard:
                return self._get(shard, key)
        except FileNotFoundError:
            return False, None
        except OSError as exc:
            logger.warning("cannot use cache entry %s: %s", self._file(key), exc.strerror or exc)
        return False, None

    def _get(self, shard: int, key: str) -> tuple[bool, Any]:
        name = key[2:]
        try:
            data, ident = envelope.read_regular(name, dir_fd=shard, follow_symlinks=False)
        except EnvelopeError as err:
            if isinstance(err.__cause__, FileNotFoundError):
                return False, None
            if err.check == "not-regular":  # a link, a FIFO, a folder: not the store's to remove
                logger.warning(
                    "cannot use cache entry %s: %s; it is left as it is", self._file(key), err.message
                )
                return False, None
            self._discard(shard, key, None, f"it cannot be read: {err.message}")
            return False, None
        try:
            value = self._unpack(data, key)
        except _BadEntry as bad:
            self._discard(shard, key, ident, str(bad))
            return False, None
        with contextlib.suppress(OSError, NotImplementedError):
            os.utime(name, dir_fd=shard, follow_symlinks=False)
        return True, value

    def _unpack(self, data: bytes, key: str) -> Any:
        """The value in an entry file's bytes, every check done before unpickling."""
        try:
            opened = envelope.unpack(_FORMAT, data, self._key)
        except EnvelopeError as err:
            raise _BadEntry(err.message) from err
        if opened.header["key"] != key:
            raise _BadEntry(f"it holds the entry of key {opened.header['key'][:80]!r}")
        try:
            return pickle.loads(opened.payload)
        except Exception as exc:
            raise _BadEntry(f"unpickling failed: {type(exc).__name__}: {exc}") from exc

    def _discard(self, shard: int, key: str, ident: os.stat_result | None, reason: str) -> None:
        """Log and remove a bad entry file, unless a writer has replaced it since it was read."""
        name, path = key[2:], self._file(key)
        try:
            now = os.stat(name, dir_fd=shard, follow_symlinks=False)
            if ident is None or (now.st_ino, now.st_dev) == (ident.st_ino, ident.st_dev):
                os.unlink(name, dir_fd=shard)
        except FileNotFoundError:
            pass
        except OSError as exc:
            logger.warning(
                "cannot use cache entry %s (%s) nor remove it: %s", path, exc.strerror or exc, reason
            )
            return
        logger.warning("removed cache entry %s: %s", path, reason)

    def put(self, key: str, value: Any, meta: Mapping[str, Any] | None = None) -> bool:
        """Store ``value`` under ``key``, replacing any entry there (signed when the store has a key).

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
        """The parts of ``value``'s entry, or None (logged) when it cannot be pickled."""
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
        header = {"key": key, "meta": fields, "created": time.time()}
        try:
            return envelope.pack(_FORMAT, header, payload, self._key)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"cache entry meta must hold only JSON values: {exc}") from exc

    def _write(self, key: str, entry: list[bytes]) -> bool:
        """Write an entry that :meth:`_pack` made, atomically; False (logged) on failure."""
        try:
            with self._shard(key[:2], create=True) as shard:
                write_atomic(key[2:], entry, dir_fd=shard)
        except OSError as exc:
            logger.warning("cannot write cache entry %s: %s", self._file(key), exc.strerror or exc)
            return False
        return True

    def _walk(self) -> Iterator[tuple[int, str, str]]:
        """``(shard descriptor, name, key)`` of every entry file under ``values/``, and
        ``(shard descriptor, name, "")`` of every temporary file; links are not
        followed (each is logged), and anything else is not the store's and is skipped."""
        try:
            values = open_folder(self._values, what="values")
        except FileNotFoundError:
            return
        except FolderRefused as exc:
            logger.warning("cache store %s: %s", self._path, exc)
            return
        try:
            for shard_entry in sorted(os.scandir(values), key=lambda e: e.name):
                if shard_entry.is_symlink():
                    self._ignore_link(shard_entry.name)
                elif shard_entry.is_dir(follow_symlinks=False) and _SHARD.fullmatch(shard_entry.name):
                    yield from self._walk_shard(values, shard_entry.name)
        finally:
            os.close(values)

    def _walk_shard(self, values: int, shard: str) -> Iterator[tuple[int, str, str]]:
        try:
            fd = open_folder(shard, values)
        except OSError:
            return  # replaced since it was listed
        try:
            for f in sorted(os.scandir(fd), key=lambda e: e.name):
                if f.is_symlink():
                    self._ignore_link(f"{shard}{os.sep}{f.name}")
                elif f.is_file(follow_symlinks=False):
                    if _ENTRY.fullmatch(f.name):
                        yield fd, f.name, shard + f.name
                    elif _TEMP.fullmatch(f.name):
                        yield fd, f.name, ""
        finally:
            os.close(fd)

    def _ignore_link(self, name: str) -> None:
        logger.warning(
            "cache store %s: ignored values%s%s, a symbolic link (the store never follows links)",
            self._path, os.sep, name,
        )  # fmt: skip

    def _entry(self, shard: int, name: str, key: str) -> CacheEntry | None:
        """The entry in ``name`` from its header, or None when it is not a readable entry."""
        try:
            header, start, st = envelope.read_head(_FORMAT, name, dir_fd=shard, follow_symlinks=False)
        except EnvelopeError:
            return None
        size = start + (envelope.SIGNATURE if header["signed"] else 0) + header["payload_length"]
        if header["key"] != key or st.st_size != size:
            return None
        return CacheEntry(key, st.st_size, float(header["created"]), st.st_mtime, header["meta"])

    def entries(self) -> list[CacheEntry]:
        """Every readable entry (its header checked, not its payload nor its signature),
        oldest use first.

        Raises:
            OSError: when the store's folder cannot be listed.
        """
        found = [e for shard, name, key in self._walk() if key and (e := self._entry(shard, name, key))]
        return sorted(found, key=lambda e: (e.used, e.key))

    def prune(self, older_than: float | None = None) -> list[CacheEntry]:
        """Remove the entries unused for more than ``older_than`` seconds (None: all of them).

        Unreadable entry files and temporary files left by a killed writer go by the same
        rule, judged by their mtime.  Nothing else is removed: no file whose name is not
        an entry's or a temporary file's, and nothing reached through a symbolic link.

        Returns:
            The entries removed, oldest use first.

        Raises:
            OSError: when the store's folder cannot be listed.
        """
        now = time.time()
        removed = []
        for shard, name, key in self._walk():
            entry = self._entry(shard, name, key) if key else None
            with contextlib.suppress(OSError):
                used = entry.used if entry else os.stat(name, dir_fd=shard, follow_symlinks=False).st_mtime
                if older_than is None or now - used > older_than:
                    os.unlink(name, dir_fd=shard)
                    if entry:
                        removed.append(entry)
        return sorted(removed, key=lambda e: (e.used, e.key))

    def journal(self, name: str) -> Journal:
        """The journal ``journal/<name>.jsonl`` of this store (created by its first append).

        Raises:
            ValueError: when ``name`` is not 1 to 128 lowercase hex digits.
        """
        from .journal import Journal

        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise ValueError(f"a journal name must be 1 to 128 lowercase hex digits, got {name!r:.80}")
        return Journal(self._path / "journal" / f"{name}.jsonl")
