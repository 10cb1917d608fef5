/**
 * The dashboard page: one HTML document with its CSS and JS inline, no build step, nothing fetched
 * from elsewhere (gateways often run where there is no internet). It lives in a TS module rather than
 * a .html file so that `tsc` puts it in dist/ with the code that serves it.
 *
 * The script talks to two endpoints beside the page: `api/events` (Server-Sent Events: one `state`,
 * then batched `update`s) and, for scripts, `api/state`. Everything it shows comes from the bus, where
 * anyone may publish: it is written with textContent only, never as HTML, and the page's CSP allows
 * exactly this script and this style (by hash) and connections to its own origin.
 *
 * Keep backticks and dollar-brace out of STYLE, BODY and SCRIPT: they are template literals.
 */
import { createHash } from "node:crypto";

const STYLE = `
:root {
  --bg: #f6f7f9; --panel: #fff; --text: #1d2330; --muted: #6b7280; --line: #e3e6eb;
  --accent: #2f6fde; --ok: #1f8a4c; --warn: #b7791f; --bad: #c53030; --chip: #eef2f8;
  --mono: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
}
@media (prefers-color-scheme: dark) {
  :root { --bg: #12151b; --panel: #1a1f27; --text: #e3e7ee; --muted: #8c95a3; --line: #2a313c;
          --accent: #6ea0ff; --ok: #45c07a; --warn: #e0a84a; --bad: #f06a6a; --chip: #242b36; }
}
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--text); font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; }
header { display: flex; align-items: center; gap: 12px; flex-wrap: wrap; padding: 12px 20px; background: var(--panel); border-bottom: 1px solid var(--line); }
header h1 { font-size: 17px; margin: 0; }
header .id { font-family: var(--mono); color: var(--muted); font-size: 12px; }
header .spacer { flex: 1; }
main { padding: 16px 20px 24px; display: grid; grid-template-columns: 2fr 3fr; gap: 16px; }
section { background: var(--panel); border: 1px solid var(--line); border-radius: 8px; padding: 12px 14px; min-width: 0; }
section.wide { grid-column: 1 / -1; }
@media (max-width: 900px) { main { grid-template-columns: 1fr; } }
h2 { font-size: 13px; text-transform: uppercase; letter-spacing: .04em; color: var(--muted); margin: 0 0 10px; display: flex; align-items: center; gap: 8px; }
h2 .count { font-weight: normal; text-transform: none; letter-spacing: 0; }
.counters { display: grid; grid-template-columns: repeat(6, 1fr); gap: 12px; grid-column: 1 / -1; }
@media (max-width: 900px) { .counters { grid-template-columns: repeat(3, 1fr); } }
.counter { background: var(--panel); border: 1px solid var(--line); border-radius: 8px; padding: 10px 14px; }
.counter .label { color: var(--muted); font-size: 12px; }
.counter .value { font-size: 22px; font-weight: 600; font-variant-numeric: tabular-nums; }
.counter .sub { color: var(--muted); font-size: 12px; font-variant-numeric: tabular-nums; }
.counter.bad .value { color: var(--bad); }
.pill { display: inline-block; padding: 1px 8px; border-radius: 999px; font-size: 12px; border: 1px solid var(--line); color: var(--muted); white-space: nowrap; }
.pill.ok { color: var(--ok); border-color: currentColor; }
.pill.warn { color: var(--warn); border-color: currentColor; }
.pill.bad { color: var(--bad); border-color: currentColor; }
table { width: 100%; border-collapse: collapse; font-variant-numeric: tabular-nums; }
th { white-space: nowrap; text-align: left; font-weight: 600; color: var(--muted); font-size: 12px; padding: 4px 8px; border-bottom: 1px solid var(--line); position: sticky; top: 0; background: var(--panel); }
td { padding: 4px 8px; border-bottom: 1px solid var(--line); vertical-align: top; white-space: nowrap; }
td.mono, .mono { font-family: var(--mono); font-size: 12px; }
td.num { text-align: right; }
td.msg { white-space: normal; overflow-wrap: anywhere; min-width: 220px; }
td.wrap { white-space: normal; overflow-wrap: anywhere; max-width: 240px; }
.empty { color: var(--muted); font-style: italic; padding: 8px 0; }
.services { display: grid; grid-template-columns: repeat(auto-fill, minmax(560px, 1fr)); gap: 12px; }
.service table { margin-top: 2px; }
.service { border: 1px solid var(--line); border-radius: 8px; padding: 10px 12px; }
.service h3 { margin: 0 0 6px; font-size: 15px; display: flex; gap: 8px; align-items: baseline; flex-wrap: wrap; }
.service h3 .meta { color: var(--muted); font-size: 12px; font-weight: normal; }
.tools { list-style: none; margin: 8px 0 0; padding: 0; display: flex; flex-wrap: wrap; gap: 4px; }
.tools li { background: var(--chip); border-radius: 4px; padding: 1px 6px; font-family: var(--mono); font-size: 12px; }
.status-ready { color: var(--ok); }
.status-starting, .status-degraded { color: var(--warn); }
.status-stopping { color: var(--bad); }
.scroll { max-height: 460px; overflow: auto; }
.scroll.short { max-height: 260px; }
.controls { display: flex; gap: 12px; align-items: center; flex-wrap: wrap; margin-bottom: 8px; font-size: 13px; }
.controls input[type=search] { padding: 3px 8px; border: 1px solid var(--line); border-radius: 6px; background: var(--bg); color: var(--text); min-width: 220px; }
button { font: inherit; padding: 2px 10px; border: 1px solid var(--line); border-radius: 6px; background: var(--bg); color: var(--text); cursor: pointer; }
.dir-out { color: var(--accent); }
.dir-in { color: var(--ok); }
.type { font-family: var(--mono); font-size: 12px; }
.type-error_notification, .type-no_responders, .type-malformed { color: var(--bad); }
.type-prompt_request { color: var(--accent); }
.type-prompt_response { color: var(--ok); }
.code { font-family: var(--mono); font-size: 12px; color: var(--bad); }
tr.fresh td { animation: fresh 1.2s ease-out; }
@keyframes fresh { from { background: rgba(47, 111, 222, .16); } to { background: transparent; } }
footer { color: var(--muted); font-size: 12px; padding: 0 20px 20px; }
`;

