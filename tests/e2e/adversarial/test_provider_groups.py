"""Attack: with ``Authenticator.manage_groups`` an identity provider sets every group membership, so whoever controls a
group named ``docker-privileged`` or ``docker-sock`` at the provider would hand out root on a node. On a release of
its own (``manage_groups`` on, and a later ``hub.extraConfig`` hook standing in for the provider: every login comes
with those groups), the member's pod gets neither the socket nor privileges (``allowManagedRoot`` is off by default).
"""

from __future__ import annotations

import pytest

from ..hubclient import new_user
from ..spawnwatch import notebook, start_and_get_pod, stop_and_wait

# what an identity provider would send: the user is in both root groups and a course
PROVIDER_HOOK = '''
def _provider_groups(authenticator, handler, auth_model):
    return {**auth_model, "groups": ["docker-privileged", "docker-sock", "course-y"]}

c.Authenticator.post_auth_hook = _provider_groups
'''


@pytest.fixture(scope="module")
def hub(own_release):
    return own_release.install({"storage": {"enabled": False}, "gpu": {"mode": 0}},
                               hub_config={"Authenticator": {"manage_groups": True}}, extra_config=PROVIDER_HOOK)


def test_provider_groups_named_as_the_root_groups_give_no_root(hub, admin, kube, username):
    user = new_user(hub.url, admin, username)
    groups = set(admin.api("GET", f"/users/{username}").json()["groups"])
    assert {"docker-privileged", "docker-sock", "course-y"} <= groups  # the provider's word was taken
    try:
        pod = start_and_get_pod(user, kube)
        context = notebook(pod).get("securityContext") or {}
        assert not context.get("privileged") and not context.get("allowPrivilegeEscalation"), context
        assert all("hostPath" not in v for v in pod["spec"].get("volumes", [])), pod["spec"]["volumes"]
        assert 999 not in ((pod["spec"].get("securityContext") or {}).get("supplementalGroups") or [])
    finally:
        stop_and_wait(user, kube)
    assert "allowManagedRoot is false" in hub.log_text()
