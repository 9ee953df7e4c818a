"""Checks made at compile time: constants and edges against annotations (also the
items of a map over a list known at compile time, one problem per map), the
run-time checks each node needs, and what does not pickle, naming the part of a
task that stops it (closure variable, global, default, attribute, option) as
DESIGN §12 asks (DESIGN §4, §12)."""

from __future__ import annotations

import pickle
import types
from collections.abc import Sequence
from typing import Any

from .. import _graph as G
from .._errors import Problem
from .._typecheck import describe_mismatch, format_type, is_plain_class, short_repr, static_compatible
from .fingerprint import type_name
from .specs import _Ref
from .tokens import global_names
from .triggers import none_problem, wants_outcome

# how compile resolves a graph node: (NODE, idx) | (INPUT, idx) | (CONST, value) |
# (TPL, (container, deps)): a section parameter given a container of Nodes
NODE, INPUT, CONST, TPL = 0, 1, 2, 3

SIMPLE = frozenset({int, float, str, bytes, bool, type(None), complex})


def qual(fn: Any) -> str:
    return f"{getattr(fn, '__module__', '?')}:{getattr(fn, '__qualname__', repr(fn))}"


def param_names(meta: Any, n_args: int, kw: dict[str, Any] | None) -> list[tuple[int | str, str]]:
    out: list[tuple[int | str, str]] = []
    pos = meta.pos_params
    for j in range(n_args):
        if j < len(pos):
            out.append((j, pos[j]))
        else:
            var = next((p.name for p in meta.params.values() if p.kind is p.VAR_POSITIONAL), None)
            if var is not None:
                out.append((j, var))
    for name in kw or ():
        if name in meta.params and meta.params[name].kind is not meta.params[name].VAR_KEYWORD:
            out.append((name, name))
        else:
            var = next((p.name for p in meta.params.values() if p.kind is p.VAR_KEYWORD), None)
            if var is not None:
                out.append((name, var))
    return out


def outcome_params(meta: Any, n_args: int, kwargs: dict[str, Any] | None) -> tuple[int | str, ...]:
    """The positions and keyword names of a call's arguments whose parameter wants
    Outcomes (:mod:`.triggers`)."""
    hints = meta.hints
    return tuple(w for w, name in param_names(meta, n_args, kwargs) if wants_outcome(hints.get(name)))


def runtime_checks(
    meta: Any, n_args: int, kw: dict[str, Any] | None
) -> tuple[tuple[tuple[int | str, str, Any], ...], Any]:
    hints = meta.hints
    from typing import Any as _Any

    checks = tuple(
        (where, pname, hints[pname])
        for where, pname in param_names(meta, n_args, kw)
        if pname in hints and hints[pname] is not _Any
    )
    ret = hints.get("return", None)
    if "return" in hints and ret is None:
        ret = type(None)
    if ret is _Any:
        ret = None
    return checks, ret


def check_constants(
    g: G.Graph,
    gi: int,
    key: str,
    where: str,
    task: Any,
    raw_args: tuple[Any, ...],
    raw_kwargs: dict[str, Any] | None,
    res: Sequence[tuple[int, Any]],
    problems: list[Problem],
    skip: int = 0,
    rule: str | None = None,
) -> None:
    """Check a task node's constants, and its edges, against its annotations; ``rule``:
    its trigger rule, where the node is gated (:mod:`.triggers`)."""
    meta = task.meta
    hints = meta.hints
    for where_, pname in param_names(meta, len(raw_args), raw_kwargs):
        ann = hints.get(pname)
        if ann is None or (isinstance(where_, int) and where_ < skip):
            continue
        raw = raw_args[where_] if isinstance(where_, int) else (raw_kwargs or {})[where_]
        if isinstance(raw, G.Node):
            if rule is not None:
                problem = none_problem(key, pname, ann, rule, g._keys[raw._i], where)
                if problem is not None or wants_outcome(ann):  # an Outcome is no producer's value
                    problems.extend([problem] if problem is not None else [])
                    continue
            _check_edge(g, res[raw._i], ann, key, pname, where, problems)
        elif not g._recs[gi][G.R_NESTED] or not G.holds_node(raw):
            _check_constant(raw, ann, key, pname, where, problems)


