"""The secrets box: Fernet/MultiFernet sealing, key parsing, the development key, masking."""

from __future__ import annotations

import logging
import stat
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from gatehouse_core.crypto import (
    SecretBox,
    fingerprint,
    generate_key,
    key_prefix,
    mask,
    mask_key,
)
from gatehouse_core.errors import SecretsError

API_KEY = "sk-or-v1-0123456789abcdef0123456789abcdefa1b2"


def test_seal_then_open_returns_the_key_and_ciphertext_hides_it() -> None:
    box = SecretBox([generate_key()])
    sealed = box.seal(API_KEY)
    assert API_KEY not in sealed.ciphertext
    assert box.open(sealed.ciphertext) == API_KEY


def test_sealed_carries_only_displayable_parts() -> None:
    key = generate_key()
    sealed = SecretBox([key]).seal(API_KEY)
    assert (sealed.key_prefix, sealed.last4) == ("sk-or-", "a1b2")
    assert sealed.key_fingerprint == fingerprint(key)
    assert key not in sealed.key_fingerprint


def test_first_key_encrypts_and_every_key_decrypts() -> None:
    old, new = generate_key(), generate_key()
    under_old = SecretBox([old]).seal(API_KEY)
    both = SecretBox([new, old])
    assert both.open(under_old.ciphertext) == API_KEY
    under_both = both.seal(API_KEY)
    assert under_both.key_fingerprint == fingerprint(new)
    assert SecretBox([new]).open(under_both.ciphertext) == API_KEY
    with pytest.raises(SecretsError):
        SecretBox([old]).open(under_both.ciphertext)


def test_open_with_the_wrong_key_raises_secrets_error_without_the_ciphertext() -> None:
    sealed = SecretBox([generate_key()]).seal(API_KEY)
    with pytest.raises(SecretsError, match="cannot be decrypted") as caught:
        SecretBox([generate_key()]).open(sealed.ciphertext)
    assert sealed.ciphertext not in str(caught.value)


def test_rotate_reencrypts_under_the_first_key() -> None:
    old, new = generate_key(), generate_key()
    sealed = SecretBox([old]).seal(API_KEY)
    rotated = SecretBox([new, old]).rotate(sealed.ciphertext)
    assert SecretBox([new]).open(rotated) == API_KEY


def test_can_decrypt_knows_every_configured_key() -> None:
    old, new, other = generate_key(), generate_key(), generate_key()
    box = SecretBox([new, old])
    assert box.primary_fingerprint == fingerprint(new)
    assert box.can_decrypt(fingerprint(old))
    assert not box.can_decrypt(fingerprint(other))


@pytest.mark.parametrize("position", [1, 2, 3])
def test_invalid_key_in_env_names_its_position(position: int) -> None:
    keys = [generate_key() for _ in range(3)]
    keys[position - 1] = "not-a-fernet-key"
    env = {"GATEHOUSE_SECRETS_KEY": ",".join(keys)}
    with pytest.raises(SecretsError, match=f"entry {position} is not a valid Fernet key") as caught:
        SecretBox.from_env(env)
    assert "not-a-fernet-key" not in str(caught.value)  # a near-miss key is still a secret
    assert "generate-key" in str(caught.value)


def test_blank_entry_does_not_shift_the_reported_position() -> None:
    env = {"GATEHOUSE_SECRETS_KEY": f"{generate_key()},,bad"}
    with pytest.raises(SecretsError, match="entry 3 "):
        SecretBox.from_env(env)


def test_keys_in_env_may_have_spaces_around_commas() -> None:
    old, new = generate_key(), generate_key()
    sealed = SecretBox([old]).seal(API_KEY)
    box = SecretBox.from_env({"GATEHOUSE_SECRETS_KEY": f" {new} , {old} "})
    assert box.open(sealed.ciphertext) == API_KEY
    assert box.primary_fingerprint == fingerprint(new)
    assert not box.is_dev_key


def test_no_keys_at_all_is_refused() -> None:
    with pytest.raises(SecretsError, match="GATEHOUSE_SECRETS_KEY"):
        SecretBox([])


def test_dev_key_is_generated_once_with_mode_0600_and_reused(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    home = tmp_path / "state"
    env = {"GATEHOUSE_HOME": str(home)}
    with caplog.at_level(logging.WARNING, logger="gatehouse.crypto"):
        first = SecretBox.from_env(env)
    key_file = home / "secrets.key"
    assert first.is_dev_key and first.dev_key_path == key_file
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    Fernet(key_file.read_text().strip().encode())  # a real Fernet key
    sealed = first.seal(API_KEY)

    second = SecretBox.from_env(env)
    assert second.primary_fingerprint == first.primary_fingerprint
    assert second.open(sealed.ciphertext) == API_KEY
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings and "Production must set GATEHOUSE_SECRETS_KEY" in warnings[0]
    assert str(key_file) in warnings[0]


def test_dev_key_warning_is_logged_every_time_the_dev_key_is_used(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    env = {"GATEHOUSE_HOME": str(tmp_path)}
    with caplog.at_level(logging.WARNING, logger="gatehouse.crypto"):
        SecretBox.from_env(env)
        SecretBox.from_env(env)
    assert sum("GATEHOUSE_SECRETS_KEY is not set" in r.getMessage() for r in caplog.records) == 2


def test_configured_key_logs_no_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="gatehouse.crypto"):
        SecretBox.from_env({"GATEHOUSE_SECRETS_KEY": generate_key()})
    assert not caplog.records


@pytest.mark.parametrize(
    ("api_key", "masked"),
    [
        ("sk-or-v1-0123456789abcdefa1b2", "sk-or-…a1b2"),
        ("sk-proj-0123456789wxyz", "sk-…wxyz"),
        ("plainkey12345678", "…5678"),
    ],
)
def test_mask_key_shows_only_prefix_and_last_four(api_key: str, masked: str) -> None:
    assert mask_key(api_key) == masked


def test_mask_and_prefix_helpers_agree() -> None:
    assert key_prefix(API_KEY) == "sk-or-"
    assert mask("sk-or-", "a1b2") == mask_key(API_KEY)


def test_fingerprint_is_stable_short_and_not_the_key() -> None:
    key = generate_key()
    assert fingerprint(key) == fingerprint(key.encode())
    assert len(fingerprint(key)) == 16
    assert fingerprint(key) != fingerprint(generate_key())
