// Live view of a DR drill: polls the drill's status every second while it is active and updates each
// step's status, times, duration, message and playbook-run link, and the measured RTO/RPO. When the
// drill's status changes or a step appears (a rollback), the page reloads once so that the server
// renders what goes with it (confirm buttons, abort form, findings). No inline scripts (strict CSP).
(function () {
  "use strict";
  var page = document.getElementById("drill");
  if (!page || !page.dataset.live) { return; }
  function set(id, text) {
    var el = document.getElementById(id);
    if (el && el.textContent !== (text || "")) { el.textContent = text || ""; }
  }
  function tick() {
    fetch(page.dataset.statusUrl, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.json(); })
      .then(function (d) {
        var ids = d.steps.map(function (s) { return String(s.id); }).join(",");
        if (d.status !== page.dataset.status || ids !== page.dataset.steps) { window.location.reload(); return; }
        d.steps.forEach(function (s) {
          var badge = document.getElementById("step-" + s.id + "-status");
          if (badge && badge.dataset.status !== s.status) {
            badge.dataset.status = s.status;
            badge.className = "badge " + s.status_class;
            badge.textContent = s.status_label;
          }
          set("step-" + s.id + "-start", s.started);
          set("step-" + s.id + "-end", s.finished);
          set("step-" + s.id + "-duration", s.duration);
          set("step-" + s.id + "-message", s.message);
          var run = document.getElementById("step-" + s.id + "-run");
          if (run && s.playbook_run_id && !run.textContent) {
            if (s.run_url) {
              var a = document.createElement("a");
              a.href = s.run_url; a.textContent = "#" + s.playbook_run_id;
              run.appendChild(a);
            } else { run.textContent = "#" + s.playbook_run_id; }
          }
        });
        set("drill-rto", d.rto.text);
        set("drill-rpo", d.rpo.text);
        setTimeout(tick, 1000);
      })
      .catch(function () { setTimeout(tick, 3000); });
  }
  setTimeout(tick, 1000);
})();
