// jupyterhub-ds: the Authorize Users page's buttons. Authorize, Unauthorize and Discard call the sign-ups API
// (POST / DELETE /hub/api/ds/signups/<name>) with the page's XSRF token through ds-api.js, then reload the page:
// NativeAuthenticator's GET links changed state, so any page an admin opened could authorize or discard.
(function () {
  "use strict";

  var table = document.getElementById("ds-authorize-table");
  if (!table || !window.dsApi) return;
  var errorEl = document.getElementById("ds-authorize-error");

  function act(button) {
    var row = button.closest("tr[data-username]");
    var path = "ds/signups/" + encodeURIComponent(row.getAttribute("data-username"));
    var action = button.getAttribute("data-ds-action");
    var call =
      action === "discard"
        ? window.dsApi.call("DELETE", path)
        : window.dsApi.call("POST", path, { authorized: action === "authorize" });
    button.disabled = true;
    call.then(
      function () {
        window.location.reload();
      },
      function (err) {
        button.disabled = false;
        errorEl.textContent = err.message; // text, never HTML
        errorEl.hidden = false;
      },
    );
  }

  table.addEventListener("click", function (e) {
    var button = e.target.closest("button[data-ds-action]");
    if (button) act(button);
  });
})();
