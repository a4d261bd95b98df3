"""One frozen settings object, built once at the entry point from env vars and CLI flags."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from core import topology
from core.errors import ConfigError

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/conekta_ingest"
DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
DEFAULT_CONEKTA_API_URL = "https://api.conekta.io"
DEFAULT_LEDGER_TZ = "America/Mexico_City"
_DEFAULT_ZONE = ZoneInfo(DEFAULT_LEDGER_TZ)  # ZoneInfo caches: one object per name
MIN_EXPORT_KEY = 32  # e.g. `openssl rand -hex 32`


@dataclass(frozen=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    amqp_url: str = DEFAULT_AMQP_URL
    webhook_keys: tuple[Path, ...] = ()
    # Conekta keys retired from receiving: the worker still verifies what they signed (the
    # archive, replays, restores, `ledger verify --provenance`)
    verify_only_keys: tuple[Path, ...] = ()
    allow_unsigned: bool = False
    host: str = "127.0.0.1"
    port: int = 8080
    max_body_bytes: int = 1024 * 1024
    # Bodies being read at once (more wait for a slot, their bytes left in the kernel). Each slot
    # can hold up to max_body_bytes: 48 slots of 1 MiB measured 82 MB peak growth under 300
    # slow 1 MB uploads (tests/integration/test_slow_uploads.py); 64 measured 104 MB.
    max_concurrent_reads: int = 48
    body_read_timeout: float = 10.0  # seconds to receive a body (408), or to wait for a slot (503)
    publish_timeout: float = 5.0
    log_format: str = "auto"  # auto | json | console
    log_level: str = "info"
    # worker
    batch_size: int = 256
    batch_wait: float = 0.02
    prefetch: int = 512
    max_attempts: int = 8
    worker_metrics_port: int = 9102
    outbox_interval: float = 1.0
    # reconcile with Conekta's API; the key is a secret: kept out of repr (and so out of logs)
    conekta_api_url: str = DEFAULT_CONEKTA_API_URL
    conekta_api_key: str | None = field(default=None, repr=False)
    reconcile_interval: float = 900.0
    # settlement: `settle pull` every this many seconds (with the key), and the key's mode (GET
    # /balance does not say it): live or test
    settle_interval: float = 3600.0
    conekta_api_livemode: bool = True
    # supervision (core.supervisor), receiver and worker
    task_healthy_after: float = 10.0
    task_give_up_after: float = 300.0
    # Which Conekta modes this deployment applies (livemode true = live); the other mode's
    # events are archived with outcome `other_mode` and nothing else.
    accept_modes: frozenset[bool] = frozenset({True, False})
    # retention: `archive prune` with no --before keeps this many whole months before this one
    retention_months: int = 13
    # ...and forgets the ids of events archived this many whole months ago, once their rows are
    # pruned (0: keep every id for good); ops/retention.py says why that is safe
    dedupe_months: int = 25
    # console: proxies in front of it (an SSO proxy, the ingress) whose X-Forwarded-For is
    # believed, so that failed logins are counted per client, not per proxy
    console_trusted_proxies: tuple[IPv4Network | IPv6Network, ...] = ()
    # the ledger's days and months (a bare date, `ledger close --month`) are this zone's
    ledger_tz: ZoneInfo = _DEFAULT_ZONE
    # retention: the HMAC-SHA256 key that signs exports (`archive prune --export`, `archive
    # sign`) and that `archive restore` checks; a secret kept off the export volume
    export_key: str | None = field(default=None, repr=False)
    # ledger: the tax inside Conekta's fee (IVA 16 % in Mexico); each fee posting splits into
    # commission and tax by it (domain/fee.py); 0 books the whole fee as commission
    fee_tax_rate: Decimal = Decimal("0.16")
    # the fulfillment services that subscribe, each with its queue conekta.fulfillment.<name>:
    # watched (metrics, `fulfillment subscribers`) and the only targets of `fulfillment replay`
    fulfillment_subscribers: tuple[str, ...] = ()


# env var -> (field, parser)
def _bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ConfigError(f"not a boolean: {value!r}")


MODES = {"live": True, "test": False}


def _modes(value: str) -> frozenset[bool]:
    names = {n.strip().lower() for n in value.split(",") if n.strip()}
    if not names or not names <= set(MODES):
        raise ConfigError(f"modes must be live, test or live,test: {value!r}")
    return frozenset(MODES[n] for n in names)


def _networks(value: str) -> tuple[IPv4Network | IPv6Network, ...]:
    """Comma-separated addresses or CIDR blocks (ValueError names the bad one)."""
    return tuple(ip_network(part.strip()) for part in value.split(",") if part.strip())


def zone(name: str) -> ZoneInfo:
    """The IANA time zone of that name; ValueError names a wrong one."""
    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"not a time zone: {name!r} (an IANA name, e.g. {DEFAULT_LEDGER_TZ})"
        ) from None


def _rate(value: str) -> Decimal:
    """A fraction such as 0.16 (not 16 %)."""
    try:
        rate = Decimal(value.strip())
    except InvalidOperation as exc:
        raise ValueError(f"not a number: {value!r}") from exc
    if not rate.is_finite() or not 0 <= rate < 1:
        raise ValueError(f"a rate from 0 to below 1, such as 0.16: {value!r}")
    return rate


def subscriber_names(value: str) -> tuple[str, ...]:
    """Comma-separated subscriber names, each checked (core.topology.subscriber_name_problem)."""
    names = tuple(part.strip() for part in value.split(",") if part.strip())
    for name in names:
        if (problem := topology.subscriber_name_problem(name)) is not None:
            raise ConfigError(problem)
    if len(set(names)) != len(names):
        raise ConfigError(f"a subscriber is named twice: {value!r}")
    return names


def _paths(value: str) -> tuple[Path, ...]:
    return tuple(Path(p.strip()) for p in value.split(",") if p.strip())


def _api_mode(value: str) -> bool:
    """CONEKTA_API_MODE: the API key's mode, live (default) or test."""
    mode = value.strip().lower() or "live"
    if mode not in {"live", "test"}:
        raise ValueError("live or test")
    return mode == "live"


