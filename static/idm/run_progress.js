// Live progress of a provisioning run (a directory sync, a rules re-application): polls the run's
// progress.json every second and writes what it says with textContent. Without JavaScript the page
// shows the progress as it was when loaded, with a Refresh link. Stops on any answer that is not the
// JSON it expects (signed out, no permission, run gone) and leaves the Refresh link to the user.
(function () {
  "use strict";
  var box = document.getElementById("run-progress");
  if (!box) { return; }
  var url = box.getAttribute("data-progress-url");
  if (!url) { return; }
  var phase = box.querySelector("[data-progress-phase]");
  var bar = box.querySelector("progress");
  var text = box.querySelector("[data-progress-text]");
  var status = document.getElementById("run-status");
  var failures = 0;

  function render(d) {
    if (phase) { phase.textContent = d.phase_label; }
    if (bar) {
      if (d.total) { bar.max = d.total; bar.value = d.done; } else { bar.removeAttribute("value"); }
      bar.textContent = d.percent === null ? "" : d.percent + " %";
    }
    if (text) { text.textContent = d.text; }
    if (status) { status.textContent = d.status_label; }
  }

  function poll() {
    fetch(url, { credentials: "same-origin", redirect: "manual", headers: { "Accept": "application/json" } })
      .then(function (r) {
        var type = r.headers.get("Content-Type") || "";
        if (!r.ok || type.indexOf("application/json") !== 0) { throw new Error("stop"); }
        return r.json();
      })
      .then(function (d) {
        failures = 0;
        render(d);
        if (d.finished) { window.location.reload(); return; }
        window.setTimeout(poll, 1000);
      })
      .catch(function (err) {
        // A 403, a sign-in redirect or a missing run will not get better by asking again.
        if (err && err.message === "stop") { return; }
        failures += 1;  // a network blip: a few more tries, further apart
        if (failures < 5) { window.setTimeout(poll, 3000 * failures); }
      });
  }
  window.setTimeout(poll, 1000);
})();
