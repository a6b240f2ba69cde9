// weft live calls: reads /api/tap (newline-delimited JSON, streamed) and shows each request
// as its `end` event arrives, newest first. Plain DOM, no framework: it ships in the binary.
"use strict";

const MAX_ROWS = 200;
let reading = null;

function $(id) { return document.getElementById(id); }

function fmtUs(us) {
  if (us == null) return "–";
  const ms = us / 1000;
  return (ms >= 10 ? ms.toFixed(0) : ms >= 1 ? ms.toFixed(1) : ms.toFixed(2)) + " ms";
}

function cell(tr, text, cls) {
  const td = document.createElement("td");
  td.textContent = text == null ? "–" : String(text);
  if (cls) td.className = cls;
  tr.appendChild(td);
}

function addRow(e) {
  const tr = document.createElement("tr");
  tr.className = e.success ? "call ok" : "call fail";
  const t = new Date(Math.floor(e.unix_us / 1000));
  cell(tr, t.toTimeString().slice(0, 8) + "." + String(t.getMilliseconds()).padStart(3, "0"));
  cell(tr, e.proxy);
  cell(tr, e.direction);
  cell(tr, e.source_name || e.source);
  cell(tr, e.service);
  cell(tr, e.method);
  cell(tr, e.path);
  cell(tr, e.status == null ? (e.error || "no answer") : e.status + (e.error ? " (" + e.error + ")" : ""),
       e.success ? "" : "down");
  cell(tr, fmtUs(e.latency_us));
  cell(tr, fmtUs(e.duration_us));
  cell(tr, e.endpoint);
  cell(tr, e.retries);
  cell(tr, e.trace_id ? e.trace_id.slice(0, 8) + "…" : "");
  const body = $("live-calls").tBodies[0];
  body.insertBefore(tr, body.firstChild);
  while (body.rows.length > MAX_ROWS) body.deleteRow(body.rows.length - 1);
}

function query() {
  const q = new URLSearchParams();
  for (const [id, key] of [["live-service", "service"], ["live-direction", "direction"],
                           ["live-status", "status"], ["live-path", "path"]]) {
    const v = $(id).value.trim();
    if (v) q.set(key, v);
  }
  return q;
}

async function tap() {
  if (reading) reading.abort();
  const ctl = new AbortController();
  reading = ctl;
  const q = query();
  history.replaceState(null, "", "/live?" + q.toString());
  $("live-scope").textContent = q.toString() || "every request";
  // Rows are drawn from `end` events only: asking for nothing else shows three times
  // the requests for the same rate.
  q.set("events", "end");
  const status = $("live-status-line");
  status.textContent = "tapping…";
  status.classList.remove("stale");
  let rsp;
  try {
    rsp = await fetch("/api/tap?" + q.toString(), { signal: ctl.signal });
  } catch (err) {
    if (ctl.signal.aborted) return;
    status.textContent = "dashboard unreachable";
    status.classList.add("stale");
    return;
  }
  if (!rsp.ok) {
    status.textContent = "refused: " + (await rsp.text()).trim();
    status.classList.add("stale");
    return;
  }
  const reader = rsp.body.getReader();
  const decoder = new TextDecoder();
  let buf = "";
  let seen = 0;
  for (;;) {
    let chunk;
    try {
      chunk = await reader.read();
    } catch (err) {
      break;
    }
    if (chunk.done) break;
    buf += decoder.decode(chunk.value, { stream: true });
    let i;
    while ((i = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      if (!line.trim()) continue;
      let e;
      try {
        e = JSON.parse(line);
      } catch (err) {
        status.textContent = "a line that is not a tap event: " + line.slice(0, 80);
        status.classList.add("stale");
        continue;
      }
      if (e.type === "end") {
        addRow(e);
        seen += 1;
        status.textContent = "tapping: " + seen + " calls";
      } else if (e.type === "closed") {
        status.textContent = "a proxy closed the tap: " + e.reason;
        status.classList.add("stale");
      }
    }
  }
  if (reading === ctl && !ctl.signal.aborted) {
    status.textContent = "the tap ended";
    status.classList.add("stale");
  }
}

function init() {
  const q = new URLSearchParams(location.search);
  $("live-service").value = q.get("service") || "";
  $("live-direction").value = q.get("direction") || "";
  $("live-status").value = q.get("status") || "";
  $("live-path").value = q.get("path") || "";
  $("live-filter").addEventListener("submit", (ev) => { ev.preventDefault(); tap(); });
  tap();
}

init();
