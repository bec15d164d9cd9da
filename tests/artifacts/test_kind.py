"""Offline validation of the kind (Kubernetes-in-Docker) deployment path.

The path itself needs a Docker engine and runs only in .github/workflows/kind.yaml. Here: yamllint, the
workflow's structure and action pins, the kind cluster config, ci/kind/up.sh (syntax, settings, the helm
values it passes), and that those values render with the chart.
"""

from __future__ import annotations

import itertools
import os
import re
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
WORKFLOW = REPO / ".github" / "workflows" / "kind.yaml"
KIND_CONFIG = REPO / "ci" / "kind" / "kind-config.yaml"
UP_SH = REPO / "ci" / "kind" / "up.sh"
YAMLLINT_CONFIG = REPO / ".yamllint.yaml"
CHART_YAML = REPO / "chart" / "Chart.yaml"
CHART_CLI = REPO / "ci" / "chart"  # python -m ci.chart
BIN = Path(sys.executable).parent

# Settings up.sh reads from the environment: cleared so the defaults are what the tests see.
UP_ENV = (
    "KIND_CLUSTER_NAME",
    "KIND_CONFIG",
    "NAMESPACE",
    "RELEASE",
    "VALUES_FILE",
    "HUB_IMAGE",
    "SINGLEUSER_IMAGE",
    "IMAGE_TAG",
    "POD_SECURITY_LEVEL",
    "KIND_SHARED_DIR",
)


def up(*args: str) -> str:
    env = {k: v for k, v in os.environ.items() if k not in UP_ENV}
    proc = subprocess.run(["bash", str(UP_SH), *args], capture_output=True, text=True, env=env, timeout=30)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


@pytest.fixture(scope="module")
def up_config() -> dict[str, str]:
    return dict(line.split("=", 1) for line in up("--print-config").splitlines() if "=" in line)


@pytest.fixture(scope="module")
def helm_args() -> list[str]:
    return up("--print-helm-args").splitlines()


def set_values(args: list[str]) -> dict[str, str]:
    """{key: value} of the --set/--set-string arguments."""
    values = {}
    for flag, value in itertools.pairwise(args):
        if flag in ("--set", "--set-string"):
            key, _, val = value.partition("=")
            values[key] = val
    return values


@pytest.fixture(scope="module")
def workflow() -> dict[Any, Any]:
    return yaml.safe_load(WORKFLOW.read_text())


@pytest.fixture(scope="module")
def kind_config() -> dict[str, Any]:
    return yaml.safe_load(KIND_CONFIG.read_text())


def steps(workflow: dict[Any, Any]) -> list[dict[str, Any]]:
    return [step for job in workflow["jobs"].values() for step in job.get("steps", [])]


def app_version() -> str:
    return str(yaml.safe_load(CHART_YAML.read_text())["appVersion"])


