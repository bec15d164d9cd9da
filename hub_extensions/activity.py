"""The activity monitor: per-user CPU/memory from metrics-server, activity samples and scores, volumes.

Three parts, each built so that the cost of a page view does not grow with API calls per user:

- **Usage** (:class:`MetricsCache`): one namespace-scoped LIST of ``metrics.k8s.io/v1beta1`` pods with the
  single-user label selector per ``resourcesUpdateSeconds`` window, single-flight (concurrent callers await
  the same request) and shared by every request and tab. Limits come from KubeSpawner's pod reflector (its
  in-memory copy of the pods), so there is no per-user API call at all. CPU is a percentage of the pod's
  CPU limit, or of **one core** when the pod has no CPU limit (upstream's per-core scale, so an unlimited
  pod using two cores shows 200 %). Memory is the working set in MiB and a percentage of the memory limit
  (null without a limit: a node's allocatable memory says nothing about what the pod may use). A pod that
  metrics-server has not scraped twice yet, or a metrics API that is down, gives ``null`` values, never 0.
- **Samples and scores** (:class:`ActivityStore`): every ``sampleIntervalSeconds`` the hub writes one row per
  user into ``activity_samples`` and updates ``activity_scores`` incrementally, so reading the scores is one
  row per user. Both tables live in the hub's own database (JupyterHub's engine, SQLite or PostgreSQL),
  keyed by ``users.id`` with ``ON DELETE CASCADE``: a rename changes nothing here (the id stays), and deleting
  a user deletes their rows in the same transaction as the user. Database work runs on one dedicated thread,
  in one transaction per tick, never on the event loop.
- **Volumes** (:class:`VolumeCache`): one cached list of our claims (requested capacity per volume), and,
  when ``volumes.prometheusUrl`` is set, one Prometheus query for ``kubelet_volume_stats_used_bytes``.

The score of a user is ``100 * sum(w_i * active_i) / sum(w_i)`` over the samples in the retention window,
with ``w_i = exp(-ln 2 * age_i / halfLife)``. The ratio does not depend on the time the ages are measured
from, so the table keeps ``A = sum(w_i * active_i)`` and ``W = sum(w_i)`` relative to the newest sample's time:
a new sample multiplies both by ``exp(-lambda * dt)`` and adds ``(active, 1)``; a pruned sample subtracts its
weight. ``active`` uses the server's own last activity only (upstream fell back to the user's, which moves
on every hub page view).

**Reuse.** Building the answer for 1,000 users costs tens of milliseconds (three queries on the database
thread, then the rows on the event loop), and every admin tab asks every few seconds. The encoded answer is
reused for up to ``REPORT_REUSE_SECONDS`` while the hub's in-memory users look the same (ids, names, creation
times, each default server's state, last activity and extension): a new user, a rename, a start or stop, an extension, a
sample or a reset shows at once; the clock-driven columns (time remaining, active/inactive), and a user deleted
who was not loaded in the hub before, may be up to that much old. Concurrent requests wait for one build.

Public helpers for other modules: :func:`user_usage` (one user's latest CPU/memory from the shared cache).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Table,
    Unicode,
    bindparam,
    delete,
    func,
    insert,
    inspect,
    select,
    update,
)
from sqlalchemy.engine import Engine

from . import culler, k8s
from .settings import ActivitySettings, CullerSettings

log = logging.getLogger("JupyterHub.ds.activity")

MIB = 1024 * 1024
METRICS_GROUP = "metrics.k8s.io"
METRICS_VERSION = "v1beta1"
ACTIVE, INACTIVE, OFFLINE = "active", "inactive", "offline"
REPORT_REUSE_SECONDS = 2.0


# ================================================================ pure: quantities, usage, status

def parse_cpu(value: str | None) -> float | None:
    """A CPU quantity (``250m``, ``1``, ``1500000n``, ``20u``) in cores."""
    if value is None or value == "":
        return None
    value = str(value)
    for suffix, scale in (("n", 1e-9), ("u", 1e-6), ("m", 1e-3)):
        if value.endswith(suffix):
            return float(value[:-1]) * scale
    return float(value)


_MEMORY_SUFFIXES = {"Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, "Ti": 1024**4, "Pi": 1024**5, "Ei": 1024**6,
                    "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18, "m": 1e-3}


def parse_bytes(value: str | int | float | None) -> float | None:
    """A memory or storage quantity (``300Mi``, ``1G``, ``1073741824``) in bytes."""
    if value is None or value == "":
        return None
    text = str(value)
    for suffix in sorted(_MEMORY_SUFFIXES, key=len, reverse=True):
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * _MEMORY_SUFFIXES[suffix]
    return float(text)


def pod_limits(pod: Mapping[str, Any] | None) -> tuple[float | None, float | None]:
    """(CPU cores, memory bytes) limits of a pod: the sum over its containers, None if any container has none."""
    if not pod:
        return None, None
    containers = pod.get("spec", {}).get("containers") or []
    cpu: float | None = 0.0
    memory: float | None = 0.0
    for c in containers:
        limits = (c.get("resources") or {}).get("limits") or {}
        c_cpu, c_mem = parse_cpu(limits.get("cpu")), parse_bytes(limits.get("memory"))
        cpu = None if cpu is None or c_cpu is None else cpu + c_cpu
        memory = None if memory is None or c_mem is None else memory + c_mem
    if not containers:
        return None, None
    return cpu, memory


def pod_usage(pod_metrics: Mapping[str, Any]) -> tuple[float | None, float | None]:
    """(CPU cores, working-set bytes) of one PodMetrics item, summed over its containers."""
    containers = pod_metrics.get("containers") or []
    if not containers:
        return None, None
    cpu = mem = 0.0
    for c in containers:
        usage = c.get("usage") or {}
        c_cpu, c_mem = parse_cpu(usage.get("cpu")), parse_bytes(usage.get("memory"))
        if c_cpu is None or c_mem is None:
            return None, None
        cpu += c_cpu
        mem += c_mem
    return cpu, mem


def usage_figures(usage: tuple[float, float] | None, limits: tuple[float | None, float | None]) -> dict[str, Any]:
    """``cpu_percent`` (of the CPU limit, or of one core without one), ``memory_mb``, ``memory_percent``.

    ``usage`` None (no metrics for the pod yet, or the metrics API down) gives nulls, never zeros.
    """
    if usage is None:
        return {"cpu_percent": None, "memory_mb": None, "memory_percent": None}
    cpu, memory = usage
    cpu_limit, memory_limit = limits
    return {
        "cpu_percent": round(cpu / (cpu_limit or 1.0) * 100, 1),
        "memory_mb": round(memory / MIB, 1),
        "memory_percent": round(memory / memory_limit * 100, 1) if memory_limit else None,
    }


NO_USAGE = usage_figures(None, (None, None))


def classify(server_active: bool, server_last_activity: float | None, now: float, inactive_after: float) -> str:
    """``active`` / ``inactive`` / ``offline`` from the SERVER's last activity only (never the user's)."""
    if not server_active:
        return OFFLINE
    if server_last_activity is not None and now - server_last_activity <= inactive_after:
        return ACTIVE
    return INACTIVE


# ================================================================ pure: scores

def decay_rate(half_life_hours: float) -> float:
    """lambda per second."""
    return math.log(2) / (half_life_hours * 3600)


@dataclass
class Score:
    """``A`` (weighted active) and ``W`` (weighted total), both relative to ``reference`` (epoch seconds)."""

    weighted_active: float = 0.0
    weighted_total: float = 0.0
    reference: float | None = None
    sample_count: int = 0

    def add(self, at: float, active: bool, rate: float) -> None:
        if self.reference is not None:
            factor = math.exp(-rate * (at - self.reference)) if at >= self.reference else 1.0
            self.weighted_active *= factor
            self.weighted_total *= factor
        if self.reference is None or at >= self.reference:
            self.reference = at
            weight = 1.0
        else:  # an older sample than the newest (clock step back): weigh it by its age
            weight = math.exp(-rate * (self.reference - at))
        self.weighted_active += weight if active else 0.0
        self.weighted_total += weight
        self.sample_count += 1

    def remove(self, at: float, active: bool, rate: float) -> None:
        if self.reference is None or self.sample_count <= 0:
            return
        weight = math.exp(-rate * (self.reference - at))
        self.sample_count -= 1
        if self.sample_count == 0:
            self.weighted_active = self.weighted_total = 0.0
            return
        self.weighted_total = max(0.0, self.weighted_total - weight)
        if active:
            self.weighted_active = max(0.0, self.weighted_active - weight)

    def ratio(self) -> float | None:
        """Share of weighted samples that were active (0-1), None without samples."""
        if self.sample_count <= 0 or self.weighted_total <= 0:
            return None
        return min(1.0, self.weighted_active / self.weighted_total)


def brute_force_ratio(samples: Iterable[tuple[float, bool]], now: float, rate: float) -> float | None:
    """The definition, for tests: ``sum(w_i a_i) / sum(w_i)`` with ``w_i = exp(-rate * (now - t_i))``."""
    num = den = 0.0
    for at, active in samples:
        w = math.exp(-rate * (now - at))
        den += w
        num += w if active else 0.0
    return None if den == 0 else num / den


def score_percent(ratio: float | None) -> int | None:
    """Upstream's integer score (0-100)."""
    return None if ratio is None else int(100 * ratio)


