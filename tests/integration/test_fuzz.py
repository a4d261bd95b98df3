"""Property-based fuzz (issue 10): at least 10,000 signed bodies, mutated from real samples, go
through the real receiver and worker. Whatever they contain: no 5xx, the worker never stops,
every accepted event is findable afterwards (archive or dead letter), the ledger verifies.

Hypothesis draws 1,000 seeds; each drives a seeded generator that mutates 10 bodies (cheaper than
drawing every value through Hypothesis). They are then signed and posted concurrently in one run,
so the services start once and the fuzz stays within the normal `make test` (about 50 s here)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import random
import secrets
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeAlias

import aiohttp
import asyncpg
import orjson
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from core import signature
from core.broker import queue_stats
from core.settings import Settings
from core.topology import ORDERS_QUEUE, UNHANDLED_QUEUE
from ops import events, in_flight, ledger
from store import Store
from testkit.events import SAMPLES, order_event_document
from testkit.services import count, running_receiver, running_worker
from testkit.wait import wait_for

Db: TypeAlias = "asyncpg.Connection[Any]"

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "1000"))  # fewer only to iterate locally
PER_EXAMPLE = 10
RESENT = [0]  # bodies sent again after a 503 or a dropped connection (reported)
FRESH_ID = "<fresh id>"  # replaced by a unique id when serialised: counts stay exact

BASE_BODIES = [path.read_bytes() for path in sorted(SAMPLES.glob("*.json"))] + [
    orjson.dumps(order_event_document(kind, "ord_fuzz", amount=amount, fee=fee))
    for kind in ("order.paid", "order.pending_payment", "order.declined", "order.refunded")
    for amount, fee in ((10_000, 300), (0, 0), (1, 1))
]

# Values of every JSON type, the awkward ones often: huge and negative numbers, long strings,
# NUL, non-ASCII, nested containers.
SPECIAL_TEXT = ["", "\x00", "a\x00b", "ord_fuzz", "MXN", "paid", "x" * 65, "ñ" * 300, "0" * 5000]
SPECIAL_NUMBERS = [0, -1, 1, 2**31, -(2**63), 2**63, 2**64, 2**70, -(2**70), 0.5, 1.0, -1e308]


def random_value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(9 if depth < 3 else 6)
    if kind == 0:
        return rng.choice([None, True, False])
    if kind == 1:
        return rng.choice(SPECIAL_NUMBERS)
    if kind == 2:
        return rng.choice([rng.randint(-(10**9), 10**9), rng.uniform(-1e6, 1e6)])
    if kind == 3:
        return rng.choice(SPECIAL_TEXT)
    if kind in (4, 5):
        alphabet = rng.choice(["abc_.:- ", 'ñé€😀\x00\n"\\', "0123456789"])
        return "".join(rng.choice(alphabet) for _ in range(rng.randrange(40)))
    if kind in (6, 7):
        return [random_value(rng, depth + 1) for _ in range(rng.randrange(5))]
    keys = [*SPECIAL_TEXT[:6], "id", "type", "data", "object", "amount"]
    return {rng.choice(keys): random_value(rng, depth + 1) for _ in range(rng.randrange(5))}


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path into a document (dict keys and list indexes)."""
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, child in value.items():
            found += paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += paths(child, (*prefix, index))
    return found


def mutated_document(rng: random.Random) -> Any:
    """A sample with 1 to 3 keys deleted or given another value."""
    document = orjson.loads(rng.choice(BASE_BODIES))
    document["id"] = FRESH_ID
    for _ in range(rng.randint(1, 3)):
        candidates = paths(document)
        if not candidates:
            break
        path = rng.choice(candidates)
        parent = document
        for part in path[:-1]:
            parent = parent[part]
        if rng.random() < 0.5:
            del parent[path[-1]]
        else:
            parent[path[-1]] = random_value(rng)
    return document


