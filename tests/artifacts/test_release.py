"""The release, checked offline: workflows (actionlint), the chart packaging step (ci/release/package_chart.py with the
real Z2JH dependency), the krew package (validate-krew-manifest, then a real ``kubectl krew install`` from the
local archive) and ``pip install`` of the distribution putting ``kubectl jupyterhub`` on PATH.

The Go tools are built once from the Go module proxy (ci/release/go_tools.py); without Go those tests skip, saying so.
"""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import tarfile
import venv
from pathlib import Path

import pytest
import yaml

from ci import chart
from ci.dev import get_helm
from ci.release import go_tools, krew_plugin, package_chart

REPO = Path(__file__).resolve().parents[2]

WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.y*ml"))
RELEASE = REPO / ".github" / "workflows" / "release.yaml"


def go_tool(name: str) -> Path:
    try:
        return go_tools.ensure(name)
    except go_tools.GoMissing as e:
        pytest.skip(str(e))


# ---------------------------------------------------------------- workflows

def test_workflows_pass_actionlint():
    actionlint = go_tool("actionlint")
    assert WORKFLOWS and RELEASE in WORKFLOWS
    proc = subprocess.run([str(actionlint), "-no-color", *map(str, WORKFLOWS)], capture_output=True, text=True,
                          cwd=REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_release_workflow_publishes_what_the_readme_installs():
    flow = yaml.safe_load(RELEASE.read_text())
    assert flow[True]["push"]["tags"]  # `on:` is YAML 1.1's True
    jobs = flow["jobs"]
    images = {m["image"]: m for m in jobs["images"]["strategy"]["matrix"]["include"]}
    assert set(images) == {"hub", "singleuser"}
    assert all("linux/arm64" in m["platforms"] for m in images.values())
    steps = "\n".join(s.get("run", "") for job in jobs.values() for s in job["steps"])
    assert 'python -m ci.release.package_chart "$VERSION" --registry "$REGISTRY"' in steps
    assert 'helm push "dist/jupyterhub-ds-$VERSION.tgz" "oci://$REGISTRY/charts"' in steps
    assert 'python -m ci.release.krew_plugin "$VERSION"' in steps and "gh release create" in steps
    readme = (REPO / "README.md").read_text()
    assert "oci://ghcr.io/jupyterhub-ds/charts/jupyterhub-ds" in readme
    assert "kubectl krew install --manifest-url" in readme and "pip install" in readme


# ---------------------------------------------------------------- chart packaging

@pytest.fixture(scope="module")
def packaged(tmp_path_factory) -> tuple[Path, str]:
    return package_chart.package("v9.8.7", "ghcr.io/acme", tmp_path_factory.mktemp("dist"))


def test_packaged_chart_references_the_published_images(packaged):
    tgz, summary = packaged
    assert tgz.name == "jupyterhub-ds-9.8.7.tgz"
    assert "ghcr.io/acme/hub:9.8.7" in summary and "ghcr.io/acme/singleuser:9.8.7" in summary
    with tarfile.open(tgz) as tar:
        names = tar.getnames()
        meta = yaml.safe_load(tar.extractfile("jupyterhub-ds/Chart.yaml").read())
    assert meta["version"] == "9.8.7" and meta["appVersion"] == "9.8.7"
    assert "jupyterhub-ds/charts/jupyterhub/Chart.yaml" in names, "the Z2JH dependency is not in the package"
    # independently of the script's own check: helm template of the .tgz with default values
    docs = chart.split_documents(chart._run_helm(["template", "jupyterhub", str(tgz)], tgz.parent / "h").stdout)
    hub = next(d.doc for d in docs if d.doc.get("kind") == "Deployment" and d.doc["metadata"]["name"] == "hub")
    assert hub["spec"]["template"]["spec"]["containers"][0]["image"] == "ghcr.io/acme/hub:9.8.7"
    secret = next(d.doc for d in docs if d.doc.get("kind") == "Secret" and d.doc["metadata"]["name"] == "hub")
    values = yaml.safe_load(base64.b64decode(secret["data"]["values.yaml"]))
    single = values["singleuser"]["image"]
    assert (single["name"], single["tag"]) == ("ghcr.io/acme/singleuser", "9.8.7")
    assert "hub.services.kubectl-jupyterhub.apiToken" in secret["data"]  # the plugin's token, Z2JH's key
    role = values["hub"]["loadRoles"]["kubectl-jupyterhub"]
    assert role["services"] == ["kubectl-jupyterhub"] and role["scopes"] == ["admin:users", "servers"]


def test_package_check_catches_a_wrong_image(packaged):
    tgz, _ = packaged
    docs = chart.split_documents(chart._run_helm(["template", "jupyterhub", str(tgz)], tgz.parent / "h").stdout)
    with pytest.raises(package_chart.PackageError, match=r"hub Deployment runs ghcr\.io/acme/hub:9\.8\.7"):
        package_chart.check_rendered(docs, "9.8.8", "ghcr.io/acme")


def test_package_refuses_a_non_semantic_version(tmp_path):
    with pytest.raises(package_chart.PackageError, match="not semantic"):
        package_chart.package("latest", "ghcr.io/acme", tmp_path)


# ---------------------------------------------------------------- krew

@pytest.fixture(scope="module")
def krew_build(tmp_path_factory) -> tuple[Path, Path]:
    return krew_plugin.build("0.1.0", "jupyterhub-ds/jupyterhub-ds", tmp_path_factory.mktemp("krew"))


def test_krew_archive_is_reproducible(krew_build):
    archive, manifest = krew_build
    assert krew_plugin.archive_bytes("0.1.0") == archive.read_bytes()
    spec = yaml.safe_load(manifest.read_text())["spec"]
    (platform,) = spec["platforms"]
    assert platform["sha256"] == hashlib.sha256(archive.read_bytes()).hexdigest()
    assert platform["uri"].endswith("/releases/download/v0.1.0/kubectl-jupyterhub-0.1.0.tar.gz")
    assert spec["version"] == "v0.1.0"


def test_krew_manifest_validates(krew_build):
    _, manifest = krew_build
    validate = go_tool("validate-krew-manifest")
    proc = subprocess.run([str(validate), "-manifest", str(manifest), "-skip-install"], capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr


def test_krew_installs_the_archive_and_it_runs_without_pyyaml(krew_build, tmp_path):
    """``kubectl krew install --manifest --archive`` (krew's own offline install), then ``kubectl jupyterhub``
    through krew's symlink, with a Python that has only the standard library."""
    archive, manifest = krew_build
    krew = go_tool("krew")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "kubectl-krew").symlink_to(krew)
    bare = tmp_path / "bare-python"
    venv.EnvBuilder(with_pip=False, system_site_packages=False).create(bare)
    kubectl_dir = get_helm.ensure_helm()
    root = tmp_path / "krew-root"
    env = {"PATH": os.pathsep.join([str(root / "bin"), str(bare / "bin"), str(bindir), str(kubectl_dir),
                                    "/usr/bin", "/bin"]),
           "KREW_ROOT": str(root), "HOME": str(tmp_path)}
    proc = subprocess.run(["kubectl", "krew", "install", f"--manifest={manifest}", f"--archive={archive}"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (root / "store" / "jupyterhub" / "v0.1.0" / "LICENSE").exists()
    proc = subprocess.run(["kubectl", "jupyterhub", "--version"], env=env, capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.strip() == "kubectl-jupyterhub 0.1.0", proc.stdout + proc.stderr
    proc = subprocess.run(["kubectl", "jupyterhub", "users", "list", "-o", "yaml", "-n", "x",
                           "--kubeconfig", str(tmp_path / "none")], env=env, capture_output=True, text=True)
    assert proc.returncode == 1 and proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1, proc.stderr


# ---------------------------------------------------------------- pip install

def test_pip_install_puts_the_plugin_on_path(tmp_path):
    """``pip install .`` into a fresh virtualenv, then ``kubectl jupyterhub --help`` (kubectl's plugin lookup)."""
    target = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True, system_site_packages=False).create(target)
    pip = [str(target / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    proc = subprocess.run([*pip, str(REPO)], capture_output=True, text=True, timeout=900)
    if proc.returncode and "Could not find a version" in proc.stderr:
        pytest.skip(f"no package index reachable: {proc.stderr.strip().splitlines()[-1]}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    env = {**os.environ, "PATH": os.pathsep.join([str(target / "bin"), str(get_helm.ensure_helm()),
                                                  os.environ.get("PATH", "")])}
    proc = subprocess.run(["kubectl", "jupyterhub", "--help"], env=env, capture_output=True, text=True)
    assert proc.returncode == 0 and "usage: kubectl jupyterhub" in proc.stdout, proc.stderr
    for command in ("status", "users", "servers", "volumes", "top", "extend", "broadcast", "logs", "events"):
        assert command in proc.stdout
    # the plugin imports nothing from JupyterHub
    proc = subprocess.run([str(target / "bin" / "python"), "-c",
                           "import sys, kubectl_jupyterhub.cli; "
                           "print(sorted(m for m in sys.modules if m.split('.')[0] in "
                           "('jupyterhub', 'hub_extensions', 'tornado', 'kubernetes_asyncio')))"],
                          capture_output=True, text=True)
    assert proc.stdout.strip() == "[]", proc.stdout + proc.stderr
