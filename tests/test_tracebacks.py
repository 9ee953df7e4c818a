"""A failed trial's traceback starts at the task function's own frame: the frames of
dagexec's trial machinery above it (``run_call``, a batch, an event loop) are left
out, the task's own calls below it kept (the conformance suite in
``test_conformance.py`` checks a plain task on every executor)."""

from __future__ import annotations

import asyncio
import re
import traceback
from pathlib import Path

import pytest

import dagexec as dx

SOURCE = Path(__file__).read_text().splitlines()
FRAME = re.compile(r'  File "(.*)", line (\d+), in (\w+)$')
HERE = str(Path(__file__).resolve())


def line_of(statement: str) -> int:
    """The line number of ``statement`` (a whole line, indentation included) in this file."""
    return SOURCE.index(statement) + 1


def frames(text: str) -> list[tuple[str, str, str]]:
    """``(file, line, function)`` of each frame of a traceback's text."""
    return [m.groups() for m in map(FRAME.match, text.splitlines()) if m]  # type: ignore[misc]


def check_digit(x: int) -> int:
    if x > 9:
        raise ValueError(f"not a digit: {x}")
    return x


@dx.task
async def digit_later(x: int) -> int:
    await asyncio.sleep(0)
    return check_digit(x)


@dx.task
def inc(x: int) -> int:
    return x + 1


@dx.task
def digit(x: int) -> int:
    return check_digit(x) * 2


@dx.task
def half(x: int) -> int:
    return x // 2


def trial_traceback(result: dx.RunResult, key: str) -> str:
    (trial,) = result.trials[key]
    return trial.traceback


@pytest.mark.parametrize("executor", ["serial", "threads", "loky"])
def test_an_async_task_traceback_starts_at_its_coroutine(executor):
    with dx.Graph("g") as g:
        digit_later(12)
    result = g.compile().run(executor=executor, max_workers=2, raise_on_failure=False)
    text = trial_traceback(result, "digit_later")
    assert text.splitlines()[:2] == [
        "Traceback (most recent call last):",
        f'  File "{HERE}", line {line_of("    return check_digit(x)")}, in digit_later',
    ]
    assert frames(text) == [
        (HERE, str(line_of("    return check_digit(x)")), "digit_later"),
        (HERE, str(line_of('        raise ValueError(f"not a digit: {x}")')), "check_digit"),
    ]
    # the event loop dagexec ran it on left no exception of its own as the context
    assert "During handling of the above exception" not in text
    assert text.endswith("ValueError: not a digit: 12\n")


@pytest.mark.parametrize("executor", ["threads", "loky"])
def test_a_fused_chain_member_traceback_starts_at_its_task(executor):
    with dx.Graph("g") as g:
        half(digit(inc(9)))  # one chain: runs as one batch on one worker
    result = g.compile().run(executor=executor, max_workers=2, raise_on_failure=False)
    assert result.states["inc"] is dx.State.SUCCEEDED
    text = trial_traceback(result, "digit")
    assert frames(text) == [
        (HERE, str(line_of("    return check_digit(x) * 2")), "digit"),
        (HERE, str(line_of('        raise ValueError(f"not a digit: {x}")')), "check_digit"),
    ]
    assert text.startswith(f'Traceback (most recent call last):\n  File "{HERE}", line ')


@pytest.mark.parametrize("executor", ["serial", "threads", "loky"])
def test_a_failed_type_check_has_no_frames_of_dagexec(executor):
    with dx.Graph("g") as g:
        digit(g.input("x"))
    result = g.compile().run(x="7", executor=executor, max_workers=2, raise_on_failure=False)
    error = result.trials["digit"][0].error
    assert type(error) is dx.TypeCheckError
    assert trial_traceback(result, "digit") == (
        "dagexec._errors.TypeCheckError: node 'digit': parameter 'x' expects int but got str '7'\n"
    )


def test_an_error_raised_in_the_master_shows_the_task_frame_first():
    with dx.Graph("g") as g:
        digit(11)
    with pytest.raises(dx.RunFailed) as info:
        g.compile().run(executor="serial")
    shown = "".join(traceback.format_exception(info.value.__cause__))
    assert (
        shown.splitlines()[1] == f'  File "{HERE}", line {line_of("    return check_digit(x) * 2")}, in digit'
    )
