"""`dlq list|show|replay|purge`: the dead letters (ops/dead_letters.py, as the console)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from cli.common import confirm, print_json, progress_line, read, when
from core import broker
from core.errors import BadRequest
from core.settings import Settings
from ops import actions, audit, dead_letters, replayed
from store import Store


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    dlq = sub.add_parser("dlq", help="dead letters: list, show, replay, purge")
    dlq_sub = dlq.add_subparsers(dest="dlq_command", required=True, metavar="COMMAND")
    listing = dlq_sub.add_parser("list", parents=[common], help="every dead letter, one line each")
    _filter_options(listing)
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=cmd_dlq_list)
    show = dlq_sub.add_parser("show", parents=[common], help="one dead letter whole")
    show.add_argument("id", metavar="ID", help="the event id (message id)")
    show.add_argument("--json", action="store_true")
    show.set_defaults(handler=cmd_dlq_show)
    replay = dlq_sub.add_parser(
        "replay", parents=[common], help="put dead letters back into processing (idempotent)"
    )
    _selection(replay)
    waiting = replay.add_mutually_exclusive_group()
    waiting.add_argument(
        "--wait",
        type=_seconds,
        default=replayed.DEFAULT_WAIT,
        metavar="SECONDS",
        help="wait up to this long for what came of each (default 30); exit 1 if any went back "
        "to the dead letters or was not settled by then",
    )
    waiting.add_argument(
        "--no-wait", dest="wait", action="store_const", const=0.0, help="publish and return"
    )
    replay.set_defaults(handler=cmd_dlq_replay)
    purge = dlq_sub.add_parser(
        "purge",
        parents=[common],
        help="never apply these dead letters (a tombstone in the archive keeps resends out)",
    )
    _selection(purge)
    purge.add_argument(
        "--reason", default="", help="why (kept in the audit trail; required unless --dry-run)"
    )
    purge.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    purge.set_defaults(handler=cmd_dlq_purge)


def _seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {value!r}") from None
    if not 0 <= seconds <= replayed.MAX_WAIT:
        raise argparse.ArgumentTypeError(f"between 0 and {replayed.MAX_WAIT:.0f} seconds")
    return seconds


def _filter_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--type", dest="event_type", help="only dead letters of this event type")
    parser.add_argument("--kind", help="only this kind (permanent, transient, delivery_limit, ...)")
    parser.add_argument("--order", dest="order_id", help="only dead letters of this order")


def _selection(parser: argparse.ArgumentParser) -> None:
    """Which dead letters: ID..., --all, or filters (every one given must match)."""
    parser.add_argument("ids", nargs="*", metavar="ID", help="event ids")
    parser.add_argument("--all", action="store_true", help="every dead letter")
    _filter_options(parser)
    parser.add_argument("--dry-run", action="store_true", help="only show what would be done")
    parser.add_argument("--json", action="store_true")


async def cmd_dlq_list(args: argparse.Namespace, settings: Settings) -> int:
    rows = await read(settings, lambda store: dead_letters.list_letters(store, _filters(args)))
    if args.json:
        print_json(rows)
        return 0
    print(f"{len(rows)} dead letter(s)")
    for row in rows:
        print(
            f"{row['id']}  {row['type']:22} {row['order_id'] or '-':26} attempts={row['attempts']}"
            f"  first={when(row['first_failed_at'], settings)}"
            f"  last={when(row['last_failed_at'], settings)}\n"
            f"    {row['kind']} (from {row['source_queue']}): {row['reason']}"
        )
    return 0


async def cmd_dlq_show(args: argparse.Namespace, settings: Settings) -> int:
    found = await read(settings, lambda store: dead_letters.show(store, args.id))
    if not found:
        print(f"no dead letter {args.id}", file=sys.stderr)
        return 1
    print_json(found[0] if len(found) == 1 else found)
    return 0


def _filters(args: argparse.Namespace) -> actions.Selection | None:
    """`dlq list`'s filters, if any were given."""
    selection = actions.Selection(
        event_type=args.event_type, kind=args.kind, order_id=args.order_id
    )
    return selection if any((args.event_type, args.kind, args.order_id)) else None


