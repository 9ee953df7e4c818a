"""``dx.shell``: a command as a task (DESIGN §10b).

A command runs where its trial runs, in a process group of its own (a new session),
so that a timeout or Ctrl-C can stop it with everything it started: SIGTERM to the
group, then SIGKILL after a grace period; it also dies with its job (the process
that started it), and what it leaves running when it exits is stopped.  How a
running command is kept, read and stopped is :mod:`._command`'s; this module holds
the API: arguments (never parsed by a shell unless ``shell=True``; ``bytes`` passed
as they are), the environment (the caller's, without ``DAGEXEC_KEY``), the value and
the errors.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from ._command import GRACE_S, Command, CommandOutput, kill_running
from ._errors import DagexecError, TaskTimeout
from ._tracectx import TRACEPARENT

__all__ = [
    "CommandFailed",
    "CommandOutput",
    "CommandResult",
    "GRACE_S",
    "kill_running",
    "run_command",
    "shell",
]

#: lines of stderr an error quotes
STDERR_LINES = 20
#: bytes of each output (stdout, stderr) a command's value holds by default
MAX_OUTPUT = 64 << 20
#: what a command's environment never inherits (it may still be given in ``env=``)
WITHHELD = ("DAGEXEC_KEY",)


class CommandFailed(DagexecError):
    """A command of ``dx.shell`` exited with a non-zero code (and ``check=True``).

    Attributes:
        returncode: the exit code (negative: killed by that signal).
        stderr: the command's standard error, as text: its first ``max_output``
            bytes (a :class:`CommandOutput` naming the file that holds all of it
            when it was longer).
    """

    _reduce_fields = ("returncode", "stderr")

    def __init__(self, message: str, returncode: int = 1, stderr: str = "") -> None:
        super().__init__(message)
        self.returncode = returncode
        self.stderr = stderr


class CommandResult(NamedTuple):
    """What ``dx.shell(..., output="result")`` gives: the exit code and both outputs
    (each its first ``max_output`` bytes: see :class:`CommandOutput`)."""

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
    max_output: int | None = MAX_OUTPUT,
    **options: Any,
) -> Any:
    """A command as a task: inside a graph a Node (its value the command's stdout as
    text), outside one the command run at once.

    Args:
        argv: the program and its arguments; items may be Nodes or graph inputs (their
            values become arguments, never parsed by a shell: ``str`` and ``bytes``
            as they are, paths with ``os.fspath``, anything else with ``str``). A
            string only with ``shell=True``: then ``/bin/sh -c argv``.
        name: the node's name (its key), default ``"shell"``.
        timeout: seconds; past them the command's process group gets SIGTERM, then
            SIGKILL ``GRACE_S`` later, and the trial is ``timed_out``.
        env: variables laid over the inherited environment (values may be Nodes).
            The inherited environment never holds ``DAGEXEC_KEY``: a command gets
            it only from ``env=``.
        cwd: the working directory (may be a Node).
        shell: run a string through ``/bin/sh -c``.
        check: a non-zero exit fails the trial with :class:`CommandFailed` (default).
        output: ``"stdout"`` (the value is stdout as text) or ``"result"`` (a
            :class:`CommandResult` of returncode, stdout and stderr).
        max_output: bytes of each output held in memory (default 64 MiB; None: no
            bound). Past them the output goes whole to a file, and the value is the
            text of its first ``max_output`` bytes, a :class:`CommandOutput` whose
            ``.path`` names the file (the trial's log says so too).
        **options: other task options (``retries``, ``executor``, ``tags``, ``cache``
            (default False: commands act on the world), ...).

    Raises:
        ValueError: for a bad ``output`` or ``max_output``, or a string ``argv``
            without ``shell=True``.
    """
    from ._graph import current_graph
    from ._task import task

    if output not in ("stdout", "result"):
        raise ValueError(f"shell(): output must be 'stdout' or 'result', got {output!r}")
    if isinstance(argv, str) and not shell:
        raise ValueError(
            "shell(): a command line as one string needs shell=True; or give a list of arguments"
        )
    if shell and not isinstance(argv, str):
        raise ValueError("shell(): with shell=True give the command line as one string")
    if isinstance(argv, (list, tuple)) and not argv:
        raise ValueError("shell(): argv is empty; give at least the program to run")
    if max_output is not None and (type(max_output) is not int or max_output < 0):
        raise ValueError(
            f"shell(): max_output must be a number of bytes (an int >= 0) or None, got {max_output!r}"
        )
    graph = current_graph()
    args = (argv, env, cwd, shell, check, output, timeout, max_output)
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
    max_output: int | None = MAX_OUTPUT,
    node: str = "shell",
) -> Any:
    """Run one command to its end (the function of a ``dx.shell`` node)."""
    cmd: Any = argv if use_shell else [_argument(a) for a in argv]
    full_env = command_env(env)
    folder = None if cwd is None else os.fspath(cwd)
    if not use_shell:
        find_program(cmd, full_env, folder)
    command = Command(cmd, full_env, folder, use_shell, max_output, node)
    try:
        try:
            returncode = command.run(timeout)
        except subprocess.TimeoutExpired:
            command.stop()
            raise TaskTimeout(
                f"node {node!r}: command {_show(cmd)} ran past its timeout of {timeout:g} s; "
                "its process group was stopped",
                node,
                timeout,
            ) from None
        except BaseException:  # Ctrl-C in this thread, a worker's alarm, anything: nothing is left
            command.stop()
            raise
    finally:
        command.close()
    if check and returncode != 0:
        tail = command.err.last_lines(STDERR_LINES)
        raise CommandFailed(
            f"node {node!r}: command {_show(cmd)} exited with {returncode}"
            + (f"; stderr (last lines):\n{tail}" if tail else "; no stderr"),
            returncode,
            command.err.text(),
        )
    if output == "stdout":
        command.err.data.clear()
        return command.out.text()
    return CommandResult(returncode, command.out.text(), command.err.text())


def find_program(cmd: list[Any], env: Mapping[Any, Any], cwd: Any) -> None:
    """Raise what ``subprocess`` raises for a program that cannot be run: the command
    starts under a ``/bin/sh`` that would report it only as exit code 127 or 126.

    Raises:
        ValueError: for an empty argv.
        FileNotFoundError: no such program (on ``env``'s ``PATH``, or at its path).
        PermissionError: a program that is not executable.
    """
    if not cmd:
        raise ValueError("shell(): argv is empty; give at least the program to run")
    program = os.fsdecode(cmd[0])
    if os.sep in program:
        path = os.path.join(os.fsdecode(cwd) if cwd is not None else os.getcwd(), program)
        found = path if os.path.exists(path) else None
    else:
        found = shutil.which(program, mode=os.F_OK, path=os.fsdecode(env.get("PATH", os.defpath)))
    if found is None:
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), program)
    if os.path.isdir(found) or not os.access(found, os.X_OK):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), program)


def command_env(env: Mapping[str, Any] | None) -> dict[Any, Any]:
    """A command's whole environment: this process's without ``WITHHELD``, the trial's
    ``TRACEPARENT`` in a traced run, with ``env`` laid over it."""
    full: dict[Any, Any] = {k: v for k, v in os.environ.items() if k not in WITHHELD}
    traceparent = TRACEPARENT.get()  # a traced run's trial: its span, for the command's own
    if traceparent is not None:
        full["TRACEPARENT"] = traceparent
    for key, value in (env or {}).items():
        full[key] = _argument(value)
    return full


def _argument(value: Any) -> Any:
    """An argument (or variable) as the operating system takes it: text and bytes as
    they are, a path by ``os.fspath``, anything else by ``str``."""
    if isinstance(value, (str, bytes)):
        return value
    if isinstance(value, bytearray):
        return bytes(value)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return str(value)


def _show(cmd: Any) -> str:
    text = cmd if isinstance(cmd, str) else " ".join(os.fsdecode(a) for a in cmd)
    return repr(text if len(text) <= 120 else text[:117] + "...")
