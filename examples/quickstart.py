"""Quickstart: count the words of a few documents with dagexec.

Run it with ``python examples/quickstart.py``. It builds a small graph (a section
used twice, a task that is retried), compiles it, runs it in threads, and prints
the most frequent words, the trials of the retried task and the run's summary.
"""

from __future__ import annotations

import re
from collections import Counter

import dagexec as dx

DOCUMENTS = {
    "minutes": (
        "The committee met on Monday. The budget was approved, and the "
        "committee asked for a report on the new library."
    ),
    "notice": (
        "The library opens on Monday. The new library has a reading room, "
        "and the reading room is open to the public."
    ),
}

# How many times fetch_stopwords() was called: it fails on its first call, the way
# a remote service sometimes does, so that the run shows a retry. The failure is
# deterministic, and so is this example's output.
_calls = {"fetch_stopwords": 0}


@dx.task(retries=2, retry_delay=0.05, retry_on=(ConnectionError,))
def fetch_stopwords(source: str) -> list[str]:
    """The words to leave out of the counts (a stand-in for a remote lookup)."""
    _calls["fetch_stopwords"] += 1
    if _calls["fetch_stopwords"] == 1:
        raise ConnectionError(f"{source}: service unavailable, try again")
    return ["a", "and", "for", "has", "is", "on", "the", "to", "was"]


@dx.task
def tokenize(text: str) -> list[str]:
    """The lower-case words of ``text``."""
    return re.findall(r"[a-z]+", text.lower())


@dx.task
def count(words: list[str]) -> dict[str, int]:
    """How often each word occurs."""
    return dict(Counter(words))


@dx.section
def word_counts(text: str) -> dict[str, int]:
    """A reusable part of the graph: text in, word counts out."""
    return count(tokenize(text))


@dx.task
def merge(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    """The sum of two word counts."""
    return dict(Counter(a) + Counter(b))


@dx.task
def top(counts: dict[str, int], stopwords: list[str], n: int) -> list[tuple[str, int]]:
    """The ``n`` most frequent words that are not stopwords, most frequent first."""
    kept = [(word, k) for word, k in counts.items() if word not in stopwords]
    return sorted(kept, key=lambda item: (-item[1], item[0]))[:n]


def main() -> None:
    # Inside the block, calling a task or a section records a Node; nothing runs.
    with dx.Graph("word-counts") as graph:
        n = graph.input("n", int, default=3)
        stopwords = fetch_stopwords("stopwords.example")
        minutes = word_counts(DOCUMENTS["minutes"])
        notice = word_counts(DOCUMENTS["notice"])
        graph.output(top(merge(minutes, notice), stopwords, n), name="top")

    plan = graph.compile()
    print("nodes:", ", ".join(plan.keys))

    result = plan.run(n=4)  # executor="threads" is the default
    print("top words:")
    for word, k in result.output:
        print(f"  {word:<10}{k}")
    for trial in result.trials["fetch_stopwords"]:
        print(f"fetch_stopwords attempt {trial.attempt}: {trial.state} {trial.error or ''}".rstrip())
    print(result.summary())

    # Outside any graph a task is the plain function: easy to test.
    print("tokenize('Hello, world'):", tokenize("Hello, world"))


if __name__ == "__main__":
    main()
