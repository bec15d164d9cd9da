#!/usr/bin/env bash
# Local Kubernetes control plane for the tests: etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
# kwok (simulated nodes, pods, kubelet metrics) and metrics-server, all local processes listening on 127.0.0.1,
# run by kwokctl's "binary" runtime. No Docker, no kubelet. See ci/README.md, "Local control plane".
#
# Usage: ci/dev/cluster.sh up|stop|down|status|kubeconfig
#   up          build or reuse the binaries (ci/dev/provision-k8s.sh), create the cluster or start the existing one,
#               wait until it is healthy, apply the StorageClass and the nodes (ci/dev/cluster/). The LAST line on
#               stdout is KUBECONFIG=<path>; everything else goes to stderr.
#   stop        stop the processes and keep the state (etcd data, certificates); the next `up` restarts them.
#   down        delete the cluster: stop the processes and remove its state.
#   status      print "<cluster>: running|stopped|absent" (exit 0 only when running, else 1).
#   kubeconfig  print the admin kubeconfig path (exit 1 when it does not exist yet).
# Environment:
#   JHDS_CLUSTER         cluster name (default jupyterhub-ds)
#   JHDS_CACHE           cache root (default ${XDG_CACHE_HOME:-$HOME/.cache}/jupyterhub-ds); the cluster lives in
#                        $JHDS_CACHE/run/<cluster>/ (kubeconfig, rendered config, kwokctl state and logs)
#   JHDS_APISERVER_PORT  kube-apiserver port for a NEW cluster (default 0: a free port chosen by kwokctl)
#   JHDS_UP_TIMEOUT      seconds to wait for each readiness step (default 180)
#   JHDS_KEEP_PODS=1     keep the pods left from before when `up` restarts kwok (see kwok_clean_restart)
#   JHDS_POD_NET         second octet of the pod IPs for a NEW cluster (default 1: 127.1.x.y); two clusters on one
#                        machine need different values, or their pods would listen on the same loopback IPs
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CONF_DIR=$HERE/cluster
CLUSTER=${JHDS_CLUSTER:-jupyterhub-ds}
JHDS_CACHE=${JHDS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/jupyterhub-ds}
RUN_DIR=$JHDS_CACHE/run/$CLUSTER
KUBECONFIG_PATH=$RUN_DIR/kubeconfig
UP_TIMEOUT=${JHDS_UP_TIMEOUT:-180}
PYTHON=${PYTHON:-python3}

# kwokctl reads KWOK_* variables before its config file: drop any inherited ones, and keep its state
# (clusters/<name>/: pki, etcd data, pids, logs) under our cache instead of ~/.kwok.
while IFS= read -r var; do unset "$var"; done < <(compgen -e | grep '^KWOK_' || true)
export KWOK_WORKDIR=$RUN_DIR/kwok
KWOK_CLUSTER_DIR=$KWOK_WORKDIR/clusters/$CLUSTER
# kwokctl create/delete edit ~/.kube/config by default: create gets "" (skip); delete rejects "", so it gets a
# path that never exists (nothing to remove, nothing written).
NO_KUBECONFIG=$RUN_DIR/.no-kubeconfig

