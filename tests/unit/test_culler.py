"""The in-hub culler: pure decisions, extension arithmetic (with a property test), the spawner state
and one pass over stand-in users and spawners (plain objects with the attributes the pass reads)."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from hub_extensions import culler, locks
from hub_extensions.culler import HOUR, IDLE, MAX_AGE, BadHours, extend, parse_hours, should_cull, time_remaining
from hub_extensions.settings import CullerSettings, load_settings

from .spawner_fixtures import fake_kubeconfig, fake_user, make_spawner  # noqa: F401

T0 = 1_800_000_000.0


# ---------------------------------------------------------------- decisions


def test_idle_server_is_culled_at_last_activity_plus_timeout():
    assert should_cull(T0 + 599, T0, None, T0 - 50, 600, 0) is None
    assert should_cull(T0 + 600, T0, None, T0 - 50, 600, 0) == IDLE
    assert time_remaining(T0 + 100, T0, None, 600) == 500
    assert time_remaining(T0 + 900, T0, None, 600) == 0


def test_an_extension_delays_the_cull_until_it_ends():
    extended_until = T0 + 2 * HOUR
    assert should_cull(T0 + HOUR, T0, extended_until, T0, 600, 0) is None
    assert should_cull(T0 + 2 * HOUR, T0, extended_until, T0, 600, 0) == IDLE
    # activity after the extension ends counts as usual
    assert should_cull(T0 + 2 * HOUR, T0 + 2 * HOUR - 10, extended_until, T0, 600, 0) is None


def test_max_age_culls_whatever_the_activity_and_extension():
    assert should_cull(T0 + 100, T0 + 99, T0 + 10 * HOUR, T0, 600, 100) == MAX_AGE
    assert should_cull(T0 + 99, T0 + 99, None, T0, 600, 100) is None
    assert should_cull(T0 + 10**6, T0 + 10**6, None, T0, 600, 0) is None  # 0 is off


def test_without_activity_the_start_time_counts():
    assert should_cull(T0 + 600, None, None, T0, 600, 0) == IDLE
    assert should_cull(T0 + 600, None, None, None, 600, 0) is None  # nothing to go by: never culled
    assert time_remaining(T0, None, None, 600) == 600


# ---------------------------------------------------------------- extension arithmetic


def test_extension_adds_exactly_the_hours_to_the_deadline():
    grant = extend(T0 + 100, T0, None, 600, 24, 3)
    assert (grant.hours, grant.truncated) == (3, False)
    assert grant.extended_until == T0 + 600 + 3 * HOUR
    assert grant.message(24, 600) == "Added 3 hour(s) to session"


def test_a_request_above_what_is_left_is_truncated_and_says_so():
    # remaining 10 min + 20 h already: the ceiling (now + 10 min + 24 h) leaves 4 whole hours
    now = T0
    grant = extend(now, now, now + 600 + 20 * HOUR, 600, 24, 14)
    assert (grant.hours, grant.truncated) == (4, True)
    assert grant.message(24, 600) == "Added 4 hour(s) to session (requested 14 h, limited to available 4 h)"
    assert grant.extended_until == now + 600 + 24 * HOUR


def test_at_the_ceiling_nothing_is_granted():
    grant = extend(T0, T0, T0 + 600 + 24 * HOUR, 600, 24, 1)
    assert grant.hours == 0 and grant.extended_until == T0 + 600 + 24 * HOUR
    assert grant.message(24, 600).startswith("Session already at maximum (24.2h)")


def test_upstream_balloon_cannot_happen():
    """Upstream: a partial extension plus new activity pushed the remaining time above the ceiling."""
    ext = extend(T0, T0, None, 600, 24, 24).extended_until
    later = T0 + 5 * HOUR
    assert time_remaining(later, later, ext, 600) <= 600 + 24 * HOUR
    assert culler.available_hours(later, later, ext, 600, 24) == 5


@pytest.mark.parametrize("body", [{"hours": -1}, {"hours": 0}, {"hours": 0.5}, {"hours": 1.5}, {"hours": 10**9},
                                  {"hours": 25}, {"hours": "2"}, {"hours": True}, {"hours": None}, [1], "1", 3])
def test_bad_hours_are_refused(body):
    with pytest.raises(BadHours):
        parse_hours(body, 24)


def test_good_hours():
    assert parse_hours({}, 24) == 1  # upstream's default
    assert parse_hours({"hours": 24}, 24) == 24
    assert parse_hours({"hours": 2.0}, 24) == 2  # a JSON number that is whole


def test_property_never_past_the_ceiling_never_less_than_the_message():
    """10,000 random sequences of extend / activity / time steps."""
    for seed in range(10_000):
        rng = random.Random(seed)
        timeout = rng.choice([20, 600, 3600, 5400])
        max_ext = rng.choice([0, 1, 2, 8, 24])
        now = started = last_activity = T0
        extended_until = None
        for _ in range(rng.randint(1, 12)):
            step = rng.random()
            if step < 0.45 and max_ext:
                hours = rng.randint(1, max_ext)
                before = time_remaining(now, last_activity, extended_until, timeout, started)
                available = culler.available_hours(now, last_activity, extended_until, timeout, max_ext, started)
                grant = extend(now, last_activity, extended_until, timeout, max_ext, hours, started)
                extended_until = grant.extended_until
                after = time_remaining(now, last_activity, extended_until, timeout, started)
                assert grant.hours == min(hours, available), seed
                assert grant.truncated == (grant.hours < hours), seed
                # exactly what the message says was added (never less), unless nothing was granted
                assert after - before == grant.hours * HOUR, seed
                if grant.hours:
                    assert f"Added {grant.hours} hour(s)" in grant.message(max_ext, timeout), seed
            elif step < 0.7:
                last_activity = now
            else:
                now += rng.randint(0, 3 * HOUR)
            # never past the ceiling, whatever came before
            remaining = time_remaining(now, last_activity, extended_until, timeout, started)
            assert remaining <= timeout + max_ext * HOUR, seed


# ---------------------------------------------------------------- settings and spawner state


def test_culler_settings_default_off_and_camel_case():
    assert load_settings({}).culler == CullerSettings(enabled=False)
    s = load_settings({"culler": {"enabled": True, "timeoutSeconds": 20, "everySeconds": 2, "maxAgeSeconds": 60,
                                  "maxExtensionHours": 3, "concurrency": 2}}).culler
    assert (s.timeout_seconds, s.every_seconds, s.max_age_seconds, s.max_extension_hours, s.concurrency) == (
        20, 2, 60, 3, 2)


async def test_extension_in_state_survives_restart_and_is_cleared_by_a_stop(fake_kubeconfig):  # noqa: F811
    from traitlets.config import Config

    spawner = make_spawner(Config(), fake_user(user_id=41))
    spawner.ds_extended_until, spawner.ds_extension_hours = T0 + HOUR, 2
    state = spawner.get_state()
    assert state["ds_extension"] == {"until": T0 + HOUR, "hours": 2}

    fresh = make_spawner(Config(), fake_user(user_id=41))  # a hub restart: a new spawner from the database
    fresh.load_state(state)
    assert (fresh.ds_extended_until, fresh.ds_extension_hours) == (T0 + HOUR, 2)

    with locks.restarting(41):  # Restart Server: stop and start are one session
        fresh.clear_state()
    assert fresh.get_state()["ds_extension"] == {"until": T0 + HOUR, "hours": 2}

    fresh.clear_state()  # a plain stop (or start) ends it
    assert "ds_extension" not in fresh.get_state()
    assert fresh.ds_extension_hours == 0


# ---------------------------------------------------------------- one pass over stand-ins


def _naive(t: float | None) -> datetime | None:
    """Epoch seconds as JupyterHub's ORM stores times (naive UTC)."""
    return None if t is None else datetime.fromtimestamp(t, UTC).replace(tzinfo=None)


