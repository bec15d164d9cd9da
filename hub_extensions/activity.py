"""The activity monitor: per-user CPU/memory from metrics-server, activity samples and scores, volumes.

Three parts, each built so that the cost of a page view does not grow with API calls per user, each a module:

- **Usage** (:mod:`hub_extensions.activity_usage`, :class:`MetricsCache`): one shared, single-flight LIST of
  ``metrics.k8s.io`` pods per ``resourcesUpdateSeconds`` window; limits from KubeSpawner's pod reflector.
- **Samples and scores** (:mod:`hub_extensions.activity_store`, :class:`ActivityStore`): one row per user per
  ``sampleIntervalSeconds`` and incrementally updated scores, in the hub's own database, on one thread.
- **Volumes** (:mod:`hub_extensions.activity_volumes`, :class:`VolumeCache`): one cached list of our claims, and
  optionally one Prometheus query for the used bytes.

This module is the monitor that holds them (one per hub), its sampler loop and the report.

**Reuse.** Building the answer for 1,000 users costs tens of milliseconds (three queries on the database
thread, then the rows on the event loop), and every admin tab asks every few seconds. The encoded answer is
reused for up to ``REPORT_REUSE_SECONDS`` while the hub's in-memory users look the same (ids, names, creation
times, each default server's state, last activity and extension): a new user, a rename, a start or stop, an extension, a
sample or a reset shows at once; the clock-driven columns (time remaining, active/inactive), and a user deleted
who was not loaded in the hub before, may be up to that much old. Concurrent requests wait for one build.

Other modules reach the running monitor through :func:`monitor` (the dashboard reads one user's usage from it).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy.engine import Engine

from . import culler, k8s
from .activity_store import ACTIVE, INACTIVE, OFFLINE, ActivityStore, TickResult, classify, epoch, score_percent, tick
from .activity_usage import NO_USAGE, MetricsCache, metrics_lister, pod_limits, usage_figures
from .activity_volumes import VolumeCache, volume_columns
from .runtime import Runtime
from .settings import ActivitySettings, CullerSettings

log = logging.getLogger("JupyterHub.ds.activity")

REPORT_REUSE_SECONDS = 2.0


# ================================================================ the monitor: one per hub

class ActivityMonitor:
    """Holds the store and the caches; ``report()`` builds the ``GET /hub/api/activity`` answer."""

    def __init__(self, settings: ActivitySettings, culler_settings: CullerSettings, namespace: str,
                 label_selector: str, engine: Engine,
                 list_pod_metrics: Callable[[], Any] | None = None):
        self.settings = settings
        self.culler_settings = culler_settings
        self.namespace = namespace
        self.store = ActivityStore(engine, settings)
        self.metrics = MetricsCache(settings.resources_update_seconds,
                                    list_pod_metrics or metrics_lister(namespace, label_selector))
        self.volumes = VolumeCache(namespace, settings.volumes.update_seconds, settings.volumes.prometheus_url)
        self.ready = False
        self._limits: dict[str, tuple[str, tuple[float | None, float | None]]] = {}  # pod name -> (uid, limits)
        self._report: tuple[tuple, float, str] | None = None  # (fingerprint, built at (monotonic), JSON text)
        self._report_lock = asyncio.Lock()
        self._ready_lock = asyncio.Lock()
        self.last_tick: TickResult | None = None
        self.db_error: str | None = None

    async def ensure_ready(self) -> bool:
        async with self._ready_lock:
            if not self.ready:
                try:
                    await self.store.run(self.store.ensure_tables)
                    self.ready = True
                    self.db_error = None
                except Exception as e:
                    self.db_error = f"{type(e).__name__}: {e}"
                    log.exception("Activity: creating the tables failed")
        return self.ready

    async def sample(self) -> TickResult:
        await self.ensure_ready()
        result = await tick(self.store)
        self._report = None
        self.last_tick = result
        log.info("Activity sample: %d users (%d active, %d inactive, %d offline), %d pruned, %.0f ms",
                 result.total, result.active, result.inactive, result.offline, result.pruned, result.seconds * 1000)
        return result

    async def usage_of(self, spawner: Any) -> dict[str, Any]:
        snap = await self.metrics.get()
        return usage_figures(snap.usage.get(spawner.pod_name), self.limits_of(spawner))

    def limits_of(self, spawner: Any) -> tuple[float | None, float | None]:
        """The pod's limits from the reflector, parsed once per pod version (they never change in a pod)."""
        pod = k8s.reflected_pod(spawner)
        if not pod:
            return None, None
        key = (pod.get("metadata") or {}).get("uid")
        hit = self._limits.get(spawner.pod_name)
        if key and hit and hit[0] == key:
            return hit[1]
        limits = pod_limits(pod)
        if key:
            self._limits[spawner.pod_name] = (key, limits)
        return limits

    async def reset(self) -> int:
        """Delete every sample and score (the store's reset, on its thread); the next report is rebuilt."""
        deleted = await self.store.run(self.store.reset)
        self._report = None
        return deleted

    async def report_json(self, app_users: Mapping[int, Any]) -> str:
        """The encoded ``GET /hub/api/activity`` answer, reused while fresh (see the module docstring)."""
        async with self._report_lock:
            key = users_fingerprint(app_users)
            cached = self._report
            if cached and cached[0] == key and time.monotonic() - cached[1] < REPORT_REUSE_SECONDS:
                return cached[2]
            text = json.dumps(await self.report(app_users))
            self._report = (key, time.monotonic(), text)
            return text

    async def report(self, app_users: Mapping[int, Any], now: float | None = None) -> dict[str, Any]:
        """The ``GET /hub/api/activity`` answer: a few queries, one cached metrics LIST, one cached claim LIST."""
        now = time.time() if now is None else now
        inactive_after = self.settings.inactive_after_minutes * 60
        if not await self.ensure_ready():
            users_rows, scores, authorized, total = [], {}, {}, 0
            status = "Database not available"
        else:
            users_rows, scores, authorized, total = await self.store.run(self.store.report_rows)
            status = f"{total} samples for {len(scores)} users" if total else "No samples yet"
        snap, by_owner = await asyncio.gather(self.metrics.get(), self.volumes.get())
        out = []
        for user_id, name, running, last_activity in users_rows:
            user = app_users.get(user_id)
            spawner = user.spawners.get("") if user is not None else None
            if spawner is not None and spawner.orm_spawner is not None:
                last_activity = spawner.orm_spawner.last_activity or last_activity  # the hub's newest value
            last = epoch(last_activity)
            status_word = classify(running, last, now, inactive_after)
            score = scores.get(user_id)
            sample_count = score.sample_count if score else 0
            if not running and sample_count == 0 and last is None:
                continue  # upstream: only users with a server, samples or any activity
            figures = NO_USAGE
            remaining = None
            if running and spawner is not None:
                figures = usage_figures(snap.usage.get(spawner.pod_name), self.limits_of(spawner))
                remaining = culler.remaining_seconds(spawner, self.culler_settings, now)
            owner = _owner_key(spawner, user)
            out.append({
                "username": name,
                "is_authorized": authorized.get(name) if authorized else None,
                "server_active": running,
                "recently_active": status_word == ACTIVE,
                "status": status_word,
                **figures,
                "time_remaining_seconds": remaining,
                "activity_score": score_percent(score.ratio()) if score else None,
                "sample_count": sample_count,
                "last_activity": culler.iso(last),
                **volume_columns(by_owner.get(owner) if owner else None),
            })
        order = {ACTIVE: 0, INACTIVE: 1, OFFLINE: 2}
        out.sort(key=lambda u: (order[u["status"]], -(u["activity_score"] or -1), u["username"]))
        return {
            "users": out,
            "timestamp": culler.iso(now),
            "sampling_status": status,
            "inactive_after_seconds": inactive_after,
            "sample_interval_seconds": self.settings.sample_interval_seconds,
            "target_hours": self.settings.target_hours,
            "metrics_available": snap.available,
            "metrics_note": snap.error,
            "metrics_age_seconds": round(time.monotonic() - snap.fetched_at, 1) if snap.fetched_at else None,
            "volumes_source": "prometheus" if self.settings.volumes.prometheus_url else "claims",
            "volumes_note": self.volumes.error and f"Volume sizes unavailable ({self.volumes.error})",
            "culler_enabled": self.culler_settings.enabled,
        }

    async def run(self) -> None:
        """The sampler loop: a first tick soon after start, then every ``sampleIntervalSeconds``."""
        await asyncio.sleep(min(5, self.settings.sample_interval_seconds))
        while True:
            try:
                await self.sample()
            except Exception:  # one failed tick must not end sampling
                log.exception("Activity: sampler tick failed")
            await asyncio.sleep(self.settings.sample_interval_seconds)


