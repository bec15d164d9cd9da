"""``helm template`` and ``helm lint`` of the prepared chart (see prepare.py), offline: the rendered objects,
NOTES.txt as ``helm install`` prints it, and which objects come from our own templates."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from ci.chart.prepare import _run_helm, default_chart

DEFAULT_RELEASE = "jupyterhub"


class Rendered(NamedTuple):
    """One document of ``helm template`` output."""

    source: str  # e.g. "jupyterhub-ds/templates/hub/rbac.yaml"
    doc: dict[str, Any]
    text: str  # the document's YAML as helm printed it


def _value_args(values_files: Iterable[str | os.PathLike[str]], set_values: Iterable[str],
                set_string: Iterable[str]) -> list[str]:
    args: list[str] = []
    for f in values_files:
        args += ["--values", str(Path(f).resolve())]
    for s in set_values:
        args += ["--set", s]
    for s in set_string:
        args += ["--set-string", s]
    return args


def render_text(values_files: Iterable[str | os.PathLike[str]] = (), set_values: Iterable[str] = (),
                namespace: str = "jupyterhub", *, set_string: Iterable[str] = (),
                release: str = DEFAULT_RELEASE, chart: Path | None = None,
                kube_version: str | None = None) -> str:
    """``helm template`` output as text. Raises HelmError (schema violations, template errors)."""
    chart = chart or default_chart()
    args = ["template", release, str(chart), "--namespace", namespace,
            *_value_args(values_files, set_values, set_string)]
    if kube_version:
        args += ["--kube-version", kube_version]
    return _run_helm(args, chart.parent / "helm-home").stdout


def split_documents(text: str) -> list[Rendered]:
    """Split helm output into documents, keeping each one's ``# Source:`` template path."""
    out = []
    for chunk in re.split(r"^---[ \t]*$", text, flags=re.MULTILINE):
        doc = yaml.safe_load(chunk)
        if doc is None:
            continue
        match = re.search(r"^# Source: (.+)$", chunk, re.MULTILINE)
        out.append(Rendered(match.group(1).strip() if match else "", doc, chunk.strip("\n") + "\n"))
    return out


def render_documents(values_files: Iterable[str | os.PathLike[str]] = (), set_values: Iterable[str] = (),
                     namespace: str = "jupyterhub", **kwargs: Any) -> list[Rendered]:
    return split_documents(render_text(values_files, set_values, namespace, **kwargs))


def render(values_files: Iterable[str | os.PathLike[str]] = (), set_values: Iterable[str] = (),
           namespace: str = "jupyterhub", **kwargs: Any) -> list[dict[str, Any]]:
    """``helm template``, parsed: one dict per rendered object."""
    return [r.doc for r in render_documents(values_files, set_values, namespace, **kwargs)]


_NOTES_TEMPLATE = """\
# Renders NOTES.txt through tpl so tests can read it (helm template drops NOTES.txt).
apiVersion: v1
kind: ConfigMap
metadata:
  name: notes-under-test
data:
  NOTES.txt: {{ tpl (.Files.Get "notes-under-test.txt") . | quote }}
"""


def render_notes(values_files: Iterable[str | os.PathLike[str]] = (), set_values: Iterable[str] = (),
                 namespace: str = "jupyterhub", *, chart: Path | None = None, **kwargs: Any) -> str:
    """NOTES.txt as ``helm install`` would print it, rendered offline with the same values."""
    chart = chart or default_chart()
    notes_chart = chart.parent / "notes" / chart.name
    if not notes_chart.exists():
        shutil.copytree(chart, notes_chart)
        shutil.copyfile(chart / "templates" / "NOTES.txt", notes_chart / "notes-under-test.txt")
        (notes_chart / "templates" / "notes-under-test.yaml").write_text(_NOTES_TEMPLATE)
    docs = render_documents(values_files, set_values, namespace, chart=notes_chart, **kwargs)
    return next(r.doc["data"]["NOTES.txt"] for r in docs if r.doc["metadata"]["name"] == "notes-under-test")


def is_ours(rendered: Rendered, chart_name: str = "jupyterhub-ds") -> bool:
    """True for objects from this chart's own templates (not Z2JH's)."""
    return rendered.source.startswith(f"{chart_name}/templates/")


def lint(values_files: Iterable[str | os.PathLike[str]] = (), set_values: Iterable[str] = (),
         namespace: str = "jupyterhub", *, strict: bool = True, set_string: Iterable[str] = (),
         chart: Path | None = None) -> str:
    """``helm lint [--strict]``; returns its output, raises HelmError when the chart fails."""
    chart = chart or default_chart()
    args = ["lint", str(chart), "--namespace", namespace, *_value_args(values_files, set_values, set_string)]
    if strict:
        args.append("--strict")
    return _run_helm(args, chart.parent / "helm-home").stdout
