#!/usr/bin/env bash
# The real node of the local control plane: containerd + runc + a kubelet (CNI bridge), kube-proxy (iptables) and
# CoreDNS (cluster DNS), all host processes, joined to the cluster of ci/dev/cluster.sh as node "node-1". The images
# the pods run are built here by ci/dev/images.py and imported into this containerd (nothing is ever pulled).
#
# Usage: ci/dev/node.sh up|down|status
#   up      start (or keep) the node for the running cluster; waits until the node is Ready and DNS answers.
#   down    stop every pod's containers, the node's processes, and remove its network and state.
#   status  "node-1: ready|absent" (exit 0 only when ready).
# Environment: JHDS_CLUSTER, JHDS_CACHE, JHDS_POD_NET as for ci/dev/cluster.sh (the node lives in
# $JHDS_CACHE/run/<cluster>/node/, its images in $JHDS_CACHE/containerd/, kept across `down`: one real node runs on a
# machine at a time); JHDS_IMAGES (default: all of ci/dev/images.py's) names the images to build and import.
#
# The node is tainted jupyterhub-ds/real-node=true:NoSchedule: only pods that tolerate it run here, the others keep
# going to kwok's simulated nodes.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
CONF_DIR=$HERE/node
CLUSTER=${JHDS_CLUSTER:-jupyterhub-ds}
JHDS_CACHE=${JHDS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/jupyterhub-ds}
export JHDS_CACHE
RUN_DIR=$JHDS_CACHE/run/$CLUSTER
STATE=$RUN_DIR/node
CONTAINERD_ROOT=$JHDS_CACHE/containerd
NODE_NAME=node-1
NET=${JHDS_POD_NET:-1}
BRIDGE=jhds$NET
POD_CIDR=10.244.$NET.0/24
NODE_IP=10.244.$NET.1
DNS_HEALTH_PORT=$((18180 + NET))
# ports of the node's IP that pods may reach on this machine: where a test serves something to pods (the throwaway
# PostgreSQL of a hub on hub.db.type postgres: ci/dev/devenv.py's HOST_SERVICE_PORTS names the same range)
HOST_SERVICE_PORTS=15432:15439
PKI=$RUN_DIR/kwok/clusters/$CLUSTER/pki
PYTHON=${PYTHON:-python3}
UP_TIMEOUT=${JHDS_UP_TIMEOUT:-180}

log() { printf '[node %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

kctl() { "$KUBECTL" --kubeconfig "$RUN_DIR/kubeconfig" "$@"; }

render() {
  local text
  text=$(<"$1")
  for key in STATE CONTAINERD_ROOT NODE_NAME NODE_IP POD_CIDR BRIDGE CA HEALTH_PORT; do
    local value
    case $key in
      CA) value=$PKI/ca.crt ;;
      HEALTH_PORT) value=$DNS_HEALTH_PORT ;;
      *) value=${!key} ;;
    esac
    text=${text//@$key@/"$value"}
  done
  printf '%s\n' "$text"
}

# render_to <template> <file>: the file is written only when its content changes (kube-proxy exits when its
# configuration file is touched, even with the same content).
render_to() {
  local text
  text=$(render "$1")
  [ -f "$2" ] && [ "$(cat "$2")" = "$text" ] && return
  printf '%s\n' "$text" >"$2"
}

