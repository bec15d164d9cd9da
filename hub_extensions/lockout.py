"""Limits per client address: failed logins (the lockout) and sign-up attempts (the rate limit).

Failed logins are counted per (user name, client address) in the hub database (table ``ds_login_failures``),
so a stranger's wrong passwords block only the stranger's own address, and a hub restart keeps the count and
any block. ``lockout.failures`` failures in a row start a block of ``block_seconds``; when it ends the count
starts again from zero, and each further block of the same pair doubles (back-off, at most
``max_block_seconds``). A successful login forgets the pair; a pair quiet for ``max_block_seconds`` after its
last failure or block is forgotten too (which also keeps the table small). Names are counted whether or not
they exist, so a block tells a stranger nothing about which accounts there are.

Sign-up attempts are counted in memory (a sliding minute per address): losing them at a restart only gives a
flooder one more minute, and keeping them off the database keeps a flood off it too.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from jupyterhub import orm
from sqlalchemy import Column, Float, Integer, Unicode, inspect

from .settings import LockoutSettings

MAX_NAME_LENGTH = 255  # JupyterHub's user names are at most this long; a longer login name is cut for the key
PRUNE_EVERY_SECONDS = 60.0


class LoginFailure(orm.Base):
    """Failed logins of one (user name, client address) pair."""

    __tablename__ = "ds_login_failures"
    username = Column(Unicode(MAX_NAME_LENGTH), primary_key=True)
    address = Column(Unicode(64), primary_key=True)
    failures = Column(Integer, nullable=False, default=0)
    blocks = Column(Integer, nullable=False, default=0)
    blocked_until = Column(Float, nullable=False, default=0.0)  # epoch seconds; 0: never blocked
    last_seen = Column(Float, nullable=False, default=0.0, index=True)  # the last failure or block end


def ensure_table(bind: Any) -> None:
    """Create ``ds_login_failures`` next to JupyterHub's tables when it is missing."""
    if LoginFailure.__tablename__ not in inspect(bind).get_table_names():
        LoginFailure.__table__.create(bind)


# ---------------------------------------------------------------- decisions (pure)

@dataclass(frozen=True)
class Pair:
    """What is known about one (name, address) pair."""

    failures: int = 0
    blocks: int = 0
    blocked_until: float = 0.0
    last_seen: float = 0.0


def block_length(settings: LockoutSettings, blocks: int) -> float:
    """Seconds of the ``blocks``-th block: ``block_seconds`` doubled per earlier block, capped."""
    return float(min(settings.block_seconds * 2 ** min(max(blocks - 1, 0), 32), settings.max_block_seconds))


def current(pair: Pair, settings: LockoutSettings, now: float) -> Pair:
    """The pair as it stands at ``now``: a block that ended resets the count (its back-off stays); a pair quiet
    for ``max_block_seconds`` since its last failure or block end is forgotten."""
    if pair.blocked_until and now >= pair.blocked_until:
        pair = Pair(0, pair.blocks, 0.0, pair.blocked_until)
    if not pair.blocked_until and now - pair.last_seen >= settings.max_block_seconds:
        return Pair()
    return pair


def remaining(pair: Pair, settings: LockoutSettings, now: float) -> float:
    """Seconds the pair is still blocked (0: it may try)."""
    if not settings.failures:
        return 0.0
    return max(current(pair, settings, now).blocked_until - now, 0.0)


def after_failure(pair: Pair, settings: LockoutSettings, now: float) -> tuple[Pair, float]:
    """The pair after one more failure, and the length of the block it starts (0: none)."""
    pair = current(pair, settings, now)
    failures = pair.failures + 1
    if settings.failures and failures >= settings.failures and not pair.blocked_until:
        length = block_length(settings, pair.blocks + 1)
        return Pair(failures, pair.blocks + 1, now + length, now), length
    return replace(pair, failures=failures, last_seen=now), 0.0


# ---------------------------------------------------------------- the store (hub database)

class LoginFailures:
    """Failed logins in the hub database (one short query each; JupyterHub's own ORM calls are the same kind)."""

    def __init__(self, db: Any, settings: LockoutSettings, clock: Callable[[], float] = time.time):
        self.db = db
        self.settings = settings
        self.clock = clock
        self._pruned = 0.0

    @staticmethod
    def key(username: str, address: str) -> tuple[str, str]:
        return username[:MAX_NAME_LENGTH], address[:64]

    def _row(self, username: str, address: str) -> LoginFailure | None:
        return self.db.get(LoginFailure, self.key(username, address))

    def blocked_for(self, username: str, address: str) -> float:
        """Seconds this pair is still blocked (0: it may try)."""
        row = self._row(username, address)
        if row is None:
            return 0.0
        return remaining(Pair(row.failures, row.blocks, row.blocked_until, row.last_seen), self.settings,
                         self.clock())

    def failed(self, username: str, address: str) -> float:
        """Count a failure; the length of the block it starts (0: none)."""
        if not self.settings.failures:
            return 0.0
        now = self.clock()
        name, addr = self.key(username, address)
        row = self._row(name, addr)
        if row is None:
            row = LoginFailure(username=name, address=addr, failures=0, blocks=0, blocked_until=0.0, last_seen=now)
            self.db.add(row)
        pair, length = after_failure(Pair(row.failures, row.blocks, row.blocked_until, row.last_seen),
                                     self.settings, now)
        row.failures, row.blocks, row.blocked_until, row.last_seen = (pair.failures, pair.blocks,
                                                                      pair.blocked_until, pair.last_seen)
        self._prune(now)
        self.db.commit()
        return length

    def succeeded(self, username: str, address: str) -> None:
        """A successful login forgets the pair (count and back-off)."""
        row = self._row(username, address)
        if row is not None:
            self.db.delete(row)
            self.db.commit()

    def _prune(self, now: float) -> None:
        """Forget pairs quiet for ``max_block_seconds`` and not blocked (at most once a minute)."""
        if now - self._pruned < PRUNE_EVERY_SECONDS:
            return
        self._pruned = now
        cutoff = now - self.settings.max_block_seconds
        (self.db.query(LoginFailure)
         .filter(LoginFailure.last_seen < cutoff, LoginFailure.blocked_until < now)
         .delete(synchronize_session=False))


# ---------------------------------------------------------------- sign-up attempts (in memory)

class SlidingWindow:
    """At most ``limit`` events per ``window`` seconds per key. At most ``max_keys`` keys are kept: past that
    the least recently seen go (the pending sign-ups cap still bounds what a flood from many addresses gets)."""

    def __init__(self, window: float = 60.0, max_keys: int = 100_000,
                 clock: Callable[[], float] = time.monotonic):
        self.window = window
        self.max_keys = max_keys
        self.clock = clock
        self._events: OrderedDict[str, deque[float]] = OrderedDict()

    def take(self, key: str, limit: int) -> float:
        """Count one event for ``key`` and return 0, or return the seconds until one is allowed (not counted)."""
        now = self.clock()
        events = self._events.pop(key, None) or deque()
        while events and events[0] <= now - self.window:
            events.popleft()
        self._events[key] = events  # most recently seen last
        if len(events) >= limit:
            return events[0] + self.window - now
        events.append(now)
        while len(self._events) > self.max_keys:
            self._events.popitem(last=False)
        return 0.0
