// jupyterhub-ds: the one helper our page scripts use to call the hub's REST API (loaded by page.html).
//
// Every call sends the page's XSRF token (JupyterHub requires it for cookie-authenticated writes) and reads
// errors from the JSON body ({"status", "message"}), falling back to the status line when a proxy answers
// with HTML. Plain browser JavaScript, no build step.
(function () {
  "use strict";

  var jhdata = window.jhdata || {};
  var BASE_URL = jhdata.base_url || "/hub/";

  function xsrfToken() {
    if (jhdata.xsrf_token) return jhdata.xsrf_token;
    var m = document.cookie.match(/(?:^|;\s*)_xsrf=([^;]*)/);
    return m ? decodeURIComponent(m[1]) : "";
  }

  function ApiError(status, message, body) {
    this.name = "ApiError";
    this.status = status;
    this.message = message;
    this.body = body;
  }
  ApiError.prototype = Object.create(Error.prototype);
  ApiError.prototype.constructor = ApiError;

  function userPath(name, action) {
    return "users/" + encodeURIComponent(name) + (action ? "/" + action : "");
  }

  // Resolves to {ok, status, body} whatever the status; rejects (ApiError, status 0) only when the hub
  // cannot be reached. `path` is relative to <base_url>api/.
  function request(method, path, payload) {
    var init = {
      method: method,
      credentials: "same-origin",
      headers: { Accept: "application/json", "X-XSRFToken": xsrfToken() },
    };
    if (payload !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(payload);
    }
    return fetch(BASE_URL + "api/" + path, init).then(
      function (resp) {
        return resp.text().then(function (text) {
          var body = null;
          try {
            body = text ? JSON.parse(text) : null;
          } catch (e) {
            body = null; // an HTML error page from a proxy
          }
          return { ok: resp.ok, status: resp.status, statusText: resp.statusText, body: body };
        });
      },
      function (err) {
        throw new ApiError(0, "Could not reach the hub: " + err.message, null);
      },
    );
  }

  // Resolves to {status, body} for 2xx; rejects with ApiError carrying the JSON "message" otherwise.
  function call(method, path, payload) {
    return request(method, path, payload).then(function (res) {
      if (!res.ok) {
        var message = (res.body && res.body.message) || res.status + " " + (res.statusText || "Error");
        throw new ApiError(res.status, message, res.body);
      }
      return { status: res.status, body: res.body };
    });
  }

  window.dsApi = {
    BASE_URL: BASE_URL,
    xsrfToken: xsrfToken,
    ApiError: ApiError,
    userPath: userPath,
    request: request,
    call: call,
  };
})();
