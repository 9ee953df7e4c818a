"""Repro bundles: a failed trial as a file, reopened on another machine (DESIGN §14).

A bundle is the file envelope of artifacts (``dagexec/_envelope.py``: checksum,
optional HMAC under the same key rules, nothing unpickled before every check passed)
with its own magic, ``b"DXRB"``.  The header (JSON, readable without unpickling)
holds what a person reads first; the payload (cloudpickle, the user's modules by
value) what is needed to call the function again::

    header                                     payload
    -----------------------------------------  ----------------------------------
    graph, fingerprint, node, attempt, state   {"function": the task's function,
    error_type, error, traceback (text)         "args": [...], "kwargs": {...}}
    locals: {"file:line function": {name: repr}}
    log, replaced: {parameter: why}
    python_version, python_implementation,
    dagexec_version, cloudpickle_version,
    requirements, by_value
    personal (only with personal=True):
    user, host, cwd, environ

An argument that does not pickle is replaced by its ``repr`` and named in
``replaced``; one that pickles to more than :data:`MAX_ARGUMENT_BYTES` by a
:class:`CacheRef` to its cache entry where the run's cache holds it, else by its
``repr``.  Nothing personal is written unless asked for: no user or host name, no
address, working directory or environment variable (file paths inside tracebacks
stay as they are).

:func:`write_bundle` writes one atomically; :func:`load_bundle` checks one and gives
a :class:`Bundle`; :func:`read_bundle_header` checks one and unpickles nothing;
:func:`debug_main` is what ``dagexec debug`` runs in a fresh process.
"""

from __future__ import annotations

import getpass
import os
import pickle
import re
import socket
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

from . import _envelope as envelope
from ._envelope import KEY_ENV, REQUIRE_ENV, EnvelopeError, SigningKeyError
from ._errors import ArtifactError
from ._files import remove_stale_temps, write_atomic
from ._version import __version__ as dagexec_version
from .plan import portable as _portable

__all__ = [
    "MAGIC",
    "MAX_ARGUMENT_BYTES",
    "Bundle",
    "BundleError",
    "CacheRef",
    "load_bundle",
    "read_bundle_header",
    "write_bundle",
]

MAGIC = b"DXRB"
FORMAT_VERSION = 1
SUFFIX = ".dxbundle"

#: an argument that pickles to more bytes is not written (docs/debugging.md)
MAX_ARGUMENT_BYTES = 100 * 2**20


class BundleError(ArtifactError):
    """A bundle that cannot be loaded: its ``reason`` says why (as an artifact's)."""


class CacheRef:
    """An argument left out of a bundle for its size: its value is the entry ``key`` of
    the cache in ``folder`` (``Bundle.reproduce`` loads it)."""

    def __init__(self, folder: str, key: str, what: str) -> None:
        self.folder = folder
        self.key = key
        self.what = what  # the parameter's name

    def load(self) -> Any:
        """The value, from the cache folder."""
        from .cache.store import CacheStore

        found, value = CacheStore(self.folder).get(self.key)
        if not found:
            raise LookupError(f"argument {self.what!r}: cache entry {self.key} is not in {self.folder!r}")
        return value

    def __repr__(self) -> str:
        return f"<CacheRef {self.what!r}: entry {self.key[:16]}... of {self.folder!r}>"


# -- the header ------------------------------------------------------------------------


def _is_str(value: Any) -> bool:
    return type(value) is str


def _is_str_map(value: Any) -> bool:
    return type(value) is dict and all(type(k) is str and type(v) is str for k, v in value.items())


_FIELDS: dict[str, Callable[[Any], bool]] = {
    "graph": _is_str,
    "node": _is_str,
    "attempt": lambda v: type(v) is int and v >= 1,
    "state": _is_str,
    "error_type": _is_str,
    "error": _is_str,
    "traceback": _is_str,
    "log": _is_str,
    "locals": lambda v: type(v) is dict and all(type(k) is str and _is_str_map(f) for k, f in v.items()),
    "replaced": _is_str_map,
    "python_version": _is_str,
    "python_implementation": _is_str,
    "dagexec_version": _is_str,
    "cloudpickle_version": _is_str,
    "requirements": lambda v: type(v) is list and all(type(r) is dict for r in v),
    "by_value": lambda v: type(v) is list and all(type(m) is str for m in v),
    "source": _is_str,
}


