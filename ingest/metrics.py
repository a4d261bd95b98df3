"""Prometheus metrics of the receiver (served by core.health's /metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

REQUESTS = Counter(
    "conekta_ingest_requests_total",
    "Webhook requests by outcome (accepted, ping, bad_signature, invalid, too_large, "
    "unsupported_media_type, unavailable).",
    ["outcome"],
)
PUBLISH_SECONDS = Histogram(
    "conekta_ingest_publish_seconds",
    "Time from publish to broker confirm.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
ACCEPTED = REQUESTS.labels("accepted")  # bound once: the hot path skips the label lookup


class Counted:
    """A count the hot path changes as a plain attribute; its gauge reads it when scraped (a
    Gauge's inc and dec each take a lock: two per request)."""

    def __init__(self, gauge: Gauge) -> None:
        self.count = 0
        gauge.set_function(lambda: self.count)


IN_FLIGHT = Counted(Gauge("conekta_ingest_requests_in_flight", "Webhook requests being handled."))
UNSIGNED_MODE = Gauge(
    "conekta_ingest_unsigned_mode",
    "1 when the receiver accepts unsigned events (never in production).",
)
