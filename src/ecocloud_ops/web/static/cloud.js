// Cloud pages without inline scripts (strict CSP):
// - a VM request's per-VM progress, polled from its JSON endpoint until every VM is final;
// - the request forms: flavors and images follow the chosen pool, pools follow the chosen tenant,
//   and the service-desk form shows the fields of the chosen kind;
// - the capacity trend charts (Chart.js served locally).
(function () {
  "use strict";

  // Live progress of a VM request --------------------------------------------------------------
  var box = document.getElementById("vm-progress");
  if (box && box.dataset.live) {
    var set = function (id, text) {
      var el = document.getElementById(id);
      if (el && el.textContent !== (text || "")) { el.textContent = text || ""; }
    };
    var tick = function () {
      fetch(box.dataset.progressUrl, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.json(); })
        .then(function (d) {
          var status = document.getElementById("request-status");
          if (status) { status.className = "badge " + d.status_class; status.textContent = d.status_label; }
          var err = document.getElementById("request-error");
          if (err) { err.textContent = d.error || ""; err.classList.toggle("d-none", !d.error); }
          d.vms.forEach(function (v) {
            var badge = document.getElementById("vm-" + v.id + "-stage");
            if (badge && badge.dataset.stage !== v.stage) {
              badge.dataset.stage = v.stage;
              badge.className = "badge " + v.stage_class;
              badge.textContent = v.stage_label;
            }
            set("vm-" + v.id + "-status", v.status);
            set("vm-" + v.id + "-addresses", v.addresses);
            set("vm-" + v.id + "-host", v.host);
            set("vm-" + v.id + "-fault", v.fault);
          });
          if (d.final) { box.dataset.live = ""; return; }
          setTimeout(tick, 2000);
        })
        .catch(function () { setTimeout(tick, 5000); });
    };
    setTimeout(tick, 1000);
  }

  // Request forms: options that follow the pool and the tenant -----------------------------------
  document.querySelectorAll("form[data-pool-filter]").forEach(function (form) {
    var poolSelect = form.querySelector("[data-pool-select]");
    var tenantSelect = form.querySelector("[data-tenant-select]");
    if (!poolSelect) { return; }
    var filterOptions = function () {
      var pool = poolSelect.value;
      form.querySelectorAll("select").forEach(function (sel) {
        var first = null;
        var current = sel.selectedOptions.length ? sel.selectedOptions[0] : null;
        var any = false;
        Array.prototype.forEach.call(sel.options, function (o) {
          if (!o.dataset.pool) { return; }
          any = true;
          var show = o.dataset.pool === pool;
          o.hidden = !show; o.disabled = !show;
          if (show && !first) { first = o; }
        });
        if (any && (!current || current.disabled) && first) { first.selected = true; }
      });
    };
    var filterPools = function () {
      if (!tenantSelect) { return; }
      var t = tenantSelect.selectedOptions.length ? tenantSelect.selectedOptions[0] : null;
      var pools = t && t.dataset.pools !== undefined ? t.dataset.pools.split(",").filter(Boolean) : null;
      var first = null;
      Array.prototype.forEach.call(poolSelect.options, function (o) {
        var show = !pools || pools.indexOf(o.value) >= 0;
        o.hidden = !show; o.disabled = !show;
        if (show && !first) { first = o; }
      });
      var cur = poolSelect.selectedOptions.length ? poolSelect.selectedOptions[0] : null;
      if ((!cur || cur.disabled) && first) { first.selected = true; }
    };
    poolSelect.addEventListener("change", filterOptions);
    if (tenantSelect) {
      tenantSelect.addEventListener("change", function () { filterPools(); filterOptions(); });
    }
    filterPools();
    filterOptions();
  });

  // The service-desk cloud request: the fields of the chosen kind ---------------------------------
  var kind = document.querySelector("[data-kind-select]");
  if (kind) {
    var showKind = function () {
      document.querySelectorAll("[data-kind]").forEach(function (el) {
        var on = el.dataset.kind === kind.value;
        el.classList.toggle("d-none", !on);
        el.querySelectorAll("input, select, textarea").forEach(function (i) { i.disabled = !on; });
      });
    };
    kind.addEventListener("change", showKind);
    showKind();
  }

  // Capacity trend charts ----------------------------------------------------------------------
  if (typeof Chart !== "undefined") {
    var colors = ["#198754", "#6c757d", "#fd7e14"];
    document.querySelectorAll("canvas[data-cloud-chart]").forEach(function (el) {
      var c = JSON.parse(el.dataset.cloudChart);
      new Chart(el, {
        type: "line",
        data: { labels: c.labels, datasets: c.series.map(function (s, i) {
          return { label: s.label, data: s.data, borderColor: colors[i % 3], backgroundColor: colors[i % 3],
                   borderDash: i === 2 ? [6, 4] : [], pointRadius: c.labels.length > 60 ? 0 : 2 };
        }) },
        options: { animation: false, scales: { y: { beginAtZero: true } } }
      });
    });
  }
})();