# ================================================================ database: tables and batched work

metadata = MetaData()
# JupyterHub's tables, declared only as far as we read them (never created by us)
users_table = Table("users", metadata, Column("id", Integer, primary_key=True), Column("name", Unicode(255)))
spawners_table = Table("spawners", metadata, Column("id", Integer, primary_key=True), Column("user_id", Integer),
                       Column("server_id", Integer), Column("name", Unicode(255)),
                       Column("last_activity", DateTime), Column("started", DateTime))
users_info_table = Table("users_info", MetaData(), Column("id", Integer, primary_key=True),
                         Column("username", Unicode(128)), Column("is_authorized", Boolean))

samples_table = Table(
    "activity_samples", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("timestamp", DateTime, nullable=False, index=True),
    Column("last_activity", DateTime, nullable=True),
    Column("active", Boolean, nullable=False, default=False),
    Index("ix_activity_samples_user_time", "user_id", "timestamp"),
)
scores_table = Table(
    "activity_scores", metadata,
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("weighted_active", Float, nullable=False, default=0.0),
    Column("weighted_total", Float, nullable=False, default=0.0),
    Column("reference", Float, nullable=True),  # epoch seconds of the newest sample
    Column("sample_count", Integer, nullable=False, default=0),
)
OUR_TABLES = [samples_table, scores_table]


