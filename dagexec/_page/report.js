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
