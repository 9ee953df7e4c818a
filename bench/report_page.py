"""The run report of a large run: its size, the time to write it, the time to open it.

A run of ``--nodes`` tiny tasks (layers of 500, each node reading two of the layer
before; one node in 1,000 fails, and what it feeds is ``upstream_failed``) runs on
the serial executor; ``result.to_html()`` writes its page, timed; the page is opened
in headless Chromium (Debian's ``chromium``, driven by Playwright) and timed from
the navigation's start until the page's script has drawn everything (it sets
``document.body.dataset.drawn`` to ``performance.now()``).  DESIGN §8 asks for a
10,000-node page under 5 MB that opens in under 2 s.

Usage (from the repository root)::

    python bench/report_page.py --nodes 10000 --reps 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.dirname(HERE)]

import dagexec as dx  # noqa: E402

WIDTH = 500  # nodes per layer


@dx.task
def extract(i: int) -> int:
    return i


@dx.task
def transform(a: int, b: int) -> int:
    if (a + b) % 1000 == 999:
        raise ValueError(f"bad pair {a} + {b}")
    return (a + b) % 1013


@dx.task
def publish(a: int, b: int) -> int:
    return a + b


def large_run(nodes: int) -> dx.RunResult:
    """A run of ``nodes`` nodes in layers of ``WIDTH`` (at least two layers), serial."""
    layers = max(2, nodes // WIDTH)
    with dx.Graph("large") as graph:
        row = [extract(i) for i in range(WIDTH)]
        for layer in range(1, layers):
            task = publish if layer == layers - 1 else transform
            row = [task(row[j], row[(j * 7 + layer) % WIDTH]) for j in range(WIDTH)]
    return graph.compile().run(executor="serial", raise_on_failure=False, fail_fast=False)


def open_time(browser: object, page_path: Path) -> float:
    """Seconds from the start of navigation until the page's script has drawn it all."""
    page = browser.new_page()  # type: ignore[attr-defined]
    try:
        page.goto(page_path.as_uri())
        page.wait_for_selector("body[data-drawn]", timeout=120_000)
        return float(page.evaluate("Number(document.body.dataset.drawn)")) / 1000
    finally:
        page.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--nodes", type=int, default=10_000)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    from playwright import sync_api

    result = large_run(args.nodes)
    print(f"run of {len(result.states):,} nodes: {sum(1 for s in result.states.values() if s is dx.State.FAILED)} failed")
    with tempfile.TemporaryDirectory() as tmp, sync_api.sync_playwright() as p:
        out = Path(tmp) / "report.html"
        writes = []
        for _ in range(args.reps):
            t0 = time.perf_counter()
            result.to_html(out)
            writes.append(time.perf_counter() - t0)
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--headless", "--no-sandbox"])
        opens = [open_time(browser, out) for _ in range(args.reps)]
        browser.close()
        size = out.stat().st_size
    print(f"page size   {size / 1e6:.2f} MB (target < 5 MB)")
    print(f"to_html     median {statistics.median(writes):.2f} s of {args.reps}")
    print(f"open        median {statistics.median(opens):.2f} s of {args.reps} (target < 2 s)")


if __name__ == "__main__":
    main()
