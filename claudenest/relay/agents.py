"""The agents connected right now: one peer per machine, the newest connection wins. No store, no HTTP."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from claudenest.errors import Conflict
from claudenest.protocol import Frame, Message
from claudenest.relay.outbox import Outbox


@dataclass
class AgentPeer:
    machine: dict[str, Any]
    outbox: Outbox
    close: Callable[[int, str], Awaitable[None]]
    # The next offset of each session's input stream (viewers' keystrokes, in the order the relay took them).
    input_offsets: dict[str, int] = field(default_factory=dict)

    @property
    def machine_id(self) -> str:
        return str(self.machine["id"])


class Agents:
    def __init__(self) -> None:
        self._peers: dict[str, AgentPeer] = {}

    def __len__(self) -> int:
        return len(self._peers)

    def online(self, machine_id: str) -> bool:
        return machine_id in self._peers

    def get(self, machine_id: str) -> AgentPeer | None:
        return self._peers.get(machine_id)

    def require(self, machine_id: str) -> AgentPeer:
        peer = self._peers.get(machine_id)
        if peer is None:
            raise Conflict("the machine is offline")
        return peer

    def send(self, machine_id: str, item: Message | Frame) -> bool:
        """Queue a message for the machine's agent; False when it is offline (the next hello resynchronises)."""
        peer = self._peers.get(machine_id)
        if peer is None:
            return False
        peer.outbox.put(item)
        return True

    async def connected(self, peer: AgentPeer) -> None:
        """Take a new connection; an older one of the same machine is closed first."""
        previous = self._peers.get(peer.machine_id)
        if previous is not None:
            with contextlib.suppress(Exception):
                await previous.close(4000, "replaced by a newer connection of the same machine")
            await previous.outbox.stop()
        self._peers[peer.machine_id] = peer
        peer.outbox.start()

    async def disconnected(self, peer: AgentPeer) -> None:
        if self._peers.get(peer.machine_id) is peer:
            del self._peers[peer.machine_id]
        await peer.outbox.stop()

    async def disconnect(self, machine_id: str, code: int, reason: str) -> None:
        """Close the machine's connection (revocation); nothing happens when it is offline."""
        peer = self._peers.get(machine_id)
        if peer is not None:
            await peer.close(code, reason)

    async def stop(self) -> None:
        for peer in list(self._peers.values()):
            await peer.outbox.stop()
