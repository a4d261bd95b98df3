"""The OpenAPI 3.1 document of /api/v1 (served at /api/openapi.json; a contract test checks the
API against it with schemathesis). Kept beside the handlers in console/api.py."""

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


def _param(
    name: str,
    description: str,
    where: str = "query",
    schema: Schema | None = None,
    example: str | None = None,
) -> Schema:
    param = {
        "name": name,
        "in": where,
        "required": where == "path",
        "description": description,
        "schema": schema or {"type": "string", "maxLength": 200},
    }
    if example:
        param["example"] = example  # a sample event's: the contract test archives the samples
    return param


def _json(schema: Schema) -> Schema:
    return {"content": {"application/json": {"schema": schema}}}


ERRORS = {
    str(code): {"description": text, **_json(_ref("Error"))}
    for code, text in (
        (400, "a filter, cursor or body the API cannot use"),
        (401, "not logged in (HTTP Basic or the session cookie)"),
        (
            403,
            "a viewer asked for an operator's action, a cookie call without X-CSRF-Token, "
            "or a state-changing call whose Origin is another site",
        ),
        (429, "too many failed logins"),
        (503, "the database (or, for broker actions, RabbitMQ) is unreachable"),
    )
}
NOT_JSON = {"415": {"description": "a POST body not application/json", **_json(_ref("Error"))}}
NOT_FOUND = {"404": {"description": "no such thing", **_json(_ref("Error"))}}
LIMIT = {"type": "integer", "minimum": 1, "maximum": 200}
CURSOR = _param("cursor", "the `next` of the previous page", schema={"type": "string"})
MODE = _param(
    "mode", "only live or only test money (default: both)", schema={"enum": ["live", "test"]}
)
ORDER_MODE = {**MODE, "description": "this mode's order (default: the live one, else the test)"}


def _get(summary: str, schema: Schema, params: list[Schema], extra: Schema | None = None) -> Schema:
    return {
        "get": {
            "summary": summary,
            "parameters": params,
            "responses": {"200": {"description": "OK", **_json(schema)}, **ERRORS, **(extra or {})},
        }
    }


def _post(summary: str, body: Schema, schema: Schema) -> Schema:
    return {
        "post": {
            "summary": summary,
            "requestBody": {"required": True, **_json(body)},
            "responses": {"200": {"description": "OK", **_json(schema)}, **ERRORS, **NOT_JSON},
        }
    }


