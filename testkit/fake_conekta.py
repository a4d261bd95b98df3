"""A local fake of Conekta's API (aiohttp): `GET /events`, `/transactions` and `/transfers`
pages, `GET /orders/{id}`, `GET /balance`, and rate limits and errors on demand. For tests,
and to try `conekta-ingest reconcile` by hand:

    python -m testkit.fake_conekta --port 8099     # serves examples/events, re-dated to today
    CONEKTA_API_URL=http://127.0.0.1:8099 CONEKTA_API_KEY=key_fake conekta-ingest reconcile

Pages have the shape of Conekta's (tests/fixtures/events_list_page.json): newest first,
`has_more`, `next_page_url`; `?next=ID` continues after that event.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from testkit.events import SAMPLES, new_event_id
from testkit.services import free_port

DEFAULT_KEY = "key_fake"


@dataclass
class Failure:
    status: int
    retry_after: str | None = None


@dataclass
class FakeConekta:
    key: str = DEFAULT_KEY
    events: list[dict[str, Any]] = field(default_factory=list)
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    transactions: list[dict[str, Any]] = field(default_factory=list)  # transaction_response
    transfers: list[dict[str, Any]] = field(default_factory=list)  # transfers_response
    balance: dict[str, Any] = field(default_factory=dict)  # balance_response
    failures: list[Failure] = field(default_factory=list)  # answered first, one per request
    requests: list[str] = field(default_factory=list)  # path?query of every request
    max_limit: int = 250
    hold: asyncio.Event | None = None  # when given, requests wait until it is set (a slow API)
    holding: asyncio.Event = field(default_factory=asyncio.Event)  # set once a request waits

    def add_event(self, document: dict[str, Any]) -> None:
        """An event Conekta knows; an order event also makes its order known (the latest)."""
        self.events.append(document)
        resource = document.get("data", {}).get("object") or {}
        if resource.get("object") == "order":
            self.orders[resource["id"]] = resource

    def fail(self, status: int, times: int = 1, retry_after: str | None = None) -> None:
        self.failures.extend(Failure(status, retry_after) for _ in range(times))

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._gate])
        app.router.add_get("/events", self._events)
        app.router.add_get("/orders/{order_id}", self._order)
        app.router.add_get("/transactions", self._transactions)
        app.router.add_get("/transfers", self._transfers)
        app.router.add_get("/balance", self._balance)
        return app

    @web.middleware
    async def _gate(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests.append(request.path_qs)
        if request.headers.get("Authorization") != f"Bearer {self.key}":
            return _error(401, "authentication_error", "Please include your access key.")
        if self.hold is not None:
            self.holding.set()
            await self.hold.wait()
        if self.failures:
            failure = self.failures.pop(0)
            headers = {"Retry-After": failure.retry_after} if failure.retry_after else {}
            return _error(failure.status, "api_error", "injected failure", headers)
        response: web.StreamResponse = await handler(request)
        return response

    async def _events(self, request: web.Request) -> web.Response:
        return _page(request, self.events, self.max_limit)

    async def _transactions(self, request: web.Request) -> web.Response:
        return _page(request, self.transactions, self.max_limit)

    async def _transfers(self, request: web.Request) -> web.Response:
        return _page(request, self.transfers, self.max_limit)

    async def _balance(self, request: web.Request) -> web.Response:
        return _json(self.balance)

    async def _order(self, request: web.Request) -> web.Response:
        order = self.orders.get(request.match_info["order_id"])
        if order is None:
            return _error(404, "resource_not_found_error", "The resource was not found.")
        return _json(order)


def _page(request: web.Request, records: list[dict[str, Any]], max_limit: int) -> web.Response:
    """One page of a cursor list, newest first; `?next=ID` continues after that record."""
    limit = min(int(request.query.get("limit", "20")), max_limit)
    ordered = sorted(records, key=lambda e: (e["created_at"], e["id"]), reverse=True)
    start = 0
    if after := request.query.get("next"):
        ids = [e["id"] for e in ordered]
        start = ids.index(after) + 1 if after in ids else len(ids)
    page = ordered[start : start + limit]
    has_more = start + limit < len(ordered)
    base = f"{request.scheme}://{request.host}{request.path}?limit={limit}"
    return _json(
        {
            "object": "list",
            "has_more": has_more,
            "next_page_url": f"{base}&next={page[-1]['id']}" if has_more and page else None,
            "previous_page_url": f"{base}&previous={page[0]['id']}" if start and page else None,
            "data": page,
        }
    )


def _json(
    document: object, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=orjson.dumps(document),
        status=status,
        headers=headers,
        content_type="application/vnd.conekta-v2.2.0+json",
    )


def _error(
    status: int, kind: str, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    body = {"object": "error", "type": kind, "details": [{"message": message}]}
    return _json(body, status, headers)


@contextlib.asynccontextmanager
async def running(fake: FakeConekta, port: int = 0) -> AsyncIterator[str]:
    """The fake on 127.0.0.1 (a free port when 0) until the block ends; yields its base URL."""
    port = port or free_port()
    runner = web.AppRunner(fake.app(), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def samples_today(now: int | None = None) -> list[dict[str, Any]]:
    """The sample events, re-dated into the last hours (new ids: the id carries the time), so
    the default window of a first reconcile (3 days) sees them."""
    now = now or int(time.time())
    files = sorted(SAMPLES.glob("*.json"), key=lambda p: orjson.loads(p.read_bytes())["created_at"])
    events = []
    for n, path in enumerate(files):
        document = orjson.loads(path.read_bytes())
        document["created_at"] = now - 3600 * (len(files) - n)
        document["id"] = new_event_id(document["created_at"])
        events.append(document)
    return events


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=8099)
    parser.add_argument("--key", default=DEFAULT_KEY, help="the API key it accepts")
    args = parser.parse_args()
    fake = FakeConekta(key=args.key)
    for document in samples_today():
        fake.add_event(document)
    print(
        f"fake Conekta API on http://127.0.0.1:{args.port} (key {args.key}), "
        f"{len(fake.events)} events, {len(fake.orders)} orders"
    )
    web.run_app(fake.app(), host="127.0.0.1", port=args.port, print=None)


if __name__ == "__main__":
    main()
