// Live progress of a bulk upload: polls the status endpoint every second; the state lives in the
// database, so reloading the page picks the bar up where it is.
(function () {
  "use strict";
  var box = document.getElementById("progress");
  if (!box) { return; }
  var bar = document.getElementById("progress-bar");
  var percent = document.getElementById("progress-percent");
  var text = document.getElementById("progress-text");
  var url = box.getAttribute("data-status-url");

  function seconds(s) {
    if (s === null || s === undefined) { return ""; }
    if (s < 60) { return "about " + s + " s left"; }
    return "about " + Math.round(s / 60) + " min left";
  }

  function render(d) {
    bar.value = d.percent;
    percent.textContent = d.percent + " %";
    var parts = [d.phase + ": " + d.done.toLocaleString() + " / " + d.total.toLocaleString()];
    if (d.rate) { parts.push(d.rate.toLocaleString() + " per second"); }
    if (d.eta_seconds !== null) { parts.push(seconds(d.eta_seconds)); }
    text.textContent = parts.join(" · ");
    document.getElementById("upload-status").textContent = d.status_label;
  }

  function poll() {
    fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { return r.json(); })
      .then(function (d) {
        render(d);
        if (d.finished) {
          if (box.getAttribute("data-running") === "1") { window.location.reload(); }
          return;
        }
        window.setTimeout(poll, 1000);
      })
      .catch(function () { window.setTimeout(poll, 3000); });
  }
  poll();
})();
