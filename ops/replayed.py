"""What came of replayed dead letters. A replay only puts them back on the queue; whether each
was then applied, or failed again, is known when the worker has judged it. This watches the
archive and the dead letters for the replayed ids until every one is settled or a deadline
passes (a bounded poll: the worker's commit is in another process), and says per event:
`applied`, `duplicate`, `stale`, … (the archive's outcome), `dead-lettered again: <reason>`,
or `not settled yet` (still queued or waiting in a retry queue).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from store import Store

DEFAULT_WAIT = 30.0  # seconds; the CLI's --wait, the API's "wait"
MAX_WAIT = 120.0
POLL = 0.2  # seconds between looks
PENDING = "not settled yet (still queued, or waiting in a retry queue)"
AGAIN = "dead-lettered again"


@dataclass
class Outcomes:
    """Per replayed event id, what came of it."""

    outcomes: dict[str, str] = field(default_factory=dict)
    waited: float = 0.0

    @property
    def went_back(self) -> list[str]:
        return [i for i, o in self.outcomes.items() if o.startswith(AGAIN)]

    @property
    def pending(self) -> list[str]:
        return [i for i, o in self.outcomes.items() if o == PENDING]

    def summary(self) -> dict[str, Any]:
        return {
            "outcomes": dict(self.outcomes),
            "went_back": self.went_back,
            "pending": self.pending,
            "waited": round(self.waited, 1),
        }


def outcome_of(row: Any) -> str | None:
    """One replayed row's outcome now; None while the worker has not judged it."""
    if row["again_kind"] is not None:
        return f"{AGAIN}: {row['again_kind']}: {row['again_reason']}"
    if row["outcome"] is None:
        return None
    if row["archived_before"]:  # the worker acknowledged it as a redelivery: nothing changed
        return f"redelivered (archived before as {row['outcome']})"
    reason = f": {row['outcome_reason']}" if row["outcome_reason"] else ""
    return f"{row['outcome']}{reason}"


async def wait(
    store: Store,
    message_ids: Sequence[str],
    seconds: float = DEFAULT_WAIT,
    *,
    clock: Callable[[], float] = time.monotonic,
) -> Outcomes:
    """Poll until every replayed id is settled, or `seconds` have passed (a deadline on the
    whole wait, not a timeout on one call: every look that found an outcome counts)."""
    start = clock()
    rows = await store.dead_letters.replayed_rows(message_ids)
    row_ids = [r["id"] for r in rows]
    found: dict[str, str] = {}
    while True:
        for row in await store.dead_letters.replay_outcomes(row_ids):
            if (outcome := outcome_of(row)) is not None:
                found[row["message_id"]] = outcome
        left = seconds - (clock() - start)
        if len(found) >= len(row_ids) or left <= 0:
            break
        await asyncio.sleep(min(POLL, left))  # the product's poll, not a test's synchronisation
    return Outcomes({i: found.get(i, PENDING) for i in message_ids}, clock() - start)
