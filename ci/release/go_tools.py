#!/usr/bin/env python3
"""Build pinned Go command-line tools from the Go module proxy into a versioned cache directory.

Like ci/dev/get_helm.py does for helm: ``go install <module>/<cmd>@<version>`` with ``GOBIN`` set to
``${JHDS_CACHE:-~/.cache/jupyterhub-ds}/tools/<tool>-<version>/``; idempotent (nothing is built when the
binary is there). Prints the binary's path.

    python -m ci.release.go_tools actionlint              # github.com/rhysd/actionlint (GitHub workflow linter)
    python -m ci.release.go_tools validate-krew-manifest  # sigs.k8s.io/krew's manifest validator
    python -m ci.release.go_tools krew                    # krew (kubectl krew install --manifest --archive)

Exit 3 (and a one-line reason on stderr) when Go is not installed, so tests can skip with that reason.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

from ci.dev import get_helm

TOOLS = {
    # name: (package, version)
    "actionlint": ("github.com/rhysd/actionlint/cmd/actionlint", "v1.7.12"),
    "validate-krew-manifest": ("sigs.k8s.io/krew/cmd/validate-krew-manifest", "v0.4.3"),
    # krew itself: `kubectl krew install --manifest --archive` installs the plugin offline, as users would
    "krew": ("sigs.k8s.io/krew/cmd/krew", "v0.4.3"),
}
NO_GO = 3


class GoMissing(RuntimeError):
    """Go is not installed: the tools cannot be built."""


def tool_path(name: str) -> Path:
    package, version = TOOLS[name]
    return get_helm.cache_root() / "tools" / f"{name}-{version}" / Path(package).name


def ensure(name: str) -> Path:
    """The tool's binary, built once from the Go module proxy."""
    path = tool_path(name)
    if os.access(path, os.X_OK):
        return path
    go = shutil.which("go")
    if go is None:
        raise GoMissing(f"Go is not installed: {name} is built from its Go module ({TOOLS[name][0]})")
    package, version = TOOLS[name]
    path.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "GOBIN": str(path.parent), "CGO_ENABLED": "0"}
    subprocess.run([go, "install", f"{package}@{version}"], env=env, check=True, stdout=sys.stderr)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tool", choices=sorted(TOOLS))
    args = parser.parse_args(argv)
    try:
        print(ensure(args.tool))
    except GoMissing as e:
        print(e, file=sys.stderr)
        return NO_GO
    return 0


if __name__ == "__main__":
    sys.exit(main())
