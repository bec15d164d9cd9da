"""The in-hub idle culler, which honours session extensions.

Z2JH's jupyterhub-idle-culler 1.4.0 sees only ``last_activity`` and a fixed timeout, so an extension
stored anywhere else cannot delay a cull (upstream's extension was display-only). This culler runs
inside the hub: every ``everySeconds`` it walks the hub's in-memory users and spawners (no database
query, no API call when nothing is due) and stops a server when

    now >= max(last_activity + timeout, extended_until)     (reason "idle")
    now - started >= maxAge  (maxAge > 0)                    (reason "max-age", whatever the extension)

Pending servers and servers being restarted are skipped. Stops go through JupyterHub's own path (the
proxy route removed, then ``User.stop``, as the REST API's ``stop_single_user`` does) with at most
``concurrency`` at once.

A user may extend their session by whole hours: the deadline moves by exactly the hours granted, but
never past the ceiling ``now + timeout + maxExtensionHours``; a larger request is truncated to what
is available and the answer says so. The extension (``extended_until``, an absolute time, and the
hours granted) lives in the spawner state: it survives a hub restart and Restart Server, and stopping
the server clears it.

The functions at the top are pure (times are epoch seconds), for tests.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from jupyterhub.metrics import SERVER_STOP_DURATION_SECONDS, ServerStopStatus

from . import locks, trail
from .runtime import Runtime
from .settings import CullerSettings

log = logging.getLogger("JupyterHub.ds.culler")  # a child of the hub's logger: same handlers and level

HOUR = 3600
IDLE = "idle"
MAX_AGE = "max-age"


# ================================================================ pure: deadlines and decisions


def deadline(last_activity: float | None, extended_until: float | None, timeout: float,
             started: float | None = None) -> float | None:
    """When the server becomes cullable for idleness: ``max(last_activity + timeout, extended_until)``.

    Without any activity yet the start time counts (as in jupyterhub-idle-culler); without either, None.
    """
    since = last_activity if last_activity is not None else started
    candidates = [t for t in (None if since is None else since + timeout, extended_until) if t is not None]
    return max(candidates) if candidates else None


def time_remaining(now: float, last_activity: float | None, extended_until: float | None, timeout: float,
                   started: float | None = None) -> int:
    """Whole seconds until the server is culled for idleness (0 when due); the timeout without any clue."""
    end = deadline(last_activity, extended_until, timeout, started)
    if end is None:
        return int(timeout)
    return max(0, math.ceil(end - now))


def should_cull(now: float, last_activity: float | None, extended_until: float | None, started: float | None,
                timeout: float, max_age: float) -> str | None:
    """``"max-age"``, ``"idle"`` or None. Max age wins over any extension and any activity."""
    if max_age > 0 and started is not None and now - started >= max_age:
        return MAX_AGE
    end = deadline(last_activity, extended_until, timeout, started)
    if end is not None and now >= end:
        return IDLE
    return None


def ceiling(now: float, timeout: float, max_extension_hours: int) -> float:
    """The latest a deadline may be moved to now: a full idle timeout plus every extension hour."""
    return now + timeout + max_extension_hours * HOUR


def _base(now: float, last_activity: float | None, extended_until: float | None, timeout: float,
          started: float | None) -> float:
    """What an extension adds to: the current deadline (now if it has passed or is unknown)."""
    end = deadline(last_activity, extended_until, timeout, started)
    return now if end is None else max(now, end)


def available_hours(now: float, last_activity: float | None, extended_until: float | None, timeout: float,
                    max_extension_hours: int, started: float | None = None) -> int:
    """Whole hours that can still be added without passing the ceiling."""
    room = ceiling(now, timeout, max_extension_hours) - _base(now, last_activity, extended_until, timeout, started)
    return max(0, int(room // HOUR))


@dataclass(frozen=True)
class Grant:
    """The outcome of an extension request: exactly what was added, and the new ``extended_until``."""

    requested: int
    hours: int
    truncated: bool
    extended_until: float | None

    def message(self, max_extension_hours: int, timeout: float) -> str:
        """Upstream's sentence, but true: it names the hours actually added."""
        if self.hours == 0:
            return (f"Session already at maximum ({format_hours(timeout + max_extension_hours * HOUR)}). "
                    "Wait for time to elapse before extending.")
        text = f"Added {self.hours} hour(s) to session"
        if self.truncated:
            text += f" (requested {self.requested} h, limited to available {self.hours} h)"
        return text


