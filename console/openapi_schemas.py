"""The shapes of the admin API's bodies (components.schemas of the OpenAPI document that
console/openapi.py builds), and the helpers that spell them."""

from __future__ import annotations

from typing import Any

from domain.outcome import Outcome

Schema = dict[str, Any]


def _str(nullable: bool = False) -> Schema:
    return {"type": ["string", "null"]} if nullable else {"type": "string"}


def _obj(required: dict[str, Schema], optional: dict[str, Schema] | None = None) -> Schema:
    return {
        "type": "object",
        "required": list(required),
        "properties": {**required, **(optional or {})},
    }


def _page(item: Schema) -> Schema:
    return _obj({"items": {"type": "array", "items": item}, "next": _str(nullable=True)})


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


INT = {"type": "integer"}
BOOL = {"type": "boolean"}
ID = {"type": "integer", "minimum": 0}
RESULT = {"$ref": "#/components/schemas/ActionResult"}
ANY_OBJECT = {"type": "object"}
STRS = {"type": "array", "items": {"type": "string"}}
TIME = {"type": "string", "maxLength": 40, "description": "ISO 8601 or unix seconds"}

SCHEMAS: dict[str, Schema] = {
    "Error": _obj({"error": _str()}),
    "Me": _obj({"name": _str(), "role": {"enum": ["viewer", "operator"]}}),
    "Overview": _obj(
        {
            "since": _str(),
            "outcomes_24h": {"type": "object", "additionalProperties": INT},
            "queues": {"type": "object", "additionalProperties": {"type": ["integer", "null"]}},
            "outbox_backlog": INT,
            "dead_letters_open": INT,
            "in_flight": {
                "type": "array",
                "items": _obj(
                    {"error_kind": _str(), "sent_to": _str(), "events": INT, "oldest": _str()}
                ),
            },
            "last_reconcile": {
                "oneOf": [
                    _obj(
                        {
                            "id": INT,
                            "started_at": _str(),
                            "finished_at": _str(True),
                            "since": _str(),
                            "until": _str(),
                            "livemode": {"type": ["boolean", "null"]},
                            "counts": ANY_OBJECT,
                        }
                    ),
                    {"type": "null"},
                ]
            },
        }
    ),
    "EventSummary": _obj(
        {
            "event_id": _str(),
            "type": _str(),
            "order_id": _str(True),
            "livemode": BOOL,
            "created_at": _str(),
            "received_at": _str(True),
            "applied_at": _str(),
            "outcome": {"enum": [o.value for o in Outcome]},
            "customer_key": _str(True),
        }
    ),
    "Posting": _obj(
        {
            "id": INT,
            "business_key": _str(),
            "kind": _str(),
            "charge_id": _str(),
            "currency": _str(),
            "event_id": _str(),
            "created_at": _str(),
            "entries": {
                "type": "array",
                "items": _obj({"account": _str(), "amount": INT}),
            },
        }
    ),
    "Order": _obj(
        {
            "id": _str(),
            "status": _str(),
            "amount": INT,
            "currency": _str(),
            "customer_key": _str(True),
            "livemode": BOOL,
            "updated_at": _str(),
        },
        {
            "events": {"type": "array", "items": ANY_OBJECT},
            "postings": {"type": "array", "items": _ref("Posting")},
            "refunds": {"type": "array", "items": _ref("Posting")},
            "chargebacks": {"type": "array", "items": _ref("Chargeback")},
            "last_change": {"oneOf": [ANY_OBJECT, {"type": "null"}]},  # newest applied event
            "messages": {"type": "array", "items": ANY_OBJECT},
        },
    ),
    "Chargeback": _obj(  # with its postings (chargeback_opened, chargeback_won, chargeback_lost)
        {"id": _str(), "status": _str(), "amount": INT, "charge_id": _str()},
        {"postings": {"type": "array", "items": _ref("Posting")}},
    ),
    # What the archive kept of the webhook's HTTP request (core/request.py); null before it was
    # recorded, and for events fetched from Conekta's Events API (reconcile).
    "WebhookRequest": _obj(
        {"remote": _str(True), "headers": {"type": "object", "additionalProperties": _str()}}
    ),
    "EventInFlight": _obj(
        {
            "state": {"enum": ["retrying", "dead_lettering", "dead_letter", "replayed", "purged"]},
            "event_id": _str(),
            "type": _str(True),
            "error_kind": _str(),
            "error": _str(),
            "attempt": INT,
            "summary": _str(),
        },
        {"next_attempt_at": _str(True), "queue": _str()},
    ),
    "Event": _obj(
        {
            "event_id": _str(),
            "type": _str(),
            "outcome": _str(),
            "outcome_meaning": _str(),
            "created_at": _str(),
            "body": {},
            "order": {"oneOf": [_ref("Order"), {"type": "null"}]},
            "request": {"oneOf": [_ref("WebhookRequest"), {"type": "null"}]},
        }
    ),
    "Balance": _obj(
        {"livemode": BOOL, "account": _str(), "type": _str(), "currency": _str()}
        | {"balance": INT, "reading": _str()}  # type: asset, liability, equity, revenue, expense
    ),
    "Entry": _obj(
        {
            "id": INT,
            "effective_at": _str(),
            "occurred_at": _str(),
            "recorded_at": _str(),
            "livemode": BOOL,
            "business_key": _str(),
            "kind": _str(),
            "order_id": _str(True),
            "charge_id": _str(True),
            "event_id": _str(True),
            "account": _str(),
            "currency": _str(),
            "amount": INT,
        }
    ),
    "DeadLetter": _obj(
        {
            "id": _str(),
            "type": _str(),
            "order_id": _str(True),
            "kind": _str(),
            "reason": _str(),
            "attempts": INT,
            "first_failed_at": _str(True),
            "last_failed_at": _str(True),
            "source_queue": _str(),
            "dead_at": _str(True),
        }
    ),
    "Selection": {
        "type": "object",
        "description": "Exactly one of: ids, all, or filters (type, kind, order_id).",
        "properties": {
            "ids": {"type": "array", "items": _str()},
            "all": BOOL,
            "type": _str(),
            "kind": _str(),
            "order_id": _str(),
            "dry_run": BOOL,
            "reason": _str(),
            "confirm": {"type": "string", "description": 'purge only: "purge N"'},
            "wait": {"type": "number", "minimum": 0, "maximum": 120},  # replay: s (30), 0: none
        },
    },
    "ActionResult": _obj(
        {
            "action": {"enum": ["replay", "purge"]},
            "dry_run": BOOL,
            "matched": {
                "type": "array",
                "items": {"oneOf": [_ref("DeadLetter"), _ref("InvalidEvent")]},
                "description": "the first 500 (matched_count and totals count every one)",
            },
            "totals": {
                "type": "object",
                "additionalProperties": INT,
                "description": "per verdict (dry run) or outcome (replayed, purged...)",
            },
            "done": {"type": "array", "items": _str(), "description": "the first 1,000 keys"},
            "not_found": {"type": "array", "items": _str()},
            "audit_id": {"type": ["integer", "null"]},
            "matched_count": INT,
            "done_count": INT,
        },
        {"outcomes": ANY_OBJECT, "went_back": STRS, "pending": STRS, "waited": {"type": "number"}},
    ),
    "FulfillmentSubscriber": _obj(
        {
            "name": _str(),
            "queue": _str(),
            "exists": BOOL,
            "messages": INT,
            "consumers": INT,
            "dead_letter_queue": _str(),
            "dead_letters": {"type": ["integer", "null"]},
        }
    ),
    "FulfillmentReplay": {
        "type": "object",
        "description": "Published outbox messages to send again to one configured subscriber's"
        " queue (conekta.fulfillment.<name>), filtered by when they were written, type, order.",
        "required": ["queue"],
        "properties": {
            "queue": _str(),
            "since": TIME,
            "until": TIME,
            "type": _str(),
            "order_id": _str(),
            "dry_run": BOOL,
            "reason": _str(),
        },
    },
    "FulfillmentReplayResult": _obj(
        {
            "queue": _str(),
            "dry_run": BOOL,
            "matched": INT,
            "published": INT,
            "done_count": INT,
            "by_type": {"type": "object", "additionalProperties": INT},
            "audit_id": {"type": ["integer", "null"]},
        }
    ),
    "InvalidEvent": _obj(
        {
            "event_id": _str(),
            "original_id": _str(True),
            "type": _str(),
            "order_id": _str(True),
            "reason": _str(True),
            "created_at": _str(),
            "received_at": _str(True),
            "applied_at": _str(True),
        },
        {
            "verdict": {
                "enum": ["applied", "invalid", "ignored", "other_mode", "unverified"],
                "description": "dry run: what judging the body again would archive now",
            },
            "note": _str(),
            "outcome": {"type": "string", "description": "replay: the outcome archived"},
        },
    ),
    "InvalidSelection": {
        "type": "object",
        "description": "Exactly one of: ids (archive keys), all, or filters (type, since, until).",
        "properties": {
            "ids": {"type": "array", "items": _str()},
            "all": BOOL,
            "type": _str(),
            "since": {"type": "string", "maxLength": 40, "description": "created_at >= since"},
            "until": {"type": "string", "maxLength": 40, "description": "created_at < until"},
            "dry_run": BOOL,
            "reason": _str(),
            "confirm": {"type": "string", "description": 'purge only: "purge N"'},
        },
    },
    "AuditEntry": _obj(
        {
            "id": INT,
            "at": _str(),
            "actor": _str(),
            "action": _str(),
            "count": INT,
            "target": _str(),
            "reason": _str(),
            "details": ANY_OBJECT,
        }
    ),
}

