"""Nothing moves money unless Conekta said so (issue 24, finding 2): the worker verifies every
body's DIGEST again, so a message on the events exchange that no receiver checked (the receiver's
broker user may publish anything there) is archived `unverified`, moves nothing, and leaves its
event id free for Conekta's genuine delivery."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, TypeAlias

import aio_pika
import asyncpg
import orjson

from core import request as request_info
from core import signature, topology
from core.settings import Settings
from domain.archive import unhandled_row
from domain.order_event import parse_order_event
from domain.plan import Incoming
from domain.provenance import API
from ops import actions, audit, events, invalid
from store import Store
from testkit import signing
from testkit.events import order_event
from testkit.processes import cli
from testkit.services import balances, count, publish_events, running_worker
from testkit.wait import wait_for
from worker.judge import invalid_row

Db: TypeAlias = "asyncpg.Connection[Any]"
PAID = {"amount": 20000, "fee": 796, "customer_id": "cus_forged"}


async def publish_forged(
    connection: aio_pika.abc.AbstractRobustConnection, body: bytes, headers: dict[str, Any]
) -> None:
    """What a compromised receiver can do: any body, any headers (a `source` too)."""
    channel = await connection.channel(publisher_confirms=True)
    exchange = await channel.get_exchange(topology.EVENTS_EXCHANGE)
    document = orjson.loads(body)
    message = aio_pika.Message(
        body, message_id=document["id"], type=document["type"], headers=headers
    )
    await exchange.publish(message, document["type"])
    await channel.close()


def request_header(body: bytes, digest: str) -> dict[str, Any]:
    return {
        request_info.HEADER: request_info.encode(
            request_info.select("10.0.0.9", [("digest", digest)])
        )
    }


async def test_a_message_no_receiver_checked_moves_nothing_and_claims_no_id(
    settings: Settings, broker: Any, db: Db, tmp_path: Path
) -> None:
    body = order_event("order.paid", "ord_forged", **PAID)
    event_id = orjson.loads(body)["id"]
    other_key = signature.load_private_key(signature.generate_key_pair(tmp_path, "evil")[0])
    # The same event id each time; the bodies differ in one field (a body's key is its hash).
    bodies = [orjson.dumps({**orjson.loads(body), "attempt": n}) for n in range(3)]
    forged = [
        (bodies[0], {"source": "reconcile"}),  # no DIGEST; the header reconcile once used
        (bodies[1], request_header(bodies[1], signature.sign(bodies[1], other_key))),
        (bodies[2], signing.signed_headers(body)),  # a genuine DIGEST, of other bytes
    ]
    async with running_worker(settings):
        for forged_body, headers in forged:
            await publish_forged(broker, forged_body, headers)

        async def archived() -> bool:
            return await count(db, "SELECT count(*) FROM events") == 3

        await wait_for(archived, what="the forged messages archived")
        rows = await db.fetch("SELECT event_id, original_id, outcome, reason FROM events")
        assert {r["outcome"] for r in rows} == {"unverified"}
        assert {r["original_id"] for r in rows} == {event_id}
        assert all(r["event_id"].startswith("unverified:") for r in rows)
        assert {r["reason"] for r in rows} == {
            "no DIGEST recorded with the body: not from a receiver that checked it",
            "DIGEST does not verify with any configured key",
        }
        assert await balances(db) == {}
        assert await count(db, "SELECT count(*) FROM orders") == 0
        assert await count(db, "SELECT count(*) FROM event_ids WHERE event_id = $1", event_id) == 0

        # Conekta's genuine delivery of the same id is applied normally.
        await publish_events(broker, [body])

        async def applied() -> bool:
            return await count(db, "SELECT count(*) FROM events WHERE outcome = 'applied'") == 1

        await wait_for(applied, what="the genuine delivery applied")
    assert await balances(db) == {
        "conekta:receivable": 19204,
        "conekta:fees": 686,  # the fee its own movement, its IVA apart (issue 22 A)
        "tax:vat_on_fees": 110,
        "customer:cus_forged": 20000,
    }


async def test_a_key_retired_from_receiving_still_verifies_what_it_signed(
    settings: Settings, broker: Any, db: Db, key_pair: tuple[Path, Path], tmp_path: Path
) -> None:
    new_public = signature.generate_key_pair(tmp_path, "new")[1]
    rotated = replace(settings, webhook_keys=(new_public,), verify_only_keys=(key_pair[1],))
    async with running_worker(rotated):
        await publish_events(broker, [order_event("order.paid", "ord_retired", **PAID)])

        async def applied() -> bool:
            return await count(db, "SELECT count(*) FROM events WHERE outcome = 'applied'") == 1

        await wait_for(applied, what="a body signed by the retired key applied")


def order_answer(body: bytes) -> dict[str, Any]:
    """What `POST /orders` answered for the order of an order event (for `orders record`)."""
    document = orjson.loads(body)
    answer: dict[str, Any] = {**document["data"]["object"], "created_at": document["created_at"]}
    return answer


async def test_ledger_verify_provenance_checks_every_posting_again(
    settings: Settings, store: Store, db: Db, tmp_path: Path
) -> None:
    """Every posting records where it came from and `ledger verify --provenance` re-checks it:
    signed bodies verify, API records are archived as such, an operator's word is listed until
    Conekta's own event confirms it, and a posting nothing backs fails the check."""
    signed = order_event("order.paid", "ord_pv_signed", **PAID)
    fetched = order_event("order.paid", "ord_pv_api", **PAID)
    webhook = order_event("order.paid", "ord_pv_rec", created_at=1_700_000_500, **PAID)
    await store.apply.batch(
        [
            Incoming(parse_order_event(signed), signed, None, signing.signed_request(signed)),
            Incoming(parse_order_event(fetched), fetched, None, provenance=API),
        ]
    )
    path = tmp_path / "order.json"
    path.write_bytes(orjson.dumps({**order_answer(webhook), "created_at": 1_700_000_400}))
    code, output = await cli(settings, "orders", "record", str(path))
    assert code == 0, output
    rows = await db.fetch("SELECT order_id, provenance FROM ledger_transactions")
    assert dict(rows) == {
        "ord_pv_signed": "signed",
        "ord_pv_api": "api",
        "ord_pv_rec": "attested:" + audit.os_actor(),
    }
    [entry] = await db.fetch("SELECT action, details FROM audit_log WHERE action LIKE 'orders.%'")
    assert entry["action"] == "orders.record"

    code, output = await cli(settings, "ledger", "verify", "--provenance", "--json")
    report = orjson.loads(output)["provenance"]
    assert code == 0, output
    # each payment and its fee (issue 22 A)
    assert report["counts"] == {"signed": 2, "api": 2, "attested": 2}
    assert [r["order_id"] for r in report["listed"]["attested"]] == ["ord_pv_rec"] * 2  # and fee

    # Conekta's signed webhook for the recorded order: a duplicate, and the confirmation.
    applied = Incoming(parse_order_event(webhook), webhook, None, signing.signed_request(webhook))
    await store.apply.batch([applied])
    code, output = await cli(settings, "ledger", "verify", "--provenance", "--json")
    assert orjson.loads(output)["provenance"]["counts"] == {"signed": 2, "api": 2, "confirmed": 2}

    # A posting written straight into the ledger (a role that can insert postings, a bug): its
    # `signed` is not believed, the event it names does not verify.
    forged = order_event("order.paid", "ord_pv_forged", **PAID)
    await store.events.archive(
        [unhandled_row(orjson.loads(forged), forged, None, {"remote": None, "headers": {}})]
    )
    await db.execute(
        "INSERT INTO ledger_transactions (business_key, kind, order_id, charge_id, currency,"
        " event_id, livemode, effective_at, amount, provenance) VALUES ('payment:ord_pv_forged:"
        "ch_ord_pv_forged', 'payment', 'ord_pv_forged', 'ch_ord_pv_forged', 'MXN', $1, false,"
        " now(), 5, 'signed')",
        orjson.loads(forged)["id"],
    )
    await db.execute(
        "INSERT INTO ledger_entries (transaction_id, account, currency, amount)"
        " SELECT max(id), a, 'MXN', v"
        " FROM ledger_transactions, (VALUES ('conekta:receivable', 5), ('conekta:fees', -5))"
        " t(a, v) GROUP BY a, v"
    )
    code, output = await cli(settings, "ledger", "verify", "--provenance")
    assert code == 1
    assert "unbacked   payment:ord_pv_forged:ch_ord_pv_forged" in output
    assert "no DIGEST recorded" in output


