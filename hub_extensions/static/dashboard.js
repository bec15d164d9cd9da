// jupyterhub-ds: the user's dashboard on the home page (ds-dashboard.html), kept live from
// GET api/users/{name}/dashboard: the pod's phase and events while the server starts, the last lines of
// its log when it crashed or a start failed, CPU/memory against the limits, volume sizes.
// On a phone-sized screen Start runs in place (POST api/users/{name}/server) and this page shows the
// progress, as upstream's mobile view did. Everything is set with textContent.
(function () {
  "use strict";

  var PENDING_MS = 2000;
  var RUNNING_MS = 30000;
  var PHONE = "(max-width: 768px)";

  var STATUS = {
    running: ["Running", "ds-state-running"],
    pending: ["Starting", "ds-state-pending"],
    stopping: ["Stopping", "ds-state-pending"],
    stopped: ["Stopped", "ds-state-stopped"],
  };

  function $(id) {
    return document.getElementById(id);
  }

  function text(id, value) {
    var node = $(id);
    if (node) node.textContent = value === null || value === undefined || value === "" ? "—" : String(value);
  }

  function eventItem(e) {
    var li = document.createElement("li");
    var badge = document.createElement("span");
    badge.className = "badge me-1 " + (e.type === "Warning" ? "text-bg-warning" : "text-bg-secondary");
    badge.textContent = e.reason || e.type || "Event";
    li.appendChild(badge);
    li.appendChild(document.createTextNode((e.message || "") + (e.count > 1 ? " (×" + e.count + ")" : "")));
    return li;
  }

  function Dashboard(root) {
    this.root = root;
    this.user = root.getAttribute("data-ds-user");
    this.state = root.getAttribute("data-ds-state");
    this.timer = null;
    this.starting = false;
  }

  Dashboard.prototype.path = function (volumes) {
    return window.dsApi.userPath(this.user, "dashboard") + (volumes ? "?volumes=1" : "");
  };

  Dashboard.prototype.load = function (volumes) {
    var self = this;
    return window.dsApi.call("GET", this.path(volumes)).then(
      function (res) {
        self.render(res.body, volumes);
        return res.body;
      },
      function (err) {
        text("ds-pod-phase", "unknown (" + err.message + ")");
        return null;
      },
    );
  };

  Dashboard.prototype.render = function (d, volumes) {
    var server = d.server || {};
    var state = server.state === "pending" && server.pending === "stop" ? "stopping" : server.state;
    var status = STATUS[state] || [state, ""];
    var badge = $("ds-server-status");
    badge.textContent = status[0];
    badge.className = "badge fs-6 " + status[1];
    this.root.setAttribute("data-ds-state", server.state);

    var pod = d.pod;
    $("ds-pod-phase-wrap").hidden = !pod;
    if (pod) text("ds-pod-phase", pod.phase);
    text("ds-image", d.image);
    text("ds-node", pod && pod.node);
    text("ds-gpus", pod ? pod.gpus : null);
    text("ds-limit-cpu", (pod && pod.cpu_limit) || "no limit");
    text("ds-limit-mem", (pod && pod.memory_limit) || "no limit");
    var usage = d.usage;
    // the activity monitor's figures: CPU in % of the pod's CPU limit (of one core without a limit), memory in MiB
    text("ds-usage-cpu", usage && usage.cpu_percent != null ? usage.cpu_percent.toFixed(0) + " %" : null);
    text("ds-usage-mem", usage && usage.memory_mb != null ? usage.memory_mb.toFixed(0) + " MiB" : null);

    var events = $("ds-pod-events");
    events.replaceChildren();
    (d.events || []).forEach(function (e) {
      events.appendChild(eventItem(e));
    });
    $("ds-events-wrap").hidden = !(server.state === "pending" || (d.events || []).length);

    var logWrap = $("ds-log-wrap");
    if (d.log_tail && d.log_tail.length) {
      $("ds-log-tail").textContent = d.log_tail.join("\n");
      logWrap.hidden = false;
    } else if (d.log_error) {
      $("ds-log-tail").textContent = d.log_error;
      logWrap.hidden = false;
    } else {
      logWrap.hidden = true;
    }

    var failure = d.last_failure;
    var failureBox = $("ds-last-failure");
    failureBox.hidden = !(failure && server.state === "stopped");
    if (failure) {
      $("ds-failure-message").textContent = failure.message || "";
      var list = $("ds-failure-events");
      list.replaceChildren();
      (failure.events || []).forEach(function (e) {
        list.appendChild(eventItem(e));
      });
      var pre = $("ds-failure-log");
      var lines = failure.log_tail || [];
      pre.textContent = lines.length ? lines.join("\n") : failure.log_error || "";
      pre.hidden = !pre.textContent;
    }

    if (volumes && Array.isArray(d.volumes)) this.renderVolumes(d.volumes);
  };

  Dashboard.prototype.renderVolumes = function (volumes) {
    var list = $("ds-volumes");
    if (!list) return;
    volumes.forEach(function (v) {
      if (!v.volume) return;
      var item = list.querySelector('[data-volume="' + CSS.escape(v.volume) + '"]');
      if (!item) return;
      var size = item.querySelector(".ds-volume-size");
      size.textContent = v.exists ? v.size : v.size + " (created at the next start)";
      size.title = v.exists ? "Claim " + v.claim + ": " + v.status : "Not created yet";
    });
  };

  // poll fast while starting; when the state settles, re-render the page (buttons, timer, volumes)
  Dashboard.prototype.schedule = function () {
    var self = this;
    window.clearTimeout(this.timer);
    var wait = this.state === "pending" ? PENDING_MS : this.state === "running" ? RUNNING_MS : 0;
    if (!wait) return;
    this.timer = window.setTimeout(function () {
      self.load(false).then(function (d) {
        var now = d && d.server ? d.server.state : self.state;
        if (now !== self.state) {
          window.location.reload(); // started, stopped or failed: the page's buttons change too
          return;
        }
        self.schedule();
      });
    }, wait);
  };

  // phones: start in place and watch the progress here instead of leaving for the spawn page
  Dashboard.prototype.interceptStart = function () {
    var self = this;
    var start = $("start");
    if (!start || this.state !== "stopped") return;
    start.addEventListener("click", function (event) {
      if (!window.matchMedia(PHONE).matches) return;
      event.preventDefault();
      if (self.starting) return;
      self.starting = true;
      start.classList.add("disabled");
      start.setAttribute("aria-disabled", "true");
      start.textContent = "Starting…";
      var badge = $("ds-server-status");
      badge.textContent = "Starting";
      badge.className = "badge fs-6 ds-state-pending";
      $("ds-events-wrap").hidden = false;
      window.dsApi.call("POST", window.dsApi.userPath(self.user, "server")).then(
        function () {
          self.state = "pending";
          self.schedule();
        },
        function (err) {
          self.starting = false;
          start.classList.remove("disabled");
          start.removeAttribute("aria-disabled");
          start.textContent = "Start My Server";
          $("ds-failure-message").textContent = "Could not start: " + err.message;
          $("ds-last-failure").hidden = false;
        },
      );
    });
  };

  function init() {
    var root = $("ds-dashboard");
    if (!root || !window.dsApi) return;
    var dash = new Dashboard(root);
    dash.interceptStart();
    dash.load(true).then(function () {
      dash.schedule();
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
