"""Chart hygiene as in well-kept charts: Chart.yaml metadata, a committed Chart.lock that helm accepts, and
chart/README.md's settings table generated from the schema."""

from __future__ import annotations

import functools
import http.server
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART_YAML = REPO_ROOT / "chart" / "Chart.yaml"


def test_chart_yaml_metadata():
    meta = yaml.safe_load(CHART_YAML.read_text())
    assert meta["icon"].startswith("https://")
    assert meta["home"].startswith("https://")
    assert meta["sources"] and all(s.startswith("https://") for s in meta["sources"])
    assert meta["maintainers"] and all(m["name"] for m in meta["maintainers"])
    annotations = meta["annotations"]
    assert annotations["artifacthub.io/license"] == "BSD-3-Clause"
    images = yaml.safe_load(annotations["artifacthub.io/images"])
    assert {i["image"] for i in images} == {f"ghcr.io/jupyterhub-ds/{n}:{meta['appVersion']}"
                                            for n in ("hub", "singleuser")}
    for link in yaml.safe_load(annotations["artifacthub.io/links"]):
        assert link["url"].startswith("https://")


def test_chart_lock_is_committed_and_current(chart_module):
    assert not chart_module.sync_lock(check=True), "run python -m ci.chart sync-lock"
    ignored = subprocess.run(["git", "check-ignore", "-q", "chart/Chart.lock"], cwd=REPO_ROOT, check=False)
    assert ignored.returncode == 1, "chart/Chart.lock must not be git-ignored"


def test_lock_digest_is_helms(chart_module, helm, tmp_path):
    """Our offline digest equals the one `helm dependency update` writes (a file:// dependency, offline)."""
    env_home = tmp_path / "home"
    for name in ("sub", "top"):
        subprocess.run([str(helm), "create", name], cwd=tmp_path, check=True, capture_output=True,
                       env={"HOME": str(env_home), "PATH": "/usr/bin:/bin"})
    dep = {"name": "sub", "version": "0.1.0", "repository": "file://../sub"}
    meta = yaml.safe_load((tmp_path / "top" / "Chart.yaml").read_text())
    meta["dependencies"] = [dep]
    (tmp_path / "top" / "Chart.yaml").write_text(yaml.safe_dump(meta))
    chart_module._run_helm(["dependency", "update", str(tmp_path / "top")], env_home)
    lock = yaml.safe_load((tmp_path / "top" / "Chart.lock").read_text())
    assert lock["digest"] == chart_module.lock_digest([dep], [dep])


@pytest.fixture
def local_z2jh_repository(chart_module, chart_dir, tmp_path):
    """Z2JH's repository as helm sees it after `helm repo add jupyterhub https://hub.jupyter.org/helm-chart/`,
    offline: the repository entry plus its cached index, whose chart URL points at a local HTTP server
    holding the release archive."""
    version = chart_module.dependency()["version"]
    served = tmp_path / "served"
    served.mkdir()
    shutil.copyfile(next((chart_dir / "charts").glob("jupyterhub-*.tgz")), served / f"jupyterhub-{version}.tgz")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    home = tmp_path / "helm-home"
    chart_module._run_helm(["repo", "index", str(served), "--url", f"http://127.0.0.1:{server.server_port}/"], home)
    (home / "cache" / "repository").mkdir(parents=True)
    shutil.copyfile(served / "index.yaml", home / "cache" / "repository" / "jupyterhub-index.yaml")
    (home / "config").mkdir(parents=True)
    (home / "config" / "repositories.yaml").write_text(yaml.safe_dump({
        "apiVersion": "", "generated": "0001-01-01T00:00:00Z",
        "repositories": [{"name": "jupyterhub", "url": chart_module.dependency()["repository"]}]}))
    yield home
    server.shutdown()


