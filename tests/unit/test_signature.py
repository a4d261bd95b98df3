from __future__ import annotations

from pathlib import Path

import pytest

from core import signature
from core.errors import KeyFileError
from testkit.events import FIXTURES

VECTOR = FIXTURES / "signature"


@pytest.fixture(scope="module")
def openssl_key() -> tuple:  # type: ignore[type-arg]
    return signature.load_public_keys([VECTOR / "public.pem"])


def test_openssl_vector_verifies(openssl_key: tuple) -> None:  # type: ignore[type-arg]
    body = (VECTOR / "body.json").read_bytes()
    digest = (VECTOR / "digest.txt").read_text()
    assert signature.verify(body, digest, openssl_key)


def test_any_changed_byte_fails(openssl_key: tuple) -> None:  # type: ignore[type-arg]
    body = (VECTOR / "body.json").read_bytes()
    digest = (VECTOR / "digest.txt").read_text()
    for index in range(len(body)):
        changed = bytearray(body)
        changed[index] ^= 0x01
        assert not signature.verify(bytes(changed), digest, openssl_key), index


def test_added_or_removed_bytes_fail(openssl_key: tuple) -> None:  # type: ignore[type-arg]
    body = (VECTOR / "body.json").read_bytes()
    digest = (VECTOR / "digest.txt").read_text()
    assert not signature.verify(body + b"\n", digest, openssl_key)
    assert not signature.verify(body[:-1], digest, openssl_key)


@pytest.mark.parametrize("header", [None, "", "not base64!!", "AAAA", "  "])
def test_missing_or_garbage_header_fails(openssl_key: tuple, header: str | None) -> None:  # type: ignore[type-arg]
    assert not signature.verify((VECTOR / "body.json").read_bytes(), header, openssl_key)


def test_sign_then_verify_and_rotation(tmp_path: Path) -> None:
    old_private, old_public = signature.generate_key_pair(tmp_path, "old")
    new_private, new_public = signature.generate_key_pair(tmp_path, "new")
    keys = signature.load_public_keys([old_public, new_public])
    body = b'{"id": "x"}'
    for private in (old_private, new_private):
        assert signature.verify(
            body, signature.sign(body, signature.load_private_key(private)), keys
        )
    only_old = signature.load_public_keys([old_public])
    new_digest = signature.sign(body, signature.load_private_key(new_private))
    assert not signature.verify(body, new_digest, only_old)


def test_bad_key_files_are_reported(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a key")
    with pytest.raises(KeyFileError, match="garbage.pem"):
        signature.load_public_keys([garbage])
    with pytest.raises(KeyFileError, match="missing.pem"):
        signature.load_public_keys([tmp_path / "missing.pem"])
