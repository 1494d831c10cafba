// The console's only script: charts from the JSON data blocks the server rendered (never
// executed, only parsed), and the self-refresh of live pages. No caller text is ever
// inserted as markup here: Plotly receives numbers and labels, refreshes swap server-escaped DOM.
"use strict";

const LAYOUT = { margin: { t: 36, r: 16, b: 48, l: 56 }, legend: { orientation: "h" }, font: { size: 12 } };
const CONFIG = { displayModeBar: false, responsive: true };
const DAYS = { xaxis: { type: "category" } };

function data(id) {
  const el = document.getElementById(id);
  return el ? JSON.parse(el.textContent) : null;
}

function plot(id, traces, title, extra) {
  const el = document.getElementById(id);
  if (!el || typeof Plotly === "undefined") return;
  Plotly.react(el, traces, Object.assign({}, LAYOUT, { title: { text: title } }, extra || {}), CONFIG);
}

function latencyChart() {
  const d = data("latency-data");
  if (!d) return;
  const x = d.points.map((p) => p.reply);
  const traces = d.series.map((s, i) => ({
    x, y: d.points.map((p) => p[s.key]), name: s.label, type: "scatter",
    mode: i === 0 ? "lines+markers" : "markers", connectgaps: false,
  }));
  plot("latency-chart", traces, "Per reply (ms)", { xaxis: { title: { text: "reply" }, dtick: 1 }, yaxis: { title: { text: "ms" } } });
}

function byDay(rows, key) {
  return { x: rows.map((r) => r.day), y: rows.map((r) => r[key]) };
}

function statsCharts() {
  const s = data("stats-data");
  if (!s) return;
  plot("chart-volume", ["completed", "abandoned", "failed"].map((k) => Object.assign({ name: k, type: "bar" }, byDay(s.volume, k))),
    "Calls per day", Object.assign({ barmode: "stack" }, DAYS));
  const outcomes = [...new Set(s.outcomes.map((r) => r.outcome))];
  plot("chart-outcomes", outcomes.map((o) => {
    const rows = s.outcomes.filter((r) => r.outcome === o);
    return Object.assign({ name: o, type: "bar" }, byDay(rows, "calls"));
  }), "Outcomes per day", Object.assign({ barmode: "stack" }, DAYS));
  plot("chart-latency", ["p50_ms", "p95_ms"].map((k) => Object.assign({ name: k, type: "scatter", mode: "lines+markers" }, byDay(s.latency, k))),
    "Reply latency per day (ms)", DAYS);
  plot("chart-slow", [Object.assign({ name: "slow replies", type: "bar" }, byDay(s.slow_turns, "slow_turns"))], "Slow replies per day", DAYS);
  plot("chart-agents", [{ name: "runs", type: "bar", x: s.agent_usage.map((r) => r.agent_type), y: s.agent_usage.map((r) => r.runs) },
    { name: "LLM calls", type: "bar", x: s.agent_usage.map((r) => r.agent_type), y: s.agent_usage.map((r) => r.llm_calls) }],
    "Agent usage");
  plot("chart-tools", [{ name: "error rate", type: "bar", x: s.tool_errors.map((r) => r.name), y: s.tool_errors.map((r) => r.error_rate) }],
    "Tool error rate", { yaxis: { range: [0, 1], tickformat: ".0%" } });
}

function render() {
  latencyChart();
  statsCharts();
}

async function refresh(main) {
  try {
    const response = await fetch(window.location.href, { cache: "no-store", credentials: "same-origin" });
    if (!response.ok) return;
    const fresh = new DOMParser().parseFromString(await response.text(), "text/html").querySelector("main");
    if (!fresh) return;
    main.replaceChildren(...Array.from(fresh.childNodes, (node) => document.importNode(node, true)));
    if (!fresh.hasAttribute("data-refresh-seconds")) main.removeAttribute("data-refresh-seconds");
    render();
    main.dataset.refreshed = String(Number(main.dataset.refreshed || 0) + 1);
  } catch (e) {
    // the next tick tries again; a console that cannot reach the server keeps what it shows
  }
}

document.addEventListener("DOMContentLoaded", () => {
  render();
  const main = document.querySelector("main");
  const every = Number(main.getAttribute("data-refresh-seconds"));
  if (every > 0) {
    const tick = async () => {
      await refresh(main);
      if (main.hasAttribute("data-refresh-seconds")) setTimeout(tick, every * 1000);
    };
    setTimeout(tick, every * 1000);
  }
});
