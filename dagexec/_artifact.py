"""Compiled graphs as files: ``plan.save(path)`` and ``dagexec.load(path)`` (DESIGN §6).

An artifact is a fixed prefix, a JSON header, the header's checksum, an optional
signature and a cloudpickle payload.  Integers are big-endian::

    offset        size  field
    ------------  ----  ---------------------------------------------------------
    0                4  magic b"DAGX"
    4                2  format version (uint16), FORMAT_VERSION
    6                4  header length H (uint32)
    10               H  header: a UTF-8 JSON object (HEADER FIELDS below)
    10+H            32  header digest: SHA-256 of bytes [0, 10+H)
    42+H             S  signature, S = 32 when header["signed"] else 0:
                        HMAC-SHA256(key, bytes [0, 42+H) + payload)
    42+H+S           N  payload: the CompiledGraph pickled by cloudpickle,
                        N = header["payload_length"], SHA-256 in header["payload_sha256"]
    42+H+S+N            end of file: nothing may follow the payload

``load`` reads the whole file and checks it front to back before the unpickler sees
a byte of the payload; the first check that fails raises :class:`ArtifactError`
with its ``reason``::

    read the file ........................ unreadable
    0 bytes .............................. empty
    magic ................................ foreign     (a prefix of the magic: truncated)
    format version ....................... format-version
    prefix, header, digest present ....... truncated
    header digest, header JSON ........... corrupted
    signature, payload present ........... truncated   (bytes after it: corrupted)
    payload SHA-256 ...................... corrupted
    key given, file not signed ........... unsigned
    key given, HMAC differs .............. bad-signature
    no key given, file signed ............ key-required
    Python major.minor, implementation ... python-version
    requirements installed ............... requirements
    unpickle ............................. unpickle-failed, not-a-plan

Saving pickles the plan with every "user module" (a module whose file is neither
in the standard library nor under a ``site-packages``/``dist-packages`` folder, and
is not dagexec) registered with ``cloudpickle.register_pickle_by_value``, so its code
travels inside the payload; everything else travels by reference.  The pickler
records the module of every class, function and module object it meets; those from
installed distributions become the header's ``requirements``.  The bytes are
written to a temporary file in the target's folder, flushed to disk and renamed
over the target, so a reader sees the old file or the new one, never a part.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import pickle
import struct
import sys
from typing import TYPE_CHECKING, Any

from . import _portable
from ._errors import ArtifactError
from ._files import write_atomic

if TYPE_CHECKING:
    from ._plan import CompiledGraph

__all__ = ["FORMAT_VERSION", "MAGIC", "load", "pack", "read_header", "save", "unpack"]

logger = logging.getLogger(__name__)

MAGIC = b"DAGX"
FORMAT_VERSION = 1
_PREFIX = struct.Struct(">4sHI")  # magic, format version, header length
_DIGEST = 32  # SHA-256 of prefix + header
_SIGNATURE = 32  # HMAC-SHA256
KEY_ENV = "DAGEXEC_KEY"

# Header fields that ``pack`` fills in; the rest describe the plan and its origin.
_REQUIRED = {"payload_length": int, "payload_sha256": str, "signed": bool}


# -- keys ----------------------------------------------------------------------------


def _resolve_key(key: bytes | str | None) -> bytes | None:
    """``key`` as bytes, else the ``DAGEXEC_KEY`` variable's, else None."""
    if key is None:
        key = os.environ.get(KEY_ENV) or None
        if key is None:
            return None
    if isinstance(key, str):
        key = key.encode("utf-8")
    if not isinstance(key, (bytes, bytearray)):
        raise TypeError(f"key must be bytes or str, got {type(key).__name__}")
    if not key:
        raise ValueError("key must not be empty")
    return bytes(key)


# -- the byte layout -------------------------------------------------------------------


