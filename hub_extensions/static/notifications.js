// jupyterhub-ds: the Broadcast Notifications page. Counts code points (as the server does), builds the
// request, posts it with JupyterHub's XSRF token and shows the per-recipient result table.
(function () {
  "use strict";
  var max = window.dsNotify.max;
  var $ = function (id) { return document.getElementById(id); };

  function codePoints(s) { return Array.from(s).length; }
  // the shared API helper (ds-api.js): {ok, status, json} whatever the status
  function api(method, path, body) {
    return window.dsApi.request(method, "notifications/" + path, body).then(function (r) {
      return { ok: r.ok, status: r.status, json: r.body || {} };
    });
  }
  function cell(row, text) { var td = document.createElement("td"); td.textContent = text; row.appendChild(td); return td; }

  var message = $("message"), count = $("char-count"), error = $("ds-notify-error");
  function updateCount() {
    var n = codePoints(message.value.trim());
    count.textContent = n + "/" + max;
    count.classList.toggle("text-danger", n > max);
  }
  message.addEventListener("input", updateCount);

  function mode() { return document.querySelector("input[name=recipients]:checked").value; }
  function updateMode() {
    $("server-selection").hidden = mode() !== "users";
    $("group").hidden = mode() !== "group";
  }
  document.querySelectorAll("input[name=recipients]").forEach(function (el) { el.addEventListener("change", updateMode); });

  api("GET", "active-servers").then(function (r) {
    var box = $("server-selection");
    var servers = (r.json && r.json.servers) || [];
    var names = Array.from(new Set(servers.map(function (s) { return s.username; })));
    if (!names.length) { box.textContent = "No running servers."; return; }
    names.forEach(function (name, i) {
      var div = document.createElement("div"); div.className = "form-check";
      var input = document.createElement("input");
      input.type = "checkbox"; input.className = "form-check-input ds-recipient"; input.value = name; input.id = "ds-r-" + i;
      var label = document.createElement("label"); label.className = "form-check-label"; label.htmlFor = input.id;
      label.textContent = name;
      div.appendChild(input); div.appendChild(label); box.appendChild(div);
    });
  });

  function showError(text) { error.textContent = text; error.hidden = !text; }

  function showResult(res) {
    var summary = $("ds-notify-summary"), body = document.querySelector("#ds-notify-table tbody");
    body.textContent = "";
    if (!res.total) {
      summary.className = "alert alert-warning";
      summary.textContent = res.message || "No active servers found";
    } else {
      summary.className = "alert " + (res.failed === 0 ? "alert-success" : res.successful ? "alert-warning" : "alert-danger");
      summary.textContent = "Delivered: " + res.successful + "/" + res.total + " | Failed: " + res.failed + "/" + res.total;
    }
    (res.details || []).forEach(function (d) {
      var tr = document.createElement("tr");
      cell(tr, d.username);
      cell(tr, d.server_name || "(default)");
      var badge = document.createElement("span");
      badge.className = "badge " + (d.status === "success" ? "text-bg-success" : "text-bg-danger");
      badge.textContent = d.status;
      cell(tr, "").appendChild(badge);
      cell(tr, d.error || "");
      body.appendChild(tr);
    });
    $("ds-notify-result").hidden = false;
  }

  $("ds-notify-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    showError("");
    var text = message.value.trim();
    if (!text) { showError("Message cannot be empty"); return; }
    if (codePoints(text) > max) { showError("Message cannot exceed " + max + " characters"); return; }
    var seconds = Number($("auto-close").value || 0);
    var body = { message: text, variant: $("variant").value, autoClose: seconds > 0 ? Math.round(seconds * 1000) : false };
    if (mode() === "users") {
      var chosen = Array.from(document.querySelectorAll(".ds-recipient:checked")).map(function (el) { return el.value; });
      if (!chosen.length) { showError("Select at least one recipient"); return; }
      body.recipients = chosen;
    } else if (mode() === "group") {
      body.recipients = { group: $("group").value };
    }
    var button = $("send-btn");
    button.disabled = true;
    api("POST", "broadcast", body).then(function (r) {
      if (!r.ok) { showError((r.json && r.json.message) || ("HTTP " + r.status)); return; }
      showResult(r.json);
      message.value = ""; updateCount();
    }).catch(function (e) { showError(String(e)); }).finally(function () { button.disabled = false; });
  });
  updateCount();
})();
