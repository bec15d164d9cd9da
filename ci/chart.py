#!/usr/bin/env python3
"""Lint and render the jupyterhub-ds chart without a cluster, and keep its schema in step with the settings.

Importable (tests/chart uses it) and a small CLI:

    python ci/chart.py render -f values.example.yaml [--set k=v ...]   # prints the rendered YAML
    python ci/chart.py lint -f values.example.yaml                     # helm lint --strict
    python ci/chart.py sync-schema [--check]                           # regenerate custom.ds in values.schema.json
    python ci/chart.py sync-readme [--check]                           # regenerate chart/README.md's settings table
    python ci/chart.py sync-lock [--check]                             # regenerate chart/Chart.lock offline

The Z2JH dependency is the real Zero-to-JupyterHub chart: ``prepare_chart`` copies chart/ to a work directory
and runs ``helm dependency build`` (the chart from https://hub.jupyter.org/helm-chart/, as pinned in Chart.lock).
Without network that fails, and the real release archive ``jupyterhub-<version>.tgz`` from the Z2JH data
directory is copied into the prepared chart's ``charts/`` instead (helm uses an archive there as it is). Both
render Z2JH's own objects (hub Deployment and Secret, proxy, NetworkPolicies, culler). Which one was used is
printed once on stderr; with neither, ``prepare_chart`` fails with one line saying so.

Environment:
    JHDS_HELM              helm binary to use (default: ci/get_helm.py's cached helm 3.19.0)
    Z2JH_DATA_DIR          directory holding jupyterhub-<version>.tgz (default: the nearest
                           shared/z2jh/<dependency version> beside the checkout or one of its parents)
    JHDS_CHART_DEPENDENCY  auto (default: network, else the archive), network or archive
"""

from __future__ import annotations

import argparse
import atexit
import datetime
import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
CHART_DIR = REPO_ROOT / "chart"
SCHEMA_PATH = CHART_DIR / "values.schema.json"
DEPENDENCY_NAME = "jupyterhub"
# Path inside values.schema.json of the generated part: properties.jupyterhub.properties.custom.properties.ds
DS_SCHEMA_KEYS = ("properties", "jupyterhub", "properties", "custom", "properties", "ds")
DEFAULT_RELEASE = "jupyterhub"

class HelmError(RuntimeError):
    """helm exited non-zero; ``str()`` carries its stderr (the schema errors tests assert on)."""

    def __init__(self, cmd: Sequence[str], returncode: int, stdout: str, stderr: str):
        self.cmd, self.returncode, self.stdout, self.stderr = list(cmd), returncode, stdout, stderr
        super().__init__(f"helm {cmd[1] if len(cmd) > 1 else ''} exited {returncode}:\n{stderr or stdout}")


class Rendered(NamedTuple):
    """One document of ``helm template`` output."""

    source: str  # e.g. "jupyterhub-ds/templates/hub/rbac.yaml"
    doc: dict[str, Any]
    text: str  # the document's YAML as helm printed it


# ---------------------------------------------------------------- helm binary and environment

def _load_get_helm() -> Any:
    spec = importlib.util.spec_from_file_location("jhds_get_helm", Path(__file__).with_name("get_helm.py"))
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def helm_path() -> Path:
    """The helm binary: ``$JHDS_HELM``, else helm 3.19.0 from ci/get_helm.py (downloaded once, cached)."""
    if os.environ.get("JHDS_HELM"):
        return Path(os.environ["JHDS_HELM"])
    return _load_get_helm().ensure_helm() / "helm"


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
        print(f"ci/chart.py: {message}", file=sys.stderr)


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


# ---------------------------------------------------------------- helm template / lint

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


# ---------------------------------------------------------------- values.schema.json

def generated_ds_schema() -> dict[str, Any]:
    """The schema of ``jupyterhub.custom.ds``: the output of ``python -m hub_extensions.settings``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    proc = subprocess.run([sys.executable, "-m", "hub_extensions.settings"], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, check=True)
    return json.loads(proc.stdout)


def schema_text(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def synced_schema(current: dict[str, Any], ds_schema: dict[str, Any] | None = None) -> dict[str, Any]:
    """``current`` with its custom.ds part replaced by the generated one (other parts untouched)."""
    result = json.loads(json.dumps(current))
    node = result
    for key in DS_SCHEMA_KEYS[:-1]:
        node = node.setdefault(key, {})
    node[DS_SCHEMA_KEYS[-1]] = ds_schema if ds_schema is not None else generated_ds_schema()
    return result


def sync_schema(check: bool = False) -> bool:
    """Rewrite chart/values.schema.json's custom.ds from the settings. Returns True when it was out of date."""
    current_text = SCHEMA_PATH.read_text()
    new_text = schema_text(synced_schema(json.loads(current_text)))
    stale = new_text != current_text
    if stale and not check:
        SCHEMA_PATH.write_text(new_text)
    return stale


