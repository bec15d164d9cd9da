"""Strangers at the open doors: a flood of sign-ups, and wrong passwords sent to lock someone else out.

A stranger needs no account to reach ``/hub/signup`` and ``/hub/login``. Before issue 20 a sign-up flood froze the
hub (bcrypt on the event loop, a query per sign-up row) and filled ``users_info`` without bound, and the lockout
counted failures per user name only, in memory: a stranger's five wrong passwords for ``admin`` locked the real
admin out, and a restart forgot every count.

The release here runs the shipped sign-up limit (5 a minute per client address) with ``forwardedHops: 2``: the test
acts as the site's ingress, appending the client's address to ``X-Forwarded-For`` as an ingress does, so that
requests can come from several client addresses (every test request reaches the proxy from the node agent's one
forwarder address). A client's own ``X-Forwarded-For`` and ``X-Real-Ip`` are sent too, and must not count. The
last test installs ``forwardedHops: 1`` (proxy only) and shows that a forged header gives no fresh address there.
"""

from __future__ import annotations

import re
import sqlite3
import threading
import time
import uuid

import pytest
import requests

from ..hubclient import FIRST_ADMIN, PASSWORD
from ..release import Release

pytestmark = pytest.mark.cluster

SETTINGS = {"accounts": {"signupsPerMinute": 5, "maxPendingSignups": 30, "forwardedHops": 2,
                         "lockout": {"failures": 3, "blockSeconds": 600, "maxBlockSeconds": 3600}}}
STRANGER, OWNER = "198.51.100.66", "192.0.2.10"


@pytest.fixture(scope="module")
def hub(own_release: Release) -> Release:
    return own_release.install(SETTINGS)


