from __future__ import annotations

import argparse
from datetime import UTC, datetime

import pytest

from cli.common import parse_time, resolve_times
from cli.main import build_parser, settings_from

COMMANDS = [
    ["serve"],
    ["run"],
    ["migrate"],
    ["keys", "generate"],
    ["send"],
    ["work"],
    ["orders", "show"],
    ["ledger", "balances"],
    ["ledger", "entries"],
    ["ledger", "verify"],
    ["ledger", "close"],
    ["ledger", "closes"],
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
    ("argv", "expected"),
    [
        (
            ["ledger", "balances", "--at", "1700000000"],
            datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC),
        ),
        # A bare date is its first instant in the ledger's zone (Mexico City: UTC-6), or --tz's.
        (["ledger", "balances", "--at", "2026-11-01"], datetime(2026, 11, 1, 6, tzinfo=UTC)),
        (
            ["ledger", "balances", "--at", "2026-11-01", "--tz", "UTC"],
            datetime(2026, 11, 1, tzinfo=UTC),
        ),
        (
            ["ledger", "entries", "--since", "2026-11-01T10:00"],
            datetime(2026, 11, 1, 16, tzinfo=UTC),
        ),
        (
            ["events", "list", "--outcome", "applied", "--since", "2026-11-01T10:00:00Z"],
            datetime(2026, 11, 1, 10, tzinfo=UTC),
        ),
        (
            ["audit", "list", "--since", "2026-11-01T10:00:00-06:00", "--tz", "Asia/Tokyo"],
            datetime(2026, 11, 1, 16, tzinfo=UTC),
        ),
    ],
)
def test_a_time_option_is_read_in_the_ledger_zone(argv: list[str], expected: datetime) -> None:
    args = build_parser().parse_args(argv)
    resolve_times(args, settings_from(args).ledger_tz)
    assert expected in vars(args).values()


def test_a_wrong_zone_is_a_clear_error() -> None:
    from core.errors import ConfigError

    with pytest.raises(ConfigError, match="--tz: not a time zone"):
        settings_from(build_parser().parse_args(["ledger", "balances", "--tz", "Mars/Olympus"]))


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
