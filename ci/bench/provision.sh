#!/usr/bin/env bash
# Benchmark of the local control plane (issue figures: cold provisioning <= 40 min, warm start < 2 min).
#
# Cold: empty Go module and build caches and an empty jupyterhub-ds cache (all in a temporary directory),
# so every module is downloaded and every binary built, then the cluster is created. Warm: the same
# cluster stopped and started again with everything cached. Prints one line per figure.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/jhds-bench.XXXXXX")
export JHDS_CACHE="$WORK/cache" GOMODCACHE="$WORK/gomod" GOCACHE="$WORK/gocache" JHDS_CLUSTER=bench JHDS_NODE=0
cleanup() { "$ROOT/ci/dev/cluster.sh" down >/dev/null 2>&1 || true; chmod -R u+w "$WORK" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT

t0=$(date +%s)
"$ROOT/ci/dev/provision-k8s.sh" >/dev/null
t1=$(date +%s)
"$ROOT/ci/dev/cluster.sh" up >/dev/null
t2=$(date +%s)
"$ROOT/ci/dev/cluster.sh" stop >/dev/null
t3=$(date +%s)
"$ROOT/ci/dev/cluster.sh" up >/dev/null
t4=$(date +%s)
echo "cold provisioning (download + build all binaries): $((t1 - t0)) s"
echo "cold cluster creation (binaries built):            $((t2 - t1)) s"
echo "cold total:                                        $((t2 - t0)) s"
echo "warm start (stopped cluster, cached binaries):     $((t4 - t3)) s"
