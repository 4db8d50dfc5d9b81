"""The coordination sweeper: instances silent past a grace period are disconnected (their in-progress tasks go back
to pending, their locks are dropped) and expired locks are deleted, each with activity rows.

``INSTANCE_GRACE_SECONDS`` (120) can be lowered for tests with the ``CLAUDENEST_INSTANCE_GRACE_SECONDS`` environment
variable of the relay process; the sweep interval (at most 5 s) and how often a request of an instance token is
written down as its heartbeat follow from it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os

from claudenest.store import Store

log = logging.getLogger(__name__)


def _grace_from_env(default: float = 120.0) -> float:
    raw = os.environ.get("CLAUDENEST_INSTANCE_GRACE_SECONDS")
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if value <= 0:
        log.warning("CLAUDENEST_INSTANCE_GRACE_SECONDS=%r is not a positive number; using %g", raw, default)
        return default
    return value


INSTANCE_GRACE_SECONDS = _grace_from_env()
SWEEP_INTERVAL_SECONDS = min(5.0, max(0.1, INSTANCE_GRACE_SECONDS / 4))
# A request of an instance token refreshes last_heartbeat_at at most this often (the grace is far longer).
HEARTBEAT_WRITE_SECONDS = min(1.0, INSTANCE_GRACE_SECONDS / 10)


class Sweeper:
    def __init__(self, store: Store, grace: float | None = None, interval: float | None = None) -> None:
        self.store = store
        self.grace = grace if grace is not None else INSTANCE_GRACE_SECONDS
        self.interval = interval if interval is not None else SWEEP_INTERVAL_SECONDS
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="coordination-sweeper")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def sweep_once(self) -> tuple[int, int]:
        """``(instances disconnected, expired locks deleted)``."""
        gone = await self.store.instances.disconnect_stale(self.grace)
        for instance in gone:
            log.info(
                "instance %s (%s) sent no heartbeat for %gs: disconnected", instance["name"], instance["id"], self.grace
            )
        expired = await self.store.locks.sweep_expired()
        return len(gone), expired

    async def _run(self) -> None:
        while True:
            try:
                await self.sweep_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("coordination sweep failed; trying again in %gs", self.interval)
            await asyncio.sleep(self.interval)
