"""Hook chaining keeps what a deployment configured and runs ours after it."""

from __future__ import annotations

from traitlets.config import Config

from hub_extensions.hooks import chain_modify_pod_hook, chain_pre_spawn_hook


async def test_pre_spawn_hooks_run_in_order():
    calls = []
    c = Config()

    async def theirs(spawner):
        calls.append(("theirs", spawner))

    c.Spawner.pre_spawn_hook = theirs
    chain_pre_spawn_hook(c, lambda spawner: calls.append(("ours", spawner)))
    await c.KubeSpawner.pre_spawn_hook("s")
    assert calls == [("theirs", "s"), ("ours", "s")]
    assert c.Spawner.pre_spawn_hook is c.KubeSpawner.pre_spawn_hook


async def test_modify_pod_hooks_thread_the_pod():
    c = Config()
    c.KubeSpawner.modify_pod_hook = lambda spawner, pod: [*pod, "theirs"]

    async def ours(spawner, pod):
        return [*pod, "ours"]

    chain_modify_pod_hook(c, ours)
    assert await c.KubeSpawner.modify_pod_hook("s", []) == ["theirs", "ours"]


async def test_chaining_without_a_previous_hook():
    c = Config()
    chain_modify_pod_hook(c, lambda spawner, pod: pod + 1)
    assert await c.KubeSpawner.modify_pod_hook(None, 1) == 2
