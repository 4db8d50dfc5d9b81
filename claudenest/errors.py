"""One error tree for the whole package.

Core code raises these; only the CLI turns them into messages and exit codes (see docs/cli.md).
"""

from __future__ import annotations


class ClaudenestError(Exception):
    """Base of every error ClaudeNest raises on purpose."""

    exit_code = 1


class ConfigError(ClaudenestError):
    """The configuration file or an option is invalid."""

    exit_code = 2


class ProtocolError(ClaudenestError):
    """A wire message or frame is malformed, oversized or of an unknown kind."""


class StoreError(ClaudenestError):
    """The database cannot be opened or used."""

    exit_code = 3


class DatabaseLocked(StoreError):
    """Another relay process already owns this database file."""


class AuthError(ClaudenestError):
    """A credential is missing, wrong, expired or revoked."""

    exit_code = 4


class NotFound(ClaudenestError):
    """The thing asked for does not exist, or is not yours."""

    exit_code = 5


class Conflict(ClaudenestError):
    """The request conflicts with the current state (machine offline, session already ended, ...)."""

    exit_code = 6


class RelayUnreachable(ClaudenestError):
    """The relay cannot be reached over the network."""

    exit_code = 7


class PairingFailed(ClaudenestError):
    """Pairing ended without a machine token (expired, denied, too many attempts)."""

    exit_code = 8


class SpawnError(ClaudenestError):
    """A session's command could not be started."""


class Forbidden(AuthError):
    """The credential is valid but of the wrong kind or scope for this request."""


class RateLimited(ClaudenestError):
    """Too many attempts; try again later."""

    exit_code = 9

    def __init__(self, message: str, retry_after: int = 60) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Gone(Conflict):
    """The thing existed but can no longer be used (an expired or spent pairing code)."""


class InvalidRequest(ClaudenestError):
    """The relay rejected the request's content (HTTP 422)."""

    exit_code = 2


class InvalidField(InvalidRequest):
    """A request field names something that does not exist or cannot be used (HTTP 422 naming the field)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class LockConflict(Conflict):
    """A file lock is held by another instance; carries who holds it and until when."""

    def __init__(self, message: str, *, holder: dict[str, object], expires_at: str, lock: dict[str, object]) -> None:
        super().__init__(message)
        self.holder = holder
        self.expires_at = expires_at
        self.lock = lock