def format_hours(seconds: float) -> str:
    hours = seconds / HOUR
    return f"{hours:g}h" if hours == int(hours) else f"{hours:.1f}h"


def extend(now: float, last_activity: float | None, extended_until: float | None, timeout: float,
           max_extension_hours: int, hours: int, started: float | None = None) -> Grant:
    """Add ``hours`` whole hours to the current deadline, truncated so it never passes the ceiling."""
    if not isinstance(hours, int) or isinstance(hours, bool) or hours < 1:
        raise ValueError(f"hours must be a positive whole number, got {hours!r}")
    available = available_hours(now, last_activity, extended_until, timeout, max_extension_hours, started)
    granted = min(hours, available)
    if granted == 0:
        return Grant(hours, 0, True, extended_until)
    base = _base(now, last_activity, extended_until, timeout, started)
    return Grant(hours, granted, granted < hours, base + granted * HOUR)


class BadHours(ValueError):
    """The request's ``hours`` is not a whole number in range; the message is for the user."""


def parse_hours(body: Any, max_extension_hours: int) -> int:
    """``{"hours": n}`` (missing means 1, upstream's default) as a whole number from 1 to the maximum.

    Fractions are refused rather than rounded (upstream turned 0.5 into 0 and "added" it); a value
    above the maximum can never be granted, so it is refused too, while one merely above what is left
    now is truncated by :func:`extend`.
    """
    if not isinstance(body, Mapping):
        raise BadHours('Invalid request. Send a JSON object such as {"hours": 1}.')
    hours = body.get("hours", 1)
    if isinstance(hours, float) and hours.is_integer():
        hours = int(hours)
    if isinstance(hours, bool) or not isinstance(hours, int) or not 1 <= hours <= max(1, max_extension_hours):
        raise BadHours(f"Invalid request. Hours must be a whole number from 1 to {max_extension_hours}.")
    return hours


def timestamp(value: datetime | None) -> float | None:
    """A JupyterHub ORM time (naive UTC) or an aware one, as epoch seconds."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


def iso(value: float | None) -> str | None:
    return None if value is None else datetime.fromtimestamp(value, UTC).isoformat().replace("+00:00", "Z")


# ================================================================ a spawner's view


def times(spawner: Any) -> tuple[float | None, float | None, float | None]:
    """(last_activity, started, extended_until) of a spawner, from memory (the ORM object is not expired)."""
    orm = spawner.orm_spawner
    return (timestamp(orm.last_activity) if orm is not None else None,
            timestamp(orm.started) if orm is not None else None,
            getattr(spawner, "ds_extended_until", None))


def is_running(spawner: Any) -> bool:
    """Ready, not pending: the only servers the culler and extensions deal with."""
    return not spawner.pending and spawner.orm_spawner is not None and spawner.orm_spawner.server is not None


def effective(settings: CullerSettings, spawner: Any) -> CullerSettings:
    """The culler settings for one server: its group policies' idle timeout and extension ceiling, fixed when it
    started (``DsKubeSpawner.ds_culling``), over the hub's."""
    overrides = {k: v for k, v in (getattr(spawner, "ds_culling", None) or {}).items() if v is not None}
    return dataclasses.replace(settings, **overrides) if overrides else settings


def keep_within_ceiling(spawner: Any, settings: CullerSettings, now: float) -> None:
    """An extension kept across Restart Server never reaches past the ceiling of the server's (new) settings."""
    if getattr(spawner, "ds_extended_until", None) is not None:
        limits = effective(settings, spawner)
        spawner.ds_extended_until = min(spawner.ds_extended_until,
                                        ceiling(now, limits.timeout_seconds, limits.max_extension_hours))


