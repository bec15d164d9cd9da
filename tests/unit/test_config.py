"""``configure``'s hub-wide pieces that belong to no feature."""

from __future__ import annotations

import asyncio
import gc
import logging

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
