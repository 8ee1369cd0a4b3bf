// The admin page: reads the three services' JSON APIs with the key the operator gives, and shows them.
// Data only ever goes into the page as text (textContent), never as markup.
"use strict";

const KEY = "corpus-admin-key";
let urls = { search: location.origin };

function key() { return sessionStorage.getItem(KEY); }

async function api(service, path, options = {}) {
  const response = await fetch(urls[service] + path, {
    ...options,
    headers: { ...(options.headers || {}), Authorization: "Bearer " + key() },
  });
  const isJson = (response.headers.get("content-type") || "").includes("json");
  const body = isJson ? await response.json() : await response.text();
  if (!response.ok) {
    const detail = isJson ? (body.detail || body.title) : body;
    throw new Error(`${service} ${path.split("?")[0]}: ${response.status} ${detail}`);
  }
  return body;
}

function cell(row, value, className) {
  const td = row.insertCell();
  td.textContent = value === null || value === undefined ? "—" : String(value);
  if (className) td.className = className;
  return td;
}

function rows(sectionId, items, fill) {
  const body = document.querySelector(`#${sectionId} tbody`);
  body.replaceChildren();
  for (const item of items) fill(body.insertRow(), item);
  if (!items.length) cell(body.insertRow(), "none", "muted");
}

function failed(sectionId, error) {
  const section = document.getElementById(sectionId);
  let note = section.querySelector(".error");
  if (!note) { note = document.createElement("p"); note.className = "error"; section.append(note); }
  note.textContent = error ? String(error.message || error) : "";
}

async function panel(sectionId, work) {
  try { await work(); failed(sectionId, null); } catch (error) { failed(sectionId, error); }
}

function services() {
  return panel("services", async () => {
    const results = await Promise.all(Object.entries(urls).map(async ([name, url]) => {
      try {
        const response = await fetch(url + "/readyz");
        return [name, url, response.ok, await response.text()];
      } catch (error) {
        return [name, url, false, String(error)];
      }
    }));
    rows("services", results, (row, [name, url, ok, detail]) => {
      cell(row, name); cell(row, url, "muted"); cell(row, ok ? "ready" : "not ready", ok ? "ok" : "bad");
      cell(row, ok ? "" : detail.slice(0, 300), "muted");
    });
  });
}

function facetLine(parent, title, buckets) {
  const p = document.createElement("p");
  p.textContent = `${title}: ` + (buckets || []).map((b) => `${b.value} (${b.count})`).join(", ");
  parent.append(p);
}

function corpus() {
  return panel("corpus", async () => {
    const page = await api("search", "/v1/search?limit=1&facets=formats,sources,labels,created");
    const nearDuplicates = await api("search", "/v1/search?limit=1&near_duplicate=true");
    const body = document.querySelector("#corpus .body");
    body.replaceChildren();
    const total = document.createElement("p");
    total.className = "big";
    total.textContent = `${page.total.toLocaleString()}${page.total_relation === "gte" ? "+" : ""} images`;
    body.append(total);
    facetLine(body, "near-duplicates kept", [{ value: "linked to an original", count: nearDuplicates.total }]);
    facetLine(body, "formats", page.facets.formats);
    facetLine(body, "sources", page.facets.sources);
    facetLine(body, "top labels", page.facets.labels);
    facetLine(body, "added per month", page.facets.created);
  });
}

function queues() {
  return panel("queues", async () => {
    const body = await api("search", "/v1/admin/bus");
    rows("queues", body.queues, (row, q) => {
      cell(row, q.queue); cell(row, q.waiting); cell(row, q.parked, q.parked ? "bad" : "ok");
    });
  });
}

function rejections() {
  return panel("rejections", async () => {
    const body = await api("ingest", "/v1/rejections?limit=15");
    rows("rejections", body.items, (row, r) => {
      cell(row, r.rejected_at.slice(0, 19).replace("T", " ")); cell(row, r.reason, "bad");
      cell(row, r.filename || r.source || (r.origin && r.origin.uri) || r.sha256 || ""); cell(row, r.message);
    });
  });
}

function imports() {
  return panel("imports", async () => {
    const body = await api("ingest", "/v1/imports?limit=10");
    rows("imports", body.items, (row, job) => {
      cell(row, job.created_at.slice(0, 19).replace("T", " ")); cell(row, job.kind); cell(row, job.dataset);
      cell(row, job.status, job.status === "failed" ? "bad" : job.status === "done" ? "ok" : "");
      cell(row, job.total ? `${job.processed} / ${job.total}` : job.processed);
      cell(row, Object.entries(job.counts).filter(([, v]) => v).map(([k, v]) => `${k.replaceAll("_", " ")} ${v}`).join(", "));
    });
  });
}

function labels() {
  return panel("labels", async () => {
    const body = await api("annotation", "/v1/labels?limit=50");
    rows("labels", body.items, (row, label) => {
      cell(row, label.name); cell(row, (label.aliases || []).join(", ")); cell(row, label.merged_into, "muted");
    });
  });
}

async function followJob(job) {
  const body = document.querySelector("#index .body");
  for (;;) {
    body.textContent = `${job.kind}: ${job.state}, ${job.phase} ${job.done}${job.total ? " / " + job.total : ""}` +
      (job.result ? " — " + JSON.stringify(job.result) : "") + (job.error ? " — " + job.error : "");
    if (job.state !== "running" && job.state !== "queued") return;
    await new Promise((resolve) => setTimeout(resolve, 1000));
    job = await api("search", `/v1/admin/jobs/${encodeURIComponent(job.id)}`);
  }
}

function startJob(kind) {
  return panel("index", async () => {
    const job = kind === "reindex"
      ? await api("search", "/v1/admin/reindex", { method: "POST" })
      : await api("search", "/v1/admin/reconcile?repair=true", { method: "POST" });
    await followJob(job);
  });
}

function refresh() {
  return Promise.all([services(), corpus(), queues(), rejections(), imports(), labels()]);
}

async function open() {
  const me = await api("annotation", "/v1/me");
  if (me.role !== "admin") throw new Error(`this key belongs to ${me.name}, whose role is ${me.role}: the admin page needs an admin's key`);
  document.getElementById("who").textContent = `${me.name} (${me.role})`;
  document.getElementById("login").hidden = true;
  for (const id of ["panels", "refresh", "logout"]) document.getElementById(id).hidden = false;
  await refresh();
}

async function start() {
  const config = await (await fetch("/admin/config.json")).json();
  urls = { search: location.origin, ingest: config.ingest_url, annotation: config.annotation_url };
  const login = document.getElementById("login");
  login.addEventListener("submit", async (event) => {
    event.preventDefault();
    sessionStorage.setItem(KEY, document.getElementById("key").value.trim());
    try { await open(); } catch (error) {
      sessionStorage.removeItem(KEY);
      document.getElementById("login-error").textContent = String(error.message || error);
    }
  });
  document.getElementById("logout").addEventListener("click", () => { sessionStorage.removeItem(KEY); location.reload(); });
  document.getElementById("refresh").addEventListener("click", refresh);
  for (const button of document.querySelectorAll("button[data-job]")) button.addEventListener("click", () => startJob(button.dataset.job));
  setInterval(() => { if (key()) refresh(); }, 15000);
  if (key()) { try { await open(); return; } catch (error) { sessionStorage.removeItem(KEY); } }
  login.hidden = false;
}

start();
