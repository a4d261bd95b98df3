"""One development key pair per test process, and Conekta's DIGEST on what tests publish: the
worker verifies every body again (worker.provenance), so a test that publishes straight to the
events exchange signs as Conekta would and records the header as the receiver does."""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path
from typing import Any

from core import request as request_info
from core import signature
from core.verifier import Verifier

EXPORT_KEY = "test-export-key-" + "0" * 32  # CONEKTA_EXPORT_KEY of the tests


@functools.cache
def key_pair() -> tuple[Path, Path]:
    """(private, public) PEM paths, made once per process."""
    return signature.generate_key_pair(Path(tempfile.mkdtemp(prefix="conekta-test-keys-")), "test")


@functools.cache
def _private_key() -> Any:
    return signature.load_private_key(key_pair()[0])


def digest(body: bytes) -> str:
    """The DIGEST header Conekta would send with `body` (signed with the test key)."""
    return signature.sign(body, _private_key())


def signed_request(body: bytes, remote: str = "127.0.0.1") -> dict[str, Any]:
    """The `request` the receiver records for a signed webhook (core.request's shape)."""
    return request_info.select(remote, [("Digest", digest(body))])


def verifier() -> Verifier:
    """A verifier with the test key (what replays and restores check against)."""
    return Verifier(signature.load_public_keys([key_pair()[1]]))


def signed_headers(body: bytes) -> dict[str, Any]:
    """AMQP headers of a message as the receiver publishes it (the request with its DIGEST)."""
    return {request_info.HEADER: request_info.encode(signed_request(body))}
