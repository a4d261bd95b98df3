"""What migration 0015 costs on an existing ledger (it validates a foreign key over every entry).

    python -m bench.migration_0015 [--n 1000000]

In a scratch database (dropped after), migrated up to 0015: N/2 payments of 10,000 customers
(N entries, their balances), then 0015 timed.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from typing import Any

import asyncpg

from store import migrations
from testkit.isolation import admin_execute, database_url_for, drop_database

SEED = """
INSERT INTO orders (id, status, amount, currency, customer_key, livemode, last_event_id,
                    last_event_created_at)
SELECT 'o' || i, 'paid', 100, 'MXN', 'c' || (i % 10000), false, 'e' || i, now()
FROM generate_series(1, $1::int) i;
INSERT INTO ledger_transactions (business_key, kind, order_id, charge_id, currency, livemode,
                                 event_id, effective_at, amount)
SELECT 'payment:o' || i || ':ch' || i, 'payment', 'o' || i, 'ch' || i, 'MXN', false, 'e' || i,
       now(), 100
FROM generate_series(1, $1::int) i;
INSERT INTO ledger_entries (transaction_id, account, currency, amount)
SELECT t.id, v.account, 'MXN', v.amount FROM ledger_transactions t,
LATERAL (VALUES ('conekta:receivable', 100),
                ('customer:c' || (substr(t.order_id, 2)::int % 10000), -100)) v (account, amount);
INSERT INTO balances (account, currency, livemode, normal_side, balance)
SELECT e.account, 'MXN', false,
       CASE WHEN e.account LIKE 'customer:%' THEN 'credit' ELSE 'debit' END, sum(e.amount)
FROM ledger_entries e GROUP BY e.account;
"""


async def main(n: int) -> None:
    name = f"conekta_test_mig15_{uuid.uuid4().hex[:8]}"
    await admin_execute(f'CREATE DATABASE "{name}"')
    try:
        db = await asyncpg.connect(database_url_for(name))
        try:
            print(await measure(db, n))
        finally:
            await db.close()
    finally:
        await drop_database(name)


async def measure(db: asyncpg.Connection[Any], n: int) -> str:
    for migration, sql in migrations.available():
        if migration < "0015":
            await db.execute(sql)
    await db.execute(SEED.replace("$1::int", str(n // 2)))
    await db.execute("ANALYZE")
    entries = await db.fetchval("SELECT count(*) FROM ledger_entries")
    [sql] = [s for m, s in migrations.available() if m.startswith("0015")]
    started = time.perf_counter()
    await db.execute(sql)
    took = time.perf_counter() - started
    accounts = await db.fetchval("SELECT count(*) FROM accounts")
    return f"migration 0015 on {entries:,} entries ({accounts:,} accounts): {took:.2f} s"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=1_000_000, help="ledger entries")
    asyncio.run(main(parser.parse_args().n))
