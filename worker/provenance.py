"""The worker's own check that Conekta signed what it applies (domain.provenance).

The receiver checks each webhook's DIGEST, but anything that can publish to the events exchange
(the receiver's broker user: the one internet-facing part) could send a body no one checked. So
the worker verifies the DIGEST archived with each body (the `request` header, core.request)
against Conekta's keys again before applying it: the receiving keys (CONEKTA_WEBHOOK_KEYS) and
keys retired from receiving that stay good for what they signed
(CONEKTA_WEBHOOK_VERIFY_ONLY_KEYS). One RSA-2048 verification costs ~30-60 µs per event.

A body that fails is archived `unverified` with the reason, under a key of its own
(`unverified:<sha256 of the body>`): it moves nothing and does not claim its event id, so
Conekta's genuine delivery of that id is applied normally later.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from core.event import UNKNOWN_TYPE, peek
from core.verifier import Verifier
from domain.archive import ArchiveRow
from domain.outcome import Outcome
from domain.provenance import API, SIGNED, is_attested

UNVERIFIED_PREFIX = "unverified:"


def unverified_row(
    body: bytes,
    received_at: datetime | None,
    reason: str,
    request: Mapping[str, Any] | None = None,
) -> ArchiveRow:
    """The archive row of a body whose DIGEST failed; never raises. Its key is not the event's
    id (which stays free for Conekta's genuine delivery): the id goes in `original_id`."""
    seen = peek(body)
    original = seen.original_id
    if original is None and not seen.key.startswith("body:"):
        original = seen.key  # a plain id is its own key
    return ArchiveRow(
        event_id=UNVERIFIED_PREFIX + hashlib.sha256(body).hexdigest(),
        type=seen.type or UNKNOWN_TYPE,
        order_id=None,
        livemode=bool(seen.livemode),
        created_at=seen.created_at or received_at or datetime.now(UTC),
        received_at=received_at,
        outcome=Outcome.UNVERIFIED,
        body=body,
        original_id=original,
        reason=reason,
        request=request,
    )


def vouch(
    verifier: Verifier, body: bytes, request: Mapping[str, Any] | None, provenance: str | None
) -> str | None:
    """The provenance an archived body is applied with again (a replay), or None when
    nothing vouches for it: our own record (`api`, attested) stays what it was; anything
    else only if its DIGEST verifies now (the archived column alone is not believed)."""
    if provenance == API or is_attested(provenance):
        return provenance
    return SIGNED if verifier.reason(body, request) is None else None
