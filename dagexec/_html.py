"""``plan.to_html(path)`` and ``result.to_html(path)``: one self-contained page.

The page holds three things and loads nothing else (no network, no files)::

    <svg>            the picture from to_dot(), rendered by Graphviz's ``dot``
    <script type="application/json" id="dagexec-data">
                     {"graph", "kind", "ids": {svg group id: key},
                      "functions": [[function, signature]],
                      "nodes": {key: {task, fn (into functions), call_site, deps, state, ...}},
                      "trials": [[key, attempt, state, start, end, worker, duration]],
                      "texts": {trial row: {error, traceback, log}}, "summary": {...}}
    <script>         a little JS: click a node (in the picture, the timeline, the error
                     list or the search results) to fill the ``#details`` panel

The record is kept compact, as a 10,000-node page must stay under 5 MB: a node's
fields are left out where empty, a function's name and signature are written once,
and each trial is one row, the nodes' and the map items' alike, with its texts apart
(most trials have none); the page takes a node's attempts, worker, error, traceback
and log from its trials.  Everything else is computed here, in Python, so the JS only
looks values up and writes them with ``textContent``; nothing from the plan or the
run is ever parsed as HTML. The page's HTML, CSS and JS are files of their own in ``dagexec/_page/``
(package data), inlined into each page. The file is written atomically: a temporary
file beside it, then a rename.
"""

from __future__ import annotations

import html
import inspect
import json
import platform
import re
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._files import write_atomic
from ._state import State
from ._version import __version__

if TYPE_CHECKING:
    from os import PathLike

    from ._result import RunResult
    from ._state import Trial
    from .plan.compiled import CompiledGraph

__all__ = ["to_html"]


#: the page's HTML, CSS and JS, files of their own beside this module (package data)
_ASSETS = Path(__file__).parent / "_page"


def _asset(name: str) -> str:
    """The text of the page's asset ``name`` (``report.html``, ``.css``, ``.js``)."""
    return (_ASSETS / name).read_text(encoding="utf-8")


def _duration(seconds: float | None) -> str:
    from ._dot import format_duration

    return "" if seconds is None else format_duration(seconds)


def _signature(fn: Any) -> str:
    """``name(param: type, ...) -> type`` of ``fn``, with string annotations resolved."""
    name = getattr(fn, "__name__", "") or ""
    for eval_str in (True, False):
        try:
            return f"{name}{inspect.signature(fn, eval_str=eval_str)}"
        except Exception:  # an annotation that does not evaluate, or a builtin
            continue
    return ""


def _error_text(trial: Trial | None) -> str:
    if trial is None or trial.error is None:
        return ""
    return f"{type(trial.error).__name__}: {trial.error}"


def _logs(key: str, trials: list[Trial], result: RunResult) -> str | None:
    """The node's log where it is more than one trial's: each trial's (a map's: each
    item's) under a header line naming it; None where the node has at most one trial
    (the page shows that trial's log)."""
    every = list(trials)
    j = 0
    while f"{key}[{j}]" in result.trials:  # a map's items
        every.extend(result.trials[f"{key}[{j}]"])
        j += 1
    if len(every) <= 1:
        return None
    parts = [
        f"--- {t.key} attempt {t.attempt} ({t.state.value}) ---\n{t.log.rstrip()}" for t in every if t.log
    ]
    return "\n".join(parts)


def _kept(d: dict[str, Any]) -> dict[str, Any]:
    """``d`` without its empty fields ("", None, []): the page leaves those out anyway."""
    return {k: v for k, v in d.items() if v is not None and v != "" and v != []}


#: how the details panel words a cache decision's action (``Explanation.action``)
_CACHE_ACTIONS = {"run": "not from the cache", "cached": "cached", "resumed": "not run again"}


