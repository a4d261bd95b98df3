from __future__ import annotations

import argparse
from datetime import UTC, datetime

import pytest

from cli.common import parse_time
from cli.main import build_parser

COMMANDS = [
    ["serve"],
    ["run"],
    ["migrate"],
    ["keys", "generate"],
    ["send"],
    ["work"],
    ["orders", "show"],
    ["ledger", "balances"],
    ["ledger", "verify"],
    ["dlq", "list"],
    ["dlq", "show"],
    ["dlq", "replay"],
    ["dlq", "purge"],
    ["events", "show"],
    ["events", "replay"],
    ["events", "invalid", "list"],
    ["events", "invalid", "replay"],
    ["events", "invalid", "purge"],
    ["reconcile"],
    ["orders", "verify"],
    ["orders", "record"],
    ["stats"],
    ["console"],
    ["console", "add-user"],
]


def test_console_defaults_to_localhost_8081_and_add_user_takes_no_password_argument() -> None:
    args = build_parser().parse_args(["console"])
    assert (args.console_host, args.console_port) == ("127.0.0.1", 8081)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["console", "add-user", "ana", "--role", "operator"])


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_has_help(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args([*command, "--help"])
    assert exited.value.code == 0
    assert "usage: conekta-ingest" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1700000000", datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)),
        ("2026-11-01", datetime(2026, 11, 1, tzinfo=UTC)),
        ("2026-11-01T10:00:00Z", datetime(2026, 11, 1, 10, tzinfo=UTC)),
        ("2026-11-01T10:00:00-06:00", datetime(2026, 11, 1, 16, tzinfo=UTC)),
    ],
)
def test_parse_time(text: str, expected: datetime) -> None:
    assert parse_time(text) == expected


@pytest.mark.parametrize("text", ["yesterday", "99999999999999999999", "²"])
def test_parse_time_refuses_garbage(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        parse_time(text)


def test_flags_override_env() -> None:
    from cli.main import settings_from

    args = build_parser().parse_args(["serve", "--port", "9999", "--keys", "a.pem,b.pem"])
    settings = settings_from(args)
    assert settings.port == 9999
    assert [str(p) for p in settings.webhook_keys] == ["a.pem", "b.pem"]
