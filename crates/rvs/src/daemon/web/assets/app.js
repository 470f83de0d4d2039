// rvsd's console: reads the live feed (/api/v1/events, one JSON snapshot a second), draws the
// service's charts from the counters' differences between snapshots, and, for an admin, sends
// weight changes, drains and removals to /api/v1 with the session's CSRF token.
"use strict";

const PAGE = 50;           // real servers shown at once
const HISTORY = 120;       // seconds kept in the charts
let me = null;             // {user, role, csrf_token}
let chosen = null;         // the service whose real servers are shown
let offset = 0;
let feed = null;
let last = null;           // the previous snapshot, for differences
const series = { cps: [], inpps: [], outpps: [], inbps: [], outbps: [] };
const rsHistory = new Map(); // real server id -> recent packets/s in
const removed = [];        // real servers this page took out, to put back

const $ = (id) => document.getElementById(id);
function el(tag, text, cls) { const e = document.createElement(tag); if (text !== undefined) e.textContent = text; if (cls) e.className = cls; return e; }
function fmt(n) {
  if (n >= 1e9) return (n / 1e9).toFixed(1) + "G";
  if (n >= 1e6) return (n / 1e6).toFixed(1) + "M";
  if (n >= 1e4) return (n / 1e3).toFixed(1) + "k";
  return String(Math.round(n));
}

async function api(method, path, body) {
  const opts = { method, headers: {} };
  if (method !== "GET") opts.headers["X-CSRF-Token"] = me ? me.csrf_token : "";
  if (body !== undefined) { opts.headers["Content-Type"] = "application/json"; opts.body = JSON.stringify(body); }
  const r = await fetch(path, opts);
  if (r.status === 401) { window.location.replace("/login"); throw new Error("logged out"); }
  const j = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(j.error || ("HTTP " + r.status));
  return j;
}

function say(text, bad) { const m = $("message"); m.textContent = text; m.className = bad ? "error" : ""; }

function confirmThen(text, f) {
  const d = $("confirm");
  $("confirm-text").textContent = text;
  d.returnValue = "";
  d.onclose = () => { if (d.returnValue === "yes") f(); };
  d.showModal();
}

function svcPath(id) { return "/api/v1/services/" + encodeURIComponent(id); }
function rsPath(svc, rs) { return svcPath(svc) + "/servers/" + encodeURIComponent(rs); }

function setWeight(svc, rs, w) {
  const what = w === 0 ? `Drain ${rs} (weight 0) in ${svc}?` : `Set the weight of ${rs} in ${svc} to ${w}?`;
  confirmThen(what, async () => {
    try { await api("PUT", rsPath(svc, rs), { weight: w }); say(`${rs}: weight ${w}`); }
    catch (e) { say(`${rs}: ${e.message}`, true); }
  });
}

function remove(svc, s) {
  confirmThen(`Take ${s.id} out of ${svc}? Its connections drain.`, async () => {
    try {
      const r = await api("DELETE", rsPath(svc, s.id));
      removed.push({ svc, server: r.removed });
      drawRemoved();
      say(`${s.id} taken out`);
    } catch (e) { say(`${s.id}: ${e.message}`, true); }
  });
}

function drawRemoved() {
  const box = $("removed");
  box.replaceChildren();
  removed.forEach((r, i) => {
    const b = el("button", `Put ${r.server.id} back into ${r.svc} (weight ${r.server.weight})`);
    b.onclick = () => confirmThen(`Put ${r.server.id} back into ${r.svc}?`, async () => {
      try {
        const s = r.server;
        await api("POST", svcPath(r.svc) + "/servers", {
          server: s.id, weight: s.weight, forward: s.forward,
          u_threshold: s.u_threshold, l_threshold: s.l_threshold,
          tun_type: s.tun_type, tun_port: s.tun_port, tun_csum: s.tun_csum,
        });
        removed.splice(i, 1); drawRemoved(); say(`${s.id} is back`);
      } catch (e) { say(`${r.server.id}: ${e.message}`, true); }
    });
    box.appendChild(b);
  });
}

// A line chart of one or two series on a canvas.
function chart(canvas, lines) {
  const c = canvas.getContext("2d"), w = canvas.width, h = canvas.height;
  c.clearRect(0, 0, w, h);
  const max = Math.max(1, ...lines.flatMap((l) => l.data));
  const label = h >= 40;
  if (label) { c.fillStyle = "#6b7280"; c.font = "10px sans-serif"; c.fillText(fmt(max), 2, 10); }
  // The newest point on the right edge; the window grows to HISTORY points as they come.
  const n = Math.max(...lines.map((l) => l.data.length));
  const step = w / (Math.max(label ? 30 : 10, Math.min(HISTORY, n)) - 1);
  for (const l of lines) {
    c.strokeStyle = l.color; c.lineWidth = 1.5; c.beginPath();
    l.data.forEach((v, i) => {
      const x = w - (l.data.length - 1 - i) * step;
      const y = h - 2 - (v / max) * (h - (label ? 14 : 4));
      if (i === 0) c.moveTo(x, y); else c.lineTo(x, y);
    });
    c.stroke();
  }
}

