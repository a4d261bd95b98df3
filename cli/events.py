"""`events`: the archive of raw events: show one, list by outcome, replay a selection; `events
invalid` lists, previews, replays and purges invalid events (ops/invalid.py, as the console)."""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from typing import Any

from cli.common import confirm, parse_time, print_json, progress_line, read
from core.errors import BadRequest
from core.settings import Settings
from core.verifier import Verifier
from domain.outcome import Outcome
from ops import actions, audit, events, in_flight, invalid
from store import Store


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    events = sub.add_parser("events", help="the archive of raw events")
    events_sub = events.add_subparsers(dest="events_command", required=True, metavar="COMMAND")
    show = events_sub.add_parser("show", parents=[common], help="one archived event, whole")
    show.add_argument("id", metavar="ID", help="the event id (or the key `events list` shows)")
    show.add_argument("--json", action="store_true")
    show.set_defaults(handler=cmd_events_show)

    listing = events_sub.add_parser(
        "list",
        parents=[common],
        help="archived events of one outcome (e.g. invalid), or those in flight after a failure "
        "(--state retrying), no bodies",
    )
    which = listing.add_mutually_exclusive_group(required=True)
    which.add_argument("--outcome", type=Outcome, choices=list(Outcome))
    which.add_argument(
        "--state",
        choices=["retrying"],
        help="retrying: events sent to a retry tier or to the dead letters and not back yet",
    )
    listing.add_argument("--reason", help="with --state: one error kind (e.g. unknown_charge)")
    listing.add_argument("--since", type=parse_time, help="Conekta created_at >= T (ISO or unix)")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.set_defaults(handler=cmd_events_list)

    replay = events_sub.add_parser(
        "replay",
        parents=[common],
        help="re-apply archived events through the worker's path (idempotent); "
        "--outcome invalid judges invalid events again",
    )
    replay.add_argument("--since", type=parse_time, help="Conekta created_at >= T (ISO or unix)")
    replay.add_argument("--until", type=parse_time, help="Conekta created_at < T (ISO or unix)")
    replay.add_argument("--type", dest="event_type", help="only this event type")
    replay.add_argument("--order", dest="order_id", help="only this order")
    replay.add_argument(
        "--include-purged",
        action="store_true",
        help="also apply events an operator purged from the dead letters (on purpose)",
    )
    replay.add_argument(
        "--outcome",
        type=Outcome,
        choices=[Outcome.INVALID],
        help="invalid: judge the events archived `invalid` again (after a schema or code fix; "
        "`events invalid replay` selects them by id too, with a dry run)",
    )
    replay.add_argument("--json", action="store_true")
    replay.set_defaults(handler=cmd_events_replay)
    _add_invalid_commands(events_sub, common)


def _add_invalid_commands(events_sub: Any, common: argparse.ArgumentParser) -> None:
    group = events_sub.add_parser(
        "invalid", help="invalid events (signed, not usable): list, replay, purge"
    )
    sub = group.add_subparsers(dest="invalid_command", required=True, metavar="COMMAND")
    listing = sub.add_parser("list", parents=[common], help="invalid events, with the reason")
    _invalid_filters(listing)
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=cmd_invalid_list)
    replay = sub.add_parser(
        "replay",
        parents=[common],
        help="judge invalid events again (after a fix); --dry-run says what each would become",
    )
    _invalid_selection(replay)
    replay.add_argument("--reason", default="", help="a note for the audit trail")
    replay.set_defaults(handler=cmd_invalid_replay)
    purge = sub.add_parser(
        "purge",
        parents=[common],
        help="give up on invalid events (kept as tombstones: a resend stays refused)",
    )
    _invalid_selection(purge)
    purge.add_argument(
        "--reason", default="", help="why (kept in the audit trail; required unless --dry-run)"
    )
    purge.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    purge.set_defaults(handler=cmd_invalid_purge)


def _invalid_filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--type", dest="event_type", help="only this event type")
    parser.add_argument("--since", type=parse_time, help="Conekta created_at >= T (ISO or unix)")
    parser.add_argument("--until", type=parse_time, help="Conekta created_at < T (ISO or unix)")


def _invalid_selection(parser: argparse.ArgumentParser) -> None:
    """Which invalid events: KEY..., --all, or filters (every one given must match)."""
    parser.add_argument("ids", nargs="*", metavar="KEY", help="archive keys (`list` shows them)")
    parser.add_argument("--all", action="store_true", help="every invalid event")
    _invalid_filters(parser)
    parser.add_argument("--dry-run", action="store_true", help="only show what would be done")
    parser.add_argument("--json", action="store_true")


async def cmd_events_show(args: argparse.Namespace, settings: Settings) -> int:
    """Archived, or where it is now (retrying, a dead letter…); else not seen yet (exit 1)."""
    event = await read(settings, lambda store: events.show(store, args.id))
    if event is None:
        event = await read(settings, lambda store: in_flight.locate(store, args.id))
    if event is None:
        unseen = await in_flight.not_seen(settings.amqp_url)
        print(f"event {args.id}: {unseen['summary']}", file=sys.stderr)
        return 1
    print_json(event)
    return 0


async def cmd_events_list(args: argparse.Namespace, settings: Settings) -> int:
    if args.state == "retrying":
        return await _list_retrying(args, settings)
    rows = await read(settings, lambda store: events.listing(store, args.outcome, args.since))
    if args.json:
        print_json(rows)
        return 0
    print(f"{len(rows)} {args.outcome} event(s)")
    for row in rows:
        # A key derived from a hash says so, and shows the event's own id beside it.
        origin = "" if row["key_from"] == "id" else f"  (key from {row['key_from']})"
        original = f"  original id: {row['original_id'][:80]}" if row["original_id"] else ""
        print(f"{row['created_at']}  {row['event_id']}  {row['type']:24}{origin}{original}")
        if row["reason"]:
            print(f"    {row['reason']}")
    return 0


