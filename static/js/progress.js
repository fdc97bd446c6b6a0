// Live progress of a broadcast without reloading; the page also works as a plain refresh.
(function () {
  "use strict";
  var card = document.getElementById("broadcast");
  var url = card && card.getAttribute("data-progress-url");
  if (!url) return;
  function fa(n) {
    return String(n).replace(/[0-9]/g, function (d) { return String.fromCharCode(0x06f0 + Number(d)); });
  }
  function set(id, value) {
    var el = document.getElementById(id);
    if (el && el.textContent !== fa(value)) el.textContent = fa(value);
  }
  function poll() {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (p) {
        if (!p) { setTimeout(poll, 5000); return; }
        set("sent", p.sent);
        set("failed", p.failed);
        set("pending", p.pending);
        // Inside a live region: only a change is news.
        var status = document.getElementById("status");
        if (status.textContent !== p.status_label) status.textContent = p.status_label;
        var bar = document.getElementById("bar");
        if (bar) bar.value = p.sent + p.failed + p.cancelled;
        // Settled: the page shows the final counts and what can be done next.
        if (p.settled) window.location.reload();
        else setTimeout(poll, 1500);
      })
      .catch(function () { setTimeout(poll, 5000); });
  }
  setTimeout(poll, 1500);
})();
