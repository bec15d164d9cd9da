"""The lab environment contract: upstream names and defaults, strings only, per-mode GPU flags."""

from __future__ import annotations

import pytest
from kubernetes_asyncio.client import V1Container, V1EnvVar, V1Pod, V1PodSpec
from traitlets.config import Config

from hub_extensions import configure, gpu, labenv, objects
from hub_extensions.settings import GpuSettings, LabSettings, load_settings

from .spawner_fixtures import as_json, fake_kubeconfig, fake_user, make_spawner, notebook, spawn_manifest

__all__ = ["fake_kubeconfig"]

DEFAULTS = {
    "ENABLE_GPU_SUPPORT": "0", "ENABLE_GPUSTAT": "0", "NVIDIA_DETECTED": "0",
    "ENABLE_SERVICE_MLFLOW": "1", "ENABLE_SERVICE_RESOURCES_MONITOR": "1", "ENABLE_SERVICE_TENSORBOARD": "1",
    "MLFLOW_TRACKING_URI": "http://localhost:5000", "MLFLOW_PORT": "5000", "MLFLOW_HOST": "0.0.0.0",
    "MLFLOW_WORKERS": "1", "TENSORBOARD_LOGDIR": "/tmp/tensorboard", "TF_CPP_MIN_LOG_LEVEL": "3",
    "JUPYTERLAB_AUX_SCRIPTS_PATH": "", "JUPYTERLAB_AUX_MENU_PATH": "", "JUPYTERLAB_TIMEZONE": "Etc/UTC",
}


def test_defaults_are_upstreams_and_all_strings():
    env = labenv.lab_environment(LabSettings(), gpu.GpuDecision(False, False))
    assert env == DEFAULTS
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in env.items())


@pytest.mark.parametrize(("mode", "nodes_have_gpus", "flags"), [
    (0, None, ("0", "0", "0")),
    (1, None, ("1", "1", "0")),
    (2, True, ("1", "1", "1")),
    (2, False, ("0", "0", "0")),
])
def test_gpu_flags_per_mode(mode, nodes_have_gpus, flags):
    decision = gpu.decide(GpuSettings(mode=mode), [], nodes_have_gpus)
    env = labenv.lab_environment(LabSettings(), decision)
    assert (env["ENABLE_GPU_SUPPORT"], env["ENABLE_GPUSTAT"], env["NVIDIA_DETECTED"]) == flags


def test_settings_reach_the_environment_as_strings():
    lab = load_settings({"lab": {
        "mlflow": {"enabled": False, "trackingUri": "http://mlflow:5001", "port": 5001, "host": "127.0.0.1",
                   "workers": 4},
        "resourcesMonitor": False, "tensorboard": False, "tensorboardLogdir": "/home/lab/tb",
        "tfCppMinLogLevel": 0, "auxScriptsPath": "/etc/jupyterhub-ds/start-platform.d",
        "auxMenuPath": "/etc/jupyterhub-ds/lab-utils.d", "timezone": "Europe/Warsaw"}}).lab
    env = labenv.lab_environment(lab, gpu.GpuDecision(True, True), {"JUPYTERLAB_MAIN_ICON_URI": "https://x/i.svg"})
    assert env == {
        "ENABLE_GPU_SUPPORT": "1", "ENABLE_GPUSTAT": "1", "NVIDIA_DETECTED": "1",
        "ENABLE_SERVICE_MLFLOW": "0", "ENABLE_SERVICE_RESOURCES_MONITOR": "0", "ENABLE_SERVICE_TENSORBOARD": "0",
        "MLFLOW_TRACKING_URI": "http://mlflow:5001", "MLFLOW_PORT": "5001", "MLFLOW_HOST": "127.0.0.1",
        "MLFLOW_WORKERS": "4", "TENSORBOARD_LOGDIR": "/home/lab/tb", "TF_CPP_MIN_LOG_LEVEL": "0",
        "JUPYTERLAB_AUX_SCRIPTS_PATH": "/etc/jupyterhub-ds/start-platform.d",
        "JUPYTERLAB_AUX_MENU_PATH": "/etc/jupyterhub-ds/lab-utils.d", "JUPYTERLAB_TIMEZONE": "Europe/Warsaw",
        "JUPYTERLAB_MAIN_ICON_URI": "https://x/i.svg",
    }


def test_set_env_replaces_same_named_entries_of_either_shape():
    pod = V1Pod(spec=V1PodSpec(containers=[V1Container(name="notebook", env=[
        {"name": "KEEP", "value": "1"}, {"name": "MLFLOW_PORT", "value": "1"},
        V1EnvVar(name="TF_CPP_MIN_LOG_LEVEL", value="0")])]))
    objects.set_env(pod, {"MLFLOW_PORT": "5000", "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert notebook(as_json(pod))["env"] == [{"name": "KEEP", "value": "1"}, {"name": "MLFLOW_PORT", "value": "5000"},
                                             {"name": "TF_CPP_MIN_LOG_LEVEL", "value": "3"}]


async def test_contract_lands_in_the_pod_as_strings_and_wins_over_environment(fake_kubeconfig):
    c = Config()
    c.KubeSpawner.environment = {"TF_CPP_MIN_LOG_LEVEL": "1", "OTHER": "{username}"}
    configure(c, {"gpu": {"mode": 1}})
    pod = as_json(await spawn_manifest(make_spawner(c, fake_user())))
    env = {e["name"]: e.get("value") for e in notebook(pod)["env"]}
    assert {k: env[k] for k in DEFAULTS} == {**DEFAULTS, "ENABLE_GPU_SUPPORT": "1", "ENABLE_GPUSTAT": "1"}
    assert env["OTHER"] == "alice"  # KubeSpawner's own environment still expands templates
    assert [e["name"] for e in notebook(pod)["env"]].count("TF_CPP_MIN_LOG_LEVEL") == 1
    assert "JUPYTERLAB_MAIN_ICON_URI" not in env  # not set when branding leaves it empty
    args = " ".join(notebook(pod).get("args") or [])
    assert "disable_check_xsrf" not in args and "allow_origin" not in args
