"""Trial logs: what a task logged and printed while it ran, its own lines only.

The executing side (:func:`~dagexec._worker.run_call`) sets a fresh *slot* holding
a fresh buffer in the context around the task's own call, so every context (a
thread's, or one asyncio task's) writes to its own trial's buffer::

    print(...) --> sys.stdout = _Tee --+--> the original stream (always)
                                       +--> the slot's buffer (when one is set)
    logger.warning(...) --> root logger --> _Handler --> the slot's buffer

:data:`CURRENT` is a ``ContextVar`` holding a slot, ``[buffer or None]``, one per
trial.  When the trial ends its slot is *closed* (its buffer taken out) and the
variable reset.  A thread the task started in a copy of its context holds the
trial's slot: what it writes while the trial runs is the trial's, what it writes
after goes to the streams only, never into a later trial's log (which has a slot
of its own).

In the master the hooks are in place while a run runs (:func:`install` at its start,
:func:`uninstall` at its end, counted, so concurrent runs share them): afterwards the
root logger and the streams are as the user left them.  A worker process
(loky, dask, a process pool) installs them for good before its first trial
(:func:`install_for_good`).  A stream put in place of ours (``redirect_stdout``,
pytest's ``capsys``) is wrapped again by the next install.  A buffer is a plain list of texts (the
cheapest thing to make per trial); when texts were dropped to keep it bounded, its
first item is the count of dropped characters (an int).
"""

from __future__ import annotations

import contextvars
import logging
import sys
from typing import Any

__all__ = ["CURRENT", "LOG_LIMIT", "append", "current", "install", "install_for_good", "log_text", "uninstall"]

#: characters of text a trial's log keeps: its last ones
LOG_LIMIT = 65536

#: this context's slot: ``[the running trial's buffer, or None once the trial ended]``
CURRENT: contextvars.ContextVar[list[Any] | None] = contextvars.ContextVar("dagexec_trial_log", default=None)

# a buffer is compacted (joined, and cut to LOG_LIMIT) when it holds this many texts
_COMPACT_AT = 256

_FORMAT = "%(levelname)s %(name)s: %(message)s"


def append(buf: list[Any], text: str) -> None:
    """Add ``text`` to a trial's log buffer, keeping it within LOG_LIMIT."""
    buf.append(text)
    if len(buf) >= _COMPACT_AT or len(text) > LOG_LIMIT:
        _compact(buf)


def _compact(buf: list[Any]) -> None:
    """Join ``buf``'s texts into one, keeping the last LOG_LIMIT characters."""
    dropped = 0
    parts = buf
    if type(buf[0]) is int:
        dropped = buf[0]
        parts = buf[1:]
    text = "".join(parts)
    if len(text) > LOG_LIMIT:
        dropped += len(text) - LOG_LIMIT
        text = text[-LOG_LIMIT:]
    buf[:] = [dropped, text] if dropped else [text]


def current() -> list[Any] | None:
    """The buffer of the trial running in this context, or None."""
    slot = CURRENT.get()
    return None if slot is None else slot[0]  # type: ignore[no-any-return]


def log_text(buf: list[Any]) -> str:
    """The log held by a buffer: its last LOG_LIMIT characters, after a line that
    says how many were dropped when some were."""
    if not buf:
        return ""
    _compact(buf)
    if type(buf[0]) is not int:
        return str(buf[0])
    return f"[log cut: the first {buf[0]} bytes were dropped; the last {LOG_LIMIT} are kept]\n{buf[1]}"


class _Tee:
    """Stands for ``sys.stdout``/``sys.stderr``: passes every text to the stream it
    replaced, and appends it to the current trial's buffer when one is set."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        slot = CURRENT.get()
        buf = None if slot is None else slot[0]
        if buf is not None and text:
            append(buf, str(text))
        stream = self._stream
        if stream is None:  # pythonw: no console, print() writes nowhere
            return len(text)
        return stream.write(text)  # type: ignore[no-any-return]

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        if self._stream is not None:
            self._stream.flush()

    def isatty(self) -> bool:
        return self._stream is not None and bool(self._stream.isatty())

    def fileno(self) -> int:
        if self._stream is None:
            raise OSError("no stream")
        return int(self._stream.fileno())

    @property
    def encoding(self) -> str:
        return str(getattr(self._stream, "encoding", None) or "utf-8")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class _Handler(logging.Handler):
    """On the root logger: appends each record of a task (not dagexec's own) to the
    current trial's buffer."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(logging.Formatter(_FORMAT))

    def emit(self, record: logging.LogRecord) -> None:
        buf = current()
        name = record.name
        if buf is not None and name != "dagexec" and not name.startswith("dagexec."):
            try:
                append(buf, self.format(record) + "\n")
            except Exception:
                self.handleError(record)
        if not self._others(record):
            _last_resort(record)

    def _others(self, record: logging.LogRecord) -> bool:
        """True when a handler besides this one sees ``record`` (as logging counts them)."""
        logger: Any = logging.Logger.manager.loggerDict.get(record.name)
        if not isinstance(logger, logging.Logger):
            logger = logging.getLogger()
        while logger is not None:
            if any(h is not self for h in logger.handlers):
                return True
            if not logger.propagate:
                return False
            logger = logger.parent
        return False


def _last_resort(record: logging.LogRecord) -> None:
    """What logging prints when no handler is configured, and would still print had
    this handler not been added: to the original stderr, not captured a second time."""
    last = logging.lastResort
    if last is None or record.levelno < last.level:
        return
    stream = sys.stderr
    if type(stream) is _Tee:
        stream = stream._stream
    if stream is None:
        return
    try:
        stream.write(last.format(record) + "\n")
        stream.flush()
    except Exception:
        pass  # as logging's own handlers do when their stream is gone


_handler: list[_Handler] = []
_users = [0]  # runs in this process that have the hooks installed (install/uninstall)


def install() -> None:
    """Put the capturing hooks in place for a run of this process: the root logger's
    handler and a :class:`_Tee` in place of ``sys.stdout`` and ``sys.stderr`` (again
    when something else took their place).  Paired with :func:`uninstall`."""
    _users[0] += 1
    _hook()


def uninstall() -> None:
    """A run ended: when no other run of this process uses them, take the hooks away
    (the root logger without dagexec's handler, so that ``logging.basicConfig()``
    works as before; the streams as they were, unless replaced since)."""
    _users[0] = max(0, _users[0] - 1)
    if _users[0] or not _handler:
        return
    logging.getLogger().removeHandler(_handler.pop())
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if type(stream) is _Tee:
            setattr(sys, name, stream._stream)


def install_for_good() -> None:
    """The hooks in a worker process (loky, dask, a process pool), for its lifetime."""
    if not _handler or not installed():
        _hook()


def _hook() -> None:
    if not _handler:
        handler = _Handler()
        _handler.append(handler)
        logging.getLogger().addHandler(handler)
    if type(sys.stdout) is not _Tee:
        sys.stdout = _Tee(sys.stdout)
    if type(sys.stderr) is not _Tee:
        sys.stderr = _Tee(sys.stderr)


def installed() -> bool:
    """True when ``sys.stdout`` and ``sys.stderr`` are the capturing streams."""
    return type(sys.stdout) is _Tee and type(sys.stderr) is _Tee
