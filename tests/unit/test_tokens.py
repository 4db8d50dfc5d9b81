"""Tokens, pairing codes, redaction and password hashes."""

from __future__ import annotations

import base64
import hashlib
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from claudenest import tokens

PREFIXES = [tokens.PAT_PREFIX, tokens.MACHINE_PREFIX, tokens.INSTANCE_PREFIX]


def _entropy_bytes(urlsafe: str) -> bytes:
    return base64.urlsafe_b64decode(urlsafe + "=" * (-len(urlsafe) % 4))


def test_prefix_constants() -> None:
    assert PREFIXES == ["cn_", "mn_", "ci_"]


@pytest.mark.parametrize("prefix", PREFIXES)
def test_new_token_has_prefix_and_256_bits(prefix: str) -> None:
    token = tokens.new_token(prefix)
    assert token.startswith(prefix)
    body = token[len(prefix) :]
    assert len(body) == 43  # 32 bytes, base64url without padding
    assert re.fullmatch(r"[A-Za-z0-9_-]+", body)
    assert len(_entropy_bytes(body)) == 32


def test_tokens_and_secrets_are_unique() -> None:
    made = {tokens.new_token("cn_") for _ in range(200)} | {tokens.new_secret() for _ in range(200)}
    assert len(made) == 400
    assert len(_entropy_bytes(tokens.new_secret())) == 32


def test_hash_token_is_stable_sha256_hex() -> None:
    token = tokens.new_token("mn_")
    digest = tokens.hash_token(token)
    assert digest == hashlib.sha256(token.encode()).hexdigest()
    assert re.fullmatch(r"[0-9a-f]{64}", digest)
    assert tokens.hash_token(token) == digest
    assert tokens.hash_token(token + "x") != digest


def test_hash_token_known_vector() -> None:
    assert tokens.hash_token("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_pairing_alphabet_has_no_look_alikes() -> None:
    assert not set("0O1IL2Z5S8BUV") & set(tokens.PAIRING_ALPHABET)
    assert len(set(tokens.PAIRING_ALPHABET)) == len(tokens.PAIRING_ALPHABET)


def test_new_pairing_code_format() -> None:
    pattern = re.compile(rf"[{tokens.PAIRING_ALPHABET}]{{3}}-[{tokens.PAIRING_ALPHABET}]{{3}}")
    codes = [tokens.new_pairing_code() for _ in range(300)]
    assert all(pattern.fullmatch(code) for code in codes)
    assert len(set(codes)) > 250  # 23**6 possibilities: repeats are rare
    assert tokens.normalize_pairing_code(codes[0]) == codes[0]


@pytest.mark.parametrize(
    "text",
    ["7kq-mnp", "7KQMNP", " 7kq mnp ", "7-K-Q-M-N-P", "7kQ\tmNp\n", "7KQ--MNP"],
)
def test_normalize_accepts_case_dashes_and_spaces(text: str) -> None:
    assert tokens.normalize_pairing_code(text) == "7KQ-MNP"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "7KQ-MN",
        "7KQ-MNPP",
        "7KQ-MN0",
        "7KQ-MNO",
        "7KQ-MN1",
        "7KQ-MNI",
        "7KQ-MNL",
        "7KQ-MN2",
        "7KQ-MNZ",
        "7KQ-MN5",
        "7KQ-MNS",
        "7KQ-MN8",
        "7KQ-MNB",
        "7KQ-MNU",
        "7KQ-MNV",
        "7KQ_MNP",
        "7KQ.MNP",
    ],
)
def test_normalize_rejects_non_codes(text: str) -> None:
    assert tokens.normalize_pairing_code(text) is None


@settings(database=None, max_examples=200)
@given(st.text(alphabet=tokens.PAIRING_ALPHABET + tokens.PAIRING_ALPHABET.lower(), min_size=6, max_size=6))
def test_normalize_round_trips_any_valid_code(raw: str) -> None:
    code = tokens.normalize_pairing_code(raw)
    assert code == f"{raw[:3].upper()}-{raw[3:].upper()}"
    assert tokens.normalize_pairing_code(code) == code


@pytest.mark.parametrize("prefix", PREFIXES)
def test_redact_masks_tokens(prefix: str) -> None:
    token = tokens.new_token(prefix)
    text = f"Authorization: Bearer {token} (retrying)"
    redacted = tokens.redact(text)
    assert token not in redacted
    assert token[len(prefix) :] not in redacted
    assert redacted == f"Authorization: Bearer {prefix}*** (retrying)"


def test_redact_masks_every_token_and_leaves_the_rest() -> None:
    a, b = tokens.new_token("cn_"), tokens.new_token("ci_")
    assert tokens.redact(f"{a},{b}") == "cn_***,ci_***"
    plain = "cn_short xx_abcdefghijklmnopqrstuvwxyz mn_ alone"
    assert tokens.redact(plain) == plain


def test_password_hash_round_trip() -> None:
    stored = tokens.hash_password("correct horse")
    scheme, salt, digest = stored.split("$")
    assert scheme == "scrypt"
    assert re.fullmatch(r"[0-9a-f]{32}", salt)
    assert re.fullmatch(r"[0-9a-f]{128}", digest)
    assert "correct horse" not in stored
    assert tokens.check_password("correct horse", stored)
    assert not tokens.check_password("correct horse ", stored)
    assert not tokens.check_password("", stored)


def test_password_hashes_are_salted() -> None:
    first, second = tokens.hash_password("pw"), tokens.hash_password("pw")
    assert first != second
    assert tokens.check_password("pw", first)
    assert tokens.check_password("pw", second)


@pytest.mark.parametrize("stored", ["", "plaintext", "bcrypt$00$00", "scrypt$00", "a$b$c$d"])
def test_check_password_rejects_malformed_hashes(stored: str) -> None:
    assert tokens.check_password("pw", stored) is False


def test_check_password_with_non_hex_salt_is_false() -> None:
    assert tokens.check_password("pw", "scrypt$zz$00") is False
