"""The lab environment contract: the variables the lab image reads, computed per spawn.

Names and defaults are upstream's. Every value is a string: KubeSpawner copies ``environment``
values into the pod as they are, and the API server rejects a number where a string belongs.
The variables are set on the notebook container by ``DsKubeSpawner.get_pod_manifest`` (after
KubeSpawner built the pod, with :func:`hub_extensions.objects.set_env`), so KubeSpawner's
``{username}``-style template expansion of ``environment`` does not apply to them, and they win over
a same-named ``KubeSpawner.environment`` entry.

Upstream's ``--ServerApp.disable_check_xsrf=True --ServerApp.allow_origin=*`` arguments are
deliberately not part of this contract.
"""

from __future__ import annotations

from collections.abc import Mapping

from .gpu import GpuDecision
from .settings import LabSettings


def _flag(value: bool) -> str:
    return "1" if value else "0"


def lab_environment(lab: LabSettings, gpu: GpuDecision, icons: Mapping[str, str] | None = None) -> dict[str, str]:
    """The variables for one server: settings, the GPU decision, and the lab icon URLs (if any)."""
    env = {
        "ENABLE_GPU_SUPPORT": _flag(gpu.gpu),
        "ENABLE_GPUSTAT": _flag(gpu.gpu),
        "NVIDIA_DETECTED": _flag(gpu.detected),
        "ENABLE_SERVICE_MLFLOW": _flag(lab.mlflow.enabled),
        "ENABLE_SERVICE_RESOURCES_MONITOR": _flag(lab.resources_monitor),
        "ENABLE_SERVICE_TENSORBOARD": _flag(lab.tensorboard),
        "MLFLOW_TRACKING_URI": lab.mlflow.tracking_uri,
        "MLFLOW_PORT": str(lab.mlflow.port),
        "MLFLOW_HOST": lab.mlflow.host,
        "MLFLOW_WORKERS": str(lab.mlflow.workers),
        "TENSORBOARD_LOGDIR": lab.tensorboard_logdir,
        "TF_CPP_MIN_LOG_LEVEL": str(lab.tf_cpp_min_log_level),
        "JUPYTERLAB_AUX_SCRIPTS_PATH": lab.aux_scripts_path,
        "JUPYTERLAB_AUX_MENU_PATH": lab.aux_menu_path,
        "JUPYTERLAB_TIMEZONE": lab.timezone,
    }
    env.update(icons or {})
    return {k: str(v) for k, v in env.items()}
