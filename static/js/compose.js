// Progressive enhancement for the composer: a live character count and a live preview of
// what each side will see. The form works the same without it.
(function () {
  "use strict";
  var form = document.getElementById("compose");
  if (!form) return;

  // The icon suggestions come from a cached list, loaded once (not inlined in every page).
  var icons = document.getElementById("icons");
  if (icons && icons.dataset.src && window.fetch) {
    fetch(icons.dataset.src, { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : []; })
      .then(function (names) {
        var options = document.createDocumentFragment();
        names.forEach(function (name) {
          var option = document.createElement("option");
          option.value = name;
          options.appendChild(option);
        });
        icons.appendChild(options);
      })
      .catch(function () {});
  }
  var text = form.elements.namedItem("text");
  var count = document.getElementById("text-count");
  var preview = document.getElementById("preview");

  function el(tag, cls, content) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (content) node.textContent = content;
    return node;
  }

  function grid(side) {
    var rows = [];
    for (var r = 0; r < 3; r++) {
      var row = [];
      for (var c = 0; c < 3; c++) {
        var p = side + r + c + "_";
        var caption = (form.elements.namedItem(p + "caption") || {}).value || "";
        var kind = (form.elements.namedItem(p + "kind") || {}).value || "";
        if (caption.trim() && kind) {
          row.push({ caption: caption.trim(), icon: (form.elements.namedItem(p + "icon") || {}).value || "" });
        }
      }
      if (row.length) rows.push(row);
    }
    return rows;
  }

  function bubble(title, cls, rows) {
    var wrap = el("div");
    wrap.appendChild(el("h3", null, title));
    var b = el("article", "bubble bot " + cls);
    b.appendChild(el("div", "bot-title", "گفت‌وگو یار"));
    b.appendChild(el("p", null, text.value.trim() || "…"));
    if (rows.length) {
      var g = el("div", "button-grid");
      rows.forEach(function (row) {
        var rowEl = el("div", "button-row");
        row.forEach(function (btn) {
          var s = el("span", "chat-button", btn.caption + " ");
          s.appendChild(el("span", "icon", btn.icon));
          rowEl.appendChild(s);
        });
        g.appendChild(rowEl);
      });
      b.appendChild(g);
    }
    wrap.appendChild(b);
    return wrap;
  }

  function render() {
    count.textContent = String(Array.from(text.value).length).replace(/[0-9]/g, function (d) {
      return String.fromCharCode(0x06f0 + Number(d));
    });
    var pair = el("div", "preview-pair");
    pair.appendChild(bubble("آنچه شما می‌بینید", "mine", grid("s")));
    pair.appendChild(bubble("آنچه طرف مقابل می‌بیند", "theirs", grid("r")));
    while (preview.children.length > 1) preview.removeChild(preview.lastChild);
    preview.appendChild(pair);
  }

  // The first tap on "send" is the only one: the button turns into a note that the message is
  // on its way, so a slow network does not invite a second tap (the server ignores a repeated
  // form anyway).
  var sending = false;
  form.addEventListener("submit", function (event) {
    var button = event.submitter;
    if (!button || button.value !== "send" || form.getAttribute("action") !== "/compose") return;
    if (sending) { event.preventDefault(); return; }
    sending = true;
    // A disabled button is left out of the form's data: carry its value in a hidden field.
    var action = document.createElement("input");
    action.type = "hidden";
    action.name = "action";
    action.value = "send";
    form.appendChild(action);
    button.disabled = true;
    button.textContent = "در حال ارسال…";
  });
  // Coming back with the browser's back button shows the form as it was left: ready again.
  window.addEventListener("pageshow", function (event) {
    if (!event.persisted || !sending) return;
    window.location.reload();
  });

  form.addEventListener("input", render);
  form.addEventListener("change", render);
  render();
})();
