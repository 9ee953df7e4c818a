"""Tasks the events and tracing tests run: a retry, a crash, a timeout, a map, a cond."""

from __future__ import annotations

import os
import time

import dagexec as dx


def once_then(marks: str, name: str) -> bool:
    """False the first time (leaving a mark), True after."""
    path = os.path.join(marks, name)
    if os.path.exists(path):
        return True
    open(path, "w").close()
    return False


@dx.task(retries=1)
def flaky(marks: str) -> int:
    if not once_then(marks, "flaky"):
        raise ValueError("first attempt")
    return 1


@dx.task(retries=1)
def dies_once(marks: str) -> int:
    if not once_then(marks, "dies"):
        os._exit(3)
    return 2


@dx.task(timeout=0.3)
def hangs() -> int:
    time.sleep(30)
    return 0


@dx.task
def double(x: int) -> int:
    return 2 * x


@dx.task
def small(x: int) -> bool:
    return x < 10