def naive_utc(seconds: float) -> datetime:
    """Epoch seconds as the naive UTC datetime JupyterHub's tables use."""
    return datetime.fromtimestamp(seconds, UTC).replace(tzinfo=None)


def epoch(value: datetime | None) -> float | None:
    return culler.timestamp(value)


@dataclass(frozen=True)
class SampleRow:
    user_id: int
    active: bool
    last_activity: datetime | None


@dataclass
class TickResult:
    total: int = 0
    active: int = 0
    inactive: int = 0
    offline: int = 0
    pruned: int = 0
    seconds: float = 0.0

    def as_json(self) -> dict[str, Any]:
        return {"success": True, "total": self.total, "active": self.active, "inactive": self.inactive,
                "offline": self.offline}


class ActivityStore:
    """Samples and scores in one SQLAlchemy engine (the hub's). Every method is synchronous and batched:
    call it through :meth:`run` (one dedicated thread) from the event loop."""

    def __init__(self, engine: Engine, settings: ActivitySettings):
        self.engine = engine
        self.settings = settings
        self.rate = decay_rate(settings.half_life_hours)
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="ds-activity-db")
        self.has_users_info = False

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn(*args)`` on the store's thread: one database job at a time, never on the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def close(self) -> None:
        self._executor.shutdown(wait=False)

    # ------------------------------------------------ schema
    def ensure_tables(self) -> None:
        """Create our two tables next to JupyterHub's if missing (idempotent)."""
        metadata.create_all(self.engine, tables=OUR_TABLES, checkfirst=True)
        self.has_users_info = "users_info" in inspect(self.engine).get_table_names()

    # ------------------------------------------------ sampling
    def users_snapshot(self) -> list[tuple[int, str, bool, datetime | None]]:
        """(id, name, server running, server last_activity) of every hub user, one query."""
        j = users_table.outerjoin(spawners_table, (spawners_table.c.user_id == users_table.c.id)
                                  & (spawners_table.c.name == ""))
        q = select(users_table.c.id, users_table.c.name, spawners_table.c.server_id,
                   spawners_table.c.last_activity).select_from(j)
        with self.engine.connect() as conn:
            return [(r.id, r.name, r.server_id is not None, r.last_activity) for r in conn.execute(q)]

    def record(self, rows: list[SampleRow], now: float) -> int:
        """Insert one sample per row, update the scores incrementally, prune old samples; one transaction.

        ``now`` is rounded to the microsecond (what both databases store), so the stored time and the time
        the score uses are the same number. Returns how many samples were pruned.
        """
        at_dt = naive_utc(now)
        at = epoch(at_dt)
        cutoff_dt = at_dt - timedelta(days=self.settings.retention_days)
        with self.engine.begin() as conn:
            if rows:
                conn.execute(insert(samples_table), [
                    {"user_id": r.user_id, "timestamp": at_dt, "last_activity": r.last_activity,
                     "active": bool(r.active)} for r in rows])
            ids = {r.user_id for r in rows}
            pruned = list(conn.execute(select(samples_table.c.user_id, samples_table.c.timestamp,
                                              samples_table.c.active)
                                       .where(samples_table.c.timestamp < cutoff_dt)))
            ids |= {p.user_id for p in pruned}
            scores = self._load_scores(conn, ids)
            existing = set(scores)
            for p in pruned:
                scores.setdefault(p.user_id, Score()).remove(epoch(p.timestamp), bool(p.active), self.rate)
            for r in rows:
                scores.setdefault(r.user_id, Score()).add(at, bool(r.active), self.rate)
            if pruned:
                conn.execute(delete(samples_table).where(samples_table.c.timestamp < cutoff_dt))
            self._save_scores(conn, scores, existing)
        return len(pruned)

    def _load_scores(self, conn: Any, ids: set[int]) -> dict[int, Score]:
        if not ids:
            return {}
        out: dict[int, Score] = {}
        rows = conn.execute(select(scores_table)) if len(ids) > 500 else \
            conn.execute(select(scores_table).where(scores_table.c.user_id.in_(sorted(ids))))
        for r in rows:
            if r.user_id in ids:
                out[r.user_id] = Score(r.weighted_active, r.weighted_total, r.reference, r.sample_count)
        return out

    def _save_scores(self, conn: Any, scores: dict[int, Score], existing: set[int]) -> None:
        new = [{"user_id": uid, "weighted_active": s.weighted_active, "weighted_total": s.weighted_total,
                "reference": s.reference, "sample_count": s.sample_count}
               for uid, s in scores.items() if uid not in existing]
        old = [{"uid": uid, "weighted_active": s.weighted_active, "weighted_total": s.weighted_total,
                "reference": s.reference, "sample_count": s.sample_count}
               for uid, s in scores.items() if uid in existing]
        if new:
            conn.execute(insert(scores_table), new)
        if old:
            conn.execute(update(scores_table).where(scores_table.c.user_id == bindparam("uid")), old)

    # ------------------------------------------------ reading
    def scores(self) -> dict[int, Score]:
        """Every user's score row: one query, no scan of the samples."""
        with self.engine.connect() as conn:
            return {r.user_id: Score(r.weighted_active, r.weighted_total, r.reference, r.sample_count)
                    for r in conn.execute(select(scores_table))}

    def report_rows(self) -> tuple[list[tuple[int, str, bool, datetime | None]], dict[int, Score],
                                   dict[str, bool], int]:
        """Users, scores, NativeAuthenticator's ``is_authorized`` by name, and the sample total: four queries."""
        with self.engine.connect() as conn:
            j = users_table.outerjoin(spawners_table, (spawners_table.c.user_id == users_table.c.id)
                                      & (spawners_table.c.name == ""))
            users = [(r.id, r.name, r.server_id is not None, r.last_activity) for r in conn.execute(
                select(users_table.c.id, users_table.c.name, spawners_table.c.server_id,
                       spawners_table.c.last_activity).select_from(j))]
            scores = {r.user_id: Score(r.weighted_active, r.weighted_total, r.reference, r.sample_count)
                      for r in conn.execute(select(scores_table))}
            authorized: dict[str, bool] = {}
            if self.has_users_info:
                authorized = {r.username: bool(r.is_authorized) for r in conn.execute(
                    select(users_info_table.c.username, users_info_table.c.is_authorized))}
            total = sum(s.sample_count for s in scores.values())
        return users, scores, authorized, total

    def samples_of(self, user_id: int) -> list[tuple[float, bool]]:
        """A user's samples (time, active), oldest first: for tests and the brute-force check."""
        with self.engine.connect() as conn:
            return [(epoch(r.timestamp), bool(r.active)) for r in conn.execute(
                select(samples_table.c.timestamp, samples_table.c.active)
                .where(samples_table.c.user_id == user_id).order_by(samples_table.c.timestamp))]

    def count_samples(self, user_id: int | None = None) -> int:
        q = select(func.count()).select_from(samples_table)
        if user_id is not None:
            q = q.where(samples_table.c.user_id == user_id)
        with self.engine.connect() as conn:
            return int(conn.execute(q).scalar_one())

    def reset(self) -> int:
        """Delete every sample and score; returns how many samples there were."""
        with self.engine.begin() as conn:
            deleted = conn.execute(delete(samples_table)).rowcount or 0
            conn.execute(delete(scores_table))
        return int(deleted)


