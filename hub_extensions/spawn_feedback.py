"""Tell the user why a server does not start, in the API server's or the scheduler's own words.

Two failures would otherwise look like a hang or a wall of text on the spawn page:

- the API server refuses the pod (Pod Security Admission forbids a privileged or hostPath pod, a
  quota is exceeded, a webhook denies it). KubeSpawner re-raises the ``ApiException``, whose text
  is the HTTP status line, every response header and the raw JSON body; we turn it into an
  ``HTTPError`` carrying only the API server's message, which JupyterHub shows as
  "Spawn failed: ..." on the spawn page and returns from the REST API.
- the scheduler cannot place a GPU pod because every GPU is taken. KubeSpawner already streams
  the pod's events to the spawn page; we put a plain sentence in front of the
  ``FailedScheduling ... Insufficient nvidia.com/gpu`` event so the user knows to wait, and when
  the start times out, the final "Spawn failed" message repeats the pod's last warning instead of
  only "did not start in 120 seconds".
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from contextlib import aclosing
from typing import Any

from kubernetes_asyncio.client import ApiException
from tornado import web


def api_message(e: ApiException) -> str:
    """The API server's ``Status.message`` (falls back to the status line)."""
    try:
        body = json.loads(e.body) if e.body else {}
    except (TypeError, ValueError):
        body = {}
    message = body.get("message") if isinstance(body, dict) else None
    return message or f"{e.status} {e.reason}"


def refused(e: ApiException) -> web.HTTPError:
    """An ``HTTPError`` whose message is what the API server said when it refused an object."""
    message = f"Kubernetes refused to create your server: {api_message(e)}"
    if "PodSecurity" in message:
        message += " (the namespace's Pod Security level does not allow this server; ask an administrator)"
    status = e.status if e.status and 400 <= e.status < 500 else 502
    error = web.HTTPError(status, "%s", message)
    error.jupyterhub_message = message  # what the spawn page's progress stream shows
    return error


def scheduling_hint(raw_event: Mapping[str, Any] | None, resource: str) -> str | None:
    """A sentence for a FailedScheduling event caused by exhausted GPUs, else None."""
    if not raw_event or raw_event.get("reason") != "FailedScheduling":
        return None
    if f"Insufficient {resource}" not in (raw_event.get("message") or ""):
        return None
    return (f"No free GPU right now: no node has enough unallocated {resource} for this server (other "
            "servers hold them, or a node has fewer than requested). It starts as soon as enough are "
            "released, or fails when the start timeout runs out.")


class SpawnTimeout(TimeoutError):
    """A start timeout that says why (JupyterHub still counts it as a timeout)."""

    def __init__(self, message: str):
        super().__init__(message)
        self.jupyterhub_message = message


def last_warning(events: list[Mapping[str, Any]], resource: str) -> str | None:
    """The pod's most recent Warning event, as the user should read it."""
    for event in reversed(events):
        if event.get("type") == "Warning":
            hint = scheduling_hint(event, resource)
            return f"{hint} Scheduler: {event.get('message')}" if hint else event.get("message")
    return None


class SpawnFeedbackMixin:
    """Mixed into the KubeSpawner subclass, before ``KubeSpawner``."""

    async def start(self) -> Any:
        try:
            return await super().start()  # type: ignore[misc]
        except ApiException as e:
            raise refused(e) from e
        except TimeoutError as e:
            warning = last_warning(getattr(self, "events", None) or [],
                                   self.ds_settings.gpu.resource)  # type: ignore[attr-defined]
            if warning:
                raise SpawnTimeout(f"{e} Last event: {warning}") from e
            raise

    async def progress(self) -> AsyncIterator[dict]:
        resource = self.ds_settings.gpu.resource  # type: ignore[attr-defined]
        hinted = False
        async with aclosing(super().progress()) as events:  # type: ignore[misc]
            async for event in events:
                hint = None if hinted else scheduling_hint(event.get("raw_event"), resource)
                if hint:
                    hinted = True
                    event = {**event, "message": f"{hint} Scheduler: {event.get('message', '')}"}
                yield event
