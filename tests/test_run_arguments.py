"""``run()`` arguments of the wrong type are an InputError naming the argument, raised
before anything is made (a cache folder, an executor) or run (DESIGN §12 Errors)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import dagexec as dx


@dx.task(cache=False)
def touch(path: str) -> str:
    Path(path).write_text("ran")
    return path


def plan_touching() -> dx.CompiledGraph:
    with dx.Graph("side") as graph:
        touch(graph.input("path", str))
    return graph.compile()


CALLBACKS = "callbacks must be a list of objects, each with an on_run_start, on_trial_start, on_trial_end or on_run_end method"


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"inputs": [1, 2]}, "inputs must be a mapping of input names (str) to values, got list [1, 2]"),
        ({"inputs": {1: "x"}}, "inputs must be a mapping of input names (str) to values, got dict {1: 'x'}"),
        ({"only": 5}, "only must be a key, a section path or a list of them, got int 5"),
        ({"skip": b"touch"}, "skip must be a key, a section path or a list of them, got bytes b'touch'"),
        ({"only": ["touch", 3]}, "only[1] must be a key (str), got int 3"),
        ({"keep": 5}, "keep must be a key, a list of keys or 'all', got int 5"),
        ({"callbacks": None}, f"{CALLBACKS}, got None"),
        ({"callbacks": "abc"}, f"{CALLBACKS}, got str 'abc'"),
        (
            {"callbacks": [42]},
            "callbacks[0] must have an on_run_start, on_trial_start, on_trial_end or on_run_end method, got int 42",
        ),
        ({"fail_fast": "no"}, "fail_fast must be True or False, got str 'no'"),
        ({"resume": 1}, "resume must be True or False, got int 1"),
        ({"progress": None}, "progress must be True or False, got None"),
        ({"raise_on_failure": "yes"}, "raise_on_failure must be True or False, got str 'yes'"),
        (
            {"cache": ""},
            "cache must be a folder or a dagexec.CacheStore, got '' (an empty path: the working directory "
            "would become the store)",
        ),
        ({"cache": 42}, "cache must be a folder or a dagexec.CacheStore, got int"),
    ],
)
def test_an_argument_of_the_wrong_type_is_an_input_error_before_anything_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, arguments: dict[str, Any], message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "ran"
    given = {"path": str(marker)} if "inputs" not in arguments else {}
    with pytest.raises(dx.InputError) as info:
        plan_touching().run(executor="serial", **given, **arguments)
    assert str(info.value) == message
    assert isinstance(info.value, ValueError)
    assert list(tmp_path.iterdir()) == []  # nothing ran, no store was made


def test_every_wrong_argument_is_listed_at_once() -> None:
    with pytest.raises(dx.InputError) as info:
        plan_touching().run(inputs=[1], only=5, fail_fast="no", executor="serial")
    assert str(info.value) == (
        "3 problems in run of graph 'side':\n"
        "- fail_fast must be True or False, got str 'no'\n"
        "- inputs must be a mapping of input names (str) to values, got list [1]\n"
        "- only must be a key, a section path or a list of them, got int 5"
    )


def test_no_cache_folder_is_made_when_the_run_is_refused(tmp_path: Path) -> None:
    store = tmp_path / "store"
    with pytest.raises(dx.InputError) as info:
        plan_touching().run(executor="serial", cache=str(store))  # the input is missing
    assert str(info.value) == "missing input 'path', needed by 'touch'"
    with pytest.raises(dx.InputError):
        plan_touching().run(path=str(tmp_path / "ran"), executor="nope", cache=str(store))
    assert list(tmp_path.iterdir()) == []
    assert plan_touching().run(path=str(tmp_path / "ran"), executor="serial", cache=store).ok
    assert store.is_dir() and (tmp_path / "ran").read_text() == "ran"


def test_a_cache_path_that_cannot_be_a_folder_is_an_input_error_before_anything_runs(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(dx.InputError) as info:
        plan_touching().run(path=str(tmp_path / "ran"), executor="serial", cache=blocker / "store")
    assert str(info.value).startswith("[Errno 20] Not a directory")
    assert not (tmp_path / "ran").exists()


def test_arguments_of_the_right_types_run() -> None:
    class Counting:
        def __init__(self) -> None:
            self.ended = 0

        def on_trial_end(self, trial: dx.Trial) -> None:
            self.ended += 1

    counting = Counting()
    with dx.Graph("fine") as graph:
        graph.output(dx.task(name="one")(lambda: 1)(), "one")
    result = graph.compile().run(
        inputs={},
        executor="serial",
        only=("one",),
        skip=[],
        keep="all",
        callbacks=(counting,),
        fail_fast=False,
        progress=False,
        raise_on_failure=True,
    )
    assert (result.outputs, counting.ended) == ({"one": 1}, 1)