def signed_body(rng: random.Random) -> bytes:
    """A mutated sample, or a body no JSON object: a list, a scalar, broken or deep JSON."""
    shape = rng.choice(["mutated"] * 7 + ["top", "broken", "deep", "duplicate"])
    if shape == "top":
        return json.dumps(random_value(rng)).encode()
    text = json.dumps(mutated_document(rng))
    if shape == "broken":
        return text[: rng.randrange(len(text))].encode()
    if shape == "deep":
        depth = rng.choice([50, 500, 5000])
        return ('{"deep": ' + "[" * depth + "]" * depth + ", " + text[1:]).encode()
    if shape == "duplicate":  # the same key twice: the last wins in most parsers
        return ('{"id": ' + json.dumps(random_value(rng)) + ", " + text[1:]).encode()
    return text.encode()


def generate() -> list[bytes]:
    """Hypothesis draws the seeds (a failing run names them); a seeded generator mutates, which
    costs a fraction of drawing every value through Hypothesis for 10,000 bodies."""
    bodies: list[bytes] = []

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.generate],  # collecting only: nothing to shrink here
    )
    @given(st.integers(min_value=0, max_value=2**64))
    def collect(seed: int) -> None:
        rng = random.Random(seed)
        bodies.extend(signed_body(rng) for _ in range(PER_EXAMPLE))

    collect()
    # Unique ids where the mutation kept ours, so every accepted event can be counted.
    quoted = json.dumps(FRESH_ID).encode()
    return [body.replace(quoted, json.dumps(secrets.token_hex(12)).encode()) for body in bodies]


async def post_all(
    url: str, bodies: list[bytes], key: Path, accepted: set[str] | None = None
) -> list[tuple[int, Any]]:
    """Each answer, in order; `accepted` gets each accepted key as its answer arrives."""
    private = signature.load_private_key(key)
    signed = [(body, signature.sign(body, private)) for body in bodies]
    limit = asyncio.Semaphore(32)
    async with aiohttp.ClientSession() as session:

        async def one(body: bytes, digest: str) -> tuple[int, Any]:
            """As Conekta does: a 503 (the broker did not confirm in time: this machine is
            shared) or a dropped connection is sent again; anything else is the answer."""
            headers = {"Content-Type": "application/json", "DIGEST": digest}
            for attempt in range(1, 6):
                try:
                    async with limit, session.post(url, data=body, headers=headers) as response:
                        answer = response.status, await response.json(content_type=None)
                except aiohttp.ClientConnectionError:
                    answer = (0, "connection dropped")
                if answer[0] not in (0, 503):
                    break
                RESENT[0] += 1
                await asyncio.sleep(attempt)
            if accepted is not None and answer[0] == 200 and answer[1]["status"] == "accepted":
                accepted.add(answer[1]["event_id"])
            return answer

        return await asyncio.gather(*(one(body, digest) for body, digest in signed))


async def findable_all_along(
    store: Store, connection: Any, accepted: set[str], samples: list[str]
) -> None:
    """While the run is in progress, accepted keys drawn at random are looked up as `events show`
    does: archived, retrying, a dead letter (or on its way to one). One not found must be still
    waiting for its first delivery (a queue the worker consumes holds ready messages), or inside
    the batch the worker is deciding now (prefetched: found once that batch commits, within
    seconds); else it is out of sight."""
    rng = random.Random(1)
    while True:
        for key in rng.sample(sorted(accepted), min(20, len(accepted))):
            samples.append(key)
            if await _located(store, key):
                continue
            stats = await queue_stats(connection, [ORDERS_QUEUE, UNHANDLED_QUEUE])
            if not sum(depth for depth, _ in stats.values()):
                await wait_for(
                    functools.partial(_located, store, key),
                    timeout=15,
                    what=f"accepted {key}, in no queue, to be found",
                )
        await asyncio.sleep(0.2)  # a sampling interval, not a synchronisation


