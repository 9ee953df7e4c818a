"""A running ``dx.shell`` command: its process group, the guard that ends the group
with its job, and its bounded output (DESIGN §10b; docs/shell.md).

A command runs in a session and process group of its own (pgid = its pid), so that
stopping it reaches everything it started.  Beside it runs a *guard*: a ``/bin/sh``
in a session of its own, whose only job is to kill the command's group when the
process that started the command (the *starter*: the master on serial and threads,
a worker on loky) dies without saying goodbye::

    starter (the trial's process)
    1. Popen, new session ------------> guard (sh), its stdin the pipe's read end:
    2. Popen, new session, its stdin       line 1: the command's group
       the pipe's write end ----------> leader: sh writes its pid (the group) to
                                           the pipe, then execs argv, stdin /dev/null
                                           --> what the command starts ...
    3. ... the command ends ...            line 2: stand down, and exit
    the starter holds the write end:       the end of the pipe after line 1 (the
    its death is the pipe's end            starter died): kill -s KILL -- -group

The leader itself tells the guard its group before it runs the command, so there is
no moment at which a starter's death would leave a command unguarded.

The pipe, not ``PR_SET_PDEATHSIG``, ties the command to its job: the kernel closes a
dead process's descriptors whatever killed it (SIGKILL, the OOM killer, a ``killpg``
of the master's group: the guard is in no group of the master's), the pipe belongs to
the process and not to the thread that started the command (a parent-death signal
fires when that *thread* ends), it reaches the command's whole group and not only its
leader, it needs no ``preexec_fn`` (unsafe in a process with threads) and it works
wherever ``/bin/sh`` does.  In a worker process whose parent (the master) can die while
the worker lives on, a watcher thread kills the groups of the worker's running
commands when the worker's parent changes.

Output: both pipes are read in the trial's own thread (``selectors``), each into a
:class:`_Sink` that keeps at most ``max_output`` bytes in memory, writes all of it to
a file once it is longer, and passes complete lines to the trial's log.  The command
ends when its leader exits: the pipes are then drained for at most ``DRAIN_S``
seconds, and whatever the command left running in its group is stopped.
"""

from __future__ import annotations

import codecs
import logging
import multiprocessing
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

from . import _capture
from ._interrupts import interrupt_hooks

__all__ = ["Command", "CommandOutput", "DRAIN_S", "GRACE_S", "kill_running"]

logger = logging.getLogger("dagexec.shell")

#: seconds between SIGTERM and SIGKILL to a command's process group
GRACE_S = 2.0
#: seconds the pipes are still read after the command exited, while something it
#: started holds them open
DRAIN_S = 0.5
#: seconds between two looks at a worker's parent, and at a command without a pidfd
POLL_S = 0.2
#: bytes read from a pipe at once
CHUNK = 1 << 16
#: bytes of stderr kept apart for an error message's last lines
TAIL = 1 << 16

# the guard, reading its stdin: a first line, the command's group; a second, "stand
# down"; the end of the pipe after the first line (the starter died): SIGKILL to that group
_GUARD = 'read -r group && { read -r _ || { [ -n "$group" ] && kill -s KILL -- "-$group"; }; }'
# the leader: its pid (its group's id) to the guard, then the command, which keeps no end of the pipe
_LEADER = 'echo "$$" >&0 && exec "$@" </dev/null'

_running: dict[int, Command] = {}  # pid -> command running in this process
_lock = threading.Lock()
_watcher: list[threading.Thread] = []  # the parent watcher of a worker process, while one runs


class CommandOutput(str):
    """A command's output cut at ``max_output`` bytes: the text of its first bytes,
    with ``.path``, the file holding all of it, and ``.size``, its length in bytes."""

    path: str
    size: int

    def __new__(cls, text: str, path: str, size: int) -> CommandOutput:
        self = super().__new__(cls, text)
        self.path = path
        self.size = size
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (str(self), self.path, self.size))


