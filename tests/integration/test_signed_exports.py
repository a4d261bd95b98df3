"""Exports are signed with a key that is not on the export volume, and a restore trusts nothing
else (issue 24, finding 1): a forged export (rows added, its .sha256 recomputed, as anyone with
the volume can) is refused, so an ordinary replay afterwards has nothing to book."""

from __future__ import annotations

import gzip
import hashlib
from datetime import date
from pathlib import Path
from typing import Any, TypeAlias

import asyncpg
import orjson
import pytest

from core import signature
from core.errors import RetentionRefused
from core.settings import Settings
from core.verifier import Verifier
from domain.order_event import parse_order_event
from domain.plan import Incoming
from ops import events as archive_ops
from ops import retention
from store import Store
from testkit import signing
from testkit.events import order_event
from testkit.processes import cli
from testkit.services import balances, count
from testkit.signing import EXPORT_KEY

Db: TypeAlias = "asyncpg.Connection[Any]"
JANUARY = date(2025, 1, 1)


def verifier() -> Verifier:
    return Verifier(signature.load_public_keys([signing.key_pair()[1]]))


async def exported_january(store: Store, db: Db, folder: Path) -> tuple[Path, Path]:
    """One paid order, archived and sent in January 2025, pruned with exports: (events, outbox)."""
    body = order_event("order.paid", "ord_jan", amount=3000, fee=90, customer_id="cus_jan")
    signed = Incoming(parse_order_event(body), body, None, signing.signed_request(body))
    await store.apply.batch([signed])
    await db.execute("UPDATE outbox SET sent_at = now()")
    for table, key in retention.TABLES.items():
        await db.execute(f"SELECT create_month_partitions('{table}', '{key}', $1, $1)", JANUARY)
        await db.execute(f"UPDATE {table} SET {key} = '2025-01-15'")
    await db.execute("UPDATE event_ids SET archived_at = '2025-01-15'")
    await retention.prune(store, date(2025, 2, 1), folder, export_key=EXPORT_KEY)
    return folder / "events-2025-01.jsonl.gz", folder / "outbox-2025-01.jsonl.gz"


def rewrite(path: Path, change: Any, *, sign_with: str | None = None) -> None:
    """Change an export's rows and recompute its .sha256 (what anyone with the volume can do);
    re-signed only with a key (what only someone holding CONEKTA_EXPORT_KEY can do)."""
    rows = [orjson.loads(line) for line in gzip.decompress(path.read_bytes()).splitlines()]
    rows = change(rows)
    path.write_bytes(gzip.compress(b"".join(orjson.dumps(r) + b"\n" for r in rows)))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    path.with_name(path.name + ".sha256").write_text(f"{digest}  {path.name}\n")
    if sign_with:
        retention.sign_export(path, sign_with)


def forged_payment(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The review's forgery: a payment for an order Conekta never saw, archived `applied`."""
    body = order_event("order.paid", "ord_never", amount=20000, fee=796, customer_id="cus_x")
    forged = {
        **rows[0],
        "event_id": orjson.loads(body)["id"],
        "order_id": "ord_never",
        "body": "\\x" + body.hex(),
        "request": {"remote": "203.0.113.9", "headers": {}},
        "provenance": None,
    }
    return [*rows, forged]


async def test_a_forged_export_is_refused_and_a_replay_books_nothing(
    store: Store, db: Db, tmp_path: Path
) -> None:
    events, _ = await exported_january(store, db, tmp_path)
    before = await balances(db)
    rewrite(events, forged_payment)

    with pytest.raises(RetentionRefused, match="signature does not match"):
        await retention.restore(store, events, EXPORT_KEY, verifier())
    events.with_name(events.name + ".sig").unlink()
    with pytest.raises(RetentionRefused, match="no signature"):
        await retention.restore(store, events, EXPORT_KEY, verifier())

    assert await count(db, "SELECT count(*) FROM events") == 0
    await archive_ops.replay(
        store, archive_ops.ReplayFilter(), "os:test", progress=lambda _: None, verifier=verifier()
    )
    assert await balances(db) == before


async def test_a_signed_export_is_still_checked_row_by_row(
    store: Store, db: Db, tmp_path: Path
) -> None:
    """Even a file signed with the key (an insider, a bug) restores nothing outside its month,
    no outbox message that was not sent, and no event whose DIGEST fails."""
    events, outbox = await exported_january(store, db, tmp_path)

    def moved(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{**rows[0], "applied_at": "2025-03-02T00:00:00+00:00"}]

    rewrite(events, moved, sign_with=EXPORT_KEY)
    with pytest.raises(RetentionRefused, match="outside 2025-01"):
        await retention.restore(store, events, EXPORT_KEY, verifier())

    def unsent(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{**row, "sent_at": None} for row in rows]

    rewrite(outbox, unsent, sign_with=EXPORT_KEY)
    with pytest.raises(RetentionRefused, match="not sent"):
        await retention.restore(store, outbox, EXPORT_KEY, None)

    def tampered(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        body = bytes.fromhex(rows[0]["body"][2:]).replace(b"3000", b"9000")
        return [{**rows[0], "applied_at": "2025-01-15T00:00:00+00:00", "body": "\\x" + body.hex()}]

    rewrite(events, tampered, sign_with=EXPORT_KEY)
    with pytest.raises(RetentionRefused, match="DIGEST does not verify"):
        await retention.restore(store, events, EXPORT_KEY, verifier())
    with pytest.raises(RetentionRefused, match="signature does not match"):
        await retention.restore(store, events, "another-key-" + "1" * 32, verifier())
    assert await count(db, "SELECT count(*) FROM events") == 0
    assert await count(db, "SELECT count(*) FROM outbox") == 0


async def test_archive_sign_signs_an_old_export_once_checked_and_audited(
    settings: Settings, store: Store, db: Db, tmp_path: Path
) -> None:
    events, _ = await exported_january(store, db, tmp_path)
    events.with_name(events.name + ".sig").unlink()  # made before signing existed
    code, output = await cli(settings, "archive", "restore", str(events))
    assert code == 1 and "no signature" in output

    code, output = await cli(settings, "archive", "sign", str(events))
    assert code == 0, output
    [entry] = await db.fetch(
        "SELECT actor, action, details FROM audit_log WHERE action = 'archive.sign'"
    )
    assert entry["action"] == "archive.sign" and entry["actor"].startswith("os:")
    assert orjson.loads(entry["details"])["target"] == events.name
    code, output = await cli(settings, "archive", "restore", str(events))
    assert code == 0 and "1 rows restored" in output, output

    rewrite(events, lambda rows: rows * 2)  # damaged: its .sha256 recomputed after, no .sig
    events.with_name(events.name + ".sha256").write_text(f"{'0' * 64}  {events.name}\n")
    code, output = await cli(settings, "archive", "sign", str(events))
    assert code == 1 and "sha256 differs" in output
    signed = "SELECT count(*) FROM audit_log WHERE action = 'archive.sign'"
    assert await count(db, signed) == 1
