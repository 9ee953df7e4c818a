(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("dagexec-data").textContent);

  // -- the run's trials, rows made objects with their texts; the nodes filled from them ---
  var trials = data.trials.map(function (r, i) {
    var x = data.texts[i] || {};
    return {key: r[0], attempt: r[1], state: r[2], start: r[3], end: r[4], worker: r[5], duration: r[6],
            error: x.error || "", traceback: x.traceback || "", log: x.log || ""};
  });
  var trialsOf = {};  // key (a node's, a map item's) -> its trials, in order
  trials.forEach(function (t) { (trialsOf[t.key] = trialsOf[t.key] || []).push(t); });
  Object.keys(data.nodes).forEach(function (key) {  // what the panel shows that its trials say
    var d = data.nodes[key], own = trialsOf[key] || [], last = own[own.length - 1], f = data.functions[d.fn];
    d.key = key; d.function = f[0]; d.signature = f[1]; d.trials = own;
    if (!last) { return; }
    d.attempts = own.length; d.worker = last.worker;
    ["error", "traceback", "log"].forEach(function (k) { if (d[k] === undefined) { d[k] = last[k]; } });
  });
  var groups = {};  // key -> [svg <g>] that draw it
  var drawn = [];  // [svg <g>, the keys it draws]: what search and the filter fade
  var boxes = {}, members = {};  // a large plan drawn in groups: group -> its <g>, its keys
  Object.keys(data.ids).forEach(function (gid) {
    var g = document.getElementById(gid), key = data.ids[gid];
    if (!g) { return; }
    if (key.indexOf("section:") === 0) {  // a collapsed section: open it
      g.addEventListener("click", function () { expandTo(key); });
      return;
    }
    if (key.indexOf("group:") === 0) {  // a group of nodes: list them
      var n = Number(key.slice("group:".length));
      boxes[n] = g;
      g.addEventListener("click", function () { showGroup(n); });
      return;
    }
    (groups[key] = groups[key] || []).push(g);
    drawn.push([g, [key]]);
    g.addEventListener("click", function () { select(key); });
  });
  Object.keys(data.nodes).forEach(function (key) {
    var n = data.nodes[key].group;
    if (n !== undefined) { (members[n] = members[n] || []).push(key); groups[key] = boxes[n] ? [boxes[n]] : []; }
  });
  Object.keys(members).forEach(function (n) { if (boxes[n]) { drawn.push([boxes[n], members[n]]); } });

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
    centreOn(document.getElementById(sectionId));  // the section's cluster
  }

  function text(id, value) { document.getElementById(id).textContent = value; }

  // -- the picture: wheel to zoom, drag to move, fit to see all; the selected node centred
  function shown() { return document.querySelector(".view:not([hidden]) svg"); }
  function view(svg) { var v = svg.viewBox.baseVal; return [v.x, v.y, v.width, v.height]; }
  function setView(svg, v) {
    svg.setAttribute("viewBox", v.join(" "));
    document.getElementById("picture-fit").hidden = svg.getAttribute("viewBox") === svg.dataset.fit;
  }
  function toSvg(svg, x, y) {  // a point of the screen in the picture's coordinates
    var p = svg.createSVGPoint(); p.x = x; p.y = y;
    return p.matrixTransform(svg.getScreenCTM().inverse());
  }
  function centre(key) {
    var svg = shown();
    centreOn((groups[key] || []).filter(function (e) { return svg && svg.contains(e); })[0]);
  }
  function centreOn(g) {  // move the shown picture to put g in its middle
    var svg = shown();
    if (!g || !svg || !svg.contains(g)) { return; }
    var r = g.getBoundingClientRect(), c = toSvg(svg, r.left + r.width / 2, r.top + r.height / 2), v = view(svg);
    setView(svg, [c.x - v[2] / 2, c.y - v[3] / 2, v[2], v[3]]);
  }
  function navigable() {
    var picture = document.getElementById("picture"), drag = null, moved = false;
    document.querySelectorAll(".view svg").forEach(function (svg) {
      svg.dataset.fit = view(svg).join(" ");  // as setView writes it
      svg.setAttribute("viewBox", svg.dataset.fit);
      svg.removeAttribute("width"); svg.removeAttribute("height");
      svg.addEventListener("click", function (ev) {  // the end of a drag selects nothing
        if (moved) { ev.stopPropagation(); moved = false; }
      }, true);
    });
    picture.addEventListener("wheel", function (ev) {
      var svg = shown();
      if (!svg) { return; }
      ev.preventDefault();
      var k = ev.deltaY > 0 ? 1.25 : 0.8, p = toSvg(svg, ev.clientX, ev.clientY), v = view(svg);
      setView(svg, [p.x - (p.x - v[0]) * k, p.y - (p.y - v[1]) * k, v[2] * k, v[3] * k]);
    }, {passive: false});
    picture.addEventListener("mousedown", function (ev) {
      var svg = shown();
      if (svg && svg.contains(ev.target)) { drag = {x: ev.clientX, y: ev.clientY, v: view(svg), k: svg.getScreenCTM().a}; moved = false; }
    });
    window.addEventListener("mousemove", function (ev) {
      if (!drag) { return; }
      var dx = ev.clientX - drag.x, dy = ev.clientY - drag.y;
      if (Math.abs(dx) + Math.abs(dy) > 3) { moved = true; }
      if (moved) { setView(shown(), [drag.v[0] - dx / drag.k, drag.v[1] - dy / drag.k, drag.v[2], drag.v[3]]); }
    });
    window.addEventListener("mouseup", function () { drag = null; });
    document.getElementById("picture-fit").addEventListener("click", function () {
      var svg = shown(); setView(svg, svg.dataset.fit.split(" ").map(Number));
    });
  }

  function filterable() {  // show only the nodes in the chosen states (the others faded)
    var select = document.getElementById("filter"), present = {};
    Object.keys(data.nodes).forEach(function (k) { if (data.nodes[k].state) { present[data.nodes[k].state] = 1; } });
    Object.keys(present).sort().forEach(function (state) {
      select.appendChild(Object.assign(document.createElement("option"), {value: state, textContent: "only " + state}));
    });
    select.addEventListener("change", function () {
      var wanted = select.value ? select.value.split(" ") : null;
      drawn.forEach(function (x) {
        var out = wanted !== null && !x[1].some(function (k) { return wanted.indexOf(data.nodes[k].state) >= 0; });
        x[0].classList.toggle("filtered", out);
      });
    });
  }

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
    document.getElementById("details").dataset.key = key;
    centre(key);
    fill(d);
    entries("attempt-list", "attempt-entries", d.trials || [], attemptEntry);
    text("item-list-title", "items");
    entries("item-list", "item-entries", d.item_list || [], itemEntry);
    if (window.location.hash !== "#" + encodeURIComponent(key)) {
      history.replaceState(null, "", "#" + encodeURIComponent(key));
    }
  }

  function fill(d) {  // the panel's fields from d; those without a value hidden
    document.getElementById("details-empty").hidden = true;
    document.getElementById("details-fields").hidden = false;
    document.querySelectorAll("#details .row").forEach(function (row) {
      var field = row.dataset.field, value = d[field];
      if (Array.isArray(value)) { value = value.join(", "); }
      var shown = value !== undefined && value !== null && value !== "";
      row.hidden = !shown;
      text("detail-" + field, shown ? String(value) : "");
    });
  }

  // -- a group of a large plan's nodes: its name and counts, and its nodes, worst first --
  function showGroup(n) {
    var keys = members[n] || [], counts = {};
    keys.forEach(function (k) { var state = data.nodes[k].state; if (state) { counts[state] = (counts[state] || 0) + 1; } });
    var worst = data.groups.worst_first, order = worst.filter(function (state) { return counts[state]; });
    document.querySelectorAll(".selected").forEach(function (e) { e.classList.remove("selected"); });
    boxes[n].classList.add("selected");
    document.getElementById("details").dataset.key = "";
    fill({key: data.groups.names[n] + " \u00d7 " + count(keys.length), section: data.groups.sections[n],
          state: order.map(function (s) { return count(counts[s]) + " " + s; }).join(", ")});
    entries("attempt-list", "attempt-entries", [], attemptEntry);
    var rank = function (k) { var i = worst.indexOf(data.nodes[k].state); return i < 0 ? worst.length : i; };
    var listed = keys.map(function (k, i) { return [rank(k), i, k]; })
      .sort(function (a, b) { return a[0] - b[0] || a[1] - b[1]; }).slice(0, data.groups.listed)
      .map(function (x) { return x[2]; });
    text("item-list-title", "nodes");
    entries("item-list", "item-entries", listed, memberEntry);
    if (keys.length > listed.length) {
      document.getElementById("item-entries").appendChild(Object.assign(document.createElement("p"),
        {className: "more", textContent: "and " + (keys.length - listed.length) + " more: search finds any node"}));
    }
  }
  function memberEntry(key) {
    var d = data.nodes[key], row = document.createElement("div"), a = document.createElement("a");
    row.className = "member"; row.dataset.key = key;
    a.textContent = key; a.href = "#" + encodeURIComponent(key);
    a.addEventListener("click", function (ev) { ev.preventDefault(); select(key); });
    row.appendChild(a);
    row.appendChild(document.createTextNode([d.state, d.duration, d.error && d.error.split("\n")[0]]
      .filter(Boolean).map(function (x) { return " \u00b7 " + x; }).join("")));
    return row;
  }

  function count(n) { return n.toLocaleString("en-US"); }  // 10,000
  function plural(n, word) { return count(n) + " " + word + (n === 1 ? "" : "s"); }

  function facts() {  // fingerprint, versions, executors, start, inputs; what failed
    var s = data.summary, box = document.getElementById("facts"), shown = [
      ["fingerprint", s.fingerprint.slice(0, 12), s.fingerprint],
      ["dagexec", s.dagexec], ["Python", s.python]];
    if (data.kind === "result") {
      shown.push(["executors", s.executors.join(", ")], ["started", s.started]);
      Object.keys(s.inputs).forEach(function (name) { shown.push(["input " + name, s.inputs[name]]); });
    }
    shown.forEach(function (f) {
      var row = document.createElement("div"), dt = document.createElement("dt"), dd = document.createElement("dd");
      dt.textContent = f[0]; dd.textContent = f[1]; dd.title = f[2] || f[1]; row.dataset.fact = f[0];
      row.appendChild(dt); row.appendChild(dd); box.appendChild(row);
    });
    var list = document.getElementById("failed-list");
    (s.failed || []).forEach(function (key) {
      var a = document.createElement("a");
      a.textContent = key; a.href = "#" + encodeURIComponent(key);
      a.addEventListener("click", function (ev) { ev.preventDefault(); select(key); });
      list.appendChild(a);
    });
    list.hidden = !(s.failed && s.failed.length);
  }

  // -- the details panel's lists: each attempt, a map's items (each with its attempts) ---
  function entries(sectionId, boxId, list, make) {
    var box = document.getElementById(boxId);
    box.textContent = "";
    list.forEach(function (x) { box.appendChild(make(x)); });
    document.getElementById(sectionId).hidden = !list.length;
  }
  function pre(cls, value) { return Object.assign(document.createElement("pre"), {className: cls, textContent: value}); }
  function attemptEntry(t) {
    var det = document.createElement("details"), sum = document.createElement("summary");
    det.className = "attempt st-text-" + t.state;
    sum.textContent = "attempt " + t.attempt + " \u00b7 " + t.state + (t.duration ? " \u00b7 " + t.duration : "") +
      " \u00b7 " + (t.worker || "?") + " \u00b7 +" + secs(t.start) + (t.end === null ? "" : " \u2192 +" + secs(t.end));
    det.appendChild(sum);
    if (t.error) { det.appendChild(pre("attempt-error", t.error)); }
    if (t.traceback) { det.appendChild(pre("attempt-traceback", t.traceback)); }
    if (t.log) { det.appendChild(pre("attempt-log", "log:\n" + t.log)); }
    return det;
  }
  function itemEntry(x) {  // [key, state]
    var det = document.createElement("details"), sum = document.createElement("summary"),
        own = trialsOf[x[0]] || [], last = own[own.length - 1];
    det.className = "item"; det.dataset.key = x[0];
    sum.textContent = x[0] + " \u00b7 " + x[1] + " \u00b7 " + plural(own.length, "attempt") +
      (last && last.duration ? " \u00b7 " + last.duration : "") + (last && last.error ? " \u00b7 " + last.error : "");
    det.appendChild(sum);
    own.forEach(function (t) { det.appendChild(attemptEntry(t)); });
    if (last && last.error) { det.lastChild.open = true; }  // its error and traceback at once
    return det;
  }

  function summary() {
    var s = data.summary, parts = [plural(s.nodes, "node")];
    if (s.sections) { parts.push(plural(s.sections, "section")); }
    if (data.kind === "result") {
      parts.push(s.ok ? "ok" : "failed");
      parts.push(s.duration);
      Object.keys(s.counts).forEach(function (k) { parts.push(count(s.counts[k]) + " " + k); });
    }
    var line = parts.join(", ");
    if (s.items) {  // a map's items are counted apart from the nodes
      var items = Object.keys(s.items).map(function (k) { return count(s.items[k]) + " " + k; });
      line += " \u00b7 " + plural(s.n_items, "map item") +
        (items.length ? ": " + items.join(", ") : "");
    }
    text("summary", line);
  }

  // -- the timeline: a lane per worker, a bar per trial, a time axis; drag to zoom ------
  var span = {from: 0, to: 0}, total = 0;
  function ended(t) { return t.end === null ? t.start : t.end; }
  trials.forEach(function (t) { total = Math.max(total, ended(t)); });
  total = total || 1;

  function niceStep(range) {  // about five ticks: 1, 2 or 5 times a power of ten
    var raw = range / 5, p = Math.pow(10, Math.floor(Math.log10(raw))), m = raw / p;
    return p * (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10);
  }
  function secs(x) { return (Math.round(x * 1000) / 1000) + " s"; }
  function clock(x) { return new Date((data.summary.start + x) * 1000).toLocaleTimeString(); }

  function timeline(from, to) {
    span.from = from; span.to = to;
    var box = document.getElementById("timeline"), lanes = {}, order = [], width = to - from;
    box.textContent = "";
    var axis = document.createElement("div"), ticks = document.createElement("div");
    axis.className = "axis"; ticks.className = "ticks";
    axis.appendChild(Object.assign(document.createElement("div"),
      {className: "axis-name", textContent: "from " + clock(from)}));
    var step = niceStep(width);
    for (var x = Math.ceil(from / step) * step; x <= to + 1e-9; x += step) {
      var tick = document.createElement("span");
      tick.className = "tick"; tick.textContent = secs(x); tick.title = clock(x);
      tick.style.left = (100 * (x - from) / width) + "%";
      ticks.appendChild(tick);
    }
    axis.appendChild(ticks); box.appendChild(axis);
    trials.forEach(function (t) {
      if (!(t.worker in lanes)) { lanes[t.worker] = []; order.push(t.worker); }
      if (ended(t) >= from && t.start <= to) { lanes[t.worker].push(t); }
    });
    var bars = [];  // [bar, its share of the view's width]
    order.forEach(function (worker) {
      var lane = document.createElement("div"), name = document.createElement("div"),
          track = document.createElement("div");
      lane.className = "lane"; name.className = "lane-name"; track.className = "lane-track";
      name.textContent = worker; name.title = worker;
      lanes[worker].forEach(function (t) {
        var bar = document.createElement("div"), left = Math.max(t.start, from), right = Math.min(ended(t), to);
        bar.className = "bar st-" + t.state + (t.attempt > 1 ? " retry" : "");
        bar.dataset.key = t.key; bar.trial = t;
        bar.style.left = (100 * (left - from) / width) + "%";
        bar.style.width = (100 * (right - left) / width) + "%";
        bar.textContent = t.key;  // shown where it fits (CSS clips it, and hides it on thin bars)
        bars.push([bar, (right - left) / width]);
        track.appendChild(bar);
      });
      lane.appendChild(name); lane.appendChild(track); box.appendChild(lane);
    });
    var track = box.querySelector(".lane-track"), px = track ? track.clientWidth : 0;  // one layout, not one a bar
    var key = document.getElementById("details").dataset.key;
    bars.forEach(function (b) {
      if (b[1] * px < 48) { b[0].classList.add("narrow"); }
      if (key && b[0].dataset.key === key) { b[0].classList.add("selected"); }
    });
    document.getElementById("timeline-fit").hidden = from === 0 && to === total;
  }

  var tooltip = document.getElementById("tooltip");
  function tip(t, ev) {
    tooltip.textContent = t.key + "\nattempt " + t.attempt + " \u00b7 " + t.state + " \u00b7 " + t.duration +
      "\n" + secs(t.start) + " \u2192 " + secs(ended(t)) + " on " + t.worker +
      (t.error ? "\n" + t.error.split("\n")[0].slice(0, 200) : "");
    tooltip.hidden = false;
    tooltip.style.left = (ev.pageX + 12) + "px"; tooltip.style.top = (ev.pageY + 12) + "px";
  }

  function zoomable() {  // drag across the lanes to zoom into that time range; "fit" to see all
    var box = document.getElementById("timeline"), band = document.getElementById("timeline-band"), down = null;
    function barAt(ev) { var b = ev.target.closest && ev.target.closest(".bar"); return b && b.trial; }
    box.addEventListener("mousemove", function (ev) {  // the bars' tooltip and clicks, for all of them
      var t = barAt(ev);
      if (t) { tip(t, ev); } else { tooltip.hidden = true; }
    });
    box.addEventListener("mouseleave", function () { tooltip.hidden = true; });
    box.addEventListener("click", function (ev) { var t = barAt(ev); if (t) { select(t.key); } });
    function at(ev) {
      var track = box.querySelector(".ticks").getBoundingClientRect();
      var f = Math.min(1, Math.max(0, (ev.clientX - track.left) / track.width));
      return {x: Math.min(track.right, Math.max(track.left, ev.clientX)), t: span.from + f * (span.to - span.from)};
    }
    box.addEventListener("mousedown", function (ev) { down = at(ev); ev.preventDefault(); });
    window.addEventListener("mousemove", function (ev) {
      if (!down) { return; }
      var now = at(ev), r = box.parentNode.getBoundingClientRect();
      band.hidden = false;
      band.style.left = (Math.min(down.x, now.x) - r.left) + "px";
      band.style.width = Math.abs(now.x - down.x) + "px";
    });
    window.addEventListener("mouseup", function (ev) {
      if (!down) { return; }
      var now = at(ev), a = Math.min(down.t, now.t), b = Math.max(down.t, now.t);
      band.hidden = true;
      if (Math.abs(now.x - down.x) > 4 && b > a) { timeline(a, b); }
      down = null;
    });
    document.getElementById("timeline-fit").addEventListener("click", function () { timeline(0, total); });
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
        return (v || "").toLowerCase().indexOf(q) >= 0;
      });
      if (hit && q) { hits.push(key); }
    });
    var found = {};
    hits.forEach(function (k) { found[k] = true; });
    drawn.forEach(function (x) { x[0].classList.toggle("dim", !!q && !x[1].some(function (k) { return found[k]; })); });
    text("search-count", q ? hits.length + " found" : "");
    return hits;
  }

  var box = document.getElementById("search");
  box.addEventListener("input", function () { search(box.value); });
  box.addEventListener("keydown", function (ev) {
    if (ev.key === "Enter") { var hits = search(box.value); if (hits.length) { select(hits[0]); } }
  });

  summary();
  facts();
  navigable();
  if (data.kind === "result") { timeline(0, total); zoomable(); errors(); filterable(); }
  var start = decodeURIComponent(window.location.hash.slice(1));
  if (start && data.nodes[start]) { select(start); }
  document.body.dataset.drawn = String(performance.now());  // for bench/report_page.py
})();
