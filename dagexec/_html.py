"""``plan.to_html(path)`` and ``result.to_html(path)``: one self-contained page.

The page holds three things and loads nothing else (no network, no files)::

    <svg>            the picture from to_dot(), rendered by Graphviz's ``dot``
    <script type="application/json" id="dagexec-data">
                     {"graph", "kind", "ids": {svg group id: key}, "nodes": {key: details},
                      "trials": [...], "summary": {...}}
    <script>         a little JS: click a node (in the picture, the timeline, the error
                     list or the search results) to fill the ``#details`` panel

Every node's details are computed here, in Python, so the JS only looks values up
and writes them with ``textContent``; nothing from the plan or the run is ever parsed
as HTML. The file is written atomically: a temporary file beside it, then a rename.
"""

from __future__ import annotations

import html
import inspect
import json
import re
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._files import write_atomic
from ._state import State

if TYPE_CHECKING:
    from os import PathLike

    from ._result import RunResult
    from ._state import Trial
    from .plan.compiled import CompiledGraph

__all__ = ["to_html"]


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


def _logs(key: str, trials: list[Trial], result: RunResult) -> str:
    """The node's log: its one trial's, or each trial's (a map's: each item's) under a
    header line naming it; "" when none logged anything."""
    every = list(trials)
    j = 0
    while f"{key}[{j}]" in result.trials:  # a map's items
        every.extend(result.trials[f"{key}[{j}]"])
        j += 1
    if len(every) == 1:
        return every[0].log
    parts = [
        f"--- {t.key} attempt {t.attempt} ({t.state.value}) ---\n{t.log.rstrip()}" for t in every if t.log
    ]
    return "\n".join(parts)


def _node_details(plan: CompiledGraph, result: RunResult | None) -> dict[str, dict[str, Any]]:
    details: dict[str, dict[str, Any]] = {}
    for info in plan.nodes:
        d: dict[str, Any] = {
            "key": info.key,
            "task": info.task,
            "function": info.function,
            "call_site": info.call_site,
            "signature": _signature(plan._specs[info.idx].fn),
            "section": info.section,
            "deps": list(info.deps),
        }
        if result is not None:
            state = result.states.get(info.key)
            trials = result.trials.get(info.key, [])
            last = trials[-1] if trials else None
            durations = [t.duration for t in trials if t.duration is not None]
            d.update(
                state="" if state is None else state.value,
                duration=_duration(sum(durations)) if durations else "",
                attempts=len(trials),
                worker=last.worker if last is not None else "",
                error=_error_text(last),
                traceback=last.traceback if last is not None else "",
                log=_logs(info.key, trials, result),
                trials=[
                    {
                        "attempt": t.attempt,
                        "state": t.state.value,
                        "duration": _duration(t.duration),
                        "worker": t.worker,
                        "error": _error_text(t),
                        "log": t.log,
                    }
                    for t in trials
                ],
            )
            if last is not None and last.bundle is not None:
                d["bundle"] = last.bundle
            if info.key in result._items:
                d.update(_map_details(info.key, trials, result))
            elif last is not None and last.items is not None:  # a stream producer's
                d["items"] = f"{last.items:,} yielded"
        details[info.key] = d
    return details


def _map_details(key: str, trials: list[Trial], result: RunResult) -> dict[str, Any]:
    """A map node's items: how many in each state, and each failed item with its
    attempts, error and traceback; a map that ran no trial of its own shows no
    ``attempts`` of its own."""
    from ._dot import _items_line

    items = result._items[key]
    failed = [k for k in items if result.states[k] is State.FAILED]
    d: dict[str, Any] = {"items": _items_line(key, result.states)}
    if failed:
        d["failed_items"] = "\n".join(result._failure_line(k) for k in failed)
        bundles = [t.bundle for k in failed for t in result.trials[k][-1:] if t.bundle is not None]
        if bundles:
            d["bundle"] = "\n".join(bundles)
    if trials:
        return d  # its own trial failed (no list of items to map over): its own record stands
    d["attempts"] = None
    if failed:
        d["error"] = result._failure_line(key).partition(": ")[2]
        d["traceback"] = "\n".join(
            f"--- {k} attempt {t.attempt} ({t.state.value}) ---\n{t.traceback.rstrip()}"
            for k in failed
            for t in result.trials[k][-1:]
        )
    return d


