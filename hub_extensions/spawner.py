"""Spawn-time policy, in one place: ``DsKubeSpawner``, the KubeSpawner the hub runs.

Our policy lives in the spawner's own methods, not in ``pre_spawn_hook``/``modify_pod_hook``, so a later
``hub.extraConfig`` snippet that assigns either hook cannot drop it; such hooks simply run as
KubeSpawner runs them:

- ``run_pre_spawn_hook``: the configured ``pre_spawn_hook`` (yours, if any), then our side effects:
  deleted built-in groups are back, the GPU node cache has an answer, and the user's claims exist
  (under the user's lock, so a volume reset cannot race the start).
- ``get_pod_manifest``: KubeSpawner's manifest (profile overrides applied), then our pure pod patches:
  per-user and shared volumes, built-in group membership (read now, so a removed member gets a clean
  pod), GPUs, and the lab environment contract. KubeSpawner then runs the configured
  ``modify_pod_hook`` on the result: your hook sees our patches and has the last word.
- ``start``/``progress``: the API server's and the scheduler's words in front of the user (Pod Security
  refusals, "no free GPU"), and a start that fails within seconds when the node has no Docker socket.
- the spawner state keeps the owner key of the user's claims and the session extension (kept across
  Restart Server, cleared by a stop); ``delete_forever`` applies ``onUserDelete``.

The feedback functions at the top are pure, for tests.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping
from contextlib import aclosing
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from jupyterhub.utils import maybe_future
from kubernetes_asyncio.client import ApiException
from kubespawner import KubeSpawner
from tornado import web

from . import (
    branding,
    culler,
    docker_groups,
    env_vars,
    gpu,
    group_policies,
    k8s,
    labenv,
    locks,
    objects,
    pod_status,
    storage,
    trail,
)
from .branding import Branding
from .runtime import Runtime
from .settings import DockerSockSettings, Settings

# ================================================================ pure: what the user reads


def api_message(e: ApiException) -> str:
    """The API server's ``Status.message`` (falls back to the status line)."""
    try:
        body = json.loads(e.body) if e.body else {}
    except (TypeError, ValueError):
        body = {}
    message = body.get("message") if isinstance(body, dict) else None
    return message or f"{e.status} {e.reason}"


def refused(e: ApiException) -> web.HTTPError:
    """An ``HTTPError`` whose message is what the API server said when it refused an object.

    KubeSpawner re-raises the ``ApiException``, whose text is the status line, every response header
    and the raw JSON body; the user gets only the API server's message.
    """
    message = f"Kubernetes refused to create your server: {api_message(e)}"
    if "PodSecurity" in message:
        message += " (the namespace's Pod Security level does not allow this server; ask an administrator)"
    status = e.status if e.status and 400 <= e.status < 500 else 502
    return _failure(status, message)


def _failure(status: int, message: str) -> web.HTTPError:
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


def docker_socket_hint(raw_event: Mapping[str, Any] | None, sock: DockerSockSettings) -> str | None:
    """A sentence for the kubelet's FailedMount of our Docker socket volume (no socket on the node), else None.

    The kubelet checks a ``hostPath`` of type ``Socket`` before it starts the container and reports
    ``MountVolume.SetUp failed for volume "ds-docker-sock" : hostPath type check failed: ... is not a
    socket file``; it retries forever, so without this the start only ends at the start timeout.
    """
    if not raw_event or raw_event.get("reason") != "FailedMount":
        return None
    message = raw_event.get("message") or ""
    if f'"{docker_groups.DOCKER_SOCK_VOLUME}"' not in message or "hostPath type check failed" not in message:
        return None
    return (f"No Docker socket on this node: your server mounts the node's Docker socket (group "
            f"{sock.group}), but {sock.host_path} is not a socket on the node it was placed on. Ask an "
            "administrator to set groups.dockerSock.nodeSelector to nodes that run a Docker daemon.")


