// leaktrace agent dashboard: reads /api/dashboard (encoded by the agent at
// each evaluation) and renders it. Text from processes (comm, paths,
// function names) only ever goes into textContent, never into markup.
"use strict";

const state = { data: null, selected: null, showAll: false, filter: "", flameRoot: null, timer: null };
const ROWS = 200; // processes rendered before "show all"

function el(tag, props, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (k === "class") e.className = v;
    else if (k === "style") Object.assign(e.style, v);
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function bytes(n) {
  if (!n) return "0";
  const u = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (n >= 100 || i === 0 ? n.toFixed(0) : n.toFixed(1)) + " " + u[i];
}

function rate(v) {
  if (!v) return "0";
  const a = Math.abs(v);
  return (v > 0 ? "+" : "") + (a >= 10 ? v.toFixed(0) : a >= 0.1 ? v.toFixed(2) : v.toExponential(1));
}

function level(ratio, th) {
  const p = ratio * 100;
  if (p >= th.critical) return "critical";
  if (p >= th.error) return "error";
  if (p >= th.warn) return "warning";
  return "";
}

async function refresh() {
  clearTimeout(state.timer);
  try {
    const r = await fetch("api/dashboard", { cache: "no-store" });
    if (!r.ok) throw new Error(r.status + " " + (await r.text()).trim());
    state.data = await r.json();
    render();
    document.getElementById("status").textContent =
      "updated " + new Date(state.data.generated).toLocaleTimeString() + " · every " + state.data.interval_seconds + "s";
  } catch (e) {
    document.getElementById("status").textContent = "cannot load: " + e.message;
  }
  const every = state.data ? Math.max(1, state.data.interval_seconds) : 5;
  state.timer = setTimeout(refresh, every * 1000);
}

function render() {
  renderAlerts();
  renderProcesses();
  renderSites();
  renderFlame();
  renderIncidents();
  if (state.selected === null && state.data.processes.length > 0) state.selected = state.data.processes[0].pid;
  renderHistory();
}

function renderAlerts() {
  const d = state.data, box = document.getElementById("alerts");
  document.getElementById("alert-count").textContent = d.alerts.length ? "(" + d.alerts.length + ")" : "";
  box.replaceChildren();
  box.className = d.alerts.length ? "" : "muted";
  if (!d.alerts.length) { box.textContent = "none"; return; }
  for (const a of d.alerts) {
    const ann = a.annotations || {};
    box.append(el("div", { class: "alert " + a.level },
      el("span", { class: "name" }, a.name), " · ", a.level, " · since ", new Date(a.starts_at).toLocaleTimeString(),
      el("div", {}, ann.summary || ""),
      ann.top_sites ? el("div", { class: "top" }, "top sites: " + ann.top_sites) : null));
  }
}

function renderProcesses() {
  const d = state.data, th = d.thresholds;
  const f = state.filter.toLowerCase();
  const rows = d.processes.filter(p => !f || String(p.pid).includes(f) || p.comm.toLowerCase().includes(f) ||
    (p.cgroup || "").toLowerCase().includes(f) || (p.exe || "").toLowerCase().includes(f));
  document.getElementById("process-count").textContent =
    "(" + d.processes.length + " traced" + (d.untracked ? ", " + d.untracked + " past max_processes" : "") + ")";
  const shown = state.showAll ? rows : rows.slice(0, ROWS);
  const body = document.createDocumentFragment();
  for (const p of shown) {
    const lv = level(p.ratio, th);
    const bar = el("div", { class: "bar", title: p.limit ? (p.ratio * 100).toFixed(1) + "% of " + p.limit : "limit unknown" },
      el("div", { class: "fill " + lv, style: { width: Math.min(100, p.ratio * 100) + "%" } }),
      el("div", { class: "mark warning", style: { left: th.warn + "%" } }),
      el("div", { class: "mark error", style: { left: th.error + "%" } }),
      el("div", { class: "mark critical", style: { left: th.critical + "%" } }));
    const tr = el("tr", { "data-pid": p.pid, class: p.pid === state.selected ? "selected" : "",
      onclick: () => { state.selected = p.pid; renderProcesses(); renderHistory(); } },
      el("td", { class: "num" }, p.pid), el("td", { title: p.exe || "" }, p.comm),
      el("td", { class: "num" }, p.open), el("td", { class: "num" }, p.limit || "–"), el("td", {}, bar),
      el("td", { class: "num" }, rate(p.growth_per_second)), el("td", { class: "num" }, bytes(p.resident_bytes)),
      el("td", { class: "num" }, p.memory_growth_bytes_per_second ? bytes(Math.max(0, p.memory_growth_bytes_per_second * 3600)) : "0"),
      el("td", { class: "num" }, p.failures || ""));
    body.append(tr);
  }
  document.querySelector("#processes tbody").replaceChildren(body);
  const more = document.getElementById("more");
  more.hidden = state.showAll || rows.length <= ROWS;
  more.textContent = "show all " + rows.length;
}

function renderSites() {
  const body = document.createDocumentFragment();
  for (const s of state.data.sites) {
    const stack = el("ol", { class: "stack" }, (s.stack || []).map(f =>
      el("li", { class: f.python ? "py" : "" }, (f.function || "0x" + f.address.toString(16)) +
        (f.file ? " " + f.file + ":" + f.line : "") + (f.module && !f.python ? " [" + f.module.split("/").pop() + "]" : ""))));
    body.append(el("tr", {},
      el("td", { class: "wrap" }, el("details", {}, el("summary", { class: "site" }, s.function || "?", " ", el("span", { class: "muted" }, s.location)), stack)),
      el("td", {}, s.kind || ""), el("td", { class: "num" }, s.outstanding), el("td", { class: "num" }, s.suspects),
      el("td", { class: "num" }, (s.growth > 0 ? "+" : "") + s.growth), el("td", { class: "num" }, rate(s.growth_per_second)),
      el("td", { class: "num" }, bytes(s.mapped_bytes)),
      el("td", { class: "num" }, s.mapped_growth_bytes_per_second ? (s.mapped_growth_bytes_per_second > 0 ? "+" : "-") +
        bytes(Math.abs(s.mapped_growth_bytes_per_second) * 3600) : "0"),
      el("td", { class: "num settled", title: (s.settled_in_kernel || 0) + " since the site appeared" },
        s.settled_per_second >= 10 ? s.settled_per_second.toFixed(0) : (s.settled_per_second || 0).toFixed(2))));
  }
  document.querySelector("#sites tbody").replaceChildren(body);
}

function renderIncidents() {
  const box = document.getElementById("incidents"), list = state.data.incidents || [];
  box.replaceChildren();
  box.className = list.length ? "" : "muted";
  if (!list.length) { box.textContent = "none"; return; }
  for (const i of list) {
    const tops = (i.top_sites || []).map(s => (s.headline.function || "(no stack)") +
      (s.headline.file ? " (" + s.headline.file + ":" + s.headline.line + ")" : "") + " ×" + s.count).join("; ");
    box.append(el("div", { class: "incident" },
      el("a", { href: "debug/incidents/" + encodeURIComponent(i.name) }, new Date(i.time).toLocaleString()), " ",
      "pid " + i.pid + " (" + i.comm + ") " + i.errno + " with " + i.open + " fds open",
      el("div", { class: "top" }, tops)));
  }
}

// Icicle graph of outstanding handles by stack, laid out as absolutely
// placed boxes; frames narrower than a pixel or two are left out.
function renderFlame() {
  const box = document.getElementById("flame");
  const root = state.flameRoot && findNode(state.data.flame, state.flameRoot) || state.data.flame;
  box.replaceChildren();
  if (!root || !root.value) { box.textContent = "no outstanding handles with a stack"; box.style.height = ""; return; }
  const width = box.clientWidth || 1000;
  let depth = 0;
  const palette = ["#fdba74", "#fca5a5", "#fcd34d", "#fdba74", "#f9a8d4"];
  function place(n, path, x, w, d) {
    if (w < 2) return;
    depth = Math.max(depth, d + 1);
    const id = path.join("\u0000");
    box.append(el("div", { class: "frame", title: n.name + " — " + n.value + " handles", "data-name": n.name,
      style: { left: x + "px", width: w + "px", top: d * 19 + "px", background: d === 0 ? "#d1d5db" : palette[hash(n.name) % palette.length] },
      onclick: () => { state.flameRoot = d === 0 ? null : id; renderFlame(); } }, n.name + " (" + n.value + ")"));
    let cx = x;
    for (const c of n.children || []) {
      const cw = w * c.value / n.value;
      place(c, path.concat(c.name), cx, cw, d + 1);
      cx += cw;
    }
  }
  place(root, state.flameRoot ? state.flameRoot.split("\u0000") : ["all"], 0, width, 0);
  box.style.height = depth * 19 + "px";
}

function findNode(n, id) {
  const path = id.split("\u0000");
  let cur = n;
  for (const name of path.slice(1)) {
    cur = (cur.children || []).find(c => c.name === name);
    if (!cur) return null;
  }
  return cur;
}

function hash(s) { let h = 0; for (let i = 0; i < s.length; i++) h = (h * 31 + s.charCodeAt(i)) | 0; return Math.abs(h); }

async function renderHistory() {
  const pid = state.selected;
  const title = document.getElementById("history-title");
  if (pid === null) { title.textContent = "no process"; return; }
  const p = state.data.processes.find(x => x.pid === pid);
  title.textContent = p ? "pid " + pid + " (" + p.comm + ")" : "pid " + pid + " (gone)";
  let h;
  try {
    const r = await fetch("api/process?pid=" + pid, { cache: "no-store" });
    if (!r.ok) throw new Error(r.status);
    h = await r.json();
  } catch (e) {
    document.getElementById("chart-fds").replaceChildren("no history");
    document.getElementById("chart-mem").replaceChildren();
    return;
  }
  chart("chart-fds", "open fds", h.times, h.open, h.limit, String);
  chart("chart-mem", "resident memory", h.memory_times, h.resident_bytes, h.memory_limit_bytes, bytes);
}

function chart(id, name, times, values, limit, fmt) {
  const box = document.getElementById(id), W = 480, H = 160, L = 56, B = 18;
  const NS = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(NS, "svg");
  svg.setAttribute("viewBox", "0 0 " + W + " " + H);
  const mk = (tag, attrs, text) => {
    const e = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    svg.append(e);
  };
  times = times || []; values = values || [];
  let hi = Math.max(1, ...values);
  const showLimit = limit && limit < hi * 4; // a far limit would flatten the line
  if (showLimit) hi = Math.max(hi, limit);
  const t0 = times[0] || 0, t1 = times[times.length - 1] || 1;
  const x = t => L + (W - L - 4) * (t1 === t0 ? 1 : (t - t0) / (t1 - t0));
  const y = v => H - B - (H - B - 6) * v / hi;
  mk("line", { class: "axis", x1: L, y1: H - B, x2: W, y2: H - B });
  mk("line", { class: "axis", x1: L, y1: 4, x2: L, y2: H - B });
  mk("text", { x: 2, y: 12 }, fmt(hi));
  mk("text", { x: 2, y: H - B }, "0");
  if (times.length) mk("text", { x: L, y: H - 4 }, new Date(t0).toLocaleTimeString());
  if (times.length) mk("text", { x: W - 60, y: H - 4 }, new Date(t1).toLocaleTimeString());
  if (showLimit) mk("line", { class: "limit", x1: L, y1: y(limit), x2: W, y2: y(limit) });
  if (values.length) mk("polyline", { class: "series", points: values.map((v, i) => x(times[i]) + "," + y(v)).join(" ") });
  box.replaceChildren(el("div", { class: "title" }, name + (values.length ? ": " + fmt(values[values.length - 1]) : "")), svg);
}

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("filter").addEventListener("input", e => { state.filter = e.target.value; renderProcesses(); });
  document.getElementById("more").addEventListener("click", () => { state.showAll = true; renderProcesses(); });
  fetch("api/links").then(r => r.json()).then(links => {
    const nav = document.getElementById("links");
    for (const [name, href] of Object.entries(links)) nav.append(el("a", { href: href.replace(/^\//, "") }, name));
  }).catch(() => {});
  refresh();
});