def users_fingerprint(app_users: Mapping[int, Any]) -> tuple:
    """What the hub's in-memory users look like to the report: changes whenever a row could (but the clock)."""
    marks = []
    for user_id, user in app_users.items():
        spawner = user.spawners.get("")
        orm_spawner = getattr(spawner, "orm_spawner", None)
        # ``created``: SQLite can give a user deleted and created again the same id
        marks.append((user_id, user.name, getattr(user, "created", None),
                      orm_spawner is not None and orm_spawner.server is not None,
                      getattr(spawner, "pending", None), getattr(orm_spawner, "last_activity", None),
                      getattr(spawner, "ds_extended_until", None)))
    return tuple(marks)


def _owner_key(spawner: Any, user: Any) -> str | None:
    if spawner is None:
        return None
    owner = getattr(spawner, "_ds_owner", None)
    if owner:
        return owner
    try:
        return (spawner.orm_spawner.state or {}).get("ds_owner")
    except Exception:
        return None


# ================================================================ the hub's single monitor

_runtime: Runtime | None = None
_monitor: ActivityMonitor | None = None
_task: asyncio.Task | None = None


def monitor() -> ActivityMonitor | None:
    """The hub's monitor, created on first use once the hub is initialized (its database exists)."""
    global _monitor
    if _monitor is not None:
        return _monitor
    app = _runtime.hub() if _runtime is not None else None
    if app is None:
        return None
    settings = _runtime.settings
    _monitor = ActivityMonitor(settings.activity, settings.culler, _runtime.namespace, _runtime.server_selector,
                               app.db.get_bind())
    return _monitor


def start_background(rt: Runtime) -> None:
    """From ``configure``: run the sampler once the hub's event loop runs (one per process)."""
    global _task, _monitor, _runtime
    _monitor, _runtime = None, rt
    if not rt.settings.activity.enabled:
        return
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return  # no loop: a config check

    async def run() -> None:
        # the JupyterHub app initializes after configure() returns; it has no "initialized" event to await
        while monitor() is None:  # noqa: ASYNC110
            await asyncio.sleep(1)
        await monitor().run()

    if _task is not None and not _task.done():
        _task.cancel()
    _task = loop.create_task(run())
