#!/usr/bin/env bash
# Install jupyterhub-ds on a local kind (Kubernetes-in-Docker) cluster.
#
#   ci/kind/up.sh                 create the cluster if missing, build + load both images,
#                                 install the chart, print the URL and first-login steps
#   ci/kind/up.sh --print-config  print the settings and exit (needs no tools)
#   ci/kind/up.sh --print-helm-args  print the -f/--set arguments given to helm and exit
#
# Needs a running Docker engine plus docker, kind, kubectl, helm and curl on PATH.
# Every setting can be overridden from the environment.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"

KIND_CLUSTER_NAME="${KIND_CLUSTER_NAME:-jupyterhub-ds}"
KIND_CONFIG="${KIND_CONFIG:-ci/kind/kind-config.yaml}"
NAMESPACE="${NAMESPACE:-jupyterhub-ds}"
RELEASE="${RELEASE:-jupyterhub-ds}"
VALUES_FILE="${VALUES_FILE:-values.example.yaml}"
# Same names as chart/values.yaml, so only the tag differs from a registry install; the images are
# loaded into the kind nodes and never pulled.
HUB_IMAGE="${HUB_IMAGE:-ghcr.io/jupyterhub-ds/hub}"
SINGLEUSER_IMAGE="${SINGLEUSER_IMAGE:-ghcr.io/jupyterhub-ds/singleuser}"
# Pod Security level enforced on the namespace. privileged (the chart's advice) admits the
# docker-privileged group and Z2JH's cloud-metadata blocker; baseline is reported as warnings.
POD_SECURITY_LEVEL="${POD_SECURITY_LEVEL:-privileged}"
# kind's default StorageClass (local-path) cannot provision ReadWriteMany claims, so the shared
# volume is a hostPath PersistentVolume on the worker node, pre-bound to the chart's claim.
KIND_SHARED_DIR="${KIND_SHARED_DIR:-/var/local/jupyterhub-ds-shared}"
# proxy-public NodePort; must equal the containerPort of the extraPortMappings in kind-config.yaml,
# whose hostPort is HOST_PORT.
PROXY_NODE_PORT=30080
HOST_PORT=8080
URL="http://localhost:${HOST_PORT}"

# Images are tagged with the chart's appVersion (chart/Chart.yaml).
chart_app_version() {
  [ -f chart/Chart.yaml ] || return 0
  sed -n -E "s/^appVersion:[[:space:]]*[\"']?([^\"'[:space:]#]+).*/\1/p" chart/Chart.yaml | head -n 1
}
IMAGE_TAG="${IMAGE_TAG:-$(chart_app_version)}"

# Label for the images: the repository URL when known (GitHub Actions, or the origin remote).
if [ -n "${GITHUB_SERVER_URL:-}" ] && [ -n "${GITHUB_REPOSITORY:-}" ]; then
  SOURCE_URL="${GITHUB_SERVER_URL}/${GITHUB_REPOSITORY}"
else
  # Drop any user:token@ part of an https remote before it lands in an image label.
  SOURCE_URL="$(git remote get-url origin 2>/dev/null | sed -E 's#://[^/@]*@#://#' || true)"
fi

print_config() {
  cat <<EOF
KIND_CLUSTER_NAME=${KIND_CLUSTER_NAME}
KIND_CONFIG=${KIND_CONFIG}
NAMESPACE=${NAMESPACE}
RELEASE=${RELEASE}
VALUES_FILE=${VALUES_FILE}
HUB_IMAGE=${HUB_IMAGE}
SINGLEUSER_IMAGE=${SINGLEUSER_IMAGE}
IMAGE_TAG=${IMAGE_TAG}
POD_SECURITY_LEVEL=${POD_SECURITY_LEVEL}
KIND_SHARED_DIR=${KIND_SHARED_DIR}
PROXY_NODE_PORT=${PROXY_NODE_PORT}
HOST_PORT=${HOST_PORT}
URL=${URL}
EOF
}

