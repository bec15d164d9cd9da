"""The first admin's Secret: generated at install, kept across upgrades (lookup), passed to the hub's env."""

from __future__ import annotations

import base64
import shutil
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART_SRC = REPO_ROOT / "chart"
SECRET = "jupyterhub-ds-first-admin"
ENV = "JUPYTERHUB_DS_FIRST_ADMIN_PASSWORD"


def secret_of(docs: list[dict]) -> dict:
    (secret,) = [d for d in docs if d["kind"] == "Secret" and d["metadata"]["name"] == SECRET]
    return secret


def test_secret_holds_a_generated_password(renderer, chart_module):
    secret = secret_of(renderer.ours())
    password = base64.b64decode(secret["data"]["password"]).decode()
    assert len(password) == 24 and password.isalnum()
    assert secret["metadata"]["namespace"] == "jupyterhub"
    # each render without a cluster generates a new one (helm template cannot look the live one up)
    again = secret_of(chart_module.render([], ["rbac.create=true"], chart=renderer.chart))
    assert again["data"]["password"] != secret["data"]["password"]


def test_secret_reuses_the_live_password_through_lookup():
    text = (CHART_SRC / "templates" / "accounts" / "first-admin-secret.yaml").read_text()
    assert 'lookup "v1" "Secret" .Release.Namespace $name' in text
    assert f'$name := "{SECRET}"' in text
    assert '$password = index $existing.data "password"' in text


def test_hub_env_refers_to_the_secret():
    hub = yaml.safe_load((CHART_SRC / "values.yaml").read_text())["jupyterhub"]["hub"]
    assert hub["extraEnv"][ENV] == {"valueFrom": {"secretKeyRef": {"name": SECRET, "key": "password"}}}
    assert "admin_users" not in hub["config"]["Authenticator"]  # the first admin comes from custom.ds.accounts
    assert hub["config"]["Authenticator"]["allow_all"] is True
    # the lockout is ours (custom.ds.accounts.lockout); NativeAuthenticator's would count per name only
    assert "allowed_failed_logins" not in hub["config"]["NativeAuthenticator"]


@pytest.fixture(scope="module")
def real_z2jh_chart(helm: Path, chart_module, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """chart/ with the real, pinned Z2JH 4.4.0 package in charts/ (offline), to render Z2JH's hub Deployment."""
    tgz = chart_module.z2jh_data_dir("4.4.0") / "jupyterhub-4.4.0.tgz"
    if not tgz.is_file():
        pytest.skip(f"the pinned Z2JH package is not available at {tgz}")
    chart = tmp_path_factory.mktemp("real") / "chart"
    shutil.copytree(CHART_SRC, chart, ignore=shutil.ignore_patterns("charts", "Chart.lock"))
    (chart / "charts").mkdir()
    shutil.copy(tgz, chart / "charts")
    return chart


def test_z2jh_hub_deployment_gets_the_password_from_the_secret(real_z2jh_chart, chart_module):
    docs = chart_module.render([], [], chart=real_z2jh_chart)
    (deployment,) = [d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "hub"]
    (hub,) = [c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "hub"]
    env = {e["name"]: e for e in hub["env"]}
    assert env[ENV]["valueFrom"] == {"secretKeyRef": {"name": SECRET, "key": "password"}}
    assert secret_of(docs)["data"]["password"]
