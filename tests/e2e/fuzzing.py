"""Random requests against every jupyterhub-ds endpoint of an installed hub, and what must hold of the answers.

Shared by tests/e2e/adversarial/test_fuzz.py (a few hundred requests per endpoint) and ci/bench/fuzz.py (thousands).
A run is reproducible: every request comes from one ``random.Random(seed)`` before any is sent, and a finding
carries the request that caused it (method, path, headers, body), so it can be replayed with curl.

What is checked per answer: no status ≥ 500; an error answer (≥ 400) of an API route is JSON
``{"status", "message"}`` (HEAD answers carry no body and are not read); a caller without rights never gets a
2xx for a write (POST/PUT/PATCH/DELETE) on an API route. Whether state changed is for the caller to compare
(``snapshot`` before and after, in the test).
"""

from __future__ import annotations

import json
import random
import statistics
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import requests

from .hubclient import HubClient, new_user

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD")
WRITES = {"POST", "PUT", "PATCH", "DELETE"}


@dataclass(frozen=True)
class Endpoint:
    """One route under ``/hub`` (``{user}`` stands for a user name); ``methods`` are the ones it serves."""

    path: str
    methods: tuple[str, ...]
    # "ds" (a jupyterhub-ds handler) or "accounts" (our NativeAuthenticator handlers: fuzzed by callers with
    # rights with GET only, so that a fuzz run never creates or deletes hub users or sign-ups)
    owner: str = "ds"
    # the handler itself keeps a filtered grant to the users it covers (a delegate's broadcast reaches her group):
    # a 2xx for a write there is no sign of missing rights
    filters_itself: bool = False
    # a browser page under /api (JupyterHub's OAuth authorize form): its errors are HTML pages
    page: bool = False

    @property
    def api(self) -> bool:
        return self.path.startswith("/api/") and not self.page

    @property
    def per_user(self) -> bool:
        return "{user}" in self.path


ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint("/api/users/{user}/manage-volumes", ("GET", "DELETE")),
    Endpoint("/api/users/{user}/restart-server", ("POST",)),
    Endpoint("/api/users/{user}/adoptable-volumes", ("GET",)),
    Endpoint("/api/users/{user}/adopt-volumes", ("POST",)),
    Endpoint("/api/users/{user}/session-info", ("GET",)),
    Endpoint("/api/users/{user}/extend-session", ("POST",)),
    Endpoint("/api/users/{user}/dashboard", ("GET",)),
    Endpoint("/api/users/{user}/effective-grants", ("GET",)),
    Endpoint("/api/users/{user}/env-vars", ("GET", "PUT")),
    Endpoint("/api/ds/events", ("GET", "DELETE")),
    Endpoint("/api/activity", ("GET",)),
    Endpoint("/api/activity/reset", ("POST",)),
    Endpoint("/api/activity/sample", ("POST",)),
    Endpoint("/activity", ("GET",)),
    Endpoint("/settings", ("GET",)),
    Endpoint("/api/ds/cluster", ("GET",)),
    Endpoint("/api/ds/health", ("GET",)),
    Endpoint("/api/notifications/active-servers", ("GET",)),
    Endpoint("/api/notifications/broadcast", ("POST",), filters_itself=True),
    Endpoint("/notifications", ("GET",)),
    Endpoint("/ds-static/{user}", ("GET",)),
    Endpoint("/ds-branding/{user}", ("GET",)),
    Endpoint("/api/users", ("GET", "POST"), "accounts"),
    Endpoint("/api/users/{user}", ("GET", "POST", "PATCH", "DELETE"), "accounts"),
    Endpoint("/api/users/{user}/tokens", ("GET", "POST"), "accounts"),
    Endpoint("/api/admin/credentials", ("POST",), "accounts"),
    Endpoint("/api/ds/signups", ("GET",), "accounts"),
    Endpoint("/api/ds/signups/{user}", ("POST", "DELETE"), "accounts"),
    Endpoint("/api/oauth2/authorize", ("GET", "POST"), "accounts", page=True),
    Endpoint("/signup", ("GET", "POST"), "accounts"),
    Endpoint("/discard/{user}", ("GET", "POST"), "accounts"),
    Endpoint("/authorize/{user}", ("GET", "POST"), "accounts"),
    Endpoint("/authorize", ("GET",), "accounts"),
    Endpoint("/change-password", ("GET", "POST"), "accounts"),
    Endpoint("/change-password/{user}", ("GET", "POST"), "accounts"),
)

