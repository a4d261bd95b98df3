"""Provenance without services (issue 24): the worker's own DIGEST check, the archive row of a
body that fails it, the consumer base archiving it instead of applying it, what a replay
believes, and what a restore accepts row by row."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import orjson
import pytest
from aio_pika.abc import AbstractIncomingMessage
from cryptography.hazmat.primitives.asymmetric import rsa

from core import request as request_info
from core import signature
from core.errors import ConfigError, RetentionRefused
from core.settings import load_settings
from core.verifier import BAD_DIGEST, NO_DIGEST, Verifier
from domain import provenance
from domain.outcome import Outcome
from ops import retention
from testkit.events import order_event
from tests.unit.test_consumer import FakeFailures, Recorder, messages
from worker.provenance import unverified_row, vouch

CONEKTA = rsa.generate_private_key(public_exponent=65537, key_size=2048)
RETIRED = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER = rsa.generate_private_key(public_exponent=65537, key_size=2048)
VERIFIER = Verifier([CONEKTA.public_key(), RETIRED.public_key()])
KEY = "k" * 32


def signed(body: bytes, key: rsa.RSAPrivateKey = CONEKTA) -> dict[str, Any]:
    return request_info.select("10.0.0.1", [("Digest", signature.sign(body, key))])


def test_a_body_verifies_only_with_its_own_digest_by_a_configured_key() -> None:
    body = order_event("order.paid", "ord_v")
    assert VERIFIER.reason(body, signed(body)) is None
    assert VERIFIER.reason(body, signed(body, RETIRED)) is None  # verify-only keys count
    assert VERIFIER.reason(body, signed(body, OTHER)) == BAD_DIGEST
    assert VERIFIER.reason(body + b" ", signed(body)) == BAD_DIGEST
    assert VERIFIER.reason(body, None) == NO_DIGEST
    assert VERIFIER.reason(body, {"remote": None, "headers": {"source": "reconcile"}}) == NO_DIGEST


def test_a_replay_believes_our_own_records_and_verifies_everything_else() -> None:
    body = order_event("order.paid", "ord_r")
    assert vouch(VERIFIER, body, None, provenance.API) == provenance.API
    assert vouch(VERIFIER, body, None, "attested:os:ana") == "attested:os:ana"
    assert vouch(VERIFIER, body, signed(body), None) == provenance.SIGNED
    assert vouch(VERIFIER, body, None, provenance.SIGNED) is None  # the column alone: no
    assert vouch(VERIFIER, body + b"x", signed(body), provenance.SIGNED) is None


def test_an_unverified_row_keeps_the_body_and_leaves_the_event_id_free() -> None:
    body = order_event("order.paid", "ord_u")
    row = unverified_row(body, None, NO_DIGEST)
    assert row.outcome is Outcome.UNVERIFIED
    assert row.event_id == "unverified:" + hashlib.sha256(body).hexdigest()
    assert row.original_id == orjson.loads(body)["id"]
    assert (row.body, row.reason, row.provenance) == (body, NO_DIGEST, None)
    assert unverified_row(b"\x00junk", None, NO_DIGEST).type == "unknown"  # never raises


def test_the_consumer_archives_an_unsigned_message_instead_of_decoding_it() -> None:
    consumer = Recorder(FakeFailures())
    consumer._verifier = VERIFIER
    batch = messages(b"a", b"b")
    batch[0].headers = {request_info.HEADER: request_info.encode(signed(b"a"))}
    asyncio.run(consumer.handle(cast(list[AbstractIncomingMessage], batch)))
    assert consumer.batches == [["a"]]
    [row] = consumer.invalid
    assert (row.outcome, row.reason) == (Outcome.UNVERIFIED, NO_DIGEST)
    assert batch[1].settled == ["ack"]


def test_provenance_values() -> None:
    assert provenance.attested("os:ana") == "attested:os:ana"
    assert provenance.is_attested("attested:os:ana") and not provenance.is_attested("api")
    with pytest.raises(ValueError, match="names its user"):
        provenance.attested("")


def test_the_export_key_must_not_be_short() -> None:
    with pytest.raises(ConfigError, match="CONEKTA_EXPORT_KEY"):
        load_settings({"CONEKTA_EXPORT_KEY": "short"})
    assert "x" * 40 not in repr(load_settings({"CONEKTA_EXPORT_KEY": "x" * 40}))


def write_export(folder: Path, rows: list[dict[str, Any]], table: str = "events") -> Path:
    path = folder / f"{table}-2025-01.jsonl.gz"
    path.write_bytes(gzip.compress(b"".join(orjson.dumps(r) + b"\n" for r in rows)))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    path.with_name(path.name + ".sha256").write_text(f"{digest}  {path.name}\n")
    return path


def event_row(body: bytes, **fields: Any) -> dict[str, Any]:
    return {
        "event_id": orjson.loads(body)["id"],
        "applied_at": "2025-01-10T12:00:00+00:00",
        "outcome": "applied",
        "body": "\\x" + body.hex(),
        "request": signed(body),
        "provenance": "signed",
        **fields,
    }


def test_only_a_signature_made_with_the_key_lets_a_file_in(tmp_path: Path) -> None:
    body = order_event("order.paid", "ord_e")
    path = write_export(tmp_path, [event_row(body)])
    with pytest.raises(RetentionRefused, match="no signature"):
        retention.check_signature(path, KEY)
    retention.sign_export(path, KEY)
    retention.check_signature(path, KEY)
    with pytest.raises(RetentionRefused, match="does not match"):
        retention.check_signature(path, "another key, just as long as it")
    renamed = path.with_name("events-2025-02.jsonl.gz")  # the same bytes, claimed another month
    renamed.write_bytes(path.read_bytes())
    path.with_name(path.name + ".sig").rename(renamed.with_name(renamed.name + ".sig"))
    with pytest.raises(RetentionRefused, match="does not match"):
        retention.check_signature(renamed, KEY)


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({}, None),
        ({"applied_at": "2025-02-01T00:00:00+00:00"}, "outside 2025-01"),
        ({"request": None}, "no DIGEST"),  # claims `signed` without one
        ({"request": None, "provenance": None}, None),  # older than provenance: a replay checks
        ({"request": None, "provenance": "api"}, None),  # our own record
        ({"request": signed(b"other")}, "DIGEST does not verify"),
        ({"request": signed(b"other"), "provenance": None}, "DIGEST does not verify"),
        ({"outcome": "unverified", "request": None}, None),  # moved nothing
    ],
)
def test_what_a_restore_accepts_of_an_archived_event(
    fields: dict[str, Any], problem: str | None
) -> None:
    body = order_event("order.paid", "ord_p")
    line = orjson.dumps(event_row(body, **fields))
    start, end = datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 2, 1, tzinfo=UTC)
    found = retention.row_problem("events", line, start, end, VERIFIER)
    assert (found is None) if problem is None else (found is not None and problem in found)


def test_a_restore_refuses_outbox_messages_not_sent(tmp_path: Path) -> None:
    sent = {"id": 1, "created_at": "2025-01-03T00:00:00+00:00", "sent_at": "2025-01-03T00:00:01"}
    path = write_export(tmp_path, [sent, {**sent, "id": 2, "sent_at": None}], "outbox")
    with pytest.raises(RetentionRefused, match="line 2: outbox message not sent"):
        retention.check_rows(path, "outbox", datetime(2025, 1, 1).date(), None)
