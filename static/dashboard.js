// verdict dashboard: every 5 seconds, while the tab is visible, fetch the
// page's live fragment (the same sections, rendered by the server from the
// same figures) and swap it in. Without this file the page is complete; it
// only does not refresh itself.
(function () {
  "use strict";

  var live = document.getElementById("live");
  if (!live || !live.dataset.live || !window.fetch) return;
  var url = live.dataset.live;
  var every = 5000;
  var timer = null;
  var busy = false;
  var last = null;

  function schedule() {
    clearTimeout(timer);
    if (!document.hidden) timer = setTimeout(refresh, every);
  }

  function refresh() {
    if (busy || document.hidden) return;
    busy = true;
    fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (r) {
        // Signed out meanwhile: the server sent us to sign in; show that.
        if (r.redirected) {
          window.location.reload();
          throw new Error("signed out");
        }
        if (!r.ok) throw new Error("status " + r.status);
        return r.text();
      })
      .then(function (html) {
        if (html !== last) {
          live.innerHTML = html;
          last = html;
        }
        live.classList.remove("stale");
      })
      .catch(function () {
        // Keep the figures shown, dimmed, and try again at the next tick.
        live.classList.add("stale");
      })
      .then(function () {
        busy = false;
        schedule();
      });
  }

  document.addEventListener("visibilitychange", function () {
    if (document.hidden) clearTimeout(timer);
    else refresh();
  });
  schedule();
})();
