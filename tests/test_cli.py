"""The ``dagexec`` command line, always through real subprocesses in ``tmp_path``."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

PIPELINE = textwrap.dedent(
    """
    import dagexec as dx


    @dx.task
    def echo(n: int, scale: float, tags: list[str], flag: bool, label: str, pair: tuple[int, int]) -> list:
        return [n, scale, tags, flag, label, list(pair)]


    @dx.task
    def load(n: int) -> list[int]:
        return list(range(n))


    @dx.task
    def total(rows: list[int]) -> int:
        return sum(rows)


    @dx.task
    def boom(x: int) -> int:
        print("about to fail")
        raise ValueError(f"bad value {x}")


    @dx.task
    def after(x: int) -> int:
        return x


    @dx.task
    def odd() -> set[int]:
        return {1}


    with dx.Graph("demo") as graph:
        graph.output(
            echo(
                graph.input("n", int, default=3),
                graph.input("scale", float, default=1.0),
                graph.input("tags", list[str], default=[]),
                graph.input("flag", bool, default=False),
                graph.input("label", str, default="x"),
                graph.input("pair", tuple[int, int], default=(0, 0)),
            ),
            name="echo",
        )

    with dx.Graph("sums") as sums:
        n = sums.input("n", int)
        sums.output(total(load(n)), name="total")
        sums.output(odd(), name="odd")

    with dx.Graph("failing") as failing:
        after(boom(total(load(2))))


    @dx.section
    def etl(n: int = 4) -> int:
        return total(load(n))


    def make_graph():
        with dx.Graph("made") as g:
            g.output(total(load(5)), name="total")
        return g


    def needs_args(x):
        return x


    compiled = sums.compile()
    not_a_graph = 42
    """
)


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DAGEXEC_KEY")}
    env["COLUMNS"] = "200"
    env.update(extra)
    return env


def cli(
    cwd: Path, *args: str, script: bool = False, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m dagexec ARGS`` (or the ``dagexec`` script) in ``cwd``."""
    if script:
        exe = Path(sys.executable).parent / "dagexec"
        assert exe.exists(), "the dagexec console script is not installed next to this Python"
        cmd = [str(exe), *args]
    else:
        cmd = [sys.executable, "-m", "dagexec", *args]
    return subprocess.run(cmd, cwd=cwd, env=env or _env(), capture_output=True, text=True, timeout=60)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "pipe.py").write_text(PIPELINE)
    return folder


def error_line(proc: subprocess.CompletedProcess[str]) -> str:
    """The whole stderr, which must be the one ``dagexec: error:`` line."""
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


# -- run: success, inputs, --json --------------------------------------------------------
def test_run_module_target_prints_outputs_and_exits_0(project: Path) -> None:
    proc = cli(project, "run", "pipe:sums", "-i", "n=4")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "total = 6\nodd = {1}\n"
    assert "succeeded  load" in proc.stderr
    assert "succeeded  total" in proc.stderr
    assert "graph 'sums': 3 nodes in" in proc.stderr


