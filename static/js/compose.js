// Progressive enhancement for the composer: a live character count and a live preview of
// what each side will see, an icon search, and button edits without a page load (so the back
// button does not walk through one page per edit). The form works the same without it.
(function () {
  "use strict";
  var sending = false;
  // The session ends after 15 minutes without a request; typing refreshes it at most this often.
  var KEEP_ALIVE_EVERY = 3 * 60 * 1000;
  // 0: the first keystroke asks at once (the idle period runs from the session's last change,
  // which may be the landing page minutes ago).
  var lastKeptAlive = 0;

  // Coming back with the browser's back button shows the form as it was left: ready again.
  window.addEventListener("pageshow", function (event) {
    if (!event.persisted || !sending) return;
    window.location.reload();
  });

  // Drafts: what the person types is kept in this browser, one draft per chat (or post), so an
  // ended session, a reload or a closed webview loses nothing. The page of the message (or
  // broadcast) sent from that very form forgets it (status.js, progress.js: same form key); so
  // does «دور انداختن آن». Not kept: the file chosen, and anything after DRAFT_DAYS.
  var DRAFT_PREFIX = "kenar-chat:draft:";
  var DRAFT_DAYS = 7; // the privacy page says "a week": change both
  var NOT_DRAFTED = { csrf_token: 1, idempotency_key: 1, action: 1, add: 1, remove: 1 };

  function storage() {
    try { return window.localStorage; } catch (e) { return null; }
  }

  function draftFields(form) {
    var fields = [];
    Array.prototype.forEach.call(form.elements, function (el) {
      if (!el.name || NOT_DRAFTED[el.name] || el.tagName === "BUTTON") return;
      if (el.type === "file" || el.type === "hidden" || el.type === "submit") return;
      if ((el.type === "radio" || el.type === "checkbox") && !el.checked) return;
      fields.push([el.name, el.value]);
    });
    return fields;
  }

  var restoring = false; // a draft on its way back is not overwritten by the empty form

  function saveDraft(form) {
    if (restoring) return;
    var store = storage();
    var key = form.getAttribute("data-draft-key");
    if (!store || !key) return;
    var fields = draftFields(form);
    var written = fields.some(function (f) {
      return (f[0] === "text" || /_caption$/.test(f[0])) && f[1].trim() !== "";
    });
    try {
      if (written) {
        // `sent_with`: the form's key, which the page of the accepted message names.
        var formKey = form.elements.namedItem("idempotency_key");
        store.setItem(DRAFT_PREFIX + key, JSON.stringify({
          saved: Date.now(),
          sent_with: formKey ? formKey.value : "",
          fields: fields
        }));
      } else {
        store.removeItem(DRAFT_PREFIX + key);
      }
    } catch (e) { /* full or refused: the form still works */ }
  }

  function loadDraft(key) {
    var store = storage();
    if (!store || !key) return null;
    try {
      var draft = JSON.parse(store.getItem(DRAFT_PREFIX + key) || "null");
      if (draft && draft.fields && Date.now() - draft.saved < DRAFT_DAYS * 864e5) return draft;
      store.removeItem(DRAFT_PREFIX + key);
    } catch (e) { /* unreadable: as if none */ }
    return null;
  }

  function forgetDraft(key) {
    var store = storage();
    try { if (store && key) store.removeItem(DRAFT_PREFIX + key); } catch (e) { /* nothing kept */ }
  }

  // The server draws the form from `data` (a button edit, or a draft to put back) and only the
  // form is swapped in.
  function swap(form, data) {
    // Not `form.action`: the form has controls named "action", which shadow it.
    return fetch(form.getAttribute("action"), { method: "POST", body: data, credentials: "same-origin" })
      // A form with its problems marked (422) is an answer too; a page without the form is not.
      .then(function (r) { return r.text(); })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("compose");
        if (!fresh) throw new Error("no form in the answer");
        // The advanced switch is the page's, not the form data's: it stays as it was.
        var was = form.querySelector("#show-advanced");
        var now = fresh.querySelector("#show-advanced");
        if (was && now && was.checked) now.checked = true;
        form.replaceWith(fresh);
        enhance(fresh);
        return fresh;
      });
  }

  function restoreDraft(form) {
    var key = form.getAttribute("data-draft-key");
    var draft = loadDraft(key);
    if (!draft || JSON.stringify(draftFields(form)) === JSON.stringify(draft.fields)) return;
    var notice = document.getElementById("draft-restored");
    function restored(current) {
      saveDraft(current);
      if (!notice) return;
      notice.hidden = false;
      document.getElementById("draft-discard").addEventListener("click", function () {
        forgetDraft(key);
        window.location.reload();
      });
    }
    var fits = draft.fields.every(function (f) { return form.elements.namedItem(f[0]); });
    if (fits) {
      draft.fields.forEach(function (f) { form.elements.namedItem(f[0]).value = f[1]; });
      form.dispatchEvent(new Event("input"));
      restored(form);
      return;
    }
    // Buttons this fresh page does not have: the server draws them, as for a preview.
    if (!window.fetch || !window.URLSearchParams || !window.DOMParser) return;
    var data = new URLSearchParams();
    ["csrf_token", "idempotency_key"].forEach(function (name) {
      var field = form.elements.namedItem(name);
      if (field) data.append(name, field.value);
    });
    draft.fields.forEach(function (f) { data.append(f[0], f[1]); });
    data.append("action", "preview");
    restoring = true;
    form.setAttribute("aria-busy", "true");
    swap(form, data)
      .then(function (fresh) { restoring = false; restored(fresh); })
      .catch(function () { restoring = false; form.removeAttribute("aria-busy"); });
  }

  // Drafts past their week go, whichever chat they were for.
  (function sweep() {
    var store = storage();
    try {
      for (var i = store ? store.length - 1 : -1; i >= 0; i--) {
        var name = store.key(i);
        if (name.indexOf(DRAFT_PREFIX) === 0) loadDraft(name.slice(DRAFT_PREFIX.length));
      }
    } catch (e) { /* unreadable: nothing to sweep */ }
  })();

  var first = document.getElementById("compose");
  if (first) {
    enhance(first);
    if (first.hasAttribute("data-draft-restore")) restoreDraft(first);
  }

  function enhance(form) {
    // The icon picker: the icons offered, each with its picture and Persian name, and a search
    // that also knows other words for them («ماشین» finds «خودرو»).
    var pickers = Array.prototype.slice.call(form.querySelectorAll("select.icon-picker"));
    pickers.forEach(function (select) {
      var search = document.createElement("input");
      search.type = "search";
      search.className = "icon-search";
      search.placeholder = "جست‌وجوی نماد…";
      search.setAttribute("aria-label", "جست‌وجوی نماد");
      search.setAttribute("aria-controls", select.id);
      select.parentNode.insertBefore(search, select);
      search.addEventListener("keydown", function (event) {
        if (event.key === "Enter") event.preventDefault();
      });
      search.addEventListener("input", function () {
        var q = search.value.trim().toLowerCase();
        var first = null;
        Array.prototype.forEach.call(select.options, function (o) {
          var words = o.text + " " + (o.getAttribute("data-keywords") || "");
          var match = !q || words.indexOf(q) >= 0;
          o.hidden = !match;
          if (match && !first) first = o;
        });
        var current = select.options[select.selectedIndex];
        if (q && first && (!current || current.hidden)) {
          select.value = first.value;
          render();
        }
      });
    });

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
          var icon = form.elements.namedItem(p + "icon");
          var chosen = icon && icon.options ? icon.options[icon.selectedIndex] : null;
          if (caption.trim() && kind) {
            row.push({
              caption: caption.trim(),
              glyph: chosen ? chosen.getAttribute("data-glyph") || "" : "",
              name: chosen ? chosen.getAttribute("data-name") || "" : ""
            });
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
      // What a person wrote is shown isolated: a bidi control in it cannot reorder the page.
      var said = el("p");
      said.appendChild(el("bdi", null, text.value.trim() || "…"));
      b.appendChild(said);
      if (rows.length) {
        var g = el("div", "button-grid");
        rows.forEach(function (row) {
          var rowEl = el("div", "button-row");
          row.forEach(function (btn) {
            var s = el("span", "chat-button");
            var icon = el("span", "icon", btn.glyph);
            icon.setAttribute("role", "img");
            icon.setAttribute("aria-label", btn.name);
            s.appendChild(icon);
            s.appendChild(document.createTextNode(" "));
            s.appendChild(el("bdi", null, btn.caption));
            rowEl.appendChild(s);
          });
          g.appendChild(rowEl);
        });
        b.appendChild(g);
      }
      wrap.appendChild(b);
      return wrap;
    }

    var hint = document.getElementById("text-hint");
    var tooLong = null;

    function render() {
      var length = Array.from(text.value).length;
      count.textContent = String(length).replace(/[0-9]/g, function (d) {
        return String.fromCharCode(0x06f0 + Number(d));
      });
      // Too long (a paste, say): said beside the count, nothing cut.
      var over = length > Number(text.getAttribute("data-max"));
      if (over && !tooLong && hint) {
        tooLong = el("p", "error-text", hint.getAttribute("data-too-long"));
        tooLong.id = "text-too-long";
        tooLong.setAttribute("role", "alert");
        hint.parentNode.insertBefore(tooLong, hint.nextSibling);
      } else if (!over && tooLong) {
        tooLong.remove();
        tooLong = null;
      }
      var pair = el("div", "preview-pair");
      pair.appendChild(bubble("آنچه شما می‌بینید", "mine", grid("s")));
      pair.appendChild(bubble(preview.getAttribute("data-theirs-title"), "theirs", grid("r")));
      while (preview.children.length > 1) preview.removeChild(preview.lastChild);
      preview.appendChild(pair);
    }

    // A file larger than Divar takes is refused as soon as it is chosen, beside its field, in the
    // words the page carries (the server checks again as the file arrives).
    var media = form.querySelector("input[type=file][data-max-bytes]");
    if (media) {
      media.addEventListener("change", function () {
        var old = document.getElementById("media-error");
        if (old) old.remove();
        media.removeAttribute("aria-invalid");
        var file = media.files && media.files[0];
        if (!file || file.size <= Number(media.dataset.maxBytes)) return;
        media.value = "";
        var note = el("p", "error-text", media.dataset.tooLarge);
        note.id = "media-error";
        media.setAttribute("aria-invalid", "true");
        media.setAttribute("aria-describedby", "media-error");
        media.parentNode.appendChild(note);
        media.focus();
      });
    }

    // The first tap on "send" is the only one: the button turns into a note that the message is
    // on its way, so a slow network does not invite a second tap (the server ignores a repeated
    // form anyway).
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
    // «+ …» and «حذف این دکمه»: the server makes the change and answers the page; only the form
    // is swapped in. When that fails for any reason, the tap goes through as a plain submit.
    form.addEventListener("click", function (event) {
      var button = event.target.closest && event.target.closest("button[name=add], button[name=remove]");
      // A chosen file goes with a plain submit: the swap below sends only text fields.
      var file = form.querySelector("input[type=file]");
      if (file && file.files && file.files.length) return;
      if (!button || !window.fetch || !window.DOMParser || !window.URLSearchParams) return;
      event.preventDefault();
      if (button.disabled) return;
      button.disabled = true;
      var data = new URLSearchParams(new FormData(form));
      data.append(button.name, button.value);
      swap(form, data)
        .then(saveDraft)
        .catch(function () {
          button.disabled = false;
          var carry = document.createElement("input");
          carry.type = "hidden";
          carry.name = button.name;
          carry.value = button.value;
          form.appendChild(carry);
          form.submit();
        });
    });

    // Typing is no request: while the person writes, the session's idle period starts over now
    // and then, so a long message does not outlast it.
    var keepAlive = form.getAttribute("data-keepalive-url");
    function activity() {
      saveDraft(form);
      if (!keepAlive || !window.fetch || Date.now() - lastKeptAlive < KEEP_ALIVE_EVERY) return;
      lastKeptAlive = Date.now();
      var token = form.elements.namedItem("csrf_token");
      fetch(keepAlive, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/x-www-form-urlencoded" },
        body: "csrf_token=" + encodeURIComponent(token ? token.value : "")
      }).catch(function () { /* offline: the draft is kept anyway */ });
    }

    // A field's error goes once the field is changed: the server checks again on submit.
    function fixed(event) {
      var field = event.target;
      // A chosen file is checked by its own listener above, which may mark it again.
      if (!field.id || field.type === "file" || field.getAttribute("aria-invalid") !== "true") return;
      field.removeAttribute("aria-invalid");
      if (field.getAttribute("aria-describedby") === field.id + "-error") {
        field.removeAttribute("aria-describedby");
      }
      var said = document.getElementById(field.id + "-error");
      if (said) said.remove();
    }

    form.addEventListener("input", fixed);
    form.addEventListener("change", fixed);
    form.addEventListener("input", render);
    form.addEventListener("change", render);
    form.addEventListener("input", activity);
    form.addEventListener("change", activity);
    render();
    // The field that needs attention (a problem, or the link of a button just added) in the
    // middle of the screen, not under the sticky bar.
    var focused = form.querySelector("[autofocus]");
    if (focused) {
      focused.focus({ preventScroll: true });
      if (focused.scrollIntoView) focused.scrollIntoView({ block: "center" });
    }
  }
})();
