"""The snippets of README.md and docs/*.md run as written.

Each page becomes one Python script, run with this Python in a subprocess, in a fresh
temporary working directory, under a timeout (``PAGE_TIMEOUT``). The script keeps the
page's line numbers: a traceback's ``line N`` is line N of the page. What runs, the
page decides with its fences and an HTML comment on the line before a fence:

- A ```` ```python ```` block runs, in page order, in the page's one script: a name a
  block defines is seen by the blocks after it.
- ``<!-- file: NAME -->`` before a ```` ```python ```` block writes the block to NAME
  in the working directory, at that point of the page, instead of running it: the
  module the page's commands import (``etl.py`` in cli.md).
- A ```` ```sh ```` block whose every command starts with ``dagexec `` (after optional
  ``NAME=value`` variables) runs at its place in the page, each command through the
  shell with ``dagexec`` standing for ``python -m dagexec`` of this Python, in the
  same directory, so it works on the files the page's Python made. A command must
  exit 0, or with the code its trailing ``# exits N`` comment names. Any other ``sh``
  block (installing, ``scripts/test``, benchmarks, starting cluster workers) is never
  run: it changes the machine or needs one that is not here.
- ``<!-- not run: REASON -->`` before a block leaves it out: a cluster, a network
  service, a batch system.
- ``text`` and ``json`` blocks show output; they are not checked.

``EXPECTED_BLOCKS`` is the number of blocks each page runs (python, files and sh), so a
page cannot drop its snippets without saying so here; a new page must be listed too.
Pages whose snippets start worker processes or a dask cluster are marked slow. The
environment is the caller's less ``DAGEXEC_KEY``, ``DAGEXEC_REQUIRE_SIGNED`` and
``DASK_SCHEDULER_ADDRESS``, so a page behaves as it says on any machine.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: seconds one page's script may take (generous: the machine is shared)
PAGE_TIMEOUT = 180

#: page -> blocks it runs; update with the page
EXPECTED_BLOCKS: dict[str, int] = {
    "README.md": 11,
    "docs/airflow.md": 2,
    "docs/architecture.md": 0,
    "docs/artifacts.md": 2,
    "docs/cache.md": 3,
    "docs/cli.md": 5,
    "docs/concepts.md": 8,
    "docs/debugging.md": 4,
    "docs/distributed.md": 1,
    "docs/dynamic.md": 5,
    "docs/executors.md": 1,
    "docs/index.md": 1,
    "docs/observability.md": 1,
    "docs/performance.md": 0,
    "docs/pictures.md": 3,
    "docs/ray.md": 0,
    "docs/processes.md": 11,
    "docs/run-engine.md": 0,
    "docs/running.md": 10,
    "docs/security.md": 1,
    "docs/shell.md": 1,
    "docs/streams.md": 1,
}

#: pages that start worker processes or a cluster
SLOW_PAGES = {"docs/processes.md", "docs/distributed.md"}

FENCE = re.compile(r"^(?P<indent>\s*)```(?P<lang>[\w-]*)\s*$")
MARK = re.compile(r"^\s*<!--\s*(?P<what>not run|file):\s*(?P<arg>.*?)\s*-->\s*$")
COMMAND = re.compile(r"^(?:\w+=\S*\s+)*dagexec\s")
EXITS = re.compile(r"\s+#\s*exits\s+(?P<code>\d+)\s*$")

#: the helpers a page's script calls for its files and commands (written beside it)
HELPERS = """\
import re, subprocess, sys
from pathlib import Path

def write_file(name, text):
    Path(name).write_text(text)

def run_sh(line, command, expected):
    shell = re.sub(r"(^|\\s)dagexec\\s", lambda m: m.group(1) + '"' + sys.executable + '" -m dagexec ',
                   command, count=1)
    print(f"$ {command}", flush=True)
    code = subprocess.run(shell, shell=True).returncode
    if code != expected:
        sys.exit(f"line {line}: {command!r} exited {code}, expected {expected}")
"""


@dataclass(frozen=True)
class Block:
    """One fenced block of a page: its language, its first line (1-based), its text."""

    lang: str
    line: int
    text: str
    mark: tuple[str, str] | None  # ("not run", reason) or ("file", name)


def read_blocks(page: Path) -> list[Block]:
    """The fenced blocks of ``page``, each with the mark on the line before its fence."""
    lines = page.read_text().splitlines()
    blocks, i, previous = [], 0, ""
    while i < len(lines):
        fence = FENCE.match(lines[i])
        if fence is None:
            if lines[i].strip():
                previous = lines[i]
            i += 1
            continue
        indent, start = len(fence["indent"]), i + 1
        i += 1
        while i < len(lines) and lines[i].strip() != "```":
            i += 1
        body = "\n".join(line[indent:] for line in lines[start:i])
        mark = MARK.match(previous)
        blocks.append(Block(fence["lang"], start + 1, body, (mark["what"], mark["arg"]) if mark else None))
        previous, i = "", i + 1
    return blocks


def runs(block: Block) -> bool:
    """Whether the page's script runs (or writes) ``block``."""
    if block.mark is not None and block.mark[0] == "not run":
        return False
    if block.lang == "python":
        return True
    if block.lang == "sh":
        commands = [c for c in block.text.splitlines() if c.strip() and not c.lstrip().startswith("#")]
        return bool(commands) and all(COMMAND.match(c) for c in commands)
    return False


