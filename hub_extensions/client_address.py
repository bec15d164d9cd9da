"""The address a request came from, for per-client limits (sign-up rate, login lockout).

JupyterHub runs Tornado with ``xheaders``, so ``request.remote_ip`` is whatever ``X-Real-Ip`` (or the leftmost
``X-Forwarded-For`` entry) says, and a client can send those itself: a stranger would get a fresh "address"
per request. Here the address is read from the raw TCP peer and ``X-Forwarded-For`` counted from the right:
each proxy the site runs appends the address it received the request from, so with ``hops`` proxies in front
of the hub the client is the ``hops``-th entry from the right; anything further left was written by the client.
``X-Real-Ip`` is never read. IPv6 clients are keyed by their /64 (one host usually holds a whole /64).

The header is read only when the TCP peer is one of the site's proxy pods (Z2JH's ``component=proxy``, looked up
by :class:`ProxyPeers`) or the hub pod itself (a loopback address: its own containers, ``kubectl port-forward``):
every user's server reaches ``hub:8081`` directly too (Z2JH's network policy lets it), and there the header is
whatever the user wrote, a fresh address per request. Any other peer is the address itself.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Awaitable, Callable, Collection
from typing import Any

MAX_KEY_LENGTH = 64  # a key that is not an address (a misconfigured proxy) is cut to this
PROXY_SELECTOR = "component=proxy"  # Z2JH's proxy pods (CHP): the only peer of the hub that proxies for clients
PROXY_REFRESH_SECONDS = 15.0
PROXY_RETRY_SECONDS = 5.0

log = logging.getLogger("JupyterHub.ds.client_address")  # a child of the hub's own logger


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


def exact_address(text: str) -> str:
    """The peer's address as one IP (an IPv4-mapped IPv6 address as IPv4, no zone), else the text."""
    try:
        ip = ipaddress.ip_address(text.strip().split("%", 1)[0])
    except ValueError:
        return text.strip()
    return str(ip.ipv4_mapped) if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped else str(ip)


def is_local(peer: str) -> bool:
    """A peer inside the hub pod: a loopback address, or no address at all (a Unix socket)."""
    try:
        ip = ipaddress.ip_address(exact_address(peer))
    except ValueError:
        return True
    return ip.is_loopback


def client_address(peer: str, forwarded_for: list[str], hops: int, proxies: Collection[str] | None = None) -> str:
    """The client's address key from the TCP ``peer``, the ``X-Forwarded-For`` header values (in order), the
    number of proxies the site runs in front of the hub and the exact addresses of the proxy pods (pure).

    A peer that is neither a proxy pod (``proxies`` None: any peer may be) nor local: the peer itself, whatever it
    forwards. No header: the peer itself (the hub reached directly). Fewer entries than ``hops``: the leftmost,
    which a proxy of the site wrote (a client's own entries only add to the count).
    """
    if proxies is not None and not is_local(peer) and exact_address(peer) not in proxies:
        return address_key(peer)
    entries = [e.strip() for value in forwarded_for for e in value.split(",") if e.strip()]
    if not entries:
        return address_key(peer)
    return address_key(entries[-hops] if len(entries) >= hops else entries[0])


def request_address(handler: Any, hops: int) -> str:
    """:func:`client_address` of a Tornado request handler's request (raw peer, raw header)."""
    request = handler.request
    address = getattr(request.connection.context, "address", None) if request.connection is not None else None
    peer = str(address[0]) if isinstance(address, tuple) and address else "unix"
    return client_address(peer, request.headers.get_list("X-Forwarded-For"), hops, PROXIES.addresses)


class ProxyPeers:
    """The exact addresses of the site's proxy pods, looked up in the background (:func:`start_background`).

    None until the hub restricts it (outside a hub: any peer may forward); in a hub, empty until the first look-up,
    so no header is read before it; a failed look-up keeps the last known addresses.
    """

    def __init__(self) -> None:
        self.addresses: frozenset[str] | None = None
        self.failing = False  # logged once per outage, not every retry

    def restrict(self) -> None:
        if self.addresses is None:
            self.addresses = frozenset()

    async def refresh(self, list_pods: Callable[[], Awaitable[list[dict]]]) -> bool:
        """Look the proxy pods up once; whether it worked."""
        try:
            pods = await list_pods()
        except Exception as e:  # the API server: keep what we had, say why
            if not self.failing:
                log.warning("The proxy pods (%s) could not be listed: %s; X-Forwarded-For is read from %s",
                            PROXY_SELECTOR, e, sorted(self.addresses or ()) or "no peer but the hub pod itself")
            self.failing = True
            return False
        self.failing = False
        found = set()
        for pod in pods:
            status = pod.get("status") or {}
            if status.get("phase") not in ("Pending", "Running"):  # a finished pod's address goes to other pods
                continue
            found |= {exact_address(i["ip"]) for i in status.get("podIPs") or [] if i.get("ip")}
            if status.get("podIP"):
                found.add(exact_address(status["podIP"]))
        self.addresses = frozenset(found)
        return True


PROXIES = ProxyPeers()
_task: asyncio.Task | None = None


async def _list_proxy_pods(namespace: str) -> list[dict]:
    from . import k8s

    pods = await k8s.core().list_namespaced_pod(namespace, label_selector=PROXY_SELECTOR,
                                                _request_timeout=k8s.REQUEST_TIMEOUT)
    return [k8s.sanitize(p) for p in pods.items]


async def _refresh_forever(namespace: str) -> None:
    while True:
        ok = await PROXIES.refresh(lambda: _list_proxy_pods(namespace))
        await asyncio.sleep(PROXY_REFRESH_SECONDS if ok else PROXY_RETRY_SECONDS)


def start_background(namespace: str) -> None:
    """From ``configure``: read ``X-Forwarded-For`` only from the proxy pods of ``namespace`` from now on."""
    global _task
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return  # no loop: a config check, no requests
    PROXIES.restrict()
    if _task is not None and not _task.done():
        _task.cancel()
    _task = loop.create_task(_refresh_forever(namespace))