# Debian's packages for the node: the container runtime, CNI plugins, and the tools kube-proxy calls.
install_packages() {
  local missing=() p
  for p in containerd runc containernetworking-plugins iptables conntrack; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return
  log "apt-get install ${missing[*]}"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# A client certificate signed by the cluster's CA: the node's components authenticate as Kubernetes users.
client_cert() {  # name CN O
  local name=$1 cn=$2 org=$3
  [ -s "$STATE/pki/$name.crt" ] && return
  mkdir -p "$STATE/pki"
  openssl req -new -newkey rsa:2048 -nodes -keyout "$STATE/pki/$name.key" -subj "/O=$org/CN=$cn" \
    -out "$STATE/pki/$name.csr" 2>/dev/null
  openssl x509 -req -in "$STATE/pki/$name.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial \
    -days 3650 -out "$STATE/pki/$name.crt" 2>/dev/null
}

kubeconfig_for() {  # name
  local server
  [ -s "$STATE/$1.kubeconfig" ] && return  # a new cluster gets a new node (cluster.sh runs `down` first)
  server=$(kctl config view -o jsonpath='{.clusters[0].cluster.server}')
  cat >"$STATE/$1.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters: [{name: local, cluster: {server: "$server", certificate-authority: "$PKI/ca.crt"}}]
users: [{name: $1, user: {client-certificate: "$STATE/pki/$1.crt", client-key: "$STATE/pki/$1.key"}}]
contexts: [{name: local, context: {cluster: local, user: $1}}]
current-context: local
EOF
}

running() { [ -f "$STATE/$1.pid" ] && kill -0 "$(cat "$STATE/$1.pid")" 2>/dev/null; }

# start <name> <argv...>: a detached host process with its log in $STATE/<name>.log (fd 3 and 9 closed, as in
# cluster.sh, so callers reading our stdout see EOF).
start() {
  local name=$1; shift
  running "$name" && return
  setsid "$@" >"$STATE/$name.log" 2>&1 3>&- 9>&- < /dev/null &
  echo $! >"$STATE/$name.pid"
}

wait_until() {
  local what=$1 start=$SECONDS
  shift
  until "$@" >/dev/null 2>&1; do
    (( SECONDS - start >= UP_TIMEOUT )) && die "timed out after ${UP_TIMEOUT}s waiting for $what (logs: $STATE/*.log)"
    sleep 0.5
  done
  log "$what: ok after $(( SECONDS - start ))s"
}

# The pod bridge exists before the kubelet: its gateway address is the node's IP (kubelet, cluster DNS). Pods talk to
# each other, to the cluster DNS and to the API server, nothing else on this machine, and are never routed anywhere
# else, nor reached from elsewhere (the rules sit in mangle FORWARD and in a chain of ours, where kube-proxy's rules
# cannot come first). The API server's port answers only on loopback and the bridge.
network_up() {
  local port
  port=$(kctl config view -o jsonpath='{.clusters[0].cluster.server}' | sed 's/.*://')
  if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
    ip link add "$BRIDGE" type bridge
    ip addr add "$NODE_IP/24" dev "$BRIDGE"
  fi
  ip link set "$BRIDGE" up
  [ -f "$STATE/ip_forward.saved" ] || sysctl -n net.ipv4.ip_forward >"$STATE/ip_forward.saved"
  sysctl -qw net.ipv4.ip_forward=1 net.bridge.bridge-nf-call-iptables=1
  network_rules -D 2>/dev/null || true
  iptables -N JHDS-NODE-INPUT 2>/dev/null || iptables -F JHDS-NODE-INPUT
  iptables -A JHDS-NODE-INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
  iptables -A JHDS-NODE-INPUT -i "$BRIDGE" -d "$NODE_IP" -p udp --dport 53 -j ACCEPT
  iptables -A JHDS-NODE-INPUT -i "$BRIDGE" -d "$NODE_IP" -p tcp --dport 53 -j ACCEPT
  iptables -A JHDS-NODE-INPUT -i "$BRIDGE" -p tcp --dport "$port" -j ACCEPT
  iptables -A JHDS-NODE-INPUT -i "$BRIDGE" -d "$NODE_IP" -p tcp --dport "$HOST_SERVICE_PORTS" -j ACCEPT
  iptables -A JHDS-NODE-INPUT -i "$BRIDGE" -j DROP
  iptables -A JHDS-NODE-INPUT -i lo -j RETURN
  iptables -A JHDS-NODE-INPUT -p tcp --dport "$port" -j DROP
  network_rules -I
}

network_rules() {  # -I | -D
  iptables -t mangle "$1" FORWARD -i "$BRIDGE" ! -o "$BRIDGE" -m conntrack --ctstate NEW -j DROP
  iptables -t mangle "$1" FORWARD -o "$BRIDGE" ! -i "$BRIDGE" -m conntrack --ctstate NEW -j DROP
  iptables "$1" INPUT -j JHDS-NODE-INPUT
}

network_down() {
  network_rules -D 2>/dev/null || true
  iptables -F JHDS-NODE-INPUT 2>/dev/null && iptables -X JHDS-NODE-INPUT 2>/dev/null || true
  [ -f "$STATE/ip_forward.saved" ] && sysctl -qw "net.ipv4.ip_forward=$(cat "$STATE/ip_forward.saved")" || true
  ip link del "$BRIDGE" 2>/dev/null || true
}

cmd_up() {
  local t0=$SECONDS bin
  exec 3>&1 1>&2
  [ -f "$RUN_DIR/kubeconfig" ] || die "no cluster $CLUSTER: run ci/dev/cluster.sh up first"
  KUBECTL=$("$PYTHON" "$HERE/get_helm.py" | tail -n 1)/kubectl
  install_packages
  bin=$("$HERE/provision-k8s.sh" | tail -n 1)
  mkdir -p "$STATE/cni" "$STATE/pod-logs" "$STATE/kubelet"
  render_to "$CONF_DIR/containerd.toml.in" "$STATE/containerd.toml"
  render_to "$CONF_DIR/cni.conflist.in" "$STATE/cni/10-jhds.conflist"
  render_to "$CONF_DIR/kubelet.yaml.in" "$STATE/kubelet.yaml"
  render_to "$CONF_DIR/kube-proxy.yaml.in" "$STATE/kube-proxy.yaml"
  render_to "$CONF_DIR/Corefile.in" "$STATE/Corefile"
  render_to "$CONF_DIR/local-path.json.in" "$STATE/local-path.json"
  mkdir -p "$STATE/volumes/local" "$STATE/volumes/shared"
  client_cert kubelet "system:node:$NODE_NAME" system:nodes
  client_cert kube-proxy system:kube-proxy system:node-proxier
  client_cert coredns jupyterhub-ds:coredns jupyterhub-ds
  client_cert node-local jupyterhub-ds:node-local jupyterhub-ds
  kubeconfig_for kubelet; kubeconfig_for kube-proxy; kubeconfig_for coredns; kubeconfig_for node-local
  kctl apply -f "$CONF_DIR/rbac.yaml" >/dev/null
  render "$CONF_DIR/storage.yaml.in" | kctl apply -f - >/dev/null
  network_up

  start containerd containerd --config "$STATE/containerd.toml"
  wait_until "containerd" ctr --address "$STATE/containerd.sock" version
  log "images: build (cached by content) and import"
  (cd "$REPO" && "$PYTHON" -m ci.dev.images import --address "$STATE/containerd.sock" ${JHDS_IMAGES:-}) >&2 \
    || die "ci/dev/images.py failed"

  start kubelet "$bin/kubelet" --config "$STATE/kubelet.yaml" --kubeconfig "$STATE/kubelet.kubeconfig" \
    --root-dir "$STATE/kubelet" --hostname-override "$NODE_NAME" --node-ip "$NODE_IP" \
    --node-labels "jupyterhub-ds/node=real"
  start kube-proxy "$bin/kube-proxy" --config "$STATE/kube-proxy.yaml"
  start coredns "$bin/coredns" -conf "$STATE/Corefile"
  start node-local "$bin/local-path-provisioner" start --kubeconfig "$STATE/node-local.kubeconfig" \
    --config "$STATE/local-path.json" --provisioner-name jupyterhub-ds.io/node-local --namespace kube-system \
    --configmap-name jupyterhub-ds-node-local --helper-pod-file "$CONF_DIR/helper-pod.yaml" \
    --helper-image ghcr.io/jupyterhub-ds/hub:0.1.0 --service-account-name default
  wait_until "node $NODE_NAME Ready" kctl wait --for=condition=Ready "node/$NODE_NAME" --timeout=2s
  wait_until "cluster DNS" curl -sf "http://127.0.0.1:$DNS_HEALTH_PORT/health"
  log "node $NODE_NAME is up in $(( SECONDS - t0 ))s ($NODE_IP, pods $POD_CIDR)"
}

stop_process() {
  local pid i
  pid=$(cat "$STATE/$1.pid" 2>/dev/null) || return 0
  kill "$pid" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$STATE/$1.pid"
}

cmd_down() {
  [ -d "$STATE" ] || { log "no node for cluster $CLUSTER"; return 0; }
  stop_process kubelet; stop_process kube-proxy; stop_process coredns; stop_process node-local
  # every container of the node: their shims name our socket
  local pid
  for pid in $(pgrep -f "containerd-shim.*-address $STATE/containerd.sock" || true); do
    pkill -9 -P "$pid" 2>/dev/null || true
    kill -9 "$pid" 2>/dev/null || true
  done
  stop_process containerd
  # mounts left by containers, volumes and sandboxes (deepest first), and the sandboxes' network namespaces
  grep -F -e " $STATE/" -e " $CONTAINERD_ROOT/" /proc/mounts | awk '{print $2}' | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
  for ns in /var/run/netns/cni-*; do
    [ -e "$ns" ] || continue
    ip netns pids "$(basename "$ns")" 2>/dev/null | grep -q . || { umount "$ns" 2>/dev/null; rm -f "$ns"; }
  done
  local bin; bin=$(cat "$RUN_DIR/bin-dir" 2>/dev/null || true)
  [ -x "$bin/kube-proxy" ] && "$bin/kube-proxy" --cleanup >/dev/null 2>&1 || true
  command -v iptables >/dev/null && network_down
  rm -rf "$STATE"
  log "node $NODE_NAME of cluster $CLUSTER removed"
}

cmd_status() {
  KUBECTL=$("$PYTHON" "$HERE/get_helm.py" | tail -n 1)/kubectl
  if running kubelet && [ "$(kctl get node "$NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" = True ]; then
    echo "$NODE_NAME: ready"
    return 0
  fi
  echo "$NODE_NAME: absent"
  return 1
}

case ${1:-} in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  *) sed -n '6,10p' "${BASH_SOURCE[0]}" >&2; exit 2 ;;
esac