def test_console_script_runs_a_file_path_target_from_another_folder(project: Path, tmp_path: Path) -> None:
    proc = cli(tmp_path, "run", "project/pipe.py:sums", "-i", "n=3", "--executor", "serial", script=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "total = 3\nodd = {1}\n"


def test_inputs_are_parsed_by_their_declared_types(project: Path) -> None:
    out = project / "r.json"
    args = ["-i", "n=7", "-i", "scale=2.5", "-i", 'tags=["a", "b"]', "-i", "flag=yes"]
    args += ["-i", "label=hello world", "-i", "pair=[1, 2]"]
    proc = cli(project, "run", "pipe:graph", *args, "--json", str(out), "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(out.read_text())["outputs"] == {
        "echo": [7, 2.5, ["a", "b"], True, "hello world", [1, 2]]
    }


@pytest.mark.parametrize(
    ("text", "value"),
    [("true", True), ("1", True), ("YES", True), ("false", False), ("0", False), ("no", False)],
)
def test_bool_inputs_accept_true_false_1_0_yes_no(project: Path, text: str, value: bool) -> None:
    out = project / "r.json"
    proc = cli(project, "run", "pipe:graph", "-i", f"flag={text}", "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(out.read_text())["outputs"]["echo"][3] is value


@pytest.mark.parametrize(
    ("arg", "message"),
    [
        ("n=three", "dagexec: error: input 'n' expects int, got 'three'"),
        ("scale=big", "dagexec: error: input 'scale' expects float, got 'big'"),
        ("flag=maybe", "dagexec: error: input 'flag' expects bool (true/false, 1/0 or yes/no), got 'maybe'"),
        (
            "tags=[a",
            "dagexec: error: input 'tags' expects list[str] as JSON "
            "(Expecting value: line 1 column 2 (char 1)), got '[a'",
        ),
        (
            "tags=[1, 2]",
            "dagexec: error: input 'tags' expects list[str] but got list [1, 2] (item 0 of list is not an instance of str)",
        ),
        ("n", "dagexec: error: -i takes name=value, got 'n'"),
    ],
)
def test_a_bad_input_value_exits_2_naming_the_input(project: Path, arg: str, message: str) -> None:
    proc = cli(project, "run", "pipe:graph", "-i", arg)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert error_line(proc) == message


def test_missing_and_unknown_inputs_exit_2_listing_both(project: Path) -> None:
    proc = cli(project, "run", "pipe:sums", "-i", "m=1")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr == (
        "dagexec: error: 2 problems in run of graph 'sums':\n"
        "- missing input 'n', needed by 'load'\n"
        "- unknown input 'm'; the graph's inputs are: 'n'\n"
    )


def test_json_file_has_exactly_the_documented_shape(project: Path) -> None:
    out = project / "result.json"
    proc = cli(project, "run", "pipe:sums", "-i", "n=3", "--json", str(out), "--executor", "serial")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(out.read_text())
    assert list(data) == ["ok", "outputs", "states", "trials", "duration"]
    assert data["ok"] is True
    # a set is not JSON: it is written as its repr
    assert data["outputs"] == {"total": 3, "odd": "{1}"}
    assert data["states"] == {"load": "succeeded", "total": "succeeded", "odd": "succeeded"}
    assert sorted(data["trials"]) == ["load", "odd", "total"]
    for trials in data["trials"].values():
        assert len(trials) == 1
        (trial,) = trials
        assert list(trial) == ["attempt", "state", "start", "end", "error", "log"]
        assert trial["attempt"] == 1
        assert trial["state"] == "succeeded"
        assert trial["error"] is None
        assert trial["log"] == ""
        assert trial["start"] <= trial["end"]
    assert isinstance(data["duration"], float)


# -- run: failures -----------------------------------------------------------------------
def test_a_failed_task_exits_1_with_its_error_and_traceback(project: Path) -> None:
    out = project / "result.json"
    proc = cli(project, "run", "pipe:failing", "--json", str(out), "--executor", "serial")
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout == "about to fail\n"
    assert "failed     boom in " in proc.stderr
    assert "1 failed:" in proc.stderr
    assert "dagexec: warning" not in proc.stderr  # the engine's own warning is not repeated
    assert "boom: traceback (last lines)" in proc.stderr
    assert '    raise ValueError(f"bad value {x}")' in proc.stderr
    assert "  ValueError: bad value 1" in proc.stderr
    data = json.loads(out.read_text())
    assert data["ok"] is False
    assert data["outputs"] == {}
    assert data["states"] == {
        "load": "succeeded",
        "total": "succeeded",
        "boom": "failed",
        "after": "upstream_failed",
    }
    (trial,) = data["trials"]["boom"]
    assert (trial["attempt"], trial["state"], trial["error"]) == (1, "failed", "ValueError: bad value 1")
    assert data["trials"]["after"] == []


def test_only_and_skip_run_part_of_the_plan(project: Path) -> None:
    out = project / "r.json"
    proc = cli(project, "run", "pipe:sums", "-i", "n=3", "--only", "total", "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    data = json.loads(out.read_text())
    assert data["states"] == {"load": "succeeded", "total": "succeeded", "odd": "skipped"}
    assert data["outputs"] == {"total": 3}
    assert "running graph 'sums' (2 of 3 nodes)" in proc.stderr

    proc = cli(project, "run", "pipe:sums", "--skip", "load", "--skip", "odd", "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    data = json.loads(out.read_text())
    # n is needed only by skipped nodes, so it is not required
    assert data["states"] == {"load": "skipped", "total": "skipped", "odd": "skipped"}
    assert data["outputs"] == {}


def test_an_unknown_only_key_exits_2(project: Path) -> None:
    proc = cli(project, "run", "pipe:sums", "-i", "n=1", "--only", "nope")
    assert proc.returncode == 2
    assert error_line(proc).startswith("dagexec: error: ")
    assert "'nope'" in proc.stderr


@pytest.mark.parametrize("executor", ["serial", "threads", "loky"])
def test_every_executor_name_runs(project: Path, executor: str) -> None:
    proc = cli(project, "run", "pipe:sums", "-i", "n=5", "--executor", executor, "--workers", "2")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "total = 10\nodd = {1}\n"


def test_no_progress_leaves_only_the_summary(project: Path) -> None:
    proc = cli(project, "run", "pipe:sums", "-i", "n=2", "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert "running graph" not in proc.stderr
    assert "succeeded  load" not in proc.stderr
    assert "graph 'sums': 3 nodes in" in proc.stderr


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")
def test_a_terminal_gets_the_live_display(project: Path) -> None:
    leader, follower = os.openpty()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "dagexec", "run", "pipe:failing"],
            cwd=project,
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=follower,
            text=True,
            timeout=60,
        )
        os.close(follower)
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(leader)
    shown = b"".join(chunks).decode()
    assert proc.returncode == 1
    assert "running graph" not in shown  # the plain log is for pipes and files
    assert "failing" in shown
    assert "ValueError: bad value 1" in shown


# -- targets ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("target", "stdout"),
    [
        ("pipe:compiled", "total = 1\nodd = {1}\n"),
        ("pipe:etl", "etl = 6\n"),
        ("pipe:make_graph", "total = 10\n"),
    ],
)
def test_a_target_may_be_a_compiled_graph_a_section_or_a_function(
    project: Path, target: str, stdout: str
) -> None:
    inputs = ["-i", "n=2"] if target == "pipe:compiled" else []
    proc = cli(project, "run", target, *inputs)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == stdout


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("nomodule:graph", "cannot import module 'nomodule': No module named 'nomodule'"),
        ("pipe:nothing", "module 'pipe' has no attribute 'nothing'; graphs in it: compiled, etl, failing, graph, sums"),
        ("pipe", "no such file 'pipe'; a target reads module:attr or path/to/file.py:attr"),
        ("pipe.py", "name the graph inside the file: pipe.py:ATTR"),
        ("missing.py:graph", "no such file 'missing.py'"),
        ("pipe:load", "'pipe:load' is a task, not a graph; name a Graph, a section, a CompiledGraph or a function returning a Graph"),
        ("pipe:needs_args", "'pipe:needs_args' is a function that needs arguments; name a Graph, a section, a CompiledGraph or a function returning a Graph"),
        ("pipe:not_a_graph", "'pipe:not_a_graph' is int, not a Graph, a section, a CompiledGraph or a function returning a Graph"),
        ("broken:graph", "importing 'broken' raised ZeroDivisionError: division by zero (broken.py:2)"),
    ],
)  # fmt: skip
def test_a_bad_target_exits_2_with_one_line(project: Path, target: str, message: str) -> None:
    (project / "broken.py").write_text("import dagexec\nx = 1 / 0\n")
    for command in (["run", target], ["dot", target, "-o", "g.dot"], ["compile", target, "-o", "g.dagx"]):
        proc = cli(project, *command)
        assert proc.returncode == 2, (command, proc.stderr)
        assert error_line(proc) == f"dagexec: error: {message}"


