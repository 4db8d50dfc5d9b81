"""Logging to stderr (journald-friendly), text or JSON, with tokens redacted."""

from __future__ import annotations

import json
import logging
import sys

from claudenest.tokens import redact


class RedactingFormatter(logging.Formatter):
    def __init__(self, as_json: bool) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")
        self.as_json = as_json

    def format(self, record: logging.LogRecord) -> str:
        message = redact(record.getMessage())
        if record.exc_info:
            message += "\n" + redact(self.formatException(record.exc_info))
        if self.as_json:
            return json.dumps(
                {
                    "time": self.formatTime(record),
                    "level": record.levelname,
                    "logger": record.name,
                    "message": message,
                }
            )
        return f"{self.formatTime(record)} {record.levelname} {record.name}: {message}"


def setup_logging(level: str = "INFO", log_format: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter(log_format == "json"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("httpx", "httpcore", "websockets", "uvicorn.error", "aiosqlite"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