def _bad_field(header: dict[str, Any]) -> str | None:
    return next((name for name, test in _FIELDS.items() if not test(header.get(name))), None)


_FORMAT = envelope.Format(
    MAGIC,
    FORMAT_VERSION,
    noun="a dagexec repro bundle",
    kind="bundle",
    bad_field=_bad_field,
    messages={
        "format-version": "it is in bundle format {version}, and this dagexec reads format {current}; "
        "open it with the dagexec version that wrote it",
        **envelope.CORRUPTED_SAYS_SO,
        "unsigned": f"the bundle is not signed, but a key is set (key= or {KEY_ENV})",
        "unsigned-required": "the bundle is not signed, and only signed files are opened here "
        f"(require_signed=True or {REQUIRE_ENV})",
        "key-required": f"it is signed and no key was given to verify it (pass key= or set {KEY_ENV})",
    },
)


# -- writing ---------------------------------------------------------------------------


def file_name(graph: str, node: str) -> str:
    """The bundle's file name for ``node`` of ``graph``: letters, digits, ``.``, ``_``
    and ``-`` kept, anything else ``_``."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", f"{graph}--{node}") + SUFFIX


def personal_details() -> dict[str, Any]:
    """What ``personal=True`` adds: the user, the host, the working directory and the
    environment variables."""
    try:
        user = getpass.getuser()
    except Exception:
        user = ""
    return {"user": user, "host": socket.gethostname(), "cwd": os.getcwd(), "environ": dict(os.environ)}


def pack_arguments(
    params: list[str], args: list[Any], kwargs: dict[str, Any], big: Callable[[str, int], Any]
) -> tuple[list[Any], dict[str, Any], dict[str, str]]:
    """``args`` and ``kwargs`` with each value that cannot go into a bundle replaced, and
    why, by parameter (``params``: the positional parameters' names).  ``big(name, k)``
    gives a :class:`CacheRef` for a value over :data:`MAX_ARGUMENT_BYTES` (``k``: its
    position, or -1 for a keyword one), or None."""
    replaced: dict[str, str] = {}

    def one(name: str, value: Any, k: int) -> Any:
        try:
            size = len(_portable.dump(value, set()))
        except Exception as exc:
            replaced[name] = f"does not pickle ({type(exc).__name__}: {exc}); replaced by its repr"
            return _repr(value)
        if size <= MAX_ARGUMENT_BYTES:
            return value
        ref = big(name, k)
        if ref is not None:
            replaced[name] = f"{size:,} bytes, over {MAX_ARGUMENT_BYTES:,}: a reference to its cache entry"
            return ref
        replaced[name] = f"{size:,} bytes, over {MAX_ARGUMENT_BYTES:,}; replaced by its repr"
        return _repr(value)

    out_args = [one(params[k] if k < len(params) else f"*args[{k - len(params)}]", v, k) for k, v in enumerate(args)]
    out_kwargs = {name: one(name, v, -1) for name, v in kwargs.items()}
    return out_args, out_kwargs, replaced


def _repr(value: Any, limit: int = 1000) -> str:
    try:
        text = repr(value)
    except Exception as exc:
        text = f"<repr failed: {type(exc).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def write_bundle(
    folder: str,
    fields: Mapping[str, Any],
    function: Any,
    args: list[Any],
    kwargs: dict[str, Any],
    key: bytes | None = None,
    personal: bool = False,
) -> str:
    """Write a bundle into ``folder`` (made if missing) and return its path.

    ``fields`` are the header's own (graph, node, attempt, state, error_type, error,
    traceback, locals, log, replaced); ``args`` and ``kwargs`` as
    :func:`pack_arguments` left them.  The function goes by value where it comes from
    a user module, as in artifacts."""
    import cloudpickle

    modules: set[str] = set()
    with _portable.user_modules_by_value():
        payload = _portable.dump({"function": function, "args": args, "kwargs": kwargs}, modules)
    by_value = sorted(m for m in modules if m in sys.modules and _portable.module_kind(m) == _portable.USER)
    header: dict[str, Any] = {
        **fields,
        "source": _source(function) if getattr(function, "__module__", None) in by_value else "",
        "python_version": f"{sys.version_info[0]}.{sys.version_info[1]}",
        "python_implementation": sys.implementation.name,
        "dagexec_version": dagexec_version,
        "cloudpickle_version": cloudpickle.__version__,
        "requirements": _portable.requirements(modules),
        "by_value": by_value,
        "written": time.time(),
    }
    if personal:
        header["personal"] = personal_details()
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, file_name(str(fields["graph"]), str(fields["node"])))
    remove_stale_temps(path)
    write_atomic(path, envelope.pack(_FORMAT, header, payload, key), durable=True)
    return path


def _source(function: Any) -> str:
    """The source of ``function``'s module, which travels by value: its code runs as
    ``<dynamic-code>`` on the other side, where pdb shows these lines."""
    import inspect

    try:
        return inspect.getsource(sys.modules[function.__module__])
    except Exception:
        return ""


# -- reading ---------------------------------------------------------------------------


def _open(path: str, key: bytes | str | None, require_signed: bool, refuse_unverified: bool) -> envelope.Opened:
    """The checked envelope of the bundle at ``path``; nothing is unpickled."""
    try:
        k = envelope.resolve_key(key)
    except SigningKeyError as exc:
        raise BundleError(f"cannot open {path!r}: {exc}", "empty-key", path) from exc
    try:
        data = envelope.read_regular(path)[0]
        required = envelope.signatures_required(require_signed)
        return envelope.unpack(_FORMAT, data, k, required, refuse_unverified)
    except EnvelopeError as err:
        raise BundleError(f"cannot open {path!r}: {err.message}", err.reason, path) from (err.__cause__ or err)


def read_bundle_header(path: str | os.PathLike[str], key: bytes | str | None = None) -> dict[str, Any]:
    """A bundle's header, checked (as :func:`load_bundle` checks it) without unpickling
    anything; ``verified`` says whether a key verified its signature.

    Raises:
        BundleError: an :class:`~dagexec.ArtifactError` whose ``reason`` names what
            is wrong with the file (``foreign``, ``truncated``, ``corrupted``,
            ``unsigned``, ``bad-signature``, ...).
    """
    where = os.fspath(path)
    opened = _open(where, key, False, False)
    return {**opened.header, "verified": opened.verified}


class Bundle:
    """A repro bundle, loaded: the failed trial's function, its arguments, and what the
    failure left (``dx.load_bundle``).

    Attributes:
        path: the file.
        graph, node, attempt, state: the trial's graph name, node key, attempt and state.
        error_type, error: the exception's qualified type name and message.
        traceback: the traceback as text, as the worker saw it.
        locals: per failing frame, outermost first (``"file:line function"``), its
            local variables as bounded reprs.
        log: what the trial logged and printed.
        replaced: the arguments that are not their values, by parameter, and why.
        function: the task's function.
        args, kwargs: the arguments it was called with.
        header: the whole header.
    """

    def __init__(self, path: str, header: dict[str, Any], payload: dict[str, Any]) -> None:
        self.path = path
        self.header = header
        self.graph: str = header["graph"]
        self.node: str = header["node"]
        self.attempt: int = header["attempt"]
        self.state: str = header["state"]
        self.error_type: str = header["error_type"]
        self.error: str = header["error"]
        self.traceback: str = header["traceback"]
        self.locals: dict[str, dict[str, str]] = header["locals"]
        self.log: str = header["log"]
        self.replaced: dict[str, str] = header["replaced"]
        self.function: Callable[..., Any] = payload["function"]
        self.args: list[Any] = payload["args"]
        self.kwargs: dict[str, Any] = payload["kwargs"]

    def reproduce(self) -> Any:
        """Call the function with the recorded arguments in this process (no run-time
        type checks), a cache reference loaded first; its exception propagates.  A
        coroutine function is run to its end, a generator function's items listed."""
        import inspect

        args = [a.load() if type(a) is CacheRef else a for a in self.args]
        kwargs = {k: v.load() if type(v) is CacheRef else v for k, v in self.kwargs.items()}
        fn = self.function
        if inspect.iscoroutinefunction(fn):
            import asyncio

            return asyncio.run(fn(*args, **kwargs))
        value = fn(*args, **kwargs)
        return list(value) if inspect.isgenerator(value) else value

    def __repr__(self) -> str:
        return f"<Bundle {self.node!r} of graph {self.graph!r}: {self.error_type}: {self.error[:60]}>"


