"""Container health check: the receiver's /healthz (8080), the console's (8081) or the worker's
(9102), whichever runs."""

import os
import sys
import urllib.request

PORTS = (
    os.environ.get("CONEKTA_INGEST_PORT", "8080"),
    "8081",
    os.environ.get("CONEKTA_INGEST_WORKER_METRICS_PORT", "9102"),
)

for port in PORTS:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
            sys.exit(0)
    except OSError:
        continue
sys.exit(1)