NULLABLE_INT = {"type": ["integer", "null"]}
SETTLEMENT_ITEM = {
    "source": _str(),
    "id": _str(),
    "livemode": BOOL,
    "type": _str(),
    "currency": _str(),
    "amount": INT,
    "at": _str(),
    "state": _str(),
    "note": _str(),
    "keys": STRS,
    "age_days": INT,
}
PAID_SUMS = ("charges", "refunds", "chargebacks", "fees", "tax", "adjustments", "difference")
SCHEMAS |= {
    "SettlementItem": _obj(SETTLEMENT_ITEM, {"to_post": STRS}),
    "SettlementTransfer": _obj(
        {
            "transfer": _str(),
            "livemode": BOOL,
            "currency": _str(),
            "amount": INT,
            "created_at": _str(),
            "statement_reference": _str(True),
            "conekta_status": _str(True),
            "status": {"enum": ["sent", "in_transit", "landed", "reversed"]},
            "bank_date": _str(True),
            "business_days": {**NULLABLE_INT, "description": "sent or in transit: for how long"},
            "to_post": STRS,
        }
    ),
    "SettlementPosting": _obj(
        {
            "business_key": _str(),
            "kind": _str(),
            "livemode": BOOL,
            "currency": _str(),
            "effective_at": _str(),
            "amount": INT,
            "order_id": _str(True),
            "charge_id": _str(True),
            "entries": {"type": "object", "additionalProperties": INT},
        }
    ),
    "SettlementBalance": _obj(
        {"livemode": BOOL, "currency": _str(), "taken_at": _str()}
        | dict.fromkeys(("ledger", "conekta", "available", "pending", "retained"), INT)
    ),
    "Settlement": _obj(
        {
            "mode": {"enum": ["live", "test"]},
            "time_zone": _str(),
            "transfers": {"type": "array", "items": _ref("SettlementTransfer")},
            "to_post": {"type": "array", "items": _ref("SettlementPosting")},
            "items": {"type": "array", "items": _ref("SettlementItem")},
            "invariants": _obj(
                {
                    "ok": BOOL,
                    "checks": {
                        "type": "array",
                        "items": _obj(
                            {"invariant": INT, "rule": _str(), "ok": BOOL, "broken": STRS}
                        ),
                    },
                }
            ),
            "balances": {"type": "array", "items": _ref("SettlementBalance")},
        }
    ),
    "SettlementReport": _obj(
        {
            "month": _str(),
            "time_zone": _str(),
            "rule": _str(),
            "transfers": {
                "type": "array",
                "items": _obj(
                    {
                        "transfer": _str(),
                        "livemode": BOOL,
                        "currency": _str(),
                        "created_at": _str(),
                        "amount": INT,
                        "statement_reference": _str(True),
                        "transactions": STRS,
                        "status": _str(),
                        "bank_date": _str(True),
                    }
                    | dict.fromkeys(PAID_SUMS, INT)
                ),
            },
            "unmatched": {"type": "array", "items": _ref("SettlementItem")},
        }
    ),
}