const BODY = `
<header>
  <h1>dmcp gateway</h1>
  <span class="id" id="gateway-id">…</span>
  <span class="spacer"></span>
  <span class="pill" id="gateway-ready">registry</span>
  <span class="pill" id="gateway-bus">bus</span>
  <span class="pill" id="gateway-sessions">0 sessions</span>
  <span class="pill" id="gateway-cache" title="the gateway cache: hits (local, shared, joined), misses, evictions, bytes held">cache</span>
  <span class="pill warn" id="connection">connecting…</span>
</header>
<main>
  <div class="counters">
    <div class="counter"><div class="label">Services</div><div class="value" id="count-services">0</div><div class="sub" id="count-replicas">0 replicas</div></div>
    <div class="counter"><div class="label">Calls in flight</div><div class="value" id="count-inflight">0</div><div class="sub">at this gateway</div></div>
    <div class="counter"><div class="label">Calls</div><div class="value" id="count-calls">0</div><div class="sub" id="count-ok">0 ok</div></div>
    <div class="counter" id="failed-card"><div class="label">Failed calls</div><div class="value" id="count-failed">0</div><div class="sub" id="count-cancelled">0 cancelled</div></div>
    <div class="counter"><div class="label">Bus messages</div><div class="value" id="count-messages">0</div><div class="sub" id="count-rate">0 msg/s</div></div>
    <div class="counter"><div class="label">Bus errors</div><div class="value" id="count-bus-errors">0</div><div class="sub" id="count-malformed">0 malformed</div></div>
  </div>
  <section class="wide">
    <h2>Services <span class="count" id="services-summary"></span></h2>
    <div class="services" id="services"></div>
  </section>
  <section>
    <h2>Calls in flight</h2>
    <div class="scroll short">
      <table><thead><tr><th>Started</th><th>Service</th><th>Method</th><th>Target</th><th>Via</th><th>Running</th></tr></thead>
      <tbody id="calls"></tbody></table>
    </div>
  </section>
  <section>
    <h2>Recent errors</h2>
    <div class="scroll short">
      <table><thead><tr><th>Time</th><th>Source</th><th>Code</th><th>Where</th><th>Message</th></tr></thead>
      <tbody id="errors"></tbody></table>
    </div>
  </section>
  <section class="wide">
    <h2>Bus traffic <span class="count">seen by this gateway: its requests and their replies, heartbeats, context updates, dmcp.v1.err.&gt;</span></h2>
    <div class="controls">
      <button type="button" id="pause">Pause</button>
      <label><input type="checkbox" id="hide-heartbeats"> hide heartbeats</label>
      <input type="search" id="filter" placeholder="filter: subject, type, sender, correlation id">
      <span class="mono" id="traffic-summary"></span>
    </div>
    <div class="scroll">
      <table><thead><tr><th>Time</th><th></th><th>Subject</th><th>Type</th><th>Sender</th><th>Size</th><th>Correlation id</th></tr></thead>
      <tbody id="traffic"></tbody></table>
    </div>
  </section>
</main>
<footer>Metadata only: payloads (arguments, results, context data) never leave the gateway. Live over Server-Sent Events; JSON snapshot at <span class="mono">api/state</span>.</footer>
`;

