"""Activity monitor, part two: activity samples and scores (:class:`ActivityStore`).

Every ``sampleIntervalSeconds`` the hub writes one row per user into ``activity_samples`` and updates
``activity_scores`` incrementally, so reading the scores is one row per user. Both tables live in the hub's own
database (JupyterHub's engine, SQLite or PostgreSQL), keyed by ``users.id`` with ``ON DELETE CASCADE``: a rename
changes nothing here (the id stays), and deleting a user deletes their rows in the same transaction as the user.
Database work runs on one dedicated thread, in one transaction per tick, never on the event loop.

The score of a user is ``100 * sum(w_i * active_i) / sum(w_i)`` over the samples in the retention window,
with ``w_i = exp(-ln 2 * age_i / halfLife)``. The ratio does not depend on the time the ages are measured
from, so the table keeps ``A = sum(w_i * active_i)`` and ``W = sum(w_i)`` relative to the newest sample's time:
a new sample multiplies both by ``exp(-lambda * dt)`` and adds ``(active, 1)``; a pruned sample subtracts its
weight. ``active`` uses the server's own last activity only (upstream fell back to the user's, which moves
on every hub page view).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
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

from . import culler
from .settings import ActivitySettings

ACTIVE, INACTIVE, OFFLINE = "active", "inactive", "offline"


# ================================================================ pure: status

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