# --- yamllint -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [WORKFLOW, KIND_CONFIG, YAMLLINT_CONFIG], ids=lambda p: p.name)
def test_yamllint(path: Path) -> None:
    proc = subprocess.run(
        [str(BIN / "yamllint"), "--strict", "-c", str(YAMLLINT_CONFIG), str(path.relative_to(REPO))],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_yamllint_config_ignores_helm_templates() -> None:
    from yamllint.config import YamlLintConfig

    config = YamlLintConfig(file=str(YAMLLINT_CONFIG))
    assert config.is_file_ignored("chart/templates/hub/rbac.yaml")
    assert not config.is_file_ignored("chart/values.yaml")
    assert not config.is_file_ignored(".github/workflows/kind.yaml")


# --- workflow -------------------------------------------------------------------------------------------------


def test_workflow_triggers(workflow: dict[Any, Any]) -> None:
    # PyYAML (YAML 1.1) reads the key `on` as the boolean True.
    triggers = workflow.get("on", workflow.get(True))
    assert isinstance(triggers, dict), triggers
    assert "push" in triggers
    assert "pull_request" in triggers


def test_workflow_runs_on_ubuntu_with_python_311(workflow: dict[Any, Any]) -> None:
    (job,) = workflow["jobs"].values()
    assert job["runs-on"] == "ubuntu-latest"
    pythons = [s["with"]["python-version"] for s in steps(workflow) if "setup-python" in s.get("uses", "")]
    assert pythons == ["3.11"]


def test_workflow_actions_are_pinned(workflow: dict[Any, Any]) -> None:
    uses = [step["uses"] for step in steps(workflow) if "uses" in step]
    assert uses
    for ref in uses:
        assert re.fullmatch(r"[\w.-]+/[\w./-]+@(v\d+(\.\d+)*|[0-9a-f]{40})", ref), f"{ref} is not pinned"
    actions = {ref.split("@")[0].lower() for ref in uses}
    assert {"azure/setup-helm", "helm/kind-action"} <= actions


def test_workflow_runs_make_up_then_make_test_kind(workflow: dict[Any, Any]) -> None:
    runs = [step.get("run", "") for step in steps(workflow)]

    def index(target: str) -> int:
        matches = [i for i, run in enumerate(runs) if re.search(rf"(^|\s)make\s+{target}(\s|$)", run)]
        assert matches, f"no step runs `make {target}`"
        return matches[0]

    assert index("up") < index("test-kind")


def test_workflow_dumps_the_cluster_on_failure(workflow: dict[Any, Any]) -> None:
    dumps = [step["run"] for step in steps(workflow) if "failure()" in str(step.get("if", ""))]
    assert dumps, "no step runs on failure"
    text = "\n".join(dumps)
    assert re.search(r"kubectl get all,pvc,events -A", text)
    assert re.search(r"kubectl .*logs deploy/hub", text)


# --- kind config ----------------------------------------------------------------------------------------------


def test_kind_config_cluster(kind_config: dict[str, Any]) -> None:
    assert kind_config["apiVersion"] == "kind.x-k8s.io/v1alpha4"
    assert kind_config["kind"] == "Cluster"
    roles = [node["role"] for node in kind_config["nodes"]]
    assert roles.count("control-plane") == 1
    # up.sh puts the shared volume on "<cluster>-worker": exactly one worker has that name.
    assert roles.count("worker") == 1


def test_kind_port_mapping_matches_up_sh(kind_config: dict[str, Any], up_config: dict[str, str]) -> None:
    mappings = [m for node in kind_config["nodes"] for m in node.get("extraPortMappings", [])]
    assert {(m["containerPort"], m["hostPort"]) for m in mappings} == {
        (int(up_config["PROXY_NODE_PORT"]), int(up_config["HOST_PORT"]))
    }
    assert up_config["URL"] == f"http://localhost:{up_config['HOST_PORT']}"


# --- up.sh ----------------------------------------------------------------------------------------------------


def test_up_sh_syntax() -> None:
    proc = subprocess.run(["bash", "-n", str(UP_SH)], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr


def test_up_sh_is_strict_executable_and_uses_path() -> None:
    text = UP_SH.read_text()
    assert text.startswith("#!/usr/bin/env bash\n")
    assert re.search(r"^set -euo pipefail$", text, re.M)
    assert UP_SH.stat().st_mode & stat.S_IXUSR, "ci/kind/up.sh is not executable"
    # Tools come from PATH, never from a fixed location.
    assert not re.search(r"/(usr|opt|home|root)/\S*/(docker|kind|kubectl|helm)\b", text)


def test_up_sh_steps() -> None:
    text = UP_SH.read_text()
    assert "kind create cluster" in text and "--config" in text
    for dockerfile in re.findall(r"docker build -f (\S+)", text):
        assert (REPO / dockerfile).is_file(), dockerfile
    assert "docker build -f images/hub/Dockerfile" in text
    assert "docker build -f images/singleuser/Dockerfile" in text
    assert "kind load docker-image" in text
    assert "helm dependency build chart" in text
    assert "helm repo add --force-update jupyterhub https://hub.jupyter.org/helm-chart/" in text  # Chart.lock
    assert re.search(r"helm upgrade --install \"\$RELEASE\" chart", text)
    assert "--wait" in text
    assert "pod-security.kubernetes.io/enforce" in text
    assert "get secret jupyterhub-ds-first-admin" in text  # prints how to read the first admin's password


def test_up_sh_defaults(up_config: dict[str, str]) -> None:
    assert up_config["NAMESPACE"] == "jupyterhub-ds"
    assert up_config["RELEASE"] == "jupyterhub-ds"
    assert up_config["VALUES_FILE"] == "values.example.yaml"
    assert (REPO / up_config["VALUES_FILE"]).is_file()
    assert (REPO / up_config["KIND_CONFIG"]) == KIND_CONFIG


def test_image_tags_follow_the_chart_app_version(up_config: dict[str, str], helm_args: list[str]) -> None:
    version = app_version()
    assert up_config["IMAGE_TAG"] == version
    values = set_values(helm_args)
    assert values["jupyterhub.hub.image.tag"] == version
    assert values["jupyterhub.singleuser.image.tag"] == version
    assert values["jupyterhub.hub.image.name"] == up_config["HUB_IMAGE"]
    assert values["jupyterhub.singleuser.image.name"] == up_config["SINGLEUSER_IMAGE"]


def test_proxy_is_exposed_on_the_mapped_node_port(up_config: dict[str, str], helm_args: list[str]) -> None:
    values = set_values(helm_args)
    assert values["jupyterhub.proxy.service.type"] == "NodePort"
    assert values["jupyterhub.proxy.service.nodePorts.http"] == up_config["PROXY_NODE_PORT"]
    assert helm_args[:2] == ["-f", up_config["VALUES_FILE"]]


def test_helm_values_of_up_sh_render(helm_args: list[str], up_config: dict[str, str]) -> None:
    """The chart, on the real Z2JH dependency (see ci/chart/), accepts up.sh's values."""
    if not CHART_CLI.exists():
        pytest.skip("ci/chart/ (chart rendering helper) is not there")
    proc = subprocess.run(
        [sys.executable, "-m", "ci.chart", "render", *helm_args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    docs = [d for d in yaml.safe_load_all(proc.stdout) if d]
    claims = [
        d for d in docs if d["kind"] == "PersistentVolumeClaim" and d["metadata"]["name"] == "jupyterhub-ds-shared"
    ]
    # The shared claim must bind to up.sh's hostPath PersistentVolume: no dynamic provisioning.
    assert [c["spec"].get("storageClassName") for c in claims] == [""]
    services = [d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == "proxy-public"]
    (service,) = services  # the real Z2JH chart renders (ci/chart/: network or the offline archive)
    assert service["spec"]["type"] == "NodePort"
    ports = {p["name"]: p.get("nodePort") for p in service["spec"]["ports"]}
    assert ports["http"] == int(up_config["PROXY_NODE_PORT"])


def test_makefile_targets_used_by_the_workflow() -> None:
    makefile = REPO / "Makefile"
    if not makefile.exists():
        pytest.skip("no Makefile yet")
    targets = set(re.findall(r"^([\w.-]+)\s*:", makefile.read_text(), re.M))
    assert {"up", "test-kind"} <= targets, f"Makefile lacks {sorted({'up', 'test-kind'} - targets)}"