class StubSpawner:
    def __init__(self, name: str, last_activity: float | None, started: float, pending: str | None = None,
                 extended_until: float | None = None):
        self.orm_spawner = SimpleNamespace(last_activity=_naive(last_activity), started=_naive(started),
                                           server=object())
        self._pending = pending
        self._stop_pending = False
        self._stop_future = None
        self._log_name = name
        self.ds_extended_until = extended_until

    @property
    def pending(self) -> str | None:
        return "stop" if self._stop_pending else self._pending

    @property
    def active(self) -> bool:
        return bool(self.pending or self.orm_spawner.server)


class StubUser:
    def __init__(self, uid: int, spawner: StubSpawner, stops: list, delay: float = 0.0):
        self.id, self.name = uid, f"u{uid}"
        self.spawners = {"": spawner}
        self.stops, self.delay = stops, delay

    async def stop(self, name: str) -> None:
        self.stops.append(("start", self.name))
        await asyncio.sleep(self.delay)
        self.spawners[name].orm_spawner.server = None
        self.stops.append(("end", self.name))


class StubApp:
    def __init__(self, users: list[StubUser]):
        self.users = {u.id: u for u in users}
        self.routes_deleted: list[str] = []
        self.proxy = SimpleNamespace(delete_user=self._delete)
        self.tornado_settings = {"slow_stop_timeout": 10}

    async def _delete(self, user: StubUser, name: str) -> None:
        self.routes_deleted.append(user.name)


SETTINGS = CullerSettings(enabled=True, timeout_seconds=600, every_seconds=1, max_age_seconds=0,
                          max_extension_hours=24, concurrency=2)


