// Verdant's dashboard: reads the operator's JSON API every few seconds and draws the
// sites (with an inline SVG forecast chart), the jobs and the nodes. No dependencies.
// Data is inserted as text nodes only, never as HTML.
"use strict";

const REFRESH_MS = 5000;
const SVG_NS = "http://www.w3.org/2000/svg";

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function svg(tag, attrs, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
  for (const child of children) node.append(child instanceof Node ? child : String(child));
  return node;
}

function kw(value) {
  if (value === null || value === undefined) return "–";
  const abs = Math.abs(value);
  if (abs >= 10000) return (value / 1000).toFixed(1) + " MW";
  return value.toLocaleString("en-US", { maximumFractionDigits: abs < 100 ? 1 : 0 }) + " kW";
}

function watts(value) {
  if (value >= 10000) return (value / 1000).toFixed(1) + " kW";
  return Math.round(value).toLocaleString("en-US") + " W";
}

function energy(kwh) {
  if (kwh < 1) return (kwh * 1000).toFixed(kwh < 0.01 ? 1 : 0) + " Wh";
  return kwh.toLocaleString("en-US", { maximumFractionDigits: kwh < 100 ? 2 : 0 }) + " kWh";
}

function grams(g) {
  return g < 1000 ? Math.round(g) + " g" : (g / 1000).toFixed(g < 10000 ? 2 : 1) + " kg";
}

function percent(value) {
  if (value === null || value === undefined) return "–";
  return value.toFixed(value > 0 && value < 10 ? 1 : 0) + " %";
}

// Short labels for chart axes: 750 kW, 1.5 MW.
function axisKw(value) {
  if (value >= 1000) return +(value / 1000).toFixed(2) + " MW";
  return +value.toFixed(1) + " kW";
}

function ago(seconds) {
  if (seconds === null || seconds === undefined) return "never";
  if (seconds < 90) return seconds + " s ago";
  if (seconds < 5400) return Math.round(seconds / 60) + " min ago";
  return (seconds / 3600).toFixed(1) + " h ago";
}

function niceMax(value) {
  if (!(value > 0)) return 1;
  const magnitude = Math.pow(10, Math.floor(Math.log10(value)));
  for (const step of [1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10]) {
    if (value <= step * magnitude) return step * magnitude;
  }
  return 10 * magnitude;
}

// Stacked hourly bars (solar under wind) for the next 48 hours, with the load now as a
// dashed line, so a glance shows when supply will cover the load. On a sped-up clock
// (`--time-scale`, `make demo`) a bar is shorter than an hour: the axis counts the
// operator's hours from now.
function forecastChart(site) {
  const width = 520, height = 150;
  const left = 52, right = 8, top = 10, bottom = 20;
  const plotW = width - left - right, plotH = height - top - bottom;
  const hours = site.forecast;
  const chart = svg("svg", {
    viewBox: `0 0 ${width} ${height}`, class: "chart", role: "img",
    "aria-label": `48-hour renewable forecast of ${site.name}`,
  });
  if (hours.length === 0) {
    chart.append(svg("text", { x: width / 2, y: height / 2, class: "chart-empty", "text-anchor": "middle" },
      "no forecast yet"));
    return chart;
  }
  const load = site.loadKw || 0;
  const peak = Math.max(load, ...hours.map(h => h.solarKw + h.windKw));
  const max = niceMax(peak * 1.05);
  const y = value => top + plotH - (value / max) * plotH;
  const barW = plotW / hours.length;
  const scaled = site.forecastStepSeconds !== null && site.forecastStepSeconds < 3600;

  for (const fraction of [0, 0.5, 1]) {
    const value = max * fraction;
    chart.append(svg("line", { x1: left, x2: width - right, y1: y(value), y2: y(value), class: "grid" }));
    chart.append(svg("text", { x: left - 6, y: y(value) + 4, "text-anchor": "end", class: "axis" }, axisKw(value)));
  }
  hours.forEach((hour, i) => {
    const x = left + i * barW + 0.5;
    const w = Math.max(barW - 1, 1);
    const time = new Date(hour.time);
    const when = scaled
      ? `+${i} h (${time.toLocaleTimeString("en-US", { hour12: false })})`
      : time.toLocaleString("en-US", { weekday: "short", hour: "2-digit", minute: "2-digit" });
    const title = `${when}: solar ${kw(hour.solarKw)}, wind ${kw(hour.windKw)}`;
    const group = svg("g", {}, svg("title", {}, title));
    if (hour.solarKw > 0) {
      group.append(svg("rect", { x, y: y(hour.solarKw), width: w, height: y(0) - y(hour.solarKw), class: "solar" }));
    }
    if (hour.windKw > 0) {
      group.append(svg("rect", {
        x, y: y(hour.solarKw + hour.windKw), width: w,
        height: y(hour.solarKw) - y(hour.solarKw + hour.windKw), class: "wind",
      }));
    }
    chart.append(group);
    if (i % 6 === 0) {
      const label = scaled ? `+${i} h` : time.getHours() === 0 || i === 0
        ? time.toLocaleDateString("en-US", { weekday: "short" }) + " " + String(time.getHours()).padStart(2, "0") + "h"
        : String(time.getHours()).padStart(2, "0") + "h";
      chart.append(svg("text", { x: left + i * barW, y: height - 5, class: "axis" }, label));
    }
  });
  if (load > 0) {
    chart.append(svg("line", { x1: left, x2: width - right, y1: y(load), y2: y(load), class: "load" }));
    chart.append(svg("text", { x: width - right - 2, y: y(load) - 4, "text-anchor": "end", class: "load-label" },
      "load now " + kw(load)));
  }
  return chart;
}