def fresh_name(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def via_ingress(client: str | None, forged: str | None = None) -> dict[str, str]:
    """Headers of a request from ``client`` through the site's ingress; ``forged``: what the client itself put in
    X-Forwarded-For and X-Real-Ip (the ingress appends the address it saw)."""
    headers = {}
    chain = [a for a in (forged, client) if a]
    if chain:
        headers["X-Forwarded-For"] = ", ".join(chain)
    if forged:
        headers["X-Real-Ip"] = forged
    return headers


def signup(url: str, name: str, headers: dict[str, str]) -> requests.Response:
    s = requests.Session()
    s.get(f"{url}/hub/signup", timeout=10, headers=headers)  # the XSRF token: JupyterHub ties it to X-Real-Ip
    return s.post(f"{url}/hub/signup", timeout=60, headers=headers, data={
        "username": name, "signup_password": PASSWORD, "signup_password_confirmation": PASSWORD,
        "_xsrf": s.cookies.get("_xsrf")})


def login(url: str, name: str, password: str, headers: dict[str, str]) -> requests.Response:
    s = requests.Session()
    s.get(f"{url}/hub/login", timeout=10, headers=headers)
    return s.post(f"{url}/hub/login", timeout=60, headers=headers, allow_redirects=False,
                  data={"username": name, "password": password, "_xsrf": s.cookies.get("_xsrf")})


def outcome(r: requests.Response) -> str:
    """A login's outcome: "in" (302), "blocked" (429), "refused" (the form again, 200 or 403)."""
    if r.status_code in (200, 403):
        assert "Invalid username or password" in r.text, r.text[-500:]
    return {302: "in", 429: "blocked", 200: "refused", 403: "refused"}[r.status_code]


def pending_signups(hub: Release) -> int:
    with sqlite3.connect(f"file:{hub.db_file}?mode=ro", uri=True, timeout=10) as db:
        return db.execute("SELECT count(*) FROM users_info WHERE NOT is_authorized").fetchone()[0]


def test_a_signup_flood_from_one_address_is_refused_and_forged_headers_do_not_reset_it(hub):
    client = "198.51.100.7"
    for _ in range(5):
        r = signup(hub.url, fresh_name("fl"), via_ingress(client))
        assert r.status_code == 200 and "sent to the admin" in r.text, (r.status_code, r.text[-500:])
    r = signup(hub.url, fresh_name("fl"), via_ingress(client))
    assert r.status_code == 429, (r.status_code, r.text[-500:])
    assert "Too many sign-up attempts from your address" in r.text and int(r.headers["Retry-After"]) > 0
    for forged in ("203.0.113.99", "10.9.8.7"):  # the stranger's own X-Forwarded-For / X-Real-Ip
        r = signup(hub.url, fresh_name("fl"), via_ingress(client, forged))
        assert r.status_code == 429, (forged, r.status_code)
    r = signup(hub.url, fresh_name("fl"), via_ingress("198.51.100.8"))  # someone else is not refused
    assert r.status_code == 200 and "sent to the admin" in r.text


def test_a_strangers_wrong_passwords_do_not_lock_the_admin_out(hub):
    outcomes = [outcome(login(hub.url, FIRST_ADMIN, f"guess-{i}", via_ingress(STRANGER, f"203.0.113.{i}")))
                for i in range(5)]
    assert outcomes == ["refused"] * 3 + ["blocked"] * 2
    r = login(hub.url, FIRST_ADMIN, PASSWORD, via_ingress(STRANGER))  # even the right password: blocked there
    assert r.status_code == 429 and "Too many failed logins" in r.text
    assert outcome(login(hub.url, FIRST_ADMIN, PASSWORD, via_ingress(OWNER))) == "in"


def test_a_lockout_is_in_the_event_trail(hub, service):
    name = fresh_name("lk")
    for _ in range(3):
        login(hub.url, name, "guess", via_ingress(STRANGER))
    r = service.api("GET", "/ds/events", params={"user": name, "kind": "account"})
    assert r.status_code == 200, r.text
    events = r.json()["events"]
    assert [(e["action"], e["address"], e["seconds"]) for e in events] == [("lockout", STRANGER, 600)], events


def test_the_lockout_survives_a_hub_restart(hub):
    name = fresh_name("rs")
    for _ in range(2):  # one short of a block: the count must survive too
        assert outcome(login(hub.url, name, "guess", via_ingress(STRANGER))) == "refused"
    address = "198.51.100.77"
    for _ in range(3):
        login(hub.url, FIRST_ADMIN, "guess", via_ingress(address))
    assert outcome(login(hub.url, FIRST_ADMIN, PASSWORD, via_ingress(address))) == "blocked"
    hub.stop()
    hub.start()
    assert outcome(login(hub.url, FIRST_ADMIN, PASSWORD, via_ingress(address))) == "blocked"
    assert outcome(login(hub.url, FIRST_ADMIN, PASSWORD, via_ingress(OWNER))) == "in"
    assert outcome(login(hub.url, name, "guess", via_ingress(STRANGER))) == "refused"  # the third failure ...
    assert outcome(login(hub.url, name, "guess", via_ingress(STRANGER))) == "blocked"  # ... started a block


def test_the_hub_keeps_answering_during_a_signup_flood_and_pending_signups_are_capped(hub, admin):
    statuses: list[tuple[int, str]] = []
    deadline = time.monotonic() + 240

    def flood(worker: int) -> None:
        for i in range(12):  # every attempt from an address of its own: the rate limit lets them all through
            if time.monotonic() > deadline:
                return
            r = signup(hub.url, fresh_name("fd"), via_ingress(f"198.18.{worker}.{i}"))
            statuses.append((r.status_code, r.text))

    workers = [threading.Thread(target=flood, args=(w,)) for w in range(4)]
    for w in workers:
        w.start()
    answers = []
    while any(w.is_alive() for w in workers) and time.monotonic() < deadline:
        answers.append(requests.get(f"{hub.url}/hub/health", timeout=30).status_code)
        answers.append(admin.api("GET", "/user").status_code)
        time.sleep(0.2)
    for w in workers:
        w.join(timeout=max(deadline - time.monotonic(), 1))
    assert answers and set(answers) == {200}, answers
    assert len(statuses) == 48 and {code for code, _ in statuses} <= {200, 503}, {c for c, _ in statuses}
    assert any(code == 503 and "sign-ups waiting for an admin" in text for code, text in statuses)
    assert pending_signups(hub) == SETTINGS["accounts"]["maxPendingSignups"]


def test_one_hop_a_forged_forwarded_for_gives_no_fresh_address_and_a_block_ends(hub):
    one_hop = {"accounts": {**SETTINGS["accounts"], "forwardedHops": 1,
                            "lockout": {"failures": 3, "blockSeconds": 2, "maxBlockSeconds": 3600}}}
    hub.install(one_hop)
    name = fresh_name("oh")
    # the proxy's own entry is the address; whatever the client writes in front of it is not
    outcomes = [outcome(login(hub.url, name, "guess", via_ingress(None, f"203.0.113.{i}"))) for i in range(4)]
    assert outcomes == ["refused"] * 3 + ["blocked"]
    time.sleep(2.5)  # the block ends: the count starts from zero ...
    outcomes = [outcome(login(hub.url, name, "guess", via_ingress(None, f"203.0.114.{i}"))) for i in range(4)]
    assert outcomes == ["refused"] * 3 + ["blocked"]
    r = login(hub.url, name, "guess", {})
    wait = re.search(r"try again in (\d+) seconds", r.text)
    assert r.status_code == 429 and wait and int(wait[1]) > 2, r.text[-500:]  # ... and the next block is longer
