/**
 * The live dashboard: one self-contained page (inline style and script, no build step) that
 * follows `/events` (Server-Sent Events carrying the `/status` JSON) and renders it.
 */
export const dashboardHtml = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Bulwark</title>
<link rel="icon" href="data:,">
<style>
  :root { --bg:#0f1419; --panel:#161c24; --line:#253040; --text:#d8dee9; --dim:#8a96a8;
          --up:#3fb950; --warn:#d29922; --down:#f85149; --blue:#58a6ff; }
  * { box-sizing: border-box; }
  body { margin:0; font:14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; background:var(--bg); color:var(--text); }
  header { display:flex; align-items:center; gap:16px; padding:14px 22px; border-bottom:1px solid var(--line); }
  header h1 { font-size:18px; margin:0; font-weight:600; }
  .pill { padding:2px 10px; border-radius:999px; font-size:12px; font-weight:600; text-transform:uppercase; letter-spacing:.04em; }
  .up, .Closed, .running, .Disabled, .ok { background:rgba(63,185,80,.15); color:var(--up); }
  .degraded, .HalfOpen, .backing-off, .starting, .warning { background:rgba(210,153,34,.15); color:var(--warn); }
  .down, .Open, .Isolated, .failed, .critical { background:rgba(248,81,73,.15); color:var(--down); }
  .stopped, .unknown { background:rgba(138,150,168,.15); color:var(--dim); }
  #conn { margin-left:auto; color:var(--dim); font-size:12px; }
  main { display:grid; grid-template-columns:repeat(auto-fit, minmax(460px, 1fr)); gap:16px; padding:16px 22px; }
  section { background:var(--panel); border:1px solid var(--line); border-radius:8px; padding:12px 14px; }
  section h2 { margin:0 0 8px; font-size:13px; color:var(--dim); text-transform:uppercase; letter-spacing:.06em; }
  table { width:100%; border-collapse:collapse; }
  th, td { text-align:left; padding:5px 6px; border-bottom:1px solid var(--line); vertical-align:top; }
  th { color:var(--dim); font-weight:500; font-size:12px; }
  td.num { font-variant-numeric:tabular-nums; }
  .empty { color:var(--dim); font-style:italic; }
  .bar { height:6px; background:var(--line); border-radius:3px; min-width:80px; }
  .bar > span { display:block; height:6px; border-radius:3px; background:var(--blue); }
  .trans { color:var(--dim); font-size:12px; }
  .err { color:var(--down); font-size:12px; }
</style>
</head>
<body>
<header>
  <h1 id="service">Bulwark</h1>
  <span id="overall" class="pill unknown">connecting</span>
  <span id="conn">waiting for the first update…</span>
</header>
<main>
  <section><h2>Circuit breakers</h2><div id="breakers"></div></section>
  <section><h2>Bulkheads</h2><div id="bulkheads"></div></section>
  <section><h2>Supervised programs</h2><div id="programs"></div></section>
  <section><h2>Retry budgets</h2><div id="budgets"></div></section>
  <section><h2>Resources</h2><div id="resources"></div></section>
  <section><h2>Health checks</h2><div id="health"></div></section>
</main>
<script>
"use strict";
const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
const pct = (r) => (r * 100).toFixed(1) + "%";
const pill = (s) => '<span class="pill ' + esc(s) + '">' + esc(s) + "</span>";
const time = (ms) => new Date(ms).toLocaleTimeString();
const table = (id, head, rows, empty) => {
  const el = document.getElementById(id);
  el.innerHTML = rows.length === 0
    ? '<div class="empty">' + esc(empty) + "</div>"
    : "<table><thead><tr>" + head.map((h) => "<th>" + esc(h) + "</th>").join("") + "</tr></thead><tbody>" +
      rows.map((r) => "<tr>" + r.map((c) => "<td>" + c + "</td>").join("") + "</tr>").join("") + "</tbody></table>";
};
const render = (s) => {
  document.getElementById("service").textContent = s.service;
  document.title = s.service + " · Bulwark";
  const overall = document.getElementById("overall");
  const status = s.health ? s.health.status : "up";
  overall.className = "pill " + status;
  overall.textContent = status;
  table("breakers", ["name", "state", "failure rate", "calls", "rejected", "retry after", "recent transitions"],
    s.breakers.map((b) => [
      esc(b.name),
      '<span data-breaker="' + esc(b.name) + '" data-state="' + esc(b.state) + '">' + pill(b.state) + "</span>",
      '<div class="bar"><span style="width:' + Math.min(100, b.failureRate * 100) + '%"></span></div>' + pct(b.failureRate),
      '<span class="num">' + b.calls + "</span>",
      '<span class="num">' + b.rejections + "</span>",
      b.retryAfterMillis === null ? "–" : (b.retryAfterMillis / 1000).toFixed(1) + " s",
      '<span class="trans">' + b.transitions.slice(-3).map((t) => esc(t.from) + " → " + esc(t.to) + " " + time(t.at)).join("<br>") + "</span>"
    ]), "no breaker tracked");
  table("bulkheads", ["name", "active", "queued", "admitted", "rejected"],
    s.bulkheads.map((b) => [
      esc(b.name),
      '<div class="bar"><span style="width:' + (100 * b.active / Math.max(1, b.maxConcurrent)) + '%"></span></div>' + b.active + " / " + b.maxConcurrent,
      b.queued + " / " + b.maxQueued,
      '<span class="num">' + b.admitted + "</span>",
      '<span class="num">' + (b.rejected.queue_full + b.rejected.wait_timeout) + "</span>"
    ]), "no bulkhead tracked");
  const programs = [];
  for (const sup of s.supervisors) {
    for (const c of sup.children) {
      programs.push([
        esc(sup.supervisor) + " / " + esc(c.name),
        pill(c.status),
        '<span class="num">' + c.restarts + "</span>",
        '<span class="num">' + c.errors + "</span>",
        c.lastError ? '<span class="err">' + esc(c.lastError.code) + ": " + esc(c.lastError.message) + "</span>" : "–"
      ]);
    }
  }
  table("programs", ["program", "status", "restarts", "errors", "last error"], programs, "no supervised program");
  table("budgets", ["name", "calls", "retries", "available"],
    s.retryBudgets.map((b) => [esc(b.name), b.calls, b.retries, b.available]), "no retry budget tracked");
  table("resources", ["resource", "usage", "level"],
    (s.resources || []).map((r) => [
      esc(r.resource),
      '<div class="bar"><span style="width:' + Math.min(100, r.ratio * 100) + '%"></span></div>' + pct(r.ratio),
      pill(r.level)
    ]), "no resource monitor");
  table("health", ["check", "kind", "status"],
    (s.health ? s.health.components : []).map((c) => [esc(c.name), esc(c.kind), pill(c.status)]), "no health registry");
  document.getElementById("conn").textContent = "live · updated " + new Date(s.checkedAt).toLocaleTimeString();
};
const source = new EventSource("events");
source.addEventListener("status", (e) => render(JSON.parse(e.data)));
source.onerror = () => { document.getElementById("conn").textContent = "disconnected · retrying…"; };
</script>
</body>
</html>
`
