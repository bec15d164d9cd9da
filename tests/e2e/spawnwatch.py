"""What a user sees while a server starts: the spawn progress EventStream, and the pod in the API server."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from .hubclient import HubClient


def progress_events(user: HubClient, until: Callable[[dict], bool] | None = None, timeout: float = 90) -> list[dict]:
    """Read ``GET /hub/api/users/<name>/server/progress`` (what the spawn page shows) until an event
    satisfies ``until``, the stream ends (ready or failed), or ``timeout``."""
    events: list[dict] = []
    deadline = time.monotonic() + timeout
    with user.session.get(f"{user.url}/hub/api/users/{user.username}/server/progress", stream=True,
                          timeout=(10, timeout), headers={"Accept": "text/event-stream"}) as r:
        assert r.status_code == 200, (r.status_code, r.text[:300])
        for line in r.iter_lines(decode_unicode=True):
            if line and line.startswith("data:"):
                event = json.loads(line[len("data:"):])
                events.append(event)
                if (until and until(event)) or event.get("ready") or event.get("failed"):
                    break
            if time.monotonic() > deadline:
                break
    return events


def request_start(user: HubClient) -> tuple[int, dict]:
    """POST the start; returns the status and JSON body (202 with Z2JH's ``slow_spawn_timeout: 0``: a failure
    reaches the progress stream, not this answer)."""
    r = user.api("POST", f"/users/{user.username}/server")
    try:
        body = r.json()
    except ValueError:
        body = {}
    return r.status_code, body


def stop_quietly(user: HubClient, timeout: float = 60) -> None:
    """Stop (or interrupt) the user's server and wait until the hub has no server for them."""
    user.api("DELETE", f"/users/{user.username}/server")
    try:
        user.wait_server(ready=False, timeout=timeout)
    except TimeoutError:
        pass


def start_and_get_pod(user: HubClient, kube) -> dict:
    """Start the user's server and return its pod from the API server."""
    user.start_server()
    pod = kube.user_pod(user.username)
    assert pod is not None, f"no pod for {user.username}"
    return pod


def stop_and_wait(user: HubClient, kube) -> None:
    """Stop the user's server and wait until its pod is gone from the API server."""
    stop_quietly(user)
    kube.wait_user_pod_gone(user.username)


def notebook(pod: dict) -> dict:
    return next(c for c in pod["spec"]["containers"] if c["name"] == "notebook")


def env_of(pod: dict) -> dict:
    return {e["name"]: e.get("value") for e in notebook(pod).get("env", [])}
