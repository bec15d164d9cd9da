"""A minimal JupyterHub REST client (urllib): token auth, JSON in and out, the hub's message on errors."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any


class HubError(Exception):
    """The hub answered an error; ``message`` is the hub's own (its JSON ``message``)."""

    def __init__(self, status: int, message: str, path: str):
        super().__init__(message)
        self.status, self.message, self.path = status, message, path


class Hub:
    def __init__(self, url: str, token: str, timeout: float = 120):
        self.url = url.rstrip("/")  # .../hub/api
        self.token = token
        self.timeout = timeout

    def request(self, method: str, path: str, body: Any = None, params: dict[str, Any] | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, Any]:
        url = self.url + path
        if params:
            url += "?" + urllib.parse.urlencode({k: v for k, v in params.items() if v is not None}, doseq=True)
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(url, data=data, method=method, headers={
            "Authorization": f"token {self.token}", "Accept": "application/json",
            **({"Content-Type": "application/json"} if data is not None else {}), **(headers or {})})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as r:
                raw = r.read()
                return r.status, json.loads(raw) if raw.strip() else None
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                payload = json.loads(raw)
            except ValueError:
                payload = None
            if isinstance(payload, dict) and 200 <= e.code < 300:
                return e.code, payload
            if e.code == 207 and isinstance(payload, dict):  # partial volume reset: a result, not an error
                return e.code, payload
            message = (payload.get("message") or payload.get("error")) if isinstance(payload, dict) else None
            raise HubError(e.code, str(message or e.reason or f"HTTP {e.code}"), path) from None
        except (urllib.error.URLError, ConnectionError, TimeoutError) as e:
            reason = getattr(e, "reason", e)
            raise HubError(0, f"cannot reach the hub API: {reason}", path) from None

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params)[1]

    def paged(self, path: str, **params: Any) -> list[dict[str, Any]]:
        """All items of a paginated list (JupyterHub 5's pagination header); at most 200 per page."""
        items: list[dict[str, Any]] = []
        offset = 0
        while True:
            _, page = self.request("GET", path, params={**params, "offset": offset, "limit": 200},
                                   headers={"Accept": "application/jupyterhub-pagination+json"})
            if isinstance(page, list):  # a hub without pagination
                return page
            items += page["items"]
            nxt = (page.get("_pagination") or {}).get("next")
            if not nxt or not page["items"]:
                return items
            offset = nxt["offset"]
