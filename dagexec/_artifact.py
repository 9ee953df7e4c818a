"""Compiled graphs as files: ``plan.save(path)`` and ``dagexec.load(path)`` (DESIGN §6).

An artifact is a fixed prefix, a JSON header, the header's checksum, an optional
signature and a cloudpickle payload.  Integers are big-endian::

    offset        size  field
    ------------  ----  ---------------------------------------------------------
    0                4  magic b"DAGX"
    4                2  format version (uint16), FORMAT_VERSION
    6                4  header length H (uint32)
    10               H  header: a UTF-8 JSON object (the fields read_header lists)
    10+H            32  header digest: SHA-256 of bytes [0, 10+H)
    42+H             S  signature, S = 32 when header["signed"] else 0:
                        HMAC-SHA256(key, bytes [0, 42+H) + payload)
    42+H+S           N  payload: the CompiledGraph pickled by cloudpickle,
                        N = header["payload_length"], SHA-256 in header["payload_sha256"]
    42+H+S+N            end of file: nothing may follow the payload

The layout is the file envelope's (``dagexec/_envelope.py``), shared with cache
entries and repro bundles; this module adds the magic, the header's own fields (each
checked for its type, so a hostile header is ``corrupted``, never a crash) and the
messages.  ``load`` reads the regular file at ``path``, never past its size, and
checks it front to back before the unpickler sees a byte of the payload; the first
check that fails raises :class:`ArtifactError` with its ``reason``::

    key= or DAGEXEC_KEY set but empty .... empty-key
    open, read the file .................. unreadable
    a folder, FIFO, device, socket ....... not-regular
    0 bytes .............................. empty
    magic ................................ foreign     (a prefix of the magic: truncated)
    format version ....................... format-version
    prefix, header, digest present ....... truncated
    header digest, JSON, field types ..... corrupted
    signature, payload present ........... truncated   (bytes after it: corrupted)
    payload SHA-256 ...................... corrupted
    key given, file not signed ........... unsigned
    signatures required, none ............ unsigned    (require_signed, DAGEXEC_REQUIRE_SIGNED)
    key given, HMAC differs .............. bad-signature
    no key given, file signed ............ key-required
    expect_graph, expect_fingerprint ..... unexpected-plan
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
over the target, so a reader sees the old file or the new one, never a part; the
temporary files of the same target that killed writers left, unchanged for ten
minutes, are removed first.
"""

from __future__ import annotations

import logging
import os
import pickle
import re
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import _envelope as envelope
from ._envelope import KEY_ENV, REQUIRE_ENV, EnvelopeError, SigningKeyError
from ._errors import ArtifactError
from ._files import remove_stale_temps, write_atomic
from ._version import __version__ as dagexec_version
from .plan import portable as _portable

if TYPE_CHECKING:
    from .plan.compiled import CompiledGraph

__all__ = ["FORMAT_VERSION", "MAGIC", "load", "pack", "read_header", "save", "unpack"]

logger = logging.getLogger(__name__)

MAGIC = b"DAGX"
FORMAT_VERSION = 1


# -- the header's own fields ---------------------------------------------------------
# Checked before anything else reads them (inspect prints them, load uses them), so a
# header of valid checksums but hostile content is ``corrupted``, never a crash.


def _is_str(value: Any) -> bool:
    return type(value) is str


def _is_opt_str(value: Any) -> bool:
    return value is None or type(value) is str


def _is_strs(value: Any) -> bool:
    return type(value) is list and all(type(v) is str for v in value)


def _records(**fields: Callable[[Any], bool]) -> Callable[[Any], bool]:
    """A check of a list of JSON objects holding ``fields`` (``default`` may be absent).

    A manifest lists every node, so this runs for each of them on every load: fields
    tested by ``_is_str``, ``_is_opt_str`` or ``_is_strs`` are tested inline, the others
    through their test.
    """
    texts = tuple(n for n, t in fields.items() if t is _is_str and n != "default")
    optional = tuple(n for n, t in fields.items() if t is _is_opt_str)
    lists = tuple(n for n, t in fields.items() if t is _is_strs)
    inline = (*texts, *optional, *lists)
    others = tuple((n, t) for n, t in fields.items() if n not in inline)

    def check(value: Any) -> bool:
        if type(value) is not list:
            return False
        for item in value:
            if type(item) is not dict:
                return False
            for name in texts:
                if type(item.get(name)) is not str:
                    return False
            for name in optional:
                if name not in item or (item[name] is not None and type(item[name]) is not str):
                    return False
            for name in lists:
                got = item.get(name)
                if type(got) is not list:
                    return False
                for v in got:
                    if type(v) is not str:
                        return False
            for name, test in others:
                if name in item:
                    if not test(item[name]):
                        return False
                elif name != "default":
                    return False
        return True

    return check


