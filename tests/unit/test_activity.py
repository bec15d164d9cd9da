"""The activity monitor's logic: usage, status, incremental scores against the definition, the metrics cache
(single flight, TTL, errors as nulls), the volumes cache (the last columns with the error), and the sampler's
database work on SQLite AND PostgreSQL (JupyterHub's own schema, created by JupyterHub; ours next to it)."""

from __future__ import annotations

import asyncio
import math
import random
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from jupyterhub import orm

from ci.dev import postgres
from hub_extensions import activity, activity_store, activity_usage, activity_volumes
from hub_extensions.settings import ActivitySettings, CullerSettings, load_settings

HOUR = 3600.0


def brute_force_ratio(samples: list[tuple[float, bool]], now: float, rate: float) -> float | None:
    """The score's definition, summed in full: ``sum(w_i a_i) / sum(w_i)`` with ``w_i = exp(-rate * (now - t_i))``."""
    num = den = 0.0
    for at, active in samples:
        w = math.exp(-rate * (now - at))
        den += w
        num += w if active else 0.0
    return None if den == 0 else num / den


def log_level_label(score: int | None) -> str:
    """Upstream's words for a score in its tick log, kept here to pin the score scale against them."""
    if not score:
        return "none"
    for floor, word in ((80, "very-high"), (60, "high"), (40, "normal"), (20, "low")):
        if score >= floor:
            return word
    return "very-low"


# ---------------------------------------------------------------- usage, status (quantities: test_k8s.py)

def pod(*limits: dict) -> dict:
    return {"spec": {"containers": [{"name": f"c{i}", "resources": {"limits": lim} if lim else {}}
                                    for i, lim in enumerate(limits)]}}


def test_usage_is_percent_of_the_cpu_limit_or_of_one_core_without_one() -> None:
    usage = (0.25, 300 * activity_usage.MIB)
    assert activity.usage_figures(usage, activity.pod_limits(pod({}))) == {
        "cpu_percent": 25.0, "memory_mb": 300.0, "memory_percent": None}
    limited = activity.usage_figures(usage, activity.pod_limits(pod({"cpu": "500m", "memory": "1Gi"})))
    assert limited == {"cpu_percent": 50.0, "memory_mb": 300.0, "memory_percent": pytest.approx(29.3, abs=0.05)}
    # a sidecar without a limit makes the pod unlimited
    assert activity.pod_limits(pod({"cpu": "2", "memory": "1Gi"}, {})) == (None, None)
    assert activity.pod_limits(pod({"cpu": "2", "memory": "1Gi"}, {"cpu": "1", "memory": "1Gi"})) == (3.0, 2 * 1024**3)


def test_missing_metrics_are_null_never_zero() -> None:
    assert activity.usage_figures(None, (1.0, 1e9)) == {"cpu_percent": None, "memory_mb": None,
                                                         "memory_percent": None}
    assert activity_usage.pod_usage({"metadata": {"name": "p"}, "containers": []}) == (None, None)
    assert activity_usage.pod_usage({"containers": [{"usage": {"cpu": "250m", "memory": "300Mi"}},
                                              {"usage": {"cpu": "10m", "memory": "1Mi"}}]}) == \
        pytest.approx((0.26, 301 * activity_usage.MIB))


def test_status_uses_the_servers_last_activity_only() -> None:
    now = 10_000.0
    assert activity.classify(True, now - 59 * 60, now, 3600) == activity.ACTIVE
    assert activity.classify(True, now - 3600, now, 3600) == activity.ACTIVE
    assert activity.classify(True, now - 3601, now, 3600) == activity.INACTIVE
    assert activity.classify(True, None, now, 3600) == activity.INACTIVE
    # no server: offline whatever happened recently (upstream counted hub page views as activity)
    assert activity.classify(False, now, now, 3600) == activity.OFFLINE


def test_sample_rows_count_each_status() -> None:
    now = 1_800_000_000.0
    recent, old = activity_store.naive_utc(now - 60), activity_store.naive_utc(now - 7200)
    rows, result = activity_store.sample_rows([(1, "a", True, recent), (2, "b", True, old), (3, "c", False, recent),
                                         (4, "d", False, None)], now, 3600)
    assert [r.active for r in rows] == [True, False, False, False]
    assert (result.total, result.active, result.inactive, result.offline) == (4, 1, 1, 2)


