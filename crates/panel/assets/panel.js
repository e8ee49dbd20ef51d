// Live refresh for the control panel: every few seconds, fetch this page again and swap its
// <main> for the new one. The page is parsed with DOMParser (which runs no script) and only the
// server-rendered, escaped <main> is moved in. Refreshing pauses while the tab is hidden.
(function () {
  "use strict";
  var body = document.body;
  var seconds = parseInt(body.getAttribute("data-refresh-seconds") || "", 10);
  var status = document.getElementById("refresh-status");
  if (!(seconds > 0)) {
    return;
  }
  var busy = false;

  function show(text, failed) {
    if (status) {
      status.textContent = text;
      status.classList.toggle("stale", !!failed);
    }
  }

  function refresh() {
    if (busy || document.hidden) {
      return;
    }
    busy = true;
    fetch(window.location.href, { headers: { "Accept": "text/html" }, cache: "no-store", credentials: "same-origin" })
      .then(function (response) {
        if (!response.ok && response.status !== 503) {
          throw new Error("HTTP " + response.status);
        }
        return response.text();
      })
      .then(function (text) {
        var doc = new DOMParser().parseFromString(text, "text/html");
        var fresh = doc.getElementById("main");
        var current = document.getElementById("main");
        if (fresh && current) {
          current.replaceWith(document.adoptNode(fresh));
          show("live · " + new Date().toLocaleTimeString(), false);
        }
      })
      .catch(function () {
        show("stale: refresh failed", true);
      })
      .finally(function () {
        busy = false;
      });
  }

  window.setInterval(refresh, seconds * 1000);
  document.addEventListener("visibilitychange", function () {
    if (!document.hidden) {
      refresh();
    }
  });
})();