# ---------------------------------------------------------------- Chart.lock

LOCK_PATH = CHART_DIR / "Chart.lock"


def lock_digest(requested: list[dict[str, Any]], locked: list[dict[str, Any]]) -> str:
    """Helm's ``resolver.HashReq``: sha256 of the JSON of [Chart.yaml dependencies, locked dependencies]
    (Go's encoding of chart.Dependency: fields in declaration order, empty optional fields left out)."""
    fields = ("name", "version", "repository", "condition", "tags", "enabled", "import-values", "alias")

    def go_json(dep: dict[str, Any]) -> dict[str, Any]:
        return {k: dep[k] for k in fields if k in ("name", "repository") or dep.get(k)}

    data = json.dumps([[go_json(d) for d in requested], [go_json(d) for d in locked]], separators=(",", ":"))
    return "sha256:" + hashlib.sha256(data.encode()).hexdigest()


def lock_text(chart_dir: Path = CHART_DIR, generated: str | None = None) -> str:
    """Chart.lock as ``helm dependency update`` writes it for our pinned (exact-version) dependencies,
    computed offline. ``generated`` keeps an existing timestamp so an unchanged lock stays byte-equal."""
    deps = yaml.safe_load((chart_dir / "Chart.yaml").read_text())["dependencies"]
    requested = [{k: str(v) if k == "version" else v for k, v in d.items()} for d in deps]
    locked = [{"name": d["name"], "repository": d["repository"], "version": d["version"]} for d in requested]
    if generated is None:
        generated = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.000000000Z")
    lock = {"dependencies": locked, "digest": lock_digest(requested, locked)}
    return yaml.safe_dump(lock, sort_keys=True) + f'generated: "{generated}"\n'


def sync_lock(check: bool = False) -> bool:
    """Rewrite chart/Chart.lock from Chart.yaml. Returns True when it was out of date."""
    current = LOCK_PATH.read_text() if LOCK_PATH.exists() else ""
    match = re.search(r'^generated: "([^"]+)"', current, re.MULTILINE)
    new = lock_text(generated=match.group(1) if match else None)
    stale = new != current
    if stale and not check:
        LOCK_PATH.write_text(new if match and _without_generated(new) == _without_generated(current)
                             else lock_text())
    return stale


def _without_generated(text: str) -> dict[str, Any]:
    lock = yaml.safe_load(text) or {}
    lock.pop("generated", None)
    return lock


# ---------------------------------------------------------------- chart/README.md settings table

README_PATH = CHART_DIR / "README.md"
README_BEGIN = "<!-- BEGIN custom.ds settings: generated by `python ci/chart.py sync-readme`; do not edit -->"
README_END = "<!-- END custom.ds settings -->"


def _settings_module() -> Any:
    """hub_extensions/settings.py loaded on its own (it imports nothing from the package): the defaults
    without importing JupyterHub."""
    name = "jhds_settings_for_readme"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "hub_extensions" / "settings.py")
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def _type_text(schema: dict[str, Any]) -> str:
    types = schema.get("type", "any")
    types = types if isinstance(types, list) else [types]
    text = " or ".join(types)
    if "array" in types and isinstance(schema.get("items"), dict):
        item = schema["items"]
        text = text.replace("array", f"list of {item.get('type', 'any')}s" if "enum" not in item
                            else "list of " + " / ".join(f"`{v}`" for v in item["enum"]))
    if "enum" in schema:
        text += ": " + " / ".join(f"`{json.dumps(v)}`" for v in schema["enum"])
    return text


def _default_text(value: Any) -> str:
    if isinstance(value, list) and value and all(isinstance(v, dict) and "name" in v for v in value):
        return "`[" + ", ".join(v["name"] for v in value) + "]`"
    if value is _NO_DEFAULT:
        return "(per item)"
    return f"`{json.dumps(value)}`"


_NO_DEFAULT = object()


