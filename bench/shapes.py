"""DAG shapes, described independently of any runner.

A :class:`Dag` lists nodes in topological order: ``fns[i]`` is the task of node
``i`` and ``args[i]`` its positional arguments, each a constant or a :class:`Ref`
to an earlier node.  Each runner turns a Dag into its own graph; ``sinks`` (the
nodes nobody reads) are what every runner computes, and the sum of their values
is the checksum runners are compared on.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from tasks import add, check, inc, link, make, nap, spin

__all__ = ["SHAPES", "Dag", "Ref", "bigchain", "chain", "fan", "independent", "layered", "sleepers"]


class Ref:
    """The value of node ``i``."""

    __slots__ = ("i",)

    def __init__(self, i: int) -> None:
        self.i = i

    def __repr__(self) -> str:
        return f"Ref({self.i})"


class Dag:
    """Nodes in topological order; see the module docstring."""

    __slots__ = ("args", "fns", "name", "sinks")

    def __init__(self, name: str, fns: list[Any], args: list[tuple[Any, ...]]) -> None:
        self.name = name
        self.fns = fns
        self.args = args
        read = [False] * len(fns)
        for a in args:
            for x in a:
                if type(x) is Ref:
                    read[x.i] = True
        self.sinks = [i for i, r in enumerate(read) if not r]

    def __len__(self) -> int:
        return len(self.fns)

    def __repr__(self) -> str:
        return f"<Dag {self.name} nodes={len(self)} sinks={len(self.sinks)}>"


def chain(n: int) -> Dag:
    """``inc(inc(...inc(0)))``: n nodes, each reading the one before."""
    return Dag("chain", [inc] * n, [(0,)] + [(Ref(i - 1),) for i in range(1, n)])


def fan(n: int) -> Dag:
    """One source, ``n`` independent children of it, one ``add`` of them all: n + 2 nodes."""
    fns: list[Any] = [inc] * (n + 1) + [add]
    args: list[tuple[Any, ...]] = [(0,)] + [(Ref(0),)] * n + [tuple(Ref(i) for i in range(1, n + 1))]
    return Dag("fan", fns, args)


def layered(n: int, layers: int = 20, seed: int = 0) -> Dag:
    """``layers`` layers of ``n // layers`` nodes; each node past the first layer adds
    1-3 distinct nodes of the previous layer, picked by a seeded RNG."""
    rng = random.Random(seed)
    width = max(1, n // layers)
    fns: list[Any] = [inc] * width
    args: list[tuple[Any, ...]] = [(i,) for i in range(width)]
    prev = list(range(width))
    for _ in range(1, layers):
        cur = []
        for _ in range(width):
            picks = rng.sample(prev, min(len(prev), rng.randint(1, 3)))
            fns.append(add)
            args.append(tuple(Ref(p) for p in picks))
            cur.append(len(fns) - 1)
        prev = cur
    return Dag("layered", fns, args)


def independent(n: int, loops: int) -> Dag:
    """``n`` independent ``spin(i, loops)`` nodes: every node is a sink."""
    return Dag("independent", [spin] * n, [(i, loops) for i in range(n)])


def sleepers(n: int, seconds: float) -> Dag:
    """``n`` independent ``nap(i, seconds)`` nodes, each sleeping ``seconds``: every node is a sink."""
    return Dag("sleepers", [nap] * n, [(i, seconds) for i in range(n)])


def bigchain(values: int, nbytes: int) -> Dag:
    """``make(nbytes)``, then ``values - 1`` nodes ``link(prev)``, each a fresh copy of
    the one before, then ``check(last)``, an int: ``values`` values of ``nbytes``
    bytes each, values + 1 nodes, one small sink."""
    fns: list[Any] = [make] + [link] * (values - 1) + [check]
    args: list[tuple[Any, ...]] = [(nbytes,)] + [(Ref(i - 1),) for i in range(1, values + 1)]
    return Dag("bigchain", fns, args)


#: the shapes made from a node count alone
SHAPES: dict[str, Callable[[int], Dag]] = {"chain": chain, "fan": fan, "layered": layered}
