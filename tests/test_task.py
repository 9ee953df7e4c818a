"""``@task``: the wrapper, its options, plain calls and pickling (DESIGN §2, §11)."""

from __future__ import annotations

import copy
import inspect
import pickle
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import cloudpickle
import pytest

import dagexec as dx


@dx.task
def add(x: int, y: int = 1) -> int:
    """Add two numbers."""
    return x + y


@dx.task(retries=3, retry_delay=0.5, timeout=60, tags=("io",))
def fetch(url: str, *, tries: int = 1) -> bytes:
    """Fetch a URL."""
    return f"{url}:{tries}".encode()


def _raw_add(x: int, y: int = 1) -> int:
    """Add two numbers."""
    return x + y


@dataclass
class Point:
    x: int
    y: int


@dx.task
def shift(p: Point, dx_: int) -> Point:
    return Point(p.x + dx_, p.y)


DEFAULT_OPTIONS = {
    "name": None,
    "retries": 0,
    "retry_delay": 0.0,
    "retry_backoff": 1.0,
    "retry_jitter": 0.0,
    "retry_on": (Exception,),
    "timeout": None,
    "executor": None,
    "cache": True,
    "typecheck": True,
    "nout": None,
    "tags": (),
    "resources": None,
    "chunksize": None,
    "buffer": 64,
    "trigger": "all_succeeded",
}


# -- the wrapper keeps the function's identity ------------------------------------------


def test_bare_decorator_keeps_name_doc_signature_and_annotations() -> None:
    assert isinstance(add, dx.Task)
    assert add.__name__ == "add"
    assert add.__qualname__ == "add"
    assert add.__doc__ == "Add two numbers."
    assert add.__module__ == __name__
    assert str(inspect.signature(add)) == "(x: 'int', y: 'int' = 1) -> 'int'"
    assert inspect.signature(add) == inspect.signature(_raw_add)
    assert add.__annotations__ == {"x": "int", "y": "int", "return": "int"}


def test_decorator_with_options_keeps_name_doc_signature_and_annotations() -> None:
    assert isinstance(fetch, dx.Task)
    assert fetch.__name__ == "fetch"
    assert fetch.__doc__ == "Fetch a URL."
    assert str(inspect.signature(fetch)) == "(url: 'str', *, tries: 'int' = 1) -> 'bytes'"
    assert fetch.__annotations__ == {"url": "str", "tries": "int", "return": "bytes"}


def test_fn_is_the_raw_function() -> None:
    assert not isinstance(add.fn, dx.Task)
    assert add.fn.__name__ == "add"
    assert add.fn(2, 3) == 5
    assert add.fn is add.__wrapped__


def test_task_called_outside_a_graph_runs_the_function() -> None:
    assert add(2, 3) == 5
    assert add(2) == 3
    assert add(x=4, y=5) == 9
    assert fetch("u", tries=2) == b"u:2"
    assert shift(Point(1, 2), 3) == Point(4, 2)


def test_task_called_outside_a_graph_raises_the_functions_own_errors() -> None:
    with pytest.raises(TypeError) as exc_info:
        add()
    assert not isinstance(exc_info.value, dx.DagexecError)
    assert str(exc_info.value) == "add() missing 1 required positional argument: 'x'"


def test_repr_names_the_task_and_its_function() -> None:
    assert repr(add) == f"<Task 'add' {__name__}:add>"
    assert repr(add.options(name="plus")) == f"<Task 'plus' {__name__}:add>"


# -- options ---------------------------------------------------------------------------


def test_explicit_options_are_those_given_to_the_decorator() -> None:
    assert add.explicit_options == {}
    assert fetch.explicit_options == {"retries": 3, "retry_delay": 0.5, "timeout": 60, "tags": ("io",)}


def test_options_of_a_node_are_defaults_plus_the_tasks_own() -> None:
    with dx.Graph("opts") as graph:
        fetch("u")
        add(1)
    plan = graph.compile()
    assert plan.node("fetch").options is not None
    assert plan.node("fetch").options.to_dict() == {
        **DEFAULT_OPTIONS,
        "name": "fetch",
        "retries": 3,
        "retry_delay": 0.5,
        "timeout": 60,
        "tags": ("io",),
    }
    assert plan.node("add").options is not None
    assert plan.node("add").options.to_dict() == {**DEFAULT_OPTIONS, "name": "add"}


def test_options_returns_a_copy_with_overrides() -> None:
    quick = fetch.options(retries=0, name="quick_fetch")
    assert isinstance(quick, dx.Task)
    assert quick is not fetch
    assert quick.fn is fetch.fn
    assert quick.explicit_options == {
        "retries": 0,
        "retry_delay": 0.5,
        "timeout": 60,
        "tags": ("io",),
        "name": "quick_fetch",
    }
    # the original is unchanged
    assert fetch.explicit_options == {"retries": 3, "retry_delay": 0.5, "timeout": 60, "tags": ("io",)}
    assert quick.__name__ == "fetch"
    assert quick.task_name == "quick_fetch"
    assert quick("u") == b"u:1"