# ---------------------------------------------------------------- scores: incremental == definition

@pytest.mark.parametrize("seed", range(20))
def test_incremental_score_equals_brute_force(seed: int) -> None:
    rng = random.Random(seed)
    half_life = rng.choice([1, 24, 72, 168])
    rate = activity_store.decay_rate(half_life)
    retention = rng.choice([0.5, 1, 3]) * 86400
    score = activity_store.Score()
    kept: list[tuple[float, bool]] = []
    now = 1_700_000_000.0
    for _ in range(rng.randint(50, 400)):
        now += rng.choice([60, 600, 600, 3600, rng.uniform(1, 20000)])
        active = rng.random() < rng.random()
        score.add(now, active, rate)
        kept.append((now, active))
        cutoff = now - retention
        for at, was_active in [s for s in kept if s[0] < cutoff]:
            score.remove(at, was_active, rate)
        kept = [s for s in kept if s[0] >= cutoff]
        expected = brute_force_ratio(kept, now, rate)
        assert score.sample_count == len(kept)
        assert score.ratio() == pytest.approx(expected, abs=1e-9)


def test_score_without_samples_is_none_and_percent_is_upstreams_int() -> None:
    assert activity_store.Score().ratio() is None
    assert activity.score_percent(None) is None
    assert activity.score_percent(0.4299) == 42
    assert log_level_label(85) == "very-high" and log_level_label(0) == "none"


# ---------------------------------------------------------------- the metrics cache

async def test_metrics_cache_is_single_flight_and_honours_its_ttl() -> None:
    calls = 0
    clock = [0.0]

    async def lister() -> list[dict]:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)
        return [{"metadata": {"name": "jupyter-a"}, "containers": [{"usage": {"cpu": "250m", "memory": "300Mi"}}]},
                {"metadata": {"name": "jupyter-b"}, "containers": []}]  # not scraped twice yet

    cache = activity.MetricsCache(10, lister, clock=lambda: clock[0])
    snaps = await asyncio.gather(*(cache.get() for _ in range(50)))
    assert calls == 1 and all(s == snaps[0] for s in snaps)
    assert snaps[0].available and snaps[0].usage == {"jupyter-a": (0.25, 300 * activity_usage.MIB)}
    clock[0] = 9.9
    await cache.get()
    assert calls == 1
    clock[0] = 10.0
    await asyncio.gather(cache.get(), cache.get())
    assert calls == 2 and cache.cache.fetches == 2


async def test_metrics_api_down_gives_a_note_and_no_usage() -> None:
    from kubernetes_asyncio.client import ApiException

    async def broken() -> list[dict]:
        raise ApiException(status=503, reason="Service Unavailable")

    cache = activity.MetricsCache(10, broken)
    snap = await cache.get()
    assert not snap.available and snap.usage == {}
    assert "Metrics API unavailable (503 Service Unavailable)" in snap.error
    await cache.get()
    assert cache.cache.fetches == 1  # the error is held for the window too: no retry storm


async def test_metrics_after_a_failure_are_nulls_not_the_last_figures() -> None:
    from kubernetes_asyncio.client import ApiException

    clock = [0.0]
    answers: list = [[{"metadata": {"name": "jupyter-a"}, "containers": [{"usage": {"cpu": "1", "memory": "1Mi"}}]}],
                     ApiException(status=503, reason="Service Unavailable")]

    async def lister() -> list[dict]:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    cache = activity.MetricsCache(10, lister, clock=lambda: clock[0])
    assert (await cache.get()).usage == {"jupyter-a": (1.0, activity_usage.MIB)}
    clock[0] = 10.0
    snap = await cache.get()
    assert not snap.available and snap.usage == {} and snap.fetched_at == 10.0


# ---------------------------------------------------------------- volumes