def last_warning(events: list[Mapping[str, Any]], resource: str, sock: DockerSockSettings) -> str | None:
    """The pod's most recent Warning event, as the user should read it."""
    for event in reversed(events):
        if event.get("type") == "Warning":
            hint = scheduling_hint(event, resource)
            if hint:
                return f"{hint} Scheduler: {event.get('message')}"
            hint = docker_socket_hint(event, sock)
            return f"{hint} Kubelet: {event.get('message')}" if hint else event.get("message")
    return None


def created_since(pod: Mapping[str, Any] | None, since: datetime) -> bool:
    """Whether a pod (API JSON) was created at or after ``since``: an older one is a previous start's."""
    stamp = ((pod or {}).get("metadata") or {}).get("creationTimestamp")
    if not stamp:
        return False
    try:
        return datetime.fromisoformat(stamp) >= since
    except (TypeError, ValueError):
        return False


def fatal_event(pod: Mapping[str, Any] | None, events: list[Mapping[str, Any]], since: datetime,
                sock: DockerSockSettings) -> str | None:
    """The message that ends a start now: our socket volume failed to mount on the pod of this start."""
    if not created_since(pod, since):
        return None
    uid = pod["metadata"].get("uid")
    for event in events:
        if (event.get("involvedObject") or {}).get("uid") == uid:
            hint = docker_socket_hint(event, sock)
            if hint:
                return f"{hint} Kubelet: {event.get('message')}"
    return None


class SpawnTimeout(TimeoutError):
    """A start timeout that says why (JupyterHub still counts it as a timeout)."""

    def __init__(self, message: str):
        super().__init__(message)
        self.jupyterhub_message = message


# ================================================================ pure: the pod patches


def apply_pod_policy(pod: Any, settings: Settings, *, owner: str | None, groups: set[str],
                     gpu_answer: bool | None, icons: Mapping[str, str], root_refused: bool = False) -> list[str]:
    """Patch the pod KubeSpawner built: volumes, the user's own variables (by reference to their Secret), the
    group policies (Docker included), GPUs, lab environment (last, so its variables win). Returns what was
    granted. ``owner``: the user's owner key (their claims and Secret)."""
    if settings.storage.enabled and owner is not None:
        objects.add_volumes(pod, *storage.pod_volumes(settings.storage, owner))
    if settings.user_env.enabled and owner is not None:
        objects.add_env_from(pod, env_vars.pod_env_from(owner))
    policy = group_policies.for_user(settings, groups, root_refused, warn=True)
    granted = docker_groups.apply_docker(pod, settings.groups, policy.docker_socket, policy.docker_privileged)
    decision = gpu.decide(settings.gpu, groups, gpu_answer)
    policy_gpus = policy.gpus > 0 and group_policies.gpus_allowed(settings.gpu, gpu_answer)
    granted += group_policies.apply(pod, policy, policy_gpus, policy.docker_privileged)
    count = max(settings.gpu.count if decision.gpu else 0, policy.gpus if policy_gpus else 0)
    if count:
        decision = gpu.GpuDecision(True, settings.gpu.mode == 2 and bool(gpu_answer))
        gpu.add_gpus(pod, settings.gpu, count)
        granted.append(f"{count} {settings.gpu.resource}")
    objects.set_env(pod, labenv.lab_environment(settings.lab, decision, icons))
    return granted


# ================================================================ the spawner


