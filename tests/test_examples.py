"""Every script in ``examples/`` runs in a fresh interpreter and prints what it should."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

# The exact stdout of each example. A line given as a compiled pattern holds a
# duration, which varies; every other line must match exactly.
EXPECTED: dict[str, list[str | re.Pattern[str]]] = {
    "airflow_port.py": [
        "2026-12-07: sent 'weekly report: 1400' (ran ['report']); clean succeeded, files left: 0",
        "2026-12-09: sent 'daily report: 1400' (ran ['report-2']); clean succeeded, files left: 0",
        "2026-12-25: paged on-call: switch upstream_failed (ran []); clean succeeded, files left: 0",
        "  {'extract': 'failed', 'total': 'upstream_failed', 'report': 'skipped', 'report-1': 'upstream_failed', "
        "'report-2': 'skipped', 'switch': 'upstream_failed'}",
    ],
    "cluster.py": [
        "model: model fitted on 120",
        "  train ran on: gpu",
        "  each summarise ran where its partition was made: True",
        "total: 9",
        "  ran here: ['settings']",
        "  ran on the cluster: ['scaled', 'scaled-1', 'scaled-2', 'total']",
        "fragile: [(1, 'crashed'), (2, 'succeeded')] survived",
        "  WorkerCrashed: node 'fragile': its dask worker <worker> died while running attempt 1",
    ],
    "dynamic.py": [
        "shouted: ['MAPS!!', 'RUN!!', 'AT!!', 'RUN!!', 'TIME!!']",
        "items: {'shout[0]': 'succeeded', 'shout[1]': 'failed', 'shout[2]': 'succeeded'}",
        "mean of 10: 4.5 (skipped: ['sampled_mean'])",
        "mean of 100000: 49950.0 (skipped: ['exact_mean'])",
        "bytes: 104950",
        "downloads waiting at once, at most: 100 (with 4 threads)",
        "hang: timed_out (node 'hang' timed out after 0.5 s); cleaned up: ['hang']",
    ],
    "processes.py": [
        "primes below 100,000: 9592",
        "  fetch_range ran in a thread",
        "  count_primes ran in a process",
        "  total ran in a thread",
        "fragile: [(1, 'crashed'), (2, 'succeeded')] survived",
        "  WorkerCrashed: exit codes {EXIT(1)}",
        "too_slow: failed timed_out (node 'too_slow' timed out after 0.5 s)",
        "parse: ValueError(\"invalid literal for int() with base 10: 'forty-two'\")",
        "  last traceback line: ValueError: invalid literal for int() with base 10: 'forty-two'",
    ],
    "shell_pipeline.py": [
        "checksum is 64 hex digits: True",
        "lines: 30",
        "ran: ['make10', 'make20', 'make30', 'tar', 'sha256sum', 'checksum_of', 'count']",
        "failed: node 'convert': command \"sh -c echo 'no such input' >&2; exit 2\" exited with 2; "
        "stderr (last lines):",
        "no such input",
        "value: '3 files synced\\n'",
        "log: ['3 files synced', 'warning: 1 file skipped']",
        "kept 1000 of 588895 bytes; all of them in a file: True",
        "ends when it exits, not with its sleep: 'started\\n'",
    ],
    "streaming.py": [
        *(re.compile(rf"reading {n:2}: scored \d+ ms after it arrived") for n in (0, 10, 20, 30)),
        "scored 40 readings; running mean at the end: 19.50",
        "the first score came before the last reading arrived: True",
        re.compile(r"latency from arrival to score: median \d+ ms, max \d+ ms; the run took \d+\.\d s"),
        "items: {'readings': [40], 'parse': [40], 'running_mean': [40]}",
    ],
    "tracing.py": [
        "total: 5",
        "nightly job",
        "  run nightly",
        "    trial fetch  attempt 1: failed on serial  [ERROR]",
        "    trial fetch  attempt 2: succeeded on serial",
        "    trial square[0]  attempt 1: succeeded on serial",
        "    trial square[1]  attempt 1: succeeded on serial",
        "    trial square[2]  attempt 1: succeeded on serial",
        "    trial total  attempt 1: succeeded on serial",
    ],
    "quickstart.py": [
        "nodes: fetch_stopwords, word_counts/tokenize, word_counts/count, "
        "word_counts-1/tokenize, word_counts-1/count, merge, top",
        "top words:",
        "  library   3",
        "  committee 2",
        "  monday    2",
        "  new       2",
        "fetch_stopwords attempt 1: failed stopwords.example: service unavailable, try again",
        "fetch_stopwords attempt 2: succeeded",
        re.compile(r"graph 'word-counts': 7 nodes in \d+\.\d\d s: 7 succeeded"),
        "tokenize('Hello, world'): ['hello', 'world']",
    ],
    "sections.py": [
        "nodes:",
        "  region/cleaned/parse           section='region/cleaned' retries=1",
        "  region/cleaned/drop_refunds    section='region/cleaned' retries=1",
        "  region/total                   section='region' retries=1",
        "  region-1/cleaned/parse         section='region-1/cleaned' retries=1",
        "  region-1/cleaned/drop_refunds  section='region-1/cleaned' retries=1",
        "  region-1/total                 section='region-1' retries=1",
        "  report                         section='' retries=0",
        "sections:",
        "  region           parent='' output='region/total'",
        "  region/cleaned   parent='region' output='region/cleaned/drop_refunds'",
        "  region-1         parent='' output='region-1/total'",
        "  region-1/cleaned parent='region-1' output='region-1/cleaned/drop_refunds'",
        "report: EU 505.50 | US 449.00 | all 954.50",
        "only region-1: 449.0",
        "  ran: ['region-1/cleaned/parse', 'region-1/cleaned/drop_refunds', 'region-1/total']",
        "skip region/cleaned:",
        "  succeeded: ['region-1/cleaned/parse', 'region-1/cleaned/drop_refunds', 'region-1/total']",
        "  skipped: ['region/cleaned/parse', 'region/cleaned/drop_refunds', 'region/total', 'report']",
        "standalone inputs: ['text'] outputs: ('region',)",
        "standalone: 449.0",
        "plain call: 505.5",
    ],
}


def test_every_example_has_expected_output() -> None:
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_runs_and_prints_expected_lines(name: str, tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    expected = EXPECTED[name]
    assert len(lines) == len(expected), proc.stdout
    for got, want in zip(lines, expected, strict=True):
        if isinstance(want, re.Pattern):
            assert want.fullmatch(got), (got, want.pattern)
        else:
            assert got == want
    assert list(tmp_path.iterdir()) == []
