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
        axes: [axis, { ...axis, size: opts.size || 60, values: opts.values, incrs: opts.incrs }],
        series: [{}, ...series.map((s) => ({ label: s.label, stroke: s.color, fill: s.fill, width: 2, points: { show: d.x.length <= 31 } }))],
      },
      [d.x, ...series.map((s) => s.data)],
      host,
    );
    charts.push([u, host]);
  }

  // Small amounts keep their digits: a BYOK request can cost a millionth of a dollar.
  const money = (u, vals) => vals.map((v) => (v === 0 ? "$0" : "$" + (v < 0.01 ? v.toLocaleString("en-US", { maximumSignificantDigits: 2 }) : v.toFixed(2))));
  // Counts are whole numbers: no 0.25 ticks.
  const whole = { incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1e3, 2e3, 5e3, 1e4, 2e4, 5e4, 1e5, 2e5, 5e5, 1e6, 2e6, 5e6, 1e7, 1e8, 1e9] };
  chart("chart-requests", [{ label: "Requests", data: d.requests, color: accent, fill: "rgba(63,63,209,0.12)" }], whole);
  chart("chart-tokens", [{ label: "Tokens", data: d.tokens, color: "#14507f", fill: "rgba(20,80,127,0.12)" }], whole);
  chart(
    "chart-cost",
    [
      { label: "Cost", data: d.cost, color: "#16683a", fill: "rgba(22,104,58,0.10)" },
      { label: "Fees", data: d.fees, color: "#85520a" },
    ],
    { values: money, size: 84 },
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
