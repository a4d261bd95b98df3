"""Conekta's DIGEST checked again after the receiver (worker.provenance says why): the
receiving keys (CONEKTA_WEBHOOK_KEYS) and keys retired from receiving that stay good for what
they signed (CONEKTA_WEBHOOK_VERIFY_ONLY_KEYS). One RSA-2048 verification costs ~30-60 µs.

The DIGEST is the one the receiver recorded with the body (the `request` header and archive
column, core.request's shape)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa

from core import signature
from core.errors import KeyFileError
from core.settings import Settings

NO_DIGEST = "no DIGEST recorded with the body: not from a receiver that checked it"
BAD_DIGEST = "DIGEST does not verify with any configured key"


class Verifier:
    """Conekta's public keys, receiving and verify-only; checks bodies against their DIGEST."""

    def __init__(self, keys: Sequence[rsa.RSAPublicKey]) -> None:
        self._keys = tuple(keys)

    @classmethod
    def from_settings(cls, settings: Settings) -> Verifier:
        """KeyFileError when no key is configured: the worker would apply nothing."""
        keys = signature.load_public_keys((*settings.webhook_keys, *settings.verify_only_keys))
        if not keys:
            raise KeyFileError(
                "no webhook key configured: the worker verifies every body before applying it; "
                "set CONEKTA_WEBHOOK_KEYS (and CONEKTA_WEBHOOK_VERIFY_ONLY_KEYS for retired keys)"
            )
        return cls(keys)

    def reason(self, body: bytes, request: Mapping[str, Any] | None) -> str | None:
        """None when the body's recorded DIGEST verifies; else why not."""
        digest = digest_of(request)
        if digest is None:
            return NO_DIGEST
        if not signature.verify(body, digest, self._keys):
            return BAD_DIGEST
        return None


def digest_of(request: Mapping[str, Any] | None) -> str | None:
    """The DIGEST header the receiver recorded with a body (core.request's shape)."""
    headers = request.get("headers") if request else None
    value = headers.get("digest") if isinstance(headers, Mapping) else None
    return value if isinstance(value, str) and value else None
