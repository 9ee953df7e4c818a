"""Instructions per node of one runner on one shape, counted by valgrind's cachegrind.

Wall time on a shared machine moves 2x from one minute to the next; the number of
instructions a run executes does not.  This counts them: the runner's graph is
prepared and run once untimed, then run ``k`` more times, each after a
``gc.collect()``, in a child process under ``valgrind --tool=cachegrind``; the
count of a child with 3 runs minus that of one with 1 run, divided by 2 and by the
number of nodes, is what one run costs a node.  Runner ``plain`` gives the floor
(the plain loop), so ``dagexec-serial`` minus ``plain`` is the engine's own work.
Cache misses are not counted: a graph whose memory is visited out of order runs
slower than its instructions say.  Needs ``valgrind`` (Debian: ``apt-get install
valgrind``); each count takes a minute or so.

Usage (from the repository root)::

    python bench/instructions.py layered dagexec-serial plain hamilton
"""

from __future__ import annotations

import argparse
import gc
import os
import re
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SIZE = 10_000


def _child(shape: str, runner_name: str, runs: int) -> None:
    """Prepare, run once, then run ``runs`` times more (the measured part)."""
    sys.path[:0] = [HERE, os.path.dirname(HERE)]
    from runners import RUNNERS
    from shapes import SHAPES

    runner = RUNNERS[runner_name]
    prepared = runner.prepare(SHAPES[shape](SIZE))
    runner.run(prepared)
    for _ in range(runs):
        gc.collect()
        runner.run(prepared)


def count(shape: str, runner: str, runs: int) -> int:
    """Instructions of a child process that runs ``runner`` on ``shape`` ``1 + runs`` times."""
    done = subprocess.run(
        [
            "valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null",
            sys.executable, os.path.abspath(__file__), "--child", shape, runner, str(runs),
        ],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    found = re.search(r"I\s+refs:\s+([\d,]+)", done.stderr)
    if found is None:
        raise RuntimeError(f"no instruction count in valgrind's output:\n{done.stderr[-2000:]}")
    return int(found.group(1).replace(",", ""))


def per_node(shape: str, runner: str) -> int:
    """Instructions one run of ``runner`` costs per node of ``shape`` (10,000 nodes)."""
    return (count(shape, runner, 3) - count(shape, runner, 1)) // 2 // SIZE


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _child(sys.argv[2], sys.argv[3], int(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("shape", help="chain, fan or layered")
    parser.add_argument("runners", nargs="+", help="runner names, as in run.py (plain first for the floor)")
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed (Debian: apt-get install valgrind)")
    floor = None
    for runner in args.runners:
        n = per_node(args.shape, runner)
        if runner == "plain":
            floor = n
        over = f", {n - floor:,} over the plain loop" if floor is not None and runner != "plain" else ""
        print(f"{args.shape} {runner}: {n:,} instructions per node{over}", flush=True)


if __name__ == "__main__":
    main()
