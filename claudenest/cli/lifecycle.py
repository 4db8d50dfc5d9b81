"""Run a long-lived coroutine with a graceful stop on SIGINT/SIGTERM; a second signal forces the exit."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Coroutine
from typing import Any


def run_until_signal(main: Coroutine[Any, Any, None]) -> None:
    async def runner() -> None:
        task = asyncio.ensure_future(main)
        loop = asyncio.get_running_loop()
        stopping = False

        def stop() -> None:
            nonlocal stopping
            if stopping:
                os._exit(130)  # second Ctrl-C: do not wait for graceful shutdown
            stopping = True
            task.cancel()

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop)
        try:
            await task
        except asyncio.CancelledError:
            if not stopping:
                raise

    asyncio.run(runner())