_MODULE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
_FINGERPRINT = re.compile(r"[0-9a-f]{64}")
_MANIFEST: dict[str, Callable[[Any], bool]] = {
    "inputs": _records(name=_is_str, type=_is_str, required=lambda v: type(v) is bool, default=_is_str),
    "outputs": _records(name=_is_str, key=_is_str),
    "nodes": _records(
        key=_is_str, task=_is_str, function=_is_str, deps=_is_strs, section=_is_opt_str, call_site=_is_opt_str
    ),
    "sections": lambda v: type(v) is list,
}
_FIELDS: dict[str, Callable[[Any], bool]] = {
    "dagexec_version": _is_str,
    "python_version": _is_str,
    "python_implementation": _is_str,
    "cloudpickle_version": _is_str,
    "graph": _is_str,
    "fingerprint": lambda v: type(v) is str and _FINGERPRINT.fullmatch(v) is not None,
    "node_count": lambda v: type(v) is int and v >= 0,
    "requirements": _records(
        distribution=_is_str,
        version=_is_str,
        modules=lambda v: _is_strs(v) and all(_MODULE.fullmatch(m) for m in v),
    ),
    "by_value": _is_strs,
    "manifest": lambda v: type(v) is dict and all(test(v.get(k)) for k, test in _MANIFEST.items()),
}


def _bad_field(header: dict[str, Any]) -> str | None:
    return next((name for name, test in _FIELDS.items() if not test(header.get(name))), None)


_FORMAT = envelope.Format(
    MAGIC,
    FORMAT_VERSION,
    noun="a dagexec artifact",
    kind="artifact",
    bad_field=_bad_field,
    messages={
        "format-version": "it is in artifact format {version}, and this dagexec reads format {current}; "
        "load it with the dagexec version that saved it, or save the plan again",
        **envelope.CORRUPTED_SAYS_SO,
        "unsigned": f"the artifact is not signed, but a key is set (key= or {KEY_ENV}); "
        "save the plan again with that key to sign it",
        "unsigned-required": "the artifact is not signed, and only signed files are loaded here "
        f"(require_signed=True, --require-signed or {REQUIRE_ENV}); "
        f"save the plan with a key (key= or {KEY_ENV}) to sign it",
        "key-required": f"it is signed and no key was given to verify it (pass key= or set {KEY_ENV})",
    },
)


# -- the byte layout -------------------------------------------------------------------


def pack(header: dict[str, Any], payload: bytes, key: bytes | str | None = None) -> bytes:
    """The bytes of an artifact holding ``header`` and ``payload``.

    ``payload_length``, ``payload_sha256`` and ``signed`` are set from ``payload`` and
    ``key``; every other field of ``header`` is written as given.

    Raises:
        SigningKeyError: for a key (or ``DAGEXEC_KEY``) that is set but empty.
        TypeError: for a key that is not bytes or str.
    """
    return b"".join(envelope.pack(_FORMAT, header, payload, envelope.resolve_key(key)))


def _refusal(err: EnvelopeError, path: str) -> ArtifactError:
    """The ArtifactError for ``err``; raise it from ``err.__cause__ or err``."""
    refused = ArtifactError(f"cannot load {path!r}: {err.message}", err.reason, path)
    return refused


def _key(key: bytes | str | None, path: str) -> bytes | None:
    try:
        return envelope.resolve_key(key)
    except SigningKeyError as exc:
        raise ArtifactError(f"cannot load {path!r}: {exc}", "empty-key", path) from exc


def unpack(
    data: bytes,
    path: str = "<bytes>",
    key: bytes | str | None = None,
    require_signed: bool = False,
    refuse_unverified: bool = False,
) -> tuple[dict[str, Any], memoryview, bool]:
    """Check an artifact's bytes and split them into header, payload and whether a key
    verified the signature.

    Checks everything but the Python version and the requirements; unpickles nothing.

    Raises:
        ArtifactError: ``empty``, ``foreign``, ``format-version``, ``truncated``,
            ``corrupted``, ``unsigned``, ``bad-signature``, ``empty-key``, and with
            ``refuse_unverified`` ``key-required``.
        TypeError: for a key that is not bytes or str.
    """
    k = _key(key, path)
    try:
        opened = envelope.unpack(_FORMAT, data, k, require_signed, refuse_unverified)
    except EnvelopeError as err:
        raise _refusal(err, path) from (err.__cause__ or err)
    return opened.header, opened.payload, opened.verified


def _read(path: str) -> bytes:
    """The bytes of the regular file ``path``, never more than its size."""
    try:
        return envelope.read_regular(path)[0]
    except EnvelopeError as err:
        raise _refusal(err, path) from (err.__cause__ or err)


# -- what this Python is ---------------------------------------------------------------


def _python_version() -> str:
    return f"{sys.version_info[0]}.{sys.version_info[1]}"


# -- save, load, read_header -----------------------------------------------------------


def save(plan: CompiledGraph, path: str | os.PathLike[str], key: bytes | str | None = None) -> None:
    """Write ``plan`` to ``path`` as an artifact; see :meth:`CompiledGraph.save`."""
    import cloudpickle

    where = os.fspath(path)
    try:
        k = envelope.resolve_key(key)
    except SigningKeyError as exc:
        raise SigningKeyError(f"cannot save graph {plan.name!r} to {where!r}: {exc}", exc.source) from exc
    plan.require_portable("save()")
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
        "dagexec_version": dagexec_version,
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
    remove_stale_temps(where)
    write_atomic(where, envelope.pack(_FORMAT, header, payload, k), durable=True)


