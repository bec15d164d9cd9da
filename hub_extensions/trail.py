"""The event trail: what happened to users' servers (spawn, stop, cull, extension), newest last.

A bounded in-memory table (the last ``SIZE`` events; the oldest fall off) in the hub process, read by admins
through ``GET /hub/api/ds/events`` (filters ``user``, ``kind``, ``since``, ``limit``) and cleared with ``DELETE``
(:mod:`hub_extensions.trail_api`); both need unfiltered ``admin:users`` (a delegate's ``admin:users!group=x``
does not read or clear other users' events). It is lost when the hub restarts; the Kubernetes Events
(:mod:`hub_extensions.kube_events`) outlive it for their TTL. Recording is a dict append: no I/O on the event loop.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

SIZE = 5000
KINDS = ("spawn", "stop", "cull", "extension", "restart", "volume-reset", "account")

_events: deque[dict[str, Any]] = deque(maxlen=SIZE)
_ids = itertools.count(1)


def record(kind: str, user: str, server: str = "", message: str = "", **details: Any) -> dict[str, Any]:
    """Append one event (``kind`` from :data:`KINDS`)."""
    event = {"id": next(_ids), "time": datetime.now(UTC).isoformat().replace("+00:00", "Z"), "kind": kind,
             "user": user, "server": server, "message": message, **details}
    _events.append(event)
    return event


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
