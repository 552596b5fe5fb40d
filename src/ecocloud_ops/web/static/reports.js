// Assessment report charts (Chart.js served locally; no inline scripts). Values are percentages.
(function () {
  "use strict";
  document.querySelectorAll("[data-print]").forEach(function (b) {
    b.addEventListener("click", function () { window.print(); });
  });
  if (typeof Chart === "undefined") { return; }
  var colors = ["#0d6efd", "#198754", "#fd7e14"];
  function floor(values) {
    var v = values.filter(function (x) { return x !== null && x !== undefined; });
    if (!v.length) { return 90; }
    var min = Math.min.apply(null, v);
    return Math.max(0, Math.floor((min - 1) / 5) * 5);
  }
  document.querySelectorAll("canvas[data-report-chart]").forEach(function (el) {
    var c = JSON.parse(el.dataset.reportChart);
    var cfg;
    if (c.type === "tiers") {
      cfg = { type: "bar", data: { labels: c.labels, datasets: [
        { type: "bar", label: c.rateLabel, data: c.rates, backgroundColor: "#0d6efd" },
        { type: "line", label: c.targetLabel, data: c.targets, borderColor: "#dc3545", borderDash: [6, 4],
          pointStyle: "line", pointRadius: 12, showLine: false }] },
        options: { scales: { y: { min: floor(c.rates.concat(c.targets)), max: 100 } } } };
    } else if (c.type === "ranking") {
      cfg = { type: "bar", data: { labels: c.labels, datasets: [
        { label: c.ownLabel, data: c.own, backgroundColor: "#0d6efd" },
        { label: c.subtreeLabel, data: c.subtree, backgroundColor: "#6c757d" }] },
        options: { indexAxis: "y", scales: { x: { min: floor(c.own.concat(c.subtree, [c.target])), max: 100 } },
                   plugins: { subtitle: { display: true, text: c.targetLabel + " " + c.target.toFixed(2) + "%" } } } };
    } else {
      var all = [];
      c.series.forEach(function (s) { all = all.concat(s.data); });
      cfg = { type: "line", data: { labels: c.labels, datasets: c.series.map(function (s, i) {
        return { label: s.label, data: s.data, borderColor: colors[i % 3], backgroundColor: colors[i % 3], spanGaps: false };
      }) }, options: { scales: { y: { min: floor(all), max: 100 } } } };
    }
    cfg.options.animation = false;
    cfg.options.maintainAspectRatio = !el.classList.contains("tall");
    new Chart(el, cfg);
  });
})();