# names that are no user, or not one a request should reach: unicode, traversal, very long, control characters
ODD_NAMES = ("", ".", "..", "../admin", "..%2fadmin", "%2e%2e", "a/b", "ünïcødé", "用户", "😀", "admin\x00",
             "line\nbreak", "tab\tname", "\x1b[31m", "' OR 1=1 --", "<script>", "a" * 300, "b" * 4000, "ADMIN",
             " admin", "admin ", "%00", "null", "undefined", "-1", "0", "\u202eevil", "\ufeffbom", "x" * 64 + "é")
# body keys the handlers read, and some they do not (a random body is a dict of a few of them). No key here makes a
# valid sign-up or password change: those need field names that are left out on purpose.
BODY_KEYS = ("volumes", "hours", "owner", "current", "message", "variant", "autoClose", "recipients", "group",
             "authorized", "usernames", "admin", "name", "groups", "note", "scopes", "expires_in", "users",
             "username", "email", "state", "limit", "offset", "server_name", "env_vars", "__proto__", "", "ö",
             "x" * 200)
QUERY_KEYS = ("limit", "offset", "user", "kind", "since", "state", "volumes", "next", "client_id", "_xsrf")


def _value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(10 if depth < 2 else 7)
    if kind == 0:
        return None
    if kind == 1:
        return rng.choice((True, False))
    if kind == 2:
        return rng.choice((0, -1, 1, 2**31, 2**63, -(2**63), 10**30, 3))
    if kind == 3:
        return rng.choice((0.5, -0.0, 1e308, float("1e-308")))
    if kind in (4, 5, 6):
        return rng.choice((*ODD_NAMES, "home", "cache", "workspace", "info", "course-x", "2024-01-01T00:00:00Z"))
    if kind in (7, 8):
        return [_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {rng.choice(BODY_KEYS): _value(rng, depth + 1) for _ in range(rng.randrange(4))}


def random_body(rng: random.Random) -> tuple[bytes | None, str | None]:
    """A body and its Content-Type: none, JSON (well-formed or not), form fields, or bytes."""
    kind = rng.randrange(9)
    if kind == 0:
        return None, None
    if kind in (1, 2, 3):
        doc = {rng.choice(BODY_KEYS): _value(rng) for _ in range(rng.randrange(1, 5))}
        return json.dumps(doc).encode(), rng.choice(("application/json", "text/plain", None))
    if kind == 4:
        return json.dumps(_value(rng)).encode(), "application/json"
    if kind == 5:
        return rng.choice((b"{", b"[1,", b"{\"volumes\": [}", b"nul", b"\"\\ud800\"", b"{\"a\":1}" * 1000)), \
            "application/json"
    if kind == 6:
        pairs = [(rng.choice(BODY_KEYS), str(_value(rng))) for _ in range(rng.randrange(1, 4))]
        return "&".join(f"{quote(k)}={quote(v)}" for k, v in pairs).encode(), "application/x-www-form-urlencoded"
    if kind == 7:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200))), \
            rng.choice(("application/json", "application/octet-stream", "multipart/form-data; boundary=x"))
    return b"\xff\xfe\xfa" + "ü".encode("latin-1"), "application/json; charset=utf-8"


