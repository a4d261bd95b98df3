"""The client of Conekta's own API, read-only: its list of events, its orders, and the money's
record (transactions, transfers, balance) for settlement.

Every request has bounded timeouts; `429` waits as long as `Retry-After` says, `5xx`, timeouts
and lost connections back off (core.backoff) and try again a few times, then raise
`ConektaApiUnavailable`. A refused key (`401`/`403`) raises `ApiKeyRejected` at once: retrying
cannot fix it. The key is sent as `Authorization: Bearer` and never logged.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
import structlog

from core import backoff
from core.errors import ApiKeyRejected, ConektaApiUnavailable

log = structlog.get_logger(__name__)

ACCEPT = "application/vnd.conekta-v2.2.0+json"
PAGE_LIMIT = 100
ATTEMPTS = 6
MAX_RETRY_AFTER = 60.0  # a Retry-After above this is capped: the run must end eventually
TIMEOUT = aiohttp.ClientTimeout(total=30, connect=10, sock_read=20)


@dataclass(frozen=True)
class EventsPage:
    events: list[dict[str, Any]]
    has_more: bool


class ConektaApi:
    def __init__(self, session: aiohttp.ClientSession, base_url: str, *, retry_base: float = 0.5):
        self._session = session
        self._base = base_url.rstrip("/")
        self._retry_base = retry_base

    @classmethod
    @asynccontextmanager
    async def open(
        cls, base_url: str, key: str, *, retry_base: float = 0.5
    ) -> AsyncIterator[ConektaApi]:
        headers = {"Authorization": f"Bearer {key}", "Accept": ACCEPT}
        async with aiohttp.ClientSession(headers=headers, timeout=TIMEOUT) as session:
            yield cls(session, base_url, retry_base=retry_base)

    async def events(self, *, limit: int = PAGE_LIMIT) -> AsyncIterator[EventsPage]:
        """Pages of events, newest first, following `next` (the last id of a page) back in time."""
        async for page in self._pages("/events", limit):
            yield page

    async def transactions(self, *, limit: int = PAGE_LIMIT) -> AsyncIterator[EventsPage]:
        """Pages of Conekta's transactions (`transaction_response`), newest first."""
        async for page in self._pages("/transactions", limit):
            yield page

    async def transfers(self, *, limit: int = PAGE_LIMIT) -> AsyncIterator[EventsPage]:
        """Pages of Conekta's transfers to the merchant's bank, newest first."""
        async for page in self._pages("/transfers", limit):
            yield page

    async def balance(self) -> dict[str, Any]:
        """The merchant's balance now (available, pending, retained, ... per currency)."""
        document = await self._get("/balance", {})
        if document is None:
            raise ConektaApiUnavailable("GET /balance: 404")
        return document

    async def _pages(self, path: str, limit: int) -> AsyncIterator[EventsPage]:
        """A cursor list's pages (`data`, `has_more`), following `next` (a page's last id)."""
        params: dict[str, str] = {"limit": str(limit)}
        while True:
            document = await self._get(path, params)
            assert document is not None  # a list itself is never 404
            records = [e for e in document.get("data") or [] if isinstance(e, dict)]
            page = EventsPage(records, bool(document.get("has_more")) and bool(records))
            yield page
            if not page.has_more:
                return
            params = {"limit": str(limit), "next": str(records[-1]["id"])}

    async def order(self, order_id: str) -> dict[str, Any] | None:
        """The whole order as Conekta has it now; None when Conekta does not know it."""
        return await self._get(f"/orders/{order_id}", {})

    async def _get(self, path: str, params: Mapping[str, str]) -> dict[str, Any] | None:
        for attempt in range(1, ATTEMPTS + 1):
            answer = await self._try(path, params)
            if answer.retry is None:
                return answer.document
            if attempt == ATTEMPTS:
                raise ConektaApiUnavailable(f"GET {path}: {answer.retry} ({ATTEMPTS} attempts)")
            delay = backoff.delay(attempt, base=self._retry_base, cap=30.0)
            if answer.retry_after is not None:  # Conekta said how long: at least that
                delay = min(max(answer.retry_after, delay), MAX_RETRY_AFTER)
            log.warning("conekta api retry", path=path, attempt=attempt, error=answer.retry)
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    async def _try(self, path: str, params: Mapping[str, str]) -> _Answer:
        try:
            async with self._session.get(self._base + path, params=params) as response:
                if response.status in (401, 403):
                    raise ApiKeyRejected(
                        f"Conekta's API refused the key ({response.status}): "
                        "check CONEKTA_API_KEY (a private key, key_...) and CONEKTA_API_URL"
                    )
                if response.status == 429:
                    return _Answer(retry="429 rate limited", retry_after=_seconds(response))
                if response.status >= 500:
                    return _Answer(retry=f"{response.status} from Conekta")
                if response.status == 404 and path.startswith("/orders/"):
                    return _Answer()
                if response.status != 200:
                    text = (await response.text())[:200]
                    raise ConektaApiUnavailable(f"GET {path}: {response.status} {text}")
                return _Answer(document=orjson.loads(await response.read()))
        except (aiohttp.ClientError, TimeoutError, orjson.JSONDecodeError) as exc:
            return _Answer(retry=f"{type(exc).__name__}: {exc}")


@dataclass(frozen=True)
class _Answer:
    """One response: a document (None: 404), or why to retry and how long Conekta asked."""

    document: dict[str, Any] | None = None
    retry: str | None = None
    retry_after: float | None = None


def _seconds(response: aiohttp.ClientResponse) -> float | None:
    """Retry-After in seconds (the HTTP-date form is rare for APIs: back off instead)."""
    value = response.headers.get("Retry-After")
    try:
        return max(float(value), 0.0) if value is not None else None
    except ValueError:
        return None