async def test_replays_verify_each_body_again(store: Store, db: Db) -> None:
    """An archived body nothing vouches for (a row written without a DIGEST, a restore of an
    old month, a forged row) is left as it is by a replay; a signed one is applied."""
    unsigned = order_event("order.paid", "ord_rpunsigned", **PAID)
    signed = order_event("order.paid", "ord_rpsigned", **PAID)
    rows = [
        invalid_row(unsigned, None, "a rule since fixed"),
        invalid_row(signed, None, "a rule since fixed", signing.signed_request(signed)),
    ]
    await store.events.archive(rows)
    everything = actions.Selection(everything=True)
    preview = await invalid.preview(store, "replay", everything, verifier=signing.verifier())
    assert dict(preview.totals) == {"unverified": 1, "applied": 1}
    result = await invalid.replay(store, everything, "os:test", verifier=signing.verifier())
    assert dict(result.totals) == {"unverified": 1, "applied": 1}
    outcomes = dict(await db.fetch("SELECT order_id, outcome FROM events"))
    assert outcomes == {None: "invalid", "ord_rpsigned": "applied"}

    # The same through `events replay` of the archive: the unsigned one's body is an order
    # event of a handled type now, yet it is not applied.
    await db.execute("UPDATE events SET outcome = 'ignored' WHERE outcome = 'invalid'")
    totals = await events.replay(
        store, events.ReplayFilter(), "os:test", lambda _: None, verifier=signing.verifier()
    )
    assert totals["unverified"] == 1
    assert await count(db, "SELECT count(*) FROM orders WHERE id = 'ord_rpunsigned'") == 0
