"""``dx.shell``: commands as tasks, with real subprocesses (DESIGN §10b; docs/shell.md)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid

import pytest

import dagexec as dx
from dagexec import State

GUARD = 30.0  # seconds before a wait is a failure (never a timing assertion)
TRICKY = "two words; echo injected 'quoted' \"double\" $HOME `date` \\back"


def marked_processes(marker: str) -> list[int]:
    """Processes whose environment holds ``marker`` (``NAME=value``)."""
    needle = marker.encode()
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/environ", "rb") as f:
                    if needle in f.read().split(b"\0"):
                        found.append(int(entry))
            except OSError:
                continue
    return found


def wait_until(predicate, what: str) -> None:
    deadline = time.monotonic() + GUARD
    while not predicate():
        assert time.monotonic() < deadline, f"waited {GUARD:g} s for {what}"
        time.sleep(0.02)


@dx.task
def tricky() -> str:
    return TRICKY


@dx.task
def length(text: str) -> int:
    return len(text)


@pytest.mark.parametrize("executor", ["serial", "threads", "loky"])
def test_values_flow_into_a_commands_arguments_and_out_of_its_stdout(executor):
    with dx.Graph("g") as g:
        printed = dx.shell(["printf", "%s", tricky()], name="echo")
        g.output(printed, name="printed")
        g.output(length(printed), name="length")
    result = g.compile().run(executor=executor, max_workers=2)
    assert result.outputs == {"printed": TRICKY, "length": len(TRICKY)}  # no shell parsed it
    assert result.states["echo"] == State.SUCCEEDED


def test_a_failing_command_names_the_node_the_exit_code_and_the_stderr_tail():
    script = "for i in $(seq 1 30); do echo line $i >&2; done; exit 7"
    with dx.Graph("g") as g:
        dx.shell(["sh", "-c", script], name="build")
    with pytest.raises(dx.RunFailed) as info:
        g.compile().run(executor="threads")
    error = info.value.__cause__
    assert isinstance(error, dx.CommandFailed)
    assert error.returncode == 7
    lines = "\n".join(f"line {i}" for i in range(11, 31))
    assert str(error) == (
        f"node 'build': command 'sh -c {script}' exited with 7; stderr (last lines):\n{lines}"
    )


def test_check_false_and_the_result_output():
    with dx.Graph("g") as g:
        dx.shell(["sh", "-c", "echo out; echo err >&2; exit 3"], check=False, output="result")
    result = g.compile().run(executor="serial")
    assert result.output == dx.CommandResult(3, "out\n", "err\n")


def test_shell_true_env_and_cwd(tmp_path):
    with dx.Graph("g") as g:
        folder = g.input("folder", str)
        dx.shell("echo $GREETING from $(basename $PWD)", shell=True, env={"GREETING": "hi"}, cwd=folder)
    assert g.compile().run(folder=str(tmp_path), executor="serial").output == f"hi from {tmp_path.name}\n"


def test_bad_calls_are_errors_at_the_call():
    with pytest.raises(ValueError, match="a command line as one string needs shell=True"):
        dx.shell("echo hi")
    with pytest.raises(ValueError, match="with shell=True give the command line as one string"):
        dx.shell(["echo", "hi"], shell=True)
    with pytest.raises(ValueError, match="output must be 'stdout' or 'result', got 'both'"):
        dx.shell(["echo"], output="both")


def test_outside_a_graph_the_command_runs_at_once():
    assert dx.shell(["echo", "now"]) == "now\n"


@pytest.mark.parametrize("executor", ["serial", "threads", "loky"])
def test_a_timeout_stops_the_command_and_what_it_started(executor):
    marker = f"DAGEXEC_SHELL_TEST={uuid.uuid4().hex}"
    name, value = marker.split("=")
    with dx.Graph("g") as g:
        dx.shell(["sh", "-c", "sleep 60 & sleep 60"], name="hang", timeout=0.5, env={name: value})
    result = g.compile().run(executor=executor, raise_on_failure=False)
    trial = result.trials["hang"][0]
    assert (result.states["hang"], trial.state) == (State.FAILED, State.TIMED_OUT)
    assert str(trial.error) == (
        "node 'hang': command 'sh -c sleep 60 & sleep 60' ran past its timeout of 0.5 s; "
        "its process group was stopped"
    )
    assert marked_processes(marker) == []  # the grandchild `sleep 60 &` too


INTERRUPTED = textwrap.dedent(
    """
    import json, sys
    import dagexec as dx

    marker_name, marker_value, started = sys.argv[1], sys.argv[2], sys.argv[3]
    with dx.Graph("g") as g:
        dx.shell(["sh", "-c", f"touch {started}; sleep 60 & sleep 60"], name="hang",
                 env={marker_name: marker_value})
    try:
        g.compile().run(executor=sys.argv[4])
    except KeyboardInterrupt:
        print(json.dumps("KeyboardInterrupt"))
    """
)


@pytest.mark.parametrize("executor", ["serial", "threads", "loky"])
def test_ctrl_c_during_a_command_leaves_no_process(executor, tmp_path):
    script = tmp_path / "plan.py"
    script.write_text(INTERRUPTED)
    started = tmp_path / "started"
    marker = f"DAGEXEC_SHELL_TEST={uuid.uuid4().hex}"
    name, value = marker.split("=")
    proc = subprocess.Popen(
        [sys.executable, str(script), name, value, str(started), executor],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    try:
        wait_until(lambda: started.exists() or proc.poll() is not None, "the command to start")
        assert proc.poll() is None, proc.communicate()
        wait_until(lambda: len(marked_processes(marker)) >= 2, "the command and its grandchild")
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=GUARD)  # the command would take 60 s
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert json.loads(out) == "KeyboardInterrupt", err
    wait_until(lambda: not marked_processes(marker), "every process of the command to end")


def test_a_saved_plan_runs_its_commands_from_another_folder(tmp_path):
    with dx.Graph("g") as g:
        dx.shell(["sh", "-c", "echo $((6 * 7))"], name="answer")
    g.compile().save(tmp_path / "s.dagx")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run(
        [sys.executable, "-m", "dagexec", "run", str(tmp_path / "s.dagx"), "--no-progress"],
        cwd=elsewhere, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert (proc.returncode, proc.stdout) == (0, "answer = '42\\n'\n"), proc.stderr