def _cache_decisions(result: RunResult) -> dict[str, str]:
    """Node key -> what the run's cache did with it and why (``"cached: in the store"``,
    ``"not from the cache: code changed: app:load"``); {} for a run without a
    cache, or when its store can no longer be read."""
    cache = result._about["cache"]
    if cache is None:
        return {}
    from .cache.decide import explain_run

    store, decision, selected = cache
    try:
        found = explain_run(result._plan, store, decision, selected, result.start)
    except OSError:
        return {}
    return {
        e.key: f"{_CACHE_ACTIONS[e.action]}: {'; '.join(e.reasons)}"
        for e in found
        if e.action in _CACHE_ACTIONS
    }


def _node_details(
    plan: CompiledGraph, result: RunResult | None, functions: list[list[str]]
) -> dict[str, dict[str, Any]]:
    """Node key -> what the details panel shows of it, but what its trials say (the
    page takes attempts, worker, error, traceback and log from ``trials``); each
    node's function and signature as an index into ``functions``, which it extends."""
    details: dict[str, dict[str, Any]] = {}
    decisions = {} if result is None else _cache_decisions(result)
    function_of: dict[tuple[str, str], int] = {}
    for info in plan.nodes:
        fn = (info.function, _signature(plan._specs[info.idx].fn))
        if fn not in function_of:
            function_of[fn] = len(functions)
            functions.append(list(fn))
        d: dict[str, Any] = {
            "task": info.task,
            "fn": function_of[fn],
            "call_site": info.call_site,
            "section": info.section,
            "deps": list(info.deps),
        }
        if result is not None:
            state = result.states.get(info.key)
            trials = result.trials.get(info.key, [])
            last = trials[-1] if trials else None
            durations = [t.duration for t in trials if t.duration is not None]
            d.update(
                state=None if state is None else state.value,
                duration=_duration(sum(durations)) if durations else None,
                log=_logs(info.key, trials, result),
                cache=decisions.get(info.key),
                bundle=None if last is None else last.bundle,
            )
            if info.key in result._items:
                d.update(_map_details(info.key, trials, result))
            elif last is not None and last.items is not None:  # a stream producer's
                d["items"] = f"{last.items:,} yielded"
        details[info.key] = _kept(d)
    return details


#: the items of one map that a page lists (the rest are counted)
MAX_ITEMS_LISTED = 1000


def _map_details(key: str, trials: list[Trial], result: RunResult) -> dict[str, Any]:
    """A map node's items: how many in each state, and each item's key and state
    (failed ones first); where it ran no trial of its own, its error and traceback
    say those of its failed items."""
    from ._dot import _items_line

    items = result._items[key]
    failed = [k for k in items if result.states[k] is State.FAILED]
    d: dict[str, Any] = {"items": _items_line(key, result.states)}
    # failed items first, then the others in order, up to MAX_ITEMS_LISTED
    shown = (failed + [k for k in items if result.states[k] is not State.FAILED])[:MAX_ITEMS_LISTED]
    d["item_list"] = [[k, result.states[k].value] for k in shown]
    if failed:
        d["failed_items"] = "\n".join(result._failure_line(k) for k in failed)
        bundles = [t.bundle for k in failed for t in result.trials[k][-1:] if t.bundle is not None]
        if bundles:
            d["bundle"] = "\n".join(bundles)
    if trials or not failed:
        return d  # its own trial failed (no list of items to map over): its own record stands
    d["error"] = result._failure_line(key).partition(": ")[2]
    d["traceback"] = "\n".join(
        f"--- {k} attempt {t.attempt} ({t.state.value}) ---\n{t.traceback.rstrip()}"
        for k in failed
        for t in result.trials[k][-1:]
    )
    return d


