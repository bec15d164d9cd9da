// jupyterhub-ds: the activity monitor page. Polls GET /hub/api/activity (the server answers from its shared
// caches, so every tab costs a few database reads, not API calls), renders a sortable table, resets samples
// after confirmation, and shows the Cluster panel when GET /hub/api/ds/cluster exists (hidden on 404).
(function () {
  "use strict";
  var cfg = window.dsActivity;
  var base = window.jhdata.base_url;
  var $ = function (id) { return document.getElementById(id); };
  var STATUS_RANK = { active: 2, inactive: 1, offline: 0 };
  var sortKey = "status", sortDir = "desc"; // cycles desc -> asc -> none; ties by username, nulls last
  var users = [];
  var timer = null;

  function xsrfToken() {
    if (window.jhdata.xsrf_token) return window.jhdata.xsrf_token;
    var m = document.cookie.match(/(?:^|;\s*)_xsrf=([^;]*)/);
    return m ? decodeURIComponent(m[1]) : "";
  }
  function api(method, path) {
    return fetch(base + path, {
      method: method, credentials: "same-origin",
      headers: { Accept: "application/json", "X-XSRFToken": xsrfToken() },
    }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (j) { return { ok: r.ok, status: r.status, json: j }; });
    });
  }
  function el(tag, text, cls) {
    var e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = text;
    if (cls) e.className = cls;
    return e;
  }
  function fmtMemory(mb) {
    if (mb === null || mb === undefined) return "--";
    return mb >= 1024 ? (mb / 1024).toFixed(1) + " GB" : mb.toFixed(0) + " MB";
  }
  function fmtDuration(s) {
    if (s === null || s === undefined) return "--";
    if (s <= 0) return "due";
    var h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
    return h ? h + "h " + m + "m" : m ? m + "m" : s + "s";
  }
  function fmtAgo(iso) {
    if (!iso) return "never";
    var s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
    if (s < 60) return "just now";
    if (s < 3600) return Math.floor(s / 60) + " minute(s) ago";
    if (s < 86400) return Math.floor(s / 3600) + " hour(s) ago";
    return Math.floor(s / 86400) + " day(s) ago";
  }
  function sortValue(u, key) {
    if (key === "status") return STATUS_RANK[u.status];
    if (key === "last_activity") return u.last_activity ? Date.parse(u.last_activity) : null;
    if (key === "is_authorized") return u.is_authorized === null || u.is_authorized === undefined ? null : (u.is_authorized ? 1 : 0);
    var v = u[key];
    return v === undefined ? null : v;
  }
  function sorted(list) {
    var out = list.slice();
    if (!sortDir) return out; // server order
    var sign = sortDir === "asc" ? 1 : -1;
    out.sort(function (a, b) {
      var va = sortValue(a, sortKey), vb = sortValue(b, sortKey);
      if (va === null && vb !== null) return 1;
      if (vb === null && va !== null) return -1;
      if (va !== null && vb !== null && va !== vb) {
        return (typeof va === "string" ? va.localeCompare(vb) : va - vb) * sign;
      }
      return a.username.localeCompare(b.username);
    });
    return out;
  }
  function scoreBar(u) {
    var wrap = el("span");
    var bar = el("span", null, "ds-bar");
    var needed = Math.ceil(86400 / cfg.sampleIntervalSeconds);
    var raw = u.activity_score;
    var display = raw === null || raw === undefined ? 0 : Math.min(100, Math.round(raw / (cfg.targetHours / 24)));
    var lit = display ? Math.ceil(display / 20) : 0;
    var color = lit >= 4 ? "#28a745" : lit >= 2 ? "#ffc107" : "#dc3545";
    for (var i = 0; i < 5; i++) {
      var seg = el("span", null, "ds-seg");
      if (i < lit) seg.style.background = color;
      bar.appendChild(seg);
    }
    wrap.appendChild(bar);
    wrap.title = raw === null || raw === undefined ? "No samples yet"
      : u.sample_count < needed
        ? "Not enough data (" + Math.round(u.sample_count * cfg.sampleIntervalSeconds / 3600) + "h of 24h collected); activity: " + display + "%"
        : "Activity: " + display + "%";
    wrap.setAttribute("data-score", raw === null || raw === undefined ? "" : String(display));
    return wrap;
  }
  function volumesCell(u) {
    var td = el("td", null, "ds-hide-sm");
    if (u.volume_capacity_mb === null || u.volume_capacity_mb === undefined) { td.textContent = "--"; return td; }
    td.textContent = (u.volume_size_mb !== null && u.volume_size_mb !== undefined ? fmtMemory(u.volume_size_mb) + " / " : "")
      + fmtMemory(u.volume_capacity_mb);
    td.title = (u.volumes || []).map(function (v) {
      return v.volume + ": " + (v.used_mb !== null ? fmtMemory(v.used_mb) + " used of " : "") + fmtMemory(v.capacity_mb);
    }).join("\n");
    return td;
  }
  function render() {
    var tbody = document.querySelector("#ds-activity-table tbody");
    tbody.textContent = "";
    sorted(users).forEach(function (u) {
      var tr = el("tr");
      tr.setAttribute("data-username", u.username);
      tr.setAttribute("data-status", u.status);
      tr.appendChild(el("td", u.username, "ds-user"));
      var auth = el("td", u.is_authorized === null || u.is_authorized === undefined ? "--" : (u.is_authorized ? "\u2713" : "\u2717"), "ds-hide-sm");
      auth.style.color = u.is_authorized ? "#28a745" : "#dc3545";
      tr.appendChild(auth);
      var st = el("td");
      st.appendChild(el("span", null, "ds-dot ds-" + u.status));
      st.appendChild(el("span", u.status, "ds-status"));
      tr.appendChild(st);
      tr.appendChild(el("td", u.cpu_percent === null || u.cpu_percent === undefined ? "--" : u.cpu_percent.toFixed(1) + "%", "ds-cpu"));
      tr.appendChild(el("td", fmtMemory(u.memory_mb) + (u.memory_percent !== null && u.memory_percent !== undefined ? " (" + u.memory_percent.toFixed(0) + "%)" : ""), "ds-memory"));
      tr.appendChild(volumesCell(u));
      tr.appendChild(el("td", fmtDuration(u.time_remaining_seconds), "ds-remaining"));
      var last = el("td", fmtAgo(u.last_activity), "ds-hide-sm");
      if (u.last_activity) last.title = u.last_activity;
      tr.appendChild(last);
      var score = el("td");
      score.appendChild(scoreBar(u));
      tr.appendChild(score);
      tbody.appendChild(tr);
    });
    document.querySelectorAll("#ds-activity-table th[data-sort]").forEach(function (th) {
      var key = th.getAttribute("data-sort");
      if (key === sortKey && sortDir) th.setAttribute("aria-sort", sortDir === "asc" ? "ascending" : "descending");
      else th.removeAttribute("aria-sort");
    });
  }
  function showNote(id, text) {
    var box = $(id);
    box.hidden = !text;
    box.textContent = text || "";
  }
  function load() {
    return api("GET", "api/activity").then(function (r) {
      if (!r.ok) {
        showNote("ds-activity-error", "Could not load activity: " + (r.json.message || r.status));
        return;
      }
      showNote("ds-activity-error", "");
      users = r.json.users;
      var n = { active: 0, inactive: 0, offline: 0 };
      users.forEach(function (u) { n[u.status] += 1; });
      $("ds-activity-summary").textContent = users.length + " users (" + n.active + " active, " + n.inactive +
        " inactive, " + n.offline + " offline)";
      $("ds-activity-sampling").textContent = r.json.sampling_status;
      var notes = [r.json.metrics_note, r.json.volumes_note].filter(Boolean);
      showNote("ds-activity-note", notes.join(" "));
      document.body.setAttribute("data-ds-activity-loaded", r.json.timestamp);
      render();
    }).catch(function (e) {
      showNote("ds-activity-error", "Could not load activity: " + e);
    });
  }
  function loadCluster() {
    return api("GET", "api/ds/cluster").then(function (r) {
      var panel = $("ds-cluster");
      if (!r.ok) { panel.hidden = true; return; } // 404: the cluster API is not there; others: hide too
      var tbody = document.querySelector("#ds-cluster-table tbody");
      tbody.textContent = "";
      (r.json.nodes || []).forEach(function (node) {
        var a = node.allocatable || {}, q = node.requested || {}, u = node.usage || {};
        var tr = el("tr");
        tr.appendChild(el("td", node.name));
        tr.appendChild(el("td", (q.cpu_millicores / 1000).toFixed(1) + " / " + (a.cpu_millicores / 1000).toFixed(1) + " cores"));
        tr.appendChild(el("td", fmtMemory(q.memory_mb) + " / " + fmtMemory(a.memory_mb)));
        tr.appendChild(el("td", a.gpus ? (q.gpus || 0) + " / " + a.gpus : "--"));
        tr.appendChild(el("td", (u.cpu_millicores === null || u.cpu_millicores === undefined ? "--" : (u.cpu_millicores / 1000).toFixed(2) + " cores")
          + ", " + fmtMemory(u.memory_mb)));
        tbody.appendChild(tr);
      });
      $("ds-cluster-note").textContent = r.json.metrics_available ? "" : "Node usage unavailable (metrics API).";
      panel.hidden = false;
    }).catch(function () { $("ds-cluster").hidden = true; });
  }
  function schedule() {
    if (timer) window.clearInterval(timer);
    timer = window.setInterval(function () { if (!document.hidden) { load(); loadCluster(); } }, cfg.refreshSeconds * 1000);
  }

  document.querySelectorAll("#ds-activity-table th[data-sort]").forEach(function (th) {
    th.addEventListener("click", function () {
      var key = th.getAttribute("data-sort");
      if (key !== sortKey) { sortKey = key; sortDir = "desc"; }
      else sortDir = sortDir === "desc" ? "asc" : sortDir === "asc" ? null : "desc";
      render();
    });
  });
  $("ds-activity-refresh").addEventListener("click", function () { load(); loadCluster(); });
  var confirmBtn = $("ds-activity-reset-confirm");
  if (confirmBtn) {
    confirmBtn.addEventListener("click", function () {
      confirmBtn.disabled = true;
      api("POST", "api/activity/reset").then(function (r) {
        confirmBtn.disabled = false;
        var modal = $("ds-activity-reset-modal");
        if (window.bootstrap) window.bootstrap.Modal.getOrCreateInstance(modal).hide();
        if (!r.ok) showNote("ds-activity-error", "Reset failed: " + (r.json.message || r.status));
        else showNote("ds-activity-flash", "Deleted " + r.json.deleted + " sample(s).");
        load();
      });
    });
  }
  load();
  loadCluster();
  schedule();
})();
