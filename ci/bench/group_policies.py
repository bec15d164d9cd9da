#!/usr/bin/env python3
"""Benchmark: the spawn-time cost of group policies, a user in 5 groups with 1,000 policies defined.

What ``DsKubeSpawner.get_pod_manifest`` adds per start: :func:`hub_extensions.group_policies.resolve` over every
policy, then :func:`~hub_extensions.group_policies.apply` on the notebook pod as KubeSpawner builds it (a real
``kubernetes_asyncio`` ``V1Pod`` with the chart's default volumes, resources and environment). No API call is made
(there is none to make). Each of the 1,000 policies sets environment, CPU and memory, a mount, a node selector and
a toleration; the user's 5 groups are spread over them.

Prints the median and p99 per start; exits 1 above the target (issue 22: <= 5 ms).

    python -m ci.bench.group_policies [--policies 1000] [--groups 5] [--runs 2000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from kubernetes_asyncio.client import V1Container, V1EnvVar, V1Pod, V1PodSpec, V1ResourceRequirements, V1VolumeMount

from hub_extensions import group_policies
from hub_extensions.settings import load_settings

TARGET_MS = 5.0


def policies(n: int) -> list[dict]:
    return [{"group": f"team-{i}", "priority": i % 11,
             "env": {f"TEAM_{i}": str(i), "SHARED_NAME": f"team-{i}"},
             "resources": {"cpuRequest": f"{i % 4 + 1}", "cpuLimit": f"{i % 8 + 4}", "memoryLimit": f"{i % 16 + 1}Gi"},
             "mounts": [{"claimName": f"data-{i}", "mountPath": f"/data/{i}"}],
             "nodeSelector": {"pool": f"pool-{i % 3}"},
             "tolerations": [{"key": "pool", "operator": "Equal", "value": f"pool-{i % 3}", "effect": "NoSchedule"}]}
            for i in range(n)]


def kubespawner_pod() -> V1Pod:
    """What KubeSpawner hands ``get_pod_manifest``'s caller for a default Z2JH server (models, not dicts)."""
    notebook = V1Container(
        name="notebook", image="quay.io/jupyter/base-notebook",
        env=[V1EnvVar(name=f"JUPYTERHUB_{k}", value="x") for k in ("API_TOKEN", "USER", "SERVER_NAME", "API_URL")],
        resources=V1ResourceRequirements(requests={"memory": "1073741824"}, limits={"cpu": "2.0"}),
        volume_mounts=[V1VolumeMount(name="ds-home", mount_path="/home/jovyan"),
                       V1VolumeMount(name="ds-shared", mount_path="/mnt/shared")])
    return V1Pod(spec=V1PodSpec(containers=[notebook], volumes=[]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policies", type=int, default=1000)
    parser.add_argument("--groups", type=int, default=5)
    parser.add_argument("--runs", type=int, default=2000)
    args = parser.parse_args()
    settings = load_settings({"groupPolicies": policies(args.policies)})
    group_policies.check(settings)
    step = max(1, args.policies // args.groups)
    groups = {f"team-{i * step}" for i in range(args.groups)} | {"unrelated-a", "unrelated-b"}
    times = []
    for _ in range(args.runs):
        pod = kubespawner_pod()  # built outside the timing: KubeSpawner's part, not ours
        started = time.perf_counter()
        resolved = group_policies.resolve(settings.group_policies, groups)
        group_policies.apply(pod, resolved, gpu_granted=False, privileged=False)
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    median, p99 = statistics.median(times), times[int(len(times) * 0.99) - 1]
    print(f"group policies: {args.policies} defined, user in {args.groups}: resolve + apply per start "
          f"median {median:.3f} ms, p99 {p99:.3f} ms over {args.runs} starts (target <= {TARGET_MS:g} ms); "
          f"{len(resolved.mounts)} mounts, {len(resolved.env)} variables")
    return 0 if p99 <= TARGET_MS else 1


if __name__ == "__main__":
    sys.exit(main())