def path_name(rng: random.Random, name: str) -> str:
    """A name as it goes into a path: percent-encoded entirely, or leaving ``.``/``/`` as they are."""
    return quote(name, safe="") if rng.random() < 0.7 else quote(name, safe="./")


def random_query(rng: random.Random) -> str:
    if rng.random() < 0.6:
        return ""
    pairs = [(rng.choice(QUERY_KEYS), str(_value(rng))) for _ in range(rng.randrange(1, 4))]
    return "?" + "&".join(f"{quote(k)}={quote(v, safe='')}" for k, v in pairs)


@dataclass(frozen=True)
class Caller:
    """Who sends: a token (``Authorization``), a browser session (cookies, with or without the XSRF header), or
    nobody. ``rights`` says whether a 2xx for a write would be legitimate."""

    label: str
    token: str | None = None
    cookies: dict[str, str] = field(default_factory=dict)
    xsrf: str | None = None
    rights: bool = False

    def headers(self, rng: random.Random) -> dict[str, str]:
        headers = {}
        if self.token is not None:
            headers["Authorization"] = rng.choice((f"token {self.token}", f"Bearer {self.token}"))
        if self.cookies:
            roll = rng.random()
            if roll < 0.6 and self.xsrf:
                headers["X-XSRFToken"] = self.xsrf
            elif roll < 0.8:
                headers["X-XSRFToken"] = "2|00000000|" + "0" * 32 + "|1"
        return headers


@dataclass(frozen=True)
class Request:
    caller: Caller
    method: str
    path: str  # under the hub URL, e.g. /hub/api/ds/events?limit=x
    headers: dict[str, str]
    body: bytes | None
    endpoint: Endpoint

    def curl(self, url: str) -> str:
        """A shell line that replays the request (the caller's credentials elided)."""
        body = "" if self.body is None else f" --data-binary {json.dumps(self.body.decode('utf-8', 'replace'))}"
        headers = "".join(f" -H {json.dumps(f'{k}: {v}')}" for k, v in self.headers.items()
                          if k not in ("Authorization", "X-XSRFToken"))
        return f"curl -X {self.method} {json.dumps(url + self.path)}{headers}{body}  # as {self.caller.label}"


def plan(rng: random.Random, endpoints: Sequence[Endpoint], callers: Sequence[Caller], names: Sequence[str],
         per_endpoint: int) -> list[Request]:
    """``per_endpoint`` random requests for each endpoint, in a random order, to ``names`` (the targets the caller
    chose) or odd names. Callers with rights send only GET to the accounts routes."""
    out = []
    for endpoint in endpoints:
        for _ in range(per_endpoint):
            caller = rng.choice(callers)
            if caller.rights and endpoint.owner == "accounts":
                method = "GET"
            else:
                method = rng.choice(endpoint.methods) if rng.random() < 0.6 else rng.choice(METHODS)
            name = rng.choice(names) if rng.random() < 0.5 else rng.choice(ODD_NAMES)
            path = "/hub" + endpoint.path.format(user=path_name(rng, name)) + random_query(rng)
            body, content_type = random_body(rng) if method not in ("GET", "HEAD") or rng.random() < 0.1 \
                else (None, None)
            headers = caller.headers(rng)
            if content_type:
                headers["Content-Type"] = content_type
            out.append(Request(caller, method, path, headers, body, endpoint))
    rng.shuffle(out)
    return out


@dataclass
class Finding:
    request: Request
    status: int
    problem: str
    answer: str


@dataclass
class Outcome:
    sent: int = 0
    statuses: Counter = field(default_factory=Counter)
    findings: list[Finding] = field(default_factory=list)
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)  # seconds per answer

    def summary(self) -> str:
        codes = ", ".join(f"{k}: {v}" for k, v in sorted(self.statuses.items()))
        ms = sorted(x * 1000 for x in self.latencies) or [0.0]
        p95 = ms[min(len(ms) - 1, int(len(ms) * 0.95))]
        return (f"{self.sent} requests in {self.seconds:.1f} s ({self.sent / max(self.seconds, 1e-9):.0f}/s); "
                f"latency p50 {statistics.median(ms):.0f} ms, p95 {p95:.0f} ms, max {ms[-1]:.0f} ms; "
                f"statuses {codes}; {len(self.findings)} finding(s)")


