"""Retention on a real database: partitions by month, a verified export then the drop, dedupe
after the body is gone, and the move of an existing unpartitioned archive into partitions."""

from __future__ import annotations

import gzip
import json
from datetime import date
from pathlib import Path
from typing import Any, TypeAlias

import asyncpg
import orjson
import pytest

from core import signature
from core.errors import DataRejected, RetentionRefused
from core.settings import Settings
from core.verifier import Verifier
from domain.order_event import parse_order_event
from domain.outcome import Outcome
from domain.plan import Incoming
from ops import retention
from store import Store, migrations
from testkit import signing
from testkit.events import order_event
from testkit.isolation import clone_database, database_url_for, drop_database
from testkit.processes import cli
from testkit.services import balances, count
from testkit.signing import EXPORT_KEY

Db: TypeAlias = "asyncpg.Connection[Any]"
JANUARY = date(2025, 1, 1)


def verifier() -> Verifier:
    return Verifier(signature.load_public_keys([signing.key_pair()[1]]))


def incoming(body: bytes) -> Incoming:
    return Incoming(parse_order_event(body), body, None)


async def age(db: Db, month: date, table: str = "events", key: str = "applied_at") -> None:
    """Move every row of `table` into `month` (its partition made first), as if archived then."""
    await db.execute(f"SELECT create_month_partitions('{table}', '{key}', $1, $1)", month)
    await db.execute(f"UPDATE {table} SET {key} = $1::date + interval '14 days'", month)
    if table == "events":
        await db.execute("UPDATE event_ids SET archived_at = $1::date + interval '14 days'", month)


async def test_pruned_month_is_exported_verified_dropped_and_its_ids_stay_duplicates(
    store: Store, db: Db, tmp_path: Path
) -> None:
    paid = order_event("order.paid", "ord_old", amount=3000, fee=90, customer_id="cus_old")
    signed = signing.signed_request(paid)["headers"]
    request = {"remote": "203.0.113.7", "headers": {"user-agent": 'ñ "Conekta" \\ \t', **signed}}
    with_request = Incoming(parse_order_event(paid), paid, None, request)
    assert (await store.apply.batch([with_request])).outcomes == [Outcome.APPLIED]
    await db.execute("UPDATE outbox SET sent_at = now()")
    await age(db, JANUARY)
    await age(db, JANUARY, "outbox", "created_at")
    before = await balances(db)
    rows = await db.fetch("SELECT row_to_json(e)::text AS line FROM events e")
    archived = await db.fetch("SELECT * FROM events")

    results = await retention.prune(store, date(2025, 2, 1), tmp_path, export_key=EXPORT_KEY)

    assert [(r.table, r.month, r.rows, r.pruned) for r in results] == [
        ("events", JANUARY, 1, True),
        ("outbox", JANUARY, 1, True),
    ]
    export = tmp_path / "events-2025-01.jsonl.gz"
    assert results[0].export == export
    assert (
        (tmp_path / "events-2025-01.jsonl.gz.sha256")
        .read_text()
        .endswith("  events-2025-01.jsonl.gz\n")
    )
    lines = gzip.decompress(export.read_bytes()).decode().splitlines()
    assert lines == [r["line"] for r in rows]
    exported = json.loads(lines[0])
    assert bytes.fromhex(exported["body"].removeprefix("\\x")) == paid  # the exact bytes
    assert exported["request"] == request  # the webhook's request leaves and comes back too
    assert await db.fetchval("SELECT to_regclass('events_2025_01')") is None
    assert await count(db, "SELECT count(*) FROM events") == 0
    assert await count(db, "SELECT count(*) FROM event_ids") == 1

    # Conekta resends the event (same id, other bytes): recognised, nothing applied twice.
    resent = orjson.dumps({**orjson.loads(paid), "webhook_status": "failing"})
    assert (await store.apply.batch([incoming(resent)])).outcomes == [Outcome.REDELIVERED]
    assert await balances(db) == before
    assert await count(db, "SELECT count(*) FROM events") == 0

    # A restore brings the month back exactly as it was, and its ids (they may be forgotten),
    # and search by customer learns its orders again from the bodies.
    terms = "SELECT term, order_id FROM order_customers ORDER BY term"
    learnt = await db.fetch(terms)
    assert ("cus_old", "ord_old") in [tuple(r) for r in learnt]
    await db.execute("DELETE FROM event_ids")
    await db.execute("DELETE FROM order_customers")
    assert await retention.restore(store, export, EXPORT_KEY, verifier()) == 1
    assert await db.fetch("SELECT * FROM events") == archived
    assert await count(db, "SELECT count(*) FROM event_ids") == 1
    assert await db.fetch(terms) == learnt
    assert await retention.restore(store, export, EXPORT_KEY, verifier()) == 1  # rows kept
    assert await count(db, "SELECT count(*) FROM events_2025_01") == 1
    audited = await db.fetch("SELECT action, count, details FROM audit_log ORDER BY id")
    assert [(r["action"], r["count"]) for r in audited] == [
        ("archive.prune", 2),
        ("archive.restore", 1),
        ("archive.restore", 1),
    ]
    assert json.loads(audited[0]["details"])["target"] == "months before 2025-02"


