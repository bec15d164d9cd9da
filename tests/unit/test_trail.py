"""The event trail: bounded, filtered newest first, cleared."""

from __future__ import annotations

import pytest

from hub_extensions import trail


def test_select_filters_newest_first_and_bounds():
    trail.clear()
    for i in range(5):
        trail.record("spawn" if i % 2 else "cull", f"u{i % 2}", message=str(i))
    events = trail.select(trail._events)
    assert [e["message"] for e in events] == ["4", "3", "2", "1", "0"]
    assert [e["message"] for e in trail.select(trail._events, user="u1")] == ["3", "1"]
    assert [e["message"] for e in trail.select(trail._events, kind="cull", limit=2)] == ["4", "2"]
    assert trail.select(trail._events, since="2999-01-01T00:00:00Z") == []
    assert len(trail.select(trail._events, since="2000-01-01T00:00:00")) == 5
    assert trail.clear() == 5 and trail.select(trail._events) == []


@pytest.mark.parametrize("kwargs", [{"kind": "bogus"}, {"limit": 0}, {"limit": trail.SIZE + 1}, {"since": "yesterday"}])
def test_bad_filters(kwargs):
    with pytest.raises(trail.BadFilter):
        trail.select([], **kwargs)


def test_the_table_is_bounded():
    trail.clear()
    for i in range(trail.SIZE + 10):
        trail.record("stop", "u", message=str(i))
    assert len(trail._events) == trail.SIZE
    assert trail.select(trail._events, limit=1)[0]["message"] == str(trail.SIZE + 9)
    trail.clear()


def test_one_call_records_the_trail_and_the_kubernetes_events(monkeypatch):
    """A cull, an extension, a Restart Server and a volume reset reach ``kubectl get events`` through the same
    call that writes the trail; a plain start or stop does not (the kubelet's events tell those)."""
    pod_events, claim_events = [], []
    monkeypatch.setattr(trail.kube_events, "emit", lambda spawner, reason, message: pod_events.append(
        (spawner, reason, message)))
    monkeypatch.setattr(trail.kube_events, "emit_on_claim", lambda ns, claim, reason, message: claim_events.append(
        (ns, claim, reason, message)))
    trail.clear()
    pod = object()
    trail.record("spawn", "al", spawner=pod, restart=False)
    trail.record("stop", "al", spawner=pod)
    assert pod_events == []
    trail.record("cull", "al", "", "idle for 3600 s", spawner=pod, reason="idle")
    trail.record("extension", "al", "", "+2 h (requested 2 h) until 2026-12-07T12:00:00Z", spawner=pod, hours=2)
    trail.record("spawn", "al", "", "started for Restart Server", spawner=pod, restart=True)
    assert [(s, r) for s, r, _ in pod_events] == [(pod, "Culled"), (pod, "SessionExtended"), (pod, "ServerRestarted")]
    assert "(idle: idle for 3600 s)" in pod_events[0][2]
    # after a stop the pod is gone: `kubectl jupyterhub events al` finds these by the name in the message
    assert all("al" in message.replace(":", " ").split() for _, _, message in pod_events), pod_events
    trail.record("volume-reset", "al", "", "reset home (by admin)", claims={"claim-al-home": "home"},
                 namespace="ns", by="admin")
    assert claim_events == [("ns", "claim-al-home", "VolumeReset",
                             "Volume home of al reset by admin: the claim was deleted; the next start creates an "
                             "empty one")]
    assert [e["kind"] for e in trail.select(trail._events)] == [
        "volume-reset", "spawn", "extension", "cull", "stop", "spawn"]