def _trials(result: RunResult) -> tuple[list[list[Any]], dict[int, dict[str, str]]]:
    """Every trial of the run (the nodes' and the map items'), by start, as a row
    ``[key, attempt, state, start, end, worker, duration]`` (times in seconds from the
    run's start, end None while it runs), and by row the texts of the trials that have
    some: ``{"error", "traceback", "log"}``, each left out when empty."""
    start = result.start
    every = [t for trials in result.trials.values() for t in trials]
    every.sort(key=lambda t: (t.start, t.key, t.attempt))
    rows: list[list[Any]] = []
    texts: dict[int, dict[str, str]] = {}
    for t in every:
        end = None if t.end is None else round(max(0.0, t.end - start), 6)
        rows.append([t.key, t.attempt, t.state.value, round(max(0.0, t.start - start), 6), end, t.worker or "?",
                     _duration(t.duration)])  # fmt: skip
        said = _kept({"error": _error_text(t), "traceback": t.traceback, "log": t.log})
        if said:
            texts[len(rows) - 1] = said
    return rows, texts


def _summary(plan: CompiledGraph, result: RunResult | None) -> dict[str, Any]:
    facts = {"fingerprint": plan.fingerprint, "dagexec": __version__, "python": platform.python_version()}
    if result is None:
        return {"nodes": len(plan), "sections": len(plan.sections), **facts}
    counts = Counter(s.value for k, s in result.states.items() if not result._is_item(k))
    item_counts = Counter(result.states[k].value for keys in result._items.values() for k in keys)
    return {
        "nodes": len(plan),
        "sections": len(plan.sections),
        **facts,
        "ok": result.ok,
        "start": result.start,
        "started": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(result.start)),
        "executors": result._about["executors"],
        "inputs": result._about["inputs"],
        "failed": result.failed,
        "duration": _duration(result.duration),
        "counts": {s.value: counts[s.value] for s in State if counts[s.value]},
        # the maps' items, apart from the nodes: None when no map ran
        "items": {s.value: item_counts[s.value] for s in State if item_counts[s.value]}
        if result._items
        else None,
        "n_items": sum(len(keys) for keys in result._items.values()),
    }


# <g id="..." class="node"><title>...</title>: dot writes the id first, then the class
_SVG_NODE = re.compile(r'<g id="([^"]*)" class="node">\s*<title>([^<]*)</title>')


def _svg_ids(svg: str, plan: CompiledGraph) -> dict[str, str]:
    """SVG group id -> node key (``section:<path>`` for a collapsed section,
    ``group:<n>`` for a group of a large plan's nodes)."""
    index = plan._index
    ids: dict[str, str] = {}
    for gid, title in _SVG_NODE.findall(svg):
        gid, title = html.unescape(gid), html.unescape(title)
        bare = gid.removeprefix("collapsed-")
        if bare.startswith("node:") and bare[len("node:") :] in index:
            ids[gid] = bare[len("node:") :]
        elif bare.startswith(("section:", "group:")):
            ids[gid] = bare
        else:
            # pictures whose ids are not keys: the DOT name is n<idx>
            m = re.fullmatch(r"n(\d+)", title)
            if m and int(m.group(1)) < len(plan._keys):
                ids[gid] = plan._keys[int(m.group(1))]
    return ids


def _render_svg(digraph: Any) -> str:
    import graphviz

    try:
        svg: str = digraph.pipe(format="svg", encoding="utf-8")
    except graphviz.ExecutableNotFound as exc:
        raise RuntimeError(
            "writing an HTML page needs Graphviz's 'dot' program, which is not installed; "
            "install Graphviz (e.g. 'apt-get install graphviz' or 'brew install graphviz')"
        ) from exc
    # drop the XML prolog and DOCTYPE (which names a DTD by URL): the page is HTML
    start = svg.find("<svg")
    return svg[start:] if start >= 0 else svg


def _json_for_script(data: Any) -> str:
    # "<" escaped so that no "</script>" or "<!--" inside a value can end the block
    return json.dumps(data, ensure_ascii=False).replace("<", "\\u003c").replace(">", "\\u003e")


