// Live view of a playbook run: appends new events every second until the run ends, then reloads once
// for the final status and output. No inline scripts (strict CSP).
(function () {
  "use strict";
  var table = document.getElementById("run-events");
  if (!table || !table.dataset.live) { return; }
  var body = table.querySelector("tbody");
  function lastSeq() {
    var rows = body.querySelectorAll("tr[data-seq]");
    return rows.length ? +rows[rows.length - 1].dataset.seq : 0;
  }
  function cell(tr, text) { var td = document.createElement("td"); td.textContent = text || ""; tr.appendChild(td); }
  function tick() {
    fetch(table.dataset.eventsUrl + "?after=" + lastSeq(), { credentials: "same-origin" })
      .then(function (r) { return r.json(); })
      .then(function (data) {
        data.events.forEach(function (e) {
          var tr = document.createElement("tr");
          tr.dataset.seq = e.seq;
          cell(tr, String(e.seq)); cell(tr, new Date(e.at).toLocaleTimeString("zh-CN", { timeZone: "Asia/Shanghai", hour12: false })); cell(tr, e.event); cell(tr, e.task); cell(tr, e.host);
          cell(tr, e.failed ? "failed" : e.unreachable ? "unreachable" : e.changed ? "changed" : e.ok ? "ok" : "");
          body.appendChild(tr);
        });
        document.getElementById("run-status").textContent = data.run.status;
        if (["new", "pending", "running"].indexOf(data.run.status) < 0) { window.location.reload(); return; }
        setTimeout(tick, 1000);
      })
      .catch(function () { setTimeout(tick, 3000); });
  }
  setTimeout(tick, 1000);
})();
