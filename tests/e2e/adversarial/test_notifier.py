"""The notification broadcast's credential, stolen by a recipient: a user records what the hub sends their own
server and tries to use it elsewhere.

Mallory controls her own single-user server, as every user does: she writes a ``jupyter_server_config.py`` into
``~/.jupyter`` (her home volume) from a terminal in her own lab and restarts her server. That config wraps the
notifications extension's ingest handler: on each delivery it records the ``Authorization`` header and, while the
hub is still waiting for the answer (the credential at its most alive), uses it against Victor's server and the hub
API. After the broadcast the test replays the recorded header itself.

Before issue 20 every delivery carried one unfiltered ``access:servers`` service token, valid until the hub
restarted: Mallory's probe read Victor's files (200). Now each delivery carries its own token, scoped to the
recipient's server only and deleted when the broadcast ends.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
import uuid

import pytest
import requests
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

from ..hubclient import HubClient, new_user

MALLORY, VICTOR = "nfmallory", "nfvictor"
RECORD = "delivery-record.json"  # in Mallory's workspace (her contents API's root)
INSTALLED = "recorder-installed.txt"

# Mallory's ~/.jupyter/jupyter_server_config.py: jupyterhub-singleuser loads it at start (~ is on the config path)
RECORDER = '''
import asyncio, json, pathlib, urllib.error, urllib.request
from jupyterlab_notifications_extension import routes

PROBES = {probes!r}
RECORD = pathlib.Path("/home/lab/workspace/{record}")
_ingest = routes.NotificationIngestHandler.post


def _probe(auth):
    seen = {{}}
    for name, url in PROBES.items():
        req = urllib.request.Request(url, headers={{"Authorization": auth}})
        try:
            with urllib.request.urlopen(req, timeout=3) as r:
                seen[name] = [r.status, r.geturl()]
        except urllib.error.HTTPError as e:
            seen[name] = [e.code, e.geturl()]
        except Exception as e:
            seen[name] = [0, repr(e)]
    return seen


async def _recording_ingest(self, *args, **kwargs):
    auth = self.request.headers.get("Authorization", "")
    probes = await asyncio.to_thread(_probe, auth)  # while the hub still waits for this delivery's answer
    RECORD.write_text(json.dumps({{"authorization": auth, "probes": probes}}))
    return _ingest(self, *args, **kwargs)


routes.NotificationIngestHandler.post = _recording_ingest
'''


def notifier_tokens(hub) -> int:
    with sqlite3.connect(hub.db_file) as db:
        return db.execute("select count(*) from api_tokens t join services s on t.service_id = s.id "
                          "where s.name = 'jupyterhub-ds-notifier'").fetchone()[0]


def contents(hub, name: str, token: str, path: str) -> requests.Response:
    return requests.get(f"{hub.url}/user/{name}/api/contents/{path}", params={"content": "1"},
                        headers={"Authorization": f"token {token}"}, timeout=30)


def run_in_terminal(hub, name: str, token: str, command: str, done: str, timeout: float = 60) -> None:
    """Type ``command`` into a new terminal of the user's own server (the lab's terminal websocket), then wait
    until the file ``done`` shows up in their workspace."""
    auth = {"Authorization": f"token {token}"}
    r = requests.post(f"{hub.url}/user/{name}/api/terminals", headers=auth, timeout=30)
    assert r.status_code == 200, (r.status_code, r.text[:300])
    term = r.json()["name"]

    async def type_it() -> None:
        ws_url = hub.url.replace("http", "ws", 1) + f"/user/{name}/terminals/websocket/{term}"
        ws = await websocket_connect(HTTPRequest(ws_url, headers=auth, connect_timeout=30))
        try:
            await ws.write_message(json.dumps(["stdin", command + "\r"]))
            deadline = time.monotonic() + timeout
            while (await asyncio.to_thread(contents, hub, name, token, done)).status_code != 200:
                assert time.monotonic() < deadline, f"{done} not written by the terminal"
                await asyncio.sleep(0.5)
        finally:
            ws.close()

    try:
        asyncio.run(type_it())
    finally:
        requests.delete(f"{hub.url}/user/{name}/api/terminals/{term}", headers=auth, timeout=30)


@pytest.fixture(scope="module")
def victor(hub, admin) -> HubClient:
    client = new_user(hub.url, admin, VICTOR)
    client.start_server()
    return client


@pytest.fixture(scope="module")
def mallory(hub, admin, victor) -> tuple[HubClient, str]:
    """Mallory, her server restarted with the recorder in ~/.jupyter, and her own token."""
    client = new_user(hub.url, admin, MALLORY)
    client.start_server()
    token = client.token()
    probes = {
        "victor_contents": f"{hub.url}/user/{VICTOR}/api/contents",
        "victor_kernels": f"{hub.url}/user/{VICTOR}/api/kernels",
        "hub_users": f"{hub.url}/hub/api/users",
        "hub_self": f"{hub.url}/hub/api/user",
    }
    source = RECORDER.format(probes=probes, record=RECORD)
    r = requests.put(f"{hub.url}/user/{MALLORY}/api/contents/recorder.py", headers={"Authorization": f"token {token}"},
                     json={"type": "file", "format": "text", "content": source}, timeout=30)
    assert r.status_code in (200, 201), (r.status_code, r.text[:300])
    run_in_terminal(hub, MALLORY, token, "mkdir -p ~/.jupyter && cp recorder.py ~/.jupyter/jupyter_server_config.py"
                                          f" && echo ok > {INSTALLED}", INSTALLED)
    client.stop_server()
    client.start_server()
    return client, token


def test_a_recipient_cannot_use_the_delivery_credential_elsewhere(hub, admin, mallory, victor):
    _, token = mallory
    marker = f"check-{uuid.uuid4().hex[:6]}"
    r = admin.api("POST", "/notifications/broadcast", json={"message": marker, "recipients": [MALLORY]})
    assert r.status_code == 200, r.text
    assert r.json()["successful"] == 1, r.json()

    got = contents(hub, MALLORY, token, RECORD)
    assert got.status_code == 200, (got.status_code, got.text[:300])
    record = json.loads(got.json()["content"])
    stolen = record["authorization"]
    assert stolen.lower().startswith("token ") and token not in stolen
    probes = {name: tuple(v) for name, v in record["probes"].items()}

    # while the delivery was in flight the credential was alive (the hub knew it) ...
    assert probes["hub_self"][0] == 200, probes
    # ... and opened neither Victor's server (403, or a redirect to log in) nor the hub's user list
    for name in ("victor_contents", "victor_kernels"):
        code, where = probes[name]
        assert code == 403 or "/hub/login" in where, (name, probes)
    assert probes["hub_users"][0] == 403, probes

    # replayed after the broadcast: refused everywhere, the hub no longer knows it
    headers = {"Authorization": stolen}
    for path in (f"/user/{VICTOR}/api/contents", f"/user/{VICTOR}/api/kernels"):
        replay = requests.get(f"{hub.url}{path}", headers=headers, allow_redirects=False, timeout=30)
        assert replay.status_code in (302, 403), (path, replay.status_code, replay.text[:200])
        if replay.status_code == 302:
            assert "/hub/" in replay.headers["Location"], replay.headers["Location"]
    assert requests.get(f"{hub.url}/hub/api/users", headers=headers, timeout=30).status_code == 403
    assert requests.get(f"{hub.url}/hub/api/user", headers=headers, timeout=30).status_code == 403
    assert notifier_tokens(hub) == 0