def remaining_seconds(spawner: Any, settings: CullerSettings, now: float) -> int | None:
    """Seconds until the culler stops this server for idleness; None when it does not run or the culler is off.

    The one computation behind session-info and the activity monitor's column, so the two always agree.
    """
    if not settings.enabled or spawner is None or not is_running(spawner):
        return None
    settings = effective(settings, spawner)
    last_activity, started, extended_until = times(spawner)
    return time_remaining(now, last_activity, extended_until, settings.timeout_seconds, started)


def session_info(spawner: Any, settings: CullerSettings, now: float | None = None) -> dict[str, Any]:
    """Upstream's ``session-info`` answer for a user's default server."""
    now = time.time() if now is None else now
    settings = effective(settings, spawner)
    if not settings.enabled or spawner is None or not is_running(spawner):
        return {"culler_enabled": settings.enabled, "server_active": bool(spawner is not None and spawner.active),
                "timeout_seconds": settings.timeout_seconds, "max_extension_hours": settings.max_extension_hours,
                "last_activity": None, "time_remaining_seconds": None, "extensions_used_hours": 0,
                "extensions_available_hours": settings.max_extension_hours, "extended_until": None}
    last_activity, started, extended_until = times(spawner)
    return {
        "culler_enabled": True,
        "server_active": True,
        "timeout_seconds": settings.timeout_seconds,
        "max_extension_hours": settings.max_extension_hours,
        "last_activity": iso(last_activity),
        "time_remaining_seconds": remaining_seconds(spawner, settings, now),
        "extensions_used_hours": getattr(spawner, "ds_extension_hours", 0),
        "extensions_available_hours": available_hours(now, last_activity, extended_until, settings.timeout_seconds,
                                                      settings.max_extension_hours, started),
        "extended_until": iso(extended_until),
    }


def extend_spawner(spawner: Any, settings: CullerSettings, hours: int, now: float | None = None) -> Grant:
    """Apply an extension to a running spawner and persist it in the spawner state (call under the user lock)."""
    now = time.time() if now is None else now
    settings = effective(settings, spawner)
    last_activity, started, extended_until = times(spawner)
    grant = extend(now, last_activity, extended_until, settings.timeout_seconds, settings.max_extension_hours,
                   hours, started)
    if grant.hours:
        spawner.ds_extended_until = grant.extended_until
        spawner.ds_extension_hours = getattr(spawner, "ds_extension_hours", 0) + grant.hours
        # JupyterHub writes the state only on start and stop: write it now, so a hub restart keeps it
        spawner.orm_spawner.state = spawner.get_state()
        spawner.db.commit()
        trail.record("extension", spawner.user.name, spawner.name,
                     f"+{grant.hours} h (requested {hours} h) until {iso(grant.extended_until)}",
                     spawner=spawner, hours=grant.hours, requested=hours, truncated=grant.truncated)
    return grant


# ================================================================ the periodic pass


@dataclass(frozen=True)
class Candidate:
    user: Any
    name: str
    reason: str


def due(users: Iterable[Any], settings: CullerSettings, now: float) -> list[Candidate]:
    """The running servers to cull now, from the hub's in-memory users (pure apart from reading them)."""
    found = []
    for user in users:
        if locks.is_restarting(user.id):
            continue
        for name, spawner in list(user.spawners.items()):
            if not is_running(spawner):
                continue
            last_activity, started, extended_until = times(spawner)
            reason = should_cull(now, last_activity, extended_until, started,
                                 effective(settings, spawner).timeout_seconds, settings.max_age_seconds)
            if reason:
                found.append(Candidate(user, name, reason))
    return found