#: the indices of mismatching map items listed after the first one, described in full
MAX_ITEMS_LISTED = 5


def check_map_items(
    g: G.Graph,
    key: str,
    where: str,
    task: Any,
    items: Any,
    res: Sequence[tuple[int, Any]],
    problems: list[Problem],
) -> None:
    """Check the items of ``task.map(items)`` known at compile time against the annotation
    of the parameter each item is given to; items that are Nodes are checked as edges.

    One problem per map: the first mismatching item in full, then the indices of the
    others (a list of 10,000 wrong items is one line, not 10,000)."""
    meta = task.meta
    names = param_names(meta, 1, None)
    ann = meta.hints.get(names[0][1]) if names else None
    if ann is None or ann is Any:
        return
    pname = names[0][1]
    if isinstance(items, G.Node):
        r = res[items._i]
        if r[0] != CONST:
            return  # a list known only at run time: each item is checked then
        items = r[1]
    if not isinstance(items, (list, tuple)):
        return
    plain = is_plain_class(ann)
    first: list[Problem] = []
    others: list[int] = []
    for k, item in enumerate(items):
        if plain and isinstance(item, ann):
            continue  # the common case, without typeguard
        found: list[Problem] = []
        if isinstance(item, G.Node):
            _check_edge(g, res[item._i], ann, key, pname, where, found, f" of item {k}")
        elif not G.holds_node(item):
            _check_constant(item, ann, key, pname, where, found, f" of item {k}")
        if found and not first:
            first = found
        elif found:
            others.append(k)
    if not first:
        return
    problem = first[0]
    if others:
        listed = ", ".join(str(k) for k in others[:MAX_ITEMS_LISTED])
        if len(others) > MAX_ITEMS_LISTED:
            listed += ", ..."
        more = f"{len(others)} more item{'s' if len(others) > 1 else ''}"
        text = problem.message.removesuffix(f" (called at {where})")
        problem = Problem(
            f"{text}; {more} do{'es' if len(others) == 1 else ''} not match either ({listed}) (called at {where})",
            key=key,
            param=pname,
            call_site=where,
        )
    problems.append(problem)


def _check_constant(
    value: Any, ann: Any, key: str, pname: str, where: str, problems: list[Problem], of: str = ""
) -> None:
    msg = describe_mismatch(value, ann)
    if msg:
        problems.append(
            Problem(
                f"node {key!r}: parameter {pname!r}{of} {msg} (called at {where})",
                key=key,
                param=pname,
                call_site=where,
            )
        )


_UNKNOWN: Any = object()


def _check_edge(
    g: G.Graph,
    r: tuple[int, Any],
    ann: Any,
    key: str,
    pname: str,
    where: str,
    problems: list[Problem],
    of: str = "",
) -> None:
    """Check what a Node resolved to (``r``) against ``ann``: a constant's value, or the
    producer's annotation where both are plain classes (DESIGN §12)."""
    if r[0] == CONST:
        _check_constant(r[1], ann, key, pname, where, problems, of)
        return
    if r[0] == TPL:
        return  # a container of Nodes: left to the run-time check
    produced, what = _produced_type(g, r)
    if produced is not _UNKNOWN and not static_compatible(produced, ann):
        problems.append(
            Problem(
                f"node {key!r}: parameter {pname!r}{of} expects {format_type(ann)} but {what} "
                f"{format_type(produced)} (called at {where})",
                key=key,
                param=pname,
                call_site=where,
            )
        )


def _produced_type(g: G.Graph, r: tuple[int, Any]) -> tuple[Any, str]:
    kind, i = r
    if kind == INPUT:
        typ = g._input_specs[i][0]
        return (typ if typ is not Any else _UNKNOWN), f"input {g._keys[i]!r} is"
    if g._recs[i][G.R_KIND] == G.TASK:
        task = g._task_of(i)
        hints = task.meta.hints if task is not None else {}
        if "return" in hints:
            return hints["return"], f"{g._keys[i]!r} returns"
    return _UNKNOWN, ""


def pickle_problem(key: str, where: str, what: str, exc: BaseException | None, because: str = "") -> Problem:
    why = f": {type(exc).__name__}: {exc}" if exc is not None else ""
    return Problem(
        f"node {key!r}: {what} cannot be pickled{because}{why} (called at {where})", key=key, call_site=where
    )


