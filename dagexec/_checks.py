"""Checks made at compile time: constants and edges against annotations, the
run-time checks each node needs, and what does not pickle (DESIGN §4, §12)."""

from __future__ import annotations

import pickle
from typing import Any

from . import _graph as G
from ._errors import Problem
from ._plan import _Ref
from ._typecheck import describe_mismatch, format_type, short_repr, static_compatible

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
    res: list[tuple[int, Any]],
    problems: list[Problem],
    skip: int = 0,
) -> None:
    meta = task.meta
    hints = meta.hints
    for where_, pname in param_names(meta, len(raw_args), raw_kwargs):
        ann = hints.get(pname)
        if ann is None or (isinstance(where_, int) and where_ < skip):
            continue
        raw = raw_args[where_] if isinstance(where_, int) else (raw_kwargs or {})[where_]
        if isinstance(raw, G.Node):
            r = res[raw._i]
            if r[0] == CONST:
                _check_constant(r[1], ann, key, pname, where, problems)
                continue
            if r[0] == TPL:
                continue  # a container of Nodes: left to the run-time check
            produced, what = _produced_type(g, r)
            if produced is not _UNKNOWN and not static_compatible(produced, ann):
                problems.append(
                    Problem(
                        f"node {key!r}: parameter {pname!r} expects {format_type(ann)} but {what} "
                        f"{format_type(produced)} (called at {where})",
                        key=key,
                        param=pname,
                        call_site=where,
                    )
                )
        elif not g._recs[gi][G.R_NESTED] or not _has_node(raw):
            _check_constant(raw, ann, key, pname, where, problems)


def _check_constant(value: Any, ann: Any, key: str, pname: str, where: str, problems: list[Problem]) -> None:
    msg = describe_mismatch(value, ann)
    if msg:
        problems.append(
            Problem(
                f"node {key!r}: parameter {pname!r} {msg} (called at {where})",
                key=key,
                param=pname,
                call_site=where,
            )
        )


_UNKNOWN: Any = object()


def _produced_type(g: G.Graph, r: tuple[int, Any]) -> tuple[Any, str]:
    kind, i = r
    if kind == INPUT:
        typ = g._input_specs[i][0]
        return (typ if typ is not Any else _UNKNOWN), f"input {g._keys[i]!r} is"
    if g._recs[i][G.R_KIND] == G.TASK:
        task = g._recs[i][G.R_TASK]
        hints = task.meta.hints if task is not None else {}
        if "return" in hints:
            return hints["return"], f"{g._keys[i]!r} returns"
    return _UNKNOWN, ""


def _has_node(value: Any) -> bool:
    if isinstance(value, G.Node):
        return True
    if isinstance(value, (list, tuple, set, frozenset)):
        return any(_has_node(v) for v in value)
    if isinstance(value, dict):
        return any(_has_node(v) for v in value.values())
    return False


def pickle_problem(key: str, where: str, what: str, exc: BaseException | None) -> Problem:
    why = f": {type(exc).__name__}: {exc}" if exc is not None else ""
    return Problem(
        f"node {key!r}: {what} cannot be pickled{why} (called at {where})", key=key, call_site=where
    )


def pickles(task: Any, key: str, where: str, problems: list[Problem]) -> bool:
    import cloudpickle

    try:
        cloudpickle.dumps(task)
    except Exception as exc:
        problems.append(pickle_problem(key, where, f"task function {qual(task.__wrapped__)}", exc))
        return False
    return True


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
