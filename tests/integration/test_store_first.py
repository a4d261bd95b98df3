"""Store first, judge later (issue 10): whatever Conekta signs is queued, then kept; nothing one
event does can stop the worker. One test per finding, on real HTTP, RabbitMQ and PostgreSQL."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeAlias

import aiohttp
import asyncpg
import jsonschema_rs
import orjson
import pytest

import schemas
from core import event as core_event
from core import signature
from core.settings import Settings
from domain.outcome import Outcome
from domain.plan import plan_batch
from ops import actions, events, invalid, ledger
from store import Store
from testkit import signing
from testkit.events import order_event, order_event_document
from testkit.processes import cli
from testkit.services import balances, count, running_receiver, running_worker
from testkit.wait import wait_for
from worker import failures

Db: TypeAlias = "asyncpg.Connection[Any]"


async def post_signed(url: str, bodies: list[bytes], key: Path) -> list[tuple[int, Any]]:
    private = signature.load_private_key(key)
    answers = []
    async with aiohttp.ClientSession() as session:
        for body in bodies:
            headers = {"Content-Type": "application/json", "DIGEST": signature.sign(body, private)}
            async with session.post(url, data=body, headers=headers) as response:
                answers.append((response.status, await response.json(content_type=None)))
    return answers


async def wait_archived(db: Db, n: int) -> None:
    async def done() -> bool:
        return await count(db, "SELECT count(*) FROM events") >= n

    await wait_for(done, timeout=60, what=f"{n} events archived")


async def outcome_of(store: Store, event_id: str) -> str | None:
    row = await store.events.get(event_id)
    return None if row is None else str(row["outcome"])


async def ledger_clean(store: Store) -> bool:
    return all(not rows for _, rows in await ledger.verify(store))


HUGE = "<a number too big for 64 bits>"


@pytest.fixture
def private_key(key_pair: tuple[Path, Path]) -> Path:
    return key_pair[0]


async def test_signed_event_stricter_than_conekta_is_kept_invalid_and_replayable(
    settings: Settings,
    broker: Any,
    db: Db,
    store: Store,
    private_key: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Finding 1: a signed order event our schema refuses was answered 400 and lost."""
    document = order_event_document("order.paid", "ord_strict", customer_id="cus_strict")
    del document["data"]["object"]["payment_status"]
    body = orjson.dumps(document)
    async with running_receiver(settings) as url, running_worker(settings):
        [(status, answer)] = await post_signed(url, [body], private_key)
        assert (status, answer["event_id"]) == (200, document["id"])
        await wait_archived(db, 1)
    shown = await events.show(store, document["id"])
    assert shown is not None
    assert shown["outcome"] == "invalid"
    assert shown["reason"] == "data.object.payment_status: required"
    assert await count(db, "SELECT count(*) FROM orders") == 0
    assert await count(db, "SELECT count(*) FROM ledger_transactions") == 0
    assert await count(db, "SELECT count(*) FROM outbox") == 0
    code, out = await cli(settings, "events", "list", "--outcome", "invalid", "--json")
    assert code == 0, out
    [listed] = orjson.loads(out)
    assert (listed["event_id"], listed["key_from"]) == (document["id"], "id")

    # A schema fix (payment_status no longer required), then the invalid events judged again.
    relaxed = copy.deepcopy(schemas.load("event.json"))
    relaxed["definitions"]["order"]["required"].remove("payment_status")
    monkeypatch.setattr(core_event, "_VALIDATOR", jsonschema_rs.validator_for(relaxed))
    result = await invalid.replay(
        store, actions.Selection(everything=True), "test", verifier=signing.verifier()
    )
    assert result.totals == {"applied": 1}
    assert await outcome_of(store, document["id"]) == "applied"
    assert await balances(db) == {
        "conekta:receivable": 9500,
        "conekta:fees": 431,  # 500 / 1.16
        "tax:vat_on_fees": 69,
        "customer:cus_strict": 10000,
    }
    assert await ledger_clean(store)


async def test_unhandled_event_with_an_odd_data_object_cannot_stop_the_worker(
    settings: Settings, broker: Any, db: Db, store: Store, private_key: Path
) -> None:
    """Finding 2: `data.object` a string or a list crashed the archive consumer."""
    odd = []
    for i, value in enumerate(["a string", [1, 2], 7, None, {"object": ["x"]}]):
        document = order_event_document("charge.paid", f"ord_odd{i}")
        document["data"]["object"] = value
        odd.append(orjson.dumps(document))
    no_data = order_event_document("charge.paid", "ord_nodata")
    no_data["data"] = "gone"
    paid = order_event("order.paid", "ord_afterodd")
    async with running_receiver(settings) as url, running_worker(settings):
        answers = await post_signed(url, [*odd, orjson.dumps(no_data), paid], private_key)
        assert {status for status, _ in answers} == {200}
        await wait_archived(db, len(answers))
    outcomes = dict(await db.fetch("SELECT outcome, count(*) FROM events GROUP BY outcome"))
    assert outcomes == {"ignored": len(odd), "invalid": 1, "applied": 1}
    assert await ledger_clean(store)


