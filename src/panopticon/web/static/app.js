/* Panopticon's dashboard: draws the charts a page declares, and small conveniences.
   A chart is <canvas data-chart="KIND" data-values="JSON">; no inline script anywhere. */
(function () {
  "use strict";
  var PALETTE = ["#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#4b5563"];
  var STATUS = { completed: "#16a34a", failed: "#dc2626", running: "#2563eb", interrupted: "#d97706", stopped: "#7c3aed", pending: "#9ca3af" };

  function color(i, alpha) {
    var c = PALETTE[i % PALETTE.length];
    if (alpha === undefined) return c;
    var n = parseInt(c.slice(1), 16);
    return "rgba(" + (n >> 16) + "," + ((n >> 8) & 255) + "," + (n & 255) + "," + alpha + ")";
  }

  // Whiskers for bar charts: dataset.ci = [[low, high], ...]
  var whiskers = {
    id: "whiskers",
    afterDatasetsDraw: function (chart) {
      var ctx = chart.ctx;
      chart.data.datasets.forEach(function (ds, di) {
        if (!ds.ci) return;
        var meta = chart.getDatasetMeta(di);
        var y = chart.scales[meta.yAxisID];
        meta.data.forEach(function (bar, i) {
          var ci = ds.ci[i];
          if (!ci || ci[0] === null || ci[1] === null) return;
          var top = y.getPixelForValue(ci[1]), bottom = y.getPixelForValue(ci[0]);
          ctx.save();
          ctx.strokeStyle = "#111827";
          ctx.lineWidth = 1.5;
          ctx.beginPath();
          ctx.moveTo(bar.x, top); ctx.lineTo(bar.x, bottom);
          ctx.moveTo(bar.x - 6, top); ctx.lineTo(bar.x + 6, top);
          ctx.moveTo(bar.x - 6, bottom); ctx.lineTo(bar.x + 6, bottom);
          ctx.stroke();
          ctx.restore();
        });
      });
    }
  };

  var builders = {
    "bars-ci": function (d) {
      return {
        type: "bar",
        data: { labels: d.labels, datasets: [{ label: "mean", data: d.values, ci: d.labels.map(function (_, i) { return [d.low[i], d.high[i]]; }), backgroundColor: d.labels.map(function (_, i) { return color(i, 0.75); }) }] },
        options: { plugins: { legend: { display: false }, tooltip: { callbacks: { afterLabel: function (item) { var c = item.dataset.ci[item.dataIndex]; return c && c[0] !== null ? "95% CI [" + c[0].toFixed(3) + ", " + c[1].toFixed(3) + "]" : ""; } } } }, scales: { y: { min: 0, max: 1 } } },
        plugins: [whiskers]
      };
    },
    "stacked": function (d) {
      return {
        type: "bar",
        data: { labels: d.labels, datasets: d.series.map(function (s) { return { label: s.label, data: s.values, backgroundColor: STATUS[s.label] || "#6b7280" }; }) },
        options: { scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true, ticks: { precision: 0 } } } }
      };
    },
    "radar": function (d) {
      return {
        type: "radar",
        data: { labels: d.labels, datasets: d.series.map(function (s, i) { return { label: s.label, data: s.values, borderColor: color(i), backgroundColor: color(i, 0.15), pointBackgroundColor: color(i) }; }) },
        options: { scales: { r: { min: 0, max: 1 } } }
      };
    },
    "trend": function (d) {
      var datasets = [];
      d.series.forEach(function (s, i) {
        var name = s.label || s.model;
        datasets.push({ label: name + " 95% high", data: s.high, borderWidth: 0, pointRadius: 0, fill: false, spanGaps: true });
        datasets.push({ label: name + " 95% low", data: s.low, borderWidth: 0, pointRadius: 0, backgroundColor: color(i, 0.15), fill: "-1", spanGaps: true });
        datasets.push({ label: name, data: s.mean, borderColor: color(i), backgroundColor: color(i), spanGaps: true, tension: 0.2, pointRadius: 4 });
      });
      return {
        type: "line",
        data: { labels: d.days, datasets: datasets },
        options: { scales: { y: { min: 0, max: 1 } }, plugins: { legend: { labels: { filter: function (item) { return item.text.indexOf("95%") < 0; } } } } }
      };
    }
  };

  function draw(root) {
    if (typeof Chart === "undefined") return;
    (root || document).querySelectorAll("canvas[data-chart]").forEach(function (canvas) {
      if (canvas.dataset.drawn) return;
      var build = builders[canvas.dataset.chart];
      if (!build) return;
      var config = build(JSON.parse(canvas.dataset.values));
      config.options = Object.assign({ responsive: true, maintainAspectRatio: false, animation: false }, config.options);
      // a box of fixed height: a responsive chart must not size itself by its own parent
      var box = document.createElement("div");
      box.className = "chart-box";
      box.style.height = (parseInt(canvas.getAttribute("height"), 10) || 240) + "px";
      canvas.parentNode.insertBefore(box, canvas);
      box.appendChild(canvas);
      new Chart(canvas, config);
      canvas.dataset.drawn = "1";
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    draw(document);
    document.body.addEventListener("htmx:afterSettle", function (e) { draw(e.target); });
  });

  // <select data-autosubmit> submits its form; buttons with data-confirm ask first
  document.addEventListener("change", function (e) {
    if (e.target.matches && e.target.matches("select[data-autosubmit]")) e.target.form.submit();
  });
  document.addEventListener("click", function (e) {
    var el = e.target.closest && e.target.closest("[data-confirm]");
    if (el && !window.confirm(el.dataset.confirm)) e.preventDefault();
  });
  // a trace's span details, opened under its row: "hide" empties the row again
  document.addEventListener("click", function (e) {
    var button = e.target.closest && e.target.closest("[data-close-span]");
    if (!button) return;
    var cell = button.closest("td.span-open");
    if (cell) cell.textContent = "";
  });
  // a failed htmx request is shown, never swallowed
  document.addEventListener("htmx:responseError", function (e) {
    var box = document.createElement("div");
    box.className = "error toast";
    box.setAttribute("role", "alert");
    box.textContent = "The server answered " + e.detail.xhr.status + ": " + (e.detail.xhr.responseText || "").slice(0, 300);
    document.body.appendChild(box);
    setTimeout(function () { box.remove(); }, 8000);
  });
  document.addEventListener("htmx:sendError", function () {
    var box = document.createElement("div");
    box.className = "error toast";
    box.setAttribute("role", "alert");
    box.textContent = "Could not reach the server.";
    document.body.appendChild(box);
    setTimeout(function () { box.remove(); }, 8000);
  });
})();