def pickles(task: Any, key: str, where: str, problems: list[Problem]) -> str | None:
    """None when ``task`` pickles; else what stops it (`` because of its global 'LOCK'
    (a _thread.lock)``, or ``""`` when no single part is to blame), with a problem added."""
    import cloudpickle

    try:
        cloudpickle.dumps(task)
    except Exception as exc:
        found = unpicklable_part(task)
        because = f" because of its {found[0]}" if found is not None else ""
        cause = found[1] if found is not None else exc
        problems.append(pickle_problem(key, where, f"task function {qual(task.__wrapped__)}", cause, because))
        return because
    return None


def unpicklable_part(task: Any) -> tuple[str, BaseException] | None:
    """The first part of a task that does not pickle: ``("closure variable 'lock' (a
    _thread.lock)", the error)``, looking through the closure, the globals the code
    uses, defaults, attributes and the task's options; a function found there is
    looked into in turn (``global 'helper': its global 'LOCK' (a _thread.lock)``)."""
    import cloudpickle

    def find(fn: Any, depth: int, seen: set[int]) -> tuple[str, BaseException] | None:
        seen.add(id(fn))
        for label, value in _parts(fn):
            try:
                cloudpickle.dumps(value)
            except Exception as exc:
                if isinstance(value, types.FunctionType) and depth < 3 and id(value) not in seen:
                    inner = find(value, depth + 1, seen)
                    if inner is not None:
                        return f"{label}: its {inner[0]}", inner[1]
                return f"{label} (a {type_name(value)})", exc
        return None

    found = find(task.__wrapped__, 0, set())
    if found is not None:
        return found
    for name, value in sorted(task.explicit_options.items()):
        try:
            cloudpickle.dumps(value)
        except Exception as exc:
            return f"task option {name!r} (a {type_name(value)})", exc
    return None


def _parts(fn: Any) -> list[tuple[str, Any]]:
    """What cloudpickle takes along with a function: closure cells, the globals its code
    names, its defaults and its ``__dict__`` (or a callable object's attributes)."""
    code = getattr(fn, "__code__", None)
    if not isinstance(code, types.CodeType):
        return [(f"attribute {k!r}", v) for k, v in sorted(getattr(fn, "__dict__", {}).items())]
    out: list[tuple[str, Any]] = []
    for name, cell in zip(code.co_freevars, fn.__closure__ or (), strict=False):
        try:
            out.append((f"closure variable {name!r}", cell.cell_contents))
        except ValueError:  # an empty cell
            continue
    glob = getattr(fn, "__globals__", {})
    out += [(f"global {name!r}", glob[name]) for name in global_names(code) if name in glob]
    defaults = fn.__defaults__ or ()
    positional = code.co_varnames[: code.co_argcount]
    for name, value in zip(positional[len(positional) - len(defaults) :], defaults, strict=True):
        out.append((f"default of parameter {name!r}", value))
    for name, value in (fn.__kwdefaults__ or {}).items():
        out.append((f"default of parameter {name!r}", value))
    out += [(f"attribute {k!r}", v) for k, v in sorted(fn.__dict__.items())]
    return out


def check_constant_pickles(
    key: str, where: str, task: Any, a: tuple[Any, ...], kw: dict[str, Any] | None, problems: list[Problem]
) -> None:
    values: list[tuple[str, Any]] = []
    pos = task.meta.pos_params
    for j, v in enumerate(a):
        if type(v) not in SIMPLE:
            values.append((pos[j] if j < len(pos) else f"*{j}", v))
    if kw:
        values.extend((k, v) for k, v in kw.items() if type(v) not in SIMPLE)
    for pname, v in values:
        if v is None or type(v) is _Ref:
            continue
        try:
            pickle.dumps(v, protocol=pickle.HIGHEST_PROTOCOL)
            continue
        except Exception:
            pass
        import cloudpickle

        try:
            cloudpickle.dumps(v)
        except Exception as exc:
            problems.append(
                Problem(
                    f"node {key!r}: parameter {pname!r}: constant {short_repr(v)} cannot be pickled: "
                    f"{type(exc).__name__}: {exc} (called at {where})",
                    key=key,
                    param=pname,
                    call_site=where,
                )
            )


# -- sections ------------------------------------------------------------------------
