// Console behaviour without inline scripts (the CSP forbids them).
(function () {
  "use strict";
  // A double-clicked submit button sends the form once.
  document.querySelectorAll("form").forEach(function (form) {
    form.addEventListener("submit", function (ev) {
      if (form.dataset.submitted === "1") { ev.preventDefault(); return; }
      var confirmBtn = ev.submitter && ev.submitter.dataset.confirm;
      if (confirmBtn && !window.confirm(confirmBtn)) { ev.preventDefault(); return; }
      if (form.querySelector("[data-once]")) {
        form.dataset.submitted = "1";
        form.querySelectorAll("[data-once]").forEach(function (b) { b.classList.add("disabled"); });
      }
    });
  });
  document.querySelectorAll("[data-progress]").forEach(function (bar) {
    bar.style.width = bar.dataset.progress + "%";
  });
  // Live progress of a job.
  var job = document.getElementById("job");
  if (job && (job.dataset.state === "queued" || job.dataset.state === "running")) {
    var lastId = 0;
    document.querySelectorAll("#job-log [data-id]").forEach(function (s) { lastId = Math.max(lastId, +s.dataset.id); });
    var timer = setInterval(function () {
      fetch(job.dataset.statusUrl + "?after=" + lastId, { credentials: "same-origin" })
        .then(function (r) { return r.json(); })
        .then(function (s) {
          var pct = Math.round(s.progress * 100);
          var bar = document.getElementById("job-progress");
          bar.style.width = pct + "%"; bar.textContent = pct + "%";
          document.getElementById("job-message").textContent = s.message;
          document.getElementById("job-state").textContent = s.state;
          var log = document.getElementById("job-log");
          s.lines.forEach(function (l) { lastId = Math.max(lastId, l.id); log.append(l.at.substr(11, 8) + " " + l.line + "\n"); });
          if (["succeeded", "failed", "canceled"].indexOf(s.state) >= 0) { clearInterval(timer); window.location.reload(); }
        }).catch(function () { /* keep polling */ });
    }, 1000);
  }
})();
