"""Per-user locks shared by spawn (claim ensure), restart and volume reset.

The hub runs as a single process (Z2JH runs one hub replica), so an in-process asyncio lock per
user id is enough to stop a spawn from racing a reset of the same user's claims.
"""

from __future__ import annotations

import asyncio

_locks: dict[int, asyncio.Lock] = {}


def user_lock(user_id: int) -> asyncio.Lock:
    """The lock of one user, keyed by id so a rename keeps it."""
    lock = _locks.get(user_id)
    if lock is None:
        lock = _locks[user_id] = asyncio.Lock()
    return lock


def forget(user_id: int) -> None:
    """Drop a deleted user's lock."""
    _locks.pop(user_id, None)
