"""`conekta-ingest audit list`: the trail of operator actions (who, when, what, how many)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import orjson

from cli.common import parse_time
from core.settings import Settings
from ops import audit
from store import Store


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    parser = sub.add_parser("audit", help="the trail of operator actions")
    audit_sub = parser.add_subparsers(dest="audit_command", required=True, metavar="COMMAND")
    listing = audit_sub.add_parser(
        "list", parents=[common], help="who did what, when, to how many (oldest first)"
    )
    listing.add_argument("--since", type=parse_time, help="only actions at or after T")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.set_defaults(handler=cmd_audit_list)


async def cmd_audit_list(args: argparse.Namespace, settings: Settings) -> int:
    async with Store.open(settings.database_url, max_size=1) as store:
        entries = await audit.entries(store, args.since)
    if args.json:
        sys.stdout.write(orjson.dumps(entries, option=orjson.OPT_INDENT_2).decode() + "\n")
        return 0
    print(f"{len(entries)} action(s)")
    for entry in entries:
        print(
            f"{entry['at']}  {entry['actor']:20} {entry['action']:16} {entry['count']:>6}  "
            + orjson.dumps(entry["details"]).decode()
        )
    return 0