function metric(label, value, cls, note) {
  return el("div", { class: "metric " + (cls || "") }, el("div", { class: "metric-label" }, label),
    el("div", { class: "metric-value" }, value), note ? el("div", { class: "metric-note" }, note) : null);
}

function siteCard(site) {
  const headroom = site.headroomKw;
  const share = site.renewableSharePercent;
  const notReady = site.conditions.find(c => c.type === "Ready" && c.status !== "True");
  const degraded = site.conditions.find(c => c.type === "ForecastDegraded" && c.status === "True");
  return el("article", {
    class: "card site", "data-site": site.name, "data-nodes": site.nodes,
    "data-renewable-kw": site.renewableKw === null ? null : String(site.renewableKw),
  },
    el("div", { class: "card-head" },
      el("h3", {}, site.name),
      el("span", { class: "badge" }, site.provider || "no forecast"),
      site.nodes === 0 ? el("span", { class: "badge", title: "no node matches its nodeSelector: its supply feeds nothing" }, "no nodes") : null,
      el("span", { class: "badge " + (site.ready ? "ok" : "bad") }, site.ready ? "Ready" : "Not ready")),
    el("div", { class: "metrics" },
      metric("Solar", kw(site.solarKw), "solar-text"),
      metric("Wind", kw(site.windKw), "wind-text"),
      metric("Load", kw(site.loadKw)),
      metric("Headroom", kw(headroom), headroom === null ? "" : headroom >= 0 ? "good" : "short")),
    el("div", { class: "share" },
      el("div", { class: "share-bar" }, el("div", { class: "share-fill", style: `width:${share || 0}%` })),
      el("span", { class: "small" }, share === null ? "no load" : `renewables cover ${percent(share)} of the load`)),
    forecastChart(site),
    el("div", { class: "legend small muted" },
      el("span", { class: "swatch solar" }), "solar", el("span", { class: "swatch wind" }), "wind",
      el("span", { class: "swatch load" }), "load now"),
    el("div", { class: "small muted" },
      `${site.nodes} nodes, ${site.gpusInUse}/${site.gpus} GPUs busy · PUE ${site.pue} · grid ${site.gridCarbonGPerKwh} gCO₂/kWh · forecast refreshed ${ago(site.forecastAgeSeconds)}`),
    notReady ? el("p", { class: "warn small" }, `${notReady.reason}: ${notReady.message}`) : null,
    degraded ? el("p", { class: "warn small" }, `${degraded.reason}: ${degraded.message}`) : null);
}

function phaseBadge(phase) {
  return el("span", { class: "phase phase-" + phase.toLowerCase() }, phase);
}

// Jobs that still need a decision or run come first; finished ones last. By name within.
const PHASE_ORDER = ["Running", "Starting", "Suspended", "Deferred", "Pending", "Failed", "Succeeded"];

function byPhaseThenName(a, b) {
  const rank = job => {
    const i = PHASE_ORDER.indexOf(job.phase);
    return i < 0 ? PHASE_ORDER.length : i;
  };
  return rank(a) - rank(b) || a.namespace.localeCompare(b.namespace) || a.name.localeCompare(b.name);
}

function jobRow(job) {
  const decision = job.decision;
  const reason = job.reason || (decision && decision.reason);
  const message = job.message || (decision && decision.message) || "";
  const pending = decision && decision.reason !== job.reason && ["Pending", "Deferred", "Suspended"].includes(job.phase);
  let renewable = "–";
  if (job.renewablePercent !== null) renewable = percent(job.renewablePercent);
  else if (job.expectedRenewablePercent !== null) renewable = el("span", { class: "muted", title: "expected by the scheduler" }, "≈ " + percent(job.expectedRenewablePercent));
  return el("tr", { "data-job": `${job.namespace}/${job.name}` },
    el("td", {}, el("div", { class: "job-name" }, job.name), el("div", { class: "muted small" }, job.namespace)),
    el("td", {}, phaseBadge(job.phase), job.powerCapPercent ? el("span", { class: "badge cap" }, `cap ${job.powerCapPercent} %`) : null),
    el("td", {}, job.site || "–"),
    el("td", { class: "num" }, `${job.replicas} × ${job.gpusPerReplica}`),
    el("td", { class: "small" }, job.policy),
    el("td", { class: "num" }, renewable),
    el("td", { class: "num small" }, job.energyKwh === null ? "–" : energy(job.energyKwh),
      job.co2Grams === null ? null : el("div", { class: "muted" }, `${grams(job.co2Grams)} CO₂`)),
    el("td", { class: "decision" },
      reason ? el("span", { class: "reason" }, reason) : null,
      el("div", { class: "message small", title: message }, message),
      pending ? el("div", { class: "muted small" }, `next: ${decision.reason}`) : null));
}

