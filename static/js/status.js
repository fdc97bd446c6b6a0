// Live status of a sent message without reloading; without script the page refreshes itself.
(function () {
  "use strict";
  var card = document.getElementById("message-status");
  var url = card && card.getAttribute("data-progress-url");
  if (!url) return;
  function poll() {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (p) {
        if (!p) { setTimeout(poll, 3000); return; }
        document.getElementById("status-label").textContent = p.label;
        // A final status brings its actions (send again, reconnect): the page has them.
        if (p.status === "sending") setTimeout(poll, 1000);
        else window.location.replace(window.location.pathname);
      })
      .catch(function () { setTimeout(poll, 3000); });
  }
  setTimeout(poll, 500);
})();
