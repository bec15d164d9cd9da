#!/usr/bin/env bash
# Build (once) the Kubernetes control-plane binaries the local cluster runs, from published Go modules.
#
# Idempotent: every binary is keyed by version under $JHDS_CACHE/k8s/<k8s version>/ (outside the repository)
# and skipped when it is already there. Prints the bin directory as its last line.
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-1.34.4}"
KWOK_VERSION="${KWOK_VERSION:-v0.8.0}"
ETCD_VERSION="${ETCD_VERSION:-v3.6.10}"
# metrics-server v0.8.x is not verifiable through the Go checksum database (v0.8.1: "not available" on the
# proxy; v0.8.0: sum.golang.org lookup 404), so we build v0.9.0, the first release that is.
METRICS_SERVER_VERSION="${METRICS_SERVER_VERSION:-v0.9.0}"
COREDNS_VERSION="${COREDNS_VERSION:-v1.15.0}"
LOCAL_PATH_VERSION="${LOCAL_PATH_VERSION:-v0.0.30}"
JHDS_CACHE="${JHDS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/jupyterhub-ds}"
OUT="$JHDS_CACHE/k8s/v$K8S_VERSION"

export GOTOOLCHAIN=local GOFLAGS=-mod=mod CGO_ENABLED=0
mkdir -p "$OUT"
log() { printf '[provision-k8s %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
command -v go >/dev/null || { log "go is not installed: the local control plane needs Go >= 1.26"; exit 3; }

build_kwok() {
  [ -x "$OUT/kwok" ] && [ -x "$OUT/kwokctl" ] && return
  log "kwok/kwokctl $KWOK_VERSION"
  GOBIN="$OUT" go install "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION" "sigs.k8s.io/kwok/cmd/kwokctl@$KWOK_VERSION"
}

build_etcd() {
  [ -x "$OUT/etcd" ] && return
  log "etcd $ETCD_VERSION"
  local w; w=$(mktemp -d)
  (cd "$w" && go mod init local/etcdw >/dev/null 2>&1 && go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >/dev/null 2>&1 \
    && go build -trimpath -ldflags "-s -w" -o "$OUT/etcd.tmp" go.etcd.io/etcd/server/v3)
  mv "$OUT/etcd.tmp" "$OUT/etcd"; rm -rf "$w"
}

build_metrics_server() {
  [ -x "$OUT/metrics-server" ] && return
  log "metrics-server $METRICS_SERVER_VERSION"
  GOBIN="$OUT" go install "sigs.k8s.io/metrics-server/cmd/metrics-server@$METRICS_SERVER_VERSION"
}

# CoreDNS for the real node's cluster DNS, with only the plugins ci/dev/node/coredns.go names (keyed by that file).
build_coredns() {
  local here key w
  here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
  key=$(cat "$here/node/coredns.go" | sha256sum | cut -c1-12)
  [ -x "$OUT/coredns" ] && [ "$(cat "$OUT/coredns.key" 2>/dev/null)" = "$key" ] && return
  log "coredns $COREDNS_VERSION"
  w=$(mktemp -d)
  cp "$here/node/coredns.go" "$w/main.go"
  (cd "$w" && go mod init local/corednsw >/dev/null 2>&1 && go get "github.com/coredns/coredns@$COREDNS_VERSION" >/dev/null 2>&1 \
    && go build -trimpath -ldflags "-s -w" -o "$OUT/coredns.tmp" .)
  mv "$OUT/coredns.tmp" "$OUT/coredns"; echo "$key" >"$OUT/coredns.key"; rm -rf "$w"
}

# The real node's volume provisioner (kind's default): local PVs, so the kubelet applies a pod's fsGroup to them.
build_local_path() {
  [ -x "$OUT/local-path-provisioner" ] && return
  log "local-path-provisioner $LOCAL_PATH_VERSION"
  GOBIN="$OUT" go install "github.com/rancher/local-path-provisioner@$LOCAL_PATH_VERSION"
}

# k8s.io/kubernetes commands, built through a wrapper module whose replaces map the staging modules to their
# published v0.<minor>.<patch> versions (upstream's go.mod maps them to ./staging, which a module zip cannot use).
build_kubernetes_cmds() {
  local cmd missing=() w kgomod minor m pkgs=()
  for cmd in "$@"; do [ -x "$OUT/$cmd" ] || missing+=("$cmd"); done
  [ ${#missing[@]} -eq 0 ] && return
  log "${missing[*]} v$K8S_VERSION (the long step)"
  w=$(mktemp -d); minor=$(echo "$K8S_VERSION" | cut -d. -f2)
  cd "$w"
  go mod init local/k8sw >/dev/null 2>&1
  kgomod=$(go mod download -json "k8s.io/kubernetes@v$K8S_VERSION" | python3 -c 'import json,sys;print(json.load(sys.stdin)["GoMod"])')
  for m in $(sed -n 's#^[[:space:]]*\(k8s\.io/[^ ]*\) => \./staging/.*#\1#p' "$kgomod"); do
    go mod edit -replace="$m=$m@v0.${K8S_VERSION#1.}"
  done
  local gd; gd=$(sed -n 's/^godebug[[:space:]]\+\(.*\)$/\1/p' "$kgomod" | head -1)
  [ -n "$gd" ] && go mod edit -godebug="$gd" || true
  for cmd in "${missing[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$cmd"); done
  go get "${pkgs[@]/%/@v$K8S_VERSION}" >/dev/null 2>&1
  local v=k8s.io/component-base/version
  mkdir -p "$w/bin"
  go build -p "$(nproc)" -trimpath -tags notest,grpcnotrace \
    -ldflags "-s -w -X $v.gitVersion=v$K8S_VERSION -X $v.gitMajor=1 -X $v.gitMinor=$minor -X $v.gitTreeState=clean" \
    -o "$w/bin/" "${pkgs[@]}"
  mv "$w/bin/"* "$OUT/"; cd /; rm -rf "$w"
}

start=$(date +%s)
build_kwok
build_etcd
build_kubernetes_cmds kube-apiserver kube-controller-manager kube-scheduler
build_metrics_server
# the real node (ci/dev/node.sh): a kubelet and kube-proxy from the same module; the control plane does not need them
if [ "${JHDS_NODE:-1}" != 0 ]; then
  build_kubernetes_cmds kubelet kube-proxy
  build_coredns
  build_local_path
fi
log "ready in $(( $(date +%s) - start ))s"
echo "$OUT"
