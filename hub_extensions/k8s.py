"""The one async Kubernetes access layer of the hub extensions.

Everything goes through KubeSpawner's shared ``kubernetes_asyncio`` clients (one per event loop),
so the hub keeps a single connection pool and never blocks its event loop. Call these functions
only from coroutines (handlers, hooks, background tasks).

Also the one place for what every feature reading the cluster needs: raw-JSON LISTs (:func:`list_json`,
:func:`list_pages`), KubeSpawner's reflectors (:func:`reflected_pod`, :func:`reflected_pods`), quantities
(:func:`quantity`) and the cache policy for what is read from the API server (:class:`TtlCache`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Generic, TypeVar

import aiohttp
from kubernetes_asyncio.client import ApiException, CoreV1Api
from kubernetes_asyncio.client.rest import RESTResponse
from kubespawner.clients import load_config, shared_client

log = logging.getLogger("JupyterHub.ds.k8s")

REQUEST_TIMEOUT = 10  # seconds per API call; the hub must never hang on a slow API server

# What a call into this layer may raise when the API server refuses or cannot be reached.
API_ERRORS = (ApiException, aiohttp.ClientError, asyncio.TimeoutError)


def describe(error: BaseException) -> str:
    """One line for users: the API server's status and reason, or why it could not be reached."""
    if isinstance(error, ApiException):
        return f"{error.status} {error.reason}"
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


_client_settings: dict[str, Any] = {"host": "", "ssl_ca_cert": "", "verify_ssl": None}


def use_kubespawner_settings(host: str = "", ssl_ca_cert: str = "", verify_ssl: bool | None = None) -> None:
    """Load the client configuration exactly as KubeSpawner does (its k8s_api_* traits), so the shared
    client is the same whichever of us creates it first."""
    _client_settings.update(host=host, ssl_ca_cert=ssl_ca_cert, verify_ssl=verify_ssl)


def core() -> CoreV1Api:
    load_config(**_client_settings)  # same keyword order as KubeSpawner: one lru_cache entry
    return shared_client("CoreV1Api")


def custom_objects() -> Any:
    """The shared ``CustomObjectsApi`` (``metrics.k8s.io`` lists), on the same connection pool as :func:`core`."""
    load_config(**_client_settings)
    return shared_client("CustomObjectsApi")


async def server_version() -> str:
    """The API server's ``/version`` (readable by every authenticated client): the cheapest reachability check."""
    load_config(**_client_settings)
    info = await shared_client("VersionApi").get_code(_request_timeout=REQUEST_TIMEOUT)
    return str(info.git_version)


def sanitize(obj: Any) -> Any:
    """A kubernetes_asyncio model as the plain JSON dict the API server speaks."""
    return core().api_client.sanitize_for_serialization(obj)


