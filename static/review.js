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
    // f: open the flag form and write the note (Enter in it does not
    // send: the button does).
    var flag = document.querySelector("details.flag-form");
    if (e.key === "f" && flag) {
      e.preventDefault();
      flag.open = true;
      flag.querySelector("textarea").focus();
      return;
    }
    var button = document.querySelector('button[data-key="' + e.key + '"]');
    if (button) {
      e.preventDefault();
      button.click();
    }
  });

  // Fetches a review page. The session ended: opens the sign-in page
  // itself (it says so, and returns here), not inside this one, and gives
  // null. Otherwise gives the page, parsed, with its address.
  function load(url, options) {
    return fetch(url, options)
      .then(function (r) { return r.text().then(function (html) { return { url: r.url, html: html }; }); })
      .then(function (page) {
        if (new URL(page.url, window.location.href).pathname === "/sign-in") {
          window.location.assign(page.url);
          return null;
        }
        return { url: page.url, doc: new DOMParser().parseFromString(page.html, "text/html") };
      });
  }

  // Puts a fetched page in place of this one's main part.
  function show(page, url) {
    document.querySelector("main").replaceWith(page.doc.querySelector("main"));
    document.title = page.doc.title;
    history.replaceState(null, "", url);
    leaseClock();
    armRefresh();
  }

  document.addEventListener("submit", function (e) {
    var form = e.target;
    if (!form.closest || !form.closest("[data-review]")) return;
    e.preventDefault();
    var data = new FormData(form, e.submitter);
    document.body.classList.add("busy");
    load(form.action, { method: "POST", body: new URLSearchParams(data), credentials: "same-origin" })
      .then(function (page) {
        if (!page) return;
        document.body.classList.remove("busy");
        show(page, page.url);
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
      load(window.location.pathname, { credentials: "same-origin" })
        .then(function (page) {
          if (!page) return;
          if (page.doc.querySelector("form.labels")) show(page, window.location.pathname);
          else armRefresh();
        })
        .catch(armRefresh);
    }, seconds * 1000);
  }

  leaseClock();
  armRefresh();
})();
