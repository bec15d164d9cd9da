"""Lint and render the jupyterhub-ds chart without a cluster, and keep its generated files in step.

Importable (tests/chart, ci/dev/devenv.py, ci/release/package_chart.py and the e2e tests use ``prepare_chart``,
``default_chart``, ``render``...) and a small CLI (ci/chart/__main__.py):

    python -m ci.chart render -f values.example.yaml [--set k=v ...]   # prints the rendered YAML
    python -m ci.chart lint -f values.example.yaml                     # helm lint --strict
    python -m ci.chart sync-schema [--check]                           # regenerate custom.ds in values.schema.json
    python -m ci.chart sync-readme [--check]                           # regenerate chart/README.md's settings table
    python -m ci.chart sync-lock [--check]                             # regenerate chart/Chart.lock offline

By purpose: prepare.py (the helm binary, chart/ copied with the real Z2JH dependency), render.py (helm template,
NOTES.txt, helm lint), sync.py (values.schema.json's custom.ds and chart/README.md's table, generated from
hub_extensions/settings.py), lock.py (Chart.lock). This package re-exports what the callers use.
"""

from __future__ import annotations

from typing import Any

from ci.chart import prepare
from ci.chart.lock import LOCK_PATH, lock_digest, lock_text, sync_lock
from ci.chart.prepare import (
    CHART_DIR,
    DEPENDENCY_NAME,
    REPO_ROOT,
    DependencyUnavailable,
    HelmError,
    _helm_env,
    _run_helm,
    archive_name,
    default_chart,
    dependency,
    dependency_source,
    helm_path,
    prepare_chart,
    provide_dependency,
    z2jh_archive,
    z2jh_data_dir,
)
from ci.chart.render import (
    DEFAULT_RELEASE,
    Rendered,
    is_ours,
    lint,
    render,
    render_documents,
    render_notes,
    render_text,
    split_documents,
)
from ci.chart.sync import (
    DS_SCHEMA_KEYS,
    README_BEGIN,
    README_END,
    README_PATH,
    SCHEMA_PATH,
    generated_ds_schema,
    readme_table,
    schema_text,
    sync_readme,
    sync_schema,
    synced_readme,
    synced_schema,
)

__all__ = [
    "CHART_DIR", "DEFAULT_RELEASE", "DEPENDENCY_NAME", "DS_SCHEMA_KEYS", "LOCK_PATH", "README_BEGIN", "README_END",
    "README_PATH", "REPO_ROOT", "SCHEMA_PATH", "DependencyUnavailable", "HelmError", "Rendered", "_helm_env",
    "_run_helm", "archive_name", "default_chart", "dependency", "dependency_source", "generated_ds_schema",
    "helm_path", "is_ours", "lint", "lock_digest", "lock_text", "prepare_chart", "provide_dependency",
    "readme_table", "render", "render_documents", "render_notes", "render_text", "schema_text",
    "split_documents", "sync_lock", "sync_readme", "sync_schema", "synced_readme", "synced_schema",
    "z2jh_archive", "z2jh_data_dir",
]


def __getattr__(name: str) -> Any:
    """``last_dependency_message`` changes with every prepare_chart: read it from prepare.py, not a copy."""
    if name == "last_dependency_message":
        return prepare.last_dependency_message
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
