// Device charts from hourly rollups (Chart.js served locally; no inline scripts).
(function () {
  "use strict";
  if (typeof Chart === "undefined") { return; }
  var titles = { reachability: "%", rtt: "ms", traffic: "bit/s" };
  document.querySelectorAll("canvas[data-chart]").forEach(function (el) {
    var c = JSON.parse(el.dataset.chart);
    var datasets = c.type === "traffic"
      ? [{ label: "in", data: c["in"], borderColor: "#198754" }, { label: "out", data: c.out, borderColor: "#0d6efd" }]
      : [{ label: c.type, data: c.data, borderColor: c.type === "rtt" ? "#fd7e14" : "#198754" }];
    new Chart(el, {
      type: "line",
      data: { labels: c.labels, datasets: datasets },
      options: { animation: false, spanGaps: true, plugins: { title: { display: true, text: c.type + " (" + titles[c.type] + ")" } },
                 elements: { point: { radius: 0 } }, scales: { y: { beginAtZero: true } } }
    });
  });
})();
