// lmsweb's own script: toasts, dialogs and focus. No inline script anywhere (strict CSP).
(function () {
  "use strict";
  document.documentElement.classList.add("js");

  // A modal dialog makes the rest of the page inert and covers it with its backdrop, so
  // while one is open its toasts go to a live region inside it (see openDialog).
  var toasts = function () {
    var open = document.querySelector("dialog[open] [data-dialog-toasts]");
    return open || document.getElementById("toasts");
  };

  function showToast(message, level, undo) {
    var region = toasts();
    if (!region || !message) return;
    var item = document.createElement("div");
    item.className = "toast toast--" + (level || "info");
    var text = document.createElement("span");
    text.textContent = message;
    item.appendChild(text);
    if (undo && undo.url && undo.token) item.appendChild(undoButton(item, undo));
    region.appendChild(item);
    // An Undo stays at least 15 s, and while the pointer or focus is on it.
    var wait = undo ? 15000 : level === "error" ? 12000 : 6000;
    (function expire() {
      window.setTimeout(function () {
        if (item.matches(":hover") || item.contains(document.activeElement)) expire();
        else item.remove();
      }, wait);
    })();
  }
  window.lmsToast = showToast;

  // Undo posts the token back; the server answers with the refreshed dialog or row (it
  // picks by HX-Target) and a toast saying what was undone, or why it could not be.
  function undoButton(item, undo) {
    var button = document.createElement("button");
    button.type = "button";
    button.className = "btn btn--small toast__undo";
    button.textContent = "Undo";
    button.addEventListener("click", function () {
      button.disabled = true;
      // The dialog's body, or the same editor on a user's profile.
      var dialogBody = document.querySelector("dialog[open] #courses-dialog-body") ||
        document.getElementById("courses-dialog-body");
      var row = document.getElementById("user-" + undo.user);
      var list = document.getElementById("users-results");
      var target = dialogBody || row || null;
      var token = document.querySelector('meta[name="csrf-token"]');
      window.htmx.ajax("POST", undo.url, {
        source: document.body,
        target: target || "body",
        swap: target ? (target === row ? "outerHTML" : "innerHTML") : "none",
        values: { token: undo.token, next: window.location.pathname + window.location.search },
        headers: { "X-CSRFToken": token ? token.content : "" }
      }).then(function () {
        item.remove();
        // The row had left this filtered view: show the list as it is now.
        if (!target && list) {
          window.htmx.ajax("GET", window.location.pathname + window.location.search,
            { target: list, swap: "innerHTML" });
        }
      });
    });
    return button;
  }

  // The list opened at one user (after Add user, the address ends in #user-<id>): their
  // row is highlighted by CSS (:target) and takes the focus, so the keyboard starts there.
  document.addEventListener("DOMContentLoaded", function () {
    var match = /^#user-\d+$/.exec(window.location.hash);
    var row = match && document.getElementById(match[0].slice(1));
    if (!row || row.tagName !== "TR") return;
    row.setAttribute("tabindex", "-1");
    row.focus();
  });

  // Flash messages rendered with the page fade out like toasts.
  document.addEventListener("DOMContentLoaded", function () {
    var region = toasts();
    if (!region) return;
    Array.prototype.forEach.call(region.children, function (item) {
      window.setTimeout(function () { item.remove(); }, 8000);
    });
  });

  document.body && init();
  if (!document.body) document.addEventListener("DOMContentLoaded", init);

  function init() {
    document.body.addEventListener("showToast", function (event) {
      var detail = event.detail || {};
      showToast(detail.message || detail.value, detail.level, detail.undo);
    });

    // htmx does not swap errors (422 aside): say what happened instead of failing silently.
    document.body.addEventListener("htmx:responseError", function (event) {
      var xhr = event.detail.xhr;
      var text = (xhr && xhr.getResponseHeader("Content-Type") || "").indexOf("text/plain") === 0
        ? xhr.responseText : "";
      showToast(text || "That did not work (error " + (xhr ? xhr.status : "?") + "). Nothing was changed.", "error");
    });
    document.body.addEventListener("htmx:sendError", function () {
      showToast("The server could not be reached. Check your connection and try again.", "error");
    });

    // A thin busy bar for requests that take longer than ~200 ms (CSS delays it).
    var busy = document.getElementById("busy");
    var inFlight = 0;
    // The region being replaced says so to assistive technology while it loads.
    document.body.addEventListener("htmx:beforeRequest", function (event) {
      // A button that started a request cannot start it twice (rows carry no per-button
      // hx-disabled-elt: the list stays small).
      var elt = event.detail.elt;
      if (elt && elt.tagName === "BUTTON" && !elt.disabled) {
        elt.disabled = true;
        elt.setAttribute("data-busy-disabled", "");
      }
      inFlight += 1; if (busy) busy.classList.add("is-busy");
      if (event.detail.target) event.detail.target.setAttribute("aria-busy", "true");
    });
    document.body.addEventListener("htmx:afterRequest", function (event) {
      var elt = event.detail.elt;
      if (elt && elt.hasAttribute && elt.hasAttribute("data-busy-disabled")) {
        elt.disabled = false;
        elt.removeAttribute("data-busy-disabled");
      }
      inFlight = Math.max(0, inFlight - 1);
      if (busy && inFlight === 0) busy.classList.remove("is-busy");
      if (event.detail.target) event.detail.target.removeAttribute("aria-busy");
    });

    // A row action whose user no longer matches the filters answers without the row: it
    // leaves, and the focus (if it was in it) moves to the next row, else the count.
    document.body.addEventListener("htmx:beforeSwap", function (event) {
      var row = event.detail.target;
      if (!row || row.tagName !== "TR" || !/^user-\d+$/.test(row.id)) return;
      if (event.detail.serverResponse.indexOf('id="' + row.id + '"') !== -1) return;
      if (!row.contains(document.activeElement) && document.activeElement !== document.body) return;
      var next = row.nextElementSibling || row.previousElementSibling;
      window.setTimeout(function () {
        var to = (next && document.body.contains(next) && next.querySelector("a, button")) ||
          document.getElementById("users-count");
        if (!to) return;
        if (to.id === "users-count") to.setAttribute("tabindex", "-1");
        to.focus();
      }, 0);
    });

    // Dialogs: content swapped into #dialog-root opens as a modal <dialog>.
    var opener = null;
    document.body.addEventListener("htmx:beforeRequest", function (event) {
      var target = event.detail.target;
      if (target && target.id === "dialog-root") {
        opener = event.detail.elt;
        // From a "More" menu (closed by then): focus returns to the menu's button.
        var menu = opener && opener.closest && opener.closest("details.menu");
        if (menu) opener = menu.querySelector("summary");
      }
    });
    document.body.addEventListener("htmx:afterSettle", function (event) {
      var target = event.detail.target;
      if (!target) return;
      if (target.id === "dialog-root") {
        var dialog = target.querySelector("dialog");
        if (dialog && !dialog.open) openDialog(dialog);
        return;
      }
      // An outerHTML swap replaced the target: its successor has the same id (a row).
      if (!document.body.contains(target) && target.id) {
        target = document.getElementById(target.id) || target;
      }
      // After a swap, put focus somewhere sensible if the focused element went away.
      var focusTarget = target.querySelector("[data-focus-after-swap]") ||
        (document.activeElement === document.body ? target : null);
      if (focusTarget) {
        if (!focusTarget.hasAttribute("tabindex") && !/^(A|BUTTON|INPUT|SELECT|TEXTAREA)$/.test(focusTarget.tagName)) {
          focusTarget.setAttribute("tabindex", "-1");
        }
        focusTarget.focus({ preventScroll: false });
      }
    });

    function openDialog(dialog) {
      var returnTo = opener && opener.id ? opener.id : null;
      var region = document.createElement("div");
      region.className = "toasts";
      region.setAttribute("role", "status");
      region.setAttribute("aria-live", "polite");
      region.setAttribute("data-dialog-toasts", "");
      dialog.appendChild(region);
      dialog.addEventListener("close", function () {
        var back = (returnTo && document.getElementById(returnTo)) || opener;
        var page = document.getElementById("toasts");
        while (page && region.firstChild) page.appendChild(region.firstChild);
        dialog.remove();
        if (back && document.body.contains(back)) back.focus();
      }, { once: true });
      dialog.showModal();
      // Never a button that acts (a row's Archive or Unassign): one Enter must not change data.
      // A form sent back with errors: its first refused field, where the fix is typed.
      var first = dialog.querySelector("[aria-invalid=true]") ||
        dialog.querySelector("[autofocus]") ||
        dialog.querySelector("input:not([type=hidden]):not([disabled]), select, textarea") ||
        dialog.querySelector("[data-close-dialog]");
      if (first) first.focus();
    }

    document.body.addEventListener("closeDialog", function () {
      var dialog = document.querySelector("#dialog-root dialog[open]");
      if (dialog) dialog.close();
    });

    // The main navigation folds into a Menu button in narrow windows and portal frames
    // (CSS decides when); without script the list simply stays open.
    var navToggle = document.querySelector(".nav-toggle");
    if (navToggle) {
      navToggle.hidden = false;
      document.documentElement.classList.add("has-nav-toggle");
      navToggle.addEventListener("click", function () {
        var open = navToggle.getAttribute("aria-expanded") !== "true";
        navToggle.setAttribute("aria-expanded", String(open));
      });
      document.addEventListener("keydown", function (event) {
        if (event.key === "Escape" && navToggle.getAttribute("aria-expanded") === "true") {
          navToggle.setAttribute("aria-expanded", "false");
          navToggle.focus();
        }
      });
    }

    // Links marked data-dialog open their page as a dialog (one handler instead of
    // hx-get/hx-target on every row's links).
    document.addEventListener("click", function (event) {
      var link = event.target.closest("a[data-dialog]");
      if (!link || event.ctrlKey || event.metaKey || event.shiftKey) return;
      event.preventDefault();
      var menu = link.closest("details.menu");
      if (menu) menu.open = false;
      window.htmx.ajax("GET", link.href, { source: link, target: "#dialog-root", swap: "innerHTML" });
    });

    // "More" menus fetch their items when first opened; Escape or a click elsewhere closes them.
    document.addEventListener("toggle", function (event) {
      var menu = event.target;
      if (!menu.matches || !menu.matches("details[data-menu]") || !menu.open) return;
      document.querySelectorAll("details.menu[open]").forEach(function (other) {
        if (other !== menu) other.open = false;
      });
      if (menu.querySelector(".menu__list")) return;
      var list = document.createElement("div");
      list.className = "menu__list";
      menu.appendChild(list);
      window.htmx.ajax("GET", menu.getAttribute("data-menu"),
        { source: menu, target: list, swap: "innerHTML" });
    }, true);
    // The search box searches as you type (its own trigger). The "change" it fires when it
    // is left must not reach the filter form too: that second search, answering after a
    // chip's request, brought back a filter that had just been removed.
    document.addEventListener("change", function (event) {
      if (event.target.id === "users-q") event.stopPropagation();
    }, true);
    // Popovers made of <details> (row menus, Advanced filters) close on Escape and on a
    // click outside them, like any menu.
    var POPOVERS = "details.menu[open], details.filters-menu[open]";
    document.addEventListener("keydown", function (event) {
      if (event.key !== "Escape") return;
      var open = document.activeElement && document.activeElement.closest(POPOVERS);
      if (open) { open.open = false; open.querySelector("summary").focus(); }
    });
    document.addEventListener("click", function (event) {
      document.querySelectorAll(POPOVERS).forEach(function (open) {
        if (!open.contains(event.target)) open.open = false;
      });
    });

    document.addEventListener("click", function (event) {
      var closer = event.target.closest("[data-close-dialog]");
      if (closer) {
        var dialog = closer.closest("dialog");
        if (dialog) { event.preventDefault(); dialog.close(); }
      }
    });
  }
})();