def test_a_graph_error_at_compile_exits_2(project: Path) -> None:
    (project / "cyclic.py").write_text(
        textwrap.dedent(
            """
            import dagexec as dx

            @dx.task
            def f() -> int:
                return 1

            with dx.Graph("cyclic") as graph:
                a = f()
                b = f()
                a.after(b)
                b.after(a)
            """
        )
    )
    proc = cli(project, "run", "cyclic:graph")
    assert proc.returncode == 2
    assert error_line(proc) == (
        "dagexec: error: cycle: 'f' -> 'f-1' -> 'f' "
        "(closed by 'f-1'.after('f') called at cyclic.py:12, 'f'.after('f-1') called at cyclic.py:11)"
    )


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["frobnicate"],
        ["run"],
        ["run", "pipe:sums", "--executor", "dask"],
        ["run", "pipe:sums", "--workers", "0"],
        ["dot", "pipe:sums"],
    ],
)
def test_bad_usage_exits_2(project: Path, args: list[str]) -> None:
    proc = cli(project, *args)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    # argparse's own form: a usage line, then "dagexec[ COMMAND]: error: ..."
    assert re.fullmatch(r"dagexec( \w+)?: error: .+", proc.stderr.splitlines()[-1]), proc.stderr


def test_help_exits_0(project: Path) -> None:
    proc = cli(project, "--help", script=True)
    assert proc.returncode == 0
    assert "compile" in proc.stdout
    assert "inspect" in proc.stdout


# -- dot -----------------------------------------------------------------------------------
def test_dot_writes_the_dot_source(project: Path) -> None:
    proc = cli(project, "dot", "pipe:sums", "-o", "sums.dot")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "wrote sums.dot: graph 'sums', 3 nodes\n"
    assert (project / "sums.dot").read_text() == textwrap.dedent(
        """\
        digraph sums {
        \tgraph [fontname=Helvetica label=sums labelloc=t rankdir=TB]
        \tnode [fontname=Helvetica fontsize=11 shape=box style=rounded]
        \tedge [fontname=Helvetica fontsize=9]
        \t{
        \t\trank=source
        \t\tin0 [label="n\\nint" id="input:n" shape=ellipse style=dashed]
        \t}
        \tn0 [label="load\\nload" id="node:load" tooltip="pipe:load"]
        \tn1 [label="total\\ntotal" id="node:total" tooltip="pipe:total"]
        \tn2 [label="odd\\nodd" id="node:odd" tooltip="pipe:odd"]
        \t{
        \t\trank=sink
        \t\tout0 [label=total id="output:total" shape=doubleoctagon style=""]
        \t\tout1 [label=odd id="output:odd" shape=doubleoctagon style=""]
        \t}
        \tin0 -> n0 [label=n]
        \tn0 -> n1 [label=rows]
        \tn1 -> out0
        \tn2 -> out1
        }
        """
    )


@pytest.mark.parametrize("name", ["g.svg", "g.png", "g.html"])
def test_svg_png_and_html_without_graphviz_exit_2_saying_to_install_it(
    project: Path, tmp_path: Path, name: str
) -> None:
    no_dot = tmp_path / "empty-bin"
    no_dot.mkdir()
    proc = cli(project, "dot", "pipe:sums", "-o", name, env=_env(PATH=str(no_dot)))
    assert proc.returncode == 2
    suffix = name[1:]
    assert error_line(proc) == (
        f"dagexec: error: writing {suffix} needs the Graphviz 'dot' program, which is not installed; "
        "install Graphviz (https://graphviz.org/download/) or write .dot"
    )
    assert sorted(p.name for p in project.iterdir()) == ["pipe.py"]


needs_dot = pytest.mark.usefixtures("dot_program")


