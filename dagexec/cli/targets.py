"""The command line's targets (``module:attr``, ``file.py:attr``, saved files) and
``-i name=value`` inputs parsed by each input's declared type, and the values of other
options (durations, counts, fingerprints).

A value read as JSON may nest containers at most ``MAX_NESTING`` deep (the most
dagexec walks, hashes and pickles, DESIGN §12): deeper text is refused as bad usage
before anything runs, never left to a ``RecursionError`` in the parser or later."""

from __future__ import annotations

import argparse
import importlib
import inspect as _inspect
import json
import os
import re
import sys
import traceback
import types
import typing
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any

from .._errors import DagexecError, GraphError
from .._graph import MAX_NESTING, nesting_exceeds

if TYPE_CHECKING:
    from ..plan.compiled import CompiledGraph


_TRUE = frozenset({"true", "1", "yes"})
_FALSE = frozenset({"false", "0", "no"})


class UsageError(DagexecError):
    """Bad usage, target or input: reported as one ``dagexec: error:`` line, exit code 2."""


# -- targets ---------------------------------------------------------------------------
def _import_target_module(spec: str) -> types.ModuleType:
    """Import ``module.name`` or ``path/to/file.py``."""
    if spec.endswith(".py") or "/" in spec or os.sep in spec:
        path = Path(spec)
        if not path.is_file():
            raise UsageError(f"no such file {spec!r}")
        if path.suffix != ".py":
            raise UsageError(f"{spec!r} is not a .py file")
        folder = str(path.resolve().parent)
        if folder not in sys.path:
            sys.path.insert(0, folder)
        name = path.stem
        loaded = sys.modules.get(name)
        where = getattr(loaded, "__file__", None)
        if loaded is not None and (where is None or Path(where).resolve() != path.resolve()):
            raise UsageError(
                f"cannot import {spec!r} as module {name!r}: that name is already taken by {loaded!r}; "
                "rename the file"
            )
    else:
        name = spec
        # the console script does not put the working directory on sys.path; python -m does
        if os.getcwd() not in sys.path and "" not in sys.path:
            sys.path.insert(0, os.getcwd())
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (name == exc.name or name.startswith(exc.name + ".")):
            raise UsageError(f"cannot import module {name!r}: {exc}") from None
        raise UsageError(f"importing {spec!r} raised {_describe(exc)}") from None
    except Exception as exc:
        raise UsageError(f"importing {spec!r} raised {_describe(exc)}") from None


def _describe(exc: BaseException) -> str:
    """``Type: message (file.py:12)``, the place being the innermost frame."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = ""
    if frames:
        last = frames[-1]
        where = f" ({_relpath(last.filename)}:{last.lineno})"
    return f"{type(exc).__name__}: {exc}{where}"


def _relpath(path: str) -> str:
    try:
        return os.path.relpath(path)
    except ValueError:
        return path


def _graphs_in(module: types.ModuleType) -> list[str]:
    from .._graph import Graph
    from .._section import Section
    from ..plan.compiled import CompiledGraph

    return sorted(
        name
        for name, value in vars(module).items()
        if not name.startswith("_") and isinstance(value, (Graph, CompiledGraph, Section))
    )


def resolve_target(target: str) -> CompiledGraph:
    """The compiled graph that ``module:attr`` or ``path/to/file.py:attr`` names."""
    module_part, sep, attr = target.rpartition(":")
    if not sep or not module_part or not attr:
        if target.endswith(".py"):
            raise UsageError(f"name the graph inside the file: {target}:ATTR")
        raise UsageError(f"no such file {target!r}; a target reads module:attr or path/to/file.py:attr")
    module = _import_target_module(module_part)
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            found = _graphs_in(module)
            hint = f"; graphs in it: {', '.join(found)}" if found else ""
            raise UsageError(f"module {module.__name__!r} has no attribute {attr!r}{hint}") from None
    return _as_plan(obj, target)


def _as_plan(obj: Any, target: str, called: bool = False) -> CompiledGraph:
    from .._graph import Graph
    from .._section import Section
    from .._task import Task
    from ..plan.compiled import CompiledGraph

    if isinstance(obj, CompiledGraph):
        return obj
    if isinstance(obj, Graph):
        return obj.compile()
    if isinstance(obj, Section):
        return obj.graph().compile()
    what = "a Graph, a section, a CompiledGraph or a function returning a Graph"
    if called:
        raise UsageError(f"{target}() returned {type(obj).__name__}, not a Graph or a CompiledGraph")
    if isinstance(obj, Task):
        raise UsageError(f"{target!r} is a task, not a graph; name {what}")
    if callable(obj) and not isinstance(obj, type):
        try:
            _inspect.signature(obj).bind()
        except TypeError:
            raise UsageError(f"{target!r} is a function that needs arguments; name {what}") from None
        except ValueError:
            pass
        try:
            made = obj()
        except GraphError:
            raise
        except Exception as exc:
            raise UsageError(f"calling {target}() raised {_describe(exc)}") from None
        return _as_plan(made, target, called=True)
    raise UsageError(f"{target!r} is {type(obj).__name__}, not {what}")


def load_plan(
    target: str,
    require_signed: bool = False,
    expect_graph: str | None = None,
    expect_fingerprint: str | None = None,
) -> CompiledGraph:
    """A saved file (anything that exists on disk) or a ``module:attr`` target.

    A saved file is checked by :func:`dagexec.load` with these arguments, before
    anything in it runs.  When signatures are required (``require_signed``, or
    ``DAGEXEC_REQUIRE_SIGNED``), a target that is not a saved file is refused: its
    code cannot be signed.  A target's plan must match ``expect_graph`` and
    ``expect_fingerprint`` too.

    Raises:
        ArtifactError: for a saved file that is refused.
        UsageError: for a bad target, or one that is refused.
    """
    from .._artifact import load
    from .._envelope import REQUIRE_ENV, signatures_required

    path = Path(target)
    # anything on disk is a saved file, which load() checks: a FIFO, a device or a
    # folder is refused there as not a regular file, without being opened for reading
    if path.suffix != ".py" and path.exists():
        return load(
            path,
            require_signed=require_signed,
            expect_graph=expect_graph,
            expect_fingerprint=expect_fingerprint,
        )
    if signatures_required(require_signed):
        raise UsageError(
            f"only signed files are run here (--require-signed or {REQUIRE_ENV}), "
            f"and {target!r} is not a saved file; compile it and sign it with DAGEXEC_KEY"
        )
    plan = resolve_target(target)
    if expect_graph is not None and plan.name != expect_graph:
        raise UsageError(f"{target!r} is graph {plan.name!r}, and graph {expect_graph!r} is expected")
    if expect_fingerprint is not None and plan.fingerprint != expect_fingerprint.lower():
        raise UsageError(
            f"{target!r} is the plan of fingerprint {plan.fingerprint}, "
            f"and fingerprint {expect_fingerprint.lower()} is expected"
        )
    return plan


# -- inputs ------------------------------------------------------------------------------
def parse_inputs(plan: CompiledGraph, pairs: list[str]) -> dict[str, Any]:
    """``-i name=value`` pairs parsed by each input's declared type."""
    specs = {spec.name: spec for spec in plan.inputs}
    values: dict[str, Any] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        name = name.strip()
        if not sep or not name:
            raise UsageError(f"-i takes name=value, got {pair!r}")
        if name in values:
            raise UsageError(f"input {name!r} is given twice")
        spec = specs.get(name)
        # an unknown name is passed on as text: run() reports it with the valid names
        values[name] = text if spec is None else parse_value(name, text, spec.type)
    return values