def load_bundle(
    path: str | os.PathLike[str], key: bytes | str | None = None, *, require_signed: bool = False
) -> Bundle:
    """Check and load the repro bundle at ``path`` (DESIGN §14, docs/debugging.md).

    Loading runs code from the file: open only bundles you trust, and sign them.  Every
    check of the file (as :func:`dagexec.load` checks an artifact) happens before a
    byte of it is unpickled.

    Args:
        path: the bundle, a regular file.
        key: bytes or str; when given, or when ``DAGEXEC_KEY`` is set, the file must be
            signed with it.
        require_signed: refuse an unsigned file even without a key (so does
            ``DAGEXEC_REQUIRE_SIGNED=1``).

    Raises:
        BundleError: an :class:`~dagexec.ArtifactError` whose ``reason`` is one of
            ``unreadable``, ``not-regular``, ``empty``, ``foreign``, ``format-version``,
            ``truncated``, ``corrupted``, ``unsigned``, ``bad-signature``,
            ``key-required``, ``empty-key``, ``python-version``, ``requirements``,
            ``unpickle-failed``.
    """
    where = os.fspath(path)
    opened = _open(where, key, require_signed, True)
    header = opened.header
    here = (f"{sys.version_info[0]}.{sys.version_info[1]}", sys.implementation.name)
    if (header["python_version"], header["python_implementation"]) != here:
        raise BundleError(
            f"cannot open {where!r}: it was written by {header['python_implementation']} "
            f"{header['python_version']}, and this is {here[1]} {here[0]}; open it with that Python",
            "python-version",
            where,
        )
    missing, _ = _portable.check_requirements(header)
    if missing:
        raise BundleError(
            f"cannot open {where!r}: it needs {', '.join(missing)}, not installed here", "requirements", where
        )
    try:
        payload = pickle.loads(opened.payload)
    except Exception as exc:
        raise BundleError(
            f"cannot open {where!r}: unpickling it failed: {type(exc).__name__}: {exc}", "unpickle-failed", where
        ) from exc
    return Bundle(where, header, payload)


