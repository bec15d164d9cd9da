"""The lockout's decisions (back-off, reset after a block and after a success, pairs kept apart), its store in a
real (SQLite) JupyterHub database that a restarted hub reads again, and the sign-up attempts' sliding window."""

from __future__ import annotations

import pytest
from jupyterhub import orm

from hub_extensions import lockout
from hub_extensions.lockout import LoginFailures, Pair, SlidingWindow, after_failure, block_length, remaining
from hub_extensions.settings import LockoutSettings

S = LockoutSettings(failures=3, block_seconds=60, max_block_seconds=300)


def fail(pair: Pair, now: float, times: int = 1) -> tuple[Pair, float]:
    length = 0.0
    for _ in range(times):
        pair, length = after_failure(pair, S, now)
    return pair, length


def test_block_length_doubles_up_to_the_cap():
    assert [block_length(S, n) for n in (1, 2, 3, 4, 5, 100)] == [60, 120, 240, 300, 300, 300]


def test_failures_block_then_the_count_restarts_and_the_next_block_is_longer():
    pair, length = fail(Pair(), 1000, 2)
    assert length == 0 and remaining(pair, S, 1000) == 0
    pair, length = fail(pair, 1000)
    assert length == 60 and remaining(pair, S, 1010) == 50
    # the block ends: the count starts from zero (one failure does not block again) ...
    pair, length = fail(pair, 1061)
    assert length == 0 and pair.failures == 1 and remaining(pair, S, 1061) == 0
    # ... and three more block for twice as long (back-off)
    pair, length = fail(pair, 1062, 2)
    assert length == 120 and remaining(pair, S, 1062) == 120


def test_one_wrong_password_now_and_then_never_locks_for_good():
    """The old lockout never reset its count: one failure every 10 minutes kept a name blocked for ever."""
    pair = Pair()
    blocked_time = 0.0
    now = 0.0
    for _ in range(100):  # 1000 minutes of one failure every 10 minutes
        now += 600
        blocked_time += remaining(pair, S, now)
        pair, _ = after_failure(pair, S, now)
    # quiet longer than max_block_seconds between failures: each one starts from scratch
    assert pair.failures == 1 and blocked_time == 0


def test_a_quiet_pair_is_forgotten_with_its_back_off():
    pair, _ = fail(Pair(), 0, 3)  # blocked until 60
    pair, _ = fail(pair, 100, 3)  # second block: 120 s, until 220
    assert pair.blocks == 2
    pair, length = fail(pair, 220 + 300, 3)  # quiet for max_block_seconds after the block: a fresh start
    assert length == 60 and pair.blocks == 1


def test_lockout_off():
    off = LockoutSettings(failures=0)
    pair = Pair()
    for _ in range(50):
        pair, length = after_failure(pair, off, 0)
        assert length == 0
    assert remaining(pair, off, 0) == 0


# ---------------------------------------------------------------- the store


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def db_url(tmp_path):
    return f"sqlite:///{tmp_path / 'jupyterhub.sqlite'}"


def store(db_url: str, clock: Clock) -> LoginFailures:
    db = orm.new_session_factory(db_url)()
    lockout.ensure_table(db.bind)
    return LoginFailures(db, S, clock)


def test_pairs_are_kept_apart(db_url):
    clock = Clock()
    s = store(db_url, clock)
    for _ in range(3):
        s.failed("admin", "198.51.100.66")  # a stranger
    assert s.blocked_for("admin", "198.51.100.66") == 60
    assert s.blocked_for("admin", "192.0.2.10") == 0  # the owner, elsewhere
    assert s.blocked_for("alice", "198.51.100.66") == 0  # another name from the stranger's address


def test_a_success_forgets_the_pair(db_url):
    clock = Clock()
    s = store(db_url, clock)
    s.failed("bob", "192.0.2.10")
    s.failed("bob", "192.0.2.10")
    s.succeeded("bob", "192.0.2.10")
    s.failed("bob", "192.0.2.10")
    s.failed("bob", "192.0.2.10")
    assert s.blocked_for("bob", "192.0.2.10") == 0  # 2 + 2 failures with a success between: no block


def test_the_block_ends_and_the_count_is_reset(db_url):
    clock = Clock()
    s = store(db_url, clock)
    assert [s.failed("bob", "a") for _ in range(3)] == [0, 0, 60]
    clock.now += 61
    assert s.blocked_for("bob", "a") == 0
    assert [s.failed("bob", "a") for _ in range(3)] == [0, 0, 120]


def test_a_restarted_hub_sees_the_block(db_url):
    clock = Clock()
    s = store(db_url, clock)
    for _ in range(3):
        s.failed("admin", "198.51.100.66")
    s.db.close()
    again = store(db_url, clock)  # a new process: a new engine and session on the same database file
    clock.now += 10
    assert again.blocked_for("admin", "198.51.100.66") == 50


def test_quiet_pairs_are_pruned(db_url):
    clock = Clock()
    s = store(db_url, clock)
    for i in range(20):
        s.failed(f"name{i}", "198.51.100.66")
    clock.now += S.max_block_seconds + lockout.PRUNE_EVERY_SECONDS
    s.failed("last", "198.51.100.66")
    assert [r.username for r in s.db.query(lockout.LoginFailure)] == ["last"]


def test_long_names_are_cut_for_the_key(db_url):
    s = store(db_url, Clock())
    for _ in range(3):
        s.failed("n" * 10_000, "a")
    assert s.blocked_for("n" * 10_000, "a") == 60
    assert len(s.db.query(lockout.LoginFailure).one().username) == lockout.MAX_NAME_LENGTH


# ---------------------------------------------------------------- sign-up attempts


def test_sliding_window_per_key():
    clock = Clock()
    w = SlidingWindow(window=60, clock=clock)
    assert [w.take("a", 3) for _ in range(3)] == [0, 0, 0]
    assert w.take("a", 3) == 60  # refused: not counted
    assert w.take("b", 3) == 0  # another address
    clock.now += 30
    assert w.take("a", 3) == 30
    clock.now += 30
    assert w.take("a", 3) == 0  # the first three aged out


def test_sliding_window_keeps_a_bounded_number_of_keys():
    clock = Clock()
    w = SlidingWindow(window=60, max_keys=100, clock=clock)
    for i in range(1000):
        w.take(f"10.0.{i // 256}.{i % 256}", 5)
    assert len(w._events) == 100