log() { printf '[cluster %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[[ $CLUSTER =~ ^[a-z0-9]([a-z0-9-]*[a-z0-9])?$ ]] || die "JHDS_CLUSTER=$CLUSTER: use lower-case letters, digits and '-'"

exists() { [[ -f $KWOK_CLUSTER_DIR/kwok.yaml ]]; }

lock() {
  mkdir -p "$JHDS_CACHE/run"
  exec 9>"$JHDS_CACHE/run/.$CLUSTER.lock"
  flock -w 900 9 || die "another ci/dev/cluster.sh is still running on cluster $CLUSTER (lock $JHDS_CACHE/run/.$CLUSTER.lock)"
}

# helm/kubectl 1.34 from ci/dev/get_helm.py: first on PATH, because kwokctl runs `kubectl` itself.
find_kubectl() {
  local dir
  dir=$("$PYTHON" "$HERE/get_helm.py" | tail -n 1) || die "ci/dev/get_helm.py failed"
  [[ -x $dir/kubectl ]] || die "ci/dev/get_helm.py printed '$dir', which has no kubectl"
  KUBECTL=$dir/kubectl
  export PATH="$dir:$PATH"
}

kctl() { "$KUBECTL" --kubeconfig "$KUBECONFIG_PATH" "$@"; }

# kwokctl without building anything (for stop/down/status): the bin dir recorded by the last `up`.
find_kwokctl() {
  KWOKCTL=""
  if [[ -f $RUN_DIR/bin-dir && -x $(<"$RUN_DIR/bin-dir")/kwokctl ]]; then
    KWOKCTL=$(<"$RUN_DIR/bin-dir")/kwokctl
  elif command -v kwokctl >/dev/null; then
    KWOKCTL=$(command -v kwokctl)
  fi
  [[ -n $KWOKCTL ]]
}

# kwokctl forks the components as daemons that inherit its open descriptors: close fd 3 (up's real stdout) and
# fd 9 (the lock), or a caller reading our stdout never sees EOF and the next `up` waits on the lock forever.
kwokctl_() { "$KWOKCTL" --name "$CLUSTER" "$@" >&2 3>&- 9>&-; }

# Replace @NAME@ placeholders; values are quoted so that '&' or '/' in paths stay literal.
render() {
  local text
  text=$(<"$1")
  text=${text//@BIN_DIR@/"$BIN_DIR"}
  text=${text//@KUBECTL@/"$KUBECTL"}
  text=${text//@CLUSTER_DIR@/"$CONF_DIR"}
  text=${text//@KWOK_CACHE@/"$RUN_DIR/kwok-cache"}
  text=${text//@APISERVER_PORT@/"${JHDS_APISERVER_PORT:-0}"}
  text=${text//@KWOK_PORT@/"${KWOK_PORT:-0}"}
  text=${text//@POD_NET@/"${JHDS_POD_NET:-1}"}
  text=${text//@PKI_DIR@/"$KWOK_CLUSTER_DIR/pki"}
  printf '%s\n' "$text"
}

render_kwokctl_config() {
  render "$CONF_DIR/kwokctl.yaml.in"
  local f
  for f in "$CONF_DIR"/kwok/*.yaml; do
    printf -- '---\n'
    grep -v '^---$' "$f"
  done
}

# wait_until <description> <command...>: retry every second for UP_TIMEOUT seconds.
wait_until() {
  local what=$1 start=$SECONDS out=""
  shift
  until out=$("$@" 2>&1); do
    if (( SECONDS - start >= UP_TIMEOUT )); then
      die "timed out after ${UP_TIMEOUT}s waiting for $what; last output: $out (logs: $KWOK_CLUSTER_DIR/logs/)"
    fi
    sleep 1
  done
  log "$what: ok after $(( SECONDS - start ))s"
}

apiserver_ready() { [[ $(kctl get --raw /readyz --request-timeout=5s) == ok ]]; }

kwok_running() {
  local pid
  pid=$(cat "$KWOK_CLUSTER_DIR/pids/kwok-controller.pid" 2>/dev/null) && [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null
}

# A kwok that (re)starts on an existing cluster must not inherit two things from its predecessor:
# - the node leases (kube-node-lease/<node>): kwok only runs the pods of nodes whose lease it holds, and a new kwok
#   has a new identity, so it waited for the old leases to expire (lease 200 s, retried every ~50 s): pods stayed
#   Pending for minutes;
# - the pods: kwok v0.8.0 keeps its pod-IP pool in memory and does not re-reserve the IPs of pods that are already
#   Running, so it handed 127.1.1.1, ... out a second time. Pods left from before are stale anyway (nothing ran
#   them): they are deleted (JHDS_KEEP_PODS=1 keeps them, with that risk).
# So: stop kwok, delete the leases (and the pods), start kwok again. Deleting pods while a fresh kwok replays
# them also left it ignoring every new pod once, another reason to do this while kwok is stopped.
kwok_clean_restart() {
  local pods pid i
  pid=$(cat "$KWOK_CLUSTER_DIR/pids/kwok-controller.pid" 2>/dev/null || true)
  if [[ -n $pid ]]; then
    kill "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  kctl -n kube-node-lease delete leases --all >/dev/null
  pods=$(kctl get pods --all-namespaces -o name | wc -l)
  if (( pods > 0 )); then
    if [[ ${JHDS_KEEP_PODS:-} == 1 ]]; then
      log "WARNING: kwok restarted with $pods pods left from before: new pods may get their IPs (JHDS_KEEP_PODS=1)"
    else
      log "kwok restarted: deleting the $pods pods left from before (kwok forgot their IPs; JHDS_KEEP_PODS=1 keeps them)"
      kctl delete pods --all --all-namespaces --force --grace-period=0 --wait=true >/dev/null 2>&1 \
        || log "WARNING: could not delete all old pods"
    fi
  fi
  kwokctl_ start cluster
}

cmd_up() {
  local t0=$SECONDS fingerprint
  exec 3>&1 1>&2   # stdout is reserved for the final KUBECONFIG= line
  lock
  mkdir -p "$RUN_DIR"
  find_kubectl
  BIN_DIR=$("$HERE/provision-k8s.sh" | tail -n 1) || die "ci/dev/provision-k8s.sh failed (see its output above)"
  local b
  for b in etcd kube-apiserver kube-controller-manager kube-scheduler kwok kwokctl metrics-server; do
    [[ -x $BIN_DIR/$b ]] || die "ci/dev/provision-k8s.sh printed '$BIN_DIR', which has no executable $b"
  done
  KWOKCTL=$BIN_DIR/kwokctl
  printf '%s\n' "$BIN_DIR" >"$RUN_DIR/bin-dir"
  render_kwokctl_config >"$RUN_DIR/kwokctl.yaml"
  fingerprint=$(cat "$RUN_DIR/kwokctl.yaml" "$CONF_DIR"/nodes.yaml.in "$CONF_DIR"/storageclass.yaml \
    "$CONF_DIR"/metrics-server/* | sha256sum | cut -d' ' -f1)

  if exists && [[ $(cat "$RUN_DIR/fingerprint" 2>/dev/null) != "$fingerprint" ]]; then
    log "cluster $CLUSTER exists but ci/dev/cluster/ or the binaries changed: recreating it"
    "$HERE/node.sh" down
    kwokctl_ delete cluster --kubeconfig "$NO_KUBECONFIG"
    rm -rf "$KWOK_WORKDIR" "$RUN_DIR/kwok-cache"
  fi
  local restarted_kwok=0
  if exists; then
    log "starting existing cluster $CLUSTER"
    kwok_running || restarted_kwok=1
    kwokctl_ start cluster
  else
    log "creating cluster $CLUSTER (config $RUN_DIR/kwokctl.yaml)"
    rm -rf "$RUN_DIR/kwok-cache"   # kwokctl caches the built metrics-server manifests by path
    kwokctl_ --config "$RUN_DIR/kwokctl.yaml" create cluster --kubeconfig "" \
      || die "kwokctl create cluster failed (logs: $KWOK_CLUSTER_DIR/logs/)"
    printf '%s\n' "$fingerprint" >"$RUN_DIR/fingerprint"
  fi

  "$KWOKCTL" --name "$CLUSTER" get kubeconfig >"$KUBECONFIG_PATH.tmp"
  chmod 600 "$KUBECONFIG_PATH.tmp"
  mv "$KUBECONFIG_PATH.tmp" "$KUBECONFIG_PATH"

  wait_until "kube-apiserver /readyz" apiserver_ready
  # kube-controller-manager's serviceaccount controller creates it; pods are rejected without it.
  wait_until "default ServiceAccount (kube-controller-manager)" kctl -n default get serviceaccount default
  if (( restarted_kwok )); then kwok_clean_restart; fi

  KWOK_PORT=$(sed -n 's/^[[:space:]]*kwokControllerPort:[[:space:]]*\([0-9]*\).*/\1/p' "$KWOK_CLUSTER_DIR/kwok.yaml" | head -n 1)
  [[ -n $KWOK_PORT ]] || die "no kwokControllerPort in $KWOK_CLUSTER_DIR/kwok.yaml"
  kctl apply -f "$CONF_DIR/storageclass.yaml"
  render "$CONF_DIR/nodes.yaml.in" >"$RUN_DIR/nodes.yaml"
  kctl apply -f "$RUN_DIR/nodes.yaml"
  wait_until "nodes Ready (kwok)" kctl wait --for=condition=Ready node/cpu-1 node/gpu-1 --timeout=5s
  # kwok runs the pods of a node only once it holds the node's lease.
  wait_until "node leases held by kwok" kctl -n kube-node-lease get lease cpu-1 gpu-1
  wait_until "metrics.k8s.io APIService (metrics-server)" \
    kctl wait --for=condition=Available apiservice/v1beta1.metrics.k8s.io --timeout=5s

  # the real node (kubelet, containerd, kube-proxy, cluster DNS) joins unless JHDS_NODE=0 (the benchmarks' clusters)
  if [[ ${JHDS_NODE:-1} != 0 ]]; then
    "$HERE/node.sh" up 3>&- || die "ci/dev/node.sh up failed (logs: $RUN_DIR/node/*.log)"
  fi
  log "cluster $CLUSTER is up in $(( SECONDS - t0 ))s: $(kctl config view -o jsonpath='{.clusters[0].cluster.server}')"
  echo "KUBECONFIG=$KUBECONFIG_PATH" >&3
}

cmd_stop() {
  lock
  exists || { log "cluster $CLUSTER does not exist"; return 0; }
  "$HERE/node.sh" down
  find_kwokctl || die "no kwokctl found (run ci/dev/cluster.sh up once)"
  kwokctl_ stop cluster
}

cmd_down() {
  lock
  "$HERE/node.sh" down
  if exists; then
    find_kwokctl || die "no kwokctl found to stop cluster $CLUSTER (state in $KWOK_CLUSTER_DIR)"
    kwokctl_ delete cluster --kubeconfig "$NO_KUBECONFIG"
  else
    log "cluster $CLUSTER does not exist"
  fi
  rm -rf "$RUN_DIR"
}

cmd_status() {
  if ! exists; then
    echo "$CLUSTER: absent"
    return 1
  fi
  local server=""
  if [[ -f $KUBECONFIG_PATH ]] && find_kubectl 2>/dev/null && apiserver_ready 2>/dev/null; then
    server=$(kctl config view -o jsonpath='{.clusters[0].cluster.server}')
    echo "$CLUSTER: running ($server, KUBECONFIG=$KUBECONFIG_PATH)"
    return 0
  fi
  echo "$CLUSTER: stopped"
  return 1
}

cmd_kubeconfig() {
  echo "$KUBECONFIG_PATH"
  [[ -f $KUBECONFIG_PATH ]] || { log "$KUBECONFIG_PATH does not exist: run ci/dev/cluster.sh up"; return 1; }
}

main() {
  case ${1:-} in
    up) cmd_up ;;
    stop) cmd_stop ;;
    down) cmd_down ;;
    status) cmd_status ;;
    kubeconfig) cmd_kubeconfig ;;
    *) sed -n '6,13p' "${BASH_SOURCE[0]}" >&2; exit 2 ;;
  esac
}

# One line: bash has parsed everything before running it, so editing this file cannot hit a running instance.
main "$@"; exit
