"""`keys generate` (a development key pair) and `send` (sign files as Conekta does and post
them)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from core import signature
from core.settings import Settings
from ingest.send import send_files


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    keys = sub.add_parser("keys", help="development key pairs")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True, metavar="COMMAND")
    generate = keys_sub.add_parser(
        "generate", parents=[common], help="write a development RSA-2048 key pair"
    )
    generate.add_argument("--dir", type=Path, default=Path(".dev/keys"), help="output folder")
    generate.add_argument("--name", default="conekta-dev", help="file name stem")
    generate.set_defaults(handler=cmd_keys_generate)

    send = sub.add_parser(
        "send", parents=[common], help="sign event files as Conekta does and post them"
    )
    send.add_argument("files", nargs="+", type=Path, metavar="FILE")
    send.add_argument("--url", default="http://127.0.0.1:8080/webhooks/conekta")
    send.add_argument("--key", type=Path, help="private key PEM to sign with (omit: unsigned)")
    send.set_defaults(handler=cmd_send)


async def cmd_keys_generate(args: argparse.Namespace, settings: Settings) -> int:
    private, public = signature.generate_key_pair(args.dir, args.name)
    print(f"private key (signs, for `send`): {private}")
    print(f"public key (verifies, for CONEKTA_WEBHOOK_KEYS): {public}")
    return 0


async def cmd_send(args: argparse.Namespace, settings: Settings) -> int:
    files: list[Path] = args.files
    failures = await send_files(files, args.url, args.key)
    return 1 if failures else 0
