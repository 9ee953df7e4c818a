"""What the command line reads and writes (DESIGN §8, §12 "Standard streams"): inputs
and destinations refused before anything runs, ``-`` as standard output holding one
document alone, reports that no pipe wraps, and ``--workers`` for loky kept to a
multiple of the CPUs.  Always through real ``python -m dagexec`` subprocesses; a task
that would run leaves a marker file, so "nothing ran" is a fact checked on disk.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import loky
import pytest

PIPE = textwrap.dedent(
    """
    import os
    import sys

    import dagexec as dx

    HERE = os.path.dirname(os.path.abspath(__file__))


    def mark(name):
        with open(os.path.join(HERE, "ran"), "a") as f:
            f.write(name + "\\n")


    @dx.task
    def depth(x: list) -> int:
        mark("depth")
        d = 0
        while isinstance(x, list) and x:
            x, d = x[0], d + 1
        return d


    @dx.task
    def anything(x) -> str:
        mark("anything")
        return type(x).__name__


    @dx.task
    def load(n: int) -> list[int]:
        mark("load")
        print("printed by load")
        return list(range(n))


    @dx.task
    def total(rows: list[int]) -> int:
        print("printed by total", file=sys.stderr)
        return sum(rows)


    @dx.task
    def fail(rows: list[int]) -> int:
        raise ValueError("a long reason: " + "that goes on " * 20 + "and ends here")


    @dx.task
    def processes() -> int:
        import psutil

        master = psutil.Process(os.getppid())
        return sum("LokyProcess" in " ".join(c.cmdline()) for c in master.children())


    with dx.Graph("nested") as nested:
        nested.output(depth(nested.input("x", list)), name="depth")

    with dx.Graph("loose") as loose:
        loose.output(anything(loose.input("x")), name="kind")

    with dx.Graph("sums") as sums:
        sums.output(total(load(sums.input("n", int))), name="total")

    with dx.Graph("failing") as failing:
        fail(load(3))

    with dx.Graph("pool") as pool:
        pool.output(processes(), name="processes")
    """
)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "pipe.py").write_text(PIPE)
    return folder


def _env() -> dict[str, str]:
    # no COLUMNS: what a CI job or a pipe gets
    drop = ("PYTHONPATH", "DAGEXEC_KEY", "DAGEXEC_REQUIRE_SIGNED", "COLUMNS", "LINES")
    return {k: v for k, v in os.environ.items() if k not in drop}


def cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m dagexec ARGS`` in ``cwd``, stdout and stderr captured apart."""
    return subprocess.run(
        [sys.executable, "-m", "dagexec", *args],
        cwd=cwd,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


def refused(proc: subprocess.CompletedProcess[str], project: Path) -> str:
    """The one error line of a command that exits 2 having run nothing."""
    assert (proc.returncode, proc.stdout) == (2, ""), proc.stderr
    assert "Traceback" not in proc.stderr and "RecursionError" not in proc.stderr
    assert not (project / "ran").exists(), "a task ran"
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


# -- -i with containers nested too deep ------------------------------------------------------

TOO_DEEP = (
    "dagexec: error: input 'x' holds containers nested more than 200 deep, the most dagexec "
    "reads from -i; make such a value inside a task"
)


@pytest.mark.parametrize("target", ["pipe:nested", "pipe:loose"])
@pytest.mark.parametrize("deep", [201, 60_000], ids=["past-the-limit", "past-the-parser"])
def test_an_input_nested_too_deep_exits_2_before_anything_runs(project: Path, target: str, deep: int) -> None:
    proc = cli(project, "run", target, "-i", "x=" + "[" * deep + "]" * deep)
    assert refused(proc, project) == TOO_DEEP


def test_an_input_nested_200_deep_runs(project: Path) -> None:
    proc = cli(project, "run", "pipe:nested", "--no-progress", "-i", "x=" + "[" * 200 + "]" * 200)
    assert (proc.returncode, proc.stdout) == (0, "depth = 199\n"), proc.stderr


# -- --json and dot -o destinations, checked before anything runs --------------------------


def _no_file_in(folder: str) -> str:
    """Why no file can be made in ``folder``, as the OS says it."""
    try:
        fd, probe = tempfile.mkstemp(dir=folder)
    except OSError as exc:
        return str(exc.strerror)
    os.close(fd)
    os.unlink(probe)
    raise AssertionError(f"{folder} takes new files: the test needs a folder that does not")


def test_a_json_destination_that_cannot_be_written_exits_2_before_anything_runs(project: Path) -> None:
    (project / "out").mkdir()
    cases = [
        ("out", "cannot write --json 'out': it is a folder"),
        ("new/", "cannot write --json 'new/': it is a folder"),
        ("no/r.json", "cannot write --json 'no/r.json': no such folder 'no'"),
        ("pipe.py/r.json", "cannot write --json 'pipe.py/r.json': no such folder 'pipe.py'"),
        (
            "/sys/r.json",
            f"cannot write --json '/sys/r.json': no file can be made in the folder '/sys' ({_no_file_in('/sys')})",
        ),
    ]
    for where, message in cases:
        proc = cli(project, "run", "pipe:sums", "-i", "n=3", "--json", where)
        assert refused(proc, project) == f"dagexec: error: {message}"
    assert os.listdir(project / "out") == []
    assert sorted(os.listdir(project)) == ["out", "pipe.py"]  # the check left no file behind


def test_a_dot_destination_that_is_a_folder_exits_2(project: Path) -> None:
    (project / "g.dot").mkdir()
    proc = cli(project, "dot", "pipe:sums", "-o", "g.dot")
    assert refused(proc, project) == "dagexec: error: cannot write 'g.dot': it is a folder"


def test_dry_run_with_json_is_bad_usage(project: Path) -> None:
    proc = cli(project, "run", "pipe:sums", "-i", "n=3", "--cache", "c", "--dry-run", "--json", "-")
    assert refused(proc, project) == "dagexec: error: --dry-run writes no --json: nothing runs"


# -- "-" is standard output, holding the document alone ---------------------------------------


@pytest.mark.parametrize("executor", ["threads", "loky"])
def test_json_to_stdout_leaves_stdout_the_document_alone(project: Path, executor: str) -> None:
    proc = cli(project, "run", "pipe:sums", "-i", "n=4", "--json", "-", "--executor", executor)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert (data["ok"], data["outputs"], data["states"]) == (
        True,
        {"total": 6},
        {"load": "succeeded", "total": "succeeded"},
    )
    assert proc.stdout == json.dumps(data, indent=2) + "\n"
    err = proc.stderr.splitlines()
    assert err[-1] == "total = 6"
    assert "printed by load" in err  # a task's print goes to stderr, from a thread or a worker
    assert "printed by total" in err
    assert not (project / "-").exists()


def test_json_to_stdout_of_a_failed_run_exits_1_with_the_document(project: Path) -> None:
    proc = cli(project, "run", "pipe:failing", "--json", "-", "--no-progress")
    assert proc.returncode == 1, proc.stderr
    data = json.loads(proc.stdout)
    assert (data["ok"], data["states"]) == (False, {"load": "succeeded", "fail": "failed"})
    assert "ValueError: a long reason" in proc.stderr


def test_dot_to_stdout_writes_the_dot_source_alone(project: Path) -> None:
    proc = cli(project, "dot", "pipe:sums", "-o", "g.dot")
    assert proc.returncode == 0, proc.stderr
    proc = cli(project, "dot", "pipe:sums", "-o", "-")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == (project / "g.dot").read_text()
    assert proc.stderr == "wrote standard output: graph 'sums', 2 nodes\n"
    assert not (project / "-").exists()


@pytest.mark.usefixtures("dot_program")
def test_dot_to_stdout_writes_svg_with_format(project: Path) -> None:
    proc = cli(project, "dot", "pipe:sums", "-o", "-", "--format", "svg")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("<?xml")
    assert proc.stdout.rstrip().endswith("</svg>")
    assert ">load</text>" in proc.stdout


# -- reports are not wrapped where no terminal is ---------------------------------------------


def test_a_failure_report_in_a_pipe_keeps_each_error_on_one_line(project: Path) -> None:
    proc = cli(project, "run", "pipe:failing", "--no-progress")
    assert proc.returncode == 1
    reason = "ValueError: a long reason: " + "that goes on " * 20 + "and ends here"
    assert any(line.rstrip().endswith(f"failed       {reason}") for line in proc.stderr.splitlines()), (
        proc.stderr
    )
    lines = proc.stderr.splitlines()
    assert '      raise ValueError("a long reason: " + "that goes on " * 20 + "and ends here")' in lines
    assert f"  {reason}" in lines


def test_inspect_in_a_pipe_keeps_each_field_on_one_line(project: Path) -> None:
    proc = cli(project, "compile", "pipe:sums", "-o", "plan.dagx")
    assert proc.returncode == 0, proc.stderr
    header = json.loads(subprocess.run(
        [sys.executable, "-c", "import json, sys; from dagexec._artifact import read_header; "
         "print(json.dumps(read_header(sys.argv[1])))", "plan.dagx"],
        cwd=project, env=_env(), capture_output=True, text=True, timeout=60, check=True,
    ).stdout)  # fmt: skip
    proc = cli(project, "inspect", "plan.dagx")
    assert proc.returncode == 0, proc.stderr
    payload = f"payload       {header['payload_length']} bytes, sha256 {header['payload_sha256']}"
    assert payload in [line.rstrip() for line in proc.stdout.splitlines()]
    assert len(payload) > 80


# -- --workers for loky ----------------------------------------------------------------------


def test_loky_workers_are_capped_at_4_per_cpu_with_a_warning(project: Path) -> None:
    cpus = loky.cpu_count()
    asked = 4 * cpus + 3
    proc = cli(project, "run", "pipe:pool", "--executor", "loky", "--workers", str(asked), "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"processes = {4 * cpus}\n"
    assert proc.stderr.splitlines()[0] == (
        f"dagexec: warning: --workers {asked} is more than 4 processes per CPU "
        f"({cpus} CPU{'' if cpus == 1 else 's'} here): {4 * cpus} loky workers start"
    )


def test_loky_workers_within_the_cap_are_left_alone(project: Path) -> None:
    proc = cli(project, "run", "pipe:pool", "--executor", "loky", "--workers", "3", "--no-progress")
    assert (proc.returncode, proc.stdout) == (0, "processes = 3\n"), proc.stderr
    assert "warning" not in proc.stderr


@pytest.mark.parametrize("command", ["run", "inspect"])
def test_a_fifo_or_a_folder_named_as_a_file_is_refused_as_not_a_regular_file(
    project: Path, command: str
) -> None:
    os.mkfifo(project / "pipe.dagx")
    (project / "folder.dagx").mkdir()
    for name, what in [("pipe.dagx", "a named pipe (FIFO)"), ("folder.dagx", "a folder")]:
        proc = cli(project, command, name)
        assert proc.returncode == 2
        assert proc.stderr == (
            f"dagexec: error: cannot load {name!r}: it is {what}, not a regular file "
            "(only regular files are read)\n"
        )
