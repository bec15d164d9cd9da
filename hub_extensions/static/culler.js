// jupyterhub-ds: the idle timer and "Extend session" on the hub home page.
//
// GET api/users/{name}/session-info when the page loads and every 5 minutes, a local countdown every
// second in between, and POST api/users/{name}/extend-session {"hours": n} with the page's XSRF token.
// The input's maximum is the hours still available (from the server), not a fixed number.
(function () {
  "use strict";

  var REFRESH_MS = 300000;

  // the shared API helper (ds-api.js): resolves to the JSON body, rejects with its "message"
  function api(method, path, payload) {
    return window.dsApi.call(method, path, payload).then(function (res) {
      return res.body || {};
    });
  }

  function formatRemaining(seconds) {
    if (seconds <= 0) return "expiring";
    var h = Math.floor(seconds / 3600);
    var m = Math.floor((seconds % 3600) / 60);
    var s = seconds % 60;
    if (h) return h + "h " + m + "m";
    if (m) return m + "m " + s + "s";
    return s + "s";
  }

  function init() {
    var root = document.getElementById("ds-session-timer");
    if (!root) return;
    var user = root.getAttribute("data-ds-user");
    var path = "users/" + encodeURIComponent(user);
    var remainingEl = document.getElementById("ds-session-remaining");
    var bar = root.querySelector("#ds-session-bar .progress-bar");
    var input = document.getElementById("ds-extend-hours");
    var button = document.getElementById("ds-extend-btn");
    var availableEl = document.getElementById("ds-extend-available");
    var result = document.getElementById("ds-extend-result");
    var remaining = null;
    var full = 1;

    function render() {
      if (remaining === null) return;
      remainingEl.textContent = formatRemaining(remaining);
      var pct = Math.max(0, Math.min(100, (100 * remaining) / full));
      bar.style.width = pct + "%";
      bar.className = "progress-bar" + (pct <= 10 ? " bg-danger" : pct <= 30 ? " bg-warning" : "");
    }

    function show(info) {
      if (!info.culler_enabled || !info.server_active || info.time_remaining_seconds === null) {
        root.hidden = true;
        return;
      }
      root.hidden = false;
      remaining = info.time_remaining_seconds;
      full = info.timeout_seconds + info.max_extension_hours * 3600;
      var available = info.extensions_available_hours;
      input.max = String(Math.max(1, available));
      if (Number(input.value) > available) input.value = String(Math.max(1, available));
      input.disabled = button.disabled = available <= 0;
      button.title = available <= 0 ? "All extension hours used" : "";
      availableEl.textContent = available > 0 ? "Available: " + available + " hour(s)" : "No extension hours available";
      render();
    }

    function refresh() {
      return api("GET", path + "/session-info").then(show, function (err) {
        result.className = "small mt-1 text-danger";
        result.textContent = "Could not read the session timer: " + err.message;
      });
    }

    document.getElementById("ds-extend-form").addEventListener("submit", function (event) {
      event.preventDefault();
      button.disabled = true;
      api("POST", path + "/extend-session", { hours: Number(input.value) }).then(
        function (body) {
          result.className = "small mt-1 " + (body.truncated ? "text-warning" : "text-success");
          result.textContent = body.message;
          return refresh();
        },
        function (err) {
          result.className = "small mt-1 text-danger";
          result.textContent = "Error: " + err.message;
          return refresh();
        }
      );
    });

    refresh();
    setInterval(function () {
      if (remaining !== null && remaining > 0) {
        remaining -= 1;
        render();
      }
    }, 1000);
    setInterval(refresh, REFRESH_MS);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
