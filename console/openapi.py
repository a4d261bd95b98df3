"""The OpenAPI 3.1 document of /api/v1 (served at /api/openapi.json; a contract test checks the
API against it with schemathesis). Kept beside the handlers in console/api.py; the bodies' shapes
are in console/openapi_schemas.py."""

from __future__ import annotations

from console.openapi_schemas import (  # the helpers spell schemas here too
    ANY_OBJECT,
    BOOL,
    ID,
    INT,
    RESULT,
    SCHEMAS,
    TIME,
    Schema,
    _obj,
    _page,
    _ref,
    _str,
)


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
        "one event whole, with its order, timeline, postings and messages; an event the worker "
        "has not archived: where it is (retrying, a dead letter…); 404: not seen yet",
        {"oneOf": [_ref("Event"), _ref("EventInFlight")]},
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
    "/api/v1/settlement": _get(
        "settlement now: transfers with their status, what a dry-run `settle match` would post,"
        " the records unmatched or for review, the four invariants, the last balance snapshot"
        " (read only: posting is `settle match --apply`)",
        _ref("Settlement"),
        [],
    ),
    "/api/v1/settlement/report": _get(
        "a month's settlement report, as `settle report --json`: per transfer what it paid,"
        " then the records unmatched or for review",
        _ref("SettlementReport"),
        [
            _param(
                "month",
                "YYYY-MM (default: this month in the zone)",
                schema={"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}$"},
                example="2026-11",
            ),
            _param("tz", "an IANA time zone (default: CONEKTA_LEDGER_TZ)", example="UTC"),
        ],
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