async def test_ids_past_the_dedupe_horizon_are_forgotten_and_a_resend_moves_no_money(
    store: Store, db: Db
) -> None:
    ancient = order_event("order.paid", "ord_ancient", amount=3000, fee=90, customer_id="cus_a")
    await store.apply.batch([incoming(ancient)])
    await age(db, date(2023, 1, 1))
    recent = order_event("order.paid", "ord_recent", amount=2000, fee=60, customer_id="cus_r")
    await store.apply.batch([incoming(recent)])
    recent_id = orjson.loads(recent)["id"]
    # Its id looks old, but its archived row is still there: an id is kept while its row is.
    await db.execute(
        "UPDATE event_ids SET archived_at = '2023-01-20' WHERE event_id = $1", recent_id
    )
    await db.execute("UPDATE outbox SET sent_at = now()")
    await retention.prune(store, date(2023, 2, 1), None)
    before = await balances(db)

    assert await retention.forget_ids(store, date(2024, 1, 1)) == 1
    assert [r["event_id"] for r in await db.fetch("SELECT event_id FROM event_ids")] == [recent_id]
    assert await retention.forget_ids(store, date(2024, 1, 1)) == 0

    # Conekta resends the forgotten one: archived again, but the order is paid already and the
    # payment's business key is booked, so no money moves and no fulfillment goes out twice.
    outbox = await count(db, "SELECT count(*) FROM outbox")
    assert (await store.apply.batch([incoming(ancient)])).outcomes == [Outcome.DUPLICATE]
    assert await balances(db) == before
    assert await count(db, "SELECT count(*) FROM outbox") == outbox


async def test_prune_keeps_what_cannot_be_verified_or_was_not_sent(
    store: Store, db: Db, tmp_path: Path
) -> None:
    await store.apply.batch([incoming(order_event("order.paid", "ord_k"))])
    await age(db, JANUARY)
    await age(db, JANUARY, "outbox", "created_at")  # its message is still unsent
    rows, checksum = await store.retention.month_summary("events", JANUARY)
    export = await retention.export_month(store, "events", JANUARY, tmp_path, EXPORT_KEY)
    retention.verify_export(export, rows, checksum)
    with pytest.raises(RetentionRefused, match="rows exported"):
        retention.verify_export(export, rows + 1, checksum)
    with pytest.raises(DataRejected, match="changed since it was exported"):
        await store.retention.drop_month("events", JANUARY, rows, checksum + 1)
    with pytest.raises(RetentionRefused, match="current month"):
        await retention.prune(store, date(2999, 1, 1), None)

    results = await retention.prune(store, date(2025, 2, 1), None)

    assert [(r.table, r.pruned) for r in results] == [("events", True), ("outbox", False)]
    assert await db.fetchval("SELECT to_regclass('outbox_2025_01')") is not None
    assert await count(db, "SELECT count(*) FROM outbox WHERE sent_at IS NULL") == 1


