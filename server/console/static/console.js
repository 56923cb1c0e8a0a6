// posfleet console: the only script, served from /static/ (the Content
// Security Policy allows no inline script). Pages work without it; it only
// refreshes live figures in place.
(function () {
  "use strict";
  var every = parseInt(document.body.getAttribute("data-refresh") || "0", 10);
  if (!every) {
    return;
  }
  function refresh() {
    var active = document.activeElement;
    if (active && (active.tagName === "INPUT" || active.tagName === "SELECT" || active.tagName === "TEXTAREA")) {
      return; // never pull a form from under the operator's fingers
    }
    fetch(window.location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (resp) {
        if (resp.redirected || !resp.ok) {
          throw new Error("refresh: " + resp.status);
        }
        return resp.text();
      })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        var fresh = doc.querySelector("main");
        var main = document.querySelector("main");
        if (fresh && main) {
          main.replaceChildren.apply(main, Array.prototype.slice.call(fresh.childNodes).map(function (n) {
            return document.importNode(n, true);
          }));
          var n = parseInt(document.body.getAttribute("data-refreshed") || "0", 10);
          document.body.setAttribute("data-refreshed", String(n + 1));
        }
      })
      .catch(function () {
        document.body.classList.add("stale");
      });
  }
  window.setInterval(refresh, every * 1000);
})();