def _dlq_selection(args: argparse.Namespace) -> actions.Selection:
    return actions.Selection(
        ids=tuple(args.ids),
        event_type=args.event_type,
        kind=args.kind,
        order_id=args.order_id,
        everything=args.all,
    )


async def cmd_dlq_replay(args: argparse.Namespace, settings: Settings) -> int:
    selection = _dlq_selection(args)
    async with Store.open(settings.database_url, max_size=1) as store:
        if args.dry_run:
            return _report_dlq(args, await dead_letters.preview(store, "replay", selection))
        connection = await broker.connect(settings.amqp_url, "conekta-ingest dlq", attempts=3)
        publisher = broker.Publisher(connection, settings.publish_timeout)
        try:
            result = await dead_letters.replay(
                store, publisher, selection, audit.os_actor(), progress=progress_line
            )
        finally:
            await publisher.close()
        if not (args.wait and result.done):
            return _report_dlq(args, result)
        if not args.json:
            print(
                f"replayed {result.done_count} dead letter(s); waiting up to {args.wait:.0f} s "
                "for the worker ...",
                file=sys.stderr,
            )
        outcomes = await replayed.wait(store, result.done, args.wait)
    return _report_outcomes(args, result, outcomes)


def _report_outcomes(
    args: argparse.Namespace, result: actions.ActionResult, outcomes: replayed.Outcomes
) -> int:
    """Per replayed event, what came of it; 1 when any went back or was not settled in time."""
    if args.json:
        print_json({**result.summary(), "replayed": result.done, **outcomes.summary()})
    else:
        for event_id, outcome in outcomes.outcomes.items():
            print(f"{event_id}  {outcome}")
        back, pending = len(outcomes.went_back), len(outcomes.pending)
        print(
            f"replayed {result.done_count} dead letter(s): "
            f"{len(outcomes.outcomes) - back - pending} settled, {back} dead-lettered again"
            + (
                f" (of the first {len(outcomes.outcomes)}, the ones watched)"
                if result.done_count > len(outcomes.outcomes)
                else ""
            )
            + (f", {pending} not settled after {outcomes.waited:.0f} s" if pending else "")
            + (f"; not found: {' '.join(result.not_found)}" if result.not_found else "")
        )
    return 1 if outcomes.went_back or outcomes.pending or result.not_found else 0


async def cmd_dlq_purge(args: argparse.Namespace, settings: Settings) -> int:
    selection = _dlq_selection(args)
    if not args.dry_run and not args.reason.strip():
        raise BadRequest("a purge needs a reason: --reason (it is kept in the audit trail)")
    async with Store.open(settings.database_url, max_size=1) as store:
        preview = await dead_letters.preview(store, "purge", selection)
        if args.dry_run or not preview.matched:
            return _report_dlq(args, preview)
        question = f"purge {preview.matched_count} dead letter(s) for good?"
        if not args.yes and not await confirm(question):
            print("nothing purged")
            return 1
        result = await dead_letters.purge(
            store, selection, audit.os_actor(), reason=args.reason, progress=progress_line
        )
    return _report_dlq(args, result)


def _report_dlq(args: argparse.Namespace, result: actions.ActionResult) -> int:
    past = {"replay": "replayed", "purge": "purged"}[result.action]
    if args.json:
        print_json({**result.summary(), past: result.done})
    elif result.dry_run:
        colon = ":" if result.matched else " (none matches)"
        print(f"would {result.action} {result.matched_count} dead letter(s){colon}")
        for row in result.matched:
            print(f"  {row['id']}  {row['type']:22} {row['kind']}: {row['reason']}")
    else:
        missing = result.not_found
        print(
            f"{past} {result.done_count} dead letter(s)"
            + (f"; not found: {' '.join(missing)}" if missing else "")
        )
    return 1 if result.not_found else 0
