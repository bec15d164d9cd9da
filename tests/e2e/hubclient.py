"""A browser-like client for the hub: NativeAuthenticator sign-up/login, cookies and XSRF, API calls."""

from __future__ import annotations

import time
from typing import Any

import requests

PASSWORD = "correct-horse-battery-9"
# the first admin's password in the tests' releases (release.Release pre-creates the chart's Secret with it)
FIRST_ADMIN = "admin"


class HubClient:
    """One user's session against a hub URL (e.g. http://127.0.0.1:PORT)."""

    def __init__(self, url: str, username: str):
        self.url = url.rstrip("/")
        self.username = username
        self.session = requests.Session()

    def _xsrf(self) -> str:
        token = self.session.cookies.get("_xsrf")
        if token is None:
            self.session.get(f"{self.url}/hub/login", timeout=10)
            token = self.session.cookies.get("_xsrf")
        return token

    def signup(self, password: str = PASSWORD) -> requests.Response:
        self.session.get(f"{self.url}/hub/signup", timeout=10)
        r = self.session.post(f"{self.url}/hub/signup", timeout=30, data={
            "username": self.username, "signup_password": password,
            "signup_password_confirmation": password, "_xsrf": self._xsrf()})
        r.raise_for_status()
        return r

    def login(self, password: str = PASSWORD) -> HubClient:
        self.session.get(f"{self.url}/hub/login", timeout=10)
        r = self.session.post(f"{self.url}/hub/login", timeout=30, allow_redirects=False, data={
            "username": self.username, "password": password, "_xsrf": self._xsrf()})
        if r.status_code != 302:
            raise AssertionError(f"login of {self.username} failed: {r.status_code} {r.text[:300]}")
        return self

    def api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = {"X-XSRFToken": self._xsrf(), **kwargs.pop("headers", {})}
        return self.session.request(method, f"{self.url}/hub/api{path}", headers=headers, timeout=60, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.session.get(f"{self.url}{path}", timeout=30, **kwargs)

    def start_server(self, timeout: float = 120) -> dict:
        r = self.api("POST", f"/users/{self.username}/server")
        assert r.status_code in (201, 202), (r.status_code, r.text)
        return self.wait_server(ready=True, timeout=timeout)

    def stop_server(self, timeout: float = 120) -> dict:
        r = self.api("DELETE", f"/users/{self.username}/server")
        assert r.status_code in (202, 204), (r.status_code, r.text)
        return self.wait_server(ready=False, timeout=timeout)

    def wait_server(self, ready: bool, timeout: float = 120) -> dict:
        deadline = time.monotonic() + timeout
        model: dict = {}
        while time.monotonic() < deadline:
            model = self.api("GET", f"/users/{self.username}").json()
            server = model.get("servers", {}).get("")
            if ready and server and server.get("ready"):
                return model
            if not ready and not server:
                return model
            time.sleep(0.5)
        raise TimeoutError(f"server of {self.username} not {'ready' if ready else 'stopped'}: {model}")

    def token(self) -> str:
        r = self.api("POST", f"/users/{self.username}/tokens", json={"note": "e2e"})
        r.raise_for_status()
        return r.json()["token"]


class ServiceClient:
    """The hub's e2e service token: admin-side calls without a browser session."""

    def __init__(self, url: str, token: str):
        self.url = url.rstrip("/")
        self.headers = {"Authorization": f"token {token}"}

    def api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return requests.request(method, f"{self.url}/hub/api{path}", headers=self.headers, timeout=60, **kwargs)


def admin_client(url: str, password: str = PASSWORD) -> HubClient:
    """Log in the hub's first admin with the password the hub was started with (sign-up as admin is refused)."""
    return HubClient(url, FIRST_ADMIN).login(password)


def set_password(admin: HubClient, username: str, password: str = PASSWORD) -> None:
    """What an admin does at /hub/change-password/<name> (NativeAuthenticator's form; a hub user without a
    credential gets one)."""
    admin.get(f"/hub/change-password/{username}")
    r = admin.session.post(f"{admin.url}/hub/change-password/{username}", timeout=30, data={
        "new_password": password, "new_password_confirmation": password, "_xsrf": admin._xsrf()})
    assert r.status_code == 200 and "changed successfully" in r.text, (r.status_code, r.text[-300:])


def new_user(url: str, admin: HubClient, username: str) -> HubClient:
    """Sign up ``username``, have the admin authorize them (NativeAuthenticator), and log in. A hub user from the
    config (``load_roles``, ``load_groups``, ``allowed_users``) cannot sign up: the admin sets their password."""
    user = HubClient(url, username)
    if admin.api("GET", f"/users/{username}").status_code == 200:
        set_password(admin, username)
        return user.login()
    user.signup()
    r = admin.api("POST", f"/ds/signups/{username}", json={"authorized": True})  # what the Authorize page does
    assert r.status_code == 200, (r.status_code, r.text)
    return user.login()