@needs_dot
def test_dot_renders_svg_with_the_dot_program(project: Path) -> None:
    proc = cli(project, "dot", "pipe:sums", "-o", "sums.svg")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "wrote sums.svg: graph 'sums', 3 nodes\n"
    svg = (project / "sums.svg").read_text()
    assert svg.startswith("<?xml")
    ids = re.findall(r'<g id="([^"]*)" class="node">', svg)
    assert sorted(ids) == ["input:n", "node:load", "node:odd", "node:total", "output:odd", "output:total"]


@needs_dot
def test_dot_renders_png_with_the_dot_program(project: Path) -> None:
    proc = cli(project, "dot", "pipe:sums", "-o", "sums.png")
    assert proc.returncode == 0, proc.stderr
    assert (project / "sums.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@needs_dot
def test_dot_writes_an_html_page(project: Path) -> None:
    proc = cli(project, "dot", "pipe:sums", "-o", "sums.html")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "wrote sums.html: graph 'sums', 3 nodes\n"
    page = (project / "sums.html").read_text()
    assert page.startswith("<!DOCTYPE html>")
    assert '<g id="node:total" class="node">' in page
    assert ["pipe:total", "total(rows: list[int]) -> int"] in page_data(project / "sums.html")["functions"]
    assert sorted(p.name for p in project.iterdir()) == ["pipe.py", "sums.html"]


def test_dot_refuses_other_formats(project: Path) -> None:
    proc = cli(project, "dot", "pipe:sums", "-o", "g.txt")
    assert proc.returncode == 2
    assert error_line(proc) == (
        "dagexec: error: cannot tell the picture format of 'g.txt'; use .dot, .svg, .png or .html, or --format"
    )


# -- artifacts: compile, then run, inspect and draw the file elsewhere --------------------
def _clean_env(**extra: str) -> dict[str, str]:
    """Only PATH and HOME: no PYTHONPATH, no key, nothing pointing at the project."""
    env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", ""), "COLUMNS": "200"}
    env.update(extra)
    return env


@pytest.fixture
def elsewhere(tmp_path: Path) -> Path:
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    return folder


def compiled(project: Path, elsewhere: Path, target: str = "pipe:sums", **env: str) -> Path:
    proc = cli(project, "compile", target, "-o", "plan.dagx", env=_env(**env))
    assert proc.returncode == 0, proc.stderr
    assert re.fullmatch(
        r"wrote plan\.dagx: graph '\w+', \d+ nodes, (un)?signed, fingerprint [0-9a-f]{12}\n", proc.stderr
    )
    moved = elsewhere / "plan.dagx"
    shutil.move(project / "plan.dagx", moved)
    return moved


def test_a_compiled_file_runs_where_its_module_cannot_be_imported(project: Path, elsewhere: Path) -> None:
    compiled(project, elsewhere)
    shutil.rmtree(project)  # the source is gone: the code travels inside the file
    probe = subprocess.run(
        [sys.executable, "-c", "import pipe"], cwd=elsewhere, env=_clean_env(), capture_output=True
    )
    assert probe.returncode == 1
    out = elsewhere / "r.json"
    for executor in ("serial", "loky"):
        proc = cli(
            elsewhere,
            "run",
            "plan.dagx",
            "-i",
            "n=5",
            "--executor",
            executor,
            "--json",
            str(out),
            env=_clean_env(),
        )
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout == "total = 10\nodd = {1}\n"
        data = json.loads(out.read_text())
        assert data["states"] == {"load": "succeeded", "total": "succeeded", "odd": "succeeded"}
    proc = cli(elsewhere, "run", "plan.dagx", "-i", "n=x", env=_clean_env())
    assert proc.returncode == 2
    assert error_line(proc) == "dagexec: error: input 'n' expects int, got 'x'"


def test_a_compiled_file_with_a_failing_task_exits_1(project: Path, elsewhere: Path) -> None:
    compiled(project, elsewhere, "pipe.py:failing")
    proc = cli(elsewhere, "run", "plan.dagx", "--executor", "serial", env=_clean_env())
    assert proc.returncode == 1
    assert "ValueError: bad value 1" in proc.stderr


def test_compile_accepts_sections_and_functions(project: Path, elsewhere: Path) -> None:
    compiled(project, elsewhere, "pipe:etl")
    proc = cli(elsewhere, "run", "plan.dagx", "-i", "n=3", env=_clean_env())
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "etl = 3\n"


def test_inspect_shows_the_header_without_loading_the_code(project: Path, elsewhere: Path) -> None:
    path = compiled(project, elsewhere)
    shutil.rmtree(project)
    proc = cli(elsewhere, "inspect", "plan.dagx", env=_clean_env())
    assert proc.returncode == 0, proc.stderr
    lines = [line.rstrip() for line in proc.stdout.splitlines()]
    assert lines[0] == "plan.dagx"
    assert "graph         sums" in lines
    assert "nodes         3" in lines
    assert "signature     unsigned" in lines
    assert "code inside   pipe" in lines
    fingerprint = subprocess.run(
        [sys.executable, "-c", f"import dagexec; print(dagexec.load({str(path)!r}).fingerprint)"],
        env=_clean_env(),
        capture_output=True,
        text=True,
    ).stdout.strip()
    assert f"fingerprint   {fingerprint}" in lines
    assert "n      int    (required)" in lines
    assert "total   total" in lines
    assert "odd     odd" in lines
    assert re.search(r"^total +total +pipe:total +load +pipe\.py:\d+$", proc.stdout, re.M)


def test_a_signed_file_is_checked_with_dagexec_key(project: Path, elsewhere: Path) -> None:
    compiled(project, elsewhere, DAGEXEC_KEY="s3cret")
    proc = cli(elsewhere, "inspect", "plan.dagx", env=_clean_env(DAGEXEC_KEY="s3cret"))
    assert proc.returncode == 0, proc.stderr
    assert "signature     signed, verified with DAGEXEC_KEY" in [
        line.rstrip() for line in proc.stdout.splitlines()
    ]
    proc = cli(elsewhere, "run", "plan.dagx", "-i", "n=2", env=_clean_env(DAGEXEC_KEY="s3cret"))
    assert proc.returncode == 0, proc.stderr
    proc = cli(elsewhere, "run", "plan.dagx", "-i", "n=2", env=_clean_env(DAGEXEC_KEY="other"))
    assert proc.returncode == 2
    assert error_line(proc) == (
        "dagexec: error: cannot load 'plan.dagx': the signature does not match the key "
        "(a different key signed it, or the file was changed after signing)"
    )
    proc = cli(elsewhere, "run", "plan.dagx", "-i", "n=2", "--no-progress", env=_clean_env())
    assert proc.returncode == 2
    assert error_line(proc) == (
        "dagexec: error: cannot load 'plan.dagx': it is signed and no key was given to verify it "
        "(pass key= or set DAGEXEC_KEY)"
    )


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (
            "flip",
            "cannot load 'plan.dagx': the payload does not match its SHA-256 checksum (the file is corrupted)",
        ),
        ("foreign", "cannot load 'plan.dagx': not a dagexec artifact (it does not start with b'DAGX')"),
    ],
)
def test_a_damaged_file_exits_2_with_the_reason(
    project: Path, elsewhere: Path, damage: str, message: str
) -> None:
    path = compiled(project, elsewhere)
    data = bytearray(path.read_bytes())
    if damage == "flip":
        data[-10] ^= 0xFF
    else:
        data[:4] = b"PK\x03\x04"
    path.write_bytes(bytes(data))
    for command in (["run", "plan.dagx"], ["inspect", "plan.dagx"], ["dot", "plan.dagx", "-o", "g.dot"]):
        if damage == "flip" and command[0] == "inspect":
            continue  # the header is intact: inspect does not read the payload's checksum
        proc = cli(elsewhere, *command, env=_clean_env())
        assert proc.returncode == 2, (command, proc.stderr)
        assert error_line(proc) == f"dagexec: error: {message}"