def sample_rows(users: Iterable[tuple[int, str, bool, datetime | None]], now: float,
                inactive_after: float) -> tuple[list[SampleRow], TickResult]:
    """One sample per user from (id, name, server running, server last_activity); pure."""
    rows, result = [], TickResult()
    for user_id, _name, running, last_activity in users:
        status = classify(running, epoch(last_activity), now, inactive_after)
        rows.append(SampleRow(user_id, status == ACTIVE, last_activity))
        result.total += 1
        setattr(result, status, getattr(result, status) + 1)
    return rows, result


async def tick(store: ActivityStore, now: float | None = None) -> TickResult:
    """One sampler tick: read the users, write the samples and scores (both on the store's thread)."""
    tic = time.perf_counter()
    now = time.time() if now is None else now
    users = await store.run(store.users_snapshot)
    rows, result = sample_rows(users, now, store.settings.inactive_after_minutes * 60)
    result.pruned = await store.run(store.record, rows, now)
    result.seconds = time.perf_counter() - tic
    return result


def log_level_label(score: int | None) -> str:
    """Upstream's tick log words for a score."""
    if not score:
        return "none"
    for floor, word in ((80, "very-high"), (60, "high"), (40, "normal"), (20, "low")):
        if score >= floor:
            return word
    return "very-low"