def pack(header: dict[str, Any], payload: bytes, key: bytes | str | None = None) -> bytes:
    """The bytes of an artifact holding ``header`` and ``payload``.

    ``payload_length``, ``payload_sha256`` and ``signed`` are set from ``payload`` and
    ``key``; every other field of ``header`` is written as given.

    Raises:
        TypeError, ValueError: for a key that is not non-empty bytes or str.
    """
    k = _resolve_key(key)
    fields = dict(header)
    fields["payload_length"] = len(payload)
    fields["payload_sha256"] = hashlib.sha256(payload).hexdigest()
    fields["signed"] = k is not None
    text = json.dumps(fields, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    head = _PREFIX.pack(MAGIC, FORMAT_VERSION, len(text)) + text
    head += hashlib.sha256(head).digest()
    parts = [head]
    if k is not None:
        mac = hmac.new(k, head, hashlib.sha256)
        mac.update(payload)
        parts.append(mac.digest())
    parts.append(payload)
    return b"".join(parts)


def unpack(
    data: bytes, path: str = "<bytes>", key: bytes | str | None = None
) -> tuple[dict[str, Any], memoryview, bool]:
    """Check an artifact's bytes and split them into header, payload and whether a key
    verified the signature.

    Checks everything but the Python version and the requirements; unpickles nothing.

    Raises:
        ArtifactError: ``empty``, ``foreign``, ``format-version``, ``truncated``,
            ``corrupted``, ``unsigned`` or ``bad-signature``.
        TypeError, ValueError: for a key that is not non-empty bytes or str.
    """
    k = _resolve_key(key)
    check = _Check(path, len(data))
    header, end = _header(data, check)
    start = end + _DIGEST + (_SIGNATURE if header["signed"] else 0)
    total = start + header["payload_length"]
    if check.size < total:
        raise check.truncated(total, exact=True)
    if check.size > total:
        raise check.fail(
            "corrupted", f"the file has {check.size - total} bytes after the payload (the file is corrupted)"
        )
    view = memoryview(data)
    payload = view[start:]
    if hashlib.sha256(payload).hexdigest() != header["payload_sha256"]:
        raise check.fail(
            "corrupted", "the payload does not match its SHA-256 checksum (the file is corrupted)"
        )
    if k is None:
        return header, payload, False
    if not header["signed"]:
        raise check.fail(
            "unsigned",
            f"the artifact is not signed, but a key is set (key= or {KEY_ENV}); "
            "save the plan again with that key to sign it",
        )
    mac = hmac.new(k, view[: end + _DIGEST], hashlib.sha256)
    mac.update(payload)
    if not hmac.compare_digest(mac.digest(), view[end + _DIGEST : start]):
        raise check.fail(
            "bad-signature",
            "the signature does not match the key "
            "(a different key signed it, or the file was changed after signing)",
        )
    return header, payload, True


class _Check:
    """Makes the ArtifactErrors of one file."""

    def __init__(self, path: str, size: int) -> None:
        self.path = path
        self.size = size

    def fail(self, reason: str, what: str) -> ArtifactError:
        return ArtifactError(f"cannot load {self.path!r}: {what}", reason, self.path)

    def truncated(self, need: int, exact: bool) -> ArtifactError:
        at_least = "" if exact else "at least "
        return self.fail(
            "truncated", f"the file is truncated: it has {self.size} bytes but needs {at_least}{need}"
        )


def _header(data: bytes, check: _Check) -> tuple[dict[str, Any], int]:
    """The checked header of ``data`` and where it ends (where its digest starts)."""
    size = check.size
    if size == 0:
        raise check.fail("empty", "the file is empty")
    if not data.startswith(MAGIC):
        if MAGIC.startswith(data[: len(MAGIC)]):
            raise check.truncated(_PREFIX.size, exact=False)
        raise check.fail("foreign", f"not a dagexec artifact (it does not start with {MAGIC!r})")
    if size < len(MAGIC) + 2:
        raise check.truncated(_PREFIX.size, exact=False)
    (version,) = struct.unpack_from(">H", data, len(MAGIC))
    if version != FORMAT_VERSION:
        raise check.fail(
            "format-version",
            f"it is in artifact format {version}, and this dagexec reads format {FORMAT_VERSION}; "
            "load it with the dagexec version that saved it, or save the plan again",
        )
    if size < _PREFIX.size:
        raise check.truncated(_PREFIX.size, exact=False)
    _, _, hlen = _PREFIX.unpack_from(data)
    end = _PREFIX.size + hlen
    if size < end + _DIGEST:
        raise check.truncated(end + _DIGEST, exact=False)
    if not hmac.compare_digest(hashlib.sha256(data[:end]).digest(), data[end : end + _DIGEST]):
        raise check.fail(
            "corrupted", "the header does not match its SHA-256 checksum (the file is corrupted)"
        )
    try:
        header = json.loads(data[_PREFIX.size : end].decode("utf-8"))
    except ValueError as exc:
        raise check.fail("corrupted", f"the header is not valid JSON: {exc}") from exc
    if not isinstance(header, dict):
        raise check.fail("corrupted", "the header is not a JSON object")
    for name, typ in _REQUIRED.items():
        value = header.get(name)
        if type(value) is not typ or (isinstance(value, int) and value < 0):
            raise check.fail("corrupted", f"the header's {name!r} is missing or invalid")
    return header, end


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise ArtifactError(f"cannot load {path!r}: {exc.strerror or exc}", "unreadable", path) from exc


# -- what this Python is ---------------------------------------------------------------


def _python_version() -> str:
    return f"{sys.version_info[0]}.{sys.version_info[1]}"


def _dagexec_version() -> str:
    from . import __version__

    return __version__


# -- save, load, read_header -----------------------------------------------------------


def save(plan: CompiledGraph, path: str | os.PathLike[str], key: bytes | str | None = None) -> None:
    """Write ``plan`` to ``path`` as an artifact; see :meth:`CompiledGraph.save`."""
    import cloudpickle

    where = os.fspath(path)
    plan.require_portable("save()")
    k = _resolve_key(key)
    # the fingerprint pickles some constants: take it before user modules go by value
    manifest = plan.to_dict()
    modules: set[str] = set()
    with _portable.user_modules_by_value():
        try:
            payload = _portable.dump(plan, modules)
        except Exception as exc:
            who = _portable.culprit(plan)
            raise ArtifactError(
                f"cannot save graph {plan.name!r} to {where!r}: "
                f"{who + ' ' if who else ''}cannot be pickled by value: {type(exc).__name__}: {exc}",
                "unpicklable",
                where,
            ) from exc
    header = {
        "dagexec_version": _dagexec_version(),
        "python_version": _python_version(),
        "python_implementation": sys.implementation.name,
        "cloudpickle_version": cloudpickle.__version__,
        "graph": plan.name,
        "fingerprint": manifest["fingerprint"],
        "node_count": len(plan),
        "requirements": _portable.requirements(modules),
        "by_value": sorted(
            m for m in modules if m in sys.modules and _portable.module_kind(m) == _portable.USER
        ),
        "manifest": manifest,
    }
    write_atomic(where, [pack(header, payload, k)], durable=True)


def read_header(path: str | os.PathLike[str], key: bytes | str | None = None) -> dict[str, Any]:
    """Read and check an artifact's header without unpickling anything.

    Args:
        path: the artifact.
        key: the signing key; when given (or set in ``DAGEXEC_KEY``) the signature
            is checked as :func:`load` checks it.

    Returns:
        The header as plain data: ``format_version``, ``dagexec_version``,
        ``python_version``, ``python_implementation``, ``cloudpickle_version``,
        ``graph`` (its name), ``fingerprint``, ``node_count``, ``payload_length``,
        ``payload_sha256``, ``signed``, ``verified``, ``requirements`` (a list of
        ``{"distribution", "version", "modules"}``), ``by_value`` (the modules whose
        code is inside) and ``manifest`` (:meth:`CompiledGraph.to_dict` at save time).

    Raises:
        ArtifactError: when the file is unreadable, empty, foreign, of another format
            version, truncated, corrupted, unsigned while a key is set, or wrongly signed.
    """
    where = os.fspath(path)
    header, _, verified = unpack(_read(where), where, key)
    return {"format_version": FORMAT_VERSION, **header, "verified": verified}


def load(path: str | os.PathLike[str], key: bytes | str | None = None) -> CompiledGraph:
    """Load a plan saved with :meth:`CompiledGraph.save`.

    Loading runs code from the file: only load artifacts you trust, and sign them.
    Every check happens before a byte of the payload is unpickled.

    Args:
        path: the artifact.
        key: bytes or str; when given, or when ``DAGEXEC_KEY`` is set, the file must
            be signed with it.

    Returns:
        The plan.

    Raises:
        ArtifactError: with ``.reason`` one of ``unreadable``, ``empty``, ``foreign``,
            ``format-version``, ``truncated``, ``corrupted``, ``unsigned``,
            ``bad-signature``, ``key-required``, ``python-version``, ``requirements``,
            ``unpickle-failed``, ``not-a-plan`` (docs/artifacts.md).
        TypeError, ValueError: for a key that is not non-empty bytes or str.
    """
    import cloudpickle

    from ._plan import CompiledGraph

    where = os.fspath(path)
    header, payload, verified = unpack(_read(where), where, key)
    if header["signed"] and not verified:
        raise ArtifactError(
            f"cannot load {where!r}: it is signed and no key was given to verify it "
            f"(pass key= or set {KEY_ENV})",
            "key-required",
            where,
        )
    saved = (header.get("python_version"), header.get("python_implementation"))
    here = (_python_version(), sys.implementation.name)
    if saved != here:
        raise ArtifactError(
            f"cannot load {where!r}: it was saved by {_python_name(*saved)} and this is {_python_name(*here)} "
            f"(pickled code only loads in the same Python minor version); load it with {_python_name(*saved)} "
            "or save the plan again with this one",
            "python-version",
            where,
        )
    missing, different = _portable.check_requirements(header)
    if different:
        logger.warning("%s was saved with other versions of: %s", where, ", ".join(different))
    if missing:
        raise ArtifactError(
            f"cannot load {where!r}: it needs {', '.join(missing)}, not installed here; install "
            f"{'it' if len(missing) == 1 else 'them'} and load it again",
            "requirements",
            where,
        )
    for field, mine in (
        ("dagexec_version", _dagexec_version()),
        ("cloudpickle_version", cloudpickle.__version__),
    ):
        if header.get(field) != mine:
            logger.warning(
                "%s was saved with %s %s; this is %s", where, field.split("_")[0], header.get(field), mine
            )
    try:
        plan = pickle.loads(payload)
    except Exception as exc:
        raise ArtifactError(
            f"cannot load {where!r}: unpickling the plan failed: {type(exc).__name__}: {exc}",
            "unpickle-failed",
            where,
        ) from exc
    if not isinstance(plan, CompiledGraph):
        raise ArtifactError(
            f"cannot load {where!r}: its payload is a {type(plan).__name__}, not a CompiledGraph",
            "not-a-plan",
            where,
        )
    fingerprint = header.get("fingerprint")
    if isinstance(fingerprint, str) and len(fingerprint) == 64:
        # the plan as saved: constants of classes that came by value pickle to other
        # bytes here, and would hash differently if the fingerprint were taken again
        object.__setattr__(plan, "_fingerprint", fingerprint)
    return plan


def _python_name(version: Any, implementation: Any) -> str:
    impl = {"cpython": "CPython", "pypy": "PyPy"}.get(str(implementation), str(implementation))
    return f"{impl} {version}"
