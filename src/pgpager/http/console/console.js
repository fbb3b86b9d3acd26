// pgpager's web console: plain JavaScript over pgpager's own JSON API, with the API key the user
// enters once (kept in this tab's sessionStorage). What the key may not do is not shown.
"use strict";

const KEY = "pgpager.key";
const METRICS_EVERY_S = 2;
const METRICS_KEEP_S = 600;
const $ = (sel) => document.querySelector(sel);
const $$ = (sel) => Array.from(document.querySelectorAll(sel));

let me = null; // {key_id, scopes, keys_configured}
const collections = {}; // name -> the collection's info

// --- the API ------------------------------------------------------------------------------
class ApiError extends Error {
  constructor(status, body) {
    const err = body && body.error;
    super(err && err.message ? err.message : `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

async function api(method, path, body) {
  const headers = {};
  const key = sessionStorage.getItem(KEY);
  if (key) headers.Authorization = "Bearer " + key;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const r = await fetch(path, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch (e) { data = text; }
  }
  if (!r.ok) throw new ApiError(r.status, data);
  return data;
}

function may(scope) {
  return !!me && me.scopes.includes(scope);
}

function mayAny(scopes) {
  return scopes.split(" ").some(may);
}

// --- small DOM helpers ----------------------------------------------------------------------
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : String(c ?? ""));
  return node;
}

function showError(id, err) {
  $(id).textContent = err ? (err.message || String(err)) : "";
}

function duration(s) {
  if (s === null || s === undefined) return "-";
  s = Math.max(0, s);
  if (s < 60) return s.toFixed(s < 10 ? 1 : 0) + "s";
  if (s < 3600) return Math.floor(s / 60) + "m" + String(Math.floor(s % 60)).padStart(2, "0") + "s";
  if (s < 86400) return Math.floor(s / 3600) + "h" + String(Math.floor((s % 3600) / 60)).padStart(2, "0") + "m";
  return Math.floor(s / 86400) + "d" + Math.floor((s % 86400) / 3600) + "h";
}

function bytes(n) {
  if (n === null || n === undefined) return "-";
  const units = ["B", "kB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : n) + " " + units[i];
}

function short(json) {
  if (json === undefined || json === null) return "";
  const text = typeof json === "string" ? json : JSON.stringify(json);
  return text.length > 120 ? text.slice(0, 117) + "..." : text;
}

function hitRow(n, hit) {
  return el("tr", { "data-id": hit.id },
    el("td", { class: "num" }, n), el("td", {}, hit.id),
    el("td", { class: "num" }, hit.score === undefined ? "" : hit.score.toFixed(4)),
    el("td", { class: "meta" }, short(hit.metadata ?? hit.data)));
}

// --- sign-in and views ----------------------------------------------------------------------
async function signIn() {
  try {
    me = await api("GET", "/v1/whoami");
  } catch (err) {
    me = null;
    if (err.status === 401) {
      $("#login").hidden = false;
      $$(".view").forEach((v) => (v.hidden = true));
      $("#nav").hidden = true;
      $("#signout").hidden = true;
      $("#who").textContent = "";
      if (sessionStorage.getItem(KEY)) showError("#login-error", err);
      return;
    }
    showError("#login-error", err);
    $("#login").hidden = false;
    return;
  }
  $("#login").hidden = true;
  showError("#login-error", null);
  currentTab = null;
  $("#nav").hidden = false;
  $("#signout").hidden = !me.keys_configured;
  // What the key may not do is not offered.
  $$("[data-scope]").forEach((node) => (node.hidden = !mayAny(node.dataset.scope)));
  if (!may("read")) $("input[name=sq-mode][value=sql]").checked = true;
  if (!may("sql")) $("input[name=sq-mode][value=vector]").checked = true;
  sqMode();
  startMetrics();
  if (may("read")) await loadCollections();
  // Who is signed in shows once the console is ready: a search started before the collections
  // were loaded went to no collection.
  $("#who").textContent = me.keys_configured
    ? `key ${me.key_id}: ${me.scopes.join(", ")}`
    : "no API keys on this server: every action is open";
  route();
}

function route() {
  if (!me) return;
  let [view, arg] = location.hash.slice(1).split("/");
  const link = $(`#nav a[data-view="${view}"]`);
  if (!link || link.hidden) {
    const first = $$("#nav a[data-view]").find((a) => !a.hidden);
    view = first.dataset.view;
  }
  $$("#nav a[data-view]").forEach((a) => a.classList.toggle("current", a.dataset.view === view));
  $$(".view").forEach((v) => (v.hidden = v.id !== "view-" + view));
  if (view === "search" && arg) selectCollection(decodeURIComponent(arg));
  if (view === "search") selectTab(currentTab || $$("#search-tabs button").find((b) => !b.hidden).dataset.tab);
  if (view === "collections") loadCollections();
  refreshLive();
}

$("#login-form").addEventListener("submit", (e) => {
  e.preventDefault();
  sessionStorage.setItem(KEY, $("#login-key").value.trim());
  $("#login-key").value = "";
  signIn();
});

$("#signout").addEventListener("click", () => {
  sessionStorage.removeItem(KEY);
  location.hash = "";
  signIn();
});

window.addEventListener("hashchange", route);

// --- collections ----------------------------------------------------------------------------
async function loadCollections() {
  try {
    const list = (await api("GET", "/v1/collections")).collections;
    const infos = await Promise.all(list.map((c) => api("GET", "/v1/collections/" + encodeURIComponent(c.name))));
    for (const k of Object.keys(collections)) delete collections[k];
    const body = $("#collections-table tbody");
    body.replaceChildren();
    for (const c of infos) {
      collections[c.name] = c;
      const hnsw = c.indexes.find((i) => i.method === "hnsw");
      const index = hnsw
        ? `hnsw m=${c.hnsw.m} ef_construction=${c.hnsw.ef_construction}` + (hnsw.valid ? "" : " (invalid)")
        : "none";
      body.append(el("tr", { "data-name": c.name },
        el("td", {}, el("a", { href: "#search/" + encodeURIComponent(c.name) }, c.name)),
        el("td", { class: "num" }, c.vector_count), el("td", { class: "num" }, c.dimension),
        el("td", {}, c.metric), el("td", {}, c.embedding_model || "-"),
        el("td", { title: c.indexes.map((i) => `${i.name} (${i.method})`).join("\n") }, index),
        el("td", { class: "num" }, bytes(c.size_bytes))));
    }
    const select = $("#search-collection");
    const chosen = select.value;
    select.replaceChildren(...infos.map((c) => el("option", { value: c.name }, c.name)));
    if (chosen && collections[chosen]) select.value = chosen;
    selectCollection(select.value);
    showError("#collections-error", null);
  } catch (err) {
    showError("#collections-error", err);
  }
}

$("#collections-refresh").addEventListener("click", loadCollections);

// --- the search playground ------------------------------------------------------------------
let currentTab = null;

function selectCollection(name) {
  const c = collections[name];
  if (!c) return;
  const select = $("#search-collection");
  if (select.value !== name) select.value = name;
  const text = !!c.embedding_model;
  $("#search-query-what").textContent = text ? `text (embedded with ${c.embedding_model})` : `vector (JSON, ${c.dimension} numbers)`;
  $("#search-kind").textContent = `${c.metric}, ${c.vector_count} vectors`;
  const q = $("#search-query");
  if (!q.dataset.edited) q.value = text ? "" : JSON.stringify(Array.from({ length: c.dimension }, (_, i) => (i === 0 ? 1 : 0)));
  const sql = $("#sq-sql");
  if (!sql.dataset.edited) sql.value = `SELECT id, metadata FROM ${c.table} ORDER BY id`;
}

$("#search-collection").addEventListener("change", (e) => {
  delete $("#search-query").dataset.edited;
  location.hash = "search/" + encodeURIComponent(e.target.value);
});
$("#search-query").addEventListener("input", (e) => (e.target.dataset.edited = "1"));
$("#sq-sql").addEventListener("input", (e) => (e.target.dataset.edited = "1"));

function selectTab(tab) {
  currentTab = tab;
  $$("#search-tabs button").forEach((b) => b.classList.toggle("current", b.dataset.tab === tab));
  $$(".tab").forEach((t) => (t.hidden = t.id !== "tab-" + tab));
}

$$("#search-tabs button").forEach((b) => b.addEventListener("click", () => selectTab(b.dataset.tab)));

function pageSize() {
  return Math.max(1, parseInt($("#search-size").value, 10) || 10);
}

/** The query part of a request body: {vector} or {data}, the filter if any. */
function queryBody() {
  const name = $("#search-collection").value;
  const c = collections[name];
  const body = {};
  const raw = $("#search-query").value.trim();
  if (c && c.embedding_model) {
    body.data = raw;
  } else {
    try { body.vector = JSON.parse(raw); } catch (e) { throw new Error("the vector must be a JSON array of numbers, e.g. [1, 0, 0]"); }
  }
  const filter = $("#search-filter").value.trim();
  if (filter) body.filter = filter;
  return [name, body];
}

// Resumable: a handle, "Load more" and infinite scroll, Stop.
const rs = { handle: null, state: null, loading: false, shown: 0, stopped: null };

function rsShow(page, stopped) {
  if (!stopped && rs.stopped === page.handle) return;
  rs.handle = page.handle;
  rs.state = page.state;
  $("#rs-handle").textContent = page.handle;
  $("#rs-state").textContent = page.state;
  $("#rs-state").className = "state-" + page.state;
  $("#rs-position").textContent = page.position;
  const body = $("#rs-results tbody");
  for (const hit of page.results || []) body.append(hitRow(++rs.shown, hit));
  $("#rs-count").textContent = rs.shown;
  const active = page.state === "active";
  $("#rs-more").disabled = !active;
  $("#rs-stop").disabled = !active;
}

async function rsCall(fn) {
  if (rs.loading) return;
  rs.loading = true;
  showError("#rs-error", null);
  try {
    await fn();
  } catch (err) {
    showError("#rs-error", err);
    if (err.status === 410 || err.status === 404) {
      $("#rs-more").disabled = $("#rs-stop").disabled = true;
      rs.state = "closed";
    }
  } finally {
    rs.loading = false;
  }
  rsMaybeMore();
}

$("#rs-start").addEventListener("click", () => rsCall(async () => {
  const [name, body] = queryBody();
  if (rs.handle && rs.state === "active") {
    // A new query replaces the old one: do not leave its cursor open.
    api("DELETE", `/v1/resumable-queries/${rs.handle}`).catch(() => {});
  }
  rs.handle = null;
  rs.shown = 0;
  $("#rs-results tbody").replaceChildren();
  body.top_k = pageSize();
  body.include_metadata = true;
  rsShow(await api("POST", `/v1/collections/${encodeURIComponent(name)}/resumable-queries`, body));
}));

$("#rs-more").addEventListener("click", () => rsCall(async () => {
  if (!rs.handle || rs.state !== "active") return;
  rsShow(await api("POST", `/v1/resumable-queries/${rs.handle}/next`, { additional_k: pageSize() }));
}));

// Stop is never held back by a batch still loading; a batch that arrives after it is dropped.
$("#rs-stop").addEventListener("click", async () => {
  const handle = rs.handle;
  rs.stopped = handle;
  showError("#rs-error", null);
  try {
    const status = await api("DELETE", `/v1/resumable-queries/${handle}`);
    rsShow({ handle: status.handle, state: status.state, position: status.position, results: [] }, true);
  } catch (err) {
    rs.stopped = null;
    showError("#rs-error", err);
  }
});

function rsMaybeMore() {
  if (!$("#rs-auto").checked || rs.loading || rs.state !== "active" || $("#tab-resumable").hidden) return;
  const r = $("#rs-sentinel").getBoundingClientRect();
  if (r.top < window.innerHeight) $("#rs-more").click();
}

new IntersectionObserver(rsMaybeMore).observe($("#rs-sentinel"));

// Offset pages: numbered, and the cap's error as the API words it.
const off = { page: 1, last: null };

async function offShow(page) {
  showError("#off-error", null);
  const size = pageSize();
  try {
    const [name, body] = queryBody();
    body.limit = size;
    body.offset = (page - 1) * size;
    body.include_metadata = true;
    const r = await api("POST", `/v1/collections/${encodeURIComponent(name)}/search`, body);
    off.page = page;
    if (r.results.length < size) off.last = page;
    else if (off.last !== null && off.last <= page) off.last = null;
    $("#off-results tbody").replaceChildren(...r.results.map((hit, i) => hitRow(body.offset + i + 1, hit)));
    $("#off-range").textContent = r.results.length
      ? `rows ${body.offset + 1}-${body.offset + r.results.length}` : "no rows on this page";
  } catch (err) {
    $("#off-results tbody").replaceChildren();
    $("#off-range").textContent = "";
    off.page = page;
    off.last = page; // nothing past a refused page (the cap)
    showError("#off-error", err);
  }
  $("#off-page").value = off.page;
  offPager();
}

function offPager() {
  const pager = $("#off-pager");
  const last = off.last ?? off.page + 2;
  const pages = [];
  for (let p = Math.max(1, off.page - 3); p <= Math.max(last, off.page); p++) pages.push(p);
  const button = (label, p, cls) => el("button", { "data-page": p, class: cls || "", onclick: () => offShow(p) }, label);
  pager.replaceChildren(
    ...(off.page > 1 ? [button("« prev", off.page - 1, "prev")] : []),
    ...pages.map((p) => button(p, p, p === off.page ? "current" : "")),
    ...(off.last === null || off.page < off.last ? [button("next »", off.page + 1, "next")] : []));
}

$("#off-go").addEventListener("click", () => {
  off.last = null;
  offShow(Math.max(1, parseInt($("#off-page").value, 10) || 1));
});

// Stored query: SQL or a vector search, kept on the server and paged by cursor.
const sq = { id: null, next: null, page: 0, total: null };

function sqRows(rows) {
  const cols = [];
  for (const row of rows) for (const k of Object.keys(row)) if (!cols.includes(k)) cols.push(k);
  $("#sq-results thead").replaceChildren(el("tr", {}, ...cols.map((c) => el("th", {}, c))));
  $("#sq-results tbody").replaceChildren(...rows.map((row) => el("tr", {},
    ...cols.map((c) => el("td", { class: typeof row[c] === "object" ? "meta" : "" },
      typeof row[c] === "object" ? short(row[c]) : row[c])))));
}

/** Show the inputs of the chosen kind of stored query (SQL text, or how many results to keep). */
function sqMode() {
  const mode = $("input[name=sq-mode]:checked").value;
  $(".sq-vector").style.display = mode === "vector" ? "" : "none";
  $(".sq-sql").style.display = mode === "sql" ? "" : "none";
}

$$("input[name=sq-mode]").forEach((r) => r.addEventListener("change", sqMode));

function sqStatus() {
  $("#sq-id").textContent = sq.id || "-";
  $("#sq-total").textContent = sq.total ?? "-";
  const pages = sq.total === null ? "?" : Math.max(1, Math.ceil(sq.total / pageSize()));
  $("#sq-page").textContent = sq.page ? `${sq.page} of ${pages}` : "-";
  $("#sq-next").disabled = !sq.next;
  $("#sq-refresh").disabled = !sq.id;
}

function sqState(state) {
  $("#sq-state").textContent = state;
  $("#sq-state").className = "state-" + state;
}

$("#sq-run").addEventListener("click", async () => {
  showError("#sq-error", null);
  Object.assign(sq, { id: null, next: null, page: 0, total: null });
  sqRows([]);
  sqState("-");
  try {
    const body = { max_initial_results: pageSize() };
    if ($("input[name=sq-mode]:checked").value === "sql") {
      body.sql = { query: $("#sq-sql").value };
    } else {
      const [collection, q] = queryBody();
      body.vector_search = { collection, ...q, limit: parseInt($("#sq-limit").value, 10) || 100, include_metadata: true };
    }
    sqState("RUNNING");
    const r = await api("POST", "/v1/queries", body);
    Object.assign(sq, { id: r.query_id, next: r.pagination.next_cursor, page: 1, total: r.results_total_doc_count });
    sqState(r.state);
    sqRows(r.results);
  } catch (err) {
    sqState("error");
    showError("#sq-error", err);
  }
  sqStatus();
});

$("#sq-next").addEventListener("click", async () => {
  showError("#sq-error", null);
  try {
    const r = await api("GET", `/v1/queries/${sq.id}/pages?docs=${pageSize()}&cursor=${encodeURIComponent(sq.next)}`);
    sq.next = r.pagination.next_cursor;
    sq.page += 1;
    sq.total = r.results_total_doc_count;
    sqRows(r.results);
  } catch (err) {
    showError("#sq-error", err);
  }
  sqStatus();
});

$("#sq-refresh").addEventListener("click", async () => {
  try {
    const d = (await api("GET", `/v1/queries/${sq.id}`)).data;
    sqState(d.state);
    sq.total = d.results_total_doc_count;
    showError("#sq-error", d.error ? new Error(d.error) : null);
  } catch (err) {
    showError("#sq-error", err);
  }
  sqStatus();
});

// --- live tables: handles (admin) and stored queries ----------------------------------------
let liveTimer = null;

async function refreshLive() {
  clearTimeout(liveTimer);
  if (!me) return;
  if (!$("#view-handles").hidden) await refreshHandles();
  if (!$("#view-queries").hidden) await refreshQueries();
  liveTimer = setTimeout(refreshLive, 2000);
}

async function refreshHandles() {
  try {
    const q = $("#handles-active").checked ? "?state=active" : "";
    const list = (await api("GET", "/v1/admin/handles" + q)).handles;
    $("#handles-table tbody").replaceChildren(...list.map((h) => el("tr", { "data-handle": h.handle },
      el("td", { title: h.handle }, el("code", {}, h.handle.slice(0, 12) + "...")),
      el("td", {}, h.collection),
      el("td", { class: "state state-" + h.state, title: h.state_reason || "" }, h.state),
      el("td", {}, h.phase), el("td", { class: "num" }, h.position),
      el("td", { class: "num" }, duration(h.age_seconds)),
      el("td", { class: "num" }, duration(h.idle_seconds)),
      el("td", { class: "num" }, duration(h.expires_in_seconds)),
      el("td", {}, h.owner_instance || "-"), el("td", {}, h.api_key_id || "-"),
      el("td", {}, h.state === "active"
        ? el("button", { class: "stop", onclick: (e) => stopHandle(e, h.handle) }, "Stop") : ""))));
    showError("#handles-error", null);
  } catch (err) {
    showError("#handles-error", err);
  }
}

async function stopHandle(event, handle) {
  event.target.disabled = true;
  try {
    await api("DELETE", "/v1/admin/handles/" + encodeURIComponent(handle));
  } catch (err) {
    showError("#handles-error", err);
  }
  refreshLive();
}

$("#handles-active").addEventListener("change", refreshLive);

async function refreshQueries() {
  try {
    const list = (await api("GET", "/v1/queries")).data;
    const now = Date.now();
    $("#queries-table tbody").replaceChildren(...list.map((q) => el("tr", { "data-query": q.query_id },
      el("td", {}, el("code", {}, q.query_id)), el("td", {}, q.kind),
      el("td", { class: "state state-" + q.state }, q.state),
      el("td", { class: "num" }, q.results_total_doc_count ?? "-"),
      el("td", { class: "num" }, bytes(q.stats.size_bytes)),
      el("td", {}, new Date(q.created_at).toLocaleTimeString()),
      el("td", { class: "num" }, duration((Date.parse(q.expires_at) - now) / 1000)),
      el("td", { class: "meta" }, q.error || ""),
      el("td", {}, el("button", { class: "delete", onclick: (e) => deleteQuery(e, q.query_id) }, "Delete")))));
    showError("#queries-error", null);
  } catch (err) {
    showError("#queries-error", err);
  }
}

async function deleteQuery(event, id) {
  event.target.disabled = true;
  try {
    await api("DELETE", "/v1/queries/" + encodeURIComponent(id));
  } catch (err) {
    showError("#queries-error", err);
  }
  refreshLive();
}

// --- metrics: next latency and active handles from /metrics --------------------------------
// {t, mean_ms, p95_ms, active}, kept in the tab so a reload does not lose the history.
const samples = JSON.parse(sessionStorage.getItem("pgpager.samples") || "[]");
let metricsTimer = null;
let previous = null;

function parseMetrics(text) {
  const out = { buckets: [] };
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const m = line.match(/^(\w+)(?:\{([^}]*)\})? (\S+)/);
    if (!m) continue;
    const [, name, labels, value] = m;
    const v = parseFloat(value);
    if (name === "pgpager_handles_active") out.active = v;
    else if (name === "pgpager_next_latency_seconds_sum") out.sum = v;
    else if (name === "pgpager_next_latency_seconds_count") out.count = v;
    else if (name === "pgpager_next_latency_seconds_bucket") {
      out.buckets.push([parseFloat(labels.match(/le="([^"]+)"/)[1]), v]);
    }
  }
  return out;
}

function p95(now, before) {
  const n = now.count - before.count;
  if (n <= 0) return null;
  for (let i = 0; i < now.buckets.length; i++) {
    const [le, cum] = now.buckets[i];
    if (cum - before.buckets[i][1] >= 0.95 * n) return Number.isFinite(le) ? le * 1000 : null;
  }
  return null;
}

async function sampleMetrics() {
  try {
    const key = sessionStorage.getItem(KEY);
    const r = await fetch("/metrics", { headers: key ? { Authorization: "Bearer " + key } : {} });
    if (!r.ok) throw new ApiError(r.status, await r.json().catch(() => null));
    const now = parseMetrics(await r.text());
    now.t = Date.now();
    const sample = { t: now.t, active: now.active ?? 0, mean_ms: null, p95_ms: null };
    if (previous && now.count > previous.count) {
      sample.mean_ms = ((now.sum - previous.sum) / (now.count - previous.count)) * 1000;
      sample.p95_ms = p95(now, previous);
    }
    previous = now;
    samples.push(sample);
    while (samples.length && samples[0].t < now.t - METRICS_KEEP_S * 1000) samples.shift();
    sessionStorage.setItem("pgpager.samples", JSON.stringify(samples));
    drawMetrics();
    showError("#metrics-error", null);
  } catch (err) {
    showError("#metrics-error", err);
  }
  metricsTimer = setTimeout(sampleMetrics, METRICS_EVERY_S * 1000);
}

function startMetrics() {
  if (metricsTimer === null) sampleMetrics();
}

function chart(svg, series) {
  // The time axis spans the samples there are, from one minute up to METRICS_KEEP_S.
  const W = 600, H = 150, now = Date.now();
  const span = Math.min(METRICS_KEEP_S * 1000, Math.max(60000, now - (samples.length ? samples[0].t : now)));
  const t0 = now - span;
  const values = series.flatMap((s) => samples.map((p) => p[s.field]).filter((v) => v !== null));
  const top = Math.max(1e-9, ...values) * 1.15;
  const x = (t) => ((t - t0) / span) * (W - 8) + 4;
  const y = (v) => H - 14 - (v / top) * (H - 28);
  const parts = [
    svgEl("text", { x: 4, y: 10 }, top.toPrecision(3)),
    svgEl("text", { x: 4, y: H - 2 }, `-${Math.round(span / 60000)} min`),
    svgEl("text", { x: W - 24, y: H - 2 }, "now"),
  ];
  for (const s of series) {
    const points = samples.filter((p) => p[s.field] !== null).map((p) => [x(p.t).toFixed(1), y(p[s.field]).toFixed(1)]);
    parts.push(svgEl("polyline", { class: s.cls, points: points.map((p) => p.join(",")).join(" "), "data-points": points.length }));
    for (const [cx, cy] of points) parts.push(svgEl("circle", { class: s.cls, cx, cy, r: 1.5 }));
  }
  svg.replaceChildren(...parts);
}

function svgEl(tag, attrs, text) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

function drawMetrics() {
  const last = samples[samples.length - 1];
  const lastLatency = [...samples].reverse().find((p) => p.mean_ms !== null);
  $("#m-active").textContent = last ? last.active : "-";
  $("#m-mean").textContent = lastLatency ? lastLatency.mean_ms.toFixed(2) : "-";
  $("#m-p95").textContent = lastLatency && lastLatency.p95_ms !== null ? lastLatency.p95_ms.toFixed(1) : "-";
  chart($("#chart-latency"), [{ field: "mean_ms", cls: "mean" }, { field: "p95_ms", cls: "p95" }]);
  chart($("#chart-handles"), [{ field: "active", cls: "handles" }]);
}

$("#metrics-every").textContent = METRICS_EVERY_S;
signIn();