# ================================================================ metrics: one LIST per window, single flight

@dataclass
class Snapshot:
    """What one metrics LIST gave: usage by pod name, or why there is none."""

    usage: dict[str, tuple[float, float]] = field(default_factory=dict)
    available: bool = False
    error: str | None = None
    fetched_at: float = 0.0


class MetricsCache:
    """One ``metrics.k8s.io`` pod LIST per ``ttl`` seconds, shared by all callers; concurrent callers during a
    refresh await the same request (single flight). Errors are cached for the window too (no retry storm)."""

    def __init__(self, ttl: float, list_pod_metrics: Callable[[], Any], clock: Callable[[], float] = time.monotonic):
        self.ttl = ttl
        self.list_pod_metrics = list_pod_metrics  # async () -> list of PodMetrics dicts; raises when unavailable
        self.clock = clock
        self.snapshot: Snapshot | None = None
        self._inflight: asyncio.Future | None = None
        self.lists = 0  # how many LISTs were made (tests, benchmarks)

    async def get(self) -> Snapshot:
        snap = self.snapshot
        if snap is not None and self.clock() - snap.fetched_at < self.ttl:
            return snap
        if self._inflight is None:
            self._inflight = asyncio.ensure_future(self._refresh())
        future = self._inflight
        try:
            return await asyncio.shield(future)
        finally:
            if future.done() and self._inflight is future:
                self._inflight = None

    async def _refresh(self) -> Snapshot:
        self.lists += 1
        try:
            items = await self.list_pod_metrics()
            usage = {}
            for item in items:
                figures = pod_usage(item)
                if figures[0] is not None:
                    usage[item["metadata"]["name"]] = figures
            snap = Snapshot(usage, True, None, self.clock())
        except Exception as e:  # the API server's error, a timeout, an unknown group: all mean "no metrics now"
            reason = k8s.describe(e)
            log.warning("Activity: metrics.k8s.io unavailable: %s", reason)
            snap = Snapshot({}, False, f"Metrics API unavailable ({reason}): CPU and memory are not shown.",
                            self.clock())
        self.snapshot = snap
        return snap