async def test_rows_waiting_in_the_default_partition_move_into_their_month(
    store: Store, db: Db
) -> None:
    await store.apply.batch([incoming(order_event("order.paid", "ord_far"))])
    await db.execute("UPDATE events SET applied_at = '2031-05-02'")  # no partition: the default
    assert await count(db, "SELECT count(*) FROM events_default") == 1
    await db.execute(
        "SELECT create_month_partitions('events', 'applied_at', '2031-05-01', '2031-05-01')"
    )
    assert await count(db, "SELECT count(*) FROM events_default") == 0
    assert await count(db, "SELECT count(*) FROM events_2031_05") == 1


async def test_archive_prune_command(
    settings: Settings, store: Store, db: Db, tmp_path: Path
) -> None:
    await store.apply.batch([incoming(order_event("order.paid", "ord_cli"))])
    await db.execute("UPDATE outbox SET sent_at = now()")
    await age(db, JANUARY)
    await age(db, JANUARY, "outbox", "created_at")
    code, output = await cli(
        settings, "archive", "prune", "--before", "2025-02", "--export", str(tmp_path)
    )
    assert code == 0, output
    assert "events 2025-01: 1 rows pruned" in output
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "events-2025-01.jsonl.gz",
        "events-2025-01.jsonl.gz.sha256",
        "events-2025-01.jsonl.gz.sig",
        "outbox-2025-01.jsonl.gz",
        "outbox-2025-01.jsonl.gz.sha256",
        "outbox-2025-01.jsonl.gz.sig",
    ]
    code, output = await cli(settings, "archive", "prune", "--before", "2025-13")
    assert code == 2 and "expected YYYY-MM" in output


async def test_migrating_an_unpartitioned_archive_keeps_every_row(template_database: str) -> None:
    name = template_database.replace("_template", "_unpartitioned")
    url = database_url_for(name)
    await drop_database(name)
    await clone_database(name, "template0")
    db = await asyncpg.connect(url)
    try:
        await db.execute(migrations._CREATE_TABLE)
        for migration, sql in migrations.available():
            if migration >= "0009":
                break
            await db.execute(sql)
            await db.execute("INSERT INTO schema_migrations (name) VALUES ($1)", migration)
        await db.execute(
            "INSERT INTO events (event_id, type, livemode, created_at, applied_at, outcome, body)"
            " SELECT 'evt_' || n || '_' || i, 'order.paid', false, now(), t, 'applied', '\\x7b7d'"
            " FROM generate_series(1, 3) i, (VALUES (1, timestamptz '2024-06-30 23:59:59+00'),"
            "                                       (2, '2026-01-01 00:00+00'), (3, now())) v(n, t)"
        )
        await db.execute(
            "INSERT INTO outbox (message_id, routing_key, body, created_at, sent_at)"
            " VALUES ('ful_1', 'order.paid', '\\x7b7d', '2024-06-15', '2024-06-15'),"
            "        ('ful_2', 'order.paid', '\\x7b7d', now(), NULL)"
        )
        events_before = await db.fetch("SELECT * FROM events ORDER BY event_id, applied_at")

        later = [name for name, _ in migrations.available() if name >= "0009"]
        assert await migrations.migrate(url) == later  # 0009_retention first

        # Every row kept, column by column (later migrations may add columns).
        events_after = await db.fetch("SELECT * FROM events ORDER BY event_id, applied_at")
        assert [
            {k: r[k] for k in dict(before)}
            for r, before in zip(events_after, events_before, strict=True)
        ] == [dict(r) for r in events_before]
        assert await count(db, "SELECT count(*) FROM events_2024_06") == 3
        assert await count(db, "SELECT count(*) FROM events_2026_01") == 3
        assert await count(db, "SELECT count(*) FROM event_ids") == 9
        assert await count(db, "SELECT count(*) FROM outbox") == 2
        assert await count(db, "SELECT count(*) FROM outbox_2024_06") == 1
        next_id = await db.fetchval(
            "INSERT INTO outbox (message_id, routing_key, body) VALUES ('ful_3', 'k', '')"
            " RETURNING id"
        )
        assert next_id == 3  # the sequence carried over
    finally:
        await db.close()
        await drop_database(name)
