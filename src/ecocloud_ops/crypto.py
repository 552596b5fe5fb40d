"""Secrets at rest (Fernet with the instance data key) and key files kept outside the database."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .errors import ConfigError


def read_or_create_secret_file(path: Path, make: bytes | None = None) -> bytes:
    """Return the file's bytes, creating it (mode 0600) with ``make`` when missing."""
    if path.exists():
        return path.read_bytes().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    data = make if make is not None else secrets.token_urlsafe(48).encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    return data


class SecretBox:
    """Encrypts and decrypts short secrets (TOTP seeds, SNMP keys, SSH passwords)."""

    def __init__(self, key: bytes) -> None:
        try:
            self._fernet = Fernet(key)
        except (ValueError, TypeError) as exc:
            raise ConfigError("invalid setting 'data_key': not a Fernet key (32 url-safe base64 bytes)") from exc

    @classmethod
    def generate_key(cls) -> bytes:
        return Fernet.generate_key()

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken as exc:
            raise ConfigError("a stored secret cannot be decrypted with this instance's data key") from exc


class AuditSigner:
    """Ed25519 key pair that signs audit chain hashes. The private key lives in a file, not the DB."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._key = private_key
        self.public_key = private_key.public_key()

    @classmethod
    def from_file(cls, path: Path) -> AuditSigner:
        pem = read_or_create_secret_file(
            path,
            Ed25519PrivateKey.generate().private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            ),
        )
        key = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ConfigError(f"audit key {path} is not an Ed25519 private key")
        return cls(key)

    def sign(self, digest_hex: str) -> str:
        return self._key.sign(bytes.fromhex(digest_hex)).hex()

    def public_pem(self) -> str:
        return public_key_pem(self.public_key)


def public_key_pem(key: Ed25519PublicKey) -> str:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def load_public_key(pem: str) -> Ed25519PublicKey:
    key = serialization.load_pem_public_key(pem.encode())
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("not an Ed25519 public key")
    return key
