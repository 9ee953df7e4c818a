"""The one file envelope of artifacts, cache entries and repro bundles (DESIGN §6, §7, §14).

Every file dagexec writes for a later process to read is an envelope around a payload.
Each kind of file has its own magic and format version; the layout is the same.
Integers are big-endian::

    offset        size  field
    ------------  ----  ---------------------------------------------------------
    0                4  magic: b"DAGX" artifacts, b"DXCE" cache entries, ...
    4                2  format version (uint16), the kind's own
    6                4  header length H (uint32)
    10               H  header: a UTF-8 JSON object; the envelope owns
                        "payload_length", "payload_sha256" and "signed",
                        the kind of file every other field
    10+H            32  header digest: SHA-256 of bytes [0, 10+H)
    42+H             S  signature, S = 32 when header["signed"] else 0:
                        HMAC-SHA256(key, bytes [0, 42+H) + payload)
    42+H+S           N  payload, N = header["payload_length"]
    42+H+S+N            end of file: nothing may follow the payload

:func:`unpack` checks a file's bytes front to back and raises :class:`EnvelopeError`
at the first check that fails; its ``check`` says which, its ``reason`` is the word
the caller reports (artifacts put it in ``ArtifactError.reason``), and its message
comes from a template the kind of file may reword (:class:`Format`)::

    check            reason          the file ...
    ---------------  --------------  ----------------------------------------------
    unreadable       unreadable      cannot be opened or read
    not-regular      not-regular     is a folder, a FIFO, a device, a socket or
                                     (where links are not followed) a symbolic link
    empty            empty           has no bytes
    foreign          foreign         does not start with the magic
    format-version   format-version  is in another format version
    truncated        truncated       ends before a part it announces
    header-digest    corrupted       has a header that fails its SHA-256
    header-json      corrupted       has a header that is not JSON (or nests too deep)
    header-object    corrupted       has a header that is not a JSON object
    header-field     corrupted       has a header field missing or of the wrong type
    trailing         corrupted       has bytes after the payload
    payload-digest   corrupted       has a payload that fails its SHA-256
    unsigned         unsigned        is not signed, and a key is set
    unsigned-required unsigned       is not signed, and signatures are required
    bad-signature    bad-signature   is signed, and the HMAC does not match the key
    key-required     key-required    is signed, no key is set, and the caller
                                     refuses what it cannot verify

Keys: :func:`resolve_key` turns ``key=`` or ``DAGEXEC_KEY`` into bytes or None; a key
that is set but empty is a :class:`SigningKeyError`, never "no key" (what a CI secret
that is not available expands to).  :func:`signatures_required` reads
``DAGEXEC_REQUIRE_SIGNED``.

Reading: :func:`read_regular` reads a regular file and nothing else (a FIFO would
block, ``/dev/zero`` would never end), opened without blocking, and never past the
size ``fstat`` gave; :func:`open_regular` is how it opens one, and how run journals
open theirs to append.  This module imports nothing of dagexec but its errors.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import stat
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ._errors import DagexecError

__all__ = [
    "CORRUPTED_SAYS_SO",
    "DIGEST",
    "KEY_ENV",
    "PREFIX",
    "REQUIRE_ENV",
    "SIGNATURE",
    "EnvelopeError",
    "Format",
    "Opened",
    "SigningKeyError",
    "open_regular",
    "pack",
    "parse_header",
    "read_head",
    "read_regular",
    "resolve_key",
    "signatures_required",
    "unpack",
]

KEY_ENV = "DAGEXEC_KEY"
REQUIRE_ENV = "DAGEXEC_REQUIRE_SIGNED"
PREFIX = struct.Struct(">4sHI")  # magic, format version, header length
DIGEST = 32  # SHA-256 of prefix + header
SIGNATURE = 32  # HMAC-SHA256
_OFF = frozenset({"", "0", "false", "no", "off"})


# -- keys ------------------------------------------------------------------------------


class SigningKeyError(DagexecError, ValueError):
    """A signing key is set but empty, or signatures are required where no key is set.

    Attributes:
        source: where the key came from: ``"key="`` or ``"DAGEXEC_KEY"``.
    """

    def __init__(self, message: str, source: str) -> None:
        super().__init__(message)
        self.source = source

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.args[0], self.source))


def resolve_key(key: bytes | str | None) -> bytes | None:
    """``key`` as bytes; with None, ``DAGEXEC_KEY``'s; None when neither is set.

    Raises:
        SigningKeyError: when the key, or ``DAGEXEC_KEY``, is set but empty.
        TypeError: when ``key`` is not bytes or str.
    """
    source = "key="
    if key is None:
        env = os.environ.get(KEY_ENV)
        if env is None:
            return None
        key, source = env, KEY_ENV
    if isinstance(key, str):
        key = key.encode("utf-8")
    if not isinstance(key, (bytes, bytearray)):
        raise TypeError(f"key must be bytes or str, got {type(key).__name__}")
    if not key:
        if source == KEY_ENV:
            message = (
                f"{KEY_ENV} is set but empty (what a secret that is not available expands to); "
                f"set it to the signing key, or unset it"
            )
        else:
            message = "the key is empty; pass the signing key, or key=None"
        raise SigningKeyError(message, source)
    return bytes(key)


def signatures_required(flag: bool = False) -> bool:
    """Whether only signed files may be loaded: ``flag``, or ``DAGEXEC_REQUIRE_SIGNED``.

    The variable counts as set unless it is empty, ``0``, ``false``, ``no`` or ``off``:
    a switch that guards against running unsigned code fails closed.
    """
    return flag or os.environ.get(REQUIRE_ENV, "").strip().lower() not in _OFF


# -- errors and formats -----------------------------------------------------------------

# check -> (reason, default message template)
_CHECKS: dict[str, tuple[str, str]] = {
    "unreadable": ("unreadable", "{error}"),
    "not-regular": ("not-regular", "it is {filetype}, not a regular file (only regular files are read)"),
    "empty": ("empty", "the file is empty"),
    "foreign": ("foreign", "not {noun} (it does not start with {magic!r})"),
    "format-version": ("format-version", "it is in {kind} format {version}, and this dagexec reads format {current}"),
    "truncated": ("truncated", "the file is truncated: it has {size} bytes but needs {need}"),
    "header-digest": ("corrupted", "the header does not match its SHA-256 checksum"),
    "header-json": ("corrupted", "the header is not valid JSON: {error}"),
    "header-object": ("corrupted", "the header is not a JSON object"),
    "header-field": ("corrupted", "the header's {field!r} is missing or invalid"),
    "trailing": ("corrupted", "it has {extra} bytes after the payload"),
    "payload-digest": ("corrupted", "the payload does not match its SHA-256 checksum"),
    "unsigned": ("unsigned", "it is not signed, but a key is set"),
    "unsigned-required": ("unsigned", "it is not signed, and only signed files are read"),
    "bad-signature": ("bad-signature", "the signature does not match the key "
                      "(a different key signed it, or the file was changed after signing)"),
    "key-required": ("key-required", "it is signed and no key was given to verify it"),
}  # fmt: skip


#: the corruption checks' messages saying so, for a kind of file read by people
#: (artifacts, bundles): ``Format(messages={**CORRUPTED_SAYS_SO, ...})``
CORRUPTED_SAYS_SO: dict[str, str] = {
    check: message.replace("it has", "the file has") + " (the file is corrupted)"
    for check, (reason, message) in _CHECKS.items()
    if reason == "corrupted"
}


class EnvelopeError(Exception):
    """Why a file is refused (internal: each caller turns it into its own error or miss).

    Attributes:
        check: which check failed (module docstring).
        reason: the word callers report for it.
        message: one sentence saying what is wrong.
    """

    def __init__(self, check: str, message: str) -> None:
        super().__init__(message)
        self.check = check
        self.reason = _CHECKS[check][0]
        self.message = message


def _no_fields(header: dict[str, Any]) -> str | None:
    return None


@dataclass(frozen=True)
class Format:
    """One kind of enveloped file.

    Attributes:
        magic: its first 4 bytes.
        version: the format version this dagexec writes and reads.
        noun: what it is, for ``not <noun>``: ``"a dagexec artifact"``.
        kind: for ``it is in <kind> format 2``: ``"artifact"``.
        bad_field: the name of the first of its own header fields that is missing or of
            the wrong type, or None; called after the envelope's fields are checked.
        messages: check -> message template, to reword the defaults (module docstring).
    """

    magic: bytes
    version: int
    noun: str
    kind: str
    bad_field: Callable[[dict[str, Any]], str | None] = _no_fields
    messages: Mapping[str, str] = field(default_factory=dict)

    def fail(self, check: str, **facts: Any) -> EnvelopeError:
        template = self.messages.get(check, _CHECKS[check][1])
        facts.setdefault("noun", self.noun)
        facts.setdefault("kind", self.kind)
        facts.setdefault("magic", self.magic)
        facts.setdefault("current", self.version)
        return EnvelopeError(check, template.format(**facts))


@dataclass(frozen=True)
class Opened:
    """A checked envelope: its header, its payload, whether it is signed and verified."""

    header: dict[str, Any]
    payload: memoryview
    signed: bool
    verified: bool


# -- writing -----------------------------------------------------------------------------


def pack(fmt: Format, header: Mapping[str, Any], payload: bytes, key: bytes | None) -> list[bytes]:
    """The parts of an envelope holding ``header`` and ``payload``, to be written in order.

    ``payload_length``, ``payload_sha256`` and ``signed`` are set from ``payload`` and
    ``key`` (a key resolved by :func:`resolve_key`); the other fields are written as given.

    Raises:
        TypeError, ValueError: when JSON cannot write ``header``.
    """
    fields = dict(header)
    fields["payload_length"] = len(payload)
    fields["payload_sha256"] = hashlib.sha256(payload).hexdigest()
    fields["signed"] = key is not None
    text = json.dumps(fields, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    head = PREFIX.pack(fmt.magic, fmt.version, len(text)) + text
    head += hashlib.sha256(head).digest()
    parts = [head]
    if key is not None:
        mac = hmac.new(key, head, hashlib.sha256)
        mac.update(payload)
        parts.append(mac.digest())
    parts.append(payload)
    return parts


# -- reading -----------------------------------------------------------------------------


def _truncated(fmt: Format, size: int, need: int, exact: bool = False) -> EnvelopeError:
    return fmt.fail("truncated", size=size, need=f"{'' if exact else 'at least '}{need}")


def _bad_envelope_field(header: dict[str, Any]) -> str | None:
    length = header.get("payload_length")
    if type(length) is not int or length < 0:
        return "payload_length"
    if type(header.get("payload_sha256")) is not str:
        return "payload_sha256"
    if type(header.get("signed")) is not bool:
        return "signed"
    return None


def parse_header(fmt: Format, data: bytes | memoryview, size: int) -> tuple[dict[str, Any], int]:
    """The checked header of a file of ``size`` bytes whose first bytes are ``data``, and
    where the header's digest ends (where the signature or the payload starts).

    Raises:
        EnvelopeError: ``empty``, ``foreign``, ``format-version``, ``truncated``,
            ``header-digest``, ``header-json``, ``header-object`` or ``header-field``.
    """
    if size == 0:
        raise fmt.fail("empty")
    magic = bytes(data[: len(fmt.magic)])
    if magic != fmt.magic:
        if fmt.magic.startswith(magic):
            raise _truncated(fmt, size, PREFIX.size)
        raise fmt.fail("foreign")
    if len(data) < len(fmt.magic) + 2:
        raise _truncated(fmt, size, PREFIX.size)
    (version,) = struct.unpack_from(">H", data, len(fmt.magic))
    if version != fmt.version:
        raise fmt.fail("format-version", version=version)
    if len(data) < PREFIX.size:
        raise _truncated(fmt, size, PREFIX.size)
    _, _, hlen = PREFIX.unpack_from(data)
    end = PREFIX.size + hlen
    if len(data) < end + DIGEST:
        raise _truncated(fmt, size, end + DIGEST)
    if not hmac.compare_digest(hashlib.sha256(data[:end]).digest(), bytes(data[end : end + DIGEST])):
        raise fmt.fail("header-digest")
    try:
        header = json.loads(bytes(data[PREFIX.size : end]).decode("utf-8"))
    except ValueError as exc:
        raise fmt.fail("header-json", error=exc) from exc
    except RecursionError as exc:  # a header nesting thousands deep
        raise fmt.fail("header-json", error="it nests too deeply") from exc
    if not isinstance(header, dict):
        raise fmt.fail("header-object")
    bad = _bad_envelope_field(header) or fmt.bad_field(header)
    if bad is not None:
        raise fmt.fail("header-field", field=bad)
    return header, end + DIGEST


def unpack(
    fmt: Format,
    data: bytes | memoryview,
    key: bytes | None,
    require_signed: bool = False,
    refuse_unverified: bool = False,
) -> Opened:
    """Check an envelope's bytes and split them; nothing is unpickled.

    Args:
        fmt: the kind of file expected.
        data: the whole file.
        key: a key resolved by :func:`resolve_key`; when set, the file must be signed with it.
        require_signed: refuse an unsigned file even without a key.
        refuse_unverified: refuse a signed file when no key is set to verify it.

    Raises:
        EnvelopeError: at the first check that fails (module docstring).
    """
    view = memoryview(data)
    size = len(view)
    header, digest_end = parse_header(fmt, view, size)
    signed: bool = header["signed"]
    start = digest_end + (SIGNATURE if signed else 0)
    total = start + header["payload_length"]
    if size < total:
        raise _truncated(fmt, size, total, exact=True)
    if size > total:
        raise fmt.fail("trailing", extra=size - total)
    payload = view[start:]
    if hashlib.sha256(payload).hexdigest() != header["payload_sha256"]:
        raise fmt.fail("payload-digest")
    if key is None:
        if not signed and require_signed:
            raise fmt.fail("unsigned-required")
        if signed and refuse_unverified:
            raise fmt.fail("key-required")
        return Opened(header, payload, signed, False)
    if not signed:
        raise fmt.fail("unsigned")
    mac = hmac.new(key, view[:digest_end], hashlib.sha256)
    mac.update(payload)
    if not hmac.compare_digest(mac.digest(), bytes(view[digest_end:start])):
        raise fmt.fail("bad-signature")
    return Opened(header, payload, True, True)


# -- regular files, bounded reads ----------------------------------------------------------

_COMMON_FLAGS = getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
_OPEN_FLAGS = os.O_RDONLY | _COMMON_FLAGS
_APPEND_FLAGS = os.O_RDWR | os.O_APPEND | os.O_CREAT | _COMMON_FLAGS
_FILETYPES = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISLNK, "a symbolic link"),
)
_ANY = Format(b"", 0, "a file", "file")


def _filetype(mode: int) -> str:
    return next((name for test, name in _FILETYPES if test(mode)), "not a regular file")


def open_regular(
    path: str, dir_fd: int | None = None, follow_symlinks: bool = True, *, append: bool = False
) -> tuple[int, os.stat_result]:
    """A descriptor of the regular file ``path`` (relative to ``dir_fd`` when given) and
    its stat; the caller closes it.

    The file is checked before it is opened (opening some devices has effects) and again
    after (it may have been swapped); it is opened without blocking (a FIFO would wait
    for a writer).  ``append``: opened to read and append, made (mode 0o666 less the
    umask) when missing.

    Raises:
        EnvelopeError: ``unreadable`` (the ``OSError`` is the ``__cause__``; a missing
            file's is a ``FileNotFoundError``) or ``not-regular``.
    """
    flags = _APPEND_FLAGS if append else _OPEN_FLAGS
    flags |= 0 if follow_symlinks else getattr(os, "O_NOFOLLOW", 0)
    try:
        try:
            before = os.stat(path, dir_fd=dir_fd, follow_symlinks=follow_symlinks)
        except FileNotFoundError:
            if not append:
                raise
        else:
            if not stat.S_ISREG(before.st_mode):
                raise _ANY.fail("not-regular", filetype=_filetype(before.st_mode))
        fd = os.open(path, flags, 0o666, dir_fd=dir_fd)
    except OSError as exc:
        raise _ANY.fail("unreadable", error=exc.strerror or exc) from exc
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise _ANY.fail("not-regular", filetype=_filetype(st.st_mode))
    except BaseException:
        os.close(fd)
        raise
    return fd, st


def _read_upto(fd: int, count: int) -> bytes:
    """At most ``count`` bytes from ``fd``; fewer only at the end of the file."""
    chunks = []
    while count > 0:
        chunk = os.read(fd, min(count, 1 << 30))
        if not chunk:
            break
        chunks.append(chunk)
        count -= len(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def read_regular(
    path: str, dir_fd: int | None = None, follow_symlinks: bool = True
) -> tuple[bytes, os.stat_result]:
    """The bytes of the regular file ``path`` (relative to ``dir_fd`` when given) and
    its stat; never more bytes than its size when it was opened.

    Raises:
        EnvelopeError: ``unreadable`` (the ``OSError`` is the ``__cause__``; a missing
            file's is a ``FileNotFoundError``) or ``not-regular``.
    """
    fd, st = open_regular(path, dir_fd, follow_symlinks)
    try:
        return _read_upto(fd, st.st_size), st
    except OSError as exc:
        raise _ANY.fail("unreadable", error=exc.strerror or exc) from exc
    finally:
        os.close(fd)


def read_head(
    fmt: Format, path: str, dir_fd: int | None = None, follow_symlinks: bool = True
) -> tuple[dict[str, Any], int, os.stat_result]:
    """The checked header of the regular file ``path``, where its digest ends, and its
    stat, reading only the prefix and the header (bounded by the file's size).

    Raises:
        EnvelopeError: as :func:`read_regular` and :func:`parse_header` do.
    """
    fd, st = open_regular(path, dir_fd, follow_symlinks)
    try:
        data = _read_upto(fd, min(PREFIX.size, st.st_size))
        if len(data) == PREFIX.size and data.startswith(fmt.magic):
            hlen = PREFIX.unpack(data)[2]
            data += _read_upto(fd, min(hlen + DIGEST, st.st_size - PREFIX.size))
    except OSError as exc:
        raise _ANY.fail("unreadable", error=exc.strerror or exc) from exc
    finally:
        os.close(fd)
    header, digest_end = parse_header(fmt, data, st.st_size)
    return header, digest_end, st
