"""The access layer's shared pieces: quantities in every form, raw-JSON LISTs, the reflectors, and the one cache
policy (single flight, every refresh held for the TTL, a failure keeping the last good value)."""

from __future__ import annotations

import asyncio
import json
import logging
from decimal import Decimal
from types import SimpleNamespace

import pytest
from kubernetes_asyncio.client import ApiException

from hub_extensions import k8s

# ---------------------------------------------------------------- quantities

MI = 1024**2


@pytest.mark.parametrize(("text", "number"), [
    # plain numbers
    ("8", 8), ("1.5", Decimal("1.5")), (".5", Decimal("0.5")), ("5.", 5), ("+2", 2), ("-1", -1), (" 3 ", 3),
    (8, 8), (1.5, Decimal("1.5")), (Decimal("2.5"), Decimal("2.5")),
    # n, u, m
    ("250m", Decimal("0.25")), ("1500000n", Decimal("0.0015")), ("123456789n", Decimal("0.123456789")),
    ("20u", Decimal("0.00002")), ("100m", Decimal("0.1")),
    # decimal suffixes
    ("1k", 1000), ("1K", 1000), ("1G", 10**9), ("2M", 2 * 10**6), ("1T", 10**12), ("1P", 10**15), ("1E", 10**18),
    # binary suffixes
    ("512Ki", 512 * 1024), ("300Mi", 300 * MI), ("1.5Gi", 3 * 2**29), ("2Ti", 2 * 2**40), ("1Pi", 2**50),
    ("1Ei", 2**60),
    # exponents
    ("2e3", 2000), ("1E3", 1000), ("1.5e-3", Decimal("0.0015")), ("12e+2", 1200), (1e20, 10**20),
])
def test_quantity_reads_every_form(text, number) -> None:
    assert k8s.quantity(text) == number


@pytest.mark.parametrize("text", [None, "", "  ", "bogus", "1e", "Mi", "1Mib", "1.2.3", "1 Gi", "nan", "Infinity",
                                  "1_000", "1e9999", True, {}])
def test_quantity_is_none_when_missing_or_unreadable(text) -> None:
    assert k8s.quantity(text) is None


def test_quantity_float_for_json_figures() -> None:
    assert k8s.quantity_float("300Mi") == 300.0 * MI and isinstance(k8s.quantity_float("1"), float)
    assert k8s.quantity_float("250m") == pytest.approx(0.25)
    assert k8s.quantity_float(None) is None and k8s.quantity_float("bogus") is None


# ---------------------------------------------------------------- raw-JSON LISTs

class RawResponse:
    """What a list call with ``_preload_content=False`` returns: the aiohttp response, body unread."""

    def __init__(self, status: int, body: dict):
        self.status, self._body = status, json.dumps(body).encode()
        self.reason = "Forbidden" if status == 403 else "OK"
        self.headers = {"Content-Type": "application/json"}

    async def read(self) -> bytes:
        return self._body


class FakeLister:
    def __init__(self, *responses: RawResponse):
        self.responses, self.calls = list(responses), []

    async def __call__(self, *args, **kwargs):
        self.calls.append((args, kwargs))
        return self.responses.pop(0)


async def test_list_json_reads_the_body_without_models_and_bounds_the_call() -> None:
    call = FakeLister(RawResponse(200, {"kind": "PodList", "items": [{"metadata": {"name": "a"}}]}))
    page = await k8s.list_json(call, "ns", label_selector="component=singleuser-server")
    assert page["items"] == [{"metadata": {"name": "a"}}]
    assert call.calls == [(("ns",), {"label_selector": "component=singleuser-server", "_preload_content": False,
                                     "_request_timeout": k8s.REQUEST_TIMEOUT})]


async def test_list_json_raises_the_api_servers_refusal() -> None:
    call = FakeLister(RawResponse(403, {"kind": "Status", "message": "pods is forbidden"}))
    with pytest.raises(ApiException) as info:
        await k8s.list_json(call, _request_timeout=3)
    assert info.value.status == 403 and "forbidden" in info.value.body
    assert k8s.describe(info.value) == "403 Forbidden"
    assert call.calls[0][1]["_request_timeout"] == 3


async def test_list_pages_follows_continue_one_page_at_a_time() -> None:
    call = FakeLister(RawResponse(200, {"metadata": {"continue": "t1"}, "items": [1, 2]}),
                      RawResponse(200, {"metadata": {"continue": ""}, "items": [3]}))
    pages = [items async for items in k8s.list_pages(call, 2, label_selector="a=b")]
    assert pages == [[1, 2], [3]]
    assert [kwargs for _, kwargs in call.calls] == [
        {"limit": 2, "label_selector": "a=b", "_preload_content": False, "_request_timeout": k8s.REQUEST_TIMEOUT},
        {"limit": 2, "_continue": "t1", "label_selector": "a=b", "_preload_content": False,
         "_request_timeout": k8s.REQUEST_TIMEOUT}]


# ---------------------------------------------------------------- reflectors