function push(arr, v, n) { arr.push(v); while (arr.length > n) arr.shift(); }

function rate(now, before, dt, f) { return before ? Math.max(0, (f(now) - f(before)) / dt) : 0; }

function drawDirector(s) {
  const d = s.director;
  $("director").textContent = `${d.interfaces.join(", ")} (${d.xdp_mode}) · rvs ${d.rvs_version} · up ${d.uptime_seconds} s`;
  $("dir-info").textContent = `certificate SHA-256 ${d.certificate_sha256.slice(0, 23)}…`;
  const dp = s.dataplane || {};
  const size = dp.conn_table_size || 1, flows = dp.conn_table_flows || 0;
  $("table-fill").style.width = Math.min(100, (100 * flows) / size) + "%";
  $("table-text").textContent = `${fmt(flows)} of ${fmt(size)} flows`;
  const tb = $("drops").tBodies[0];
  tb.replaceChildren();
  for (const [k, v] of Object.entries(dp.counters || {})) {
    if (!k.startsWith("drop_")) continue;
    const tr = el("tr"); tr.append(el("td", k), el("td", fmt(v), "n")); tb.appendChild(tr);
  }
  const v = $("vrrp");
  v.replaceChildren();
  if (!s.vrrp.instances.length) v.textContent = "no VRRP instances";
  for (const i of s.vrrp.instances) v.appendChild(el("div", `${i.name}: ${i.state} (priority ${i.effective_priority}) — ${i.reason}`));
  const sy = s.sync;
  $("sync").textContent = sy.daemon
    ? `${sy.daemon.interface} syncid ${sy.daemon.syncid}: sent ${sy.sent_conns}, received ${sy.recv_conns}`
    : "off";
  const b = $("bgp");
  b.replaceChildren();
  if (!s.bgp) b.textContent = "off";
  else {
    for (const n of s.bgp.neighbors) b.appendChild(el("div", `${n.address} AS ${n.remote_as}: ${n.state}, ${n.announced.length} prefixes`));
    for (const p of s.bgp.prefixes) b.appendChild(el("div", `${p.prefix}: ${p.announced ? "announced" : "withdrawn"} — ${p.why}`));
  }
}

function drawServices(s) {
  const tb = $("services").tBodies[0];
  tb.replaceChildren();
  for (const v of s.services) {
    const tr = el("tr");
    if (v.id === s.chosen) tr.className = "chosen";
    tr.dataset.id = v.id;
    tr.append(el("td", v.name), el("td", v.scheduler), el("td", String(v.servers_total), "n"),
      el("td", fmt(v.active_conns), "n"), el("td", fmt(v.inactive_conns), "n"),
      el("td", fmt(v.stats.conns), "n"), el("td", fmt(v.stats.inpkts), "n"), el("td", fmt(v.stats.inbytes), "n"));
    tr.onclick = () => { chosen = v.id; offset = 0; resetCharts(); connect(); };
    tb.appendChild(tr);
  }
}

function resetCharts() { for (const k in series) series[k].length = 0; rsHistory.clear(); last = null; }