def read_header(path: str | os.PathLike[str], key: bytes | str | None = None) -> dict[str, Any]:
    """Read and check an artifact's header without unpickling anything.

    Safe on any file: nothing in it runs, only a regular file is read, and every field
    is checked for its type before it is returned.

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
        ArtifactError: when the file is unreadable, not a regular file, empty, foreign,
            of another format version, truncated, corrupted, unsigned while a key is
            set, or wrongly signed, or when the key is set but empty (``empty-key``).
        TypeError: for a key that is not bytes or str.
    """
    where = os.fspath(path)
    k = _key(key, where)
    header, _, verified = unpack(_read(where), where, k)
    return {"format_version": FORMAT_VERSION, **header, "verified": verified}


def load(
    path: str | os.PathLike[str],
    key: bytes | str | None = None,
    *,
    require_signed: bool = False,
    expect_graph: str | None = None,
    expect_fingerprint: str | None = None,
) -> CompiledGraph:
    """Load a plan saved with :meth:`CompiledGraph.save`.

    Loading runs code from the file: only load artifacts you trust, and sign them.
    Every check happens before a byte of the payload is unpickled.  A signature says
    who made the file, not which plan it holds: pin that with ``expect_graph`` or
    ``expect_fingerprint`` (docs/artifacts.md).

    Args:
        path: the artifact, a regular file.
        key: bytes or str; when given, or when ``DAGEXEC_KEY`` is set, the file must
            be signed with it.
        require_signed: refuse an unsigned file even without a key (so does the
            environment variable ``DAGEXEC_REQUIRE_SIGNED=1``, whatever this says).
        expect_graph: refuse a file whose plan has another name.
        expect_fingerprint: refuse a file whose plan has another fingerprint
            (64 hex digits, as ``plan.fingerprint`` and ``dagexec inspect`` give it).

    Returns:
        The plan.

    Raises:
        ArtifactError: with ``.reason`` one of ``unreadable``, ``not-regular``, ``empty``,
            ``foreign``, ``format-version``, ``truncated``, ``corrupted``, ``unsigned``,
            ``bad-signature``, ``key-required``, ``empty-key``, ``unexpected-plan``,
            ``python-version``, ``requirements``, ``unpickle-failed``, ``not-a-plan``
            (docs/artifacts.md).
        TypeError: for a key that is not bytes or str.
        ValueError: for an ``expect_fingerprint`` that is not 64 hex digits.
    """
    from .plan.compiled import CompiledGraph

    where = os.fspath(path)
    want = _expected_fingerprint(expect_fingerprint)
    k = _key(key, where)
    required = envelope.signatures_required(require_signed)
    header, payload, _ = unpack(_read(where), where, k, required, refuse_unverified=True)
    _check_expected(header, where, expect_graph, want)
    _check_python(header, where)
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
    # the plan as saved: constants of classes that came by value pickle to other
    # bytes here, and would hash differently if the fingerprint were taken again
    object.__setattr__(plan, "_fingerprint", header["fingerprint"])
    return plan


def _expected_fingerprint(expect: str | None) -> str | None:
    if expect is None:
        return None
    if not isinstance(expect, str) or not _FINGERPRINT.fullmatch(expect.lower()):
        raise ValueError(
            f"expect_fingerprint must be 64 hex digits (a plan's fingerprint), got {expect!r:.80}"
        )
    return expect.lower()


def _check_expected(header: dict[str, Any], where: str, graph: str | None, fingerprint: str | None) -> None:
    """Refuse a file that holds another plan than the one expected (before unpickling)."""
    if graph is not None and header["graph"] != graph:
        raise ArtifactError(
            f"cannot load {where!r}: it holds graph {header['graph']!r}, and graph {graph!r} is expected",
            "unexpected-plan",
            where,
        )
    if fingerprint is not None and header["fingerprint"] != fingerprint:
        raise ArtifactError(
            f"cannot load {where!r}: it holds the plan of fingerprint {header['fingerprint']}, "
            f"and fingerprint {fingerprint} is expected",
            "unexpected-plan",
            where,
        )


def _check_python(header: dict[str, Any], where: str) -> None:
    """Refuse a file this Python cannot unpickle; warn of other versions of what it uses."""
    import cloudpickle

    saved = (header["python_version"], header["python_implementation"])
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
        ("dagexec_version", dagexec_version),
        ("cloudpickle_version", cloudpickle.__version__),
    ):
        if header[field] != mine:
            logger.warning(
                "%s was saved with %s %s; this is %s", where, field.split("_")[0], header[field], mine
            )


def _python_name(version: Any, implementation: Any) -> str:
    impl = {"cpython": "CPython", "pypy": "PyPy"}.get(str(implementation), str(implementation))
    return f"{impl} {version}"
