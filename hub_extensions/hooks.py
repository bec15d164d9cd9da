"""Chain spawner hooks instead of replacing them.

``Spawner.pre_spawn_hook`` and ``KubeSpawner.modify_pod_hook`` each hold one callable, and a
deployment (2i2c's basehub, say) may already use them. These helpers keep what is configured and
run ours after it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from jupyterhub.utils import maybe_future


def _configured(section: Any, trait: str) -> Callable | None:
    value = section.get(trait) if trait in section else None
    return value if callable(value) else None


def chain_pre_spawn_hook(c: Any, hook: Callable[[Any], Any]) -> None:
    """Run ``hook(spawner)`` after any pre_spawn_hook already set on ``c.Spawner`` or ``c.KubeSpawner``."""
    for section_name in ("KubeSpawner", "Spawner"):
        previous = _configured(c[section_name], "pre_spawn_hook")
        if previous:
            break

    async def chained(spawner: Any) -> None:
        if previous:
            await maybe_future(previous(spawner))
        await maybe_future(hook(spawner))

    chained.__wrapped__ = hook  # type: ignore[attr-defined]
    c.KubeSpawner.pre_spawn_hook = chained
    c.Spawner.pre_spawn_hook = chained


def chain_modify_pod_hook(c: Any, hook: Callable[[Any, Any], Any]) -> None:
    """Run ``hook(spawner, pod)`` on the pod returned by any modify_pod_hook already configured."""
    previous = _configured(c.KubeSpawner, "modify_pod_hook")

    async def chained(spawner: Any, pod: Any) -> Any:
        if previous:
            pod = await maybe_future(previous(spawner, pod))
        return await maybe_future(hook(spawner, pod))

    chained.__wrapped__ = hook  # type: ignore[attr-defined]
    c.KubeSpawner.modify_pod_hook = chained