PATHS: dict[str, Schema] = {
    "/api/v1/me": _get("who is asking", _ref("Me"), []),
    "/api/v1/overview": _get(
        "the last 24 h per outcome, queue depths, outbox", _ref("Overview"), []
    ),
    "/api/v1/events": _get(
        "search archived events, newest first",
        _page(_ref("EventSummary")),
        [
            _param("event_id", "an event id"),
            _param("order_id", "an order id"),
            _param("customer", "a customer id, e-mail or name (of any event of the order)"),
            _param("type", "an event type"),
            _param("outcome", "an archive outcome"),
            _param("since", "Conekta created_at >= since", schema=TIME),
            _param("until", "Conekta created_at < until", schema=TIME),
            CURSOR,
            _param("limit", "page size", schema=LIMIT),
        ],
    ),
    "/api/v1/events/{event_id}": _get(
        "one event whole, with its order, timeline, postings and messages",
        _ref("Event"),
        [_param("event_id", "the event id", "path", example="637e79cb70d06300013ea169")],
        NOT_FOUND,
    ),
    "/api/v1/events/replay": _post(
        "re-apply archived events through the worker's path (operator; idempotent)",
        {
            "type": "object",
            "properties": {
                "since": TIME,
                "until": TIME,
                "type": _str(),
                "order_id": _str(),
                "outcome": {"enum": ["invalid"], "description": "judge invalid events again"},
            },
        },
        _obj({"replayed": INT, "outcomes": {"type": "object", "additionalProperties": INT}}),
    ),
    "/api/v1/orders": _get(
        "orders, most recently changed first",
        _page(_ref("Order")),
        [
            _param("status", "an order status"),
            _param("customer", "a customer id, e-mail or name (of any event of the order)"),
            CURSOR,
            _param("limit", "page size", schema=LIMIT),
        ],
    ),
    "/api/v1/orders/{order_id}": _get(
        "one order: status, last_change, timeline, postings, chargebacks, messages",
        _ref("Order"),
        [_param("order_id", "the order id", "path", example="ord_2su3ENUyByXnjb15N"), ORDER_MODE],
        NOT_FOUND,
    ),
    "/api/v1/ledger/balances": _get(
        "balances by mode, currency and account, in cents, signed to each account's normal side",
        _obj({"as_of": _str(True), "balances": {"type": "array", "items": _ref("Balance")}}),
        [_param("as_of", "money that moved at or before this time (default: now)", schema=TIME)],
    ),
    "/api/v1/ledger/entries": _get(
        "ledger entries by when the money moved (debit positive, credit negative)",
        _page(_ref("Entry")),
        [
            _param("account", "an account"),
            _param("currency", "a currency"),
            _param("since", "the money moved (effective_at) at or after", schema=TIME),
            _param("until", "the money moved before", schema=TIME),
            MODE,
            CURSOR,
            _param("limit", "page size", schema=LIMIT),
        ],
    ),
    "/api/v1/ledger/entries.csv": {
        "get": {
            "summary": "the same entries, every page, as CSV",
            "parameters": [
                _param("account", "an account"),
                _param("currency", "a currency"),
                _param("since", "the money moved (effective_at) at or after", schema=TIME),
                _param("until", "the money moved before", schema=TIME),
                MODE,
            ],
            "responses": {
                "200": {
                    "description": "CSV, header first",
                    "content": {"text/csv": {"schema": {"type": "string"}}},
                },
                **ERRORS,
            },
        }
    },
    "/api/v1/ledger/verify": _get(
        "check every ledger invariant",
        _obj({"ok": BOOL, "checks": {"type": "array", "items": ANY_OBJECT}}),
        [],
    ),
    "/api/v1/dead-letters": _get(
        "dead letters, with why and how many attempts",
        _obj({"items": {"type": "array", "items": _ref("DeadLetter")}}),
        [
            _param("type", "an event type"),
            _param("kind", "an error kind"),
            _param("order_id", "an order id"),
        ],
    ),
    "/api/v1/dead-letters/{id}": _get(
        "one dead letter whole: headers and body",
        ANY_OBJECT,
        [_param("id", "the event id", "path")],
        NOT_FOUND,
    ),
    "/api/v1/dead-letters/replay": _post(
        "replay dead letters (operator; dry_run previews; audited)", _ref("Selection"), RESULT
    ),
    "/api/v1/dead-letters/purge": _post(
        'purge dead letters for good (operator; needs reason and confirm "purge N"; audited)',
        _ref("Selection"),
        RESULT,
    ),
    "/api/v1/invalid-events": _get(
        "events archived invalid (signed, not usable), with the reason; Conekta's order",
        _page(_ref("InvalidEvent")),
        [
            _param("type", "an event type"),
            _param("since", "Conekta created_at >= since", schema=TIME),
            _param("until", "Conekta created_at < until", schema=TIME),
            CURSOR,
            _param("limit", "page size", schema=LIMIT),
        ],
    ),
    "/api/v1/invalid-events/replay": _post(
        "judge invalid events again (operator; dry_run previews each verdict; audited)",
        _ref("InvalidSelection"),
        RESULT,
    ),
    "/api/v1/invalid-events/purge": _post(
        "purge invalid events: tombstones, bodies kept"
        ' (operator; needs reason and confirm "purge N"; audited)',
        _ref("InvalidSelection"),
        RESULT,
    ),
    "/api/v1/fulfillment/subscribers": _get(
        "each configured fulfillment subscriber's queue: ready, consumers, dead letters",
        _obj({"items": {"type": "array", "items": _ref("FulfillmentSubscriber")}}),
        [],
    ),
    "/api/v1/fulfillment/replay": _post(
        "publish outbox messages again to ONE subscriber's queue"
        " (operator; dry_run counts; same message ids; audited)",
        _ref("FulfillmentReplay"),
        _ref("FulfillmentReplayResult"),
    ),
    "/api/v1/audit": _get(
        "the audit trail, newest first",
        _page(_ref("AuditEntry")),
        [
            _param("actor", "who"),
            _param("action", "what, e.g. dlq.replay"),
            _param("before_id", "the `next` of the previous page", schema=ID),
            _param("limit", "page size", schema=LIMIT),
        ],
    ),
}


def document() -> Schema:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "conekta-ingest admin API",
            "version": "1",
            "description": "For the people on call: the same actions as the console and the CLI."
            " A time without an offset (a bare date) is in the ledger's zone (CONEKTA_LEDGER_TZ).",
        },
        "security": [{"basic": []}, {"session": []}],
        "paths": PATHS,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "basic": {"type": "http", "scheme": "basic"},
                "session": {"type": "apiKey", "in": "cookie", "name": "conekta_console"},
            },
        },
    }