async def test_a_pass_culls_only_what_is_due_through_the_proxy_and_user_stop():
    stops: list = []
    now = T0 + 1000
    users = [
        StubUser(1, StubSpawner("idle", T0, T0), stops),
        StubUser(2, StubSpawner("active", now - 10, T0), stops),
        StubUser(3, StubSpawner("extended", T0, T0, extended_until=now + HOUR), stops),
        StubUser(4, StubSpawner("pending", T0, T0, pending="spawn"), stops),
        StubUser(5, StubSpawner("restarting", T0, T0), stops),
    ]
    app = StubApp(users)
    with locks.restarting(5):
        stopped = await culler.Culler(SETTINGS, lambda: app, clock=lambda: now).run_pass(app)
    assert [(c.user.name, c.reason) for c in stopped] == [("u1", IDLE)]
    assert app.routes_deleted == ["u1"]
    assert users[0].spawners[""].pending is None and users[0].spawners[""].orm_spawner.server is None


async def test_a_pass_with_nothing_due_awaits_nothing():
    now = T0 + 10
    app = StubApp([StubUser(i, StubSpawner(f"s{i}", now, T0), []) for i in range(50)])
    coro = culler.Culler(SETTINGS, lambda: app, clock=lambda: now).run_pass(app)
    with pytest.raises(StopIteration):  # finishes on its first step: no await reached the loop
        coro.send(None)


async def test_stops_run_with_bounded_concurrency():
    stops: list = []
    now = T0 + 1000
    app = StubApp([StubUser(i, StubSpawner(f"s{i}", T0, T0), stops, delay=0.05) for i in range(6)])
    stopped = await culler.Culler(SETTINGS, lambda: app, clock=lambda: now).run_pass(app)
    assert len(stopped) == 6
    running = peak = 0
    for kind, _ in stops:
        running += 1 if kind == "start" else -1
        peak = max(peak, running)
    assert peak == 2


async def test_an_extension_landing_before_the_stop_saves_the_server():
    """The pass decides, then re-checks under the user's lock, which an extension holds meanwhile."""
    now = T0 + 1000
    spawner = StubSpawner("racing", T0, T0)
    app = StubApp([StubUser(9, spawner, [])])
    lock = locks.user_lock(9)
    await lock.acquire()
    task = asyncio.ensure_future(culler.Culler(SETTINGS, lambda: app, clock=lambda: now).run_pass(app))
    await asyncio.sleep(0.01)
    spawner.ds_extended_until = now + HOUR  # what extend-session does under the lock
    lock.release()
    assert await task == []
    assert app.routes_deleted == []


# ---------------------------------------------------------------- Kubernetes Events


def test_event_manifest_is_about_the_pod():
    from hub_extensions import kube_events

    event = kube_events.event_manifest("ns", "jupyter-al", "uid-1", "Culled", "x" * 2000,
                                       now=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))
    assert event["involvedObject"] == {"apiVersion": "v1", "kind": "Pod", "name": "jupyter-al", "namespace": "ns",
                                       "uid": "uid-1"}
    assert event["metadata"]["name"].startswith("jupyter-al.") and event["metadata"]["namespace"] == "ns"
    assert (event["reason"], event["type"], event["source"]) == ("Culled", "Normal", {"component": "jupyterhub-ds"})
    assert event["firstTimestamp"] == event["lastTimestamp"] == "2026-01-02T03:04:05Z"
    assert len(event["message"]) == 1024


def test_pod_of_reads_the_reflector_and_skips_spawners_without_a_pod():
    from hub_extensions import kube_events

    reflector = SimpleNamespace(pods={"ns/jupyter-al": {"metadata": {"uid": "u1"}}})
    assert kube_events.pod_of(SimpleNamespace(namespace="ns", pod_name="jupyter-al", pod_reflector=reflector)) == (
        "ns", "jupyter-al", "u1")
    assert kube_events.pod_of(SimpleNamespace(namespace="ns", pod_name="jupyter-bo", pod_reflector=reflector)) == (
        "ns", "jupyter-bo", None)
    assert kube_events.pod_of(SimpleNamespace()) is None


def test_configure_refuses_z2jhs_culler_next_to_ours(capsys):
    from traitlets.config import Config

    from hub_extensions import configure, culler_api

    c = Config()
    c.JupyterHub.services = [{"name": "jupyterhub-idle-culler", "command": ["python3", "-m", "jupyterhub_idle_culler"]}]
    with pytest.raises(SystemExit, match=r"jupyterhub\.cull\.enabled: expected false"):
        configure(c, {"gpu": {"mode": 0}, "culler": {"enabled": True}})
    c = Config()
    configure(c, {"gpu": {"mode": 0}, "culler": {"enabled": True}})  # no config-time loop: no task either
    routes = {r[0] for r in c.JupyterHub.extra_handlers.get_value([])}
    assert {r[0] for r in culler_api.handlers()} <= routes
    assert c.JupyterHub.template_vars.get_value({})["ds_culler_enabled"] is True