def test_option_name_changes_the_keys_of_its_nodes() -> None:
    plus = add.options(name="plus")
    with dx.Graph("names") as graph:
        add(1)
        plus(1)
        plus(2)
    assert graph.compile().keys == ("add", "plus", "plus-1")


def test_decorating_a_task_again_merges_options() -> None:
    twice = dx.task(timeout=5)(dx.task(retries=2)(_raw_add))
    assert twice.fn is _raw_add
    assert twice.explicit_options == {"retries": 2, "timeout": 5}
    again = dx.task(retries=4)(twice)
    assert again.explicit_options == {"retries": 4, "timeout": 5}


def test_options_are_normalised() -> None:
    t = dx.task(tags="nightly", retry_on=ValueError, retry_delay=[1, 2], resources={"GPU": 1})(_raw_add)
    assert t.explicit_options == {
        "tags": ("nightly",),
        "retry_on": (ValueError,),
        "retry_delay": (1.0, 2.0),
        "resources": {"GPU": 1},
    }


def test_retry_on_may_be_a_predicate() -> None:
    def transient(exc: BaseException) -> bool:
        return isinstance(exc, OSError)

    t = dx.task(retry_on=transient)(_raw_add)
    assert t.explicit_options == {"retry_on": transient}


def test_task_options_are_immutable() -> None:
    with dx.Graph("frozen") as graph:
        add(1)
    opts = graph.compile().node("add").options
    assert opts is not None
    with pytest.raises(AttributeError) as exc_info:
        opts.retries = 5  # type: ignore[misc]
    assert str(exc_info.value) == "TaskOptions is immutable; use task.options(...) for a copy"
    assert opts.retries == 0


VALID = (
    "buffer, cache, chunksize, executor, name, nout, resources, retries, retry_backoff, retry_delay, "
    "retry_jitter, retry_on, tags, timeout, trigger, typecheck"
)


def test_unknown_option_in_decorator_is_a_type_error() -> None:
    with pytest.raises(TypeError) as exc_info:
        dx.task(retry=3)
    assert str(exc_info.value) == f"unknown task option 'retry'; valid options: {VALID}"


def test_unknown_option_in_options_is_a_type_error() -> None:
    with pytest.raises(TypeError) as exc_info:
        add.options(timeout=1, retires=2)
    assert str(exc_info.value) == f"unknown task option 'retires'; valid options: {VALID}"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"name": ""}, "task option 'name' must be a non-empty str without '/', got ''"),
        ({"name": "a/b"}, "task option 'name' must be a non-empty str without '/', got 'a/b'"),
        ({"name": 3}, "task option 'name' must be a non-empty str without '/', got 3"),
        ({"retries": -1}, "task option 'retries' must be an int >= 0, got -1"),
        ({"retries": 1.5}, "task option 'retries' must be an int >= 0, got 1.5"),
        ({"retries": True}, "task option 'retries' must be an int >= 0, got True"),
        ({"retry_delay": -0.5}, "task option 'retry_delay' must be a number >= 0, got -0.5"),
        ({"retry_delay": [1, "x"]}, "task option 'retry_delay' must be a number >= 0, got 'x'"),
        ({"retry_backoff": "2"}, "task option 'retry_backoff' must be a number >= 0, got '2'"),
        ({"retry_jitter": -1}, "task option 'retry_jitter' must be a number >= 0, got -1"),
        ({"timeout": 0}, "task option 'timeout' must be a number > 0 or None, got 0"),
        ({"timeout": "60"}, "task option 'timeout' must be a number > 0 or None, got '60'"),
        (
            {"retry_on": (ValueError, "x")},
            "task option 'retry_on' must be exception types or a predicate, got (<class 'ValueError'>, 'x')",
        ),
        ({"retry_on": 3}, "task option 'retry_on' must be exception types or a predicate, got 3"),
        ({"executor": 2}, "task option 'executor' must be a route name (str), got 2"),
        ({"cache": 1}, "task option 'cache' must be True or False, got 1"),
        ({"typecheck": "yes"}, "task option 'typecheck' must be True or False, got 'yes'"),
        ({"nout": 0}, "task option 'nout' must be an int >= 1 or None, got 0"),
        ({"chunksize": 0}, "task option 'chunksize' must be an int >= 1 or None, got 0"),
        ({"buffer": 0}, "task option 'buffer' must be an int >= 1, got 0"),
        ({"buffer": None}, "task option 'buffer' must be an int >= 1, got None"),
        ({"buffer": True}, "task option 'buffer' must be an int >= 1, got True"),
        (
            {"trigger": "always"},
            "task option 'trigger' must be one of 'all_succeeded', 'all_done', 'none_failed', got 'always'",
        ),
        ({"nout": True}, "task option 'nout' must be an int >= 1 or None, got True"),
        ({"tags": ("a", 1)}, "task option 'tags' must be strings, got ('a', 1)"),
        (
            {"resources": {"GPU": "one"}},
            "task option 'resources' must map names to numbers, got {'GPU': 'one'}",
        ),
        ({"resources": ["GPU"]}, "task option 'resources' must map names to numbers, got ['GPU']"),
    ],
)
def test_bad_option_value_is_a_value_error(options: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError) as exc_info:
        dx.task(**options)
    assert str(exc_info.value) == message
    with pytest.raises(ValueError) as exc_info:
        add.options(**options)
    assert str(exc_info.value) == message