async def list_json(call: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> dict:
    """One LIST (``call``, a client method, with its arguments) as the API server's JSON, without a model per item.

    Building ``V1Node``/``V1Pod`` models and turning them back into dicts costs the hub's event loop far more than
    ``json.loads`` (``ci/bench/gpu_nodes.py``). A refusal raises :class:`ApiException`, as the generated client does.
    """
    kwargs.setdefault("_request_timeout", REQUEST_TIMEOUT)
    response = await call(*args, _preload_content=False, **kwargs)
    body = await response.read()  # reads the whole body and releases the connection
    if not 200 <= response.status <= 299:
        raise ApiException(http_resp=RESTResponse(response, body.decode("utf-8", "replace")))
    return json.loads(body)


async def list_pages(call: Callable[..., Awaitable[Any]], page_size: int, *args: Any,
                     **kwargs: Any) -> AsyncIterator[list[dict]]:
    """A :func:`list_json` LIST ``page_size`` items at a time (``limit``/``continue``): only one page of JSON is
    alive at a time, and the hub serves requests between pages."""
    token = None
    while True:
        page = await list_json(call, *args, limit=page_size, **({"_continue": token} if token else {}), **kwargs)
        yield page.get("items") or []
        token = (page.get("metadata") or {}).get("continue")
        if not token:
            return
        await asyncio.sleep(0)


async def list_claims(namespace: str, label_selector: str) -> list[dict]:
    """Claims matching a label selector, as JSON dicts (one list call)."""
    result = await core().list_namespaced_persistent_volume_claim(
        namespace, label_selector=label_selector, _request_timeout=REQUEST_TIMEOUT)
    return sanitize(result)["items"]


async def read_claim(namespace: str, name: str) -> dict | None:
    try:
        return sanitize(await core().read_namespaced_persistent_volume_claim(
            name, namespace, _request_timeout=REQUEST_TIMEOUT))
    except ApiException as e:
        if e.status == 404:
            return None
        raise


async def create_claim(namespace: str, manifest: dict) -> bool:
    """Create a claim; False when it already exists (409), which callers treat as success."""
    try:
        await core().create_namespaced_persistent_volume_claim(
            namespace, manifest, _request_timeout=REQUEST_TIMEOUT)
    except ApiException as e:
        if e.status == 409:
            return False
        raise
    return True


async def _delete(call: Callable[..., Awaitable[Any]], namespace: str, name: str) -> bool:
    """One namespaced delete; False when the object was already gone (404)."""
    try:
        await call(name, namespace, _request_timeout=REQUEST_TIMEOUT)
    except ApiException as e:
        if e.status == 404:
            return False
        raise
    return True


async def delete_claim(namespace: str, name: str) -> bool:
    """Delete a claim; False when it was already gone (404)."""
    return await _delete(core().delete_namespaced_persistent_volume_claim, namespace, name)


async def read_secret(namespace: str, name: str) -> dict | None:
    try:
        return sanitize(await core().read_namespaced_secret(name, namespace, _request_timeout=REQUEST_TIMEOUT))
    except ApiException as e:
        if e.status == 404:
            return None
        raise


async def put_secret(namespace: str, manifest: dict) -> None:
    """Create the Secret, or replace the one of that name (one atomic update, never delete and create)."""
    name = manifest["metadata"]["name"]
    try:
        await core().replace_namespaced_secret(name, namespace, manifest, _request_timeout=REQUEST_TIMEOUT)
    except ApiException as e:
        if e.status != 404:
            raise
        await core().create_namespaced_secret(namespace, manifest, _request_timeout=REQUEST_TIMEOUT)


async def delete_secret(namespace: str, name: str) -> bool:
    """Delete a Secret; False when it was already gone (404)."""
    return await _delete(core().delete_namespaced_secret, namespace, name)


async def patch_claim_metadata(namespace: str, name: str, labels: dict[str, str | None],
                               annotations: dict[str, str | None] | None = None) -> None:
    """Set labels and annotations (a merge patch: ``None`` removes the key)."""
    body: dict[str, Any] = {"metadata": {"labels": labels}}
    if annotations:
        body["metadata"]["annotations"] = annotations
    await core().patch_namespaced_persistent_volume_claim(
        name, namespace, body, _request_timeout=REQUEST_TIMEOUT)


async def wait_claims_gone(namespace: str, label_selector: str, names: set[str],
                           within: float, interval: float = 0.5) -> set[str]:
    """Wait until none of ``names`` exists any more (the pvc-protection finalizer may hold them).

    Returns the names still present after ``within`` seconds (empty on success).
    """
    deadline = time.monotonic() + within
    remaining = set(names)
    while remaining:
        present = {c["metadata"]["name"] for c in await list_claims(namespace, label_selector)}
        remaining &= present
        if not remaining or time.monotonic() >= deadline:
            break
        await asyncio.sleep(interval)
    return remaining


def reflected_pod(spawner: Any) -> Mapping[str, Any] | None:
    """The spawner's pod as KubeSpawner's pod reflector last saw it (no I/O); ``None`` when there is none or
    the spawner is not a KubeSpawner (tests' spawners, a hub without our spawner)."""
    reflector = getattr(spawner, "pod_reflector", None)
    pods = getattr(reflector, "pods", None)
    if pods is None:
        return None
    return pods.get(f"{spawner.namespace}/{spawner.pod_name}")


def reflected_pods(spawner_class: Any, namespace: str) -> list[dict] | None:
    """The pods KubeSpawner's loaded pod reflector holds for ``namespace`` (no I/O), or None without one.

    KubeSpawner keeps its reflectors on the class, keyed by (kind, namespace; None for all namespaces), shared by
    every subclass: pass ``KubeSpawner`` itself."""
    for key, reflector in list(getattr(spawner_class, "reflectors", {}).items()):
        if key[0] == "pods" and key[1] in (namespace, None) and reflector.first_load_future.done():
            return list(reflector.pods.values())
    return None


async def pod_exists(namespace: str, name: str) -> bool:
    """Whether the pod is still in the API server (a stopped server's pod may still be terminating)."""
    try:
        await core().read_namespaced_pod(name, namespace, _request_timeout=REQUEST_TIMEOUT)
    except ApiException as e:
        if e.status == 404:
            return False
        raise
    return True


async def pod_log_tail(namespace: str, name: str, container: str, lines: int, previous: bool = False,
                       limit_bytes: int = 16384) -> str:
    """The last ``lines`` lines of a container's log (``pods/log`` get), at most ``limit_bytes``."""
    return await core().read_namespaced_pod_log(
        name, namespace, container=container, tail_lines=lines, previous=previous, limit_bytes=limit_bytes,
        _request_timeout=REQUEST_TIMEOUT)


# ---------------------------------------------------------------- quantities

_QUANTITY = re.compile(r"([+-]?(?:\d+\.?\d*|\.\d+))(?:([KMGTPE]i|[numkKMGTPE])|[eE]([+-]?\d{1,3}))?")
_SCALE = {**{f"{prefix}i": Decimal(1024) ** (power + 1) for power, prefix in enumerate("KMGTPE")},
          **{suffix: Decimal(10) ** exponent for suffix, exponent in (
              ("n", -9), ("u", -6), ("m", -3), ("k", 3), ("K", 3), ("M", 6), ("G", 9), ("T", 12), ("P", 15),
              ("E", 18))}}


def quantity(value: Any) -> Decimal | None:
    """A Kubernetes quantity as an exact number; None when missing or unreadable.

    Every form the API server writes: binary ``Ki``..``Ei``, decimal ``k``/``K``/``M``..``E``, ``n``/``u``/``m``,
    exponents (``2e3``, ``1E-3``; ``1E`` alone is exa) and plain numbers (``8``, ``1.5``, ``.5``). Exact, so that
    sums of requests round as the scheduler's do. The package's one parser: CPU, memory, storage, GPUs.
    """
    if value is None or isinstance(value, bool):
        return None
    match = _QUANTITY.fullmatch(str(value).strip())
    if match is None:
        return None
    number, suffix, exponent = match.groups()
    if exponent is not None:
        return Decimal(f"{number}e{exponent}")
    return Decimal(number) * _SCALE[suffix] if suffix else Decimal(number)


def quantity_float(value: Any) -> float | None:
    """:func:`quantity` as a float (cores, bytes), for figures that end up as JSON numbers."""
    number = quantity(value)
    return None if number is None else float(number)


# ---------------------------------------------------------------- the cache policy

T = TypeVar("T")


@dataclass(frozen=True)
class Cached(Generic[T]):
    """What a :class:`TtlCache` holds: the last good value and how the last refresh went."""

    value: T | None  # the last good value; None before the first success
    error: str | None  # why the last refresh failed, one line (:func:`describe`); None after a success
    exception: BaseException | None  # that failure itself, for callers that answer with it
    fetched_at: float | None  # the cache clock when ``value`` was fetched; None before the first success
    checked_at: float  # the cache clock at the last refresh, successful or not: freshness counts from here

    def result(self) -> T:
        """The last good value; without one, raises the failure that left none."""
        if self.value is None:
            raise (self.exception or LookupError(self.error)).with_traceback(None)
        return self.value


class TtlCache(Generic[T]):
    """One value read from the cluster (``fetch``), refreshed at most once per ``ttl`` seconds for every caller.

    The hub's one policy for such caches:

    - **single flight**: concurrent callers of a stale cache share one ``fetch``, shielded, so a caller that goes
      away (a closed tab) cancels nothing;
    - **every refresh holds for** ``ttl``, a failed one too: a failure is not retried per request, so a struggling
      API server gets no retry storm;
    - **a failure keeps the last good value** and records why: :attr:`Cached.error` (one line, logged once per
      refresh; with the traceback when it is not an API error, i.e. a bug).

    Each feature decides from the :class:`Cached` it gets what its users see of a failure.
    """

    def __init__(self, fetch: Callable[[], Awaitable[T]], ttl: float, name: str,
                 logger: logging.Logger = log, clock: Callable[[], float] = time.monotonic):
        self._source = fetch
        self.ttl = ttl
        self.name = name  # what the log line says failed: "GPU auto-detect: listing nodes"
        self._log = logger
        self._clock = clock
        self.entry: Cached[T] | None = None  # None until the first refresh ends
        self.fetches = 0  # refreshes started (tests, benchmarks)
        self._inflight: asyncio.Future[Cached[T]] | None = None

    def fresh(self) -> bool:
        """Whether the last refresh, successful or not, ended less than ``ttl`` seconds ago."""
        return self.entry is not None and self._clock() - self.entry.checked_at < self.ttl

    async def get(self) -> Cached[T]:
        """The entry while fresh; else the outcome of the one refresh every caller shares."""
        entry = self.entry
        if entry is None or not self.fresh():
            entry = await asyncio.shield(self.refresh())
        return entry

    def refresh(self) -> asyncio.Future[Cached[T]]:
        """Start a refresh unless one is under way (fresh or not; background refreshers); its future."""
        if self._inflight is None or self._inflight.done():
            self._inflight = asyncio.ensure_future(self._refresh())
        return self._inflight

    async def _refresh(self) -> Cached[T]:
        self.fetches += 1
        last = self.entry
        try:
            value = await self._source()
        except Exception as e:
            kept = last is not None and last.value is not None
            error = describe(e)
            self._log.warning("%s failed (%s); %s, no new try for %g s", self.name, error,
                              "keeping the last value" if kept else "no value yet", self.ttl,
                              exc_info=not isinstance(e, (*API_ERRORS, OSError)))
            self.entry = Cached(last.value if last else None, error, e.with_traceback(None),
                                last.fetched_at if last else None, self._clock())
        else:
            now = self._clock()
            self.entry = Cached(value, None, None, now, now)
        return self.entry
