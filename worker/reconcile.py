"""Reconcile with Conekta's own record: every event Conekta lists that the archive lacks is
applied by this process, as fetched (provenance `api`: domain.provenance), through the same
apply path as a webhook. It is not published to the events exchange: the worker believes nothing
there that Conekta did not sign (worker.provenance), and a header saying where a message came
from is something the receiver's broker user could write too.

Webhooks get lost (an outage longer than Conekta's ~24 h of retries, a purge by mistake); its
`GET /events` does not. A run pages the list newest first until events older than its window,
and sorts each event of the window into one of:

- `archived`: the archive has it (nothing to do);
- `backfilled`: missing, applied now (`missing` in a dry run: listed, not applied);
- `in_flight`: backfilled by an earlier run (or published by a version that published), not
  archived: never backfilled twice, so a purge stays a purge;
- `failed`: missing, but could not be applied (a refund whose payment Conekta does not list in
  the window, an event the rules refuse): logged with the reason, left for `reconcile --since`;
- `never_stored`: `webhook_ping`, which the receiver answers and does not keep.

One run at a time (an advisory lock); each run is recorded with its counts (`reconcile_runs`),
and the next run's default window starts where the last successful one ended.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter, defaultdict
from collections.abc import Callable, Collection
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import structlog

from core.errors import ApiKeyRejected, UnapplicableEvent, UnknownCharge
from core.settings import Settings
from domain.plan import ALL_MODES, Incoming
from domain.provenance import API
from store import Store
from store.reconcile import ReconcileSession
from worker import metrics, orders, schedule
from worker.conekta_api import ConektaApi
from worker.judge import judged_row

log = structlog.get_logger(__name__)

PING = "webhook_ping"
FIRST_RUN = timedelta(days=3)  # how far back a first run looks
# Events younger than this are left to their webhook (Conekta's first delivery, its first
# retries): a backfill then means a webhook really was missed, and the alert on it is earned.
SETTLE = timedelta(minutes=5)
# Each window starts a little before the last one ended: our clock is not Conekta's.
OVERLAP = timedelta(minutes=5)
CATEGORIES = ("archived", "backfilled", "missing", "in_flight", "never_stored", "failed")


@dataclass(frozen=True)
class Backfill:
    event_id: str
    type: str
    livemode: bool
    created_at: datetime


@dataclass
class Report:
    since: datetime
    until: datetime
    dry_run: bool
    run_id: int = 0
    pages: int = 0
    livemode: bool | None = None
    by_type: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    missing: list[Backfill] = field(default_factory=list)  # dry run: what would be published

    def count(self, event_type: str, category: str) -> None:
        self.by_type[event_type]["seen"] += 1
        self.by_type[event_type][category] += 1

    def total(self, category: str) -> int:
        return sum(counts[category] for counts in self.by_type.values())

    def summary(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "dry_run": self.dry_run,
            "pages": self.pages,
            "livemode": self.livemode,
            "seen": self.total("seen"),
            **{category: self.total(category) for category in CATEGORIES},
            "by_type": {t: dict(c) for t, c in sorted(self.by_type.items())},
            "missing_events": [
                {"event_id": m.event_id, "type": m.type, "created_at": m.created_at.isoformat()}
                for m in self.missing
            ],
        }


def default_window(
    last_until: datetime | None, now: datetime, since: datetime | None, until: datetime | None
) -> tuple[datetime, datetime]:
    """[since, until): from where the last successful run ended (or 3 days back) to a few
    minutes ago, unless given."""
    until = until or now - SETTLE
    if since is None:
        since = last_until - OVERLAP if last_until else now - FIRST_RUN
    return since, until


class Applier:
    """Applies events fetched from Conekta's API in this process (provenance `api`), oldest
    first; what cannot be applied yet (a refund or chargeback met before its payment: pages come
    newest first) is kept for `retry` at the end of the run."""

    def __init__(self, store: Store, modes: Collection[bool] = ALL_MODES) -> None:
        self._store = store
        self._modes = modes
        self.deferred: list[dict[str, Any]] = []

    async def apply(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Apply (or archive) each event; those applied or archived, oldest first."""
        done = []
        for event in sorted(events, key=lambda e: (e["created_at"], e["id"])):
            if await self._one(event):
                done.append(event)
            else:
                self.deferred.append(event)
        return done

    async def retry(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The deferred events again, oldest first: (applied, failed)."""
        pending, self.deferred = self.deferred, []
        applied = await self.apply(pending)
        failed, self.deferred = self.deferred, []
        return applied, failed

    async def _one(self, event: dict[str, Any]) -> bool:
        judged = judged_row(orjson.dumps(event), datetime.now(UTC))
        try:
            if isinstance(judged, Incoming):
                item = replace(judged, provenance=API)
                orders.report(await self._store.apply.batch([item], modes=self._modes))
            else:
                await self._store.events.archive([replace(judged, provenance=API)])
        except (UnknownCharge, UnapplicableEvent) as exc:
            log.warning("backfill not applied (yet)", event_id=event["id"], reason=str(exc))
            return False
        return True


async def reconcile(
    store: Store,
    api: ConektaApi,
    applier: Applier | None,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    wait: bool = True,
    progress: Callable[[Report], None] = lambda report: None,
) -> Report | None:
    """One run; None when another holds the lock and `wait` is false. No applier: dry run."""
    async with store.reconcile.lock(wait=wait) as session:
        if session is None:
            return None
        last = await session.last_success()
        window = default_window(last["until"] if last else None, datetime.now(UTC), since, until)
        report = Report(*window, dry_run=applier is None)
        report.run_id = await session.start(*window, dry_run=report.dry_run)
        try:
            await _sweep(session, api, applier, report, progress)
            if applier is not None:
                await _retry_deferred(session, applier, report)
        except Exception as exc:
            await _failed(session, report, f"{type(exc).__name__}: {exc}")
            raise
        except asyncio.CancelledError:  # the worker stops mid-run: say so, not `running` forever
            with contextlib.suppress(Exception):
                await asyncio.shield(_failed(session, report, "stopped: the worker shut down"))
            raise
        await session.finish(report.run_id, "ok", livemode=report.livemode, counts=_counts(report))
        return report


async def _failed(session: ReconcileSession, report: Report, error: str) -> None:
    await session.finish(
        report.run_id, "failed", livemode=report.livemode, counts=_counts(report), error=error
    )


def _counts(report: Report) -> dict[str, Any]:
    return {t: dict(c) for t, c in report.by_type.items()}


async def _sweep(
    session: ReconcileSession,
    api: ConektaApi,
    applier: Applier | None,
    report: Report,
    progress: Callable[[Report], None],
) -> None:
    seen: set[str] = set()
    async for page in api.events():
        report.pages += 1
        window = []
        for event in page.events:
            created_at = datetime.fromtimestamp(event["created_at"], UTC)
            if report.since <= created_at < report.until and event["id"] not in seen:
                seen.add(event["id"])
                window.append(event)
        await _settle_page(session, applier, report, window)
        progress(report)
        # Newest first: once a page reaches before the window, every later page is older.
        if any(event["created_at"] < report.since.timestamp() for event in page.events):
            return


async def _settle_page(
    session: ReconcileSession,
    applier: Applier | None,
    report: Report,
    events: list[dict[str, Any]],
) -> None:
    known = await session.known([event["id"] for event in events])
    to_apply = []
    for event in events:
        if report.livemode is None:
            report.livemode = bool(event.get("livemode"))
        category = _category(event, known)
        if category == "missing" and applier is not None:
            to_apply.append(event)
            continue
        if category == "missing":
            report.missing.append(_backfill(event))
        report.count(event["type"], category)
    if to_apply and applier is not None:
        await _record(session, report, await applier.apply(to_apply))


async def _retry_deferred(session: ReconcileSession, applier: Applier, report: Report) -> None:
    """Deferred events once every page is in (their payments may have been older)."""
    applied, failed = await applier.retry()
    await _record(session, report, applied)
    for event in failed:
        report.count(event["type"], "failed")
        log.error("backfill failed: not applied", event_id=event["id"], event_type=event["type"])


async def _record(session: ReconcileSession, report: Report, events: list[dict[str, Any]]) -> None:
    backfills = [_backfill(event) for event in events]
    await session.record_backfills(report.run_id, backfills)
    for backfill in backfills:
        report.count(backfill.type, "backfilled")
        log.info("event backfilled", event_id=backfill.event_id, event_type=backfill.type)


def _category(event: dict[str, Any], known: dict[str, str]) -> str:
    if event["type"] == PING:
        return "never_stored"
    return {"archived": "archived", "backfilled": "in_flight"}.get(
        known.get(event["id"], ""), "missing"
    )


def _backfill(event: dict[str, Any]) -> Backfill:
    return Backfill(
        event["id"],
        event["type"],
        bool(event.get("livemode")),
        datetime.fromtimestamp(event["created_at"], UTC),
    )


# -- the worker's schedule ----------------------------------------------------------------------


async def run_scheduled(store: Store, settings: Settings, stop: asyncio.Event) -> None:
    """Reconcile every `reconcile_interval` while the worker runs; a failure is logged, counted
    and retried with backoff. With several workers, one runs and the others skip."""
    assert settings.conekta_api_key is not None
    metrics.RECONCILE_ENABLED.set(1)
    async with ConektaApi.open(settings.conekta_api_url, settings.conekta_api_key) as api:

        async def run() -> bool:
            # A run can page for minutes: shutdown does not wait for it (events it applied but
            # had not recorded are found archived next time).
            ok = await _scheduled_run(store, api, Applier(store, settings.accept_modes))
            await _refresh_last_success(store)
            return ok

        await schedule.repeat(run, settings.reconcile_interval, stop)


async def _scheduled_run(store: Store, api: ConektaApi, applier: Applier) -> bool:
    """One scheduled run; False when it failed."""
    try:
        report = await reconcile(store, api, applier, wait=False)
    except ApiKeyRejected as exc:
        log.error("reconcile failed: fix CONEKTA_API_KEY", error=str(exc))
        metrics.RECONCILE_RUNS.labels("failed").inc()
        return False
    except Exception as exc:
        log.warning("reconcile failed", error=f"{type(exc).__name__}: {exc}")
        metrics.RECONCILE_RUNS.labels("failed").inc()
        return False
    if report is None:
        metrics.RECONCILE_RUNS.labels("skipped").inc()
        return True
    metrics.RECONCILE_RUNS.labels("ok").inc()
    metrics.RECONCILE_BACKFILLED.inc(report.total("backfilled"))
    metrics.RECONCILE_DIFFERENCE.set(report.total("in_flight"))
    log.info("reconciled", **{k: v for k, v in report.summary().items() if k != "missing"})
    return True


async def _refresh_last_success(store: Store) -> None:
    """From the database: every worker reports the last success of any of them."""
    try:
        last = await store.reconcile.last_run()
    except Exception as exc:
        log.warning("reading the last reconcile failed", error=f"{type(exc).__name__}: {exc}")
        return
    if last is not None:
        metrics.RECONCILE_LAST_SUCCESS.set(last["finished_at"].timestamp())
