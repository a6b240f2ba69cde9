// weft dashboard: polls the JSON API every 2 s and draws the three sections with plain SVG,
// so the page works offline and ships inside the binary.
"use strict";

const COLORS = { ok: "#2e7d32", fail: "#c62828", p50: "#1565c0", p95: "#ef6c00", p99: "#6a1b9a" };
const PALETTE = ["#1565c0", "#ef6c00", "#6a1b9a", "#00838f", "#ad1457", "#558b2f", "#4e342e", "#283593"];
const REFRESH_MS = 2000;
const svgNS = "http://www.w3.org/2000/svg";

const state = { service: "", instance: "", window: "60" };

function $(id) { return document.getElementById(id); }

function fmtPct(v) { return v == null ? "–" : (v * 100).toFixed(v >= 0.9995 ? 0 : 1) + "%"; }
function fmtRps(v) { return v == null ? "–" : (v >= 100 ? v.toFixed(0) : v.toFixed(1)) + " rps"; }
// Two significant digits, whole from 10 ms up: the rule `weft stat` prints by (its `millis`).
function fmtMs(v) { return v == null ? "–" : v.toFixed(v >= 9.95 ? 0 : v >= 0.995 ? 1 : v >= 0.0995 ? 2 : 3) + " ms"; }
// Retries the budget refused are a count over the window.
function fmtCount(v) { return v == null ? "–" : String(Math.round(v)); }
function rateClass(v) { return v == null ? "" : v >= 0.99 ? "ok" : v >= 0.9 ? "warn" : "fail"; }