def _timeline(result: RunResult) -> list[dict[str, Any]]:
    """Every trial, its start and end in seconds from the start of the run."""
    rows: list[dict[str, Any]] = []
    for key, trials in result.trials.items():
        for t in trials:
            end = t.end if t.end is not None else t.start
            rows.append(
                {
                    "key": key,
                    "attempt": t.attempt,
                    "state": t.state.value,
                    "worker": t.worker or "?",
                    "start": max(0.0, t.start - result.start),
                    "end": max(0.0, end - result.start),
                    "duration": _duration(t.duration),
                }
            )
    rows.sort(key=lambda r: (r["start"], r["key"], r["attempt"]))
    return rows


def _summary(plan: CompiledGraph, result: RunResult | None) -> dict[str, Any]:
    if result is None:
        return {"nodes": len(plan), "sections": len(plan.sections)}
    counts = Counter(s.value for k, s in result.states.items() if not result._is_item(k))
    item_counts = Counter(result.states[k].value for keys in result._items.values() for k in keys)
    return {
        "nodes": len(plan),
        "sections": len(plan.sections),
        "ok": result.ok,
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
    """SVG group id -> node key (or ``section:<path>`` for a collapsed section)."""
    index = plan._index
    ids: dict[str, str] = {}
    for gid, title in _SVG_NODE.findall(svg):
        gid, title = html.unescape(gid), html.unescape(title)
        bare = gid.removeprefix("collapsed-")
        if bare.startswith("node:") and bare[len("node:") :] in index:
            ids[gid] = bare[len("node:") :]
        elif bare.startswith("section:"):
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
    from ._dot import STATE_COLOURS

    colours = {**STATE_COLOURS, "crashed": "#c77dd6", "running": "#9fc5f8"}
    return "\n".join(f".st-{state} {{ background: {colour}; }}" for state, colour in colours.items())


def to_html(obj: CompiledGraph | RunResult, path: str | PathLike[str]) -> None:
    """Write ``obj`` (a plan or a run's result) as one self-contained HTML page.

    The picture starts with every section expanded; when the plan has sections, a
    second picture with them collapsed is embedded too, and a button switches.

    Args:
        obj: a :class:`~dagexec.CompiledGraph` or a :class:`~dagexec.RunResult`.
        path: the file to write, e.g. ``"report.html"``; an existing file is replaced.

    Raises:
        TypeError: when ``obj`` is neither a plan nor a result.
        RuntimeError: when Graphviz's ``dot`` program is not installed; nothing is
            written.
        OSError: when the file cannot be written; an existing file is left as it was.
    """
    from ._dot import to_dot

    plan, result = _split(obj)
    out = Path(path)
    svg = _render_svg(to_dot(obj, expand=True))
    ids = _svg_ids(svg, plan)
    collapsed = ""
    if plan.sections:
        # ids must stay unique in the page: the second picture's get a prefix
        collapsed = _render_svg(to_dot(obj, collapse=True)).replace('<g id="', '<g id="collapsed-')
        ids.update(_svg_ids(collapsed, plan))
    data: dict[str, Any] = {
        "graph": plan.name,
        "kind": "plan" if result is None else "result",
        "ids": ids,
        "nodes": _node_details(plan, result),
        "trials": [] if result is None else _timeline(result),
        "summary": _summary(plan, result),
    }
    title = f"{'run of ' if result is not None else ''}graph {plan.name}"
    page = (
        _PAGE.replace("@@TITLE@@", html.escape(title))
        .replace("@@KIND@@", data["kind"])
        .replace("@@CSS@@", _CSS + _state_css())
        .replace("@@SVG@@", svg)
        .replace("@@COLLAPSED@@", collapsed)
        .replace("@@HAS_SECTIONS@@", "" if collapsed else " hidden")
        .replace("@@DATA@@", _json_for_script(data))
        .replace("@@JS@@", _JS)
    )
    write_atomic(out, [page.encode("utf-8")])


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>@@TITLE@@</title>
<style>@@CSS@@</style>
</head>
<body class="@@KIND@@">
<header>
<h1 id="title">@@TITLE@@</h1>
<p id="summary"></p>
<input id="search" type="search" placeholder="search keys, tasks, functions" autocomplete="off">
<span id="search-count"></span>
</header>
<main>
<section id="picture">
<button id="toggle-sections" type="button"@@HAS_SECTIONS@@>collapse sections</button>
<div id="view-expanded" class="view">@@SVG@@</div>
<div id="view-collapsed" class="view" hidden>@@COLLAPSED@@</div>
</section>
<aside id="details">
<p id="details-empty">Click a node to see its details.</p>
<dl id="details-fields" hidden>
<div class="row" data-field="key"><dt>key</dt><dd id="detail-key"></dd></div>
<div class="row" data-field="task"><dt>task</dt><dd id="detail-task"></dd></div>
<div class="row" data-field="function"><dt>function</dt><dd id="detail-function"></dd></div>
<div class="row" data-field="call_site"><dt>file:line</dt><dd id="detail-call_site"></dd></div>
<div class="row" data-field="signature"><dt>signature</dt><dd id="detail-signature"></dd></div>
<div class="row" data-field="section"><dt>section</dt><dd id="detail-section"></dd></div>
<div class="row" data-field="deps"><dt>waits for</dt><dd id="detail-deps"></dd></div>
<div class="row" data-field="state"><dt>state</dt><dd id="detail-state"></dd></div>
<div class="row" data-field="duration"><dt>duration</dt><dd id="detail-duration"></dd></div>
<div class="row" data-field="attempts"><dt>attempts</dt><dd id="detail-attempts"></dd></div>
<div class="row" data-field="items"><dt>items</dt><dd id="detail-items"></dd></div>
<div class="row" data-field="worker"><dt>worker</dt><dd id="detail-worker"></dd></div>
<div class="row" data-field="error"><dt>error</dt><dd id="detail-error"></dd></div>
<div class="row" data-field="failed_items"><dt>failed items</dt><dd><pre id="detail-failed_items"></pre></dd></div>
<div class="row" data-field="bundle"><dt>repro bundle</dt><dd><pre id="detail-bundle"></pre></dd></div>
<div class="row" data-field="traceback"><dt>traceback</dt><dd><pre id="detail-traceback"></pre></dd></div>
<div class="row" data-field="log"><dt>log</dt><dd><pre id="detail-log"></pre></dd></div>
</dl>
</aside>
</main>
<section id="timeline-section" class="result-only">
<h2>Timeline</h2>
<div id="timeline"></div>
</section>
<section id="errors-section" class="result-only">
<h2>Errors</h2>
<div id="errors"></div>
</section>
<script type="application/json" id="dagexec-data">@@DATA@@</script>
<script>@@JS@@</script>
</body>
</html>
"""

_CSS = """
[hidden] { display: none !important; }
body { font-family: Helvetica, Arial, sans-serif; margin: 0; color: #222; }
header { padding: 8px 16px; border-bottom: 1px solid #ddd; display: flex; gap: 16px; align-items: center; flex-wrap: wrap; }
header h1 { font-size: 18px; margin: 0; }
#summary { margin: 0; color: #555; }
#search { margin-left: auto; width: 18em; }
main { display: flex; align-items: flex-start; }
#picture { flex: 1; overflow: auto; padding: 8px; max-height: 80vh; }
#picture svg { max-width: 100%; height: auto; }
#details { width: 30em; padding: 8px 16px; border-left: 1px solid #ddd; max-height: 80vh; overflow: auto; }
#details dl { margin: 0; }
#details .row { display: flex; gap: 8px; padding: 2px 0; }
#details dt { width: 6em; flex: none; color: #666; }
#details dd { margin: 0; word-break: break-all; }
#details pre { margin: 0; white-space: pre-wrap; font-size: 12px; }
body.plan .result-only { display: none; }
g.node { cursor: pointer; }
g.node.selected polygon, g.node.selected ellipse, g.node.selected path { stroke: #1565c0; stroke-width: 3; }
g.node.dim { opacity: 0.25; }
section h2 { font-size: 15px; margin: 12px 16px 4px; }
#timeline { margin: 0 16px; }
.lane { display: flex; align-items: center; height: 18px; margin: 2px 0; }
.lane-name { width: 12em; flex: none; font-size: 12px; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.lane-track { position: relative; flex: 1; height: 100%; background: #f4f4f4; }
.bar { position: absolute; top: 2px; bottom: 2px; min-width: 2px; cursor: pointer; border-radius: 2px; }
.bar.selected { outline: 2px solid #1565c0; }
#errors { margin: 0 16px 16px; }
#errors details { margin: 4px 0; }
#errors pre { white-space: pre-wrap; font-size: 12px; background: #fafafa; padding: 4px; }
.error-key { font-weight: bold; cursor: pointer; color: #1565c0; }
"""

_JS = r"""
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("dagexec-data").textContent);
  var groups = {};  // key -> [svg <g>]
  Object.keys(data.ids).forEach(function (gid) {
    var g = document.getElementById(gid), key = data.ids[gid];
    if (!g) { return; }
    if (key.indexOf("section:") === 0) {  // a collapsed section: open it
      g.addEventListener("click", function () { expandTo(key); });
      return;
    }
    (groups[key] = groups[key] || []).push(g);
    g.addEventListener("click", function () { select(key); });
  });

  var toggle = document.getElementById("toggle-sections");
  function showCollapsed(yes) {
    document.getElementById("view-expanded").hidden = yes;
    document.getElementById("view-collapsed").hidden = !yes;
    toggle.textContent = yes ? "expand sections" : "collapse sections";
  }
  toggle.addEventListener("click", function () {
    showCollapsed(document.getElementById("view-collapsed").hidden);
  });
  function expandTo(sectionId) {
    showCollapsed(false);
    var cluster = document.getElementById(sectionId);
    if (cluster && cluster.scrollIntoView) { cluster.scrollIntoView({block: "center"}); }
  }

  function text(id, value) { document.getElementById(id).textContent = value; }

  function select(key) {
    var item = /^(.*)\[\d+\]$/.exec(key);
    if (!data.nodes[key] && item) { key = item[1]; }  // a map's item: its map node
    var d = data.nodes[key];
    if (!d) { return; }
    document.querySelectorAll(".selected").forEach(function (e) { e.classList.remove("selected"); });
    (groups[key] || []).forEach(function (g) { g.classList.add("selected"); });
    document.querySelectorAll('.bar').forEach(function (b) {
      if (b.dataset.key === key) { b.classList.add("selected"); }
    });
    document.getElementById("details-empty").hidden = true;
    document.getElementById("details-fields").hidden = false;
    document.getElementById("details").dataset.key = key;
    document.querySelectorAll("#details .row").forEach(function (row) {
      var field = row.dataset.field, value = d[field];
      if (Array.isArray(value)) { value = value.join(", "); }
      var shown = value !== undefined && value !== null && value !== "";
      row.hidden = !shown;
      text("detail-" + field, shown ? String(value) : "");
    });
    if (window.location.hash !== "#" + encodeURIComponent(key)) {
      history.replaceState(null, "", "#" + encodeURIComponent(key));
    }
  }

  function summary() {
    var s = data.summary, parts = [s.nodes + " nodes"];
    if (s.sections) { parts.push(s.sections + " sections"); }
    if (data.kind === "result") {
      parts.push(s.ok ? "ok" : "failed");
      parts.push(s.duration);
      Object.keys(s.counts).forEach(function (k) { parts.push(s.counts[k] + " " + k); });
    }
    var line = parts.join(", ");
    if (s.items) {  // a map's items are counted apart from the nodes
      var items = Object.keys(s.items).map(function (k) { return s.items[k] + " " + k; });
      line += " \u00b7 " + s.n_items + " map item" + (s.n_items === 1 ? "" : "s") +
        (items.length ? ": " + items.join(", ") : "");
    }
    text("summary", line);
  }

  function timeline() {
    var box = document.getElementById("timeline"), lanes = {}, order = [], total = 0;
    data.trials.forEach(function (t) {
      if (!(t.worker in lanes)) { lanes[t.worker] = []; order.push(t.worker); }
      lanes[t.worker].push(t);
      total = Math.max(total, t.end);
    });
    total = total || 1;
    order.forEach(function (worker) {
      var lane = document.createElement("div"), name = document.createElement("div"),
          track = document.createElement("div");
      lane.className = "lane"; name.className = "lane-name"; track.className = "lane-track";
      name.textContent = worker; name.title = worker;
      lanes[worker].forEach(function (t) {
        var bar = document.createElement("div");
        bar.className = "bar st-" + t.state;
        bar.dataset.key = t.key;
        bar.style.left = (100 * t.start / total) + "%";
        bar.style.width = (100 * (t.end - t.start) / total) + "%";
        bar.title = t.key + " attempt " + t.attempt + ": " + t.state + " " + t.duration;
        bar.addEventListener("click", function () { select(t.key); });
        track.appendChild(bar);
      });
      lane.appendChild(name); lane.appendChild(track); box.appendChild(lane);
    });
  }

  function errors() {
    var box = document.getElementById("errors"), n = 0;
    Object.keys(data.nodes).forEach(function (key) {
      var d = data.nodes[key];
      if (!d.error) { return; }
      n += 1;
      var det = document.createElement("details"), sum = document.createElement("summary"),
          k = document.createElement("span"), msg = document.createElement("span"),
          pre = document.createElement("pre");
      det.className = "error"; det.dataset.key = key;
      k.className = "error-key"; k.textContent = key;
      k.addEventListener("click", function (ev) { ev.preventDefault(); select(key); });
      var tried = d.attempts === null || d.attempts === undefined ? "" : " after " + d.attempts + " attempt(s)";
      msg.textContent = " (" + d.state + tried + "): " + d.error;
      pre.textContent = (d.failed_items ? d.failed_items + "\n\n" : "") + (d.traceback || d.error);
      sum.appendChild(k); sum.appendChild(msg); det.appendChild(sum); det.appendChild(pre);
      if (d.log) {
        var log = document.createElement("pre");
        log.className = "error-log"; log.textContent = "log:\n" + d.log;
        det.appendChild(log);
      }
      box.appendChild(det);
    });
    if (!n) { box.textContent = "No errors."; }
  }

  function search(query) {
    var q = query.trim().toLowerCase(), hits = [];
    Object.keys(data.nodes).forEach(function (key) {
      var d = data.nodes[key];
      var hit = !q || [d.key, d.task, d.function, d.call_site].some(function (v) {
        return v.toLowerCase().indexOf(q) >= 0;
      });
      if (hit && q) { hits.push(key); }
      (groups[key] || []).forEach(function (g) { g.classList.toggle("dim", !hit); });
    });
    text("search-count", q ? hits.length + " found" : "");
    return hits;
  }

  var box = document.getElementById("search");
  box.addEventListener("input", function () { search(box.value); });
  box.addEventListener("keydown", function (ev) {
    if (ev.key === "Enter") { var hits = search(box.value); if (hits.length) { select(hits[0]); } }
  });

  summary();
  if (data.kind === "result") { timeline(); errors(); }
  var start = decodeURIComponent(window.location.hash.slice(1));
  if (start && data.nodes[start]) { select(start); }
})();
"""