def parse_value(name: str, text: str, ann: Any) -> Any:
    """Parse ``text`` for input ``name`` of type ``ann``.

    ``str`` as is; ``int``, ``float`` and ``bool`` (true/false/1/0/yes/no) parsed;
    ``Optional[X]`` takes ``null`` for None; paths built from the text; an input
    without a type takes JSON when the text is JSON, else the text; anything else
    (containers included) is JSON.

    Raises:
        UsageError: naming the input and the expected type.
    """
    from .._typecheck import format_type

    def bad(why: str = "") -> UsageError:
        return UsageError(f"input {name!r} expects {format_type(ann)}{why}, got {text!r}")

    if ann is str:
        return text
    if ann is bool:
        low = text.strip().lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise bad(" (true/false, 1/0 or yes/no)")
    if ann is int or ann is float:
        try:
            return ann(text)
        except ValueError:
            raise bad() from None
    if ann is Any or ann is object:
        try:
            return _json(name, text)
        except ValueError:
            return text
    if typing.get_origin(ann) in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(ann) if a is not type(None)]
        if len(members) == 1 and len(typing.get_args(ann)) == 2:
            if text.strip().lower() in ("null", "none"):
                return None
            return parse_value(name, text, members[0])
    if isinstance(ann, type) and issubclass(ann, PurePath):
        return ann(text)
    try:
        value = _json(name, text)
    except ValueError as exc:
        raise bad(f" as JSON ({exc})") from None
    origin = typing.get_origin(ann) or ann
    if isinstance(value, list) and origin in (tuple, set, frozenset):
        try:
            value = origin(value)
        except TypeError:
            raise bad(f" as JSON ({origin.__name__} items must be hashable)") from None
    return value


def _json(name: str, text: str) -> Any:
    """``text`` parsed as JSON for input ``name``.

    Raises:
        ValueError: when it is not JSON.
        UsageError: when its containers nest more than ``MAX_NESTING`` deep.
    """
    try:
        value = json.loads(text)
        too_deep = nesting_exceeds(value)
    except RecursionError:  # the parser's own limit, far past MAX_NESTING
        too_deep = True
    if too_deep:
        raise UsageError(
            f"input {name!r} holds containers nested more than {MAX_NESTING} deep, the most dagexec "
            "reads from -i; make such a value inside a task"
        )
    return value


# -- option values -----------------------------------------------------------------------
UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}  # seconds per unit


def duration(text: str) -> float:
    """``30s``, ``15m``, ``12h``, ``7d``, ``2w`` or plain seconds, as seconds (an argparse type)."""
    unit = UNITS.get(text[-1:])
    number = text[:-1] if unit is not None else text
    try:
        value = float(number)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expects a duration such as 30s, 15m, 12h, 7d or 2w, got {text!r}"
        ) from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expects a duration >= 0, got {text!r}")
    return value * (unit or 1.0)


def age(seconds: float) -> str:
    """``seconds`` in its largest whole unit: ``3d``, ``40m``, ``5s``."""
    for unit in ("w", "d", "h", "m"):
        if seconds >= UNITS[unit]:
            return f"{int(seconds // UNITS[unit])}{unit}"
    return f"{int(seconds)}s"


def positive_int(text: str) -> int:
    """An int >= 1 (an argparse type)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expects an int >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expects an int >= 1, got {text!r}")
    return value


def fingerprint(text: str) -> str:
    """A plan's fingerprint, 64 hex digits, lowercased (an argparse type)."""
    if not re.fullmatch(r"[0-9a-fA-F]{64}", text):
        raise argparse.ArgumentTypeError(f"expects a plan's fingerprint, 64 hex digits, got {text!r}")
    return text.lower()
