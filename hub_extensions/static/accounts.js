// jupyterhub-ds: after an admin adds users in JupyterHub's admin page, show each new user's generated
// password once (name, password, copy buttons, download as text).
//
// JupyterHub's React admin page creates users with fetch(POST api/users). We wrap window.fetch, let the
// request through unchanged, and when it succeeds read the created names from its response, then ask
// POST api/admin/credentials for their passwords (the hub hands them out once, to the creating admin only).
// Everything shown is set with textContent: names and passwords are never parsed as HTML.
(function () {
  "use strict";

  var modalEl = document.getElementById("ds-credentials-modal");
  if (!modalEl || typeof window.fetch !== "function") return;

  var jhdata = window.jhdata || {};
  var BASE_URL = jhdata.base_url || "/hub/";
  var originalFetch = window.fetch.bind(window);
  var createPath = new RegExp("^" + BASE_URL.replace(/[.*+?^${}()|[\]\\]/g, "\\$&") + "api/users(/[^/]+)?/?$");
  var pending = [];
  var timer = null;
  var shown = [];

  var xsrfToken = window.dsApi.xsrfToken; // the shared helper (ds-api.js, loaded by page.html)

  function describe(input, init) {
    var isRequest = typeof Request !== "undefined" && input instanceof Request;
    var url = isRequest ? input.url : String(input);
    var method = (init && init.method) || (isRequest ? input.method : "GET");
    var path;
    try {
      path = new URL(url, window.location.href).pathname;
    } catch (e) {
      path = "";
    }
    return { method: String(method).toUpperCase(), path: path };
  }

  window.fetch = function (input, init) {
    var info = describe(input, init);
    var result = originalFetch(input, init);
    if (info.method === "POST" && createPath.test(info.path)) {
      result.then(function (resp) {
        if (!resp.ok) return;
        resp
          .clone()
          .json()
          .then(collect)
          .catch(function () {});
      }, function () {});
    }
    return result;
  };

  function collect(body) {
    var models = Array.isArray(body) ? body : [body];
    models.forEach(function (m) {
      if (m && typeof m.name === "string") pending.push(m.name);
    });
    if (timer) clearTimeout(timer);
    timer = setTimeout(fetchCredentials, 300);
  }

  function fetchCredentials() {
    timer = null;
    var names = pending.splice(0, pending.length);
    if (!names.length) return;
    originalFetch(BASE_URL + "api/admin/credentials", {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json", "X-XSRFToken": xsrfToken() },
      body: JSON.stringify({ usernames: names }),
    })
      .then(function (resp) {
        return resp.json().then(function (body) {
          if (!resp.ok) throw new Error((body && body.message) || resp.status + " " + resp.statusText);
          return body.credentials || [];
        });
      })
      .then(function (credentials) {
        show(credentials, names, null);
      })
      .catch(function (err) {
        show([], names, "Could not read the generated passwords: " + err.message);
      });
  }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) return navigator.clipboard.writeText(text);
    var area = el("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "fixed";
    area.style.opacity = "0";
    modalEl.appendChild(area);
    area.select();
    try {
      document.execCommand("copy");
    } finally {
      modalEl.removeChild(area);
    }
    return Promise.resolve();
  }

  function flash(button, label) {
    var old = button.textContent;
    button.textContent = label;
    setTimeout(function () {
      button.textContent = old;
    }, 1500);
  }

  function asText(list) {
    return list
      .map(function (c) {
        return "Username: " + c.username + "\nPassword: " + c.password;
      })
      .join("\n\n");
  }

  function show(credentials, names, error) {
    shown = credentials;
    var body = modalEl.querySelector("[data-ds-role=rows]");
    body.textContent = "";
    credentials.forEach(function (c) {
      var row = el("tr", "ds-credential");
      row.setAttribute("data-username", c.username);
      row.appendChild(el("td", "ds-credential-name", c.username));
      var pw = el("td", "ds-credential-password font-monospace", c.password);
      row.appendChild(pw);
      var actions = el("td", "text-end");
      var copy = el("button", "btn btn-sm btn-outline-secondary ds-copy-one", "Copy");
      copy.type = "button";
      copy.addEventListener("click", function () {
        copyText("Username: " + c.username + "\nPassword: " + c.password).then(function () {
          flash(copy, "Copied");
        });
      });
      actions.appendChild(copy);
      row.appendChild(actions);
      body.appendChild(row);
    });
    var got = credentials.map(function (c) {
      return c.username;
    });
    var without = names.filter(function (n) {
      return got.indexOf(n) < 0;
    });
    var note = modalEl.querySelector("[data-ds-role=note]");
    note.textContent = without.length
      ? "No generated password for: " + without.join(", ") +
        " (already shown once, or created over 5 minutes ago)."
      : "";
    note.hidden = !without.length;
    var errorEl = modalEl.querySelector("[data-ds-role=error]");
    errorEl.textContent = error || "";
    errorEl.hidden = !error;
    modalEl.querySelector("[data-ds-role=table]").hidden = !credentials.length;
    modalEl.querySelector("[data-ds-role=copy-all]").disabled = !credentials.length;
    modalEl.querySelector("[data-ds-role=download]").disabled = !credentials.length;
    window.bootstrap.Modal.getOrCreateInstance(modalEl).show();
  }

  modalEl.querySelector("[data-ds-role=copy-all]").addEventListener("click", function (e) {
    var button = e.currentTarget;
    copyText(asText(shown)).then(function () {
      flash(button, "Copied");
    });
  });

  modalEl.querySelector("[data-ds-role=download]").addEventListener("click", function () {
    var now = new Date();
    var text = "JupyterHub user credentials\n\n" + asText(shown) + "\n\nGenerated: " + now.toISOString() + "\n";
    var link = el("a");
    link.href = URL.createObjectURL(new Blob([text], { type: "text/plain" }));
    link.download = "jupyterhub-credentials-" + now.toISOString().slice(0, 10) + ".txt";
    document.body.appendChild(link);
    link.click();
    document.body.removeChild(link);
    setTimeout(function () {
      URL.revokeObjectURL(link.href);
    }, 1000);
  });

  // shown once: nothing stays in the page after the dialog closes
  modalEl.addEventListener("hidden.bs.modal", function () {
    shown = [];
    modalEl.querySelector("[data-ds-role=rows]").textContent = "";
  });
})();