def begin_stop(app: Any, user: Any, name: str) -> asyncio.Future:
    """Start stopping a server the way JupyterHub's ``BaseHandler.stop_single_user`` does, outside a request.

    Marks the stop pending at once (synchronously: no race with a start, an extension or a second
    stop), then in the background removes the proxy route and calls ``User.stop`` (spawner stop,
    database, ``clear_state``), with the same stop-duration metric and server-action event. Unlike the
    REST API it skips ``refresh_pre_stop``: there is no requesting user to re-authenticate.
    """
    spawner = user.spawners[name]
    spawner._stop_pending = True

    async def stop() -> None:
        tic = time.perf_counter()
        try:
            await app.proxy.delete_user(user, name)
            await user.stop(name)
            SERVER_STOP_DURATION_SECONDS.labels(status=ServerStopStatus.success).observe(time.perf_counter() - tic)
            eventlog = getattr(app, "eventlog", None)
            if eventlog is not None:  # the same server-action event the REST API's stop emits
                eventlog.emit(schema_id="https://schema.jupyter.org/jupyterhub/events/server-action",
                              data={"action": "stop", "username": user.name, "servername": name})
        except Exception:
            SERVER_STOP_DURATION_SECONDS.labels(status=ServerStopStatus.failure).observe(time.perf_counter() - tic)
            log.exception("Culler: stopping %s failed", spawner._log_name)
        finally:
            spawner._stop_future = None
            spawner._stop_pending = False

    future = spawner._stop_future = asyncio.ensure_future(stop())
    return future


async def wait_stopped(future: asyncio.Future, label: str, slow_stop_timeout: float) -> None:
    """Wait ``slow_stop_timeout`` like the REST API; a slower stop finishes in the background."""
    try:
        await asyncio.wait_for(asyncio.shield(future), slow_stop_timeout)
    except TimeoutError:
        log.warning("Culler: %s is slow to stop; it goes on in the background", label)


class Culler:
    """One culler per hub: ``run_pass`` once, or ``run`` forever (started by :func:`start_background`)."""

    def __init__(self, settings: CullerSettings, get_app: Callable[[], Any | None],
                 clock: Callable[[], float] = time.time):
        self.settings = settings
        self.get_app = get_app
        self.clock = clock
        self.culled: list[tuple[str, str, str]] = []  # (user, server, reason), for tests and the log

    async def run_pass(self, app: Any) -> list[Candidate]:
        """Cull what is due; returns what was stopped. With nothing due it awaits nothing."""
        candidates = due(list(app.users.values()), self.settings, self.clock())
        if not candidates:
            return []
        limit = asyncio.Semaphore(self.settings.concurrency)
        timeout = (getattr(app, "tornado_settings", None) or {}).get("slow_stop_timeout", 10)
        stopped: list[Candidate] = []

        async def cull(candidate: Candidate) -> None:
            async with limit:
                user, name = candidate.user, candidate.name
                async with locks.user_lock(user.id):  # an extension in flight lands first, then we look again
                    spawner = user.spawners.get(name)
                    if spawner is None or not is_running(spawner) or locks.is_restarting(user.id):
                        return
                    last_activity, started, extended_until = times(spawner)
                    settings = effective(self.settings, spawner)
                    reason = should_cull(self.clock(), last_activity, extended_until, started,
                                         settings.timeout_seconds, settings.max_age_seconds)
                    if reason is None:
                        return
                    why = _why(reason, settings)
                    log.info("Culler: stopping %s (%s)", spawner._log_name, why)
                    trail.record("cull", user.name, name, why, spawner=spawner, reason=reason)
                    future = begin_stop(app, user, name)
                await wait_stopped(future, spawner._log_name, timeout)
                stopped.append(Candidate(user, name, reason))
                self.culled.append((user.name, name, reason))

        await asyncio.gather(*(cull(c) for c in candidates))
        return stopped

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.settings.every_seconds)
            app = self.get_app()
            if app is None:
                continue
            try:
                await self.run_pass(app)
            except Exception:  # a bug in one pass must not end culling
                log.exception("Culler: pass failed")


def _why(reason: str, settings: CullerSettings) -> str:
    if reason == MAX_AGE:
        return f"older than maxAgeSeconds={settings.max_age_seconds}"
    return f"idle for timeoutSeconds={settings.timeout_seconds} and past any extension"


_task: asyncio.Task | None = None


def start_background(rt: Runtime) -> None:
    """From ``configure``: when enabled, run the culler once the hub's event loop runs (one per process)."""
    global _task
    settings = rt.settings.culler
    if not settings.enabled:
        return
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return  # no loop: a config check, nothing to cull
    if _task is not None and not _task.done():
        _task.cancel()
    _task = loop.create_task(Culler(settings, rt.hub).run())