def test_a_truncated_file_exits_2(project: Path, elsewhere: Path) -> None:
    path = compiled(project, elsewhere)
    path.write_bytes(path.read_bytes()[:300])
    proc = cli(elsewhere, "run", "plan.dagx", env=_clean_env())
    assert proc.returncode == 2
    assert re.fullmatch(
        r"dagexec: error: cannot load 'plan\.dagx': the file is truncated: it has 300 bytes but needs at least \d+",
        error_line(proc),
    )


def test_dot_draws_a_compiled_file(project: Path, elsewhere: Path) -> None:
    compiled(project, elsewhere)
    proc = cli(elsewhere, "dot", "plan.dagx", "-o", "g.dot", env=_clean_env())
    assert proc.returncode == 0, proc.stderr
    assert (elsewhere / "g.dot").read_text().startswith("digraph sums {\n")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["inspect", "missing.dagx"], "no such file 'missing.dagx'"),
        (["compile", "plan.dagx", "-o", "again.dagx"], "compile takes module:attr or path/to/file.py:attr, got the file 'plan.dagx'"),
        (["compile", "pipe:sums", "-o", "no/such/dir/x.dagx"], "cannot write 'no/such/dir/x.dagx': no such folder 'no/such/dir'"),
        (["run", "pipe:sums", "-i", "n=1", "--json", "no/r.json"], "cannot write --json 'no/r.json': no such folder 'no'"),
    ],
)  # fmt: skip
def test_bad_files_and_folders_exit_2(project: Path, args: list[str], message: str) -> None:
    (project / "plan.dagx").write_bytes(b"")
    proc = cli(project, *args)
    assert proc.returncode == 2
    assert error_line(proc) == f"dagexec: error: {message}"


# -- keys, required signatures, pinned plans ----------------------------------------------
def test_an_empty_dagexec_key_exits_2_for_every_command_that_loads_or_saves(
    project: Path, elsewhere: Path
) -> None:
    compiled(project, elsewhere)
    empty = _clean_env(DAGEXEC_KEY="")
    reason = (
        "DAGEXEC_KEY is set but empty (what a secret that is not available expands to); "
        "set it to the signing key, or unset it"
    )
    for command in (
        ["run", "plan.dagx", "-i", "n=2"],
        ["inspect", "plan.dagx"],
        ["dot", "plan.dagx", "-o", "g.dot"],
    ):
        proc = cli(elsewhere, *command, env=empty)
        assert proc.returncode == 2, (command, proc.stderr)
        assert error_line(proc) == f"dagexec: error: cannot load 'plan.dagx': {reason}"
        assert proc.stdout == ""
    proc = cli(project, "compile", "pipe:sums", "-o", "again.dagx", env=_env(DAGEXEC_KEY=""))
    assert proc.returncode == 2
    assert error_line(proc) == f"dagexec: error: cannot save graph 'sums' to 'again.dagx': {reason}"
    assert not (project / "again.dagx").exists()
    proc = cli(project, "run", "pipe:sums", "-i", "n=2", "--cache", "c", env=_env(DAGEXEC_KEY=""))
    assert proc.returncode == 2
    assert error_line(proc) == f"dagexec: error: --cache 'c': {reason}"
    assert not (project / "c").exists()  # refused before the store's folder is made