def test_reflected_pods_reads_the_loaded_reflector_of_the_namespace() -> None:
    class Reflector:
        def __init__(self, pods, loaded=True):
            self.pods = pods
            self.first_load_future = SimpleNamespace(done=lambda: loaded)

    spawner_class = SimpleNamespace(reflectors={("pods", "ns"): Reflector({"ns/a": {"x": 1}}),
                                                ("events", "ns"): Reflector({})})
    assert k8s.reflected_pods(spawner_class, "ns") == [{"x": 1}]
    assert k8s.reflected_pods(spawner_class, "other") is None
    spawner_class.reflectors = {("pods", None): Reflector({"other/b": {"y": 2}})}  # all namespaces
    assert k8s.reflected_pods(spawner_class, "ns") == [{"y": 2}]
    spawner_class.reflectors = {("pods", "ns"): Reflector({}, loaded=False)}
    assert k8s.reflected_pods(spawner_class, "ns") is None
    assert k8s.reflected_pods(SimpleNamespace(), "ns") is None


# ---------------------------------------------------------------- the cache policy

class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def source(*outcomes):
    """A fetch giving ``outcomes`` in turn (an exception is raised), counting its calls."""
    queue = list(outcomes)
    calls = []

    async def fetch():
        calls.append(1)
        await asyncio.sleep(0.01)
        outcome = queue.pop(0)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    return fetch, calls


async def test_concurrent_callers_share_one_fetch_and_the_ttl_holds() -> None:
    clock = Clock()
    fetch, calls = source("one", "two")
    cache = k8s.TtlCache(fetch, 10, "test", clock=clock)
    entries = await asyncio.gather(*(cache.get() for _ in range(20)))
    assert len(calls) == 1 and cache.fetches == 1 and all(e is entries[0] for e in entries)
    assert entries[0] == k8s.Cached("one", None, None, 100.0, 100.0)
    clock.now += 9.9
    assert (await cache.get()).value == "one" and len(calls) == 1
    clock.now += 0.1
    assert (await cache.get()).value == "two" and len(calls) == 2


async def test_a_failure_keeps_the_last_value_and_holds_for_the_ttl(caplog) -> None:
    clock = Clock()
    fetch, calls = source("good", ApiException(status=503, reason="Service Unavailable"), "better")
    cache = k8s.TtlCache(fetch, 10, "Listing things", logger=logging.getLogger("test.cache"), clock=clock)
    await cache.get()
    clock.now += 10
    with caplog.at_level(logging.WARNING, logger="test.cache"):
        failed = await cache.get()
    assert failed.value == "good" and failed.fetched_at == 100.0 and failed.checked_at == 110.0
    assert failed.error == "503 Service Unavailable" and isinstance(failed.exception, ApiException)
    assert "Listing things failed (503 Service Unavailable); keeping the last value, no new try for 10 s" in caplog.text
    assert "Traceback" not in caplog.text  # an API error is one line
    clock.now += 9
    assert await cache.get() is failed and len(calls) == 2  # no retry per request: the failure holds too
    clock.now += 1
    recovered = await cache.get()
    assert (recovered.value, recovered.error, recovered.exception) == ("better", None, None)


async def test_before_any_value_result_raises_the_failure_and_a_bug_is_logged_with_its_traceback(caplog) -> None:
    fetch, _ = source(KeyError("items"))
    cache = k8s.TtlCache(fetch, 10, "Broken")
    with caplog.at_level(logging.WARNING, logger="JupyterHub.ds.k8s"):
        entry = await cache.get()
    assert entry.value is None and entry.fetched_at is None and entry.error == "KeyError: 'items'"
    assert "Broken failed (KeyError: 'items'); no value yet" in caplog.text and "Traceback" in caplog.text
    depths = []
    for _ in range(3):
        with pytest.raises(KeyError) as info:
            entry.result()
        depths.append(len(list(_frames(info.value.__traceback__))))
    assert depths[0] == depths[1] == depths[2]  # raised afresh each time: the traceback does not grow
    assert k8s.Cached("v", "old failure", None, 1.0, 2.0).result() == "v"


def _frames(tb):
    while tb is not None:
        yield tb
        tb = tb.tb_next


async def test_a_caller_going_away_cancels_nothing() -> None:
    release = asyncio.Event()
    calls = []

    async def fetch():
        calls.append(1)
        await release.wait()
        return "value"

    cache = k8s.TtlCache(fetch, 10, "test")
    impatient = asyncio.ensure_future(cache.get())
    patient = asyncio.ensure_future(cache.get())
    await asyncio.sleep(0)
    impatient.cancel()
    release.set()
    assert (await patient).value == "value" and len(calls) == 1
    assert impatient.cancelled()


async def test_refresh_starts_one_even_when_fresh_but_never_two_at_once() -> None:
    fetch, calls = source("a", "b")
    cache = k8s.TtlCache(fetch, 60, "test")
    await cache.get()
    assert cache.fresh()
    first, second = cache.refresh(), cache.refresh()
    assert first is second
    assert (await first).value == "b" and len(calls) == 2
