"""``-o table|json|yaml``: tables for people, JSON and YAML (the hub's own shapes) for scripts."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any, TextIO

FORMATS = ("table", "json", "yaml")


class OutputError(Exception):
    """The output cannot be produced (exit 1)."""


def cell(value: Any) -> str:
    if value is None:
        return "<none>"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.1f}"
    if isinstance(value, (list, tuple)):
        return ",".join(cell(v) for v in value) or "<none>"
    if isinstance(value, dict):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]], out: TextIO | None = None) -> None:
    """kubectl-style: upper-case headers, columns padded by three spaces; ``columns`` is (header, key)."""
    out = out or sys.stdout
    grid = [[h for h, _ in columns]] + [[cell(r.get(k)) for _, k in columns] for r in rows]
    widths = [max(len(line[i]) for line in grid) for i in range(len(columns))]
    for line in grid:
        out.write("   ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip() + "\n")


def dump_yaml(data: Any) -> str:
    try:
        import yaml
    except ImportError:  # the krew package needs only Python
        raise OutputError("-o yaml needs PyYAML (pip install pyyaml); -o json needs nothing") from None
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False)


def emit(fmt: str, data: Any, rows: Sequence[dict[str, Any]] | None = None,
         columns: Sequence[tuple[str, str]] | None = None, text: str | None = None) -> None:
    """Print ``data`` as JSON/YAML, or as a table of ``rows`` (or ``text``) for ``table``."""
    if fmt == "json":
        sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    elif fmt == "yaml":
        sys.stdout.write(dump_yaml(data))
    elif text is not None:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    elif columns is not None:
        table(rows or [], columns)
    else:
        sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")

