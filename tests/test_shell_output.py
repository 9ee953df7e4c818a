"""``dx.shell``: what a command's trial keeps of its output (its log, a bounded value,
the rest in a file), what it is given (bytes arguments, an environment without
``DAGEXEC_KEY``) (docs/shell.md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

import dagexec as dx
from dagexec import State
from dagexec._shell import CommandOutput

OUT_AND_ERR = "echo out 1; echo err 1 >&2; echo out 2; echo err 2 >&2"


@pytest.mark.parametrize("executor", ["serial", "threads", "loky"])
def test_a_succeeding_commands_log_holds_its_stdout_and_stderr_lines(executor):
    with dx.Graph("g") as g:
        dx.shell(["sh", "-c", OUT_AND_ERR], name="both")
    result = g.compile().run(executor=executor)
    assert result.output == "out 1\nout 2\n"
    log = result.trials["both"][0].log
    # the two pipes are read as they come: each one's lines in order, in any interleaving
    assert [line for line in log.splitlines() if line.startswith("out")] == ["out 1", "out 2"]
    assert sorted(log.splitlines()) == ["err 1", "err 2", "out 1", "out 2"]


@pytest.mark.parametrize("executor", ["serial", "threads", "loky"])
def test_a_failing_commands_log_holds_its_lines_too(executor):
    with dx.Graph("g") as g:
        dx.shell(["sh", "-c", "printf 'no newline at the end' >&2; exit 4"], name="bad")
    result = g.compile().run(executor=executor, raise_on_failure=False)
    trial = result.trials["bad"][0]
    assert (trial.state, trial.log) == (State.FAILED, "no newline at the end\n")
    assert isinstance(trial.error, dx.CommandFailed)
    assert (trial.error.returncode, trial.error.stderr) == (4, "no newline at the end")


def test_a_long_output_leaves_a_bounded_log():
    with dx.Graph("g") as g:
        dx.shell(["seq", "1", "200000"], name="count")
    result = g.compile().run(executor="serial")
    log = result.trials["count"][0].log
    head, rest = log.split("\n", 1)
    dropped = len("".join(f"{i}\n" for i in range(1, 200001))) - 65536
    assert head == f"[log cut: the first {dropped} bytes were dropped; the last 65536 are kept]"
    assert rest.endswith("199999\n200000\n") and len(rest) == 65536
    assert len(result.output) == len("".join(f"{i}\n" for i in range(1, 200001)))


PEAK = textwrap.dedent(
    """
    import json, logging, resource, sys
    import dagexec as dx

    logging.basicConfig()

    size = int(sys.argv[1])
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    value = dx.shell(["sh", "-c", f"yes 0123456789abcdefghijklmnopqrstuvwxyz | head -c {size}"],
                     name="big", max_output=1 << 20)
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    print(json.dumps({"grown_kib": grown, "value": value[:40], "len": len(value),
                      "type": type(value).__name__, "path": value.path, "size": value.size}))
    """
)


def test_an_output_past_max_output_goes_to_a_file_and_memory_stays_bounded(tmp_path):
    size = 50_000_000
    script = tmp_path / "peak.py"
    script.write_text(PEAK)
    proc = subprocess.run(
        [sys.executable, str(script), str(size)], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout)
    os.unlink(seen["path"])
    assert seen["grown_kib"] < 16 * 1024  # 50 MB read: at most a few MiB more than at rest
    assert (seen["type"], seen["len"], seen["size"]) == ("CommandOutput", 1 << 20, size)
    assert seen["value"] == "0123456789abcdefghijklmnopqrstuvwxyz\n012"
    assert os.path.basename(seen["path"]).startswith("dagexec-big-")
    assert proc.stderr == (
        "WARNING:dagexec.shell:node 'big': [stdout: 50000000 bytes; the value holds the first 1048576; "
        f"all of it is in {seen['path']}]\n"
    )


def test_a_cut_output_keeps_whole_characters_and_the_file_holds_everything():
    text = "é" * 10  # two bytes each: 7 bytes cut one in two
    with dx.Graph("g") as g:
        dx.shell(["printf", "%s", text], name="accents", max_output=7)
    result = g.compile().run(executor="threads")
    value = result.output
    try:
        assert (type(value), value, value.size) == (CommandOutput, "ééé", 20)
        with open(value.path, encoding="utf-8") as f:
            assert f.read() == text
        log = result.trials["accents"][0].log
        assert (
            log == f"{text}\n[stdout: 20 bytes; the value holds the first 7; all of it is in {value.path}]\n"
        )
    finally:
        os.unlink(value.path)


def test_max_output_must_be_a_number_of_bytes():
    with pytest.raises(ValueError) as info:
        dx.shell(["echo"], max_output=1.5)
    assert str(info.value) == "shell(): max_output must be a number of bytes (an int >= 0) or None, got 1.5"


@dx.task
def raw() -> bytes:
    return b"caf\xc3\xa9 \xff"


@pytest.mark.parametrize("executor", ["serial", "loky"])
def test_bytes_arguments_reach_the_command_as_bytes(executor):
    with dx.Graph("g") as g:
        g.output(dx.shell(["printf", "%s|%s", raw(), b"two"], name="p", output="result"))
    result = g.compile().run(executor=executor)
    assert result.output == dx.CommandResult(0, "café \ufffd|two", "")


def test_bytes_in_env_and_cwd():
    value = dx.shell(["sh", "-c", 'printf %s "$V"; pwd'], env={"V": b"bytes"}, cwd=b"/")
    assert value == "bytes/\n"


@pytest.mark.parametrize("executor", ["serial", "threads"])
def test_a_command_does_not_inherit_dagexec_key(executor, monkeypatch):
    monkeypatch.setenv("DAGEXEC_KEY", "secret")
    monkeypatch.setenv("DAGEXEC_REQUIRE_SIGNED", "1")
    with dx.Graph("g") as g:
        g.output(dx.shell(["sh", "-c", 'echo "${DAGEXEC_KEY-unset} $DAGEXEC_REQUIRE_SIGNED"']), name="plain")
        g.output(dx.shell(["sh", "-c", 'echo "$DAGEXEC_KEY"'], env={"DAGEXEC_KEY": "given"}), name="given")
    result = g.compile().run(executor=executor)
    assert result.outputs == {"plain": "unset 1\n", "given": "given\n"}
    assert dx.shell(["sh", "-c", 'echo "${DAGEXEC_KEY-unset}"']) == "unset\n"


def test_a_program_that_cannot_run_is_the_error_subprocess_gives(tmp_path):
    with pytest.raises(FileNotFoundError) as missing:
        dx.shell(["no-such-program-here"])
    assert str(missing.value) == "[Errno 2] No such file or directory: 'no-such-program-here'"
    script = tmp_path / "script.sh"
    script.write_text("echo never\n")
    with pytest.raises(PermissionError) as denied:
        dx.shell(["./script.sh"], cwd=tmp_path)
    assert str(denied.value) == "[Errno 13] Permission denied: './script.sh'"
    script.chmod(0o755)
    assert dx.shell(["./script.sh"], cwd=tmp_path) == "never\n"
    with pytest.raises(ValueError) as empty, dx.Graph("g"):
        dx.shell([])  # at the call, in a graph too
    assert str(empty.value) == "shell(): argv is empty; give at least the program to run"


def test_a_program_is_looked_up_on_the_path_the_command_is_given(tmp_path):
    (tmp_path / "hello-dagexec").write_text("#!/bin/sh\necho from $0\n")
    (tmp_path / "hello-dagexec").chmod(0o755)
    path = f"{tmp_path}{os.pathsep}{os.environ['PATH']}"
    assert dx.shell(["hello-dagexec"], env={"PATH": path}) == f"from {tmp_path}/hello-dagexec\n"