def test_require_signed_refuses_unsigned_files_and_targets(project: Path, elsewhere: Path) -> None:
    compiled(project, elsewhere)
    unsigned = (
        "dagexec: error: cannot load 'plan.dagx': the artifact is not signed, and only signed files are "
        "loaded here (require_signed=True, --require-signed or DAGEXEC_REQUIRE_SIGNED); "
        "save the plan with a key (key= or DAGEXEC_KEY) to sign it"
    )
    proc = cli(elsewhere, "run", "plan.dagx", "-i", "n=2", "--require-signed", env=_clean_env())
    assert (proc.returncode, proc.stdout) == (2, "")
    assert error_line(proc) == unsigned
    required = _clean_env(DAGEXEC_REQUIRE_SIGNED="1")
    for command in (
        ["run", "plan.dagx", "-i", "n=2"],
        ["dot", "plan.dagx", "-o", "g.dot"],
        ["diff", "plan.dagx", "plan.dagx"],
    ):
        proc = cli(elsewhere, *command, env=required)
        assert (proc.returncode, proc.stdout) == (2, ""), command
        assert error_line(proc) == unsigned
    proc = cli(project, "run", "pipe:sums", "-i", "n=2", "--require-signed")
    assert proc.returncode == 2
    assert error_line(proc) == (
        "dagexec: error: only signed files are run here (--require-signed or DAGEXEC_REQUIRE_SIGNED), "
        "and 'pipe:sums' is not a saved file; compile it and sign it with DAGEXEC_KEY"
    )


def test_require_signed_runs_a_file_signed_with_dagexec_key(project: Path, elsewhere: Path) -> None:
    compiled(project, elsewhere, DAGEXEC_KEY="s3cret")
    proc = cli(
        elsewhere, "run", "plan.dagx", "-i", "n=4", "--require-signed", env=_clean_env(DAGEXEC_KEY="s3cret")
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "total = 6\nodd = {1}\n"
    proc = cli(elsewhere, "run", "plan.dagx", "-i", "n=4", env=_clean_env(DAGEXEC_REQUIRE_SIGNED="1"))
    assert proc.returncode == 2
    assert error_line(proc) == (
        "dagexec: error: cannot load 'plan.dagx': it is signed and no key was given to verify it "
        "(pass key= or set DAGEXEC_KEY)"
    )


def _fingerprint_of(path: Path) -> str:
    header = subprocess.run(
        [
            sys.executable,
            "-c",
            f"import dagexec, json; print(dagexec.read_header({str(path)!r})['fingerprint'])",
        ],
        env=_clean_env(),
        capture_output=True,
        text=True,
    )
    return header.stdout.strip()


def test_expect_graph_and_fingerprint_refuse_a_signed_file_of_another_plan(
    project: Path, elsewhere: Path
) -> None:
    path = compiled(project, elsewhere, DAGEXEC_KEY="k")
    fingerprint = _fingerprint_of(path)
    key = _clean_env(DAGEXEC_KEY="k")
    other = "0" * 64
    cases = [
        (["--expect-graph", "etl"], "it holds graph 'sums', and graph 'etl' is expected"),
        (
            ["--expect-fingerprint", other],
            f"it holds the plan of fingerprint {fingerprint}, and fingerprint {other} is expected",
        ),
    ]
    for flags, why in cases:
        proc = cli(elsewhere, "run", "plan.dagx", "-i", "n=2", "--json", "r.json", *flags, env=key)
        assert (proc.returncode, proc.stdout) == (2, "")
        assert error_line(proc) == f"dagexec: error: cannot load 'plan.dagx': {why}"
        assert not (elsewhere / "r.json").exists()  # nothing ran
    proc = cli(
        elsewhere,
        "run",
        "plan.dagx",
        "-i",
        "n=2",
        "--no-progress",
        "--expect-graph",
        "sums",
        "--expect-fingerprint",
        fingerprint.upper(),
        env=key,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "total = 1\nodd = {1}\n"


def test_expectations_apply_to_targets_and_a_bad_fingerprint_is_bad_usage(project: Path) -> None:
    proc = cli(project, "run", "pipe:sums", "-i", "n=2", "--expect-graph", "etl")
    assert proc.returncode == 2
    assert error_line(proc) == "dagexec: error: 'pipe:sums' is graph 'sums', and graph 'etl' is expected"
    proc = cli(project, "run", "pipe:sums", "--expect-fingerprint", "abc")
    assert proc.returncode == 2
    assert proc.stderr.splitlines()[-1] == (
        "dagexec run: error: argument --expect-fingerprint: expects a plan's fingerprint, 64 hex digits, got 'abc'"
    )


# -- inspect on hostile files: valid checksums around a hostile header ------------------------
def _craft(src: Path, dst: Path, header_text: bytes) -> Path:
    """``dst``: ``src``'s payload behind ``header_text``, with a correct header digest."""
    import hashlib
    import struct

    data = src.read_bytes()
    (hlen,) = struct.unpack_from(">I", data, 6)
    payload = data[10 + hlen + 32 :]
    head = struct.pack(">4sHI", b"DAGX", 1, len(header_text)) + header_text
    dst.write_bytes(head + hashlib.sha256(head).digest() + payload)
    return dst


def _header_of(path: Path) -> dict[str, object]:
    import struct

    data = path.read_bytes()
    (hlen,) = struct.unpack_from(">I", data, 6)
    return json.loads(data[10 : 10 + hlen])  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("manifest", []),
        ("manifest", {"inputs": "n", "outputs": [], "nodes": [], "sections": []}),
        ("by_value", [1, 2]),
        ("requirements", "numpy"),
        ("requirements", [{"distribution": "x", "version": "1", "modules": ["os; import evil"]}]),
        ("node_count", "3"),
        ("graph", None),
        ("fingerprint", "short"),
        ("signed", "yes"),
    ],
)
def test_inspect_refuses_a_header_field_of_the_wrong_type(
    project: Path, elsewhere: Path, field: str, value: object
) -> None:
    path = compiled(project, elsewhere)
    header = _header_of(path)
    header[field] = value
    _craft(path, elsewhere / "bad.dagx", json.dumps(header).encode())
    for command in (["inspect", "bad.dagx"], ["run", "bad.dagx"]):
        proc = cli(elsewhere, *command, env=_clean_env())
        assert (proc.returncode, proc.stdout) == (2, "")
        assert error_line(proc) == (
            f"dagexec: error: cannot load 'bad.dagx': the header's {field!r} is missing or invalid "
            "(the file is corrupted)"
        )