def test_helm_dependency_build_accepts_the_committed_lock(chart_module, local_z2jh_repository, tmp_path):
    """`helm dependency build` with our Chart.lock fetches Z2JH and `helm dependency list` reports ok."""
    chart = tmp_path / "work" / "chart"
    shutil.copytree(REPO_ROOT / "chart", chart, ignore=shutil.ignore_patterns("charts"))
    out = chart_module._run_helm(["dependency", "build", "--skip-refresh", str(chart)], local_z2jh_repository)
    assert "Saving 1 charts" in out.stdout
    assert list((chart / "charts").glob("jupyterhub-*.tgz"))
    listed = chart_module._run_helm(["dependency", "list", str(chart)], local_z2jh_repository).stdout
    (row,) = [line.split() for line in listed.splitlines() if line.startswith("jupyterhub")]
    assert row[-1] == "ok", listed


def test_helm_dependency_build_refuses_a_stale_lock(chart_module, local_z2jh_repository, tmp_path):
    """The control: a lock that does not match Chart.yaml fails, so the test above means something."""
    chart = tmp_path / "work" / "chart"
    shutil.copytree(REPO_ROOT / "chart", chart, ignore=shutil.ignore_patterns("charts"))
    lock = yaml.safe_load((chart / "Chart.lock").read_text())
    lock["digest"] = "sha256:" + "0" * 64
    (chart / "Chart.lock").write_text(yaml.safe_dump(lock))
    with pytest.raises(chart_module.HelmError, match="out of sync"):
        chart_module._run_helm(["dependency", "build", "--skip-refresh", str(chart)], local_z2jh_repository)


def test_prepared_chart_dependency_list_is_ok(chart_module, chart_dir):
    """The chart the tests render (archive copied offline or built with network) satisfies the lock."""
    listed = chart_module._run_helm(["dependency", "list", str(chart_dir)], chart_dir.parent / "helm-home").stdout
    (row,) = [line.split() for line in listed.splitlines() if line.startswith("jupyterhub")]
    assert row[1] == chart_module.dependency()["version"] and row[-1] == "ok", listed


def test_readme_settings_table_is_current(chart_module):
    assert not chart_module.sync_readme(check=True), "run python -m ci.chart sync-readme"


def test_readme_settings_table_lists_every_key(chart_module):
    """Every leaf of the custom.ds schema has a row, with its default from the Python settings."""
    table = chart_module.readme_table()
    assert "| `culler.timeoutSeconds` | integer | `3600` |" in table
    assert "| `storage.volumes` | list of objects | `[home, workspace, cache]` |" in table
    assert "| `storage.volumes[].mountPath` | string | (per item) |" in table
    assert "| `hubUrl` | string or null | `null` |" in table
    rows = [line for line in table.splitlines()[2:] if line.startswith("| `")]
    assert len(rows) == len({line.split("|")[1] for line in rows}) > 40


def test_cli_sync_readme_and_lock_check():
    for command in ("sync-readme", "sync-lock"):
        proc = subprocess.run([sys.executable, "-m", "ci.chart", command, "--check"], cwd=REPO_ROOT,
                              capture_output=True, text=True, check=False)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "up to date" in proc.stdout


def test_readme_table_goes_stale_when_the_schema_changes(chart_module):
    current = chart_module.README_PATH.read_text()
    row = "| `culler.timeoutSeconds` | integer | `3600` |"
    edited = current.replace(row, row.replace("3600", "1"))
    assert edited != current
    assert chart_module.synced_readme(edited) == current


def test_one_line_error_without_network_or_archive(chart_module, tmp_path, monkeypatch):
    monkeypatch.setenv("Z2JH_DATA_DIR", str(tmp_path / "nowhere"))
    monkeypatch.setenv("JHDS_CHART_DEPENDENCY", "archive")
    with pytest.raises(chart_module.DependencyUnavailable) as info:
        chart_module.prepare_chart(tmp_path / "work")
    message = str(info.value)
    assert "\n" not in message
    assert "jupyterhub-4.4.0.tgz does not exist" in message and "Z2JH_DATA_DIR" in message
