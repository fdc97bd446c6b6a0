// On the page of a message (or broadcast) just accepted: the draft the composer kept for it is
// done (compose.js keeps each draft with its form's key, which this page names).
(function () {
  "use strict";
  var page = document.querySelector("main[data-draft-sent]");
  var sent = page && page.getAttribute("data-draft-sent");
  try {
    var store = window.localStorage;
    for (var i = store.length - 1; sent && i >= 0; i--) {
      var name = store.key(i);
      if (name.indexOf("kenar-chat:draft:") !== 0) continue;
      var draft = JSON.parse(store.getItem(name) || "null");
      if (draft && draft.sent_with === sent) store.removeItem(name);
    }
  } catch (e) { /* no storage, or unreadable: nothing to forget */ }
})();
