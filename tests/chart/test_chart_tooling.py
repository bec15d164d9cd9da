"""NOTES.txt, the ci.chart CLI, ci/dev/get_helm.py, and hygiene of the chart's files."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_notes_explain_access_and_first_login(renderer):
    notes = renderer.notes(namespace="data-team")
    assert "kubectl --namespace data-team get service proxy-public" in notes
    assert "kubectl -n data-team port-forward svc/proxy-public 8080:80" in notes
    assert 'User name "admin"' in notes
    assert ("kubectl -n data-team get secret jupyterhub-ds-first-admin -o jsonpath='{.data.password}' "
            "| base64 -d") in notes
    assert "Nobody can sign up with an admin's name." in notes
    assert "/hub/signup" in notes and "sign up as" not in notes  # no first-visitor-wins instructions
    assert "kubectl label namespace data-team pod-security.kubernetes.io/enforce=privileged" in notes
    assert "rbac.create=false" not in notes


def test_notes_follow_the_values(renderer):
    notes = renderer.notes("jupyterhub.custom.ds.accounts.firstAdmin=root",
                           "jupyterhub.custom.ds.accounts.allowAdminSignup=true",
                           "podSecurity.namespaceLabels=true", "rbac.create=false",
                           "jupyterhub.fullnameOverride=ds")
    assert 'User name "root"' in notes
    assert "Nobody can sign up with an admin's name." not in notes
    assert "pod-security.kubernetes.io/enforce" not in notes
    assert 'Grant the hub ServiceAccount "ds-hub"' in notes
    assert "svc/ds-proxy-public 8080:80" in notes


def test_notes_with_another_authenticator(renderer):
    notes = renderer.notes("jupyterhub.hub.config.JupyterHub.authenticator_class=dummy")
    assert 'The authenticator ("dummy") is not NativeAuthenticator' in notes
    assert "get secret jupyterhub-ds-first-admin" not in notes


def test_cli_render_prints_yaml(helm):
    proc = subprocess.run([sys.executable, "-m", "ci.chart", "render", "-f", "values.example.yaml"],
                          cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    docs = [d for d in yaml.safe_load_all(proc.stdout) if d]
    assert {"PersistentVolumeClaim", "Role", "ClusterRole"} <= {d["kind"] for d in docs}
    assert "Z2JH dependency:" in proc.stderr  # which dependency path was used, printed once
    assert proc.stderr.count("Z2JH dependency:") == 1


def test_cli_render_reports_schema_errors(helm):
    proc = subprocess.run([sys.executable, "-m", "ci.chart", "render", "--set", "jupyterhub.hub.myKey=1"],
                          cwd=REPO_ROOT, capture_output=True, text=True, check=False)
    assert proc.returncode != 0
    assert "additional properties 'myKey' not allowed" in proc.stderr


def test_cli_sync_schema_check():
    proc = subprocess.run([sys.executable, "-m", "ci.chart", "sync-schema", "--check"], cwd=REPO_ROOT,
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "up to date" in proc.stdout


def test_helm_is_the_pinned_version(helm):
    out = subprocess.run([str(helm), "version", "--short"], capture_output=True, text=True, check=True).stdout
    assert out.startswith("v3.19.0")


def _load_get_helm():
    from ci.dev import get_helm

    return get_helm


def test_get_helm_cache_dir(monkeypatch, tmp_path):
    get_helm = _load_get_helm()
    monkeypatch.setenv("JHDS_CACHE", str(tmp_path / "c"))
    assert get_helm.tools_dir() == tmp_path / "c" / "tools" / "helm-3.19.0"
    monkeypatch.delenv("JHDS_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert get_helm.tools_dir() == tmp_path / "x" / "jupyterhub-ds" / "tools" / "helm-3.19.0"


def test_get_helm_is_idempotent(monkeypatch, tmp_path):
    """With both binaries present nothing is downloaded."""
    get_helm = _load_get_helm()
    monkeypatch.setenv("JHDS_CACHE", str(tmp_path))
    dest = get_helm.tools_dir()
    dest.mkdir(parents=True)
    for name in ("helm", "kubectl"):
        (dest / name).write_text("#!/bin/sh\n")
        (dest / name).chmod(0o755)

    def no_download(*args, **kwargs):
        raise AssertionError("downloaded although the binaries were present")

    monkeypatch.setattr(get_helm.subprocess, "run", no_download)
    assert get_helm.ensure_helm() == dest


OWN_FILES = ["chart/Chart.yaml", "chart/values.yaml", "chart/values.schema.json", "chart/.helmignore",
             "chart/README.md", "values.example.yaml", "ci/dev/get_helm.py",
             *[str(p.relative_to(REPO_ROOT)) for p in sorted((REPO_ROOT / "ci" / "chart").glob("*.py"))],
             *[str(p.relative_to(REPO_ROOT)) for p in sorted((REPO_ROOT / "chart" / "templates").rglob("*"))
               if p.is_file()],
             *[str(p.relative_to(REPO_ROOT)) for p in sorted((REPO_ROOT / "tests" / "chart").glob("*.py"))]]


@pytest.mark.parametrize("path", OWN_FILES)
def test_no_machine_paths_in_committed_files(path):
    text = (REPO_ROOT / path).read_text()
    # Paths inside images (/home/lab, /tmp/tensorboard) are fine; this machine's checkout and HOME are not.
    assert not re.search(r"(?<![\w.])/(work|root)/", text), f"{path} names a machine path"
