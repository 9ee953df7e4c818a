"""``dx.shell``: a command as a task (DESIGN §10b).

A command runs where its trial runs, in a process group of its own (a new session),
so that a timeout or Ctrl-C can stop it with everything it started: SIGTERM to the
group, then SIGKILL after a grace period.  Its arguments are never parsed by a shell
unless ``shell=True``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from ._errors import DagexecError, TaskTimeout
from ._worker import interrupt_hooks

__all__ = ["CommandFailed", "CommandResult", "kill_running", "run_command", "shell"]

#: seconds between SIGTERM and SIGKILL to a command's process group
GRACE_S = 2.0
#: lines of stderr an error quotes
STDERR_LINES = 20

_running: dict[int, subprocess.Popen[bytes]] = {}  # pid -> command running in this process
_lock = threading.Lock()


class CommandFailed(DagexecError):
    """A command of ``dx.shell`` exited with a non-zero code (and ``check=True``).

    Attributes:
        returncode: the exit code (negative: killed by that signal).
        stderr: the command's standard error, as text.
    """

    def __init__(self, message: str, returncode: int = 1, stderr: str = "") -> None:
        super().__init__(message)
        self.returncode = returncode
        self.stderr = stderr

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.args[0], self.returncode, self.stderr))


class CommandResult(NamedTuple):
    """What ``dx.shell(..., output="result")`` gives: the exit code and both outputs."""

    returncode: int
    stdout: str
    stderr: str


def shell(
    argv: Sequence[Any] | str,
    *,
    name: str = "shell",
    timeout: float | None = None,
    env: Mapping[str, Any] | None = None,
    cwd: Any = None,
    shell: bool = False,
    check: bool = True,
    output: str = "stdout",
    **options: Any,
) -> Any:
    """A command as a task: inside a graph a Node (its value the command's stdout as
    text), outside one the command run at once.

    Args:
        argv: the program and its arguments; items may be Nodes or graph inputs (their
            values become arguments, turned to text with ``str``, never parsed by a
            shell). A string only with ``shell=True``: then ``/bin/sh -c argv``.
        name: the node's name (its key), default ``"shell"``.
        timeout: seconds; past them the command's process group gets SIGTERM, then
            SIGKILL ``GRACE_S`` later, and the trial is ``timed_out``.
        env: variables laid over the inherited environment (values may be Nodes).
        cwd: the working directory (may be a Node).
        shell: run a string through ``/bin/sh -c``.
        check: a non-zero exit fails the trial with :class:`CommandFailed` (default).
        output: ``"stdout"`` (the value is stdout as text) or ``"result"`` (a
            :class:`CommandResult` of returncode, stdout and stderr).
        **options: other task options (``retries``, ``executor``, ``tags``, ``cache``
            (default False: commands act on the world), ...).

    Raises:
        ValueError: for a bad ``output``, or a string ``argv`` without ``shell=True``.
    """
    from ._graph import current_graph
    from ._task import task

    if output not in ("stdout", "result"):
        raise ValueError(f"shell(): output must be 'stdout' or 'result', got {output!r}")
    if isinstance(argv, str) and not shell:
        raise ValueError("shell(): a command line as one string needs shell=True; or give a list of arguments")
    if shell and not isinstance(argv, str):
        raise ValueError("shell(): with shell=True give the command line as one string")
    graph = current_graph()
    args = (argv, env, cwd, shell, check, output, timeout)
    if graph is None:
        return run_command(*args, node=name)
    options.setdefault("cache", False)
    runner: Any = task(name=name, **options)(run_command)
    return runner(*args, node=graph._next_key(name, reserve=False))


def run_command(
    argv: Any,
    env: Mapping[str, Any] | None,
    cwd: Any,
    use_shell: bool,
    check: bool,
    output: str,
    timeout: float | None,
    node: str = "shell",
) -> Any:
    """Run one command to its end (the function of a ``dx.shell`` node)."""
    cmd: Any = argv if use_shell else [os.fspath(a) if isinstance(a, os.PathLike) else str(a) for a in argv]
    full_env = None if env is None else {**os.environ, **{k: str(v) for k, v in env.items()}}
    proc = subprocess.Popen(
        cmd,
        shell=use_shell,
        env=full_env,
        cwd=None if cwd is None else os.fspath(cwd),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group: stopped with all it started
    )
    with _lock:
        _running[proc.pid] = proc
    try:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _stop(proc)
            raise TaskTimeout(
                f"node {node!r}: command {_show(cmd)} ran past its timeout of {timeout:g} s; "
                "its process group was stopped",
                node,
                timeout,
            ) from None
        except BaseException:  # Ctrl-C in this thread, or anything else: nothing is left
            _stop(proc)
            raise
    finally:
        with _lock:
            _running.pop(proc.pid, None)
    stdout = out.decode("utf-8", "replace")
    stderr = err.decode("utf-8", "replace")
    if check and proc.returncode != 0:
        tail = "\n".join(stderr.rstrip("\n").splitlines()[-STDERR_LINES:])
        raise CommandFailed(
            f"node {node!r}: command {_show(cmd)} exited with {proc.returncode}"
            + (f"; stderr (last lines):\n{tail}" if tail else "; no stderr"),
            proc.returncode,
            stderr,
        )
    return stdout if output == "stdout" else CommandResult(proc.returncode, stdout, stderr)


def _show(cmd: Any) -> str:
    text = cmd if isinstance(cmd, str) else " ".join(cmd)
    return repr(text if len(text) <= 120 else text[:117] + "...")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the command's process group; SIGKILL to what is left of it after
    ``GRACE_S`` (or at once once the group is empty); the command is reaped."""
    _signal_group(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + GRACE_S
    while time.monotonic() < deadline:
        proc.poll()  # reap the leader, so that an empty group reads as empty
        if not _group_alive(proc.pid):
            break
        time.sleep(0.02)
    _signal_group(proc.pid, signal.SIGKILL)
    proc.wait()


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def kill_running() -> None:
    """Stop every command running in this process (a run interrupted by Ctrl-C)."""
    with _lock:
        procs = list(_running.values())
    for proc in procs:
        _stop(proc)


interrupt_hooks.append(kill_running)
