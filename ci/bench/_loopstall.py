"""The longest event-loop stall while a benchmark runs: a ticker task that should wake every ``interval``."""

from __future__ import annotations

import asyncio
import time
from types import TracebackType


class LoopStall:
    """``async with LoopStall() as stall: ...``, then ``stall.longest`` (seconds beyond the ticker's interval)."""

    def __init__(self, interval: float = 0.005):
        self.interval = interval
        self.longest = 0.0
        self._done = False
        self._task: asyncio.Task | None = None

    async def _tick(self) -> None:
        last = time.perf_counter()
        while not self._done:
            await asyncio.sleep(self.interval)
            now = time.perf_counter()
            self.longest = max(self.longest, now - last - self.interval)
            last = now

    async def __aenter__(self) -> LoopStall:
        self._task = asyncio.ensure_future(self._tick())
        await asyncio.sleep(self.interval * 4)  # the ticker is running before the measured work starts
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        self._done = True
        await self._task
