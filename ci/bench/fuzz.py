#!/usr/bin/env python3
"""Benchmark: the long fuzz run over every jupyterhub-ds endpoint (issue 20, item 8).

The same generator and checks as tests/e2e/adversarial/test_fuzz.py (tests/e2e/fuzzing.py), with more requests:
``--per-endpoint`` (default 1,000) per endpoint, three fifths by callers without rights (nobody, a wrong token, a
plain user's and a delegate's sessions and tokens with random scopes, an admin's read-only tokens) aimed at users
they have no grant over, then two fifths by callers with rights aimed at a group member made for it. Runs against a
release of its own on the local control plane (the chart, the shared adversarial release's roles: a delegate with
grants filtered to one group), removed at the end.

Figures: requests, requests per second, latency p50/p95/max per pass; findings (answers ≥ 500, API errors that are
not JSON ``{"status", "message"}``, a 2xx for a write by a caller without rights) with a curl line each; whether
anything changed for callers without rights (users, groups, sign-ups, trail, activity samples, claims, server
pods). Exits 1 on any finding or change. The seed is printed; ``--seed`` replays a run.

    python -m ci.bench.fuzz [--per-endpoint 1000] [--seed N] [--workers 4]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import uuid
from pathlib import Path

from ci.dev import devenv
from tests.e2e import fuzzing
from tests.e2e.adversarial.conftest import ADVERSARY_ROLES, COURSE, DELEGATE
from tests.e2e.hubclient import admin_client
from tests.e2e.release import Release, wait_removed

REPO = Path(__file__).resolve().parents[2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-endpoint", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**32)
    print(f"fuzz seed: {seed} (replay with --seed {seed}); {args.per_endpoint} requests per endpoint, "
          f"{len(fuzzing.ENDPOINTS)} endpoints", flush=True)
    rng = random.Random(seed)
    kubeconfig = devenv.cluster_up()
    namespace = f"bench-fuzz-{uuid.uuid4().hex[:6]}"
    release = Release(kubeconfig, namespace, Path(tempfile.mkdtemp(prefix=f"{namespace}-")))
    failed = False
    try:
        release.install(hub_config={"JupyterHub": {"allow_named_servers": True}},
                        values={"hub": {"loadRoles": ADVERSARY_ROLES}})
        admin = admin_client(release.url)
        cast = fuzzing.cast(rng, release.url, admin, DELEGATE, COURSE)

        def state() -> dict:
            snap = fuzzing.snapshot(admin.api, lambda kind: kube_items(release, kind))
            return {**snap, "ticks": release.log_text().count("Activity sample:")}

        before = state()
        first = fuzzing.run(release.url, fuzzing.plan(rng, fuzzing.ENDPOINTS, cast.no_rights, cast.strangers,
                                                      args.per_endpoint * 3 // 5), args.workers,
                            lambda n: print(f"  ... {n}", flush=True))
        after = state()
        if after["ticks"] != before["ticks"]:  # the in-hub sampler took its samples meanwhile
            before["samples"] = after["samples"] = None
        before["ticks"] = after["ticks"] = None
        changed = sorted(k for k in before if before[k] != after[k])
        print(f"callers without rights: {fuzzing.report(release.url, first)}")
        print(f"  changed for callers without rights: {', '.join(changed) or 'nothing'}")
        second = fuzzing.run(release.url, fuzzing.plan(rng, fuzzing.ENDPOINTS, cast.with_rights, cast.targets,
                                                       args.per_endpoint * 2 // 5), args.workers,
                             lambda n: print(f"  ... {n}", flush=True))
        print(f"callers with rights: {fuzzing.report(release.url, second)}")
        failed = bool(first.findings or second.findings or changed)
    finally:
        release.remove()
        wait_removed()
    print(f"fuzz seed {seed}: {'FAILED' if failed else 'ok'}")
    sys.exit(1 if failed else 0)


def kube_items(release: Release, kind: str) -> list[dict]:
    return json.loads(release.kubectl("get", kind, "-o", "json"))["items"]


if __name__ == "__main__":
    main()
