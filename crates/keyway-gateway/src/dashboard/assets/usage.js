// Usage charts: one uPlot per series, from the JSON the page embeds (#usage-data).
"use strict";
(() => {
  const el = document.getElementById("usage-data");
  if (!el || typeof uPlot === "undefined") return;
  const d = JSON.parse(el.textContent);
  const accent = "#3f3fd1";
  const axis = { stroke: "#56606e", grid: { stroke: "#edf0f3" }, ticks: { stroke: "#dfe3e8" } };
  const charts = [];

  function chart(id, series, opts = {}) {
    const host = document.getElementById(id);
    if (!host) return;
    const width = Math.max(280, host.clientWidth);
    const u = new uPlot(
      {
        width,
        height: 220,
        cursor: { drag: { x: false, y: false } },
        legend: { show: series.length > 1 },
        scales: { x: { time: true }, y: opts.y || {} },
        axes: [axis, { ...axis, size: 60, values: opts.values }],
        series: [{}, ...series.map((s) => ({ label: s.label, stroke: s.color, fill: s.fill, width: 2, points: { show: d.x.length <= 31 } }))],
      },
      [d.x, ...series.map((s) => s.data)],
      host,
    );
    charts.push([u, host]);
  }

  const money = (u, vals) => vals.map((v) => "$" + (v < 1 ? v.toFixed(4) : v.toFixed(2)));
  chart("chart-requests", [{ label: "Requests", data: d.requests, color: accent, fill: "rgba(63,63,209,0.12)" }]);
  chart("chart-tokens", [{ label: "Tokens", data: d.tokens, color: "#14507f", fill: "rgba(20,80,127,0.12)" }]);
  chart(
    "chart-cost",
    [
      { label: "Cost", data: d.cost, color: "#16683a", fill: "rgba(22,104,58,0.10)" },
      { label: "Fees", data: d.fees, color: "#85520a" },
    ],
    { values: money },
  );
  chart("chart-byok", [{ label: "BYOK %", data: d.byok_share, color: "#6f4a00", fill: "rgba(111,74,0,0.10)" }], {
    y: { range: [0, 100] },
    values: (u, vals) => vals.map((v) => v + "%"),
  });

  let t;
  window.addEventListener("resize", () => {
    clearTimeout(t);
    t = setTimeout(() => charts.forEach(([u, host]) => u.setSize({ width: Math.max(280, host.clientWidth), height: 220 })), 100);
  });
})();
