"""Every outcome the archive can record for an event: one enum, one home."""

from __future__ import annotations

from enum import StrEnum


class Outcome(StrEnum):
    APPLIED = "applied"  # the order changed
    DUPLICATE = "duplicate"  # same change as already applied (another event id, same status)
    STALE = "stale"  # older than, or overruled by, what the order already shows
    REDELIVERED = "redelivered"  # the event id is archived already (a redelivery or a resend)
    IGNORED = "ignored"  # no handler for this type yet: archived, replayable later
    INVALID = "invalid"  # signed, but not a usable event (the reason names the field): kept
    PURGED = "purged"  # a dead letter an operator purged: a resend is not applied (tombstone)
    OTHER_MODE = "other_mode"  # livemode not accepted here (CONEKTA_ACCEPT_MODES): archived only
    # Its DIGEST did not verify with any configured key (not from a receiver that checked it):
    # kept with the reason under a key of its own (domain.archive), moved nothing
    UNVERIFIED = "unverified"
