"""``configure``'s hub-wide pieces that belong to no feature."""

from __future__ import annotations

import asyncio
import copy
import gc
import logging
import threading

from hub_extensions import config


def test_start_up_objects_are_frozen_once_the_hub_has_started(caplog):
    async def scenario() -> None:
        started = asyncio.get_running_loop().create_future()
        config.freeze_gc_when_started(started)
        await asyncio.sleep(0)
        assert gc.get_freeze_count() == 0  # not before the hub is up: its start-up objects are not all there yet
        started.set_result(None)
        await asyncio.sleep(0)

    try:
        with caplog.at_level(logging.INFO, logger="JupyterHub.ds.config"):
            asyncio.run(scenario())
        assert gc.get_freeze_count() > 0
        assert "start-up objects frozen out of garbage collection" in caplog.text
    finally:
        gc.unfreeze()


def test_outside_a_hub_nothing_waits_for_a_start():
    assert config._hub_start_future() is None


def test_one_runtime_object_reaches_every_feature():
    """Handlers, the spawner class, the dashboard and the background work see the same settings and namespace."""
    from traitlets.config import Config

    from hub_extensions import activity, runtime
    from hub_extensions.spawner import DsKubeSpawner

    c = Config()
    c.KubeSpawner.namespace = "team-a"
    c.KubeSpawner.component_label = "lab"
    settings = config.configure(c, {"activity": {"enabled": True}})
    rt = c.JupyterHub.tornado_settings.get_value({})[runtime.TORNADO_KEY]
    assert isinstance(rt, runtime.Runtime) and rt.settings is settings
    assert (rt.namespace, rt.server_selector) == ("team-a", "component=lab")
    assert DsKubeSpawner.ds_settings is settings and DsKubeSpawner.ds_branding is rt.branding
    assert activity._runtime is rt
    rt.app = threading.Lock()  # like the JupyterHub app, it cannot be copied
    assert copy.deepcopy(c).JupyterHub.tornado_settings.get_value({})[runtime.TORNADO_KEY] is rt  # as traitlets does
    assert rt.hub() is None  # outside a hub: no application, and no feature reaches for one
    assert c.JupyterHub.template_vars.get_value({})["ds_dashboard"](None) is None
    names = [f.name for f in config.FEATURES]
    assert len(names) == len(set(names))


def test_the_namespace_is_the_spawners(tmp_path, monkeypatch):
    from hub_extensions import runtime

    assert runtime.spawner_namespace("team-a") == "team-a"
    monkeypatch.setattr(runtime, "SERVICE_ACCOUNT_NAMESPACE", str(tmp_path / "absent"))
    assert runtime.spawner_namespace("") == "default"
    (tmp_path / "namespace").write_text("hub-ns\n")
    monkeypatch.setattr(runtime, "SERVICE_ACCOUNT_NAMESPACE", str(tmp_path / "namespace"))
    assert runtime.spawner_namespace(None) == "hub-ns"
