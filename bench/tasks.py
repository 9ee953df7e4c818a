"""The no-op tasks every workload is made of.

They are unannotated, so dagexec compiles no type checks for them.  The plain
loop and dask call the undecorated functions (``inc.__wrapped__``): the very
function objects dagexec calls.
"""

from __future__ import annotations

import dagexec as dx


@dx.task
def inc(x):
    return x + 1


@dx.task
def add(*xs):
    return sum(xs)
