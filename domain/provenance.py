"""Where a movement of money came from; pure. Nothing moves money unless Conekta said so.

- `signed`: a webhook body whose DIGEST the applying process verified against Conekta's keys
  (the receiver's check is not trusted: anything that can publish to the events exchange could
  have sent it);
- `api`: fetched from Conekta's API by the process that applied it (reconcile, `orders verify
  --fix`); a header on the events exchange saying so is never believed;
- `attested:<user>`: an operator's word (`orders record FILE`): audited, and listed by
  `ledger verify --provenance` until a signed event or an API record confirms it.

Archive rows and postings carry it; NULL on rows written before provenance was recorded.
"""

from __future__ import annotations

SIGNED = "signed"
API = "api"
ATTESTED_PREFIX = "attested:"
VERIFIED = frozenset({SIGNED, API})  # what confirms an attested posting


def attested(user: str) -> str:
    """The provenance of an operator's word."""
    if not user:
        raise ValueError("an attestation names its user")
    return ATTESTED_PREFIX + user


def is_attested(provenance: str | None) -> bool:
    return provenance is not None and provenance.startswith(ATTESTED_PREFIX)


def is_known(provenance: str | None) -> bool:
    return provenance in VERIFIED or is_attested(provenance)
