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
