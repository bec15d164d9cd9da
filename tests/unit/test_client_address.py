"""The client address behind the hub's proxies: X-Forwarded-For counted from the right, X-Real-Ip never read."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from tornado.httputil import HTTPHeaders, HTTPServerRequest

from hub_extensions.client_address import address_key, client_address, request_address


@pytest.mark.parametrize(("text", "key"), [
    ("10.1.2.3", "10.1.2.3"),
    (" 10.1.2.3 ", "10.1.2.3"),
    ("10.1.2.3:5555", "10.1.2.3"),
    ("::ffff:10.1.2.3", "10.1.2.3"),  # what a Node proxy (CHP) writes for an IPv4 client on a dual-stack socket
    ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),  # one IPv6 host usually holds its whole /64
    ("[2001:db8:1:2::9]:443", "2001:db8:1:2::/64"),
    ("fe80::1%eth0", "fe80::/64"),
    ("unknown", "unknown"),
    ("x" * 500, "x" * 64),
    ("", "unknown"),
])
def test_address_key(text, key):
    assert address_key(text) == key


def test_no_header_is_the_peer():
    assert client_address("127.0.0.1", [], 1) == "127.0.0.1"


def test_one_hop_takes_what_the_proxy_appended_and_ignores_what_the_client_sent():
    # the client sent "X-Forwarded-For: 6.6.6.6"; CHP appended the address it saw
    assert client_address("10.0.0.5", ["6.6.6.6, 203.0.113.7"], 1) == "203.0.113.7"
    assert client_address("10.0.0.5", ["6.6.6.6", "203.0.113.7"], 1) == "203.0.113.7"  # two header lines
    assert client_address("10.0.0.5", ["203.0.113.7"], 1) == "203.0.113.7"


def test_two_hops_behind_an_ingress():
    # client -> ingress (appends the client) -> CHP (appends the ingress) -> hub
    assert client_address("10.0.0.5", ["203.0.113.7, 10.0.0.9"], 2) == "203.0.113.7"
    # a client's own entries are further left and ignored
    assert client_address("10.0.0.5", ["6.6.6.6, 7.7.7.7, 203.0.113.7, 10.0.0.9"], 2) == "203.0.113.7"
    # fewer entries than hops (a request that skipped the ingress): the leftmost, which a proxy wrote
    assert client_address("10.0.0.5", ["10.0.0.9"], 2) == "10.0.0.9"


def handler(peer: tuple | None, headers: dict[str, str]) -> SimpleNamespace:
    connection = SimpleNamespace(context=SimpleNamespace(address=peer, remote_ip="8.8.8.8"))
    request = HTTPServerRequest("POST", "/hub/login", headers=HTTPHeaders(headers), connection=connection)
    request.remote_ip = headers.get("X-Real-Ip", "8.8.8.8")  # what Tornado's xheaders would believe
    return SimpleNamespace(request=request)


def test_request_reads_the_raw_peer_and_header_never_x_real_ip():
    h = handler(("127.0.0.1", 40000), {"X-Real-Ip": "6.6.6.6", "X-Forwarded-For": "7.7.7.7, 192.0.2.1"})
    assert request_address(h, 1) == "192.0.2.1"
    h = handler(("192.0.2.44", 40000), {"X-Real-Ip": "6.6.6.6"})
    assert request_address(h, 1) == "192.0.2.44"
    assert request_address(handler(None, {}), 1) == "unix"  # a Unix socket has no peer address


# ---------------------------------------------------------------- only the site's proxy may speak for a client

def test_a_peer_that_is_not_the_proxy_is_the_address_whatever_it_forwards():
    # a user's server reaches hub:8081 directly (Z2JH's network policy lets it) and writes its own header:
    # with one hop the forged entry would be "the client", a fresh address per request
    proxies = frozenset({"10.0.0.5"})
    assert client_address("10.0.3.17", ["198.51.100.1"], 1, proxies) == "10.0.3.17"
    assert client_address("10.0.3.17", ["6.6.6.6, 198.51.100.1"], 2, proxies) == "10.0.3.17"
    assert client_address("10.0.0.5", ["6.6.6.6, 203.0.113.7"], 1, proxies) == "203.0.113.7"  # the proxy: read
    assert client_address("::ffff:10.0.0.5", ["203.0.113.7"], 1, proxies) == "203.0.113.7"
    assert client_address("10.0.0.5", [], 1, proxies) == "10.0.0.5"


def test_an_ipv6_neighbour_of_the_proxy_is_not_the_proxy():
    # pods on one node often share a /64: trust is for the proxy's exact address, not its key
    proxies = frozenset({"fd00:10:244:1::5"})
    assert client_address("fd00:10:244:1::9", ["198.51.100.1"], 1, proxies) == "fd00:10:244:1::/64"
    assert client_address("fd00:10:244:1::5", ["198.51.100.1"], 1, proxies) == "198.51.100.1"


def test_no_proxy_known_yet_reads_no_header():
    assert client_address("10.0.0.5", ["198.51.100.1"], 1, frozenset()) == "10.0.0.5"


def test_request_reads_the_header_only_from_a_known_proxy(monkeypatch):
    from hub_extensions import client_address as module

    monkeypatch.setattr(module.PROXIES, "addresses", frozenset({"10.0.0.5"}))
    assert request_address(handler(("10.0.3.17", 40000), {"X-Forwarded-For": "198.51.100.1"}), 1) == "10.0.3.17"
    assert request_address(handler(("10.0.0.5", 40000), {"X-Forwarded-For": "198.51.100.1"}), 1) == "198.51.100.1"


def proxy_pod(*ips: str, phase: str = "Running") -> dict:
    return {"status": {"phase": phase, "podIP": ips[0] if ips else None, "podIPs": [{"ip": ip} for ip in ips]}}


def test_proxy_peers_from_the_proxy_pods_and_kept_over_a_failed_look_up():
    import asyncio

    from hub_extensions.client_address import ProxyPeers

    answers: list = [[proxy_pod("10.0.0.5", "fd00::5"), proxy_pod(), proxy_pod("10.0.0.6", phase="Failed")],
                     RuntimeError("API down")]  # a failed pod's address may be a user's server's by now

    async def lister() -> list[dict]:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    peers = ProxyPeers()
    assert peers.addresses is None  # outside a hub: not restricted
    asyncio.run(peers.refresh(lister))
    assert peers.addresses == frozenset({"10.0.0.5", "fd00::5"})
    asyncio.run(peers.refresh(lister))  # the API failed: the last known proxies stay
    assert peers.addresses == frozenset({"10.0.0.5", "fd00::5"})
    fresh = ProxyPeers()
    fresh.restrict()  # in a hub, before the first look-up: no header is read
    answers.append(RuntimeError("API down"))
    asyncio.run(fresh.refresh(lister))
    assert fresh.addresses == frozenset()


def test_a_peer_inside_the_hub_pod_may_forward():
    # the hub pod's own containers and kubectl port-forward connect from a loopback address
    proxies = frozenset({"10.0.0.5"})
    assert client_address("127.0.0.1", ["198.51.100.1"], 1, proxies) == "198.51.100.1"
    assert client_address("::1", ["198.51.100.1"], 1, proxies) == "198.51.100.1"
    assert client_address("unix", ["198.51.100.1"], 1, proxies) == "198.51.100.1"
