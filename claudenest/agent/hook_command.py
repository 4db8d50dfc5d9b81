"""Command-hook fallback for Claude Code releases without HTTP hooks: forward stdin to the agent's hook URL.

Usage (written into --settings by the agent): ``python -m claudenest.agent.hook_command URL``. The secret comes
from the CLAUDENEST_HOOK_TOKEN environment variable, which Claude passes on to its hooks. Never blocks Claude:
any failure prints nothing and exits 0.
"""

from __future__ import annotations

import os
import sys
import urllib.request


def main() -> int:
    url = sys.argv[1] if len(sys.argv) > 1 else ""
    body = sys.stdin.buffer.read()
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "Authorization": f"Bearer {os.environ.get('CLAUDENEST_HOOK_TOKEN', '')}",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=600) as response:  # noqa: S310 (loopback URL we wrote)
            sys.stdout.buffer.write(response.read())
    except Exception:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