ODD_BODIES: dict[
    str, tuple[Callable[[dict[str, Any]], object], str]
] = {  # a change to a valid order.paid -> what its archive key is derived from
    "long-id": (lambda d: d.update(id="e" * 10_000), "id hash"),
    "odd-id": (lambda d: d.update(id="ñ id with spaces / and : colons"), "id hash"),
    "numeric-id": (lambda d: d.update(id=12345678901234567890), "body"),
    "no-id": (lambda d: d.pop("id"), "body"),
    "long-type": (lambda d: d.update(type="x" * 300), "id"),
    "long-order-id": (lambda d: d["data"]["object"].update(id="ord_" + "a" * 5000), "id"),
    "huge-amount": (lambda d: d["data"]["object"].update(amount=HUGE), "id"),
    "negative-amount": (lambda d: d["data"]["object"].update(amount=-(10**18)), "id"),
    "nul": (lambda d: d["data"]["object"].update(currency="MX\u0000N"), "id"),
    "deep": (lambda d: d.update(deep=_nested(100)), "id"),
}


async def test_any_signed_body_is_kept_under_a_bounded_key(
    settings: Settings, broker: Any, db: Db, store: Store, private_key: Path
) -> None:
    """Ids of any length or shape: stored under a bounded key, the original kept and findable."""
    documents, bodies = [], []
    for i, (change, _) in enumerate(ODD_BODIES.values()):
        document = order_event_document("order.paid", f"ord_odd{i}")
        change(document)
        documents.append(document)
        huge = b"1" + b"0" * 30  # orjson cannot write it; Conekta's JSON could hold it
        bodies.append(orjson.dumps(document).replace(orjson.dumps(HUGE), huge))
    async with running_receiver(settings) as url, running_worker(settings):
        answers = await post_signed(url, bodies, private_key)
        assert {status for status, _ in answers} == {200}, answers
        await wait_archived(db, len(bodies))
    invalid = await events.listing(store, Outcome.INVALID, None)
    assert len(invalid) == len(bodies) - 1  # deep nesting in an extra field is a valid event
    for document, (_, answer), (name, (_, key_from)) in zip(
        documents, answers, ODD_BODIES.items(), strict=True
    ):
        own_id = document.get("id")
        shown = await events.show(store, own_id if isinstance(own_id, str) else answer["event_id"])
        assert shown is not None, name
        assert shown["event_id"] == answer["event_id"], name
        assert len(shown["event_id"]) <= 100 and shown["key_from"] == key_from, name
    assert await count(db, "SELECT count(*) FROM orders") == 1


def _nested(depth: int) -> Any:
    value: Any = "bottom"
    for _ in range(depth):
        value = {"n": [value]}
    return value


async def test_paid_charge_of_zero_posts_nothing_and_the_ledger_verifies(
    settings: Settings, broker: Any, db: Db, store: Store, private_key: Path
) -> None:
    """Finding 4: a zero charge created a ledger transaction without entries."""
    zero = order_event("order.paid", "ord_zero", amount=0, fee=0)
    async with running_receiver(settings) as url, running_worker(settings):
        await post_signed(url, [zero], private_key)
        await wait_archived(db, 1)
    assert await outcome_of(store, orjson.loads(zero)["id"]) == "applied"
    assert await count(db, "SELECT count(*) FROM ledger_transactions") == 0
    assert await ledger_clean(store)


async def test_an_unexpected_error_dead_letters_one_event_with_its_traceback_the_rest_goes_on(
    settings: Settings, broker: Any, db: Db, private_key: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No exception from one event stops a consumer: the batch is applied one by one, the
    poison event dead-lettered (here after one attempt) with where it was raised."""

    def plan_or_fail(items: Any, *args: Any, **kwargs: Any) -> Any:
        # Raised around the plan (as the store's own code could), not inside deciding one event.
        if any(item.event.order_id == "ord_boom" for item in items):
            raise ZeroDivisionError("a bug")
        return plan_batch(items, *args, **kwargs)

    monkeypatch.setattr("store.apply.plan_batch", plan_or_fail)
    bodies = [order_event("order.paid", f"ord_ok{i}") for i in range(20)]
    bodies.insert(7, order_event("order.paid", "ord_boom"))
    one_attempt = replace(settings, max_attempts=1, batch_wait=0.2)
    async with running_receiver(one_attempt) as url, running_worker(one_attempt):
        await post_signed(url, bodies, private_key)
        await wait_archived(db, 20)

        async def stored() -> bool:
            return await count(db, "SELECT count(*) FROM dead_letters") == 1

        await wait_for(stored, timeout=30, what="the poison event in the dead-letter table")
    [letter] = await db.fetch("SELECT message_id, reason, headers FROM dead_letters")
    headers = orjson.loads(letter["headers"])
    assert letter["message_id"] == orjson.loads(bodies[7])["id"]
    assert letter["reason"] == headers[failures.ERROR_MESSAGE] == "ZeroDivisionError: a bug"
    assert "in plan_or_fail" in headers[failures.ERROR_TRACEBACK]