def describe(header: Mapping[str, Any]) -> str:
    """What ``dagexec debug`` prints of a bundle before running it."""
    lines = [
        f"node {header['node']!r} of graph {header['graph']!r}, attempt {header['attempt']}: {header['state']}",
        f"  {header['error_type']}: {header['error']}",
    ]
    for name, why in header["replaced"].items():
        lines.append(f"  argument {name!r} {why}")
    return "\n".join(lines)


def debug_main(path: str, post_mortem: bool) -> int:
    """``dagexec debug``'s fresh process: load the bundle, call the function again and,
    where it raises, print the traceback and (``post_mortem``) open pdb at the failing
    frame.  Returns the exit code: 1 when it raised again, 0 when it no longer fails."""
    import linecache
    import traceback

    bundle = load_bundle(path)
    source = bundle.header["source"]
    if source:  # the lines of the code that came by value, for tracebacks and pdb's "list"
        linecache.cache["<dynamic-code>"] = (len(source), None, source.splitlines(True), "<dynamic-code>")
    try:
        bundle.reproduce()
    except BaseException as exc:
        traceback.print_exception(exc)
        if post_mortem:
            import pdb

            pdb.post_mortem(exc.__traceback__)
        return 1
    print(f"node {bundle.node!r} no longer fails: the call returned")
    return 0