def check(req: Request, status: int, content_type: str, text: str) -> str | None:
    """What is wrong with this answer, or None."""
    if status >= 500:
        return f"server error {status}"
    api = req.endpoint.api
    if api and status >= 400 and req.method != "HEAD":
        if not content_type.startswith("application/json"):
            return f"error answer is not JSON ({content_type or 'no Content-Type'})"
        try:
            doc = json.loads(text)
        except ValueError:
            return "error answer is not JSON"
        if not isinstance(doc, dict) or "status" not in doc or "message" not in doc:
            return "error answer lacks status/message"
    if api and not req.caller.rights and not req.endpoint.filters_itself and req.method in WRITES \
            and 200 <= status < 300:
        return f"a caller without rights got {status} for a write"
    return None


def send(url: str, req: Request) -> tuple[int, str, str, float]:
    started = time.monotonic()
    r = requests.request(req.method, url + req.path, headers=req.headers, data=req.body, cookies=req.caller.cookies,
                         allow_redirects=False, timeout=60)
    return r.status_code, r.headers.get("Content-Type", ""), r.text, time.monotonic() - started


def run(url: str, requests_: Iterable[Request], workers: int = 4,
        progress: Callable[[int], None] | None = None) -> Outcome:
    """Send every request (``workers`` at a time) and check every answer."""
    todo = list(requests_)
    outcome = Outcome()
    started = time.monotonic()
    with ThreadPoolExecutor(workers) as pool:
        for req, (status, content_type, text, took) in zip(todo, pool.map(lambda r: send(url, r), todo),
                                                           strict=True):
            outcome.sent += 1
            outcome.latencies.append(took)
            outcome.statuses[status] += 1
            problem = check(req, status, content_type, text)
            if problem:
                outcome.findings.append(Finding(req, status, problem, text[:300]))
            if progress and outcome.sent % 500 == 0:
                progress(outcome.sent)
    outcome.seconds = time.monotonic() - started
    return outcome


def report(url: str, outcome: Outcome, limit: int = 20) -> str:
    """The figures, the findings counted by route and problem, and one reproducer each for the first ``limit``."""
    lines = [outcome.summary()]
    by_route = Counter(f"{f.request.method} {f.request.endpoint.path}: {f.problem}" for f in outcome.findings)
    lines += [f"  {n} x {route}" for route, n in by_route.most_common()]
    for f in outcome.findings[:limit]:
        lines.append(f"- {f.problem}: {f.request.curl(url)}\n  -> {f.status} {f.answer[:200]!r}")
    return "\n".join(lines)


def snapshot(api: Callable[..., requests.Response], kube_items: Callable[[str], list[dict]]) -> dict[str, Any]:
    """What a caller without rights must not change: users (admin flag, groups, servers), groups, the sign-up count,
    the trail's length, the activity samples, claims and server pods. ``api(method, path)`` is an admin's call under
    ``/hub/api``; ``kube_items(kind)`` lists a kind in the hub's namespace."""
    def get(path: str) -> Any:
        r = api("GET", path)
        assert r.status_code == 200, (path, r.status_code, r.text[:300])
        return r.json()

    users = get("/users?limit=1000")
    users = users["items"] if isinstance(users, dict) else users
    activity = get("/activity")
    return {
        "users": sorted((u["name"], u["admin"], sorted(u["groups"]), sorted(u.get("servers") or {})) for u in users),
        "groups": sorted((g["name"], sorted(g["users"])) for g in get("/groups")),
        "signups": get("/ds/signups?limit=1")["_pagination"]["total"],
        "trail": get("/ds/events?limit=1")["total"],
        "samples": sum(u["sample_count"] for u in activity["users"]),
        "claims": sorted(c["metadata"]["name"] for c in kube_items("pvc")),
        "server pods": sorted(p["metadata"]["name"] for p in kube_items("pods")
                              if p["metadata"].get("labels", {}).get("component") == "singleuser-server"),
    }


