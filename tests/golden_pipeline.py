"""The reference plan that ``tests/test_golden.py`` pins.

A plan's fingerprint and cache keys hash its tasks' code by value, so the values
that test pins depend on the code of this module: leave it as it is.  A plan that
needs another kind of node gets a module of its own, with its own pinned values.

The plan uses every kind of node the run engine handles: sections nested in a
section, constants nested in namedtuples, sets, dicts and tuples (with Nodes inside
some), ``node[k]`` and unpacking, ``dx.cond``, ``task.map`` and a map over another
map's list (one through a task copied with ``options()``), a ``dx.shell`` command,
``after()``, a task that fails once and succeeds when retried (it counts its
attempts in a file, so it behaves the same in any process), and a map three of whose
items fail (in one chunk, so that they fail in the same order on every executor).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import dagexec as dx


class Window(NamedTuple):
    """A range of rows and what to do with it."""

    lo: int
    hi: Any
    extra: Any


@dx.task
def numbers(n: int) -> list[int]:
    """0 to n - 1."""
    return list(range(n))


@dx.task
def halves(rows: list[int]) -> tuple[list[int], list[int]]:
    """The first and the second half of ``rows``."""
    middle = len(rows) // 2
    return rows[:middle], rows[middle:]


@dx.task
def measure(rows: list[int], window: Window, labels: dict[str, Any]) -> dict[str, Any]:
    """What the section below reports about ``rows``."""
    lo, hi = window.hi
    return {
        "size": len(rows) + window.lo,
        "inside": [r for r in rows if lo <= r <= hi],
        "labels": sorted(labels["tags"]),
        "extra": sorted(window.extra["ids"]),
    }


@dx.task
def combine(first: dict[str, Any], second: dict[str, Any], parts: dict[str, Any]) -> dict[str, Any]:
    """Two reports and the values nested in ``parts``, in one dict."""
    head, tail = parts["pair"]
    return {
        "sizes": [first["size"], second["size"]],
        "head": head,
        "tail": tail[0],
        "set": sorted(parts["set"]),
        "window": tuple(parts["window"]),
    }


@dx.section
def inner(rows: list[int]) -> dict[str, Any]:
    """Measure ``rows`` through a constant window."""
    # no set of strings inside the namedtuple: plan.fingerprint hashes a namedtuple
    # by its pickle, which lists such a set in an order that depends on the hash seed
    window = Window(1, (2, 5), {"ids": frozenset({3, 1, 2}), "mode": ("fast", 2)})
    return measure(rows, window, {"tags": {"gamma", "alpha", "beta"}, "range": (1, (2, 3))})


@dx.section(retries=1)
def outer(rows: list[int]) -> dict[str, Any]:
    """Both halves of ``rows`` measured by one nested section each, then combined."""
    first, second = halves(rows)
    a = inner(first)
    b = inner(second)
    nested = {"pair": (first[0], [second]), "set": {first[1], 7}, "window": Window(a["size"], 9, None)}
    return combine(a, b, nested)


@dx.task
def is_even(report: dict[str, Any]) -> bool:
    """Whether the first size is even."""
    return bool(report["sizes"][0] % 2 == 0)


@dx.task
def word(text: str, times: int) -> str:
    """``text`` repeated ``times`` times, joined by dashes."""
    return "-".join([text] * times)


@dx.task
def double(x: int) -> int:
    """2 * x."""
    return 2 * x


@dx.task
def shift(x: int, by: int) -> int:
    """x + by."""
    return x + by


@dx.task(chunksize=8)
def picky(x: int) -> int:
    """x, but for the odd numbers, which it refuses."""
    if x % 2:
        raise ValueError(f"odd: {x}")
    return x


@dx.task
def total(xs: list[int]) -> int:
    """The sum of ``xs``."""
    return sum(xs)


@dx.task(retries=2, retry_delay=0)
def flaky(counter: str) -> int:
    """Fails on its first attempt; the attempts are counted in the file ``counter``."""
    path = Path(counter)
    seen = int(path.read_text()) if path.exists() else 0
    path.write_text(str(seen + 1))
    if seen == 0:
        raise OSError(f"attempt {seen + 1} fails")
    return seen + 1


@dx.task(cache=False)
def stamp(counter: str, text: str) -> str:
    """A side effect that must wait for the command: ``text`` written beside ``counter``."""
    path = Path(counter).with_suffix(".stamp")
    path.write_text(text)
    return path.name


def build() -> dx.Graph:
    """The reference graph, ``golden``: inputs ``n`` (default 6), ``counter`` and ``by``."""
    with dx.Graph("golden") as graph:
        n = graph.input("n", int, default=6)
        counter = graph.input("counter", str)
        by = graph.input("by", int, default=10)
        rows = numbers(n)
        report = outer(rows)
        chosen = dx.cond(
            is_even(report),
            then=lambda: word("even", report["sizes"][1]),
            otherwise=lambda: word("odd", 2),
        )
        echoed = dx.shell(["echo", chosen, "done"], name="echo")
        graph.output(stamp(counter, chosen).after(echoed), name="stamp")
        graph.output(echoed, name="echoed")
        graph.output(report, name="report")
        graph.output(total(shift.map(double.map(rows), by=by)), name="shifted")
        graph.output(total(shift.options(name="bump").map(picky.map(rows), by=1)), name="picked")
        graph.output(flaky(counter), name="flaky")
    return graph
