// Progressive enhancement for the review workspace; every page works without it.
// - a finding in the evidence list scrolls its span into view and flashes it;
// - answer rows (medications, findings) can be added and removed.
"use strict";

document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("a.goto-span").forEach(function (link) {
    link.addEventListener("click", function (event) {
      // Quotes that begin at one place share its mark: the anchor is that mark's id.
      var anchor = link.dataset.anchor || link.dataset.span;
      var target = document.getElementById("span-" + anchor);
      if (!target) return;
      event.preventDefault();
      target.scrollIntoView({ behavior: "smooth", block: "center" });
      document.querySelectorAll("mark.evidence.current").forEach(function (m) {
        m.classList.remove("current");
      });
      document.querySelectorAll("mark.evidence").forEach(function (m) {
        if ((" " + m.dataset.spans + " ").indexOf(" " + link.dataset.span + " ") >= 0) {
          m.classList.add("current");
        }
      });
      history.replaceState(null, "", "#span-" + anchor);
    });
  });

  function nextIndex(tbody) {
    var max = -1;
    tbody.querySelectorAll("tr.answer-row").forEach(function (row) {
      var i = parseInt(row.dataset.index, 10);
      if (!isNaN(i) && i > max) max = i;
    });
    return max + 1;
  }

  document.querySelectorAll("button.add-row").forEach(function (button) {
    button.addEventListener("click", function () {
      var name = button.dataset.rows;
      var table = document.querySelector('table.rows[data-rows="' + name + '"]');
      var template = document.getElementById("row-template-" + name);
      if (!table || !template) return;
      var tbody = table.querySelector("tbody");
      var max = parseInt(table.dataset.maxRows || "0", 10);
      if (max && tbody.querySelectorAll("tr.answer-row").length >= max) {
        button.textContent = "At most " + max + " rows";
        return;
      }
      var index = String(nextIndex(tbody));
      var html = template.innerHTML.split("__INDEX__").join(index);
      tbody.insertAdjacentHTML("beforeend", html);
      var row = tbody.lastElementChild;
      var first = row && row.querySelector("input, select, textarea");
      if (first) first.focus();
    });
  });

  document.addEventListener("click", function (event) {
    var button = event.target.closest("button.remove-row");
    if (!button) return;
    var row = button.closest("tr");
    if (row) row.remove();
  });
});