const SCRIPT = String.raw`
"use strict";
(function () {
  var base = location.pathname.replace(/\/*$/, "/");
  var state = { services: [], calls: [], errors: [], traffic: [], counters: {}, gateway: null, limits: { traffic: 500, errors: 100 } };
  var clockOffset = 0;       // server time minus browser time
  var lastSeq = 0;           // newest traffic or error entry shown: updates may repeat what the snapshot had
  var paused = false;
  var rate = { at: 0, messages: 0 };
  var MAX_ROWS = 300;

  function $(id) { return document.getElementById(id); }

  // Builds an element; text goes in as textContent, never as HTML (bus data is untrusted).
  function el(tag, props, children) {
    var node = document.createElement(tag);
    if (props) {
      Object.keys(props).forEach(function (key) {
        var value = props[key];
        if (value === undefined || value === null) return;
        if (key === "text") node.textContent = String(value);
        else if (key === "class") node.className = value;
        else node.setAttribute(key, String(value));
      });
    }
    (children || []).forEach(function (child) { if (child) node.appendChild(child); });
    return node;
  }
  function td(text, cls, extra) { return el("td", Object.assign({ text: text, class: cls }, extra || {})); }
  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }
  function now() { return Date.now() + clockOffset; }
  function pad(n, width) { var s = String(n); while (s.length < (width || 2)) s = "0" + s; return s; }
  function clock(ms) { var d = new Date(ms - clockOffset); return pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds()) + "." + pad(d.getMilliseconds(), 3); }
  function age(ms) {
    var s = Math.max(0, now() - ms) / 1000;
    if (s < 10) return s.toFixed(1) + " s";
    if (s < 120) return Math.round(s) + " s";
    return Math.round(s / 60) + " min";
  }
  function bytes(n) { return n < 1024 ? n + " B" : n < 1048576 ? (n / 1024).toFixed(1) + " KiB" : (n / 1048576).toFixed(1) + " MiB"; }
  function plural(n, word) { return n + " " + word + (n === 1 ? "" : "s"); }
  function emptyRow(columns, text) { return el("tr", { class: "empty-row" }, [el("td", { colspan: columns, class: "empty", text: text })]); }
  // A cell whose text says how long ago (or for how long) something happened, refreshed every half second.
  function since(ms, suffix) { return el("td", { class: "num", "data-since": ms, "data-suffix": suffix || "", text: age(ms) + (suffix || "") }); }

  function renderGateway() {
    var g = state.gateway;
    if (!g) return;
    $("gateway-id").textContent = g.id;
    setPill($("gateway-ready"), g.ready ? "ok" : "warn", g.ready ? "ready" : "not ready");
    setPill($("gateway-bus"), g.busConnected ? "ok" : "bad", g.busConnected ? "bus connected" : "bus disconnected");
    $("gateway-sessions").textContent = plural(g.sessions, "MCP session");
    var k = g.cache;
    if (!k) { setPill($("gateway-cache"), "warn", "cache off"); return; }
    var hits = k.hits.local + k.hits.shared + k.hits.inflight;
    $("gateway-cache").textContent = "cache: " + plural(hits, "hit") + ", " + k.misses + (k.misses === 1 ? " miss" : " misses") + ", " + plural(k.evictions, "eviction") + ", " + bytes(k.bytes) + " of " + bytes(k.maxBytes) + (k.shared ? "" : " (local only)");
  }
  function setPill(node, kind, text) { node.className = "pill " + kind; node.textContent = text; }

  function renderCounters() {
    var c = state.counters;
    var replicas = state.services.reduce(function (n, s) { return n + s.replicas.length; }, 0);
    $("count-services").textContent = state.services.length;
    $("count-replicas").textContent = plural(replicas, "replica");
    $("count-inflight").textContent = c.inflight || 0;
    $("count-calls").textContent = c.calls || 0;
    $("count-ok").textContent = (c.ok || 0) + " ok";
    $("count-failed").textContent = c.failed || 0;
    $("failed-card").className = "counter" + (c.failed ? " bad" : "");
    $("count-cancelled").textContent = (c.cancelled || 0) + " cancelled";
    $("count-messages").textContent = c.busMessages || 0;
    $("count-bus-errors").textContent = c.busErrors || 0;
    $("count-malformed").textContent = (c.malformed || 0) + " malformed";
    var t = Date.now();
    if (rate.at && t - rate.at >= 1000) {
      $("count-rate").textContent = ((c.busMessages - rate.messages) * 1000 / (t - rate.at)).toFixed(1) + " msg/s, " + bytes(c.busBytes || 0);
      rate = { at: t, messages: c.busMessages };
    } else if (!rate.at) rate = { at: t, messages: c.busMessages || 0 };
  }

  function renderServices() {
    var root = $("services");
    clear(root);
    var services = state.services;
    $("services-summary").textContent = services.length ? plural(services.length, "service") : "";
    if (!services.length) { root.appendChild(el("div", { class: "empty", text: "No services on the bus." })); return; }
    services.forEach(function (s) {
      var rows = s.replicas.map(function (r) {
        return el("tr", { "data-instance": r.instance }, [
          td(r.instance, "mono"),
          td(r.status, "status-" + r.status),
          td(r.inflight === null ? "–" : r.inflight, "num"),
          td(r.handled === null ? "–" : r.handled, "num"),
          r.heartbeatSeen ? since(r.lastSeen, " ago") : td("no heartbeat yet", "num"),
          td(r.server, "mono"),
        ]);
      });
      var tools = s.tools.map(function (t) { return el("li", { text: t.exposedAs, title: t.description || t.name }); });
      root.appendChild(el("article", { class: "service", "data-service": s.name }, [
        el("h3", null, [
          el("span", { text: s.name }),
          el("span", { class: "meta", text: plural(s.replicas.length, "replica") + " · " + plural(s.tools.length, "tool") + " · " + plural(s.resources, "resource") + " · " + plural(s.prompts, "prompt") + " · " + s.calls + " calls here, " + s.failed + " failed" }),
        ]),
        el("table", null, [
          el("thead", null, [el("tr", null, ["Instance", "Status", "In flight", "Handled", "Last heartbeat", "Server"].map(function (h) { return el("th", { text: h }); }))]),
          el("tbody", null, rows),
        ]),
        tools.length ? el("ul", { class: "tools" }, tools) : el("div", { class: "empty", text: "no tools" }),
      ]));
    });
  }

  function renderCalls() {
    var body = $("calls");
    clear(body);
    if (!state.calls.length) { body.appendChild(emptyRow(6, "No calls in flight.")); return; }
    state.calls.slice().sort(function (a, b) { return a.startedAt - b.startedAt; }).forEach(function (c) {
      body.appendChild(el("tr", { "data-call": c.id }, [td(clock(c.startedAt), "mono"), td(c.service || "?"), td(c.method, "mono"), td(c.target, "mono"), td(c.transport), since(c.startedAt, "")]));
    });
  }

  function renderErrors() {
    var body = $("errors");
    clear(body);
    if (!state.errors.length) { body.appendChild(emptyRow(5, "No errors.")); return; }
    state.errors.slice().reverse().forEach(function (e) {
      var where = e.source === "gateway" ? [e.service, e.target || e.method].filter(Boolean).join(" / ") : [e.sender, e.subject].filter(Boolean).join(" on ");
      body.appendChild(el("tr", { "data-error": e.seq }, [
        td(clock(e.time), "mono"),
        el("td", null, [el("span", { class: "pill " + (e.source === "gateway" ? "warn" : "bad"), text: e.source })]),
        td(e.code, "code"),
        td(where, "mono wrap"),
        td(e.message + (e.durationMs !== undefined ? " (" + e.durationMs + " ms)" : ""), "msg"),
      ]));
    });
  }

  function visible(entry) {
    if ($("hide-heartbeats").checked && entry.type === "agent_heartbeat") return false;
    var filter = $("filter").value.trim().toLowerCase();
    if (!filter) return true;
    return [entry.subject, entry.type, entry.sender, entry.correlationId].some(function (v) { return String(v).toLowerCase().indexOf(filter) >= 0; });
  }
  function trafficRow(entry, fresh) {
    return el("tr", { class: fresh ? "fresh" : null, "data-seq": entry.seq, "data-type": entry.type }, [
      td(clock(entry.time), "mono"),
      td(entry.dir === "out" ? "→" : "←", "dir-" + entry.dir, { title: entry.dir === "out" ? "sent by this gateway" : "received" }),
      td(entry.subject, "mono"),
      td(entry.type, "type type-" + entry.type),
      td(entry.sender, "mono"),
      td(bytes(entry.size), "num"),
      td(entry.correlationId, "mono"),
    ]);
  }
  // Newest first; new rows go on top without rebuilding the table.
  function renderTraffic(fresh) {
    var body = $("traffic");
    if (!fresh) {
      clear(body);
      state.traffic.filter(visible).slice(-MAX_ROWS).reverse().forEach(function (entry) { body.appendChild(trafficRow(entry, false)); });
    } else {
      var placeholder = body.querySelector(".empty-row");
      if (placeholder) body.removeChild(placeholder);
      fresh.filter(visible).forEach(function (entry) { body.insertBefore(trafficRow(entry, true), body.firstChild); });
      while (body.childElementCount > MAX_ROWS) body.removeChild(body.lastChild);
    }
    if (!body.firstChild) body.appendChild(emptyRow(7, "Waiting for traffic…"));
    $("traffic-summary").textContent = (paused ? "paused · " : "") + state.traffic.length + " kept" + (state.counters.dropped ? ", " + state.counters.dropped + " skipped in bursts" : "");
  }

  function append(list, entries, limit) {
    entries.forEach(function (e) { list.push(e); });
    if (list.length > limit) list.splice(0, list.length - limit);
  }

  function applyState(s) {
    clockOffset = s.now - Date.now();
    state = s;
    lastSeq = 0;
    s.traffic.concat(s.errors).forEach(function (e) { lastSeq = Math.max(lastSeq, e.seq); });
    renderAll();
  }

  function applyUpdate(u) {
    clockOffset = u.now - Date.now();
    var seen = lastSeq;
    function isNew(e) { lastSeq = Math.max(lastSeq, e.seq); return e.seq > seen; }
    if (u.gateway) { state.gateway = u.gateway; renderGateway(); }
    if (u.services) { state.services = u.services; renderServices(); }
    if (u.calls) { state.calls = u.calls; renderCalls(); }
    if (u.counters) state.counters = u.counters;
    if (u.counters || u.services) renderCounters();
    if (u.errors) {
      append(state.errors, u.errors.filter(isNew), state.limits.errors);
      renderErrors();
    }
    if (u.traffic) {
      var fresh = u.traffic.filter(isNew);
      append(state.traffic, fresh, state.limits.traffic);
      if (!paused) renderTraffic(fresh);
    }
  }

  function renderAll() { renderGateway(); renderCounters(); renderServices(); renderCalls(); renderErrors(); renderTraffic(null); }

  function setConnection(kind, text) { setPill($("connection"), kind, text); }

  function connect() {
    var source = new EventSource(base + "api/events");
    source.addEventListener("state", function (event) { setConnection("ok", "live"); applyState(JSON.parse(event.data)); });
    source.addEventListener("update", function (event) { applyUpdate(JSON.parse(event.data)); });
    source.onerror = function () {
      if (source.readyState === EventSource.CLOSED) {
        // Refused (too many dashboards) or gone for good: try again later.
        setConnection("bad", "offline");
        setTimeout(connect, 5000);
      } else setConnection("warn", "reconnecting…");
    };
  }

  $("pause").addEventListener("click", function () {
    paused = !paused;
    $("pause").textContent = paused ? "Resume" : "Pause";
    renderTraffic(null);
  });
  $("hide-heartbeats").addEventListener("change", function () { renderTraffic(null); });
  $("filter").addEventListener("input", function () { renderTraffic(null); });
  setInterval(function () {
    document.querySelectorAll("[data-since]").forEach(function (cell) {
      cell.textContent = age(Number(cell.getAttribute("data-since"))) + cell.getAttribute("data-suffix");
    });
  }, 500);
  renderAll();
  connect();
})();
`;

export interface DashboardPage {
  html: string;
  /** A Content-Security-Policy that allows exactly the page's own script and style. */
  csp: string;
}

/** Builds the page and its CSP (hashes of the inline script and style); call once and reuse. */
export function dashboardPage(): DashboardPage {
  const hash = (text: string) => `'sha256-${createHash("sha256").update(text).digest("base64")}'`;
  const html =
    `<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<meta name="viewport" content="width=device-width, initial-scale=1">\n` +
    `<title>dmcp gateway · dashboard</title>\n<link rel="icon" href="data:,">\n<style>${STYLE}</style>\n</head>\n<body>${BODY}<script>${SCRIPT}</script>\n</body>\n</html>\n`;
  const csp = [
    "default-src 'none'",
    `script-src ${hash(SCRIPT)}`,
    `style-src ${hash(STYLE)}`,
    "connect-src 'self'",
    "img-src data:",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join("; ");
  return { html, csp };
}