def test_claims_grouped_by_owner_with_capacity_and_used_bytes() -> None:
    def claim(owner: str, volume: str, size: str) -> dict:
        return {"metadata": {"name": f"claim-{owner}-{volume}", "labels": {"jupyterhub-ds/owner": owner,
                                                                             "jupyterhub-ds/volume": volume}},
                "spec": {"resources": {"requests": {"storage": size}}}, "status": {}}

    grouped = activity_volumes.claims_by_owner([claim("u1-a", "home", "10Gi"), claim("u1-a", "cache", "5Gi")],
                                       {"claim-u1-a-home": 512 * activity_usage.MIB})
    columns = activity.volume_columns(grouped["u1-a"])
    assert columns["volume_capacity_mb"] == 15 * 1024
    assert columns["volume_size_mb"] == 512.0
    assert columns["volume_breakdown"] == {"home": 512.0, "cache": None}
    without = activity.volume_columns(activity_volumes.claims_by_owner([claim("u1-a", "home", "10Gi")], {})["u1-a"])
    assert without["volume_size_mb"] is None and without["volume_capacity_mb"] == 10240


async def test_volumes_keep_the_last_columns_with_the_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from kubernetes_asyncio.client import ApiException

    from hub_extensions import k8s

    clock = [0.0]
    answers: list = [[{"metadata": {"name": "claim-u1-a-home", "labels": {"jupyterhub-ds/owner": "u1-a",
                                                                           "jupyterhub-ds/volume": "home"}},
                       "spec": {"resources": {"requests": {"storage": "1Gi"}}}, "status": {}}],
                     ApiException(status=403, reason="Forbidden")]

    async def list_claims(namespace: str, selector: str) -> list[dict]:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    monkeypatch.setattr(k8s, "list_claims", list_claims)
    cache = activity_volumes.VolumeCache("ns", 300, None, clock=lambda: clock[0])
    first = await cache.get()
    assert first["u1-a"][0]["capacity_mb"] == 1024 and cache.error is None
    clock[0] = 300.0
    assert await cache.get() == first and cache.error == "403 Forbidden"


def test_settings_defaults_and_bounds() -> None:
    s = load_settings({}).activity
    assert (s.resources_update_seconds, s.sample_interval_seconds, s.half_life_hours) == (10, 600, 72)
    with pytest.raises(ValueError, match=r"activity\.sampleIntervalSeconds"):
        load_settings({"activity": {"sampleIntervalSeconds": 1}})
    assert load_settings({"activity": {"volumes": {"prometheusUrl": "http://prometheus:9090"}}}) \
        .activity.volumes.prometheus_url == "http://prometheus:9090"


# ---------------------------------------------------------------- the database work, SQLite and PostgreSQL

@pytest.fixture(scope="module")
def pg() -> Iterator[postgres.TempPostgres]:
    if not postgres.installed():
        pytest.fail("PostgreSQL is not installed: `make deps` installs it (ci/dev/postgres.py install)")
    with postgres.TempPostgres() as server:
        yield server


