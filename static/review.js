// verdict review page: keyboard shortcuts, the lease countdown and its
// renewal, and the next item without a full page load. Without this file
// every action still works as a plain form post.
(function () {
  "use strict";

  var renewTimer = null;
  var tickTimer = null;

  function leaseClock() {
    clearInterval(renewTimer);
    clearInterval(tickTimer);
    var lease = document.getElementById("lease");
    if (!lease) return;
    var left = parseInt(lease.dataset.seconds, 10) || 0;
    var show = function () {
      var m = Math.floor(left / 60), s = left % 60;
      lease.textContent = left > 0 ? m + ":" + (s < 10 ? "0" : "") + s : "expired";
      lease.classList.toggle("expiring", left < 60);
    };
    show();
    tickTimer = setInterval(function () { left = Math.max(0, left - 1); show(); }, 1000);
    // Renew every minute while the page is open.
    var form = document.querySelector("form[data-renew]");
    if (!form) return;
    renewTimer = setInterval(function () {
      fetch(form.action, { method: "POST", body: new URLSearchParams(new FormData(form)), credentials: "same-origin" })
        .then(function (r) { return r.ok && !r.redirected ? r.json() : null; })
        .then(function (j) { if (j && typeof j.seconds === "number") left = j.seconds; });
    }, 60000);
  }

  document.addEventListener("keydown", function (e) {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    var t = e.target;
    if (t && (t.tagName === "TEXTAREA" || t.tagName === "INPUT")) return;
    var button = document.querySelector('button[data-key="' + e.key + '"]');
    if (button) {
      e.preventDefault();
      button.click();
    }
  });

  document.addEventListener("submit", function (e) {
    var form = e.target;
    if (!form.closest || !form.closest("[data-review]")) return;
    e.preventDefault();
    var data = new FormData(form, e.submitter);
    document.body.classList.add("busy");
    fetch(form.action, { method: "POST", body: new URLSearchParams(data), credentials: "same-origin" })
      .then(function (r) { return r.text().then(function (html) { return { url: r.url, html: html }; }); })
      .then(function (page) {
        // The session ended: open the sign-in page itself (it says so, and
        // returns here), not inside this one.
        if (new URL(page.url, window.location.href).pathname === "/sign-in") {
          window.location.assign(page.url);
          return;
        }
        var next = new DOMParser().parseFromString(page.html, "text/html");
        document.querySelector("main").replaceWith(next.querySelector("main"));
        document.title = next.title;
        history.replaceState(null, "", page.url);
        document.body.classList.remove("busy");
        leaseClock();
        armRefresh();
      })
      .catch(function () { form.submit(); });
  });

  // An empty queue looks again every few seconds while the tab is shown,
  // and shows the next item as soon as there is one.
  var refreshTimer = null;
  function armRefresh() {
    clearTimeout(refreshTimer);
    var empty = document.querySelector("[data-refresh]");
    if (!empty) return;
    var seconds = parseInt(empty.dataset.refresh, 10) || 10;
    refreshTimer = setTimeout(function () {
      if (document.hidden) { armRefresh(); return; }
      fetch(window.location.pathname, { credentials: "same-origin" })
        .then(function (r) { return r.text().then(function (html) { return { url: r.url, html: html }; }); })
        .then(function (page) {
          if (new URL(page.url, window.location.href).pathname === "/sign-in") {
            window.location.assign(page.url);
            return;
          }
          var next = new DOMParser().parseFromString(page.html, "text/html");
          if (next.querySelector("form.labels")) {
            document.querySelector("main").replaceWith(next.querySelector("main"));
            document.title = next.title;
            history.replaceState(null, "", window.location.pathname);
            leaseClock();
          }
          armRefresh();
        })
        .catch(armRefresh);
    }, seconds * 1000);
  }

  leaseClock();
  armRefresh();
})();