def _rows(schema: dict[str, Any], defaults: Any, prefix: str) -> list[tuple[str, str, str, str]]:
    rows = []
    for key, sub in schema.get("properties", {}).items():
        path = f"{prefix}.{key}"
        default = defaults.get(key, _NO_DEFAULT) if isinstance(defaults, dict) else _NO_DEFAULT
        if sub.get("type") == "object" and sub.get("properties"):
            rows += _rows(sub, default, path)
            continue
        rows.append((path, _type_text(sub), _default_text(default), sub.get("description", "")))
        item = sub.get("items")
        if isinstance(item, dict) and item.get("properties"):
            rows += _rows(item, _NO_DEFAULT, f"{path}[]")
    return rows


def readme_table() -> str:
    """The custom.ds reference: one row per key, from chart/values.schema.json (types, descriptions) and
    hub_extensions/settings.py (defaults)."""
    schema = json.loads(SCHEMA_PATH.read_text())
    for key in DS_SCHEMA_KEYS:
        schema = schema[key]
    settings = _settings_module()
    defaults = settings.to_values(settings.Settings())
    lines = ["| Key (under `jupyterhub.custom.ds`) | Type | Default | Description |", "|---|---|---|---|"]
    for path, type_, default, description in _rows(schema, defaults, ""):
        cell = description.replace("|", "\\|").replace("\n", " ")
        lines.append(f"| `{path.lstrip('.')}` | {type_} | {default} | {cell} |")
    return "\n".join(lines) + "\n"


def synced_readme(current: str) -> str:
    """``current`` with the text between the markers replaced by the generated table."""
    if README_BEGIN not in current or README_END not in current:
        raise ValueError(f"{README_PATH.name} lacks the markers {README_BEGIN!r} ... {README_END!r}")
    head, rest = current.split(README_BEGIN, 1)
    _, tail = rest.split(README_END, 1)
    return f"{head}{README_BEGIN}\n{readme_table()}{README_END}{tail}"


def sync_readme(check: bool = False) -> bool:
    """Rewrite the settings table in chart/README.md. Returns True when it was out of date."""
    current = README_PATH.read_text()
    new = synced_readme(current)
    stale = new != current
    if stale and not check:
        README_PATH.write_text(new)
    return stale


# ---------------------------------------------------------------- CLI

def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Render, lint and sync the schema of the jupyterhub-ds chart.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("render", "lint"):
        p = sub.add_parser(name, help=f"helm {'template' if name == 'render' else 'lint --strict'} offline")
        p.add_argument("-f", "--values", action="append", default=[], help="values file (repeatable)")
        p.add_argument("--set", action="append", default=[], dest="set_values", help="key=value (repeatable)")
        p.add_argument("--set-string", action="append", default=[], help="key=value as string (repeatable)")
        p.add_argument("-n", "--namespace", default="jupyterhub")
        if name == "render":
            p.add_argument("--release", default=DEFAULT_RELEASE)
    p = sub.add_parser("sync-schema", help="regenerate custom.ds in chart/values.schema.json")
    p.add_argument("--check", action="store_true", help="only report; exit 1 when the schema is stale")
    p = sub.add_parser("sync-readme", help="regenerate the custom.ds settings table in chart/README.md")
    p.add_argument("--check", action="store_true", help="only report; exit 1 when the table is stale")
    p = sub.add_parser("sync-lock", help="regenerate chart/Chart.lock from Chart.yaml (offline)")
    p.add_argument("--check", action="store_true", help="only report; exit 1 when the lock is stale")
    args = parser.parse_args(argv)
    syncs = {"sync-schema": (sync_schema, SCHEMA_PATH), "sync-readme": (sync_readme, README_PATH),
             "sync-lock": (sync_lock, LOCK_PATH)}

    try:
        if args.command == "render":
            sys.stdout.write(render_text(args.values, args.set_values, args.namespace,
                                         set_string=args.set_string, release=args.release))
        elif args.command == "lint":
            sys.stdout.write(lint(args.values, args.set_values, args.namespace, set_string=args.set_string))
        else:
            func, path = syncs[args.command]
            stale = func(check=args.check)
            rel = path.relative_to(REPO_ROOT)
            if args.check:
                print(f"{rel}: {f'STALE, run python ci/chart.py {args.command}' if stale else 'up to date'}")
                return 1 if stale else 0
            print(f"{rel}: {'updated' if stale else 'already up to date'}")
    except HelmError as exc:
        sys.stderr.write(exc.stderr or exc.stdout)
        return exc.returncode or 1
    except DependencyUnavailable as exc:
        print(f"ci/chart.py: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