# Values of the release (printed by --print-helm-args; tests/test_kind.py renders the chart with them).
values_args=(
  -f "$VALUES_FILE"
  # The images built and loaded below; IfNotPresent: use the loaded images, never pull them.
  --set-string "jupyterhub.hub.image.name=${HUB_IMAGE}"
  --set-string "jupyterhub.hub.image.tag=${IMAGE_TAG}"
  --set-string "jupyterhub.hub.image.pullPolicy=IfNotPresent"
  --set-string "jupyterhub.singleuser.image.name=${SINGLEUSER_IMAGE}"
  --set-string "jupyterhub.singleuser.image.tag=${IMAGE_TAG}"
  --set-string "jupyterhub.singleuser.image.pullPolicy=IfNotPresent"
  # proxy-public on a fixed NodePort, mapped to HOST_PORT by kind-config.yaml.
  --set-string "jupyterhub.proxy.service.type=NodePort"
  --set "jupyterhub.proxy.service.nodePorts.http=${PROXY_NODE_PORT}"
  # The shared claim binds to the hostPath PersistentVolume created below.
  --set-string "jupyterhub.custom.ds.storage.shared.storageClass="
  # The namespace carries the Pod Security labels (set below): silence the chart's reminder.
  --set "podSecurity.namespaceLabels=true"
)
if [ "$POD_SECURITY_LEVEL" != privileged ]; then
  # Z2JH's cloud-metadata blocker is a privileged init container; kind has no metadata server anyway.
  values_args+=(--set "jupyterhub.singleuser.cloudMetadata.blockWithIptables=false")
fi

log() { printf '[kind-up %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

case "${1:-}" in
  --print-config) print_config; exit 0 ;;
  --print-helm-args) printf '%s\n' "${values_args[@]}"; exit 0 ;;
  -h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  "") ;;
  *) die "unknown argument: $1 (try --help)" ;;
esac

[ -n "$IMAGE_TAG" ] || die "could not read appVersion from chart/Chart.yaml (or set IMAGE_TAG)"
[ -f "$VALUES_FILE" ] || die "values file not found: $VALUES_FILE (set VALUES_FILE)"
for tool in docker kind kubectl helm curl; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool is not on PATH"
done
docker info >/dev/null 2>&1 || die "no Docker engine reachable (docker info failed); kind needs one"

CONTEXT="kind-${KIND_CLUSTER_NAME}"

# 1. Cluster
existing_clusters="$(kind get clusters 2>/dev/null || true)"
if grep -qx "$KIND_CLUSTER_NAME" <<<"$existing_clusters"; then
  log "kind cluster $KIND_CLUSTER_NAME exists"
else
  log "creating kind cluster $KIND_CLUSTER_NAME"
  kind create cluster --name "$KIND_CLUSTER_NAME" --config "$KIND_CONFIG" --wait 180s
fi

# 2. Images (hub: context = repository root, it builds the hub_extensions wheel)
log "building ${HUB_IMAGE}:${IMAGE_TAG}"
docker build -f images/hub/Dockerfile -t "${HUB_IMAGE}:${IMAGE_TAG}" \
  --build-arg VERSION="$IMAGE_TAG" --build-arg SOURCE_URL="$SOURCE_URL" .
log "building ${SINGLEUSER_IMAGE}:${IMAGE_TAG}"
docker build -f images/singleuser/Dockerfile -t "${SINGLEUSER_IMAGE}:${IMAGE_TAG}" \
  --build-arg VERSION="$IMAGE_TAG" --build-arg SOURCE_URL="$SOURCE_URL" images/singleuser
log "loading images into the kind nodes"
kind load docker-image --name "$KIND_CLUSTER_NAME" "${HUB_IMAGE}:${IMAGE_TAG}" "${SINGLEUSER_IMAGE}:${IMAGE_TAG}"