def _split(obj: Any) -> tuple[CompiledGraph, RunResult | None]:
    from ._result import RunResult
    from .plan.compiled import CompiledGraph

    if isinstance(obj, CompiledGraph):
        return obj, None
    if isinstance(obj, RunResult):
        return obj._plan, obj
    raise TypeError(f"to_html() draws a CompiledGraph or a RunResult, not {type(obj).__name__}")


def _state_css() -> str:
    from ._dot import PAGE_COLOURS

    return "\n".join(f".st-{state} {{ background: {colour}; }}" for state, colour in PAGE_COLOURS.items())


def to_html(obj: CompiledGraph | RunResult, path: str | PathLike[str], refresh: float | None = None) -> None:
    """Write ``obj`` (a plan or a run's result) as one self-contained HTML page.

    The picture starts with every section expanded; when the plan has sections, a
    second picture with them collapsed is embedded too, and a button switches. A plan
    of more than 1,000 nodes is drawn in groups (one box per task in each section;
    see ``dagexec._overview``), and a click on a group lists its nodes.

    Args:
        obj: a :class:`~dagexec.CompiledGraph` or a :class:`~dagexec.RunResult`.
        path: the file to write, e.g. ``"report.html"``; an existing file is replaced.
        refresh: seconds after which the open page reloads itself (a live report of a
            run that goes on); None: it does not.

    Raises:
        TypeError: when ``obj`` is neither a plan nor a result.
        RuntimeError: when Graphviz's ``dot`` program is not installed; nothing is
            written.
        OSError: when the file cannot be written; an existing file is left as it was.
    """
    from ._dot import _WORST_FIRST, to_dot
    from ._overview import LARGE_PAGE, overview

    plan, result = _split(obj)
    out = Path(path)
    collapsed, grouped = "", None
    if len(plan) > LARGE_PAGE:  # drawn in groups, each listing its nodes when clicked
        grouped = overview(plan, result)
        svg = _render_svg(grouped.digraph)
    else:
        svg = _render_svg(to_dot(obj, expand=True))
    ids = _svg_ids(svg, plan)
    if plan.sections and grouped is None:
        # ids must stay unique in the page: the second picture's get a prefix
        collapsed = _render_svg(to_dot(obj, collapse=True)).replace('<g id="', '<g id="collapsed-')
        ids.update(_svg_ids(collapsed, plan))
    functions: list[list[str]] = []
    trials, texts = ([], {}) if result is None else _trials(result)
    data: dict[str, Any] = {
        "graph": plan.name,
        "kind": "plan" if result is None else "result",
        "ids": ids,
        "functions": functions,
        "nodes": _node_details(plan, result, functions),
        "trials": trials,
        "texts": texts,
        "summary": _summary(plan, result),
        "groups": None,
    }
    if grouped is not None:
        data["groups"] = {
            "names": grouped.names,
            "sections": grouped.sections,
            "how": grouped.how,
            "listed": MAX_ITEMS_LISTED,
            "worst_first": _WORST_FIRST,  # the order of a group's counts and of its nodes
        }
        for key, g in zip(plan._keys, grouped.group_of, strict=True):
            data["nodes"][key]["group"] = g
    title = f"{'run of ' if result is not None else ''}graph {plan.name}"
    page = (
        _asset("report.html")
        .replace("@@TITLE@@", html.escape(title))
        .replace(
            "@@REFRESH@@", "" if refresh is None else f'<meta http-equiv="refresh" content="{refresh:g}">'
        )
        .replace("@@KIND@@", data["kind"])
        .replace("@@CSS@@", _asset("report.css") + _state_css())
        .replace("@@SVG@@", svg)
        .replace("@@COLLAPSED@@", collapsed)
        .replace("@@HAS_SECTIONS@@", "" if collapsed else " hidden")
        .replace("@@DATA@@", _json_for_script(data))
        .replace("@@JS@@", _asset("report.js"))
    )
    write_atomic(out, [page.encode("utf-8")])
