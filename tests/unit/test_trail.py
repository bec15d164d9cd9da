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
