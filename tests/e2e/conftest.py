from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.harness import Agent, Relay, User, add_user, pair_agent


@dataclass
class Stack:
    relay: Relay
    user: User
    agent: Agent
    root: Path


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A relay, one user logged in from the CLI, and one agent paired through the real flow."""
    root = tmp_path_factory.mktemp("stack")
    relay = Relay(root / "relay").start()
    user = add_user(relay, "me@example.com", root / "cli")
    agent = pair_agent(relay, user, root / "agent", "laptop")
    try:
        yield Stack(relay, user, agent, root)
    finally:
        agent.stop()
        relay.stop()