def metrics_lister(namespace: str, label_selector: str) -> Callable[[], Any]:
    """The real LIST, through KubeSpawner's shared client (``CustomObjectsApi``), as raw JSON."""

    async def list_pod_metrics() -> list[dict]:
        from kubespawner.clients import shared_client

        k8s.core()  # loads the client configuration exactly like KubeSpawner (one cache entry)
        api = shared_client("CustomObjectsApi")
        result = await api.list_namespaced_custom_object(
            METRICS_GROUP, METRICS_VERSION, namespace, "pods", label_selector=label_selector,
            _request_timeout=k8s.REQUEST_TIMEOUT)
        return result.get("items", [])

    return list_pod_metrics


# ================================================================ volumes: claims (+ Prometheus used bytes)

class VolumeCache:
    """Our claims (one LIST) and, optionally, their used bytes (one Prometheus query), cached for ``ttl``."""

    def __init__(self, namespace: str, ttl: float, prometheus_url: str | None,
                 clock: Callable[[], float] = time.monotonic):
        self.namespace = namespace
        self.ttl = ttl
        self.prometheus_url = prometheus_url
        self.clock = clock
        self.by_owner: dict[str, list[dict[str, Any]]] = {}
        self.fetched_at: float | None = None
        self.error: str | None = None
        self._inflight: asyncio.Future | None = None

    async def get(self) -> dict[str, list[dict[str, Any]]]:
        if self.fetched_at is not None and self.clock() - self.fetched_at < self.ttl:
            return self.by_owner
        if self._inflight is None:
            self._inflight = asyncio.ensure_future(self._refresh())
        future = self._inflight
        try:
            return await asyncio.shield(future)
        finally:
            if future.done() and self._inflight is future:
                self._inflight = None

    async def _refresh(self) -> dict[str, list[dict[str, Any]]]:
        from . import storage

        try:
            claims = await k8s.list_claims(self.namespace, f"app.kubernetes.io/managed-by={storage.MANAGED_BY}")
            used = await self._used_bytes() if self.prometheus_url else {}
            self.by_owner = claims_by_owner(claims, used)
            self.error = None
        except Exception as e:
            self.error = k8s.describe(e)
            log.warning("Activity: volume sizes unavailable: %s", self.error)
        self.fetched_at = self.clock()
        return self.by_owner

    async def _used_bytes(self) -> dict[str, float]:
        """``kubelet_volume_stats_used_bytes`` per claim name in our namespace (one query)."""
        import aiohttp

        query = f'max by (persistentvolumeclaim) (kubelet_volume_stats_used_bytes{{namespace="{self.namespace}"}})'
        url = f"{self.prometheus_url.rstrip('/')}/api/v1/query?{urllib.parse.urlencode({'query': query})}"
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session, \
                    session.get(url) as response:
                body = json.loads(await response.text())
        except Exception as e:
            log.warning("Activity: Prometheus query failed: %s", e)
            return {}
        return {r["metric"].get("persistentvolumeclaim"): float(r["value"][1])
                for r in body.get("data", {}).get("result", []) if r.get("metric", {}).get("persistentvolumeclaim")}