async def _list_retrying(args: argparse.Namespace, settings: Settings) -> int:
    rows = await read(settings, lambda store: in_flight.retrying(store, args.reason))
    if args.json:
        print_json(rows)
        return 0
    print(f"{len(rows)} event(s) in flight after a failure")
    for row in rows:
        print(f"{row['failed_at']}  {row['event_id']}  {row['type'] or '?':24}  {row['summary']}")
    return 0


async def cmd_events_replay(args: argparse.Namespace, settings: Settings) -> int:
    if args.outcome is Outcome.INVALID:
        if args.order_id or args.include_purged:
            print("--outcome invalid takes only --since, --until and --type", file=sys.stderr)
            return 2
        selection = actions.Selection.window(args.since, args.until, args.event_type)
        async with Store.open(settings.database_url, fee_tax_rate=settings.fee_tax_rate) as store:
            result = await invalid.replay(
                store,
                selection,
                audit.os_actor(),
                progress=progress_line,
                modes=settings.accept_modes,
                verifier=Verifier.from_settings(settings),
            )
        return _report_replay(args, result.totals)
    replay_filter = events.ReplayFilter(
        args.since, args.until, args.event_type, args.order_id, args.include_purged
    )

    def progress(totals: Counter[str]) -> None:
        print(f"... {sum(totals.values())} replayed", file=sys.stderr)

    async with Store.open(settings.database_url, fee_tax_rate=settings.fee_tax_rate) as store:
        totals = await events.replay(
            store,
            replay_filter,
            audit.os_actor(),
            progress,
            settings.accept_modes,
            verifier=Verifier.from_settings(settings),
        )
    return _report_replay(args, totals)


def _report_replay(args: argparse.Namespace, totals: Counter[str]) -> int:
    if args.json:
        print_json({"replayed": sum(totals.values()), "outcomes": dict(totals)})
    else:
        print(
            f"replayed {sum(totals.values())} event(s): "
            + (", ".join(f"{k} {v}" for k, v in sorted(totals.items())) or "none matched")
        )
    return 0


async def cmd_invalid_list(args: argparse.Namespace, settings: Settings) -> int:
    selection = actions.Selection(event_type=args.event_type, since=args.since, until=args.until)
    rows: list[dict[str, Any]] = []
    cursor: str | None = None
    async with Store.open(settings.database_url, max_size=1) as store:
        while True:
            page = await invalid.listing(store, selection, cursor, 200)
            rows += page["items"]
            if not (cursor := page["next"]):
                break
    if args.json:
        print_json(rows)
        return 0
    print(f"{len(rows)} invalid event(s)")
    for row in rows:
        original = f"  (its own id: {row['original_id'][:80]})" if row["original_id"] else ""
        print(f"{row['created_at']}  {row['event_id']}  {row['type']:24}{original}")
        print(f"    {row['reason']}")
    return 0


def _selection(args: argparse.Namespace) -> actions.Selection:
    return actions.Selection(
        ids=tuple(args.ids),
        event_type=args.event_type,
        since=args.since,
        until=args.until,
        everything=args.all,
    )


async def cmd_invalid_replay(args: argparse.Namespace, settings: Settings) -> int:
    selection = _selection(args)
    async with Store.open(settings.database_url, max_size=1) as store:
        if args.dry_run:
            preview = await invalid.preview(
                store,
                "replay",
                selection,
                settings.accept_modes,
                verifier=Verifier.from_settings(settings),
            )
            return _report_invalid(args, preview)
        result = await invalid.replay(
            store,
            selection,
            audit.os_actor(),
            reason=args.reason,
            progress=progress_line,
            modes=settings.accept_modes,
            verifier=Verifier.from_settings(settings),
        )
    return _report_invalid(args, result)


async def cmd_invalid_purge(args: argparse.Namespace, settings: Settings) -> int:
    selection = _selection(args)
    if not args.dry_run and not args.reason.strip():
        raise BadRequest("a purge needs a reason: --reason (it is kept in the audit trail)")
    async with Store.open(settings.database_url, max_size=1) as store:
        if args.dry_run:
            preview = await invalid.preview(store, "purge", selection, settings.accept_modes)
            return _report_invalid(args, preview)
        matched = await invalid.count(store, selection)
        if not matched:
            return _report_invalid(args, actions.ActionResult("purge", True))
        if not args.yes and not await confirm(f"purge {matched} invalid event(s) for good?"):
            print("nothing purged")
            return 1
        result = await invalid.purge(
            store,
            selection,
            audit.os_actor(),
            reason=args.reason,
            expect=matched,
            progress=progress_line,
        )
    return _report_invalid(args, result)


def _report_invalid(args: argparse.Namespace, result: actions.ActionResult) -> int:
    past = {"replay": "replayed", "purge": "purged"}[result.action]
    totals = ", ".join(f"{k} {v}" for k, v in sorted(result.totals.items())) or "none matched"
    if args.json:
        print_json(result.summary())
    elif result.dry_run:
        print(f"would {result.action} {result.matched_count} invalid event(s); now: {totals}")
        for row in result.matched:
            print(f"  {row['event_id']}  {row['type']:24} {row['note']}")
    else:
        print(f"{past} {result.done_count} invalid event(s): {totals}")
    if result.not_found:
        print(f"not invalid (any more?): {' '.join(result.not_found)}", file=sys.stderr)
    return 1 if result.not_found else 0
