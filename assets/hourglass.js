// Small page helpers the strict CSP allows (no inline script): copy buttons and countdowns.
"use strict";

document.addEventListener("click", function (e) {
  var b = e.target.closest("[data-copy]");
  if (!b) return;
  var el = document.getElementById(b.getAttribute("data-copy"));
  if (!el || !navigator.clipboard) return;
  navigator.clipboard.writeText(el.textContent.trim()).then(function () {
    b.textContent = "Copied";
  });
});

// <span data-seconds-left="N">: counts down from the server's figure at page load.
setInterval(function () {
  document.querySelectorAll("[data-seconds-left]").forEach(function (el) {
    if (!el.dataset.t0) el.dataset.t0 = String(Date.now());
    var left = Number(el.dataset.secondsLeft) - (Date.now() - Number(el.dataset.t0)) / 1000;
    left = Math.max(0, Math.round(left));
    var m = Math.floor(left / 60), s = left % 60;
    el.textContent = m > 0 ? m + " min " + s + " s" : s + " s";
  });
}, 1000);