def test_inspect_refuses_a_header_nested_200000_deep(project: Path, elsewhere: Path) -> None:
    path = compiled(project, elsewhere)
    text = json.dumps(_header_of(path)).encode()
    deep = text[:-1] + b', "x": ' + b"[" * 200_000 + b"]" * 200_000 + b"}"
    _craft(path, elsewhere / "deep.dagx", deep)
    proc = cli(elsewhere, "inspect", "deep.dagx", env=_clean_env())
    assert (proc.returncode, proc.stdout) == (2, "")
    assert error_line(proc) == (
        "dagexec: error: cannot load 'deep.dagx': the header is not valid JSON: it nests too deeply "
        "(the file is corrupted)"
    )


def test_inspect_shows_control_characters_of_a_hostile_header_escaped(project: Path, elsewhere: Path) -> None:
    path = compiled(project, elsewhere)
    header = _header_of(path)
    evil = "\x1b]0;owned\x07\x1b[2J\u202eevil[bold]"
    header["graph"] = evil
    header["by_value"] = ["pipe\x1b[31m"]
    manifest = header["manifest"]
    assert isinstance(manifest, dict)
    manifest["nodes"][0]["key"] = "load\x1b[1A\r"
    _craft(path, elsewhere / "evil\x1b[31m.dagx", json.dumps(header).encode())
    proc = cli(elsewhere, "inspect", "evil\x1b[31m.dagx", env=_clean_env())
    assert proc.returncode == 0, proc.stderr
    assert not any(ch in proc.stdout for ch in "\x1b\x07\r\u202e")
    lines = [line.rstrip() for line in proc.stdout.splitlines()]
    assert lines[0] == "evil\\x1b[31m.dagx"
    assert "graph         \\x1b]0;owned\\x07\\x1b[2J\\u202eevil[bold]" in lines
    assert "code inside   pipe\\x1b[31m" in lines
    assert any(line.startswith("load\\x1b[1A\\r ") for line in lines)
    proc = cli(elsewhere, "run", "evil\x1b[31m.dagx", "--expect-graph", "sums", env=_clean_env())
    assert proc.returncode == 2
    assert "\x1b" not in proc.stderr
    assert error_line(proc) == (
        "dagexec: error: cannot load 'evil\\x1b[31m.dagx': it holds graph "
        "'\\x1b]0;owned\\x07\\x1b[2J\\u202eevil[bold]', and graph 'sums' is expected"
    )


# -- cache prune never follows a link --------------------------------------------------------
def test_cache_prune_leaves_what_a_symlinked_shard_points_to(project: Path, tmp_path: Path) -> None:
    cache, outside = tmp_path / "cache", tmp_path / "outside"
    proc = cli(project, "run", "pipe:sums", "-i", "n=3", "--cache", str(cache), "--no-progress")
    assert proc.returncode == 0, proc.stderr
    outside.mkdir()
    victims = [outside / ("a" * 62), outside / "thesis.tex"]
    for v in victims:
        v.write_text("precious")
    (cache / "values" / "aa").symlink_to(outside, target_is_directory=True)
    proc = cli(tmp_path, "cache", "prune", str(cache))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("removed 3 entries, ")
    assert proc.stderr == (
        f"dagexec: warning: cache store {cache}: ignored values/aa, a symbolic link "
        "(the store never follows links)\n"
    )
    assert [v.read_text() for v in victims] == ["precious", "precious"]


