#!/usr/bin/env python3
"""Build the krew package of ``kubectl jupyterhub``: a reproducible archive and its rendered manifest.

    python -m ci.release.krew_plugin VERSION [--repo owner/name] [--out dist]

Writes ``<out>/kubectl-jupyterhub-VERSION.tar.gz`` (the sh launcher plugins/krew/kubectl-jupyterhub, the
``kubectl_jupyterhub`` sources with the version recorded, LICENSE; fixed mtimes and owners, so the same
sources give the same sha256) and ``<out>/jupyterhub.yaml`` (plugins/krew/jupyterhub.yaml.in with the version,
the release download URL and the archive's sha256). Prints both paths.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import re
import sys
import tarfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = REPO_ROOT / "plugins" / "krew" / "jupyterhub.yaml.in"
LAUNCHER = REPO_ROOT / "plugins" / "krew" / "kubectl-jupyterhub"
PACKAGE = REPO_ROOT / "kubectl_jupyterhub"
DEFAULT_REPO = "jupyterhub-ds/jupyterhub-ds"
SEMVER = re.compile(r"^\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?$")


def _add(tar: tarfile.TarFile, name: str, data: bytes, mode: int) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), mode, 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    tar.addfile(info, io.BytesIO(data))


def archive_bytes(version: str) -> bytes:
    """The .tar.gz (reproducible: sorted entries, mtime 0, root owner, gzip without a timestamp)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        _add(tar, "LICENSE", (REPO_ROOT / "LICENSE").read_bytes(), 0o644)
        _add(tar, "kubectl-jupyterhub", LAUNCHER.read_bytes(), 0o755)
        for path in sorted(PACKAGE.glob("*.py")):
            _add(tar, f"kubectl_jupyterhub/{path.name}", path.read_bytes(), 0o644)
        _add(tar, "kubectl_jupyterhub/_release.py", f'VERSION = "{version}"\n'.encode(), 0o644)
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0, filename="") as gz:
        gz.write(raw.getvalue())
    return out.getvalue()


def render_manifest(version: str, repo: str, sha256: str) -> str:
    text = TEMPLATE.read_text()
    for key, value in (("VERSION", version), ("REPO", repo), ("SHA256", sha256)):
        text = text.replace(f"@{key}@", value)
    leftover = re.findall(r"@[A-Z0-9]+@", text)
    if leftover:
        raise ValueError(f"{TEMPLATE}: unfilled placeholders {leftover}")
    return text


def build(version: str, repo: str, out: Path) -> tuple[Path, Path]:
    version = version.removeprefix("v")
    if not SEMVER.match(version):
        raise ValueError(f"version {version!r} is not MAJOR.MINOR.PATCH[-pre]")
    out.mkdir(parents=True, exist_ok=True)
    data = archive_bytes(version)
    archive = out / f"kubectl-jupyterhub-{version}.tar.gz"
    archive.write_bytes(data)
    manifest = out / "jupyterhub.yaml"  # krew wants the file named after the plugin
    manifest.write_text(render_manifest(version, repo, hashlib.sha256(data).hexdigest()))
    return archive, manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("version")
    parser.add_argument("--repo", default=DEFAULT_REPO,
                        help=f"GitHub owner/name of the release (default {DEFAULT_REPO})")
    parser.add_argument("--out", type=Path, default=Path("dist"))
    args = parser.parse_args(argv)
    try:
        archive, manifest = build(args.version, args.repo, args.out)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(archive)
    print(manifest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
