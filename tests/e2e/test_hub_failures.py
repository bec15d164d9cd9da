"""A real hub without a usable Kubernetes API (unreachable) or with a wrong setting: clear answers, no hangs."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ci.dev import devenv

from .hubclient import admin_client

REPO = Path(__file__).resolve().parents[2]

DEAD_API = {
    "apiVersion": "v1", "kind": "Config", "current-context": "dead",
    "clusters": [{"name": "dead", "cluster": {"server": "http://127.0.0.1:9"}}],
    "users": [{"name": "dead", "user": {"token": "x"}}],
    "contexts": [{"name": "dead", "context": {"cluster": "dead", "user": "dead"}}],
}


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    state = tmp_path_factory.mktemp("deadapi")
    kubeconfig = state / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(DEAD_API))
    hub = devenv.Hub("unreachable", kubeconfig, state / "hub", settings={"gpu": {"mode": 0}}).start()
    yield hub
    hub.stop()


def test_volume_endpoints_answer_503_json(hub):
    admin = admin_client(hub.url, hub.first_admin_password)
    r = admin.api("GET", "/users/admin/manage-volumes")
    assert r.status_code == 503
    body = r.json()
    assert body["status"] == 503 and body["message"].startswith("Kubernetes API unavailable: ")
    r = admin.api("DELETE", "/users/admin/manage-volumes", json={"volumes": ["home"]})
    assert r.status_code == 503 and r.json()["message"].startswith("Kubernetes API unavailable: ")


def test_a_wrong_setting_stops_the_hub_with_one_line_naming_the_key(tmp_path):
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(DEAD_API))
    hub = devenv.Hub("unreachable", kubeconfig, tmp_path / "hub", settings={"storage": {"onUserDelete": "keep"}})
    with pytest.raises(RuntimeError, match="hub exited with 1"):
        hub.start(timeout=30)
    lines = [line for line in hub.log.read_text().splitlines() if "jupyterhub-ds: invalid setting" in line]
    assert lines and lines[0] == ('jupyterhub-ds: invalid setting: jupyterhub.custom.ds.storage.onUserDelete: '
                                  'expected one of "retain", "delete", got "keep"')
