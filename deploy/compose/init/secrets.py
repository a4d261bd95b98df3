"""The compose set-up's passwords, made on the first start instead of shipped (issue 24).

Runs in the one-shot `secrets` service (the application's image, as root, before PostgreSQL and
RabbitMQ start): every password missing from the volumes is drawn at random, and each service's
volume gets only what that service needs:

    /secrets/postgres   postgres (the superuser), owner, worker, console, oncall: the logins'
                        passwords, read by the image's POSTGRES_PASSWORD_FILE and by 10-roles.sh
                        on the first start
    /secrets/rabbitmq   definitions.json: one user per component, and one per fulfillment
                        subscriber in CONEKTA_FULFILLMENT_SUBSCRIBERS, with a salted hash of its
                        own password (no administrator, no guest), their permissions, the
                        topology; <user>.password, the source of the hashes (a subscriber's
                        password is read there, for that service)
    /secrets/<service>  DATABASE_URL and AMQP_URL, whole, read into the environment at start

A later start changes nothing that exists (PostgreSQL reads its passwords only when its data
directory is new), except definitions.json when the subscribers changed (written again from the
same passwords; RabbitMQ imports it at its next start): `docker compose down -v` forgets them
together with the data.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core import topology
from core.settings import subscriber_names

ROOT = Path(os.environ.get("CONEKTA_SECRETS_DIR", "/secrets"))
DATABASE = "postgres:5432/conekta_ingest"
BROKER = "rabbitmq:5672/"
# service: (database role or None, broker user or None)
# (README "Roles and permissions": each component its own database role)
SERVICES: dict[str, tuple[str | None, str | None]] = {
    "migrate": ("conekta_owner", topology.MIGRATE_USER.name),
    "receiver": (None, topology.RECEIVER_USER.name),
    "worker": ("conekta_worker_app", topology.WORKER_USER.name),
    "console": ("conekta_console_app", topology.CONSOLE_USER.name),
    # the people's tools (profile `tools`): the on-call CLI, and the owner's administration
    "oncall": ("conekta_oncall_app", topology.CONSOLE_USER.name),
    "admin": ("conekta_owner", None),
}
DATABASE_ROLES = {  # login: file under postgres/
    "conekta_owner": "owner",
    "conekta_worker_app": "worker",
    "conekta_console_app": "console",
    "conekta_oncall_app": "oncall",
}


def password() -> str:
    """192 random bits, URL-safe as it stands (no quoting in a connection URL)."""
    return secrets.token_hex(24)


def kept(path: Path, make: Callable[[], str]) -> str:
    """The file's text, written first (readable, in a volume only its service mounts) when new."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(path.name + ".new")
        temporary.write_text(make())
        temporary.chmod(0o444)  # PostgreSQL and RabbitMQ read them as their own users
        temporary.replace(path)
    return path.read_text()


def rabbitmq_password_hash(password: str, salt: bytes) -> str:
    """RabbitMQ's rabbit_password_hashing_sha256: base64(salt + sha256(salt + password))."""
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


def broker_users() -> tuple[topology.BrokerUser, ...]:
    """The components' users, then one per fulfillment subscriber."""
    names = subscriber_names(os.environ.get("CONEKTA_FULFILLMENT_SUBSCRIBERS", ""))
    return topology.USERS + tuple(topology.subscriber_user(n) for n in names)


def definitions(
    hashes: dict[str, str], users: tuple[topology.BrokerUser, ...], vhost: str = "/"
) -> dict[str, Any]:
    """A definitions file: one user per component and subscriber (a definitions import creates
    no `guest`, and none of them is an administrator), their permissions, then the topology."""
    return {
        "users": [
            {
                "name": user.name,
                "password_hash": hashes[user.name],
                "hashing_algorithm": "rabbit_password_hashing_sha256",
                "tags": [],
            }
            for user in users
        ],
        "vhosts": [{"name": vhost}],
        "permissions": [
            {
                "user": user.name,
                "vhost": vhost,
                "configure": user.configure,
                "write": user.write,
                "read": user.read,
            }
            for user in users
        ],
        "exchanges": [
            {
                "name": e.name,
                "vhost": vhost,
                "type": e.type.value,
                "durable": True,
                "auto_delete": False,
                "internal": False,
                "arguments": dict(e.arguments),
            }
            for e in topology.EXCHANGES
        ],
        "queues": [
            {
                "name": q.name,
                "vhost": vhost,
                "durable": True,
                "auto_delete": False,
                "arguments": dict(q.arguments),
            }
            for q in topology.QUEUES
        ],
        "bindings": [
            {
                "source": exchange,
                "vhost": vhost,
                "destination": q.name,
                "destination_type": "queue",
                "routing_key": key,
                "arguments": {},
            }
            for q in topology.QUEUES
            for exchange, key in q.bindings
        ],
    }


def main(root: Path = ROOT) -> int:
    kept(root / "postgres" / "postgres", password)
    roles = {
        role: kept(root / "postgres" / name, password) for role, name in DATABASE_ROLES.items()
    }
    everyone = broker_users()
    users = {u.name: kept(root / "rabbitmq" / f"{u.name}.password", password) for u in everyone}
    hashes = {name: rabbitmq_password_hash(users[name], secrets.token_bytes(4)) for name in users}
    # Rewritten from the passwords when missing only (the hashes' salts stay as first drawn), or
    # when a subscriber was added or removed.
    path = root / "rabbitmq" / "definitions.json"
    if path.exists() and {u["name"] for u in json.loads(path.read_text())["users"]} != set(users):
        path.unlink()
    kept(path, lambda: json.dumps(definitions(hashes, everyone), indent=2))
    for service, (role, user) in SERVICES.items():
        if role:
            url = f"postgresql://{role}:{roles[role]}@{DATABASE}"
            kept(root / service / "DATABASE_URL", lambda url=url: url)
        if user:
            url = f"amqp://{user}:{users[user]}@{BROKER}"
            kept(root / service / "AMQP_URL", lambda url=url: url)
    print(f"compose secrets ready in {root} (existing ones kept)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
