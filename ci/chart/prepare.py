"""The chart prepared for helm: chart/ copied to a work directory with the real Z2JH dependency in its
``charts/`` (``helm dependency build`` with network, else the release archive), and the helm binary to run.

The Z2JH dependency is the real Zero-to-JupyterHub chart: ``prepare_chart`` copies chart/ to a work directory
and runs ``helm dependency build`` (the chart from https://hub.jupyter.org/helm-chart/, as pinned in Chart.lock).
Without network that fails, and the real release archive ``jupyterhub-<version>.tgz`` from the Z2JH data
directory is copied into the prepared chart's ``charts/`` instead (helm uses an archive there as it is). Both
render Z2JH's own objects (hub Deployment and Secret, proxy, NetworkPolicies, culler). Which one was used is
printed once on stderr; with neither, ``prepare_chart`` fails with one line saying so.

Environment:
    JHDS_HELM              helm binary to use (default: ci/dev/get_helm.py's cached helm 3.19.0)
    Z2JH_DATA_DIR          directory holding jupyterhub-<version>.tgz (default: the nearest
                           shared/z2jh/<dependency version> beside the checkout or one of its parents)
    JHDS_CHART_DEPENDENCY  auto (default: network, else the archive), network or archive
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from ci.dev import get_helm

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = REPO_ROOT / "chart"
DEPENDENCY_NAME = "jupyterhub"


class HelmError(RuntimeError):
    """helm exited non-zero; ``str()`` carries its stderr (the schema errors tests assert on)."""

    def __init__(self, cmd: Sequence[str], returncode: int, stdout: str, stderr: str):
        self.cmd, self.returncode, self.stdout, self.stderr = list(cmd), returncode, stdout, stderr
        super().__init__(f"helm {cmd[1] if len(cmd) > 1 else ''} exited {returncode}:\n{stderr or stdout}")


# ---------------------------------------------------------------- helm binary and environment

def helm_path() -> Path:
    """The helm binary: ``$JHDS_HELM``, else helm 3.19.0 from ci/dev/get_helm.py (downloaded once, cached)."""
    if os.environ.get("JHDS_HELM"):
        return Path(os.environ["JHDS_HELM"])
    return get_helm.ensure_helm() / "helm"


def _helm_env(home: Path) -> dict[str, str]:
    """Keep helm's cache, config and repositories out of the user's HOME."""
    env = dict(os.environ)
    env.update(HOME=str(home), HELM_CACHE_HOME=str(home / "cache"), HELM_CONFIG_HOME=str(home / "config"),
               HELM_DATA_HOME=str(home / "data"))
    return env


def _run_helm(args: Sequence[str], home: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    cmd = [str(helm_path()), *args]
    home.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_helm_env(home), timeout=timeout, check=False)
    if proc.returncode != 0:
        raise HelmError(cmd, proc.returncode, proc.stdout, proc.stderr)
    return proc


# ---------------------------------------------------------------- chart preparation

def dependency(chart_dir: Path = CHART_DIR) -> dict[str, Any]:
    """The Z2JH entry of ``dependencies`` in Chart.yaml."""
    meta = yaml.safe_load((chart_dir / "Chart.yaml").read_text())
    return next(d for d in meta.get("dependencies", []) if d["name"] == DEPENDENCY_NAME)


class DependencyUnavailable(RuntimeError):
    """Neither ``helm dependency build`` nor the offline archive could provide the Z2JH chart."""


def z2jh_data_dir(version: str) -> Path:
    """Z2JH data files (the release archive): ``$Z2JH_DATA_DIR``, else ``shared/z2jh/<version>`` beside the
    checkout or beside one of its parent directories (a CI clone may sit deeper than the main checkout)."""
    if os.environ.get("Z2JH_DATA_DIR"):
        return Path(os.environ["Z2JH_DATA_DIR"])
    candidates = [parent / "shared" / "z2jh" / version for parent in REPO_ROOT.parents]
    return next((c for c in candidates if (c / archive_name(version)).is_file()), candidates[0])


def archive_name(version: str) -> str:
    """File name of the packaged Z2JH chart, as ``helm package``/``helm dependency build`` name it."""
    return f"{DEPENDENCY_NAME}-{version}.tgz"


def z2jh_archive(version: str) -> Path:
    """The offline Z2JH release archive (may not exist; see ``z2jh_data_dir``)."""
    return z2jh_data_dir(version) / archive_name(version)


_announced: set[str] = set()
last_dependency_message = ""  # what the latest prepare_chart used, e.g. for a test summary


def _announce(message: str) -> None:
    global last_dependency_message
    last_dependency_message = message
    if message not in _announced:
        _announced.add(message)
        print(f"ci.chart: {message}", file=sys.stderr)


def dependency_source(chart: Path) -> str:
    """``"real"`` when charts/ holds the Z2JH chart archive (downloaded or copied from the data directory)."""
    if list((chart / "charts").glob(f"{DEPENDENCY_NAME}-*.tgz")):
        return "real"
    raise FileNotFoundError(f"{chart}/charts has no {DEPENDENCY_NAME} dependency; call prepare_chart first")


def _failure_summary(exc: Exception) -> str:
    """The most telling line of a failed ``helm dependency build`` (the network error when offline)."""
    lines = [ln.strip() for ln in f"{getattr(exc, 'stdout', '')}\n{getattr(exc, 'stderr', '')}".splitlines()]
    lines = [ln for ln in lines if ln]
    telling = [ln for ln in lines if re.search(r"dial tcp|no such host|timeout|refused|unreachable", ln)]
    line = (telling or lines or [str(exc)])[0]
    match = re.search(r"(dial tcp|lookup \S+).*", line)
    line = match.group(0) if match else line
    return line if len(line) <= 200 else line[:197] + "..."


def provide_dependency(chart: Path, home: Path) -> str:
    """Put the real Z2JH chart into ``chart/charts/``: ``helm dependency build`` (network), else the release
    archive from the Z2JH data directory. Returns a sentence saying which; raises DependencyUnavailable."""
    mode = os.environ.get("JHDS_CHART_DEPENDENCY", "auto")
    if mode not in ("auto", "network", "archive"):
        raise ValueError(f"JHDS_CHART_DEPENDENCY={mode!r}: expected auto, network or archive")
    version = dependency(chart)["version"]
    network_error = "not tried (JHDS_CHART_DEPENDENCY=archive)"
    if mode != "archive":
        try:
            # With a Chart.lock, `helm dependency build` wants the repository added (helm repo add) first
            _run_helm(["repo", "add", "--force-update", DEPENDENCY_NAME, dependency(chart)["repository"]], home)
            _run_helm(["dependency", "build", str(chart)], home)
        except (HelmError, subprocess.TimeoutExpired) as exc:
            shutil.rmtree(chart / "charts", ignore_errors=True)
            network_error = _failure_summary(exc)
            if mode == "network":
                raise DependencyUnavailable(f"helm dependency build failed: {network_error}") from exc
        else:
            return f"real chart {DEPENDENCY_NAME} {version} (helm dependency build)"
    archive = z2jh_archive(version)
    if not archive.is_file():
        raise DependencyUnavailable(
            f"Z2JH {version} unavailable: helm dependency build failed ({network_error}) and {archive} "
            "does not exist (set Z2JH_DATA_DIR to the directory holding it)")
    (chart / "charts").mkdir(exist_ok=True)
    shutil.copyfile(archive, chart / "charts" / archive.name)
    return f"real chart {DEPENDENCY_NAME} {version} (offline archive {archive})"


def prepare_chart(workdir: str | os.PathLike[str]) -> Path:
    """Copy chart/ into ``workdir`` and provide the real Z2JH dependency in its ``charts/``."""
    workdir = Path(workdir)
    chart = workdir / CHART_DIR.name
    shutil.copytree(CHART_DIR, chart, ignore=shutil.ignore_patterns("charts", "__pycache__"))
    _announce("Z2JH dependency: " + provide_dependency(chart, workdir / "helm-home"))
    return chart


_default_chart: Path | None = None


def default_chart() -> Path:
    """A chart prepared once per process in a temporary directory (removed at exit)."""
    global _default_chart
    if _default_chart is None:
        tmp = tempfile.mkdtemp(prefix="jhds-chart-")
        atexit.register(shutil.rmtree, tmp, ignore_errors=True)
        _default_chart = prepare_chart(tmp)
    return _default_chart