ENV_VARS: dict[str, tuple[str, Any]] = {
    "DATABASE_URL": ("database_url", str),
    "AMQP_URL": ("amqp_url", str),
    "CONEKTA_WEBHOOK_KEYS": ("webhook_keys", _paths),
    "CONEKTA_WEBHOOK_VERIFY_ONLY_KEYS": ("verify_only_keys", _paths),
    "CONEKTA_ALLOW_UNSIGNED": ("allow_unsigned", _bool),
    "CONEKTA_INGEST_HOST": ("host", str),
    "CONEKTA_INGEST_PORT": ("port", int),
    "CONEKTA_INGEST_MAX_BODY_BYTES": ("max_body_bytes", int),
    "CONEKTA_INGEST_MAX_CONCURRENT_READS": ("max_concurrent_reads", int),
    "CONEKTA_INGEST_BODY_READ_TIMEOUT": ("body_read_timeout", float),
    "CONEKTA_INGEST_PUBLISH_TIMEOUT": ("publish_timeout", float),
    "CONEKTA_INGEST_LOG_FORMAT": ("log_format", str),
    "CONEKTA_INGEST_LOG_LEVEL": ("log_level", str),
    "CONEKTA_INGEST_BATCH_SIZE": ("batch_size", int),
    "CONEKTA_INGEST_BATCH_WAIT": ("batch_wait", float),
    "CONEKTA_INGEST_PREFETCH": ("prefetch", int),
    "CONEKTA_INGEST_MAX_ATTEMPTS": ("max_attempts", int),
    "CONEKTA_INGEST_WORKER_METRICS_PORT": ("worker_metrics_port", int),
    "CONEKTA_INGEST_OUTBOX_INTERVAL": ("outbox_interval", float),
    "CONEKTA_API_URL": ("conekta_api_url", str),
    "CONEKTA_API_KEY": ("conekta_api_key", lambda v: v.strip() or None),
    "CONEKTA_RECONCILE_INTERVAL": ("reconcile_interval", float),
    "CONEKTA_SETTLE_INTERVAL": ("settle_interval", float),
    "CONEKTA_API_MODE": ("conekta_api_livemode", _api_mode),
    "CONEKTA_INGEST_TASK_HEALTHY_AFTER": ("task_healthy_after", float),
    "CONEKTA_INGEST_TASK_GIVE_UP_AFTER": ("task_give_up_after", float),
    "CONEKTA_ACCEPT_MODES": ("accept_modes", _modes),
    "CONEKTA_INGEST_RETENTION_MONTHS": ("retention_months", int),
    "CONEKTA_INGEST_DEDUPE_MONTHS": ("dedupe_months", int),
    "CONEKTA_CONSOLE_TRUSTED_PROXIES": ("console_trusted_proxies", _networks),
    "CONEKTA_LEDGER_TZ": ("ledger_tz", zone),
    "CONEKTA_EXPORT_KEY": ("export_key", lambda v: v.strip() or None),
    "CONEKTA_FEE_TAX_RATE": ("fee_tax_rate", _rate),
    "CONEKTA_FULFILLMENT_SUBSCRIBERS": ("fulfillment_subscribers", subscriber_names),
}


def load_settings(env: Mapping[str, str], overrides: Mapping[str, Any] | None = None) -> Settings:
    """Env vars first, then CLI overrides (values of None are ignored)."""
    values: dict[str, Any] = {}
    for var, (name, parse) in ENV_VARS.items():
        if var in env:
            try:
                values[name] = parse(env[var])
            except ValueError as exc:
                raise ConfigError(f"{var}: {exc}") from exc
    for name, value in (overrides or {}).items():
        if value is not None:
            values[name] = value
    settings = Settings(**values)
    _check(settings)
    return settings


def _check(settings: Settings) -> None:
    if settings.log_format not in {"auto", "json", "console"}:
        raise ConfigError("log format must be auto, json or console")
    if settings.max_body_bytes <= 0 or settings.batch_size <= 0 or settings.max_attempts <= 0:
        raise ConfigError("max body, batch size and max attempts must be positive")
    if settings.reconcile_interval <= 0:
        raise ConfigError("CONEKTA_RECONCILE_INTERVAL must be positive (seconds)")
    if settings.settle_interval <= 0:
        raise ConfigError("CONEKTA_SETTLE_INTERVAL must be positive (seconds)")
    if settings.max_concurrent_reads <= 0 or settings.body_read_timeout <= 0:
        raise ConfigError("max concurrent reads and body read timeout must be positive")
    if settings.retention_months < 1:
        raise ConfigError("retention months must be at least 1")
    if settings.dedupe_months < 0:
        raise ConfigError("dedupe months must be 0 (keep every id) or more")
    if settings.export_key is not None and len(settings.export_key) < MIN_EXPORT_KEY:
        raise ConfigError(f"CONEKTA_EXPORT_KEY must have at least {MIN_EXPORT_KEY} characters")
