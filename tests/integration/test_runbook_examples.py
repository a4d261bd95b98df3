"""The README's runbooks can be tried: examples/runbook/ holds one event that dead-letters and
one that is invalid, and the commands the runbooks show say what the README says they say."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import asyncpg

from core.settings import Settings
from testkit.processes import cli
from testkit.services import publish_events, running_worker
from testkit.wait import wait_for

RUNBOOK = Path(__file__).resolve().parents[2] / "examples" / "runbook"
DEAD = "65f1d0a0c0ffee0000000001"  # dead-letter.order.paid.json: a fee above its charge
INVALID = "65f1d0a0c0ffee0000000002"  # invalid.order.paid.json: the amount as text


async def test_the_runbook_events_dead_letter_and_are_invalid_as_the_readme_says(
    settings: Settings, broker: Any, db: asyncpg.Connection[Any]
) -> None:
    bodies = [(RUNBOOK / name).read_bytes() for name in sorted(p.name for p in RUNBOOK.iterdir())]
    assert len(bodies) == 2
    async with running_worker(settings):
        await publish_events(broker, bodies)

        async def both_seen() -> bool:
            dead = await db.fetchval("SELECT count(*) FROM dead_letters WHERE status = 'dead'")
            invalid = await db.fetchval("SELECT count(*) FROM events WHERE outcome = 'invalid'")
            return bool(dead == 1 and invalid == 1)

        await wait_for(both_seen, what="the dead letter and the invalid event")
        # Runbook: a dead letter
        code, output = await cli(settings, "dlq", "list")
        assert code == 0 and DEAD in output
        assert "permanent (from conekta.orders): UnapplicableEvent: charge" in output
        assert "fee 25000 exceeds its amount" in output
        code, output = await cli(settings, "dlq", "replay", DEAD)
        assert code == 1
        assert f"{DEAD}  dead-lettered again: permanent: UnapplicableEvent" in output
    code, output = await cli(
        settings, "dlq", "purge", DEAD, "--reason", "fee above the charge: asked Conekta", "--yes"
    )
    assert code == 0 and "purged 1 dead letter(s)" in output
    # Runbook: invalid events
    code, output = await cli(settings, "events", "invalid", "list")
    assert code == 0 and INVALID in output and "data.object.amount" in output
    code, output = await cli(settings, "events", "invalid", "replay", INVALID, "--dry-run")
    assert code == 0 and "still invalid" in output
    code, output = await cli(
        settings, "events", "invalid", "purge", INVALID, "--reason", "amount as text", "--yes"
    )
    assert code == 0 and "purged 1 invalid event(s)" in output
    code, output = await cli(settings, "audit", "list")
    assert "dlq.replay" in output and "dlq.purge" in output and "events.purge_invalid" in output