class _Sink:
    """One output of a command: its first ``limit`` bytes in memory (all of them when
    ``limit`` is None), everything in a file once it is longer, its lines to ``log``."""

    def __init__(self, label: str, limit: int | None, log: list[Any] | None, node: str, tail: bool) -> None:
        self.label = label
        self.limit = limit
        self.log = log
        self.node = node
        self.data = bytearray()
        self.size = 0
        self.path: str | None = None
        self.file: Any = None
        self.tail = bytearray() if tail else None
        self.decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self.partial = ""  # the text after the last newline, not yet in the log

    def feed(self, chunk: bytes) -> None:
        self.size += len(chunk)
        limit = self.limit
        if self.file is None and (limit is None or len(self.data) + len(chunk) <= limit):
            self.data += chunk
        else:
            if self.file is None:
                self._spill()
            self.file.write(chunk)
            if limit is not None and len(self.data) < limit:
                self.data += chunk[: limit - len(self.data)]
        if self.tail is not None:
            self.tail += chunk
            if len(self.tail) > 2 * TAIL:
                del self.tail[:-TAIL]
        if self.log is not None:
            self._to_log(self.decoder.decode(chunk))

    def _spill(self) -> None:
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in self.node)[:60]
        fd, self.path = tempfile.mkstemp(prefix=f"dagexec-{safe}-", suffix=f".{self.label}")
        self.file = os.fdopen(fd, "wb")
        self.file.write(self.data)

    def _to_log(self, text: str) -> None:
        assert self.log is not None
        text = self.partial + text
        cut = text.rfind("\n") + 1
        if cut == 0 and len(text) < _capture.LOG_LIMIT:
            self.partial = text
            return
        if cut == 0:
            cut = len(text)  # a line longer than the log: its end is what stays
        self.partial = text[cut:]
        _capture.append(self.log, text[:cut])

    def close(self) -> None:
        """The output is complete: the last partial line to the log, the file closed."""
        if self.log is not None:
            rest = self.partial + self.decoder.decode(b"", final=True)
            if rest:
                _capture.append(self.log, rest + "\n")
            self.partial = ""
        if self.file is not None:
            self.file.close()
            self.file = None
            assert self.limit is not None
            note = (
                f"[{self.label}: {self.size} bytes; the value holds the first {self.limit}; "
                f"all of it is in {self.path}]\n"
            )
            logger.warning("node %r: %s", self.node, note.strip())
            if self.log is not None:
                _capture.append(self.log, note)

    def text(self) -> str:
        """The text kept in memory (a :class:`CommandOutput` when it was cut); the
        bytes are released as the text is made."""
        data = self.data
        if self.path is None:
            text = data.decode("utf-8", "replace")
            del data[:]
            return text
        del data[_char_boundary(data) :]
        text = data.decode("utf-8", "replace")
        del data[:]
        return CommandOutput(text, self.path, self.size)

    def last_lines(self, count: int) -> str:
        """The last ``count`` lines of this output (kept apart when asked for)."""
        data = self.tail if self.tail is not None else self.data
        lines = bytes(data[-TAIL:]).decode("utf-8", "replace").rstrip("\n").splitlines()
        return "\n".join(lines[-count:])


def _char_boundary(data: bytearray) -> int:
    """The length of ``data`` without a UTF-8 character its end cuts in two."""
    end = len(data)
    start = end - 1
    while start >= 0 and end - start < 4 and data[start] & 0xC0 == 0x80:
        start -= 1
    if start < 0:
        return end
    lead = data[start]
    need = (
        1 if lead < 0x80 else 2 if lead >> 5 == 6 else 3 if lead >> 4 == 14 else 4 if lead >> 3 == 30 else 1
    )
    return start if start + need > end else end


def _read_ready(sel: selectors.BaseSelector, ready: list[tuple[selectors.SelectorKey, int]]) -> None:
    """One read from each ready pipe into its reader; a pipe at its end is unregistered."""
    for key, _ in ready:
        if key.data is not None:
            chunk = os.read(key.fd, CHUNK)
            if chunk:
                key.data.feed(chunk)
            else:
                sel.unregister(key.fd)