def test_function_and_options_together_is_a_type_error() -> None:
    with pytest.raises(TypeError) as exc_info:
        dx.task(_raw_add, retries=1)  # type: ignore[call-overload]
    assert str(exc_info.value) == "use @task(**options) or @task, not both"


def test_task_of_a_non_callable_is_a_type_error() -> None:
    with pytest.raises(TypeError) as exc_info:
        dx.task(3)  # type: ignore[call-overload]
    assert str(exc_info.value) == "@task needs a callable, got 3"


def test_copy_and_deepcopy_keep_function_and_options() -> None:
    for c in (copy.copy(fetch), copy.deepcopy(fetch)):
        assert isinstance(c, dx.Task)
        assert c.fn is fetch.fn
        assert c.explicit_options == fetch.explicit_options


# -- pickling (DESIGN §11) ---------------------------------------------------------------


def test_module_level_task_pickles_by_reference_with_plain_pickle() -> None:
    assert pickle.loads(pickle.dumps(add)) is add
    assert pickle.loads(pickle.dumps(fetch)) is fetch


def test_module_level_task_pickles_by_reference_with_cloudpickle() -> None:
    assert cloudpickle.loads(cloudpickle.dumps(add)) is add
    assert cloudpickle.loads(cloudpickle.dumps(fetch)) is fetch
    assert cloudpickle.loads(cloudpickle.dumps(shift)) is shift


def test_task_with_other_options_pickles_by_value() -> None:
    quick = fetch.options(name="quick")
    for dumps in (pickle.dumps, cloudpickle.dumps):
        back = pickle.loads(dumps(quick))
        assert back is not quick
        assert back.fn is fetch.fn  # the raw function is found through the module's task
        assert back.explicit_options == quick.explicit_options
        assert back("u") == b"u:1"


def _make_closure(offset: int) -> dx.Task:
    @dx.task(retries=2)
    def shifted(x: int) -> int:
        return x + offset

    return shifted


def test_closure_task_pickles_by_value_with_cloudpickle() -> None:
    shifted = _make_closure(10)
    back = cloudpickle.loads(cloudpickle.dumps(shifted))
    assert isinstance(back, dx.Task)
    assert back is not shifted
    assert back(1) == 11
    assert back.__name__ == "shifted"
    assert back.explicit_options == {"retries": 2}


def test_nested_task_pickles_by_value_with_cloudpickle() -> None:
    @dx.task(nout=2)
    def pair(p: Point) -> tuple[int, int]:
        return p.x, p.y

    back = cloudpickle.loads(cloudpickle.dumps(pair))
    assert back(Point(3, 4)) == (3, 4)
    assert back.explicit_options == {"nout": 2}
    assert back.__qualname__ == "test_nested_task_pickles_by_value_with_cloudpickle.<locals>.pair"


def test_nested_task_does_not_pickle_with_plain_pickle() -> None:
    @dx.task
    def local(x: int) -> int:
        return x

    with pytest.raises((pickle.PicklingError, AttributeError)):
        pickle.dumps(local)


def test_main_module_task_travels_by_value_to_another_process(tmp_path: Path) -> None:
    script = tmp_path / "make_task.py"
    script.write_text(
        textwrap.dedent(
            """
            import sys
            import cloudpickle
            import dagexec as dx
            from dataclasses import dataclass

            @dataclass
            class Box:
                value: int

            @dx.task(retries=1)
            def unbox(b: Box) -> int:
                return b.value * 2

            with dx.Graph("main") as graph:
                unbox(Box(21))

            with open(sys.argv[1], "wb") as f:
                cloudpickle.dump((unbox, graph.compile()), f)
            """
        )
    )
    payload = tmp_path / "task.pkl"
    subprocess.run([sys.executable, str(script), str(payload)], check=True, cwd=tmp_path)
    loader = textwrap.dedent(
        """
        import sys
        import cloudpickle
        with open(sys.argv[1], "rb") as f:
            task, plan = cloudpickle.load(f)
        print(task.explicit_options, task.__module__, plan.keys, plan.run(executor="serial").output)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", loader, str(payload)], check=True, capture_output=True, text=True, cwd=tmp_path
    )
    assert out.stdout == "{'retries': 1} __main__ ('unbox',) 42\n"