function drawServers(s, svc, prevSvc, dt) {
  $("rs-title").textContent = `Real servers of ${svc.name}`;
  const total = svc.servers_total, first = svc.servers_offset || 0, page = svc.servers || [];
  $("page").textContent = total ? `${first + 1}–${first + page.length} of ${total}` : "none";
  $("prev").disabled = first === 0;
  $("next").disabled = first + page.length >= total;
  const tb = $("servers").tBodies[0];
  const before = new Map(((prevSvc && prevSvc.servers) || []).map((r) => [r.id, r]));
  const rows = new Map([...tb.rows].map((r) => [r.dataset.id, r]));
  const keep = new Set();
  for (const r of page) {
    keep.add(r.id);
    let tr = rows.get(r.id);
    if (!tr) {
      tr = el("tr"); tr.dataset.id = r.id;
      for (let i = 0; i < 10; i++) tr.appendChild(el("td", "", i >= 4 && i < 9 ? "n" : ""));
      tr.cells[9].appendChild(Object.assign(document.createElement("canvas"), { width: 80, height: 18 }));
      const td = el("td", "", "admin");
      const w = Object.assign(el("input"), { type: "number", min: 0, max: 65535, className: "w" });
      w.setAttribute("aria-label", "weight of " + r.id);
      const set = el("button", "Set"); set.onclick = () => setWeight(svc.id, r.id, Number(w.value));
      const drain = el("button", "Drain"); drain.onclick = () => setWeight(svc.id, r.id, 0);
      const rm = el("button", "Remove"); rm.onclick = () => remove(svc.id, r);
      td.append(w, set, drain, rm);
      tr.appendChild(td);
      tb.appendChild(tr);
    }
    const b = before.get(r.id);
    const pps = rate(r, b, dt, (x) => x.stats.inpkts);
    const h = rsHistory.get(r.id) || []; push(h, pps, 40); rsHistory.set(r.id, h);
    const health = r.health ? (r.health.up ? "up" : "down") : "—";
    const vals = [r.id, r.forward_name, String(r.weight), health, fmt(r.active_conns), fmt(r.inactive_conns),
      fmt(rate(r, b, dt, (x) => x.stats.conns)), fmt(pps), fmt(rate(r, b, dt, (x) => x.stats.inbytes))];
    vals.forEach((v, i) => { if (tr.cells[i].textContent !== v) tr.cells[i].textContent = v; });
    tr.cells[3].className = r.health ? (r.health.up ? "up" : "down") : "";
    tr.cells[3].title = r.health
      ? `${r.health.reason} (since ${new Date(r.health.since_unix_ms).toLocaleString()}, ${r.health.transitions} changes)`
      : "no checker verdict";
    chart(tr.cells[9].firstChild, [{ data: h, color: "#2563eb" }]);
  }
  for (const [id, tr] of rows) if (!keep.has(id)) tr.remove();
}

function onSnapshot(s) {
  drawDirector(s);
  drawServices(s);
  const svc = s.services.find((v) => v.id === s.chosen);
  if (!chosen && s.chosen) chosen = s.chosen;
  if (svc) {
    const prev = last && last.services.find((v) => v.id === s.chosen);
    const dt = last ? Math.max(0.001, (s.time_unix_ms - last.time_unix_ms) / 1000) : 1;
    if (prev) {
      push(series.cps, rate(svc, prev, dt, (x) => x.stats.conns), HISTORY);
      push(series.inpps, rate(svc, prev, dt, (x) => x.stats.inpkts), HISTORY);
      push(series.outpps, rate(svc, prev, dt, (x) => x.stats.outpkts), HISTORY);
      push(series.inbps, rate(svc, prev, dt, (x) => x.stats.inbytes), HISTORY);
      push(series.outbps, rate(svc, prev, dt, (x) => x.stats.outbytes), HISTORY);
    }
    chart($("chart-cps"), [{ data: series.cps, color: "#2563eb" }]);
    chart($("chart-pps"), [{ data: series.inpps, color: "#2563eb" }, { data: series.outpps, color: "#d97706" }]);
    chart($("chart-bps"), [{ data: series.inbps, color: "#2563eb" }, { data: series.outbps, color: "#d97706" }]);
    $("chart-pps").dataset.last = String(series.inpps.length ? series.inpps[series.inpps.length - 1] : 0);
    $("chart-pps").dataset.max = String(Math.max(0, ...series.inpps));
    drawServers(s, svc, prev, dt);
  } else {
    $("servers").tBodies[0].replaceChildren();
    $("rs-title").textContent = "No virtual services";
  }
  last = s;
}

function connect() {
  if (feed) feed.close();
  const q = new URLSearchParams({ offset: String(offset), limit: String(PAGE) });
  if (chosen) q.set("service", chosen);
  feed = new EventSource("/api/v1/events?" + q);
  feed.onmessage = (m) => onSnapshot(JSON.parse(m.data));
  feed.onerror = async () => {
    // The feed ends with the session: back to the login page then.
    const r = await fetch("/api/v1/session");
    if (r.status === 401) window.location.replace("/login");
  };
}

$("prev").onclick = () => { offset = Math.max(0, offset - PAGE); last = null; connect(); };
$("next").onclick = () => { offset += PAGE; last = null; connect(); };
$("logout").onclick = async () => {
  try { await api("POST", "/api/v1/logout"); } catch (e) { /* gone already */ }
  if (feed) feed.close();
  window.location.replace("/login");
};

(async () => {
  try { me = await api("GET", "/api/v1/session"); } catch (e) { return; }
  $("who").textContent = `${me.user} (${me.role})`;
  document.body.classList.add(me.role);
  connect();
})();