class Command:
    """One command, from its start to its end: its leader, its guard and its outputs.

    Args:
        cmd: the argv (or a string, with ``use_shell``).
        env: the whole environment of the command.
        cwd: its working directory, or None.
        use_shell: run ``cmd`` through ``/bin/sh -c``.
        max_output: bytes of each output kept in memory (None: all).
        node: the node's key, for file names and messages.
    """

    def __init__(
        self, cmd: Any, env: dict[Any, Any], cwd: Any, use_shell: bool, max_output: int | None, node: str
    ):
        log = _capture.current()
        self.node = node
        self.out = _Sink("stdout", max_output, log, node, tail=False)
        self.err = _Sink("stderr", max_output, log, node, tail=True)
        self.goodbye = -1
        self.guard = self._start_guard()  # first: ready before the command can run
        argv = ["/bin/sh", "-c", cmd] if use_shell else list(cmd)
        try:
            self.proc = subprocess.Popen(
                ["/bin/sh", "-c", _LEADER, "dagexec-shell", *argv],
                env=env,
                cwd=cwd,
                stdin=self.goodbye,  # the leader writes its group there, then takes /dev/null
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,  # its own group: stopped with all it started
            )
        except BaseException:
            self._dismiss_guard(b"")  # the end of the pipe before a group: nothing to kill
            raise
        self.pgid = self.proc.pid
        with _lock:
            _running[self.pgid] = self
        _watch_parent()

    def _start_guard(self) -> subprocess.Popen[bytes]:
        read, self.goodbye = os.pipe()  # both ends close on exec: only the guard and the leader get one
        try:
            return subprocess.Popen(
                ["/bin/sh", "-c", _GUARD, "dagexec-guard"],
                env={},
                stdin=read,  # not a descriptor of its own: sh redirects only 0 to 9
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,  # beyond the reach of a killpg of the master's group
            )
        except BaseException:
            os.close(self.goodbye)
            raise
        finally:
            os.close(read)

    def _dismiss_guard(self, farewell: bytes) -> None:
        """Tell the guard to stand down (``farewell``, then the end of the pipe), and reap it."""
        if self.goodbye >= 0:
            try:
                if farewell:
                    os.write(self.goodbye, farewell)
            except OSError:
                pass  # the guard is gone already: nothing to tell it
            os.close(self.goodbye)
            self.goodbye = -1
        self.guard.wait()

    def run(self, timeout: float | None) -> int:
        """Read the outputs until the command has exited (and its pipes are drained),
        then stop what it left in its group; return its exit code.

        Raises:
            subprocess.TimeoutExpired: past ``timeout`` (the command is still running).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        sel = selectors.DefaultSelector()
        exit_fd = _pidfd(self.pgid)
        try:
            for pipe, sink in ((self.proc.stdout, self.out), (self.proc.stderr, self.err)):
                assert pipe is not None
                sel.register(pipe.fileno(), selectors.EVENT_READ, sink)
            if exit_fd is not None:
                sel.register(exit_fd, selectors.EVENT_READ, None)
            drain_until = None
            while True:
                now = time.monotonic()
                if drain_until is None and self.proc.poll() is not None:
                    drain_until = now + DRAIN_S
                    if exit_fd is not None:
                        sel.unregister(exit_fd)
                pipes = [k for k in sel.get_map().values() if k.data is not None]
                if drain_until is not None and (not pipes or now >= drain_until):
                    break
                wait = None if drain_until is None else drain_until - now
                if drain_until is None and deadline is not None:
                    if now >= deadline:
                        raise subprocess.TimeoutExpired(self.proc.args, timeout or 0.0)
                    wait = deadline - now
                if drain_until is None and exit_fd is None:
                    wait = POLL_S if wait is None else min(wait, POLL_S)
                _read_ready(sel, sel.select(wait))
            _stop_group(self.pgid, self.proc)  # what the command left running
            self._read_what_is_left(sel)
        finally:
            sel.close()
            if exit_fd is not None:
                os.close(exit_fd)
        return self.proc.returncode

    def _read_what_is_left(self, sel: selectors.BaseSelector) -> None:
        """After the group was stopped: what its members wrote before they ended
        (within ``DRAIN_S``: a process in a session of its own may hold a pipe)."""
        until = time.monotonic() + DRAIN_S
        while [k for k in sel.get_map().values() if k.data is not None] and time.monotonic() < until:
            ready = sel.select(0)
            if not ready:
                break
            _read_ready(sel, ready)

    def stop(self) -> None:
        """SIGTERM to the command's group; SIGKILL to what is left after ``GRACE_S``
        (at once once the group is empty); the leader is reaped."""
        _stop_group(self.pgid, self.proc)
        self.proc.wait()

    def kill(self) -> None:
        """SIGKILL to the command's group (its job is gone)."""
        _signal_group(self.pgid, signal.SIGKILL)

    def close(self) -> None:
        """The command is over: its outputs closed, the guard stood down and reaped."""
        with _lock:
            _running.pop(self.pgid, None)
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()
        self.out.close()
        self.err.close()
        self._dismiss_guard(b"\n")


def _pidfd(pid: int) -> int | None:
    """A descriptor that becomes readable when ``pid`` exits (Linux), or None."""
    opener = getattr(os, "pidfd_open", None)
    if opener is None:
        return None
    try:
        return int(opener(pid))
    except OSError:
        return None


def _stop_group(pgid: int, proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to a group, SIGKILL to what is left of it after ``GRACE_S``; the leader
    (``proc``) is reaped as it goes, so that an emptied group reads as empty."""
    proc.poll()
    if not _group_alive(pgid):
        return
    _signal_group(pgid, signal.SIGTERM)
    deadline = time.monotonic() + GRACE_S
    while time.monotonic() < deadline:
        proc.poll()
        if not _group_alive(pgid):
            return
        time.sleep(0.02)
    _signal_group(pgid, signal.SIGKILL)


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _group_alive(pgid: int) -> bool:
    """True while a process of the group lives; zombies (orphans that no init reaps,
    as in many containers) do not count where ``/proc`` tells them apart."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if not sys.platform.startswith("linux"):
        return True
    return _live_member(pgid)


def _live_member(pgid: int) -> bool:
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] not in (b"Z", b"X"):
            return True
    return False


def kill_running() -> None:
    """Stop every command running in this process (a run interrupted by Ctrl-C)."""
    with _lock:
        commands = list(_running.values())
    for command in commands:
        command.stop()


def _watch_parent() -> None:
    """In a worker process (loky, a process pool, a dask nanny's worker): make sure a
    thread kills this process's commands if the worker's parent dies first."""
    parent = multiprocessing.parent_process()
    if parent is None or parent.pid != os.getppid():
        return
    with _lock:
        if _watcher and _watcher[0].is_alive():
            return
        thread = threading.Thread(
            target=_watch, args=(parent.pid,), name="dagexec-shell-watcher", daemon=True
        )
        _watcher[:] = [thread]
    thread.start()


def _watch(parent: int) -> None:
    while True:
        time.sleep(POLL_S)
        with _lock:
            commands = list(_running.values())
            if not commands:
                _watcher.clear()
                return
        if os.getppid() != parent:
            for command in commands:
                command.kill()


interrupt_hooks.append(kill_running)
