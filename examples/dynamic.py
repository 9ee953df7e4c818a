"""Dynamic: ``task.map`` over a list known at run time, ``dx.cond``, ``async def`` tasks.

Run it with ``python examples/dynamic.py``. First a map makes one trial per word of
a sentence that is known only when the graph runs, and one item fails. Then a cond
chooses, at run time, how
to summarise a list by its length: only the chosen branch runs, the other is
``skipped``. Then a hundred "downloads" that each wait 0.2 s run at once on the
threads executor's event loop (they hold no thread while they wait), and a
coroutine that runs past its timeout is cancelled, and its ``finally`` block runs.
"""

from __future__ import annotations

import asyncio
import threading

import dagexec as dx


class Gauge:
    """How many downloads are waiting at once (the most seen)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now = 0
        self.most = 0

    def enter(self) -> None:
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)

    def leave(self) -> None:
        with self.lock:
            self.now -= 1


GAUGE = Gauge()
CLEANED: list[str] = []


@dx.task
def words(text: str) -> list[str]:
    return text.split()


@dx.task
def shout(word: str, marks: int = 1) -> str:
    if not word.isalpha():
        raise ValueError(f"not a word: {word!r}")
    return word.upper() + "!" * marks


@dx.task
def numbers(n: int) -> list[int]:
    return list(range(n))


@dx.task
def is_long(xs: list[int]) -> bool:
    return len(xs) > 1_000


@dx.task
def exact_mean(xs: list[int]) -> float:
    return sum(xs) / len(xs)


@dx.task
def sampled_mean(xs: list[int]) -> float:
    sample = xs[::100]
    return sum(sample) / len(sample)


@dx.task
async def download(page: int) -> int:
    """A stand-in for an HTTP request: waits, then returns the page's size."""
    GAUGE.enter()
    try:
        await asyncio.sleep(0.2)
    finally:
        GAUGE.leave()
    return 1_000 + page


@dx.task
def total(sizes: list[int]) -> int:
    """An ordinary task reading the async tasks' values."""
    return sum(sizes)


@dx.task(timeout=0.5)
async def hang() -> str:
    """Runs past its timeout: the coroutine is cancelled and its cleanup runs."""
    try:
        await asyncio.sleep(60)
    finally:
        CLEANED.append("hang")
    return "never"


def main() -> None:
    with dx.Graph("shouts") as graph:
        graph.output(shout.map(words(graph.input("text", str)), marks=2), name="shouted")
    plan = graph.compile()
    print("shouted:", plan.run(text="maps run at run time", executor="threads").output)
    result = plan.run(text="one 2 three", executor="threads", fail_fast=False, raise_on_failure=False)
    print("items:", {k: str(s) for k, s in result.states.items() if k.startswith("shout[")})

    with dx.Graph("means") as graph:
        xs = numbers(graph.input("n", int))
        graph.output(dx.cond(is_long(xs), then=lambda: sampled_mean(xs), otherwise=lambda: exact_mean(xs)))
    plan = graph.compile()
    for n in (10, 100_000):
        result = plan.run(n=n, executor="serial")
        skipped = [k for k, s in result.states.items() if s == dx.State.SKIPPED]
        print(f"mean of {n}: {result.output} (skipped: {skipped})")

    with dx.Graph("pages") as graph:
        graph.output(total([download(page) for page in range(100)]), name="bytes")
    result = graph.compile().run(executor="threads", max_workers=4)
    print("bytes:", result.output)
    print("downloads waiting at once, at most:", GAUGE.most, "(with 4 threads)")

    with dx.Graph("hanging") as graph:
        hang()
    result = graph.compile().run(executor="threads", raise_on_failure=False)
    trial = result.trials["hang"][0]
    print("hang:", str(trial.state), f"({trial.error}); cleaned up: {CLEANED}")


if __name__ == "__main__":
    main()