def test_cache_ls_shows_control_characters_escaped(tmp_path: Path) -> None:
    import hashlib

    from dagexec.cache.store import CacheStore

    store = CacheStore(tmp_path / "cache", key=None, require_signed=False)
    store.put(hashlib.sha256(b"x").hexdigest(), 1, {"graph": "g\x1b[2J", "node": ["not", "text"]})
    proc = cli(tmp_path, "cache", "ls", str(store.path))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0].endswith("g\\x1b[2J:?")


# -- run --report: the page at the end of the run, whatever its end ------------------------
def page_data(path: Path) -> dict[str, Any]:
    """The run record a report page embeds."""
    text = path.read_text()
    start = text.index('<script type="application/json" id="dagexec-data">') + len(
        '<script type="application/json" id="dagexec-data">'
    )
    return json.loads(text[start : text.index("</script>", start)])


def test_report_writes_the_run_page_of_a_failed_run(project: Path) -> None:
    proc = cli(project, "run", "pipe:failing", "--report", "run.html", "--executor", "serial")
    assert proc.returncode == 1, proc.stderr
    data = page_data(project / "run.html")
    assert data["kind"] == "result"
    assert {k: v["state"] for k, v in data["nodes"].items()} == {
        "load": "succeeded",
        "total": "succeeded",
        "boom": "failed",
        "after": "upstream_failed",
    }
    assert data["summary"]["failed"] == ["boom"] and data["summary"]["executors"] == ["serial"]


def test_report_to_a_missing_folder_or_standard_output_exits_2(project: Path) -> None:
    proc = cli(project, "run", "pipe:sums", "-i", "n=1", "--report", "nowhere/run.html")
    assert proc.returncode == 2
    assert error_line(proc) == "dagexec: error: cannot write --report 'nowhere/run.html': no such folder 'nowhere'"
    proc = cli(project, "run", "pipe:sums", "-i", "n=1", "--report", "-")
    assert proc.returncode == 2
    assert error_line(proc) == "dagexec: error: --report needs a file: the page is written when the run ends"
    assert not (project / "nowhere").exists()


BLOCKING = textwrap.dedent(
    """
    import os
    import time

    import dagexec as dx


    @dx.task
    def block(started: str) -> int:
        open(started, "w").close()
        time.sleep(120)
        return 1


    @dx.task
    def inc(x: int) -> int:
        return x + 1


    with dx.Graph("blocking") as graph:
        inc(block(os.environ["STARTED"]))
    """
)


def test_report_is_written_when_ctrl_c_stops_the_run(tmp_path: Path) -> None:
    (tmp_path / "blocking.py").write_text(BLOCKING)
    started = tmp_path / "started"
    proc = subprocess.Popen(
        [sys.executable, "-m", "dagexec", "run", "blocking:graph", "--report", "run.html", "--no-progress"],
        cwd=tmp_path, env=_env(STARTED=str(started)), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not started.exists() and proc.poll() is None:
            assert time.monotonic() < deadline, "the task did not start"
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode != 0
    data = page_data(tmp_path / "run.html")
    assert {k: v["state"] for k, v in data["nodes"].items()} == {"block": "cancelled", "inc": "cancelled"}
    assert [(row[1], row[2]) for row in data["trials"] if row[0] == "block"] == [(1, "cancelled")]


def test_a_live_report_shows_the_run_as_it_goes_and_reloads_itself(tmp_path: Path) -> None:
    import dagexec as dx
    from dagexec.cli.commands import ReportAtEnd

    started = tmp_path / "started"

    @dx.task
    def first() -> int:
        return 1

    @dx.task
    def hold() -> int:
        started.touch()
        time.sleep(1.5)
        return 2

    with dx.Graph("live") as g:  # not a chain: a chain's members are told of when it ends
        g.output(first(), name="v")
        g.output(hold(), name="w")
    page = tmp_path / "live.html"
    seen: list[dict[str, Any]] = []

    def watch() -> None:  # what the page says while the run lasts
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not seen:
            text = page.read_text() if started.exists() and page.exists() else ""
            if 'http-equiv="refresh" content="0.2"' in text and page_data(page)["nodes"]["hold"]["state"] == "running":
                seen.append(page_data(page))
            time.sleep(0.05)

    import threading

    watcher = threading.Thread(target=watch)
    watcher.start()
    result = g.compile().run(executor="threads", callbacks=[ReportAtEnd(str(page), live=0.2)])
    watcher.join()
    assert result.outputs == {"v": 1, "w": 2}
    (during,) = seen
    assert during["nodes"]["hold"]["state"] == "running" and during["kind"] == "result"
    final = page.read_text()  # the run's end: the whole record, and no more reloading
    assert "http-equiv" not in final
    assert {k: v["state"] for k, v in page_data(page)["nodes"].items()} == {"first": "succeeded", "hold": "succeeded"}


def test_report_live_needs_report(project: Path) -> None:
    proc = cli(project, "run", "pipe:sums", "-i", "n=1", "--report-live")
    assert proc.returncode == 2
    assert error_line(proc) == "dagexec: error: --report-live needs --report FILE: the page it rewrites"
