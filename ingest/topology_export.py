"""The topology of `ingest.topology`, written the two ways deploy/ declares it.

- RabbitMQ definitions (imported at boot by the compose set-up);
- messaging-topology-operator resources (Exchange, Queue, Binding) for Kubernetes.

deploy/ holds the rendered files; a test renders them again and compares, so they cannot drift.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from ingest import topology


def rabbitmq_password_hash(password: str, salt: bytes) -> str:
    """RabbitMQ's rabbit_password_hashing_sha256: base64(salt + sha256(salt + password))."""
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


def definitions(user: str, password_hash: str, vhost: str = "/") -> dict[str, Any]:
    """A definitions file: the user (a definitions import creates no `guest`), then the topology."""
    return {
        "users": [
            {
                "name": user,
                "password_hash": password_hash,
                "hashing_algorithm": "rabbit_password_hashing_sha256",
                "tags": ["administrator"],
            }
        ],
        "vhosts": [{"name": vhost}],
        "permissions": [
            {"user": user, "vhost": vhost, "configure": ".*", "write": ".*", "read": ".*"}
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


def _k8s_name(name: str) -> str:
    return name.replace(".", "-").replace("_", "-").lower()


def operator_resources(cluster: str, namespace: str) -> list[dict[str, Any]]:
    """Exchange, Queue and Binding resources for the messaging-topology-operator."""

    def resource(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        return {
            "apiVersion": "rabbitmq.com/v1beta1",
            "kind": kind,
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": {"app.kubernetes.io/part-of": "conekta-ingest"},
            },
            "spec": {**spec, "rabbitmqClusterReference": {"name": cluster}},
        }

    exchanges = [
        resource(
            "Exchange",
            _k8s_name(e.name),
            {
                "name": e.name,
                "type": e.type.value,
                "durable": True,
                "autoDelete": False,
                **({"arguments": dict(e.arguments)} if e.arguments else {}),
            },
        )
        for e in topology.EXCHANGES
    ]
    queues = [
        resource(
            "Queue",
            _k8s_name(q.name),
            {
                "name": q.name,
                "type": q.arguments["x-queue-type"],
                "durable": True,
                "autoDelete": False,
                **(
                    {"arguments": args}
                    if (args := {k: v for k, v in q.arguments.items() if k != "x-queue-type"})
                    else {}
                ),
            },
        )
        for q in topology.QUEUES
    ]
    bindings = [
        resource(
            "Binding",
            _k8s_name(f"{exchange}-to-{q.name}-{key or 'all'}"),
            {
                "source": exchange,
                "destination": q.name,
                "destinationType": "queue",
                "routingKey": key,
            },
        )
        for q in topology.QUEUES
        for exchange, key in q.bindings
    ]
    return exchanges + queues + bindings
