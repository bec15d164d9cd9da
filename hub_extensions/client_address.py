"""The address a request came from, for per-client limits (sign-up rate, login lockout).

JupyterHub runs Tornado with ``xheaders``, so ``request.remote_ip`` is whatever ``X-Real-Ip`` (or the leftmost
``X-Forwarded-For`` entry) says, and a client can send those itself: a stranger would get a fresh "address"
per request. Here the address is read from the raw TCP peer and ``X-Forwarded-For`` counted from the right:
each proxy the site runs appends the address it received the request from, so with ``hops`` proxies in front
of the hub the client is the ``hops``-th entry from the right; anything further left was written by the client.
``X-Real-Ip`` is never read. IPv6 clients are keyed by their /64 (one host usually holds a whole /64).
"""

from __future__ import annotations

import ipaddress
from typing import Any

MAX_KEY_LENGTH = 64  # a key that is not an address (a misconfigured proxy) is cut to this


def address_key(text: str) -> str:
    """A stable key for one client: an IPv4 address, an IPv6 /64 (``2001:db8::/64``), else the text, cut short."""
    text = text.strip()
    if text.startswith("[") and "]" in text:  # "[::1]:1234"
        text = text[1:text.index("]")]
    elif text.count(":") == 1:  # "1.2.3.4:1234"
        text = text.split(":", 1)[0]
    try:
        ip = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return text[:MAX_KEY_LENGTH].lower() or "unknown"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def client_address(peer: str, forwarded_for: list[str], hops: int) -> str:
    """The client's address key from the TCP ``peer``, the ``X-Forwarded-For`` header values (in order) and the
    number of proxies the site runs in front of the hub (pure).

    No header: the peer itself (the hub reached directly). Fewer entries than ``hops``: the leftmost, which a
    proxy of the site wrote (a client's own entries only add to the count).
    """
    entries = [e.strip() for value in forwarded_for for e in value.split(",") if e.strip()]
    if not entries:
        return address_key(peer)
    return address_key(entries[-hops] if len(entries) >= hops else entries[0])


def request_address(handler: Any, hops: int) -> str:
    """:func:`client_address` of a Tornado request handler's request (raw peer, raw header)."""
    request = handler.request
    address = getattr(request.connection.context, "address", None) if request.connection is not None else None
    peer = str(address[0]) if isinstance(address, tuple) and address else "unix"
    return client_address(peer, request.headers.get_list("X-Forwarded-For"), hops)
