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

  ready(function () {
    document.querySelectorAll("[data-select-on-click]").forEach(initSelectOnClick);
    document.querySelectorAll("[data-bulk]").forEach(initBulk);
    document.querySelectorAll("[data-inherit-group]").forEach(initInherit);
    initAuthMethod();
  });
})();
