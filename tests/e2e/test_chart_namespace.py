"""podSecurity.manageNamespace with `helm install` on a real API server: which namespace states work.

Helm stores the release record in the release namespace before it creates anything, and adopts an existing
object only when it carries Helm's ownership metadata. So the chart-owned Namespace works in exactly one way:
an existing namespace labelled and annotated for the release (README, "Pod Security"). The rest fail, and
the failures name what to do. Z2JH's pre-install image-puller hook is off (helm would wait for its Job).
"""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import pytest

from ci.dev import devenv

VALUES = ("--set", "podSecurity.manageNamespace=true", "--set", "jupyterhub.prePuller.hook.enabled=false",
          "--set", "rbac.create=false", "--set", "jupyterhub.custom.ds.storage.shared.enabled=false")


@pytest.fixture(scope="module")
def chart(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return devenv.chart.prepare_chart(tmp_path_factory.mktemp("ns-chart"))


class Helm:
    def __init__(self, chart: Path, kubeconfig: Path, home: Path):
        self.chart, self.kubeconfig, self.home = chart, kubeconfig, home
        self.cleanup: list[tuple[str, str]] = []

    def install(self, release: str, namespace: str, *extra: str) -> None:
        self.cleanup.append((release, namespace))
        devenv.chart._run_helm(["install", release, str(self.chart), "-n", namespace, "--kubeconfig",
                                str(self.kubeconfig), *VALUES, *extra], self.home)

    def kubectl(self, *args: str) -> str:
        return subprocess.run(["kubectl", "--kubeconfig", str(self.kubeconfig), *args], capture_output=True,
                              text=True, check=True).stdout


@pytest.fixture
def helm(chart: Path, admin_kubeconfig: Path, tmp_path: Path):
    h = Helm(chart, admin_kubeconfig, tmp_path / "helm-home")
    yield h
    for release, namespace in h.cleanup:
        subprocess.run([str(devenv.chart.helm_path()), "uninstall", release, "-n", namespace, "--kubeconfig",
                        str(admin_kubeconfig)], capture_output=True, check=False,
                       env=devenv.chart._helm_env(tmp_path / "helm-home"))
    for namespace in {ns for _, ns in h.cleanup}:
        subprocess.run(["kubectl", "--kubeconfig", str(admin_kubeconfig), "delete", "namespace", namespace,
                        "--wait=false"], capture_output=True, check=False)


def names() -> tuple[str, str]:
    suffix = uuid.uuid4().hex[:6]
    return f"ns-{suffix}", f"r{suffix}"


def test_fresh_namespace_fails_without_create_namespace(helm):
    namespace, release = names()
    with pytest.raises(devenv.chart.HelmError, match=f'namespaces "{namespace}" not found'):
        helm.install(release, namespace)


def test_fresh_namespace_fails_with_create_namespace(helm):
    namespace, release = names()
    with pytest.raises(devenv.chart.HelmError, match=f'namespaces "{namespace}" already exists'):
        helm.install(release, namespace, "--create-namespace")


def test_unowned_existing_namespace_fails_with_the_adoption_commands(helm):
    namespace, release = names()
    helm.kubectl("create", "namespace", namespace)
    with pytest.raises(devenv.chart.HelmError) as info:
        helm.install(release, namespace)
    assert f"kubectl label namespace {namespace} app.kubernetes.io/managed-by=Helm" in info.value.stderr
    assert (f"kubectl annotate namespace {namespace} meta.helm.sh/release-name={release} "
            f"meta.helm.sh/release-namespace={namespace}") in info.value.stderr


@pytest.mark.parametrize("create_namespace", [False, True], ids=["plain", "with-create-namespace"])
def test_adopted_namespace_gets_the_labels_and_survives_uninstall(helm, create_namespace):
    """The documented way: create, label, annotate, install; upgrade changes the level; uninstall keeps it."""
    namespace, release = names()
    helm.kubectl("create", "namespace", namespace)
    helm.kubectl("label", "namespace", namespace, "app.kubernetes.io/managed-by=Helm")
    helm.kubectl("annotate", "namespace", namespace, f"meta.helm.sh/release-name={release}",
                 f"meta.helm.sh/release-namespace={namespace}")
    helm.install(release, namespace, *(["--create-namespace"] if create_namespace else []))
    label = "jsonpath={.metadata.labels.pod-security\\.kubernetes\\.io/enforce}"
    assert helm.kubectl("get", "namespace", namespace, "-o", label) == "privileged"
    devenv.chart._run_helm(["upgrade", release, str(helm.chart), "-n", namespace, "--kubeconfig",
                            str(helm.kubeconfig), *VALUES, "--set", "podSecurity.enforce=baseline"], helm.home)
    assert helm.kubectl("get", "namespace", namespace, "-o", label) == "baseline"
    devenv.chart._run_helm(["uninstall", release, "-n", namespace, "--kubeconfig", str(helm.kubeconfig)],
                           helm.home)
    helm.cleanup.remove((release, namespace))
    assert helm.kubectl("get", "namespace", namespace, "-o", "jsonpath={.status.phase}") == "Active"
    helm.cleanup.append(("none", namespace))  # the fixture deletes the namespace
