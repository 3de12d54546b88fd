// Progressive enhancements only: the page reads the same without this script.
(function () {
  "use strict";
  document.querySelectorAll("button.copy[data-copy]").forEach(function (button) {
    button.hidden = false;
    button.addEventListener("click", function () {
      var code = document.getElementById(button.getAttribute("data-copy"));
      var text = code ? code.textContent : "";
      var done = function () {
        button.textContent = "Copied";
        setTimeout(function () { button.textContent = "Copy"; }, 1500);
      };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(text).then(done, function () { selectAndCopy(code); done(); });
      } else {
        selectAndCopy(code);
        done();
      }
    });
  });
  function selectAndCopy(node) {
    var range = document.createRange();
    range.selectNodeContents(node);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    try { document.execCommand("copy"); } catch (e) { /* the text stays selected */ }
  }
  var filter = document.getElementById("filter");
  if (!filter) return;
  filter.hidden = false;
  var items = document.querySelectorAll("tr[data-test], article.finding[data-test]");
  filter.addEventListener("input", function () {
    var needle = filter.value.trim().toLowerCase();
    if (needle) document.getElementById("show-stable").checked = true;
    items.forEach(function (item) {
      var haystack = (item.getAttribute("data-search") || item.getAttribute("data-test")).toLowerCase();
      item.classList.toggle("filtered", needle !== "" && haystack.indexOf(needle) < 0);
    });
  });
})();
