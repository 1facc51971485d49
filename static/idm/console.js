/* idm console: small progressive enhancements. Every page works without this file. */
(function () {
  "use strict";

  function ready(fn) {
    if (document.readyState !== "loading") fn(); else document.addEventListener("DOMContentLoaded", fn);
  }

  // Bulk selection on the users list: "select all", count, enable buttons.
  function initBulk(form) {
    var all = form.querySelector("[data-select-all]");
    var boxes = Array.prototype.slice.call(form.querySelectorAll('input[name="ids"]'));
    var count = form.querySelector("[data-bulk-count]");
    var buttons = form.querySelectorAll("[data-bulk-button]");
    function update() {
      var n = boxes.filter(function (b) { return b.checked; }).length;
      if (count) count.textContent = n ? n + " selected" : "No users selected";
      buttons.forEach(function (b) { b.disabled = n === 0; });
      if (all) {
        all.checked = n > 0 && n === boxes.length;
        all.indeterminate = n > 0 && n < boxes.length;
      }
    }
    if (all) all.addEventListener("change", function () {
      boxes.forEach(function (b) { b.checked = all.checked; });
      update();
    });
    boxes.forEach(function (b) { b.addEventListener("change", update); });
    update();
  }

  // Org settings: "inherit from parent" disables the override inputs of its group.
  function initInherit(group) {
    var toggle = group.querySelector("[data-inherit-toggle]");
    var target = group.querySelector("[data-inherit-target]");
    if (!toggle || !target) return;
    function update() {
      var inherit = toggle.checked;
      target.classList.toggle("is-inherited", inherit);
      target.querySelectorAll("input, select, textarea").forEach(function (el) { el.disabled = inherit; });
    }
    toggle.addEventListener("change", update);
    update();
  }

  // Provider choice only matters for single sign-on.
  function initAuthMethod() {
    var provider = document.getElementById("id_auth_provider");
    if (!provider) return;
    var wrap = provider.closest(".field");
    var radios = document.querySelectorAll('input[name="auth_method"]');
    function update() {
      var sso = Array.prototype.some.call(radios, function (r) { return r.checked && r.value === "sso"; });
      if (wrap) wrap.hidden = !sso;
    }
    radios.forEach(function (r) { r.addEventListener("change", update); });
    update();
  }

  // Read-only link fields select their text on click (was an inline onclick, which the CSP forbids).
  function initSelectOnClick(el) {
    el.addEventListener("click", function () { el.select(); });
  }

  // Times are shown in the viewer's time zone: tell the server which one (read by UserTimeZoneMiddleware).
  function reportTimeZone() {
    var zone;
    try { zone = Intl.DateTimeFormat().resolvedOptions().timeZone; } catch (e) { return; }
    if (!zone || document.cookie.indexOf("idm_tz=" + zone) !== -1) return;
    document.cookie = "idm_tz=" + zone + "; path=/; max-age=31536000; SameSite=Lax";
  }

  // Phones: the main navigation becomes a menu behind the "Menu" button (data-nav-toggle).
  function initNavToggle(button) {
    var header = button.closest(".top");
    if (!header) return;
    header.classList.add("js-nav");
    button.addEventListener("click", function () {
      var open = header.classList.toggle("nav-open");
      button.setAttribute("aria-expanded", open ? "true" : "false");
    });
    document.addEventListener("keydown", function (e) {
      if (e.key === "Escape" && header.classList.contains("nav-open")) {
        header.classList.remove("nav-open");
        button.setAttribute("aria-expanded", "false");
        button.focus();
      }
    });
  }

  // Filters: open on wide screens, collapsed (one tap away) on phones.
  function initFilterPanel(panel) {
    if (window.matchMedia && window.matchMedia("(min-width: 721px)").matches) panel.open = true;
  }

  // Copy buttons: data-copy="<element id>" copies that element's text.
  function initCopy(button) {
    var target = document.getElementById(button.getAttribute("data-copy"));
    if (!target) return;
    button.hidden = false;
    button.addEventListener("click", function () {
      var text = (target.value !== undefined ? target.value : target.textContent).trim();
      var done = function () {
        var label = button.textContent;
        button.textContent = "Copied";
        setTimeout(function () { button.textContent = label; }, 1500);
      };
      if (navigator.clipboard && navigator.clipboard.writeText) {
        navigator.clipboard.writeText(text).then(done, function () {});
      } else {
        var range = document.createRange();
        range.selectNodeContents(target);
        var sel = window.getSelection();
        sel.removeAllRanges();
        sel.addRange(range);
        try { document.execCommand("copy"); done(); } catch (e) { /* selected: the user can copy */ }
      }
    });
  }

  ready(function () {
    document.querySelectorAll("[data-select-on-click]").forEach(initSelectOnClick);
    reportTimeZone();
    document.querySelectorAll("[data-nav-toggle]").forEach(initNavToggle);
    document.querySelectorAll("[data-filter-panel]").forEach(initFilterPanel);
    document.querySelectorAll("[data-copy]").forEach(initCopy);
    document.querySelectorAll("[data-select-on-focus]").forEach(function (el) {
      el.addEventListener("focus", function () { el.select(); });
      el.addEventListener("click", function () { el.select(); });
    });
    document.querySelectorAll("[data-bulk]").forEach(initBulk);
    document.querySelectorAll("[data-inherit-group]").forEach(initInherit);
    initAuthMethod();
  });
})();
