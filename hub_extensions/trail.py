"""The event trail: what happened to users' servers (spawn, stop, cull, extension), newest last.

A bounded in-memory table (the last ``SIZE`` events; the oldest fall off) in the hub process, read by admins
through ``GET /hub/api/ds/events`` (filters ``user``, ``kind``, ``since``, ``limit``) and cleared with ``DELETE``
(:mod:`hub_extensions.trail_api`); both need unfiltered ``admin:users`` (a delegate's ``admin:users!group=x``
does not read or clear other users' events). It is lost when the hub restarts; the Kubernetes Events
(:mod:`hub_extensions.kube_events`) outlive it for their TTL.

One call records both: :func:`record` appends to the trail and, for what ``kubectl get events`` should show too
(a cull, an extension, a Restart Server, a volume reset), emits the Kubernetes Event on the user's pod or on each
deleted claim, in the background. The append is a dict append: no I/O on the event loop.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from . import kube_events

SIZE = 5000
KINDS = ("spawn", "stop", "cull", "extension", "restart", "volume-reset", "account", "env-vars")

_events: deque[dict[str, Any]] = deque(maxlen=SIZE)
_ids = itertools.count(1)


def record(kind: str, user: str, server: str = "", message: str = "", *, spawner: Any = None,
           claims: Mapping[str, str] | None = None, namespace: str = "", **details: Any) -> dict[str, Any]:
    """Append one event (``kind`` from :data:`KINDS`) and emit its Kubernetes Event, if it has one: on
    ``spawner``'s pod, or on each of ``claims`` (claim name -> volume name) in ``namespace``."""
    event = {"id": next(_ids), "time": datetime.now(UTC).isoformat().replace("+00:00", "Z"), "kind": kind,
             "user": user, "server": server, "message": message, **details}
    _events.append(event)
    if spawner is not None and (pod_event := _pod_event(event)) is not None:
        kube_events.emit(spawner, *pod_event)
    for claim, volume in (claims or {}).items():
        kube_events.emit_on_claim(namespace, claim, kube_events.VOLUME_RESET,
                                  f"Volume {volume} of {user} reset by {details.get('by')}: the claim was deleted; "
                                  "the next start creates an empty one")
    return event


def _pod_event(event: Mapping[str, Any]) -> tuple[str, str] | None:
    """(reason, message) of the Kubernetes Event on the user's pod for a trail event; None when kubectl need not
    show it (a plain start or stop: the kubelet's own events tell those). Every message names the user: the pod is
    gone after a stop, and ``kubectl jupyterhub events <user>`` finds its events by name then."""
    user, message = event["user"], event["message"]
    if event["kind"] == "cull":
        return kube_events.CULLED, f"Server of {user} stopped by the culler ({event.get('reason')}: {message})"
    if event["kind"] == "extension":
        return kube_events.SESSION_EXTENDED, f"Session of {user} extended: {message}"
    if event["kind"] == "spawn" and event.get("restart"):
        return (kube_events.SERVER_RESTARTED,
                f"Server of {user} restarted (Restart Server: a new pod with the same volumes)")
    return None


def clear() -> int:
    """Forget every event; returns how many there were."""
    n = len(_events)
    _events.clear()
    return n


class BadFilter(ValueError):
    pass


def select(events: Iterable[dict[str, Any]], user: str | None = None, kind: str | None = None,
           since: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """Events matching the filters, newest first, at most ``limit`` (pure)."""
    if kind is not None and kind not in KINDS:
        raise BadFilter(f"kind: expected one of {', '.join(KINDS)}, got {kind!r}")
    if not 1 <= limit <= SIZE:
        raise BadFilter(f"limit: expected 1 to {SIZE}, got {limit}")
    floor = None
    if since is not None:
        try:
            floor = datetime.fromisoformat(since.replace("Z", "+00:00"))
        except ValueError as e:
            raise BadFilter(f"since: expected an ISO 8601 time, got {since!r}") from e
        if floor.tzinfo is None:
            floor = floor.replace(tzinfo=UTC)
    out = []
    for event in reversed(list(events)):
        if user is not None and event["user"] != user:
            continue
        if kind is not None and event["kind"] != kind:
            continue
        if floor is not None and datetime.fromisoformat(event["time"].replace("Z", "+00:00")) < floor:
            break  # newest first: everything after this is older
        out.append(event)
        if len(out) >= limit:
            break
    return out
