// Progressive enhancement only: a "Copy" button after every command and digest (data-copy).
// The page works without it; commands can always be selected and copied by hand.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  if (!navigator.clipboard) { return; }
  document.querySelectorAll("[data-copy]").forEach(function (el) {
    var button = document.createElement("button");
    button.type = "button";
    button.className = "copy";
    button.textContent = "Copy";
    button.setAttribute("aria-label", "Copy " + el.textContent.slice(0, 80));
    button.addEventListener("click", function () {
      navigator.clipboard.writeText(el.textContent).then(function () {
        button.textContent = "Copied";
        setTimeout(function () { button.textContent = "Copy"; }, 1500);
      }, function () { button.textContent = "Select and copy"; });
    });
    (el.parentElement.tagName === "PRE" ? el.parentElement : el).insertAdjacentElement("afterend", button);
  });
});
