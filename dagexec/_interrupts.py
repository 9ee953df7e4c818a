"""How a run is interrupted in the master: the hooks run on Ctrl-C, and the handler
that makes SIGTERM and SIGHUP stop a run as Ctrl-C does (docs/processes.md).

A leaf module, imported by whatever registers a hook (``dx.shell``'s commands, the
thread executor) and by the run loop, which calls the hooks and installs the handler;
it imports only the standard library, so registering a hook loads nothing else.
"""

from __future__ import annotations

import os
import signal
import threading
from typing import Any

__all__ = ["interrupt_hooks", "kept_handlers", "sigterm_interrupts"]

#: called in the master when a run is interrupted (Ctrl-C): each stops what trials
#: started outside Python in this process (``dx.shell`` registers its commands' killer)
interrupt_hooks: list[Any] = []


class sigterm_interrupts:
    """While a run lasts, SIGTERM and SIGHUP (a closed terminal, a dropped ssh
    session) stop it as Ctrl-C does (``KeyboardInterrupt``), so workers and commands
    are stopped and states recorded before the process goes.

    Only in the main thread, and only for a signal that has its default action: a
    handler of the application's own, or an ignored SIGHUP (``nohup``), is left
    alone.  The previous handlers come back when the run ends.

    The handler acts only in the process that installed it.  A process forked while
    the run lasts (a ``ProcessPoolExecutor`` worker under the fork start method, a
    task's own ``os.fork``) inherits it; there the signal does what it did before,
    it ends the process, so a pool that terminates its workers does not make each
    print a ``KeyboardInterrupt`` traceback, and a worker that gets SIGTERM dies of it
    (a crash of its trial) instead of failing its trial with ``KeyboardInterrupt``.
    """

    def __enter__(self) -> None:
        self.previous: dict[int, Any] = {}
        if threading.current_thread() is not threading.main_thread():
            return
        handler = _interrupt_in(os.getpid())
        for sig in _STOPPING:
            if signal.getsignal(sig) is signal.SIG_DFL:
                self.previous[sig] = signal.signal(sig, handler)

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


#: the signals that stop a run as Ctrl-C does
_STOPPING = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


def _interrupt_in(master: int) -> Any:
    """The handler of the stopping signals for a run in process ``master``."""

    def stop_run(signum: int, frame: Any) -> None:
        if os.getpid() != master:
            # a process forked from the master: the default action, as if never installed
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        raise KeyboardInterrupt(f"the run received {signal.Signals(signum).name}")

    return stop_run


class kept_handlers:
    """While it lasts, a library may set handlers of SIGINT and the stopping signals
    (``ray.init`` takes SIGTERM); they are put back as they were when it ends, so that
    a run stops on them as it should.  Only in the main thread."""

    def __enter__(self) -> None:
        main = threading.current_thread() is threading.main_thread()
        self.previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, *_STOPPING)} if main else {}

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
