"""Per-user locks shared by spawn (claim ensure) and volume reset, and the restart marker.

The hub runs as a single process (Z2JH runs one hub replica), so an in-process asyncio lock per
user id is enough to stop a spawn from racing a reset of the same user's claims. A restart cannot hold
that lock (its own spawn takes it), so it marks the user as restarting and a reset refuses meanwhile.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

_locks: dict[int, asyncio.Lock] = {}
_restarting: set[int] = set()


def user_lock(user_id: int) -> asyncio.Lock:
    """The lock of one user, keyed by id so a rename keeps it."""
    lock = _locks.get(user_id)
    if lock is None:
        lock = _locks[user_id] = asyncio.Lock()
    return lock


def forget(user_id: int) -> None:
    """Drop a deleted user's lock."""
    _locks.pop(user_id, None)


@contextmanager
def restarting(user_id: int) -> Iterator[None]:
    """Mark the user's server as restarting (stop, then start) for the duration of the block."""
    _restarting.add(user_id)
    try:
        yield
    finally:
        _restarting.discard(user_id)


def is_restarting(user_id: int) -> bool:
    return user_id in _restarting
