"""chart/Chart.lock, computed offline from Chart.yaml as ``helm dependency update`` writes it
(``python -m ci.chart sync-lock``)."""

from __future__ import annotations

import datetime
import hashlib
import json
import re
from pathlib import Path
from typing import Any

import yaml

from ci.chart.prepare import CHART_DIR

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
