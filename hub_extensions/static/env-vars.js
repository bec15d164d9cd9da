// jupyterhub-ds: the editor of the user's own environment variables on the home page (ds-env-vars.html).
// Loads GET api/users/<name>/env-vars, saves the whole set with PUT; a refusal names the variables at fault.
(function () {
  "use strict";

  var card = document.getElementById("ds-env");
  if (!card || !window.dsApi) return;
  var user = card.getAttribute("data-ds-user");
  var rows = document.getElementById("ds-env-rows");
  var error = document.getElementById("ds-env-error");
  var saved = document.getElementById("ds-env-saved");

  function field(cls, label, value, type) {
    var input = document.createElement("input");
    input.type = type || "text";
    input.className = "form-control form-control-sm " + cls;
    input.setAttribute("aria-label", label);
    input.placeholder = label;
    input.value = value || "";
    // never the hub password: browsers ignore "off" on password fields, "new-password" keeps them from filling it
    input.autocomplete = type === "password" ? "new-password" : "off";
    var col = document.createElement("div");
    col.className = cls === "ds-env-description" ? "col-12 col-md-4" : "col-12 col-md-3";
    col.appendChild(input);
    return col;
  }

  function addRow(v) {
    v = v || {};
    var row = document.createElement("div");
    row.className = "row g-2 mb-2 align-items-center ds-env-row";
    row.appendChild(field("ds-env-name", "Name", v.name));
    row.appendChild(field("ds-env-value", "Value", v.value, "password"));
    row.appendChild(field("ds-env-description", "Description (optional)", v.description));
    var remove = document.createElement("button");
    remove.type = "button";
    remove.className = "btn btn-outline-danger btn-sm";
    remove.textContent = "Remove";
    remove.addEventListener("click", function () { row.remove(); });
    var col = document.createElement("div");
    col.className = "col-12 col-md-2";
    col.appendChild(remove);
    row.appendChild(col);
    rows.appendChild(row);
  }

  function collect() {
    return Array.prototype.map.call(rows.querySelectorAll(".ds-env-row"), function (row) {
      return {
        name: row.querySelector(".ds-env-name").value.trim(),
        value: row.querySelector(".ds-env-value").value,
        description: row.querySelector(".ds-env-description").value,
      };
    });
  }

  function show(el, text) {
    el.textContent = text;
    el.hidden = !text;
  }

  var save = document.getElementById("ds-env-save");
  var add = document.getElementById("ds-env-add");
  // nothing can be saved until the stored set is shown: a save replaces the whole set
  save.disabled = add.disabled = true;

  function load() {
    window.dsApi.call("GET", window.dsApi.userPath(user, "env-vars")).then(function (res) {
      rows.textContent = "";
      (res.body.env_vars || []).forEach(addRow);
      if (!res.body.env_vars.length) addRow();
      save.disabled = add.disabled = !res.body.editable;
    }, function (err) { show(error, err.message); });
  }

  add.addEventListener("click", function () { addRow(); });
  save.addEventListener("click", function () {
    show(error, "");
    saved.hidden = true;
    window.dsApi.call("PUT", window.dsApi.userPath(user, "env-vars"), { env_vars: collect() }).then(function () {
      saved.hidden = false;
    }, function (err) {
      var rejected = (err.body && err.body.rejected) || [];
      show(error, err.message + (rejected.length ? " (" + rejected.join(", ") + ")" : ""));
    });
  });
  load();
})();
