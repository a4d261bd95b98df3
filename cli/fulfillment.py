"""`fulfillment`: the subscribers' queues, and a replay to one of them (ops/fulfillment.py)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from cli.common import parse_time, print_json, progress_line
from core import broker, topology
from core.errors import PublishFailed
from core.settings import Settings
from ops import audit, fulfillment
from store import Store


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    group = sub.add_parser("fulfillment", help="the fulfillment services that subscribe")
    group_sub = group.add_subparsers(dest="fulfillment_command", required=True, metavar="COMMAND")
    listing = group_sub.add_parser(
        "subscribers",
        parents=[common],
        help="each configured subscriber's queue: ready messages, consumers, dead letters",
    )
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.set_defaults(handler=cmd_subscribers)

    replay = group_sub.add_parser(
        "replay",
        parents=[common],
        help="publish messages from the outbox again, to ONE subscriber's queue only",
    )
    replay.add_argument(
        "--queue", required=True, help="conekta.fulfillment.<name> of a configured subscriber"
    )
    replay.add_argument("--since", type=parse_time, help="written (applied) >= T (ISO or unix)")
    replay.add_argument("--until", type=parse_time, help="written (applied) < T (ISO or unix)")
    replay.add_argument(
        "--type", dest="event_type", choices=topology.ORDER_EVENT_TYPES, help="only this type"
    )
    replay.add_argument("--order", dest="order_id", help="only this order")
    replay.add_argument("--dry-run", action="store_true", help="count what would be sent")
    replay.add_argument("--reason", default="", help="a note for the audit trail")
    replay.add_argument("--json", action="store_true", help="machine-readable output")
    replay.set_defaults(handler=cmd_replay)


async def cmd_subscribers(args: argparse.Namespace, settings: Settings) -> int:
    names = settings.fulfillment_subscribers
    if not names:
        print("no subscribers configured (CONEKTA_FULFILLMENT_SUBSCRIBERS)", file=sys.stderr)
    connection = await broker.connect(settings.amqp_url, "conekta-ingest fulfillment", attempts=3)
    try:
        states = await fulfillment.subscribers(connection, names)
    finally:
        await connection.close()
    if args.json:
        print_json(states)
        return 0
    print(f"{'subscriber':14} {'queue':44} {'ready':>7} {'consumers':>9} {'dead letters':>12}")
    for s in states:
        queue = s["queue"] if s["exists"] else f"{s['queue']} (missing)"
        dead = "-" if s["dead_letters"] is None else str(s["dead_letters"])
        print(f"{s['name']:14} {queue:44} {s['messages']:>7} {s['consumers']:>9} {dead:>12}")
    return 0


async def cmd_replay(args: argparse.Namespace, settings: Settings) -> int:
    selection = fulfillment.Selection(
        args.queue, args.since, args.until, args.event_type, args.order_id
    )
    subscribers = settings.fulfillment_subscribers
    async with Store.open(settings.database_url, max_size=1) as store:
        if args.dry_run:
            return _report(args, await fulfillment.preview(store, selection, subscribers))
        selection.check(subscribers)  # before connecting
        connection = await broker.connect(settings.amqp_url, "conekta-ingest replay", attempts=3)
        publisher = broker.Publisher(connection, settings.publish_timeout)
        try:
            result = await fulfillment.replay(
                store,
                publisher,
                connection,
                selection,
                subscribers,
                audit.os_actor(),
                reason=args.reason,
                progress=progress_line,
            )
        except PublishFailed as exc:
            print(f"replay stopped: {exc} (`audit list` says how many went out)", file=sys.stderr)
            return 1
        finally:
            await publisher.close()
    return _report(args, result)


def _report(args: argparse.Namespace, result: fulfillment.Result) -> int:
    if args.json:
        print_json(result.summary())
        return 0
    verb = "would publish" if result.dry_run else "published"
    count = result.matched if result.dry_run else result.published
    types = ", ".join(f"{k} {v}" for k, v in sorted(result.by_type.items())) or "none matched"
    print(f"{verb} {count} message(s) to {result.queue}: {types}")
    return 0
