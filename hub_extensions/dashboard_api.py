"""``GET /hub/api/users/<name>/dashboard[?volumes=1]``: the dashboard document (:mod:`hub_extensions.dashboard`).

``read:servers`` on that user: the user for themselves, admins for anyone; JSON 403/404 otherwise. The volumes
need ``custom:ds-volumes:read`` on the user too.
"""

from __future__ import annotations

import asyncio

from jupyterhub.scopes import needs_scope

from . import culler, docker_groups, gpu, group_policies, k8s, scopes, storage
from .dashboard import assemble, capabilities, server_info, usage
from .group_policies_api import visible
from .handler_base import DsAPIHandler
from .pod_status import cached_log_tail, events_summary, needs_log, pod_summary


class DashboardHandler(DsAPIHandler):
    """``GET /hub/api/users/<name>/dashboard[?volumes=1]``."""

    @needs_scope("read:servers")
    async def get(self, user_name: str) -> None:
        user, spawner = self.target(user_name)
        settings = self.ds_settings
        raw_pod = k8s.reflected_pod(spawner)
        pod = pod_summary(raw_pod, settings.gpu.resource)
        events = events_summary(getattr(spawner, "events", None) or []) if (raw_pod or spawner.pending) else []
        log_tail, log_error = None, None
        if needs_log(pod):
            state = pod["container"] or {}
            previous = state.get("state") == "waiting" and (state.get("restarts") or 0) > 0
            try:
                log_tail = await cached_log_tail(spawner.namespace, pod, previous)
            except k8s.API_ERRORS as e:
                log_error = f"Could not read the log: {k8s.describe(e)}"
        volumes = None
        if self.get_argument("volumes", "") in ("1", "true") and settings.storage.enabled and self.covers(
                user, scopes.READ, scopes.ADMIN):
            try:
                claims = await asyncio.wait_for(
                    k8s.list_claims(spawner.namespace, storage.owner_selector(spawner.ds_owner)), k8s.REQUEST_TIMEOUT)
                volumes = storage.volume_report(settings.storage, claims)
            except (*k8s.API_ERRORS, TimeoutError) as e:
                volumes = [{"error": f"Kubernetes API unavailable: {k8s.describe(e)}"}]
        doc = assemble(
            user_name=user.name, server=server_info(user, spawner), pod=pod, events=events, log_tail=log_tail,
            log_error=log_error, last_failure=getattr(spawner, "ds_last_failure", None),
            usage_now=await usage(spawner), session=culler.session_info(spawner, settings.culler),
            caps=capabilities(settings, docker_groups.group_names(user), gpu.auto_answer(settings.gpu), raw_pod,
                              docker_groups.root_refused(user, settings.groups)),
            image=getattr(spawner, "image", None), volumes=volumes,
            grants=visible(self, user, group_policies.user_grants(settings, docker_groups.group_names(user), raw_pod,
                                                                  gpu.auto_answer(settings.gpu))))
        self.write_json(doc)


def handlers() -> list[tuple[str, type]]:
    """Routes relative to the hub prefix (JupyterHub adds ``/hub``)."""
    return [(r"/api/users/([^/]+)/dashboard", DashboardHandler)]
