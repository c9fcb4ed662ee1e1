/* The admin's small enhancements; every page works without them. */
(function () {
  "use strict";
  // Clicking "line N" of a problem selects that line in the YAML textarea.
  function selectLine(textarea, number) {
    var lines = textarea.value.split("\n");
    var start = 0;
    for (var i = 0; i < number - 1 && i < lines.length; i++) start += lines[i].length + 1;
    var end = start + (lines[number - 1] || "").length;
    textarea.focus();
    textarea.setSelectionRange(start, end);
    var lineHeight = parseFloat(getComputedStyle(textarea).lineHeight) || 18;
    textarea.scrollTop = Math.max(0, (number - 5) * lineHeight);
  }
  document.addEventListener("click", function (event) {
    var link = event.target.closest && event.target.closest("a.goto-line");
    var textarea = document.getElementById("yaml-text");
    if (!link || !textarea) return;
    event.preventDefault();
    selectLine(textarea, parseInt(link.getAttribute("data-line"), 10));
  });
  // Forms that undo work (discard a draft, roll back) ask first.
  document.addEventListener("submit", function (event) {
    var question = event.target.getAttribute && event.target.getAttribute("data-confirm");
    if (question && !window.confirm(question)) event.preventDefault();
  });
  // Step cards move up and down; the form posts them in the order they are shown.
  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("button.step-move");
    if (!button) return;
    event.preventDefault();
    var card = button.closest(".deform-seq-item");
    if (button.getAttribute("data-move") === "up") {
      var previous = card.previousElementSibling;
      if (previous && previous.classList.contains("deform-seq-item")) card.parentNode.insertBefore(card, previous);
    } else {
      var next = card.nextElementSibling;
      if (next && next.classList.contains("deform-seq-item")) card.parentNode.insertBefore(next, card);
    }
    button.focus();
  });
  // Tab in the YAML editor indents instead of leaving the field.
  document.addEventListener("keydown", function (event) {
    if (event.target.id !== "yaml-text" || event.key !== "Tab" || event.shiftKey || event.target.readOnly) return;
    event.preventDefault();
    var t = event.target, s = t.selectionStart;
    t.value = t.value.slice(0, s) + "  " + t.value.slice(t.selectionEnd);
    t.setSelectionRange(s + 2, s + 2);
  });
})();
