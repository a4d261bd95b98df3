#!/usr/bin/env python3
"""Make sure PostgreSQL and RabbitMQ accept connections; start local installs that are down.

Stdlib only: runs before the virtualenv exists. Reads DATABASE_URL and AMQP_URL like the service.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

DEFAULTS = {
    "PostgreSQL": ("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/conekta_ingest", 5432),
    "RabbitMQ": ("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/", 5672),
}
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", ""}
WAIT_SECONDS = 90


def reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def start_commands(service: str) -> list[list[str]]:
    """Ways to start a local install, tried in turn."""
    etc = Path("/etc/postgresql")
    if service == "PostgreSQL" and shutil.which("pg_ctlcluster") and etc.is_dir():
        versions = sorted(p.name for p in etc.iterdir())
        if versions:
            return [["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main", "start"]]
    if service == "RabbitMQ" and shutil.which("rabbitmq-server"):
        # A node whose application was stopped (rabbitmqctl stop_app) needs start_app instead.
        return [["rabbitmq-server", "-detached"], ["rabbitmqctl", "start_app"]]
    return []


def ensure(service: str) -> bool:
    var, default, default_port = DEFAULTS[service]
    url = urlsplit(os.environ.get(var, default))
    host, port = url.hostname or "127.0.0.1", url.port or default_port
    if reachable(host, port):
        print(f"{service}: reachable at {host}:{port}")
        return True
    commands = start_commands(service) if host in LOCAL_HOSTS else []
    if not commands:
        print(
            f"{service}: NOT reachable at {host}:{port} ({var}).\n"
            f"  Install and start it (Debian: apt install postgresql rabbitmq-server), or run\n"
            f"  `docker compose -f deploy/compose/compose.yaml up -d postgres rabbitmq`,\n"
            f"  or point {var} at a running one.",
            file=sys.stderr,
        )
        return False
    for command in commands:
        print(f"{service}: not reachable at {host}:{port}; starting it: {' '.join(command)}")
        subprocess.run(command, check=False, capture_output=True)  # noqa: S603 - fixed commands
        if wait_reachable(host, port, WAIT_SECONDS / len(commands)):
            print(f"{service}: up")
            return True
    print(f"{service}: still not reachable after {WAIT_SECONDS}s", file=sys.stderr)
    return False


def wait_reachable(host: str, port: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if reachable(host, port):
            return True
        time.sleep(0.5)
    return False


def main() -> int:
    results = [ensure(service) for service in DEFAULTS]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
