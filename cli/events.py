"""`events`: the archive of raw events: show one, list by outcome, replay a selection."""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from typing import Any

from cli.tools import parse_time, print_json, read
from core.settings import Settings
from domain.outcome import Outcome
from worker import archive, audit
from worker.store import Store


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    events = sub.add_parser("events", help="the archive of raw events")
    events_sub = events.add_subparsers(dest="events_command", required=True, metavar="COMMAND")
    show = events_sub.add_parser("show", parents=[common], help="one archived event, whole")
    show.add_argument("id", metavar="ID", help="the event id (or the key `events list` shows)")
    show.add_argument("--json", action="store_true")
    show.set_defaults(handler=cmd_events_show)

    listing = events_sub.add_parser(
        "list", parents=[common], help="archived events of one outcome (e.g. invalid), no bodies"
    )
    listing.add_argument("--outcome", type=Outcome, required=True, choices=list(Outcome))
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
        help="invalid: judge the events archived `invalid` again (after a schema or code fix)",
    )
    replay.add_argument("--json", action="store_true")
    replay.set_defaults(handler=cmd_events_replay)


async def cmd_events_show(args: argparse.Namespace, settings: Settings) -> int:
    event = await read(settings, lambda store: archive.show(store, args.id))
    if event is None:
        print(f"no archived event {args.id}", file=sys.stderr)
        return 1
    print_json(event)
    return 0


async def cmd_events_list(args: argparse.Namespace, settings: Settings) -> int:
    rows = await read(settings, lambda store: archive.listing(store, args.outcome, args.since))
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


async def cmd_events_replay(args: argparse.Namespace, settings: Settings) -> int:
    if args.outcome is Outcome.INVALID and (
        args.event_type or args.order_id or args.include_purged
    ):
        print("--outcome invalid takes only --since and --until", file=sys.stderr)
        return 2
    selection = archive.ReplayFilter(
        args.since, args.until, args.event_type, args.order_id, args.include_purged
    )

    def progress(totals: Counter[str]) -> None:
        print(f"... {sum(totals.values())} replayed", file=sys.stderr)

    action = archive.replay_invalid if args.outcome is Outcome.INVALID else archive.replay
    async with Store.open(settings.database_url) as store:
        totals = await action(store, selection, audit.os_actor(), progress, settings.accept_modes)
    if args.json:
        print_json({"replayed": sum(totals.values()), "outcomes": dict(totals)})
    else:
        print(
            f"replayed {sum(totals.values())} event(s): "
            + (", ".join(f"{k} {v}" for k, v in sorted(totals.items())) or "none matched")
        )
    return 0
