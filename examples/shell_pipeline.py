"""Shell: commands as tasks, in parallel where the graph allows.

Run it with ``python examples/shell_pipeline.py``. In a temporary folder, three
commands each write a file (they run at once on threads), ``tar`` packs the three,
``sha256sum`` checksums the archive, and a Python task reads the checksum from the
command's stdout. A command that fails shows its exit code and the end of its stderr.
Then: a trial's log holds a command's stdout and stderr lines; an output past
``max_output`` bytes is cut, whole in a file the value names; and a command that
leaves a process behind ends when it exits, that process stopped with it.
"""

from __future__ import annotations

import os
import tempfile

import dagexec as dx


@dx.task
def checksum_of(line: str) -> str:
    """The hex digest from a ``sha256sum`` output line."""
    return line.split()[0]


def build(folder: str) -> dx.CompiledGraph:
    with dx.Graph("pack") as graph:
        parts = [
            dx.shell(
                ["sh", "-c", f"seq 1 {n} > part{n}.txt && echo part{n}.txt"], name=f"make{n}", cwd=folder
            )
            for n in (10, 20, 30)
        ]
        archive = os.path.join(folder, "parts.tar")
        packed = dx.shell(
            ["tar", "-cf", archive, "part10.txt", "part20.txt", "part30.txt"], name="tar", cwd=folder
        )
        summed = dx.shell(["sha256sum", archive], name="sha256sum").after(packed)
        for part in parts:
            packed.after(part)  # tar reads the files the three commands write
        graph.output(checksum_of(summed), name="checksum")
        graph.output(
            dx.shell(["wc", "-l", "part30.txt"], name="count", cwd=folder).after(parts[2]), name="lines"
        )
    return graph.compile()


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        result = build(folder).run(executor="threads")
        print("checksum is 64 hex digits:", len(result.outputs["checksum"]) == 64)
        print("lines:", result.outputs["lines"].split()[0])
        print("ran:", [k for k, s in result.states.items() if s == dx.State.SUCCEEDED])

    with dx.Graph("broken") as graph:
        dx.shell(["sh", "-c", "echo 'no such input' >&2; exit 2"], name="convert")
    try:
        graph.compile().run(executor="serial")
    except dx.RunFailed as exc:
        print("failed:", exc.__cause__)

    with dx.Graph("chatty") as graph:
        dx.shell(["sh", "-c", "echo 3 files synced; echo 'warning: 1 file skipped' >&2"], name="sync")
    result = graph.compile().run(executor="serial")
    print("value:", repr(result.output))
    print("log:", result.trials["sync"][-1].log.splitlines())

    big = dx.shell(["seq", "1", "100000"], max_output=1000)  # outside a graph: runs at once
    print(
        f"kept {len(big)} of {big.size} bytes; all of them in a file: {os.path.getsize(big.path) == big.size}"
    )
    os.unlink(big.path)

    print("ends when it exits, not with its sleep:", repr(dx.shell(["sh", "-c", "sleep 60 & echo started"])))


if __name__ == "__main__":
    main()
