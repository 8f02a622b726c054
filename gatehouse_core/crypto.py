"""The secrets box: API keys encrypted at rest with Fernet/MultiFernet.

GATEHOUSE_SECRETS_KEY holds one or more Fernet keys separated by commas; the first
encrypts, all decrypt, so a key rotation is "put the new key first, keep the old one
after it, run `gatehouse secrets rotate`, then drop the old one".
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from . import settings
from .errors import SecretsError

log = logging.getLogger("gatehouse.crypto")

DEV_KEY_WARNING = (
    "GATEHOUSE_SECRETS_KEY is not set: API keys are encrypted with a generated development "
    "key in {path}. Production must set GATEHOUSE_SECRETS_KEY (see `gatehouse secrets "
    "generate-key`)."
)
_KNOWN_PREFIXES = ("sk-or-", "sk-")


def fingerprint(key: bytes | str) -> str:
    """A short, non-reversible name for a Fernet key, stored beside each ciphertext."""
    raw = key.encode() if isinstance(key, str) else key
    return hashlib.sha256(raw).hexdigest()[:16]


def key_prefix(api_key: str) -> str:
    """The public prefix of an API key (e.g. `sk-or-`), safe to show."""
    return next((p for p in _KNOWN_PREFIXES if api_key.startswith(p)), "")


def mask(prefix: str, last4: str) -> str:
    """The display form of a key: `sk-or-…a1b2`."""
    return f"{prefix}…{last4}"


def mask_key(api_key: str) -> str:
    return mask(key_prefix(api_key), api_key[-4:])


def generate_key() -> str:
    return Fernet.generate_key().decode()


@dataclass(frozen=True)
class Sealed:
    """An encrypted API key and what may be shown about it."""

    ciphertext: str
    key_fingerprint: str
    key_prefix: str
    last4: str


class SecretBox:
    """Encrypts with the first key, decrypts with any; knows whether it is a dev key."""

    def __init__(self, keys: list[str], *, dev_key_path: Path | None = None):
        if not keys:
            raise SecretsError("No secrets key given; set GATEHOUSE_SECRETS_KEY")
        self._fernet = MultiFernet([_fernet(k, n) for n, k in enumerate(keys, start=1)])
        self._fingerprints = [fingerprint(k.strip()) for k in keys]
        self.dev_key_path = dev_key_path

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> SecretBox:
        """The box for GATEHOUSE_SECRETS_KEY, or the generated development key (with a warning)."""
        raw = settings.get("GATEHOUSE_SECRETS_KEY", env)
        if raw:
            entries = [k.strip() for k in raw.split(",")]
            # Check with the positions the operator sees, before blank entries are dropped.
            for position, key in enumerate(entries, start=1):
                if key:
                    _fernet(key, position)
            return cls([k for k in entries if k])
        path = settings.home_dir(env) / "secrets.key"
        box = cls([_load_or_create_dev_key(path)], dev_key_path=path)
        log.warning(DEV_KEY_WARNING.format(path=path))
        return box

    @property
    def is_dev_key(self) -> bool:
        return self.dev_key_path is not None

    @property
    def primary_fingerprint(self) -> str:
        return self._fingerprints[0]

    def can_decrypt(self, key_fingerprint: str) -> bool:
        return key_fingerprint in self._fingerprints

    def seal(self, api_key: str) -> Sealed:
        return Sealed(
            ciphertext=self._fernet.encrypt(api_key.encode()).decode(),
            key_fingerprint=self.primary_fingerprint,
            key_prefix=key_prefix(api_key),
            last4=api_key[-4:],
        )

    def open(self, ciphertext: str) -> str:
        try:
            return self._fernet.decrypt(ciphertext.encode()).decode()
        except InvalidToken:
            raise SecretsError(
                "A stored API key cannot be decrypted with GATEHOUSE_SECRETS_KEY"
            ) from None

    def rotate(self, ciphertext: str) -> str:
        """Re-encrypt under the first key (decrypting with any)."""
        try:
            return self._fernet.rotate(ciphertext.encode()).decode()
        except InvalidToken:
            raise SecretsError(
                "A stored API key cannot be decrypted with GATEHOUSE_SECRETS_KEY"
            ) from None


def _fernet(key: str, position: int) -> Fernet:
    try:
        return Fernet(key.encode())
    except (ValueError, TypeError):
        raise SecretsError(
            f"GATEHOUSE_SECRETS_KEY entry {position} is not a valid Fernet key "
            "(32 url-safe base64-encoded bytes). Generate one with "
            "`gatehouse secrets generate-key`."
        ) from None


def _load_or_create_dev_key(path: Path) -> str:
    if path.exists():
        key = path.read_text().strip()
        if key:
            return key
    path.parent.mkdir(parents=True, exist_ok=True)
    key = generate_key()
    # O_EXCL: two processes starting together must not write two different keys.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as fh:
        fh.write(key + "\n")
    return key
