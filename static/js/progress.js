// Live progress of a broadcast without reloading; the page also works as a plain refresh.
(function () {
  "use strict";
  var card = document.getElementById("broadcast");
  if (!card) return;
  var url = card.getAttribute("data-progress-url");
  function set(id, value) {
    var el = document.getElementById(id);
    if (el) el.textContent = String(value);
  }
  function poll() {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (p) {
        if (!p) return;
        set("sent", p.sent);
        set("failed", p.failed);
        set("pending", p.pending);
        set("status", p.status_label);
        var bar = document.getElementById("bar");
        if (bar) bar.value = p.sent + p.failed + p.cancelled;
        if (p.status === "running") setTimeout(poll, 1500);
        else if (p.status !== "paused") window.location.reload();
      })
      .catch(function () { setTimeout(poll, 5000); });
  }
  setTimeout(poll, 1500);
})();
