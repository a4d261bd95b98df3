"""structlog set-up, done once at the entry point: JSON lines in production, console on a TTY."""

from __future__ import annotations

import logging
import sys

import orjson
import structlog


def configure_logging(log_format: str = "auto", level: str = "info") -> None:
    use_console = log_format == "console" or (log_format == "auto" and sys.stderr.isatty())
    renderer: structlog.typing.Processor
    factory: structlog.typing.WrappedLogger
    if use_console:
        renderer = structlog.dev.ConsoleRenderer()
        factory = structlog.PrintLoggerFactory(file=sys.stderr)
    else:
        # orjson renders a line in about half the time of json.dumps (the worker logs each
        # event it settles); what it cannot encode, structlog's fallback writes as repr().
        renderer = structlog.processors.JSONRenderer(serializer=orjson.dumps)
        factory = structlog.BytesLoggerFactory(file=sys.stderr.buffer)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=factory,
        cache_logger_on_first_use=True,
    )
    # aio-pika / aiormq log through stdlib logging; keep their warnings visible.
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