function nodeRow(node, maxPower) {
  const busy = node.gpus > 0 ? (node.gpusInUse / node.gpus) * 100 : 0;
  const power = maxPower > 0 ? (node.gpuPowerW / maxPower) * 100 : 0;
  const state = !node.ready ? "NotReady" : node.schedulable ? "Ready" : "Cordoned";
  return el("tr", { "data-node": node.name },
    el("td", {}, node.name),
    el("td", {}, node.site || "–"),
    el("td", { class: "small" }, node.gpuModel || "–"),
    el("td", {}, el("div", { class: "bar-cell" },
      el("div", { class: "bar" }, el("div", { class: "bar-fill busy", style: `width:${busy}%` })),
      el("span", { class: "small" }, `${node.gpusInUse}/${node.gpus}`))),
    el("td", {}, el("div", { class: "bar-cell" },
      el("div", { class: "bar" }, el("div", { class: "bar-fill power", style: `width:${power}%` })),
      el("span", { class: "small" }, watts(node.gpuPowerW), " ",
        el("span", { class: "muted" }, node.gpuPowerSource)))),
    el("td", {}, el("span", { class: "badge " + (state === "Ready" ? "ok" : "bad") }, state)));
}

// The header counts only supply that can feed nodes: a site without nodes powers no job,
// so its output is shown apart.
function renderSummary(sites, jobs) {
  const fed = sites.filter(s => s.nodes > 0);
  const sum = (list, f) => list.reduce((total, s) => total + f(s), 0);
  const renewable = sum(fed, s => s.renewableKw || 0);
  const unfed = sum(sites.filter(s => s.nodes === 0), s => s.renewableKw || 0);
  const load = sum(fed, s => s.loadKw || 0);
  const covered = sum(fed, s => Math.min(s.renewableKw || 0, s.loadKw || 0));
  const count = phase => jobs.filter(j => j.phase === phase).length;
  const summary = document.getElementById("summary");
  const renewableNow = metric("Renewable now", kw(renewable), "good",
    unfed > 0 ? `+ ${kw(unfed)} at sites without nodes` : `at ${fed.length} sites with nodes`);
  renewableNow.dataset.kw = String(renewable);
  summary.replaceChildren(
    renewableNow,
    metric("Load now", kw(load)),
    metric("Renewable share", load > 0 ? percent((covered / load) * 100) : "–"),
    metric("Running", count("Running") + count("Starting")),
    metric("Waiting", count("Deferred") + count("Pending") + count("Suspended")));
  const phases = {};
  for (const job of jobs) phases[job.phase] = (phases[job.phase] || 0) + 1;
  document.getElementById("job-counts").textContent =
    Object.entries(phases).map(([phase, n]) => `${n} ${phase.toLowerCase()}`).join(" · ");
}

async function fetchJson(path) {
  const response = await fetch(path, { cache: "no-store" });
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  return response.json();
}

async function refresh() {
  const error = document.getElementById("error");
  try {
    const [sites, jobs, nodes] = await Promise.all(
      ["api/v1/sites", "api/v1/jobs", "api/v1/nodes"].map(fetchJson));
    renderSummary(sites.sites, jobs.jobs);
    document.getElementById("sites").replaceChildren(
      ...(sites.sites.length ? sites.sites.map(siteCard) : [el("p", { class: "muted" }, "No EnergySites yet: create one (kubectl apply -f docs/examples/energysite-solar.yaml).")]));
    document.querySelector("#jobs tbody").replaceChildren(
      ...(jobs.jobs.length ? [...jobs.jobs].sort(byPhaseThenName).map(jobRow) : [el("tr", {}, el("td", { colspan: 8, class: "muted" }, "No TrainingJobs."))]));
    const maxPower = Math.max(0, ...nodes.nodes.map(n => n.gpuPowerW));
    document.querySelector("#nodes tbody").replaceChildren(
      ...(nodes.nodes.length ? nodes.nodes.map(n => nodeRow(n, maxPower)) : [el("tr", {}, el("td", { colspan: 6, class: "muted" }, "No GPU nodes."))]));
    document.getElementById("updated").textContent =
      "updated " + new Date(sites.generatedAt).toLocaleTimeString("en-US", { hour12: false });
    error.hidden = true;
  } catch (e) {
    error.textContent = `Cannot read the operator's API (${e.message}); retrying every ${REFRESH_MS / 1000} s.`;
    error.hidden = false;
  }
}

refresh();
setInterval(refresh, REFRESH_MS);
