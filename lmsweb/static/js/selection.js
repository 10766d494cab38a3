// Users list selection: the header checkbox selects the page, the count follows, and once
// the page is selected a banner offers "select all N matching" (Django admin's select across).
(function () {
  "use strict";

  function rows() {
    return Array.prototype.slice.call(
      document.querySelectorAll('input[type="checkbox"][name="user_ids"][form="bulk-form"]'));
  }
  function selectAll() { return document.querySelector("[data-select-all]"); }

  // The header cell may come without a checkbox (the table is someone else's markup): add one.
  function headerBox() {
    var box = document.querySelector("[data-select-page]");
    if (box) return box;
    var cell = document.querySelector("#users-table thead .col-check");
    if (!cell || !rows().length) return null;
    box = document.createElement("input");
    box.type = "checkbox";
    box.setAttribute("data-select-page", "");
    box.setAttribute("aria-label", "Select all users on this page");
    cell.textContent = "";
    cell.appendChild(box);
    return box;
  }

  function update() {
    var boxes = rows();
    var checked = boxes.filter(function (b) { return b.checked; }).length;
    var all = selectAll();
    var banner = document.getElementById("selection-banner");
    // "1,234", or "more than 10,000" past the count's cap: shown as it is.
    var total = (banner && banner.getAttribute("data-total")) || "0";
    var across = !!(all && all.checked);
    var header = headerBox();
    if (header) {
      header.checked = boxes.length > 0 && checked === boxes.length;
      header.indeterminate = checked > 0 && checked < boxes.length;
    }
    var count = document.querySelector("[data-bulk-count]");
    if (count) count.textContent = across ? total : String(checked);
    var text = banner && banner.querySelector("[data-banner]");
    if (text) {
      var pageDone = boxes.length > 0 && checked === boxes.length;
      text.hidden = !(pageDone || across);
      toggle(text, "[data-banner-page]", !across);
      toggle(text, "[data-banner-choose]", !across);
      toggle(text, "[data-banner-all]", across);
      toggle(text, "[data-clear-selection]", across);
    }
  }
  function toggle(root, selector, show) {
    var el = root.querySelector(selector);
    if (el) el.hidden = !show;
  }

  function clearSelection() {
    rows().forEach(function (b) { b.checked = false; });
    var all = selectAll();
    if (all) all.checked = false;
    update();
    var header = headerBox();
    if (header) header.focus();
  }

  // Show only the fields the chosen action uses (all of them without JavaScript).
  function showFields() {
    var select = document.querySelector("[data-bulk-action]");
    if (!select) return;
    var option = select.options[select.selectedIndex];
    var wanted = ((option && option.getAttribute("data-fields")) || "").split(" ");
    Array.prototype.forEach.call(document.querySelectorAll("[data-bulk-field]"), function (el) {
      el.hidden = wanted.indexOf(el.getAttribute("data-bulk-field")) < 0;
    });
  }

  document.addEventListener("change", function (event) {
    var target = event.target;
    if (target.matches("[data-select-page]")) {
      rows().forEach(function (b) { b.checked = target.checked; });
      if (!target.checked && selectAll()) selectAll().checked = false;
    } else if (target.matches('input[name="user_ids"]')) {
      if (!target.checked && selectAll()) selectAll().checked = false;
    } else if (target.matches("[data-select-all]") && target.checked) {
      rows().forEach(function (b) { b.checked = true; });
    } else if (target.matches("[data-bulk-action]")) {
      showFields();
      return;
    } else {
      return;
    }
    update();
  });
  document.addEventListener("click", function (event) {
    if (event.target.closest("[data-clear-selection]")) clearSelection();
  });

  function init() { showFields(); update(); }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
  document.addEventListener("htmx:afterSettle", update);
})();
