"""What every command group shares: times as arguments, a one-read store, JSON and progress on
the terminal, confirmation, and Conekta's API client from the settings."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import TypeVar
from zoneinfo import ZoneInfo

import orjson

from core.errors import ApiKeyRejected, BadRequest
from core.settings import Settings
from ops import explore
from store import Store
from worker.conekta_api import ConektaApi

T = TypeVar("T")


class TimeArg(str):
    """A time option as typed, read once the ledger's zone is known (`--tz`, else
    CONEKTA_LEDGER_TZ): `resolve_times` turns it into an aware datetime before any command."""


def parse_time(value: str) -> TimeArg:
    """ISO 8601 or unix seconds (argparse `type`): checked now, so a wrong one is a usage error;
    a bare date, or a time without an offset, is read in the ledger's zone by resolve_times."""
    try:
        explore.parse_time(value)
    except BadRequest as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return TimeArg(value)


def resolve_times(args: argparse.Namespace, tz: ZoneInfo) -> None:
    """Every time option of the command, as an instant read in `tz`."""
    for name, value in vars(args).items():
        if isinstance(value, TimeArg):
            setattr(args, name, explore.parse_time(value, tz))


async def read(settings: Settings, query: Callable[[Store], Awaitable[T]]) -> T:
    """Run one read against the database on a store of its own."""
    async with Store.open(settings.database_url, max_size=1) as store:
        return await query(store)


def when(value: str | datetime | None, settings: Settings) -> str:
    """A time for a person: in the ledger's zone (CONEKTA_LEDGER_TZ), to the second, with the
    zone's name (JSON output keeps ISO 8601)."""
    if not value:
        return "-"
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    local = moment.astimezone(settings.ledger_tz)
    return local.strftime("%Y-%m-%d %H:%M:%S ") + (local.tzname() or "")


def print_json(value: object) -> None:
    sys.stdout.write(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode() + "\n")


def progress_line(n: int, total: int) -> None:
    """A long action's progress on stderr, now and then."""
    if n % 500 == 0 or n == total:
        print(f"... {n}/{total}", file=sys.stderr)


async def confirm(question: str) -> bool:
    answer = await asyncio.to_thread(input, f"{question} [y/N] ")
    return answer.strip().lower() in {"y", "yes"}


@contextlib.asynccontextmanager
async def conekta_api(settings: Settings) -> AsyncIterator[ConektaApi]:
    """Conekta's API with the configured key (CONEKTA_API_URL, CONEKTA_API_KEY)."""
    if not settings.conekta_api_key:
        raise ApiKeyRejected("set CONEKTA_API_KEY to a Conekta private key (key_...)")
    async with ConektaApi.open(settings.conekta_api_url, settings.conekta_api_key) as api:
        yield api
