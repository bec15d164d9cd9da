#!/usr/bin/env bash
# Smoke test of a running local control plane (ci/dev/cluster.sh up): scheduling on cpu-1 with a loopback pod IP that
# a real process can bind, GPU extended resources and taint, PVC provisioning through StorageClass "standard",
# metrics.k8s.io from pod usage annotations, pod deletion. Works in a throw-away namespace, removed at the end.
# Usage: ci/dev/cluster/smoke.sh [--no-metrics]   (metrics take ~1 min: metrics-server needs two 15 s scrapes)
# The small check functions are only called through poll/check/trap:
# shellcheck disable=SC2317
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
KUBECONFIG=$("$HERE/../cluster.sh" kubeconfig)
export KUBECONFIG
KUBECTL=$(python3 "$HERE/../get_helm.py" | tail -n 1)/kubectl
NS=jhds-smoke-$$
PORT=8888
passes=0
failures=0

k() { "$KUBECTL" -n "$NS" "$@"; }
ok() { printf 'ok   %s\n' "$*"; passes=$((passes + 1)); }
bad() { printf 'FAIL %s\n' "$*"; failures=$((failures + 1)); }
# check <ok message> <failure message> <command...>
check() {
  local yes=$1 no=$2
  shift 2
  if "$@"; then ok "$yes"; else bad "$no"; fi
}
# poll <seconds> <command...>: retry every second.
poll() {
  local n=$1
  shift
  for ((i = 0; i < n; i++)); do "$@" >/dev/null 2>&1 && return 0; sleep 1; done
  return 1
}
phase() { [[ $(k get pod "$1" -o jsonpath='{.status.phase}') == "$2" ]]; }
cleanup() {
  if [[ -n ${server_pid:-} ]]; then kill "$server_pid" 2>/dev/null || true; fi
  "$KUBECTL" delete namespace "$NS" --wait=false >/dev/null 2>&1 || true
}
trap cleanup EXIT

"$KUBECTL" create namespace "$NS" >/dev/null
poll 30 k get serviceaccount default || bad "no default ServiceAccount in $NS"
k apply -f - >/dev/null <<'EOF'
apiVersion: v1
kind: Pod
metadata:
  name: plain
  annotations: {kwok.x-k8s.io/usage-cpu: 250m, kwok.x-k8s.io/usage-memory: 300Mi}
spec:
  containers: [{name: main, image: busybox}]
---
apiVersion: v1
kind: Pod
metadata: {name: gpu-one}
spec:
  tolerations: [{key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}]
  containers: [{name: main, image: busybox, resources: {limits: {nvidia.com/gpu: 1}}}]
---
apiVersion: v1
kind: Pod
metadata: {name: gpu-three}
spec:
  tolerations: [{key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}]
  containers: [{name: main, image: busybox, resources: {limits: {nvidia.com/gpu: 3}}}]
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: claim}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
EOF
created=$SECONDS

if poll 60 phase plain Running; then
  node=$(k get pod plain -o jsonpath='{.spec.nodeName}')
  ip=$(k get pod plain -o jsonpath='{.status.podIP}')
  check "plain pod Running on cpu-1" "plain pod on '$node', expected cpu-1" [ "$node" = cpu-1 ]
  if [[ $ip == 127.* ]]; then
    ok "plain pod IP $ip is on loopback"
    python3 -m http.server "$PORT" --bind "$ip" >/dev/null 2>&1 &
    server_pid=$!
    if poll 10 python3 -c "import urllib.request; urllib.request.urlopen('http://$ip:$PORT/', timeout=2)"; then
      ok "a real process serves on $ip:$PORT"
    else
      bad "could not serve on $ip:$PORT"
    fi
  else
    bad "plain pod IP '$ip' is not on loopback (127.0.0.0/8)"
  fi
else
  bad "plain pod not Running: $(k get pod plain -o jsonpath='{.status}')"
fi

if poll 60 phase gpu-one Running; then
  node=$(k get pod gpu-one -o jsonpath='{.spec.nodeName}')
  check "pod with nvidia.com/gpu: 1 Running on gpu-1" "GPU pod on '$node', expected gpu-1" [ "$node" = gpu-1 ]
else
  bad "GPU pod not Running"
fi

insufficient() { k get events --field-selector involvedObject.name=gpu-three,reason=FailedScheduling \
  -o jsonpath='{.items[*].message}' | grep -q 'Insufficient nvidia.com/gpu'; }
if poll 30 insufficient && phase gpu-three Pending; then
  ok "pod asking for 3 GPUs stays Pending (FailedScheduling: Insufficient nvidia.com/gpu)"
else
  bad "3-GPU pod: phase $(k get pod gpu-three -o jsonpath='{.status.phase}'), no 'Insufficient nvidia.com/gpu' event"
fi

bound() { [[ $(k get pvc claim -o jsonpath='{.status.phase}') == Bound ]]; }
if poll 30 bound; then
  pv=$(k get pvc claim -o jsonpath='{.spec.volumeName}')
  ok "PVC Bound to $pv (StorageClass $(k get pvc claim -o jsonpath='{.spec.storageClassName}'))"
  k delete pvc claim --wait=true >/dev/null
  pv_gone() { ! "$KUBECTL" get pv "$pv" >/dev/null 2>&1; }
  check "PVC deleted, PV $pv removed" "PV $pv still there after the PVC was deleted" poll 30 pv_gone
else
  bad "PVC not Bound: $(k get pvc claim -o jsonpath='{.status}')"
fi

if [[ ${1:-} != --no-metrics ]]; then
  metrics() { "$KUBECTL" get --raw "/apis/metrics.k8s.io/v1beta1/namespaces/$NS/pods/plain"; }
  if poll 150 metrics; then
    ok "PodMetrics after $((SECONDS - created))s: $(metrics | python3 -c 'import json,sys; print(json.load(sys.stdin)["containers"][0]["usage"])')"
  else
    bad "no PodMetrics for pod plain after $((SECONDS - created))s"
  fi
fi

k delete pod plain gpu-one gpu-three --wait=true >/dev/null
gone() { [[ -z $(k get pods -o name) ]]; }
check "pods deleted" "pods left after deletion" poll 30 gone

echo "smoke: $passes passed, $failures failed"
exit $((failures > 0))
