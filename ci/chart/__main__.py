"""``python -m ci.chart render|lint|sync-schema|sync-readme|sync-lock``: see ci/chart/__init__.py."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ci.chart.lock import LOCK_PATH, sync_lock
from ci.chart.prepare import REPO_ROOT, DependencyUnavailable, HelmError
from ci.chart.render import DEFAULT_RELEASE, lint, render_text
from ci.chart.sync import README_PATH, SCHEMA_PATH, sync_readme, sync_schema


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
                print(f"{rel}: {f'STALE, run python -m ci.chart {args.command}' if stale else 'up to date'}")
                return 1 if stale else 0
            print(f"{rel}: {'updated' if stale else 'already up to date'}")
    except HelmError as exc:
        sys.stderr.write(exc.stderr or exc.stdout)
        return exc.returncode or 1
    except DependencyUnavailable as exc:
        print(f"ci.chart: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