def page_script(page: Path, blocks: list[Block]) -> str:
    """One script of the page's blocks, each at its own line number."""
    lines = [""] * (len(page.read_text().splitlines()) + 1)
    lines[0] = "from _docs_helpers import run_sh as _docs_sh, write_file as _docs_file"
    for block in filter(runs, blocks):
        body = block.text.splitlines()
        if block.lang == "sh":
            for n, command in enumerate(body):
                if command.strip() and not command.lstrip().startswith("#"):
                    exits = EXITS.search(command)
                    expected = int(exits["code"]) if exits else 0
                    command = command[: exits.start()] if exits else command
                    lines[block.line - 1 + n] = f"_docs_sh({block.line + n}, {command.strip()!r}, {expected})"
        elif block.mark is not None:  # a file
            lines[block.line - 1] = f"_docs_file({block.mark[1]!r}, {block.text + chr(10)!r})"
        else:
            lines[block.line - 1 : block.line - 1 + len(body)] = body
    return "\n".join(lines) + "\n"


def run_page(page: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``page``'s script in ``cwd``, without the variables that change what pages do."""
    script = cwd / (page.name + ".py")
    script.write_text(page_script(page, read_blocks(page)))
    (cwd / "_docs_helpers.py").write_text(HELPERS)
    unset = ("DAGEXEC_KEY", "DAGEXEC_REQUIRE_SIGNED", "DASK_SCHEDULER_ADDRESS")
    env = {k: v for k, v in os.environ.items() if k not in unset}
    return subprocess.run(
        [sys.executable, script.name], cwd=cwd, env=env, capture_output=True, text=True, timeout=PAGE_TIMEOUT
    )


def pages() -> list[str]:
    """README.md and every docs/*.md, as paths relative to the checkout."""
    return ["README.md", *sorted(f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md"))]


def test_every_page_is_listed() -> None:
    assert pages() == sorted(EXPECTED_BLOCKS, key=lambda p: (p != "README.md", p))


def test_a_page_runs_its_blocks_in_order_and_stops_at_a_failing_command(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "# A page\n\n<!-- file: mod.py -->\n```python\nVALUE = 3\n```\n\n"
        "```python\nimport mod\nprint(mod.VALUE)\n```\n\n"
        "<!-- not run: a fragment -->\n```python\nraise SystemExit('not run')\n```\n\n"
        "```sh\ndagexec diff mod.py:nothing mod.py:nothing      # exits 2\n"
        "dagexec inspect missing.dagx\n```\n\n```python\nprint('after')\n```\n"
    )
    assert [runs(b) for b in read_blocks(page)] == [True, True, False, True, True]
    done = run_page(page, tmp_path)
    assert (done.returncode, done.stdout.splitlines()) == (
        1,
        ["3", "$ dagexec diff mod.py:nothing mod.py:nothing", "$ dagexec inspect missing.dagx"],
    )
    assert done.stderr.endswith("line 20: 'dagexec inspect missing.dagx' exited 2, expected 0\n")


def test_a_traceback_names_the_line_of_the_page(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("# A page\n\ntext\n\n```python\nx = 1\n\nraise ValueError(x)\n```\n")
    done = run_page(page, tmp_path)
    assert done.returncode == 1
    assert 'page.md.py", line 8, in <module>' in done.stderr


@pytest.mark.parametrize(
    "name",
    [pytest.param(p, marks=[pytest.mark.slow] if p in SLOW_PAGES else []) for p in EXPECTED_BLOCKS],
)
def test_page_snippets_run(name: str, tmp_path: Path) -> None:
    page = ROOT / name
    blocks = read_blocks(page)
    count = sum(map(runs, blocks))
    assert count == EXPECTED_BLOCKS[name], (
        f"{name} runs {count} blocks, EXPECTED_BLOCKS says {EXPECTED_BLOCKS[name]}"
    )
    done = run_page(page, tmp_path)
    assert done.returncode == 0, (
        f"{name} (lines as in the page):\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    )
