// servefit: small progressive enhancements; every page works without this file.
(function () {
  "use strict";

  // Copy buttons: shown only when the clipboard can be written.
  function setupCopy() {
    var buttons = document.querySelectorAll("button.copy[data-copy]");
    if (!navigator.clipboard || !window.isSecureContext) return;
    buttons.forEach(function (button) {
      button.hidden = false;
      button.addEventListener("click", function () {
        var source = document.querySelector(button.getAttribute("data-copy"));
        if (!source) return;
        navigator.clipboard.writeText(source.textContent.replace(/\n$/, "")).then(function () {
          button.textContent = "Copied";
          button.classList.add("copied");
          setTimeout(function () { button.textContent = "Copy"; button.classList.remove("copied"); }, 1600);
        }, function () {
          button.textContent = "Copy failed";
        });
      });
    });
  }

  // Client-side filtering: an input with data-filter="#container" hides rows/items whose
  // data-filter-text does not contain every typed word.
  function setupFilters() {
    document.querySelectorAll(".js-only").forEach(function (el) { el.hidden = false; });
    document.querySelectorAll("input[data-filter]").forEach(function (input) {
      var container = document.querySelector(input.getAttribute("data-filter"));
      if (!container) return;
      var items = container.querySelectorAll("[data-filter-text]");
      function apply() {
        var words = input.value.toLowerCase().split(/\s+/).filter(Boolean);
        items.forEach(function (item) {
          var hay = item.getAttribute("data-filter-text").toLowerCase();
          item.hidden = !words.every(function (w) { return hay.indexOf(w) !== -1; });
        });
        document.querySelectorAll("[data-count-for]").forEach(function (counter) {
          var list = document.getElementById(counter.getAttribute("data-count-for"));
          if (!list) return;
          var shown = list.querySelectorAll("[data-filter-text]:not([hidden])").length;
          counter.textContent = "(" + shown + ")";
        });
      }
      input.addEventListener("input", apply);
      if (input.value) apply();
    });
  }

  // The static export serves /search without a server: read ?q= and filter in the page.
  function setupStaticSearch() {
    var input = document.querySelector("input#q[data-filter]");
    if (!input || input.value) return;
    var q = new URLSearchParams(window.location.search).get("q");
    if (q) { input.value = q; input.dispatchEvent(new Event("input")); }
  }

  document.addEventListener("DOMContentLoaded", function () {
    setupCopy();
    setupFilters();
    setupStaticSearch();
  });
})();