async def _story(db: Db, violations: list[Any]) -> str:
    """What happened to the orders a violated check names: their events and postings."""
    ids = {row["id"] for _, rows in violations for row in rows if "id" in row}
    lines = []
    for order_id in sorted(ids):
        for order in await db.fetch("SELECT * FROM orders WHERE id = $1", order_id):
            lines.append(f"order {dict(order)}")
        for row in await db.fetch(
            "SELECT event_id, type, outcome, created_at, body FROM events WHERE order_id = $1"
            " ORDER BY applied_at",
            order_id,
        ):
            lines.append(f"event {row['event_id']} {row['type']} {row['outcome']} {row['body']!r}")
        for row in await db.fetch(
            "SELECT business_key, kind, amount, event_id FROM ledger_transactions"
            " WHERE order_id = $1",
            order_id,
        ):
            lines.append(f"posting {dict(row)}")
    return "\n".join(lines)[-20000:]


async def _located(store: Store, key: str) -> bool:
    return bool(await events.show(store, key) or await in_flight.locate(store, key))


@pytest.mark.timeout(600)  # 10,000 signed bodies through both services; well over the default
async def test_ten_thousand_signed_mutated_bodies_lose_nothing_and_stop_nothing(
    settings: Settings, broker: Any, db: Db, store: Store, key_pair: tuple[Path, Path]
) -> None:
    started = time.perf_counter()
    bodies = generate()
    assert len(bodies) == EXAMPLES * PER_EXAMPLE  # 10,000 unless FUZZ_EXAMPLES says otherwise
    generated = time.perf_counter()
    # Two attempts: a refund or chargeback of a charge never booked (unknown_charge, transient)
    # reaches the dead-letter table in seconds rather than after the 10-minute retry tier.
    settings = replace(settings, publish_timeout=10.0, max_attempts=2)
    accepted: set[str] = set()
    samples: list[str] = []
    async with running_receiver(settings) as url, running_worker(settings):
        sampling = asyncio.create_task(findable_all_along(store, broker, accepted, samples))
        answers = await post_all(url, bodies, key_pair[0], accepted)
        failed = [(s, a, b[:200]) for (s, a), b in zip(answers, bodies, strict=True) if s != 200]
        assert not failed, failed[:5]
        keys = {a["event_id"] for _, a in answers if a["status"] == "accepted"}

        async def all_settled() -> bool:
            archived = await count(
                db, "SELECT count(*) FROM events WHERE event_id = ANY($1::text[])", list(keys)
            )
            dead = await count(
                db,
                "SELECT count(*) FROM dead_letters WHERE message_id = ANY($1::text[])",
                list(keys),
            )
            return archived + dead >= len(keys)

        await wait_for(all_settled, timeout=180, what=f"{len(keys)} events archived")
        sampling.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sampling  # raises what it found: an accepted key out of sight
        assert len(samples) >= 100, "too few samples taken while the run was in progress"
        for key in random.Random(0).sample(sorted(keys), min(300, len(keys))):
            assert await _located(store, key), f"accepted {key} is neither archived nor dead"
        # The worker is still consuming: one more plain event is applied.
        await post_all(
            url, [orjson.dumps(order_event_document("order.paid", "ord_last"))], key_pair[0]
        )

        async def last_applied() -> bool:
            return await count(db, "SELECT count(*) FROM orders WHERE id = 'ord_last'") == 1

        await wait_for(last_applied, what="an event after the fuzz applied")
    violations = [(c.description, rows[:3]) for c, rows in await ledger.verify(store) if rows]
    assert not violations, (violations, await _story(db, violations))
    outcomes = dict(await db.fetch("SELECT outcome, count(*) FROM events GROUP BY outcome"))
    print(
        f"\nfuzz: {len(bodies)} signed bodies, {len(keys)} accepted keys, {RESENT[0]} resent "
        f"after a 503 or a dropped connection, outcomes {outcomes}, "
        f"dead letters {await count(db, 'SELECT count(*) FROM dead_letters')}; "
        f"{len(samples)} accepted keys looked up while in progress, all found; generated in "
        f"{generated - started:.1f} s, posted and settled in "
        f"{time.perf_counter() - generated:.1f} s"
    )
