"""What `claudenest mcp serve` needs before the MCP SDK is imported: its configuration and what it tells clients."""

from __future__ import annotations

import os
from dataclasses import dataclass

from claudenest.errors import ConfigError

SERVER_NAME = "claudenest"
INSTRUCTIONS = (
    "Coordinate with the other Claude instances on this project: claim a task before working on it, "
    "take a file lock before editing a file, complete or release what you claimed, and record decisions "
    "in the shared context."
)


@dataclass(frozen=True)
class McpConfig:
    relay_url: str
    token: str
    project_id: str
    instance_id: str

    @classmethod
    def from_env(cls) -> McpConfig:
        names = ("CLAUDENEST_RELAY_URL", "CLAUDENEST_INSTANCE_TOKEN", "CLAUDENEST_PROJECT_ID", "CLAUDENEST_INSTANCE_ID")
        missing = [n for n in names if not os.environ.get(n)]
        if missing:
            raise ConfigError(f"claudenest mcp serve needs {', '.join(missing)} in its environment")
        return cls(*(os.environ[n] for n in names))