@pytest.fixture(params=["sqlite", "postgresql"])
def hub_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[orm.Base]:
    """A JupyterHub database made by JupyterHub itself (its tables, alembic stamp), as a session."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'jupyterhub.sqlite'}"
    else:
        url = request.getfixturevalue("pg").create_database(f"hub_{uuid.uuid4().hex[:8]}")
    db = orm.new_session_factory(url)()
    yield db
    db.close()
    db.get_bind().dispose()


def add_users(db: orm.Base, *names: str) -> dict[str, int]:
    for name in names:
        db.add(orm.User(name=name))
    db.commit()
    return {u.name: u.id for u in db.query(orm.User)}


def store_for(db: orm.Base, **settings: object) -> activity.ActivityStore:
    store = activity.ActivityStore(db.get_bind(), ActivitySettings(**settings))
    store.ensure_tables()
    store.ensure_tables()  # idempotent (every hub start)
    return store


def test_db_scores_equal_brute_force_over_the_stored_samples(hub_db: orm.Base) -> None:
    ids = add_users(hub_db, "alice", "bob", "carol")
    store = store_for(hub_db, retention_days=1, half_life_hours=6)
    rng = random.Random(7)
    now = 1_750_000_000.123456
    for _ in range(120):
        now += rng.uniform(300, 1800)
        store.record([activity_store.SampleRow(uid, rng.random() < 0.4, None) for uid in ids.values()], now)
    scores = store.scores()
    reference = activity.epoch(activity_store.naive_utc(now))
    for uid in ids.values():
        samples = store.samples_of(uid)
        assert all(at >= reference - 86400 for at, _ in samples)  # pruned by retention
        assert scores[uid].sample_count == len(samples) < 120
        assert scores[uid].ratio() == pytest.approx(brute_force_ratio(samples, reference, store.rate),
                                                    abs=1e-9)


def test_db_rows_follow_renames_and_go_with_deleted_users(hub_db: orm.Base) -> None:
    ids = add_users(hub_db, "dave", "erin")
    store = store_for(hub_db)
    store.record([activity_store.SampleRow(uid, True, None) for uid in ids.values()], 1_750_000_000.0)
    store.record([activity_store.SampleRow(uid, False, None) for uid in ids.values()], 1_750_000_600.0)
    user = hub_db.query(orm.User).filter_by(name="dave").one()
    user.name = "dave2"  # JupyterHub's rename: the same row, a new name
    hub_db.commit()
    users, scores, _auth, total = store.report_rows()
    assert {name for _, name, _, _ in users} == {"dave2", "erin"} and total == 4
    assert scores[ids["dave"]].sample_count == 2
    hub_db.delete(hub_db.query(orm.User).filter_by(name="erin").one())  # JupyterHub's delete
    hub_db.commit()
    assert store.count_samples(ids["erin"]) == 0 and ids["erin"] not in store.scores()
    assert store.count_samples() == 2
    assert store.reset() == 2
    assert store.count_samples() == 0 and store.scores() == {}


def test_users_snapshot_reads_the_default_servers_state(hub_db: orm.Base) -> None:
    ids = add_users(hub_db, "frank", "gina")
    frank = hub_db.query(orm.User).filter_by(name="frank").one()
    server = orm.Server()
    hub_db.add(server)
    spawner = orm.Spawner(user=frank, name="", server=server, last_activity=datetime(2026, 1, 1, 12, 0))
    hub_db.add(spawner)
    hub_db.add(orm.Spawner(user=frank, name="named", server=orm.Server()))  # named servers are not the default
    hub_db.commit()
    store = store_for(hub_db)
    snapshot = {name: (uid, running, last) for uid, name, running, last in store.users_snapshot()}
    assert snapshot["frank"] == (ids["frank"], True, datetime(2026, 1, 1, 12, 0))
    assert snapshot["gina"] == (ids["gina"], False, None)


async def test_tick_runs_off_the_event_loop_and_counts(hub_db: orm.Base) -> None:
    add_users(hub_db, *[f"user{i}" for i in range(30)])
    store = store_for(hub_db)
    try:
        result = await activity.tick(store)
        assert (result.total, result.offline, result.active) == (30, 30, 0)
        assert await store.run(store.count_samples) == 30
    finally:
        store.close()


async def test_report_shapes_and_null_usage_without_metrics(hub_db: orm.Base) -> None:
    add_users(hub_db, "hana")

    async def broken() -> list[dict]:
        raise TimeoutError()

    mon = activity.ActivityMonitor(ActivitySettings(), CullerSettings(), "ns", "component=singleuser-server",
                                   hub_db.get_bind(), list_pod_metrics=broken)

    async def no_claims() -> dict:
        return {}

    mon.volumes.get = no_claims  # type: ignore[method-assign]
    try:
        await mon.sample()
        report = await mon.report({})
    finally:
        mon.store.close()
    assert set(report) >= {"users", "timestamp", "sampling_status", "inactive_after_seconds"}
    assert report["metrics_available"] is False and "Metrics API unavailable" in report["metrics_note"]
    (row,) = report["users"]
    assert row["username"] == "hana" and row["status"] == "offline" and row["sample_count"] == 1
    assert row["cpu_percent"] is None and row["memory_mb"] is None and row["time_remaining_seconds"] is None
    assert row["activity_score"] == 0
    assert report["sampling_status"] == "1 samples for 1 users"


async def test_the_dashboards_usage_reads_the_shared_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    """The home dashboard's figures for one server: from the monitor's shared cache, no API call of its own."""
    from types import SimpleNamespace

    from hub_extensions import dashboard

    lists = 0

    async def lister() -> list[dict]:
        nonlocal lists
        lists += 1
        return [{"metadata": {"name": "jupyter-ann"}, "containers": [{"usage": {"cpu": "500m", "memory": "1Gi"}}]}]

    spawner = SimpleNamespace(namespace="ns", pod_name="jupyter-ann", pending=None,
                              orm_spawner=SimpleNamespace(server=object()),
                              pod_reflector=SimpleNamespace(pods={"ns/jupyter-ann": pod({"cpu": "2",
                                                                                         "memory": "4Gi"})}))
    stopped = SimpleNamespace(pod_name="jupyter-bo", pending=None, orm_spawner=SimpleNamespace(server=None))
    mon = SimpleNamespace(settings=ActivitySettings(), metrics=activity.MetricsCache(10, lister))
    mon.usage_of = lambda sp: activity.ActivityMonitor.usage_of(mon, sp)
    mon.limits_of, mon._limits = (lambda sp: activity.ActivityMonitor.limits_of(mon, sp)), {}
    monkeypatch.setattr(activity, "_monitor", mon)
    assert await dashboard.usage(spawner) == {"cpu_percent": 25.0, "memory_mb": 1024.0, "memory_percent": 25.0}
    assert await dashboard.usage(stopped) is None
    await dashboard.usage(spawner)
    assert lists == 1


async def test_report_is_reused_while_the_users_look_the_same(hub_db: orm.Base, monkeypatch: pytest.MonkeyPatch
                                                               ) -> None:
    """Polling tabs share one build; a rename, a new user, a start, a sample or a reset shows at once."""
    from types import SimpleNamespace

    ids = add_users(hub_db, "ann", "bo")

    async def no_metrics() -> list[dict]:
        return []

    mon = activity.ActivityMonitor(ActivitySettings(), CullerSettings(), "ns", "component=singleuser-server",
                                   hub_db.get_bind(), list_pod_metrics=no_metrics)

    async def no_claims() -> dict:
        return {}

    mon.volumes.get = no_claims  # type: ignore[method-assign]
    builds = 0
    real_report = mon.report

    async def counted(app_users, now=None):
        nonlocal builds
        builds += 1
        return await real_report(app_users, now)

    monkeypatch.setattr(mon, "report", counted)
    stopped = SimpleNamespace(pod_name="jupyter-ann", pending=None, orm_spawner=SimpleNamespace(server=None,
                                                                                               last_activity=None))
    users = {ids["ann"]: SimpleNamespace(name="ann", spawners={"": stopped})}
    try:
        await mon.sample()
        first = await mon.report_json(users)
        assert await asyncio.gather(*(mon.report_json(users) for _ in range(5))) == [first] * 5
        assert builds == 1
        users[ids["ann"]].name = "anna"  # renamed in the hub (the database row is renamed too)
        hub_db.query(orm.User).filter_by(id=ids["ann"]).update({"name": "anna"})
        hub_db.commit()
        assert '"anna"' in await mon.report_json(users) and builds == 2
        users[ids["bo"]] = SimpleNamespace(name="bo", spawners={})
        await mon.report_json(users)
        stopped.pending = "spawn"
        await mon.report_json(users)
        assert builds == 4
        # deleted and created again within the window: SQLite may hand out the same id, the creation time differs
        users[ids["bo"]] = SimpleNamespace(name="bo", created=datetime(2026, 1, 2), spawners={})
        await mon.report_json(users)
        assert builds == 5
        await mon.sample()
        await mon.report_json(users)
        assert await mon.reset() == 4
        assert '"No samples yet"' in await mon.report_json(users) and builds == 7
        monkeypatch.setattr(activity, "REPORT_REUSE_SECONDS", 0.0)  # and it expires
        await mon.report_json(users)
        assert builds == 8
    finally:
        mon.store.close()
