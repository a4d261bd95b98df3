"""Conekta's `DIGEST` header: base64 RSASSA-PKCS1-v1_5 / SHA-256 over the exact raw body.

Verification tries every configured public key, so a key rotation never drops events.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from core.errors import KeyFileError


def load_public_keys(paths: Sequence[Path]) -> tuple[rsa.RSAPublicKey, ...]:
    keys = []
    for path in paths:
        try:
            key = serialization.load_pem_public_key(path.read_bytes())
        except (OSError, ValueError) as exc:
            raise KeyFileError(f"cannot load public key {path}: {exc}") from exc
        if not isinstance(key, rsa.RSAPublicKey):
            raise KeyFileError(f"{path} is not an RSA public key")
        keys.append(key)
    return tuple(keys)


def load_private_key(path: Path) -> rsa.RSAPrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise KeyFileError(f"cannot load private key {path}: {exc}") from exc
    if not isinstance(key, rsa.RSAPrivateKey):
        raise KeyFileError(f"{path} is not an RSA private key")
    return key


def verify(body: bytes, digest_header: str | None, keys: Sequence[rsa.RSAPublicKey]) -> bool:
    """True when the header is a valid signature of `body` by any of `keys`."""
    if not digest_header:
        return False
    try:
        signature = base64.b64decode(digest_header.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    for key in keys:
        try:
            key.verify(signature, body, padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            continue
        return True
    return False


def sign(body: bytes, key: rsa.RSAPrivateKey) -> str:
    """The `DIGEST` header value Conekta would send for `body`."""
    return base64.b64encode(key.sign(body, padding.PKCS1v15(), hashes.SHA256())).decode("ascii")


def generate_key_pair(directory: Path, name: str = "conekta-dev") -> tuple[Path, Path]:
    """Write a development RSA-2048 pair; returns (private, public) paths."""
    directory.mkdir(parents=True, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_path = directory / f"{name}.private.pem"
    public_path = directory / f"{name}.public.pem"
    private_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    private_path.chmod(0o600)
    public_path.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private_path, public_path
