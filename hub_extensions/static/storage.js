// jupyterhub-ds: Manage Volumes and Restart Server on the hub home page, Manage user volumes on the admin page.
//
// Talks only to the hub's REST API (GET/DELETE api/users/{name}/manage-volumes,
// POST api/users/{name}/restart-server, GET api/users), with the page's XSRF token, and reads
// errors from the JSON body ({"status", "message"}). Plain browser JavaScript: no build step, no CDN;
// Bootstrap 5 comes from JupyterHub's page.html.
(function () {
  "use strict";

  var jhdata = window.jhdata || {};
  var BASE_URL = jhdata.base_url || "/hub/";
  var FLASH_KEY = "jupyterhub-ds:flash";

  // ------------------------------------------------------------------ API

  // the shared API helper (ds-api.js, loaded by page.html): XSRF token, JSON errors
  var dsApi = window.dsApi;
  var api = dsApi.call;
  var userPath = dsApi.userPath;

  // ------------------------------------------------------------------ small DOM helpers

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") node.textContent = attrs[k];
      else if (k === "className") node.className = attrs[k];
      else node.setAttribute(k, attrs[k]);
    });
    (children || []).forEach(function (c) {
      if (c) node.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
    });
    return node;
  }

  function role(root, name) {
    return root.querySelector('[data-ds-role="' + name + '"]');
  }

  function showAlert(container, kind, message, details) {
    container.replaceChildren();
    if (!message) return;
    var box = el("div", { className: "alert alert-" + kind + " mb-0", role: kind === "danger" ? "alert" : "status" }, [
      message,
    ]);
    if (details && details.length) {
      var ul = el("ul", { className: "mb-0 mt-2" });
      details.forEach(function (d) {
        ul.appendChild(el("li", { text: d }));
      });
      box.appendChild(ul);
    }
    container.appendChild(box);
  }

  function setBusy(button, busy, busyLabel) {
    if (busy) {
      if (!button.dataset.dsLabel) button.dataset.dsLabel = button.innerHTML;
      button.disabled = true;
      button.setAttribute("aria-busy", "true");
      button.replaceChildren(
        el("span", { className: "spinner-border spinner-border-sm me-2", "aria-hidden": "true" }),
        document.createTextNode(busyLabel),
      );
    } else {
      button.removeAttribute("aria-busy");
      if (button.dataset.dsLabel) button.innerHTML = button.dataset.dsLabel;
      delete button.dataset.dsLabel;
    }
  }

  // A message that survives the reload after a successful action.
  function flashNext(kind, message) {
    try {
      sessionStorage.setItem(FLASH_KEY, JSON.stringify({ kind: kind, message: message }));
    } catch (e) {
      /* storage disabled: the reload simply shows no message */
    }
  }

  function showFlash() {
    var target = document.getElementById("ds-flash");
    var raw = null;
    try {
      raw = sessionStorage.getItem(FLASH_KEY);
      sessionStorage.removeItem(FLASH_KEY);
    } catch (e) {
      return;
    }
    if (!target || !raw) return;
    var flash;
    try {
      flash = JSON.parse(raw);
    } catch (e) {
      return;
    }
    var close = el("button", { type: "button", className: "btn-close", "data-bs-dismiss": "alert", "aria-label": "Close" });
    target.appendChild(
      el("div", { className: "alert alert-" + flash.kind + " alert-dismissible", role: "status", id: "ds-flash-message" }, [
        flash.message,
        close,
      ]),
    );
  }

  // ------------------------------------------------------------------ the volume list and reset flow

  var STATUS_BADGES = {
    Bound: ["text-bg-success", "Bound"],
    Pending: ["text-bg-info", "Pending"],
    Lost: ["text-bg-danger", "Lost"],
    Terminating: ["text-bg-warning", "being deleted"],
    Missing: ["text-bg-light border", "not created yet"],
  };

  // One Manage Volumes panel inside `root` (an element with data-ds-volumes).
  function VolumePanel(root, options) {
    this.root = root;
    this.options = options || {};
    this.user = null;
    this.list = role(root, "list");
    this.count = role(root, "count");
    this.result = role(root, "result");
    this.loading = role(root, "loading");
    this.fieldset = role(root, "fieldset");
    this.serverNote = role(root, "server-note");
    this.resetButton = role(root, "reset");
    this.busy = false;
    var self = this;
    this.list.addEventListener("change", function () {
      self.update();
    });
    this.resetButton.addEventListener("click", function () {
      self.reset();
    });
  }

  VolumePanel.prototype.checkboxes = function () {
    return Array.prototype.slice.call(this.list.querySelectorAll('input[type="checkbox"]'));
  };

  VolumePanel.prototype.selected = function () {
    return this.checkboxes()
      .filter(function (c) {
        return c.checked && !c.disabled;
      })
      .map(function (c) {
        return c.value;
      });
  };

  VolumePanel.prototype.update = function () {
    var n = this.selected().length;
    this.count.textContent = n ? n + " volume(s) selected for deletion" : "";
    this.resetButton.disabled = this.busy || n === 0;
  };

  VolumePanel.prototype.clear = function () {
    this.list.replaceChildren();
    this.fieldset.hidden = true;
    this.serverNote.hidden = true;
    this.count.textContent = "";
    this.resetButton.disabled = true;
  };

  // Fetch and show `user`'s volumes; keeps `this.result` unless `keepResult` is false.
  VolumePanel.prototype.load = function (user, keepResult) {
    var self = this;
    this.user = user;
    this.clear();
    if (!keepResult) showAlert(this.result, null, "");
    this.loading.hidden = false;
    return api("GET", userPath(user, "manage-volumes"))
      .then(function (res) {
        if (self.user !== user) return; // the admin picked another user meanwhile
        self.render(res.body);
      })
      .catch(function (err) {
        if (self.user !== user) return;
        showAlert(self.result, "danger", "Could not load volumes: " + err.message);
      })
      .then(function () {
        if (self.user === user) self.loading.hidden = true;
      });
  };

  VolumePanel.prototype.render = function (data) {
    var self = this;
    var stopped = data.server === "stopped";
    this.list.replaceChildren();
    if (!stopped) {
      this.serverNote.textContent =
        data.server === "pending"
          ? "The server of " + data.user + " is starting or stopping. Volumes can be reset once it is stopped."
          : "The server of " + data.user + " is running. Stop it before resetting volumes.";
      this.serverNote.hidden = false;
    }
    (data.volumes || []).forEach(function (v) {
      self.list.appendChild(self.row(v, stopped));
    });
    if (!(data.volumes || []).length) {
      this.list.appendChild(el("div", { className: "list-group-item text-body-secondary", text: "No volumes are configured." }));
    }
    this.fieldset.hidden = false;
    this.update();
  };

  VolumePanel.prototype.row = function (v, stopped) {
    var id = "ds-volume-" + (this.root.hasAttribute("data-ds-admin") ? "admin-" : "") + v.volume;
    var resettable = v.resettable && v.exists && v.status !== "Terminating";
    var checkbox = el("input", {
      type: "checkbox",
      className: "form-check-input flex-shrink-0 mt-1",
      id: id,
      name: "volumes",
      value: v.volume,
      "aria-describedby": id + "-desc",
    });
    checkbox.disabled = !resettable || !stopped;
    var badge = STATUS_BADGES[v.status] || ["text-bg-secondary", v.status];
    var heading = el("span", { className: "d-flex flex-wrap align-items-baseline gap-2" }, [
      el("strong", { className: "ds-volume-name", text: v.volume }),
      el("code", { className: "ds-volume-path", text: v.mount_path }),
      el("span", { className: "badge text-bg-secondary ds-volume-size", title: "Size", text: v.size || "" }),
      el("span", { className: "badge ds-volume-status " + badge[0], text: badge[1] }),
    ]);
    if (!v.resettable) {
      heading.appendChild(el("span", { className: "badge text-bg-light border", text: "cannot be reset" }));
    }
    var details = [el("span", { className: "d-block ds-volume-description", text: v.description || "" })];
    if (v.claim) {
      details.push(el("span", { className: "d-block" }, ["Claim ", el("code", { text: v.claim })]));
    } else {
      details.push(el("span", { className: "d-block", text: "Created when the server next starts." }));
    }
    var label = el(
      "label",
      {
        className: "list-group-item d-flex gap-3 ds-volume" + (checkbox.disabled ? " ds-volume-disabled" : ""),
        for: id,
        "data-volume": v.volume,
        "data-exists": v.exists ? "true" : "false",
      },
      [
        checkbox,
        el("span", { className: "flex-grow-1" }, [
          heading,
          el("small", { className: "d-block text-body-secondary mt-1", id: id + "-desc" }, details),
        ]),
      ],
    );
    return label;
  };

  VolumePanel.prototype.reset = function () {
    var self = this;
    var volumes = this.selected();
    if (!volumes.length || this.busy || !this.user) return;
    var user = this.user;
    this.busy = true;
    this.checkboxes().forEach(function (c) {
      c.disabled = true;
    });
    setBusy(this.resetButton, true, "Resetting…");
    showAlert(this.result, null, "");
    api("DELETE", userPath(user, "manage-volumes"), { volumes: volumes })
      .then(function (res) {
        var body = res.body || {};
        var failed = (body.failed_volumes || []).map(function (f) {
          return f.volume + ": " + f.reason;
        });
        var message = body.message || "Volumes reset";
        if (res.status === 200 && self.options.onSuccess) {
          return self.options.onSuccess(body);
        }
        showAlert(self.result, failed.length ? "warning" : "success", message, failed);
        return self.load(user, true);
      })
      .catch(function (err) {
        var failed = ((err.body && err.body.failed_volumes) || []).map(function (f) {
          return f.volume + ": " + f.reason;
        });
        showAlert(self.result, "danger", "Error: " + err.message, failed);
        return self.load(user, true);
      })
      .then(function () {
        self.busy = false;
        setBusy(self.resetButton, false);
        self.update();
      });
  };

  // ------------------------------------------------------------------ home page

  function initHome() {
    var actions = document.getElementById("ds-server-actions");
    if (!actions) return;
    var user = actions.getAttribute("data-ds-user");

    // sit next to JupyterHub's Start/Stop buttons (stock ids); stay where rendered otherwise
    var start = document.getElementById("start");
    if (start && start.parentNode && actions.children.length) {
      actions.classList.add("d-inline-block", "ms-1");
      start.parentNode.appendChild(actions);
    }

    var volumesModal = document.getElementById("manage-volumes-modal");
    if (volumesModal) {
      var panel = new VolumePanel(volumesModal.querySelector("[data-ds-volumes]"), {
        onSuccess: function (body) {
          flashNext("success", body.message + ". They are created again, empty, when your server next starts.");
          window.location.reload();
        },
      });
      volumesModal.addEventListener("show.bs.modal", function () {
        panel.load(user, false);
      });
    }

    var restartModal = document.getElementById("restart-server-modal");
    if (restartModal) initRestart(restartModal, user);

    // JupyterHub's home.js stops the server in place; once it is really stopped, re-render the page
    // so Manage Volumes replaces Restart Server (polls the stock user model, not the DOM).
    var stop = document.getElementById("stop");
    if (stop) {
      stop.addEventListener("click", function () {
        var restartBtn = document.getElementById("restart-server-btn");
        if (restartBtn) restartBtn.disabled = true;
        waitForStopped(user, Date.now() + 5 * 60 * 1000);
      });
    }
  }

  function waitForStopped(user, deadline) {
    window.setTimeout(function () {
      api("GET", userPath(user))
        .then(function (res) {
          var servers = (res.body && res.body.servers) || {};
          if (!servers[""]) {
            window.location.reload();
          } else if (Date.now() < deadline) {
            waitForStopped(user, deadline);
          }
        })
        .catch(function () {
          if (Date.now() < deadline) waitForStopped(user, deadline);
        });
    }, 1000);
  }

  function initRestart(modal, user) {
    var confirm = document.getElementById("confirm-restart-btn");
    var result = role(modal, "result");
    var closers = modal.querySelectorAll('[data-bs-dismiss="modal"]');
    confirm.addEventListener("click", function () {
      setBusy(confirm, true, "Restarting...");
      closers.forEach(function (b) {
        b.disabled = true;
      });
      showAlert(result, "info", "Stopping your server and starting a new one. This can take a minute.");
      api("POST", userPath(user, "restart-server"))
        .then(function (res) {
          if (res.status === 202) {
            // still starting: JupyterHub's spawn-pending page shows the progress
            window.location.href = BASE_URL + "spawn-pending/" + encodeURIComponent(user);
            return;
          }
          flashNext("success", ((res.body && res.body.message) || "Server restarted") + ". It runs in a new pod.");
          window.location.reload();
        })
        .catch(function (err) {
          showAlert(result, "danger", "Error: " + err.message);
          setBusy(confirm, false);
          confirm.disabled = false;
          closers.forEach(function (b) {
            b.disabled = false;
          });
        });
    });
  }

  // ------------------------------------------------------------------ admin page

  function initAdmin() {
    var modal = document.getElementById("admin-manage-volumes-modal");
    if (!modal) return;
    var root = modal.querySelector("[data-ds-volumes]");
    var panel = new VolumePanel(root, {});
    var form = document.getElementById("admin-volume-user-form");
    var input = document.getElementById("admin-volume-user");
    var options = document.getElementById("admin-volume-user-options");
    var panelBox = role(root, "panel");
    var userLabel = role(root, "user-label");
    var suggestTimer = null;
    var lastQuery = null;

    function suggest() {
      var q = input.value.trim();
      if (q === lastQuery) return;
      lastQuery = q;
      // name_filter keeps this one small query however many users the hub has
      api("GET", "users?limit=20&name_filter=" + encodeURIComponent(q))
        .then(function (res) {
          if (q !== lastQuery) return;
          var users = Array.isArray(res.body) ? res.body : (res.body && res.body.items) || [];
          options.replaceChildren();
          users.forEach(function (u) {
            options.appendChild(el("option", { value: u.name }));
          });
        })
        .catch(function () {
          /* suggestions are optional */
        });
    }

    input.addEventListener("input", function () {
      window.clearTimeout(suggestTimer);
      suggestTimer = window.setTimeout(suggest, 250);
    });
    input.addEventListener("focus", suggest);

    form.addEventListener("submit", function (e) {
      e.preventDefault();
      var user = input.value.trim();
      if (!user) return;
      userLabel.textContent = user;
      panelBox.hidden = false;
      panel.load(user, false);
    });

    modal.addEventListener("shown.bs.modal", function () {
      input.focus();
    });
  }

  // ------------------------------------------------------------------ start

  function init() {
    var footer = document.getElementById("ds-version-footer");
    if (footer && window.console) {
      console.info("[jupyterhub-ds] Version: " + footer.getAttribute("data-ds-version"));
    }
    showFlash();
    initHome();
    initAdmin();
  }

  window.jupyterhubDs = { api: api, VolumePanel: VolumePanel };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