def claims_by_owner(claims: list[dict], used: Mapping[str, float]) -> dict[str, list[dict[str, Any]]]:
    """Claims grouped by owner key: volume name, claim name, requested capacity (MB), used MB or None."""
    from . import storage

    out: dict[str, list[dict[str, Any]]] = {}
    for c in claims:
        labels = c["metadata"].get("labels", {})
        owner = labels.get(storage.LABEL_OWNER)
        if not owner or labels.get(storage.LABEL_VOLUME) == storage.SHARED_VOLUME_NAME:
            continue
        capacity = c.get("status", {}).get("capacity", {}).get("storage") or \
            c.get("spec", {}).get("resources", {}).get("requests", {}).get("storage")
        cap = parse_bytes(capacity)
        name = c["metadata"]["name"]
        out.setdefault(owner, []).append({
            "volume": labels.get(storage.LABEL_VOLUME), "claim": name,
            "capacity_mb": None if cap is None else round(cap / MIB, 1),
            "used_mb": round(used[name] / MIB, 1) if name in used else None,
        })
    return out


def volume_columns(volumes: list[dict[str, Any]] | None) -> dict[str, Any]:
    """Upstream's ``volume_size_mb``/``volume_breakdown`` (used MB; null without Prometheus) plus capacities."""
    volumes = volumes or []
    used = [v["used_mb"] for v in volumes if v["used_mb"] is not None]
    caps = [v["capacity_mb"] for v in volumes if v["capacity_mb"] is not None]
    return {
        "volume_size_mb": round(sum(used), 1) if used else None,
        "volume_breakdown": {v["volume"]: v["used_mb"] for v in volumes} if used else None,
        "volume_capacity_mb": round(sum(caps), 1) if caps else None,
        "volumes": volumes,
    }


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


def _own_namespace() -> str:
    """KubeSpawner's default namespace: the hub's own (its ServiceAccount's), else ``default``."""
    import os

    path = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
    if os.path.exists(path):
        with open(path) as f:  # once, when the monitor is created
            return f.read().strip()
    return "default"


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

_monitor: ActivityMonitor | None = None
_task: asyncio.Task | None = None


def monitor() -> ActivityMonitor | None:
    """The hub's monitor, created on first use once the JupyterHub app is initialized (its database exists)."""
    global _monitor
    if _monitor is not None:
        return _monitor
    app = culler.hub_app()
    if app is None:
        return None
    settings = app.tornado_settings.get("jupyterhub_ds")
    if settings is None:
        return None
    spawner_config = app.config.get("KubeSpawner", {})
    namespace = spawner_config.get("namespace") or _own_namespace()
    component = spawner_config.get("component_label", "singleuser-server")
    _monitor = ActivityMonitor(settings.activity, settings.culler, namespace, f"component={component}",
                               app.db.get_bind())
    return _monitor


async def user_usage(username: str) -> dict[str, Any] | None:
    """One user's latest CPU/memory (``cpu_percent``, ``memory_mb``, ``memory_percent``, values null when
    metrics-server has none yet) from the shared metrics cache; None when the user has no running server or
    the monitor is off. No API call of its own beyond the shared one per refresh window."""
    mon = monitor()
    app = culler.hub_app()
    if mon is None or app is None or not mon.settings.enabled:
        return None
    user = next((u for u in list(app.users.values()) if u.name == username), None)  # in memory: no query
    spawner = user.spawners.get("") if user is not None else None
    if spawner is None or not culler.is_running(spawner):
        return None
    return await mon.usage_of(spawner)


def start_background(settings: ActivitySettings) -> None:
    """From ``configure``: run the sampler once the hub's event loop runs (one per process)."""
    global _task, _monitor
    _monitor = None
    if not settings.enabled:
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
