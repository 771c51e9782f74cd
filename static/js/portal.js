// The portal's own small enhancements. Every page works without them (plain forms).
(function () {
  "use strict";

  // "click here" while a new code cannot be sent yet: count down next to it, disabled until then.
  function countdown(button) {
    var seconds = parseInt(button.getAttribute("data-wait"), 10);
    var note = document.getElementById(button.getAttribute("aria-describedby") || "");
    var shown = note && note.querySelector(".seconds");
    if (!(seconds > 0)) { return; }
    button.disabled = true;
    var timer = window.setInterval(function () {
      seconds -= 1;
      if (shown) { shown.textContent = String(seconds); }
      if (seconds <= 0) {
        window.clearInterval(timer);
        button.disabled = false;
        if (note) { note.hidden = true; }
      }
    }, 1000);
  }

  // "Copy key" beside the authenticator key (the key itself stays visible as text).
  function copyButton(button) {
    if (!navigator.clipboard) { return; }
    button.hidden = false;
    button.addEventListener("click", function () {
      var source = document.querySelector(button.getAttribute("data-copy"));
      var done = button.parentNode.querySelector(".copy-done");
      navigator.clipboard.writeText(source.textContent.replace(/\s+/g, "")).then(function () {
        if (done) { done.textContent = "Key copied."; }
      });
    });
  }

  function enhance(root) {
    root.querySelectorAll("button[data-wait]:not([data-enhanced])").forEach(function (button) {
      button.setAttribute("data-enhanced", "");
      countdown(button);
    });
    root.querySelectorAll("button.copy-key:not([data-enhanced])").forEach(function (button) {
      button.setAttribute("data-enhanced", "");
      copyButton(button);
    });
  }

  document.addEventListener("DOMContentLoaded", function () { enhance(document); });
  document.addEventListener("htmx:load", function (event) { enhance(event.detail.elt); });
})();