# 3. Namespace with Pod Security labels, set before any pod exists so they apply at admission.
kubectl --context "$CONTEXT" create namespace "$NAMESPACE" --dry-run=client -o yaml \
  | kubectl --context "$CONTEXT" apply -f -
kubectl --context "$CONTEXT" label namespace "$NAMESPACE" --overwrite \
  pod-security.kubernetes.io/enforce="$POD_SECURITY_LEVEL" \
  pod-security.kubernetes.io/warn=baseline \
  pod-security.kubernetes.io/audit=baseline

# 4. Shared volume: a directory on the worker node (user pods run there; the control plane is tainted),
#    writable by the notebook user (uid 1000, gid 100), exposed as a ReadWriteMany PersistentVolume
#    reserved for the chart's claim jupyterhub-ds-shared (storageClass "" = no dynamic provisioning).
WORKER_NODE="${KIND_CLUSTER_NAME}-worker"
docker exec "$WORKER_NODE" sh -c \
  "mkdir -p '$KIND_SHARED_DIR' && chown 1000:100 '$KIND_SHARED_DIR' && chmod 2775 '$KIND_SHARED_DIR'" \
  || die "cannot prepare $KIND_SHARED_DIR on node $WORKER_NODE (was the cluster created from $KIND_CONFIG?)"
kubectl --context "$CONTEXT" apply -f - <<EOF
apiVersion: v1
kind: PersistentVolume
metadata:
  name: ${NAMESPACE}-jupyterhub-ds-shared
spec:
  capacity:
    storage: 100Gi
  accessModes: [ReadWriteMany]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: ""
  claimRef:
    namespace: ${NAMESPACE}
    name: jupyterhub-ds-shared
  hostPath:
    path: ${KIND_SHARED_DIR}
    type: Directory
  nodeAffinity:
    required:
      nodeSelectorTerms:
        - matchExpressions:
            - key: kubernetes.io/hostname
              operator: In
              values: [${WORKER_NODE}]
EOF

# 5. Chart
log "helm dependency build chart"
# chart/Chart.lock pins Z2JH: `helm dependency build` then needs its repository added
helm repo add --force-update jupyterhub https://hub.jupyter.org/helm-chart/
helm dependency build chart
log "installing release $RELEASE into namespace $NAMESPACE"
helm upgrade --install "$RELEASE" chart \
  --kube-context "$CONTEXT" \
  --namespace "$NAMESPACE" --create-namespace \
  "${values_args[@]}" \
  --wait --timeout 10m

# 6. Wait until the hub answers through the proxy and the host port mapping.
log "waiting for ${URL}/hub/health"
for _ in $(seq 1 60); do
  if curl -fsS -o /dev/null "${URL}/hub/health" 2>/dev/null; then
    break
  fi
  sleep 2
done
curl -fsS -o /dev/null "${URL}/hub/health" || die "the hub does not answer at ${URL}/hub/health"

ADMIN_PASSWORD_CMD="kubectl --context ${CONTEXT} -n ${NAMESPACE} get secret jupyterhub-ds-first-admin -o jsonpath='{.data.password}' | base64 -d"
ADMIN_PASSWORD="$(eval "$ADMIN_PASSWORD_CMD")" || die "cannot read the first admin's password (Secret jupyterhub-ds-first-admin)"

cat <<EOF

jupyterhub-ds is running on kind cluster '${KIND_CLUSTER_NAME}' (kubectl context ${CONTEXT}).

  URL: ${URL}

First login:
  1. Log in at ${URL}/hub/login as 'admin' with the password ${ADMIN_PASSWORD}
     (generated by the chart into the Secret jupyterhub-ds-first-admin; read it again with
     ${ADMIN_PASSWORD_CMD}).
  2. Add users on ${URL}/hub/admin (each gets a generated password, shown once), or let them sign up
     at ${URL}/hub/signup and authorize them at ${URL}/hub/authorize.

Remove everything: kind delete cluster --name ${KIND_CLUSTER_NAME}
EOF
