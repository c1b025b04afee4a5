// Loading state for every form: the button says it is working and cannot be pressed twice.
// (Pages work without this script; it only prevents a double submission.)
(function () {
  "use strict";
  document.addEventListener("submit", function (event) {
    var button = event.target.querySelector("button[type=submit]");
    if (!button || event.target.method.toLowerCase() !== "post") { return; }
    button.dataset.label = button.textContent;
    button.textContent = "提交中…";
    button.setAttribute("aria-busy", "true");
    button.disabled = true;
  });
  // Back to a page kept in the browser's cache: its buttons work again.
  window.addEventListener("pageshow", function () {
    document.querySelectorAll("button[aria-busy=true]").forEach(function (button) {
      button.textContent = button.dataset.label || button.textContent;
      button.removeAttribute("aria-busy");
      button.disabled = false;
    });
  });
})();
