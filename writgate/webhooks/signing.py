"""Signing secrets: generation, encryption at rest, and Standard Webhooks signatures.

A secret is ``whsec_`` + base64 of 32 random bytes (the Standard Webhooks format). The HMAC
needs the raw bytes, so secrets are stored encrypted (AES-256-GCM, the endpoint id as associated
data) with a key from ``WRITGATE_SECRET_KEY`` (base64 of 32 bytes), or else from
``$WRITGATE_HOME/webhooks.key``, generated with mode 0600 on first use. Several processes that
share a PostgreSQL database must share the key: set ``WRITGATE_SECRET_KEY`` for all of them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from writgate.errors import ConfigError

__all__ = [
    "SECRET_PREFIX",
    "SecretBox",
    "generate_secret",
    "secret_bytes",
    "sign",
    "signature_headers",
]

SECRET_PREFIX = "whsec_"
_KEY_ENV = "WRITGATE_SECRET_KEY"
_KEY_FILE = "webhooks.key"
_VERSION = b"\x01"


def generate_secret() -> str:
    """A new signing secret: ``whsec_`` + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def secret_bytes(secret: str) -> bytes:
    """The raw HMAC key of a ``whsec_…`` secret."""
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def sign(key: bytes, message_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<base64 HMAC-SHA256 of "id.timestamp.body">`` with the raw ``key``."""
    digest = hmac.new(key, b"%s.%d.%s" % (message_id.encode(), timestamp, body), hashlib.sha256)
    return "v1," + base64.b64encode(digest.digest()).decode()


def signature_headers(
    keys: Iterable[bytes], message_id: str, timestamp: int, body: bytes
) -> Mapping[str, str]:
    """The Standard Webhooks headers; one signature per key (old and new during a rotation)."""
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(sign(key, message_id, timestamp, body) for key in keys),
    }


class SecretBox:
    """Encrypts and decrypts signing secrets with one AES-256-GCM key (loaded on first use)."""

    def __init__(self, key: bytes | Callable[[], bytes]):
        self._key = key
        self._aead: AESGCM | None = None

    @classmethod
    def from_env(cls, home: Path, environ: Mapping[str, str] | None = None) -> SecretBox:
        """The key from ``WRITGATE_SECRET_KEY``, else from (a new) ``home/webhooks.key``."""
        env = dict(os.environ if environ is None else environ)

        def load() -> bytes:
            value = env.get(_KEY_ENV, "").strip()
            if value:
                return _decode_key(value, _KEY_ENV)
            return _decode_key(_key_file(home / _KEY_FILE), str(home / _KEY_FILE))

        return cls(load)

    def _cipher(self) -> AESGCM:
        if self._aead is None:
            key = self._key() if callable(self._key) else self._key
            if len(key) != 32:
                raise ConfigError("the webhook secret key must be 32 bytes")
            self._aead = AESGCM(key)
        return self._aead

    def encrypt(self, secret: str, *, endpoint_id: str) -> bytes:
        """The ciphertext of ``secret``, bound to ``endpoint_id``."""
        nonce = os.urandom(12)
        sealed = self._cipher().encrypt(nonce, secret.encode(), endpoint_id.encode())
        return _VERSION + nonce + sealed

    def decrypt(self, blob: bytes, *, endpoint_id: str) -> str:
        """The secret in ``blob``; a ``ConfigError`` when another key encrypted it."""
        if blob[:1] != _VERSION:
            raise ConfigError("the webhook secret has an unknown format")
        try:
            plain = self._cipher().decrypt(blob[1:13], blob[13:], endpoint_id.encode())
        except InvalidTag:
            raise ConfigError(
                f"cannot decrypt the signing secret of {endpoint_id}: it was encrypted with "
                f"another key (set the same {_KEY_ENV} on every process)"
            ) from None
        return plain.decode()


def _decode_key(value: str, where: str) -> bytes:
    try:
        key = base64.b64decode(value + "=" * (-len(value) % 4), altchars=b"-_", validate=False)
    except (binascii.Error, ValueError):
        raise ConfigError(f"{where}: the webhook key is not base64 of 32 bytes") from None
    if len(key) != 32:
        raise ConfigError(f"{where}: the webhook key is not base64 of 32 bytes")
    return key


def _key_file(path: Path) -> str:
    """The key in ``path``, created atomically (mode 0600) when it does not exist yet."""
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(base64.b64encode(os.urandom(32)).decode() + "\n")
    try:
        os.link(temporary, path)  # fails if another process created the key first: use theirs
    except FileExistsError:
        pass
    finally:
        temporary.unlink()
    return path.read_text().strip()
