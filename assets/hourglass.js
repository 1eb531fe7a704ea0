// Small page helpers the strict CSP allows (no inline script): copy buttons, countdowns, the
// navigation menu on narrow screens, the step-up dialog, and forms that behave.
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

// The navigation collapses behind the menu button on narrow screens.
document.addEventListener("click", function (e) {
  var b = e.target.closest("[data-menu-toggle]");
  if (!b) return;
  var open = document.body.classList.toggle("nav-open");
  b.setAttribute("aria-expanded", open ? "true" : "false");
});

// <span data-seconds-left="N">: counts down from the server's figure at page load. With
// data-reload-at-zero the page (or its htmx fragment) is fetched again when it reaches zero,
// e.g. the offline code page shows the next code.
setInterval(function () {
  document.querySelectorAll("[data-seconds-left]").forEach(function (el) {
    if (!el.dataset.t0) el.dataset.t0 = String(Date.now());
    var left = Number(el.dataset.secondsLeft) - (Date.now() - Number(el.dataset.t0)) / 1000;
    left = Math.max(0, Math.round(left));
    var m = Math.floor(left / 60), s = left % 60;
    el.textContent = m > 0 ? m + " min " + s + " s" : s + " s";
    if (left === 0 && el.hasAttribute("data-reload-at-zero") && !el.dataset.reloading) {
      el.dataset.reloading = "1";
      setTimeout(function () { window.location.reload(); }, 1500);
    }
  });
}, 1000);

// A live list redraws only when it changed: it tells the server which version it shows
// (data-fragment-version) and the server answers 204 when that is still current.
document.addEventListener("htmx:configRequest", function (e) {
  var v = e.detail.elt && e.detail.elt.dataset && e.detail.elt.dataset.fragmentVersion;
  if (v) e.detail.headers["X-Fragment-Version"] = v;
});
// A form's answer can redraw the live list too (HX-Retarget): the version goes to the list.
document.addEventListener("htmx:afterRequest", function (e) {
  var x = e.detail.xhr, elt = e.detail.target || e.detail.elt;
  var v = x && x.getResponseHeader("X-Fragment-Version");
  if (v && elt && elt.dataset) elt.dataset.fragmentVersion = v;
});

// A mutation says what it did (HX-Trigger hg-notice): shown in the page's flash area.
document.body.addEventListener("hg-notice", function (e) {
  var f = document.getElementById("flash");
  if (!f || !e.detail || !e.detail.value) return;
  var p = document.createElement("p");
  p.className = "flash info notice";
  p.textContent = e.detail.value;
  f.replaceChildren(p);
});

// --- step-up -----------------------------------------------------------------------------
// A sensitive htmx request answered "fresh code needed" (X-Step-Up): the server put the code
// form into the dialog. After a correct code (event hg-stepped-up) the original request is
// sent again from its own element, so the page and what was typed in it stay as they were.
var pendingStepUp = null;
var replaying = null;

function stepUpDialog() { return document.getElementById("step-up-dialog"); }

document.addEventListener("htmx:beforeSwap", function (e) {
  var x = e.detail.xhr;
  if (!x || x.getResponseHeader("X-Step-Up") !== "required") return;
  var c = e.detail.requestConfig || {};
  var values = {};
  if (c.formData && c.formData.forEach) {
    c.formData.forEach(function (v, k) { values[k] = v; });
  }
  pendingStepUp = { elt: c.elt, verb: c.verb, path: c.path, values: values };
});

document.addEventListener("htmx:afterSwap", function (e) {
  var d = stepUpDialog();
  if (!d || e.detail.target !== d) return;
  // htmx wires the new form only when the swap settles; a quick person (or test) could send
  // it as a plain post before that, so wire it before the dialog shows.
  if (window.htmx) htmx.process(d);
  if (!d.open && d.showModal) d.showModal();
  var input = d.querySelector("input[name=code]");
  if (input) input.focus();
});

document.addEventListener("hg-stepped-up", function () {
  var d = stepUpDialog();
  if (d && d.open) d.close();
  var p = pendingStepUp;
  pendingStepUp = null;
  if (!p || !window.htmx) return;
  if (p.elt && document.body.contains(p.elt)) {
    replaying = p.elt;
    htmx.ajax(p.verb, p.path, { source: p.elt });
  } else {
    // The element was redrawn meanwhile (a live list): send what it held.
    htmx.ajax(p.verb, p.path, { values: p.values, target: "#flash", swap: "innerHTML" });
  }
});

// The person already confirmed the original request: do not ask twice.
document.addEventListener("htmx:confirm", function (e) {
  if (replaying && e.detail.elt === replaying) {
    replaying = null;
    e.preventDefault();
    e.detail.issueRequest(true);
  }
});

document.addEventListener("click", function (e) {
  if (!e.target.closest("[data-close-dialog]")) return;
  var d = stepUpDialog();
  pendingStepUp = null;
  if (d && d.open) d.close();
});

// --- forms -------------------------------------------------------------------------------
// A create form (data-reset-on-success) is emptied once the server accepted it, so the next
// entry starts clean; on an error it keeps what was typed, and so it does while a fresh code
// is asked for (that answer is a success too, and the replay sends the form as it is).
document.addEventListener("htmx:afterRequest", function (e) {
  var f = e.detail.elt;
  if (!f || !f.matches || !f.matches("form[data-reset-on-success]")) return;
  var x = e.detail.xhr;
  if (x && x.getResponseHeader("X-Step-Up") === "required") return;
  if (e.detail.successful) f.reset();
});

// An htmx form is sent once at a time: its buttons are disabled while its request is out, so
// a double click creates one object.
function formButtons(f) {
  return f.querySelectorAll("button[type=submit], button:not([type])");
}
document.addEventListener("htmx:beforeRequest", function (e) {
  var f = e.detail.elt;
  if (f && f.tagName === "FORM") formButtons(f).forEach(function (b) { b.disabled = true; });
});
document.addEventListener("htmx:afterRequest", function (e) {
  var f = e.detail.elt;
  if (f && f.tagName === "FORM") formButtons(f).forEach(function (b) { b.disabled = false; });
});

// A plain form is sent once: its buttons are disabled while the next page loads (htmx forms
// use hx-disabled-elt for the same).
document.addEventListener("submit", function (e) {
  var f = e.target;
  if (!f || f.hasAttribute("hx-post") || f.hasAttribute("hx-get") || e.defaultPrevented) return;
  if (f.dataset.sent) { e.preventDefault(); return; }
  f.dataset.sent = "1";
  setTimeout(function () {
    formButtons(f).forEach(function (b) { b.disabled = true; });
  }, 0);
});

// Back-forward cache: a page shown again must not keep its forms locked.
window.addEventListener("pageshow", function () {
  document.querySelectorAll("form[data-sent]").forEach(function (f) {
    delete f.dataset.sent;
    f.querySelectorAll("button").forEach(function (b) { b.disabled = false; });
  });
});

// A checkbox whose ticking takes something away (data-confirm-check) asks first; cancelled,
// it stays unticked.
document.addEventListener("change", function (e) {
  var b = e.target.closest && e.target.closest("input[type=checkbox][data-confirm-check]");
  if (!b || !b.checked) return;
  if (!window.confirm(b.getAttribute("data-confirm-check"))) b.checked = false;
});
