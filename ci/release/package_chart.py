#!/usr/bin/env python3
"""Package the chart for a release: version, image names and tags set, Z2JH dependency included, checked.

    python -m ci.release.package_chart VERSION [--registry ghcr.io/<owner>] [--out dist]

1. ``ci/chart/``'s ``prepare_chart`` copies chart/ and provides the Z2JH 4.4.0 dependency.
2. Chart.yaml gets ``version`` and ``appVersion`` = VERSION; values.yaml's ``jupyterhub.hub.image`` and
   ``jupyterhub.singleuser.image`` get ``<registry>/hub`` and ``<registry>/singleuser`` with tag VERSION (the
   images the release workflow pushes).
3. ``helm package`` writes ``<out>/jupyterhub-ds-VERSION.tgz``.
4. ``helm template`` of that packaged chart with default values must reference exactly those images: the hub
   Deployment's ``hub`` container, the image puller's single-user image and the single-user image in the hub's
   own configuration (Z2JH's hub Secret). Any other reference to one of our images fails.

Prints the packaged chart's path. The release workflow runs this, then ``helm push`` to oci://<registry>/charts.
"""

from __future__ import annotations

import argparse
import base64
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

from ci import chart

DEFAULT_REGISTRY = "ghcr.io/jupyterhub-ds"
IMAGES = ("hub", "singleuser")
SEMVER = re.compile(r"^\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$")
# values.yaml: `name: <registry>/<image>` followed by its `tag:` line (comments stay as they are)
IMAGE_BLOCK = re.compile(
    r'(?P<indent>^[ ]+)name: (?P<name>\S+/(?P<image>hub|singleuser))\n(?P=indent)tag: "?[^"\n]*"?$', re.MULTILINE)


class PackageError(RuntimeError):
    """The packaged chart is not what the release publishes."""


def set_versions(chart_dir: Path, version: str, registry: str) -> None:
    """Chart.yaml version/appVersion and the two image references in values.yaml."""
    chart_yaml = chart_dir / "Chart.yaml"
    text = chart_yaml.read_text()
    for key in ("version", "appVersion"):
        text, n = re.subn(rf"^{key}: .*$", f'{key}: "{version}"' if key == "appVersion" else f"{key}: {version}",
                          text, count=1, flags=re.MULTILINE)
        if n != 1:
            raise PackageError(f"{chart_yaml}: no top-level {key}")
    chart_yaml.write_text(text)
    values = chart_dir / "values.yaml"
    found: list[str] = []

    def repl(m: re.Match[str]) -> str:
        found.append(m["image"])
        return f'{m["indent"]}name: {registry}/{m["image"]}\n{m["indent"]}tag: "{version}"'

    text = IMAGE_BLOCK.sub(repl, values.read_text())
    if sorted(found) != sorted(IMAGES):
        raise PackageError(f"{values}: expected one image block each for {', '.join(IMAGES)}, found {found}")
    values.write_text(text)
    loaded = yaml.safe_load(text)["jupyterhub"]
    for image, where in (("hub", loaded["hub"]["image"]), ("singleuser", loaded["singleuser"]["image"])):
        if where != {"name": f"{registry}/{image}", "tag": version}:
            raise PackageError(f"values.yaml: jupyterhub.{image}.image is {where} after the edit")


def images_in(doc: Any) -> list[tuple[str, str]]:
    """(container name, image) of every container and init container anywhere in a rendered object."""
    found: list[tuple[str, str]] = []
    if isinstance(doc, dict):
        for key in ("containers", "initContainers"):
            for c in doc.get(key) or []:
                if isinstance(c, dict) and "image" in c:
                    found.append((c.get("name", ""), c["image"]))
        for value in doc.values():
            found += images_in(value)
    elif isinstance(doc, list):
        for value in doc:
            found += images_in(value)
    return found


def check_rendered(docs: list[chart.Rendered], version: str, registry: str) -> str:
    """Raise unless the rendered chart references our published images, and only those; returns a summary."""
    want = {image: f"{registry}/{image}:{version}" for image in IMAGES}
    hub = [r.doc for r in docs if r.doc.get("kind") == "Deployment" and r.doc["metadata"]["name"] == "hub"]
    if not hub:
        raise PackageError("helm template rendered no hub Deployment")
    hub_images = dict(images_in(hub[0]["spec"]["template"]["spec"]))
    if hub_images.get("hub") != want["hub"]:
        raise PackageError(f"hub Deployment runs {hub_images.get('hub')}, expected {want['hub']}")
    everything = [image for r in docs for _, image in images_in(r.doc)]
    ours = {i for i in everything if re.search(r"/(hub|singleuser):", i) and "jupyterhub/k8s-" not in i}
    if ours - set(want.values()):
        raise PackageError(f"rendered chart references other images of ours: {sorted(ours - set(want.values()))}")
    if want["singleuser"] not in everything:
        raise PackageError(f"no pod of the rendered chart pulls {want['singleuser']} (image puller)")
    # the hub's own configuration (Z2JH passes values to KubeSpawner through the hub Secret)
    secret = [r.doc for r in docs if r.doc.get("kind") == "Secret" and r.doc["metadata"]["name"] == "hub"]
    if secret:
        values = yaml.safe_load(base64.b64decode(secret[0]["data"]["values.yaml"]))
        single = values["singleuser"]["image"]
        if f"{single['name']}:{single['tag']}" != want["singleuser"]:
            raise PackageError(f"the hub would spawn {single}, expected {want['singleuser']}")
    return f"hub Deployment, hub configuration and image puller use {want['hub']}, {want['singleuser']}"


def package(version: str, registry: str, out: Path) -> tuple[Path, str]:
    """Package and check; returns the .tgz and the check's summary."""
    version = version.removeprefix("v")
    if not SEMVER.match(version):
        raise PackageError(f"version {version!r} is not semantic (MAJOR.MINOR.PATCH[-pre])")
    registry = registry.rstrip("/")
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="jhds-package-") as tmp:
        chart_dir = chart.prepare_chart(tmp)
        set_versions(chart_dir, version, registry)
        home = Path(tmp) / "helm-home"
        chart._run_helm(["package", str(chart_dir), "--destination", str(out.resolve())], home)
        tgz = out.resolve() / f"jupyterhub-ds-{version}.tgz"
        if not tgz.exists():
            raise PackageError(f"helm package did not write {tgz}")
        text = chart._run_helm(["template", chart.DEFAULT_RELEASE, str(tgz), "--namespace", "jupyterhub"],
                               home).stdout
        summary = check_rendered(chart.split_documents(text), version, registry)
        shutil.rmtree(home, ignore_errors=True)
    return tgz, summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("version", help="release version, e.g. 0.2.0 (a leading v is dropped)")
    parser.add_argument("--registry", default=DEFAULT_REGISTRY, help=f"image registry (default {DEFAULT_REGISTRY})")
    parser.add_argument("--out", type=Path, default=Path("dist"), help="where the .tgz goes (default dist)")
    args = parser.parse_args(argv)
    try:
        tgz, summary = package(args.version, args.registry, args.out)
    except (PackageError, chart.HelmError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(summary, file=sys.stderr)
    print(tgz)
    return 0


if __name__ == "__main__":
    sys.exit(main())