function el(tag, attrs, parent) {
  const e = document.createElementNS(svgNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (parent) parent.appendChild(e);
  return e;
}

function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function timeLabel(t) {
  const d = new Date(t * 1000);
  return d.toTimeString().slice(0, 8);
}

// lines: [{name, color, points: [[t, v|null]]}]; opts: {max, unit}
function drawChart(container, lines, opts) {
  container.innerHTML = "";
  const W = 600, H = 190, L = 46, R = 10, T = 22, B = 22;
  const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart-svg", "data-lines": lines.length, preserveAspectRatio: "none" }, container);
  const all = lines.flatMap(l => l.points.filter(p => p[1] != null));
  if (all.length === 0) {
    el("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "empty" }, svg).textContent = "no traffic in this window yet";
    return;
  }
  const t0 = Math.min(...all.map(p => p[0])), t1 = Math.max(...all.map(p => p[0]));
  const span = Math.max(t1 - t0, 1);
  const ymax = opts.max != null ? opts.max : niceMax(Math.max(...all.map(p => p[1])) * 1.1);
  const ymin = opts.min != null ? opts.min : 0;
  const x = t => L + (W - L - R) * (t - t0) / span;
  const y = v => T + (H - T - B) * (1 - (v - ymin) / (ymax - ymin || 1));
  for (let i = 0; i <= 4; i++) {
    const v = ymin + (ymax - ymin) * i / 4;
    el("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), class: "grid" }, svg);
    el("text", { x: L - 4, y: y(v) + 3, "text-anchor": "end" }, svg).textContent = (+v.toFixed(2)) + (opts.unit || "");
  }
  for (let i = 0; i <= 3; i++) {
    const t = t0 + span * i / 3;
    el("text", { x: x(t), y: H - 6, "text-anchor": i === 0 ? "start" : i === 3 ? "end" : "middle" }, svg).textContent = timeLabel(t);
  }
  el("line", { x1: L, x2: L, y1: T, y2: H - B, class: "axis" }, svg);
  el("line", { x1: L, x2: W - R, y1: H - B, y2: H - B, class: "axis" }, svg);
  const legend = el("g", { class: "legend" }, svg);
  let lx = L;
  for (const line of lines) {
    let d = "", pen = false;
    for (const [t, v] of line.points) {
      if (v == null) { pen = false; continue; }
      d += (pen ? "L" : "M") + x(t).toFixed(1) + "," + y(Math.min(Math.max(v, ymin), ymax)).toFixed(1);
      pen = true;
    }
    el("path", { d, fill: "none", stroke: line.color, "stroke-width": 2, "data-name": line.name }, svg);
    // A young series has few points: mark them, so one point is not an invisible line.
    const pts = line.points.filter(p => p[1] != null);
    if (pts.length < 30) {
      for (const [t, v] of pts) el("circle", { cx: x(t), cy: y(Math.min(Math.max(v, ymin), ymax)), r: 2.5, fill: line.color }, svg);
    }
    el("rect", { x: lx, y: 6, width: 10, height: 10, fill: line.color }, legend);
    const label = el("text", { x: lx + 14, y: 15 }, legend);
    label.textContent = line.name;
    lx += 22 + line.name.length * 6.2;
  }
}

function seriesOf(rows, f) { return rows.map(p => [p.t, f(p)]); }

function volumeLines(series) {
  return [
    { name: "successes/s", color: COLORS.ok, points: seriesOf(series, p => p.success_rate == null ? p.rps : p.rps * p.success_rate) },
    { name: "failures/s", color: COLORS.fail, points: seriesOf(series, p => p.success_rate == null ? 0 : p.rps * (1 - p.success_rate)) },
  ];
}

function successLines(series, name) {
  return [{ name: name || "success rate", color: COLORS.ok, points: seriesOf(series, p => p.success_rate == null ? null : p.success_rate * 100) }];
}

// What callers saw beside every attempt sent: the gap is what retries hid.
function effectiveActualLines(series) {
  return [
    ...successLines(series, "effective"),
    { name: "actual", color: COLORS.p95, points: seriesOf(series, p => p.actual_success_rate == null ? null : p.actual_success_rate * 100) },
  ];
}

// Ready instances over time, drawn as steps: the count holds until the round it changed.
function instanceLines(series) {
  const points = [];
  for (const p of series || []) {
    if (points.length) points.push([p.t, points[points.length - 1][1]]);
    points.push([p.t, p.instances]);
  }
  return [{ name: "instances", color: PALETTE[3], points }];
}

// Whole numbers on the axis: its four steps of 1 or more.
function instancesMax(series) {
  const most = Math.max(1, ...(series || []).map(p => p.instances));
  return Math.max(4, Math.ceil(most * 1.25 / 4) * 4);
}

function latencyLines(series) {
  return ["p50", "p95", "p99"].map(q => ({ name: q, color: COLORS[q], points: seriesOf(series, p => p[q + "_ms"]) }));
}

async function getJSON(path) {
  const r = await fetch(path, { cache: "no-store" });
  if (!r.ok) throw new Error(path + ": HTTP " + r.status);
  return r.json();
}

function setOptions(select, values, current) {
  const have = Array.from(select.options).slice(1).map(o => o.value).join("\n");
  if (have === values.join("\n")) return;
  select.length = 1;
  for (const v of values) {
    const o = document.createElement("option");
    o.value = v; o.textContent = v;
    select.appendChild(o);
  }
  select.value = values.includes(current) ? current : "";
}

function setCard(id, text, cls) {
  const e = $(id);
  e.textContent = text;
  e.className = "value" + (cls ? " " + cls : "");
}

function renderTop(summary, services, instances) {
  const s = summary.stats;
  let scope = "cluster-wide", stats = s, series = summary.series;
  if (state.instance) {
    const row = [...instances.nodes.map(n => ({ ...n, name: n.node })), ...instances.endpoints.map(e => ({ ...e, name: e.endpoint }))].find(r => r.name === state.instance);
    if (row) { scope = "instance " + state.instance; stats = row.stats; series = row.series; }
  } else if (state.service) {
    const row = services.services.find(r => r.service === state.service);
    if (row) { scope = "service " + state.service; stats = row.stats; series = row.series; }
  }
  $("top-scope").textContent = scope;
  setCard("top-success-rate", fmtPct(stats.success_rate), rateClass(stats.success_rate));
  setCard("top-actual-success-rate", fmtPct(stats.actual_success_rate), rateClass(stats.actual_success_rate));
  setCard("top-retries", fmtRps(stats.retry_rps), stats.retry_rps > 0 ? "warn" : "");
  setCard("top-rps", fmtRps(stats.rps));
  setCard("top-services", String(summary.services_monitored));
  setCard("top-proxies", summary.proxies_up + " / " + summary.proxies_total, summary.proxies_up < summary.proxies_total ? "fail" : "ok");
  setCard("top-4xx", fmtRps(stats.rate_4xx), stats.rate_4xx > 0 ? "warn" : "");
  setCard("top-5xx", fmtRps(stats.rate_5xx), stats.rate_5xx > 0 ? "fail" : "");
  // Cluster-wide or per node: what crossed into inbounds. Plaintext between nodes is a warning.
  const mtls = state.service ? s.mtls_share : stats.mtls_share;
  setCard("top-mtls", fmtPct(mtls), mtls == null ? "" : mtls < 1 ? "warn" : "ok");
  drawChart($("top-success-chart"), effectiveActualLines(series), { min: 0, max: 100, unit: "%" });
  drawChart($("top-volume-chart"), volumeLines(series), {});
}

function renderServices(services) {
  const root = $("services");
  const rows = services.services.filter(r => !state.service || r.service === state.service);
  const names = rows.map(r => r.service).join("\n");
  if (root.dataset.names !== names) {
    root.innerHTML = "";
    for (const r of rows) {
      const div = document.createElement("div");
      div.className = "service";
      div.dataset.service = r.service;
      // The name is data (in Prometheus mode, any label value): text, never markup.
      div.innerHTML = `<h3></h3>
        <div class="cards">
          <div class="card"><div class="label">Effective success <small>(what callers saw)</small></div><div class="value success-rate">–</div></div>
          <div class="card"><div class="label">Actual success <small>(every attempt)</small></div><div class="value actual-success-rate">–</div></div>
          <div class="card"><div class="label">Request volume</div><div class="value rps">–</div></div>
          <div class="card"><div class="label">Retries</div><div class="value retry-rps">–</div></div>
          <div class="card"><div class="label">Budget refusals <small>(in window)</small></div><div class="value budget-refusals">–</div></div>
          <div class="card"><div class="label">P50 latency</div><div class="value p50">–</div></div>
          <div class="card"><div class="label">P95 latency</div><div class="value p95">–</div></div>
          <div class="card"><div class="label">P99 latency</div><div class="value p99">–</div></div>
          <div class="card"><div class="label">Instances <small>(ready)</small></div><div class="value instances">–</div></div>
        </div>
        <div class="charts three">
          <figure><figcaption>Success rate (%): effective and actual</figcaption><div class="chart success"></div></figure>
          <figure><figcaption>Request volume (req/s)</figcaption><div class="chart volume"></div></figure>
          <figure><figcaption>Latency (ms)</figcaption><div class="chart latency"></div></figure>
          <figure class="instances-figure"><figcaption>Instances (ready, as callers' proxies see them)</figcaption><div class="chart instances"></div></figure>
        </div>`;
      div.querySelector("h3").textContent = r.service;
      // Its requests as they happen, fed by tap.
      const live = document.createElement("a");
      live.className = "live-link";
      live.href = "/live?service=" + encodeURIComponent(r.service);
      live.textContent = "live calls →";
      div.querySelector("h3").after(live);
      root.appendChild(div);
    }
    root.dataset.names = names;
  }
  if (rows.length === 0) root.innerHTML = '<p class="empty">No services have seen traffic yet.</p>';
  for (const r of rows) {
    const div = root.querySelector(`.service[data-service="${CSS.escape(r.service)}"]`);
    if (!div) continue;
    const sr = div.querySelector(".success-rate");
    sr.textContent = fmtPct(r.stats.success_rate);
    sr.className = "value success-rate " + rateClass(r.stats.success_rate);
    const ar = div.querySelector(".actual-success-rate");
    ar.textContent = fmtPct(r.stats.actual_success_rate);
    ar.className = "value actual-success-rate " + rateClass(r.stats.actual_success_rate);
    div.querySelector(".rps").textContent = fmtRps(r.stats.rps);
    div.querySelector(".retry-rps").textContent = fmtRps(r.stats.retry_rps);
    const refused = div.querySelector(".budget-refusals");
    refused.textContent = fmtCount(r.stats.budget_refusals);
    refused.className = "value budget-refusals" + (r.stats.budget_refusals >= 0.5 ? " fail" : "");
    div.querySelector(".p50").textContent = fmtMs(r.stats.p50_ms);
    div.querySelector(".p95").textContent = fmtMs(r.stats.p95_ms);
    div.querySelector(".p99").textContent = fmtMs(r.stats.p99_ms);
    drawChart(div.querySelector(".chart.success"), effectiveActualLines(r.series), { min: 0, max: 100, unit: "%" });
    drawChart(div.querySelector(".chart.volume"), volumeLines(r.series), {});
    drawChart(div.querySelector(".chart.latency"), latencyLines(r.series), {});
    div.querySelector(".instances").textContent = r.instances == null ? "–" : String(r.instances);
    const counted = (r.instances_series || []).length > 0;
    div.querySelector(".instances-figure").hidden = !counted;
    if (counted) drawChart(div.querySelector(".chart.instances"), instanceLines(r.instances_series), { min: 0, max: instancesMax(r.instances_series) });
  }
}

function cells(tr, values) {
  tr.innerHTML = "";
  for (const [v, cls] of values) {
    const td = document.createElement("td");
    td.textContent = v;
    if (cls) td.className = cls;
    tr.appendChild(td);
  }
}

function renderInstances(instances) {
  const nodes = instances.nodes;
  const eps = instances.endpoints;
  const nbody = $("nodes-table").querySelector("tbody");
  nbody.innerHTML = "";
  for (const n of nodes) {
    const tr = document.createElement("tr");
    tr.dataset.instance = n.node;
    cells(tr, [[n.node], [n.target], [n.up ? "up" : "down", n.up ? "" : "down"], [fmtPct(n.stats.success_rate), "success-rate"],
      [fmtPct(n.stats.actual_success_rate), "actual-success-rate"], [fmtRps(n.stats.rps), "rps"],
      [fmtRps(n.stats.retry_rps), "retry-rps"], [fmtCount(n.stats.budget_refusals), "budget-refusals"],
      [fmtMs(n.stats.p50_ms), "p50"], [fmtMs(n.stats.p95_ms), "p95"], [fmtMs(n.stats.p99_ms), "p99"],
      [fmtPct(n.stats.mtls_share), "mtls"], [n.identity || "–", "identity"]]);
    nbody.appendChild(tr);
  }
  const ebody = $("endpoints-table").querySelector("tbody");
  ebody.innerHTML = "";
  for (const e of eps) {
    const tr = document.createElement("tr");
    tr.dataset.instance = e.endpoint;
    tr.dataset.service = e.service;
    cells(tr, [[e.service], [e.endpoint], [e.node || "–"], [fmtPct(e.stats.success_rate), "success-rate"],
      [fmtPct(e.stats.actual_success_rate), "actual-success-rate"], [fmtRps(e.stats.rps), "rps"],
      [fmtRps(e.stats.retry_rps), "retry-rps"], [fmtCount(e.stats.budget_refusals), "budget-refusals"],
      [fmtMs(e.stats.p50_ms), "p50"], [fmtMs(e.stats.p95_ms), "p95"], [fmtMs(e.stats.p99_ms), "p99"]]);
    ebody.appendChild(tr);
  }
  // With a service chosen, its endpoints are the instances; otherwise the node proxies.
  const rows = state.service || state.instance && eps.some(e => e.endpoint === state.instance)
    ? eps.map(e => ({ name: e.endpoint, series: e.series }))
    : nodes.map(n => ({ name: n.node, series: n.series }));
  const color = i => PALETTE[i % PALETTE.length];
  drawChart($("instance-success-chart"), rows.map((r, i) => ({ name: r.name, color: color(i), points: seriesOf(r.series, p => p.success_rate == null ? null : p.success_rate * 100) })), { min: 0, max: 100, unit: "%" });
  drawChart($("instance-volume-chart"), rows.map((r, i) => ({ name: r.name, color: color(i), points: seriesOf(r.series, p => p.rps) })), {});
  drawChart($("instance-latency-chart"), rows.map((r, i) => ({ name: r.name, color: color(i), points: seriesOf(r.series, p => p.p95_ms) })), {});
}

function renderSplits(routes) {
  const body = $("splits-table").querySelector("tbody");
  body.innerHTML = "";
  for (const r of routes.routes) {
    for (const b of r.backends) {
      const tr = document.createElement("tr");
      tr.dataset.service = r.service;
      tr.dataset.backend = b.backend;
      cells(tr, [[r.service], [r.route], [b.backend], [fmtPct(b.share), "share"],
        [fmtPct(b.stats.success_rate), "success-rate " + rateClass(b.stats.success_rate)], [fmtRps(b.stats.rps), "rps"],
        [fmtMs(b.stats.p50_ms)], [fmtMs(b.stats.p99_ms), "p99"]]);
      body.appendChild(tr);
    }
  }
  $("traffic-splits").hidden = routes.routes.length === 0;
}

function renderSlowest(traces) {
  const body = $("slowest-table").querySelector("tbody");
  body.innerHTML = "";
  for (const s of traces.slowest) {
    const tr = document.createElement("tr");
    tr.dataset.service = s.service;
    tr.dataset.trace = s.trace_id;
    cells(tr, [[s.service], [fmtMs(s.latency_ms), "latency"], [s.endpoint || "–"], [s.node || "–"],
      [new Date(s.at * 1000).toTimeString().slice(0, 8)]]);
    const td = document.createElement("td");
    td.className = "trace";
    if (s.url) {
      const a = document.createElement("a");
      a.href = s.url;
      a.target = "_blank";
      a.rel = "noopener noreferrer";
      a.textContent = s.trace_id;
      td.appendChild(a);
    } else {
      td.textContent = s.trace_id;
    }
    tr.appendChild(td);
    body.appendChild(tr);
  }
  $("slowest").hidden = traces.slowest.length === 0;
}

async function refresh() {
  const q = "window=" + state.window;
  const sq = state.service ? "&service=" + encodeURIComponent(state.service) : "";
  const iq = state.instance ? "&instance=" + encodeURIComponent(state.instance) : "";
  try {
    const [summary, allServices, allInstances, instances, routes, traces] = await Promise.all([
      getJSON("/api/summary?" + q),
      getJSON("/api/services?" + q),
      getJSON("/api/instances?" + q),
      getJSON("/api/instances?" + q + sq + iq),
      getJSON("/api/routes?" + q + sq),
      getJSON("/api/traces?" + q + sq),
    ]);
    setOptions($("service-select"), allServices.services.map(s => s.service), state.service);
    setOptions($("instance-select"), [...allInstances.nodes.map(n => n.node), ...allInstances.endpoints.filter(e => !state.service || e.service === state.service).map(e => e.endpoint)], state.instance);
    renderTop(summary, allServices, allInstances);
    renderServices(allServices);
    renderInstances(instances);
    renderSplits(routes);
    renderSlowest(traces);
    const st = $("status");
    st.textContent = "live · updated " + new Date().toTimeString().slice(0, 8);
    st.className = "status";
    document.body.dataset.updated = String(Date.now());
  } catch (e) {
    const st = $("status");
    st.textContent = "stale: " + e.message;
    st.className = "status stale";
  }
}

for (const [id, key] of [["service-select", "service"], ["instance-select", "instance"], ["window-select", "window"]]) {
  $(id).addEventListener("change", ev => { state[key] = ev.target.value; refresh(); });
}
refresh();
setInterval(refresh, REFRESH_MS);
