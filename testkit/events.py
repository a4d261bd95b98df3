"""Conekta-like event builders for tests and benchmarks."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "examples" / "events"
FIXTURES = ROOT / "tests" / "fixtures"

CHARGE_STATUS = {
    "order.paid": "paid",
    "order.pending_payment": "pending_payment",
    "order.declined": "declined",
    "order.expired": "expired",
    "order.canceled": "canceled",
    "order.voided": "voided",
    "order.partially_refunded": "partially_refunded",
    "order.refunded": "refunded",
}
# (refund id, amount in positive cents, created_at[, Conekta's status])
RefundSpec = tuple[str, int, int] | tuple[str, int, int, str]


def new_event_id(created_at: int = 1_700_000_000) -> str:
    """Like Conekta's: the first 8 hex digits are created_at."""
    return f"{created_at:08x}" + secrets.token_hex(8)


def order_event_document(
    event_type: str,
    order_id: str,
    *,
    event_id: str | None = None,
    created_at: int = 1_700_000_000,
    amount: int = 10_000,
    fee: int | None = 500,
    charge_id: str | None = None,
    customer_id: str | None = "cus_test",
    email: str | None = "Buyer@Example.com",
    currency: str = "MXN",
    refunds: tuple[RefundSpec, ...] = (),
    livemode: bool = False,
) -> dict[str, Any]:
    charge = charge_document(
        event_type, order_id, charge_id, amount, fee, currency, refunds, livemode
    )
    return {
        "id": event_id or new_event_id(created_at),
        "object": "event",
        "type": event_type,
        "livemode": livemode,
        "created_at": created_at,
        "webhook_status": "pending",
        "webhook_logs": [],
        "data": {
            "object": {
                "id": order_id,
                "object": "order",
                "amount": amount,
                "currency": currency,
                "payment_status": CHARGE_STATUS.get(event_type, "paid"),
                "customer_info": {"customer_id": customer_id, "email": email, "name": "Buyer"},
                "line_items": {
                    "data": [{"name": "Vasija", "sku": "SKU1", "unit_price": amount, "quantity": 1}]
                },
                "metadata": {"ref": order_id},
                "charges": {"object": "list", "data": [charge]},
            },
            "previous_attributes": {},
        },
    }


def charge_document(
    event_type: str,
    order_id: str,
    charge_id: str | None = None,
    amount: int = 10_000,
    fee: int | None = 500,
    currency: str = "MXN",
    refunds: tuple[RefundSpec, ...] = (),
    livemode: bool = False,
) -> dict[str, Any]:
    """A charge; `fee` None leaves the field out (optional in Conekta's current spec)."""
    status = CHARGE_STATUS.get(event_type, "paid")
    document = {
        "id": charge_id or f"ch_{order_id}",
        "object": "charge",
        "livemode": livemode,
        "status": status,
        "amount": amount,
        "fee": fee,
        "currency": currency,
        "order_id": order_id,
        "paid_at": 1_600_000_000 if status in {"paid", "partially_refunded", "refunded"} else None,
        "payment_method": {"object": "card_payment", "last4": "4242", "brand": "visa"},
        "refunds": {"object": "list", "data": [refund_document(*r) for r in refunds]},
    }
    if fee is None:
        del document["fee"]
    return document


def refund_document(rid: str, cents: int, at: int, status: str | None = None) -> dict[str, Any]:
    refund: dict[str, Any] = {"object": "refund", "id": rid, "amount": -cents, "created_at": at}
    if status is not None:
        refund["status"] = status
    return refund


def charge_refunded_event(
    order_id: str,
    *,
    charge_id: str,
    refunds: tuple[RefundSpec, ...],
    amount: int = 10_000,
    fee: int | None = 500,
    event_id: str | None = None,
    created_at: int = 1_700_000_000,
    livemode: bool = False,
) -> bytes:
    charge = charge_document(
        "order.refunded", order_id, charge_id, amount, fee, "MXN", refunds, livemode
    )
    return _envelope("charge.refunded", charge, event_id, created_at, livemode)


def chargeback_event(
    event_type: str,
    chargeback_id: str,
    *,
    charge_id: str,
    event_id: str | None = None,
    created_at: int = 1_700_000_000,
    opened_at: int = 1_700_000_000,
    livemode: bool = False,
    status: str | None = None,
) -> bytes:
    """charge.chargeback.created|updated|under_review|won|lost; `status`: Conekta's status in
    the chargeback object (default: the type's last word)."""
    chargeback = {
        "id": chargeback_id,
        "object": "chargeback",
        "status": status or event_type.rsplit(".", 1)[1],
        "reason": "unrecognized",
        "charge_id": charge_id,
        "created_at": opened_at,
        "evidence_due_by": opened_at + 3 * 86400,
    }
    return _envelope(event_type, chargeback, event_id, created_at, livemode)


def _envelope(
    event_type: str, resource: dict[str, Any], event_id: str | None, created_at: int, live: bool
) -> bytes:
    return orjson.dumps(
        {
            "id": event_id or new_event_id(created_at),
            "object": "event",
            "type": event_type,
            "livemode": live,
            "created_at": created_at,
            "webhook_status": "pending",
            "webhook_logs": [],
            "data": {"object": resource, "previous_attributes": {}},
        }
    )


def order_event(event_type: str, order_id: str, **kwargs: Any) -> bytes:
    return orjson.dumps(order_event_document(event_type, order_id, **kwargs))


def order_of(document: dict[str, Any]) -> dict[str, Any]:
    """The order inside an event document."""
    order: dict[str, Any] = document["data"]["object"]
    return order


def changed_paid_event(change: Callable[[dict[str, Any]], object]) -> bytes:
    """An order.paid event with `change` applied to its document."""
    document = order_event_document("order.paid", "ord_x")
    change(document)
    return orjson.dumps(document)
