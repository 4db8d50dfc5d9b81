"""ClaudeNest: run Claude Code on your own machines and drive it from anywhere."""

__version__ = "0.1.0"
