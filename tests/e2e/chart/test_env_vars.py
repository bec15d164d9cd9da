"""Per-user environment variables on the installed chart: a user sets their own, they reach the pod only by
reference to their Secret, and nobody else reads or sets them (attacks performed, not assumed)."""

from __future__ import annotations

import base64
import json

from ..hubclient import new_user
from ..spawnwatch import notebook, start_and_get_pod, stop_and_wait

SECRET_SELECTOR = "app.kubernetes.io/component=user-env"


def put(user, owner: str, *variables: dict):
    return user.api("PUT", f"/users/{owner}/env-vars", json={"env_vars": list(variables)})


def test_a_user_sets_variables_that_reach_the_pod_by_reference_only(hub, admin, kube, username):
    user = new_user(hub.url, admin, username)
    r = put(user, username, {"name": "OPENAI_API_KEY", "value": "sk-e2e-secret", "description": "key"},
            {"name": "TEAM", "value": "mine"})
    assert r.status_code == 200, r.text
    got = user.api("GET", f"/users/{username}/env-vars").json()
    assert got["editable"] and got["system_env_enabled"]
    assert got["env_vars"][0] == {"name": "OPENAI_API_KEY", "value": "sk-e2e-secret", "description": "key"}
    try:
        pod = start_and_get_pod(user, kube)
        (ref,) = notebook(pod)["envFrom"]
        secret = kube.json("secret", ref["secretRef"]["name"])
        assert base64.b64decode(secret["data"]["OPENAI_API_KEY"]).decode() == "sk-e2e-secret"
        assert secret["metadata"]["labels"]["jupyterhub-ds/owner"] in ref["secretRef"]["name"]
        assert "sk-e2e-secret" not in json.dumps(pod)  # never in the pod spec in clear
    finally:
        stop_and_wait(user, kube)
    # the trail names the variables, never their values
    events = admin.api("GET", "/ds/events").json()["events"]
    mine = [e for e in events if e["kind"] == "env-vars" and e["user"] == username]
    assert mine and "OPENAI_API_KEY" in mine[-1]["message"]
    assert "sk-e2e-secret" not in json.dumps(events)


def test_another_user_can_neither_read_nor_set_them(hub, admin, username):
    victim = new_user(hub.url, admin, username)
    assert put(victim, username, {"name": "TOKEN", "value": "victims"}).status_code == 200
    attacker = new_user(hub.url, admin, username + "x")
    assert attacker.api("GET", f"/users/{username}/env-vars").status_code == 404
    assert put(attacker, username, {"name": "PYTHONSTARTUP", "value": "/tmp/evil.py"}).status_code == 404
    assert victim.api("GET", f"/users/{username}/env-vars").json()["env_vars"] == [
        {"name": "TOKEN", "value": "victims", "description": ""}]


def test_an_admin_sees_the_rules_never_the_variables_and_cannot_set_them(hub, admin, username):
    """admin:users holds neither servers nor access:servers: a variable (PYTHONPATH) would run code as the user."""
    user = new_user(hub.url, admin, username)
    assert put(user, username, {"name": "API_KEY", "value": "users-own"}).status_code == 200
    got = admin.api("GET", f"/users/{username}/env-vars").json()
    assert got["env_vars"] == [] and got["editable"] is False and "GRANT_SUDO" in got["reserved_names"]
    assert put(admin, username, {"name": "PYTHONPATH", "value": "/mnt/shared/evil"}).status_code in (403, 404)
    assert user.api("GET", f"/users/{username}/env-vars").json()["env_vars"][0]["value"] == "users-own"


def test_platform_variables_are_refused_with_the_rule(hub, admin, username):
    user = new_user(hub.url, admin, username)
    r = put(user, username, {"name": "JUPYTERHUB_API_TOKEN", "value": "forged"}, {"name": "GRANT_SUDO",
                                                                                 "value": "yes"})
    assert r.status_code == 400
    assert r.json()["code"] == "reserved_env_var_names"
    assert set(r.json()["rejected"]) == {"JUPYTERHUB_API_TOKEN", "GRANT_SUDO"}


def test_a_get_creates_nothing(hub, admin, kube, username):
    user = new_user(hub.url, admin, username)
    before = {s["metadata"]["name"] for s in kube.items("secrets", SECRET_SELECTOR)}
    got = user.api("GET", f"/users/{username}/env-vars")
    assert got.status_code == 200 and got.json()["env_vars"] == []
    assert {s["metadata"]["name"] for s in kube.items("secrets", SECRET_SELECTOR)} == before


def test_deleting_the_user_deletes_their_variables(hub, admin, kube, username):
    user = new_user(hub.url, admin, username)
    assert put(user, username, {"name": "TOKEN", "value": "gone-with-the-user"}).status_code == 200
    secrets = [s for s in kube.items("secrets", SECRET_SELECTOR)
               if base64.b64decode(s["data"].get("TOKEN", "")) == b"gone-with-the-user"]
    assert len(secrets) == 1
    assert admin.api("DELETE", f"/users/{username}").status_code == 204
    assert kube("get", "secret", secrets[0]["metadata"]["name"], "--ignore-not-found").strip() == ""


def test_a_loop_of_saves_is_cut_off(hub, admin, username):
    """A user saving in a loop gets 429 after 10 a minute: no etcd churn, no flooded trail, bounded API calls."""
    user = new_user(hub.url, admin, username)
    codes = [put(user, username, {"name": "N", "value": str(i)}).status_code for i in range(11)]
    assert codes == [200] * 10 + [429]