# the scopes a fuzz token is made with, a random one or two of them per token. None of the callers without rights
# gets a grant over the targets of the first pass (strangers: not themselves, not in the delegate's group).
USER_SCOPES = ("read:users!user={me}", "servers!user={me}", "read:servers!user={me}",
               "custom:ds-volumes:reset!user={me}", "tokens!user={me}")
DELEGATE_SCOPES = ("admin:users", "admin:servers", "custom:ds-notifications:send", "custom:ds-activity:admin",
                   "custom:ds-volumes:reset", "read:users", "servers")  # each filtered to the delegate's group
ADMIN_READ_SCOPES = ("read:hub", "read:users", "read:servers", "list:users", "read:groups")
ADMIN_SCOPES = ("admin:users", "admin:servers", "servers", "read:servers", "users", "tokens", "admin:groups")


@dataclass
class Cast:
    """Who sends and to whom, for a pass by callers without rights and one by callers with rights."""

    no_rights: list[Caller]
    with_rights: list[Caller]
    strangers: list[str]  # users none of ``no_rights`` has a grant over
    targets: list[str]  # a group member made for the pass with rights


def _session(label: str, client: HubClient, rights: bool) -> Caller:
    return Caller(label, cookies=client.session.cookies.get_dict(), xsrf=client._xsrf(), rights=rights)


def _tokens(rng: random.Random, label: str, client: HubClient, choices: Sequence[str], rights: bool,
            n: int = 4) -> list[Caller]:
    out = []
    for i in range(n):
        scopes = [s.format(me=client.username) for s in rng.sample(list(choices), rng.randrange(1, 3))]
        r = client.api("POST", f"/users/{client.username}/tokens", json={"scopes": scopes, "note": "fuzz"})
        if r.status_code == 201:  # a set the hub refuses is left out
            out.append(Caller(f"{label} token {i} {scopes}", token=r.json()["token"], rights=rights))
    return out


def cast(rng: random.Random, url: str, admin: HubClient, delegate: str, group: str) -> Cast:
    """New users (a plain user, an outsider, a group member), the delegate logged in, and tokens with random scopes."""
    suffix = uuid.uuid4().hex[:6]
    mallory = new_user(url, admin, f"fzm{suffix}")
    outsider = new_user(url, admin, f"fzo{suffix}")
    member = new_user(url, admin, f"fzt{suffix}")
    dora = new_user(url, admin, delegate)
    admin.api("POST", f"/groups/{group}")  # 201, or 409 when it exists
    r = admin.api("POST", f"/groups/{group}/users", json={"users": [member.username]})
    assert r.status_code == 200, r.text
    filtered = tuple(f"{s}!group={group}" for s in DELEGATE_SCOPES)
    return Cast(
        no_rights=[Caller("nobody"), Caller("a wrong token", token=uuid.uuid4().hex),
                   _session("mallory's session", mallory, False), _session("dora's session", dora, False),
                   *_tokens(rng, "mallory", mallory, USER_SCOPES, False),
                   *_tokens(rng, "dora", dora, filtered, False),
                   *_tokens(rng, "admin read-only", admin, ADMIN_READ_SCOPES, False, 2)],
        with_rights=[_session("admin's session", admin, True), _session("dora's session", dora, True),
                     *_tokens(rng, "admin", admin, ADMIN_SCOPES, True),
                     *_tokens(rng, "dora", dora, filtered, True)],
        strangers=[outsider.username, "admin", f"nobody{suffix}"],
        targets=[member.username])
