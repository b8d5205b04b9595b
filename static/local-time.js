// verdict: times carry their full UTC time on hover; with this script the
// hover shows the reader's own local time first. Pages that swap their
// content (the review page) are followed too.
(function () {
  "use strict";
  var utc = /^(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d) UTC$/;
  function localise(root) {
    var times = root.querySelectorAll ? root.querySelectorAll("time[title]") : [];
    for (var i = 0; i < times.length; i++) {
      var t = times[i], m = utc.exec(t.title);
      if (!m) continue;
      var d = new Date(m[1] + "T" + m[2] + "Z");
      if (isNaN(d)) continue;
      t.title = d.toLocaleString() + " (your time) · " + t.title;
    }
  }
  function start() {
    localise(document);
    new MutationObserver(function (changes) {
      changes.forEach(function (c) {
        c.addedNodes.forEach(function (n) { if (n.nodeType === 1) localise(n); });
      });
    }).observe(document.body, { childList: true, subtree: true });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
