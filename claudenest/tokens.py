"""Credentials: 256-bit random tokens with a type prefix, stored only as SHA-256.

| prefix | what |
|--------|------|
| cn_    | personal access token (CLI, scripts) |
| mn_    | machine token (one agent) |
| ci_    | instance token (one Claude instance's MCP server) |
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets

PAT_PREFIX = "cn_"
MACHINE_PREFIX = "mn_"
INSTANCE_PREFIX = "ci_"

# Pairing codes: 6 characters, no look-alikes (no 0/O, 1/I/L, 2/Z, 5/S, 8/B, U/V), shown as XXX-XXX.
PAIRING_ALPHABET = "34679ACDEFGHJKMNPQRTWXY"
_PAIRING_RE = re.compile(rf"^[{PAIRING_ALPHABET}]{{6}}$")
_TOKEN_RE = re.compile(r"(cn|mn|ci)_[A-Za-z0-9_-]{20,}")


def new_token(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def new_pairing_code() -> str:
    raw = "".join(secrets.choice(PAIRING_ALPHABET) for _ in range(6))
    return f"{raw[:3]}-{raw[3:]}"


def normalize_pairing_code(text: str) -> str | None:
    """Case-insensitive, ignoring dashes and spaces; None when it cannot be a code."""
    raw = re.sub(r"[\s-]", "", text).upper()
    if not _PAIRING_RE.match(raw):
        return None
    return f"{raw[:3]}-{raw[3:]}"


def redact(text: str) -> str:
    """Mask anything shaped like one of our tokens (for logs and error messages)."""
    return _TOKEN_RE.sub(lambda m: m.group(1) + "_***", text)


def hash_password(password: str) -> str:
    salt = os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=2**14, r=8, p=1)
    return f"scrypt${salt.hex()}${digest.hex()}"


def check_password(password: str, stored: str) -> bool:
    try:
        scheme, salt_hex, digest_hex = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    try:
        salt = bytes.fromhex(salt_hex)
    except ValueError:
        return False
    digest = hashlib.scrypt(password.encode(), salt=salt, n=2**14, r=8, p=1)
    return hmac.compare_digest(digest.hex(), digest_hex)