class DsKubeSpawner(KubeSpawner):
    # Set once by hub_extensions.configure and shared by every spawner: plain class attributes, not
    # config traits (traitlets deep-copies config values into each spawner).
    ds_settings: ClassVar[Settings] = Settings()
    ds_branding: ClassVar[Branding] = Branding(Settings().branding)

    # how often a start looks at the pod's events for a failure that will not go away by itself
    ds_event_poll_seconds: ClassVar[float] = 1.0

    @classmethod
    def use_runtime(cls, rt: Runtime) -> None:
        """Share the hub's one settings object and branding (:mod:`hub_extensions.runtime`) with every spawner."""
        cls.ds_settings = rt.settings
        cls.ds_branding = rt.branding

    # ------------------------------------------------------------ before the start

    async def run_pre_spawn_hook(self) -> None:
        """The configured ``pre_spawn_hook`` first (it may change the spawner), then ours."""
        await maybe_future(super().run_pre_spawn_hook())
        await self.ds_prepare()

    def ds_policy(self) -> group_policies.Resolved:
        """The user's group policies, resolved now (memberships change between starts)."""
        return group_policies.resolve(self.ds_settings.group_policies, docker_groups.group_names(self.user))

    def _get_initialized_profile_list(self, profile_list: list) -> list:
        """KubeSpawner's profiles, less those the user's group policies do not allow: the form never shows them,
        and ``load_user_options`` cannot pick them."""
        return group_policies.allowed_profiles(super()._get_initialized_profile_list(profile_list), self.ds_policy())

    async def ds_check_profile(self, user_options: Mapping[str, Any] | None = None) -> None:
        """Refuse a start with a profile the user's groups do not allow (403, before anything is created); the
        options are the start's (``self.user_options`` by default)."""
        options = self.user_options if user_options is None else user_options
        profile_list = self.profile_list
        if callable(profile_list):
            profile_list = await maybe_future(profile_list(self))
        if not profile_list:
            return
        full = KubeSpawner._get_initialized_profile_list(self, profile_list)
        refusal = group_policies.profile_refusal(full, self.ds_policy(), (options or {}).get("profile"))
        if refusal:
            raise _failure(403, refusal)

    async def ds_prepare(self) -> None:
        """Side effects before the pod: the profile is allowed, built-in groups exist, GPU answer known, the user's
        claims exist."""
        settings = self.ds_settings
        await self.ds_check_profile()
        docker_groups.ensure_groups(self.user.db, docker_groups.builtin_groups(settings.groups))
        if settings.gpu.mode == 2:
            await gpu.node_cache(settings.gpu).warm()  # waits only before the first node list
        if settings.storage.enabled:
            async with locks.user_lock(self.user.id):
                try:
                    await storage.ensure_claims(self.namespace, settings.storage, self.ds_owner,
                                                self.user.name, self.common_labels)
                except storage.StorageError as e:
                    raise web.HTTPError(e.status, e.message) from e
                except k8s.API_ERRORS as e:
                    raise web.HTTPError(503, f"Could not prepare your volumes: {k8s.describe(e)}") from e

    # ------------------------------------------------------------ the pod

    async def get_pod_manifest(self) -> Any:
        """KubeSpawner's pod (after profile overrides) with our policy applied."""
        pod = await super().get_pod_manifest()
        settings = self.ds_settings
        granted = apply_pod_policy(
            pod, settings,
            owner=self.ds_owner if settings.storage.enabled or settings.user_env.enabled else None,
            groups=docker_groups.group_names(self.user),
            root_refused=docker_groups.root_refused(self.user, settings.groups),
            gpu_answer=gpu.auto_answer(settings.gpu),
            icons=self.ds_branding.lab_icon_env(branding.hub_prefix(settings.hub_url, self.hub)))
        if granted:
            self.log.info("jupyterhub-ds: server of %s gets %s", self.user.name, ", ".join(granted))
        return pod

    # ------------------------------------------------------------ starting, and telling the user why not

    async def _ds_watch_events(self, since: datetime) -> str:
        """Poll the pod's events (the reflector KubeSpawner keeps) until one says the start cannot succeed."""
        while True:
            await asyncio.sleep(self.ds_event_poll_seconds)
            try:
                message = fatal_event(k8s.reflected_pod(self), self.events, since, self.ds_settings.groups.docker_sock)
            except Exception:  # a bug here must not fail a start that would succeed
                self.log.exception("jupyterhub-ds: reading the events of %s failed", self.pod_name)
                message = None
            if message:
                return message

    # what the last failed start left behind (message, events, log tail), for the home page's dashboard;
    # in memory (a hub restart forgets it), cleared when the next start begins
    ds_last_failure: dict | None = None

    async def _ds_record_failure(self, message: str) -> None:
        """Keep the pod's events and log tail of a failed start before JupyterHub deletes the pod."""
        pod = k8s.reflected_pod(self)
        lines: list[str] = []
        log_error = None
        if pod is not None:
            try:
                lines = await asyncio.wait_for(pod_status.crash_log_tail(self.namespace, self.pod_name),
                                               2 * k8s.REQUEST_TIMEOUT)
            except (*k8s.API_ERRORS, TimeoutError) as e:
                log_error = f"No log: {k8s.describe(e)}"
        summary = pod_status.pod_summary(pod, self.ds_settings.gpu.resource)
        self.ds_last_failure = {
            "at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "message": message,
            "pod": summary["name"] if summary else self.pod_name,
            "node": summary["node"] if summary else None,
            "events": pod_status.events_summary(getattr(self, "events", None) or []),
            "log_tail": lines,
            "log_error": log_error,
        }

    async def start(self) -> Any:
        self.ds_last_failure = None
        try:
            return await self._ds_start()
        except Exception as e:
            await self._ds_record_failure_safely(getattr(e, "jupyterhub_message", None) or str(e) or type(e).__name__)
            raise
        except asyncio.CancelledError:
            # JupyterHub gave up at start_timeout (it cancels the start): the pod never ran, e.g. its container
            # exits at once and waits in back-off. Recorded before JupyterHub deletes the pod, bounded in time.
            warning = last_warning(getattr(self, "events", None) or [], self.ds_settings.gpu.resource,
                                   self.ds_settings.groups.docker_sock)
            await self._ds_record_failure_safely(
                f"Your server did not start within {self.start_timeout} seconds."
                + (f" Last event: {warning}" if warning else " See the last lines of its log."))
            raise

    async def _ds_record_failure_safely(self, message: str) -> None:
        try:
            await self._ds_record_failure(message)
        except Exception:  # the dashboard's record must never mask why the start failed
            self.log.exception("jupyterhub-ds: recording the failed start of %s failed", self.pod_name)

    # set by Restart Server on the spawner whose start it asks for. A flag on the start's own spawner, not the
    # restart marker: with Z2JH's slow_spawn_timeout 0 the start runs on after the restart request has answered.
    ds_restart = False

    async def _ds_start(self) -> Any:
        restart, self.ds_restart = self.ds_restart, False
        policy = self.ds_policy()
        culling = {"timeout_seconds": policy.idle_timeout_seconds, "max_extension_hours": policy.max_extension_hours}
        self.ds_culling = {k: v for k, v in culling.items() if v is not None} or None
        culler.keep_within_ceiling(self, self.ds_settings.culler, datetime.now(UTC).timestamp())
        # pods of earlier starts are older; a few seconds of slack for the API server's clock
        since = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=5)
        starting = asyncio.ensure_future(super().start())  # KubeSpawner's future; progress() follows it
        watching = asyncio.ensure_future(self._ds_watch_events(since))
        try:
            await asyncio.wait({starting, watching}, return_when=asyncio.FIRST_COMPLETED)
            if not starting.done():
                message = watching.result()
                self.log.warning("jupyterhub-ds: start of %s failed: %s", self.pod_name, message)
                starting.cancel()
                raise _failure(503, message)
            result = starting.result()
            trail.record("spawn", self.user.name, self.name, "started for Restart Server" if restart else "started",
                         spawner=self, restart=restart)
            return result
        except ApiException as e:
            raise refused(e) from e
        except asyncio.CancelledError:
            starting.cancel()  # JupyterHub gave up (start timeout): stop KubeSpawner's start too
            raise
        except TimeoutError as e:
            warning = last_warning(getattr(self, "events", None) or [], self.ds_settings.gpu.resource,
                                   self.ds_settings.groups.docker_sock)
            if warning:
                raise SpawnTimeout(f"{e} Last event: {warning}") from e
            raise
        finally:
            watching.cancel()

    async def stop(self, now: bool = False) -> None:
        if getattr(self, "_waiting_for_response", False) and self.ds_last_failure is None:
            # JupyterHub gave up waiting for the server in a running pod (it crashed or never listened)
            await self._ds_record_failure_safely(
                f"Your server's pod started, but the server in it did not answer within {self.http_timeout} "
                "seconds (it may have exited at start: see the last lines of its log).")
        await super().stop(now=now)
        if locks.is_restarting(self.user.id):
            trail.record("restart", self.user.name, self.name, "stopped for Restart Server")
        else:
            trail.record("stop", self.user.name, self.name, "stopped")

    async def progress(self) -> AsyncIterator[dict]:
        """KubeSpawner's event stream, with a plain sentence in front of the events users cannot decode."""
        resource = self.ds_settings.gpu.resource
        sock = self.ds_settings.groups.docker_sock
        hinted: set[str] = set()
        async with aclosing(super().progress()) as events:
            async for event in events:
                raw = event.get("raw_event")
                for kind, hint, source in (("gpu", scheduling_hint(raw, resource), "Scheduler"),
                                           ("docker", docker_socket_hint(raw, sock), "Kubelet")):
                    if hint and kind not in hinted:
                        hinted.add(kind)
                        event = {**event, "message": f"{hint} {source}: {event.get('message', '')}"}
                yield event

    # ------------------------------------------------------------ state: the owner key of the user's claims

    _ds_owner: str | None = None

    @property
    def ds_known_owner(self) -> str | None:
        """The owner key if one was made already (a read must not create one)."""
        return self.user.spawners[""]._ds_owner if self.name else self._ds_owner

    @property
    def ds_owner(self) -> str:
        """Owner key of the user's claims, generated once and kept in the default server's state.

        Named servers share the user's claims, so they ask the default server's spawner.
        """
        if self.name:
            return self.user.spawners[""].ds_owner
        if self._ds_owner is None:
            self._ds_owner = storage.new_owner_key(self.user.id)
            if self.orm_spawner is not None:  # persist now: claims may exist before a first successful start
                self.orm_spawner.state = self.get_state()
                self.db.commit()
        return self._ds_owner

    # the session extension (hub_extensions.culler): an absolute deadline and the hours granted so far
    ds_extended_until: float | None = None
    ds_extension_hours: int = 0
    # the culler settings the group policies gave this server when it started ({timeout_seconds, ...})
    ds_culling: dict | None = None

    def load_state(self, state: dict) -> None:
        super().load_state(state)
        self._ds_owner = state.get("ds_owner", self._ds_owner)
        extension = state.get("ds_extension") or {}
        if extension.get("until") is not None:
            self.ds_extended_until = float(extension["until"])
            self.ds_extension_hours = int(extension.get("hours", 0))
        self.ds_culling = state.get("ds_culling") or None

    def get_state(self) -> dict:
        state = super().get_state()
        if self._ds_owner:
            state["ds_owner"] = self._ds_owner
        if self.ds_extended_until is not None:
            state["ds_extension"] = {"until": self.ds_extended_until, "hours": self.ds_extension_hours}
        if self.ds_culling:
            state["ds_culling"] = self.ds_culling
        return state

    def clear_state(self) -> None:
        """Stopping clears the server's state, but the claims' owner key outlives every server.

        The session extension ends with the server, except across Restart Server (its stop and start
        run under the restart marker), which is one session to the user.
        """
        owner = self._ds_owner
        extension = (self.ds_extended_until, self.ds_extension_hours)
        super().clear_state()
        self._ds_owner = owner
        self.ds_culling = None
        if self.user is not None and locks.is_restarting(self.user.id):
            self.ds_extended_until, self.ds_extension_hours = extension
        else:
            self.ds_extended_until, self.ds_extension_hours = None, 0

    async def delete_forever(self) -> None:
        await super().delete_forever()
        if self.name or self._ds_owner is None:
            return  # claims and variables belong to the user, not to a named server; no key, nothing of theirs
        # the user's own variables (keys, tokens) go with the account, whatever happens to their files
        try:
            await k8s.delete_secret(self.namespace, env_vars.secret_name(self._ds_owner))
        except k8s.API_ERRORS as e:
            self.log.error("User %s deleted, but not their variables' Secret: %s", self.user.name, k8s.describe(e))
        if not self.ds_settings.storage.enabled:
            return
        async with locks.user_lock(self.user.id):
            await storage.release_claims(self.namespace, self.ds_settings.storage, self._ds_owner, self.user.name)
        locks.forget(self.user.id)
