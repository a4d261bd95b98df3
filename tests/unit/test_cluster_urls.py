"""Cluster connection strings: several AMQP nodes, and a Postgres failover seen as "unavailable"
(the worker pauses) rather than as an error that retries or dead-letters events."""

from __future__ import annotations

import asyncpg
import pytest

from core import broker, database
from core.errors import ConfigError, DatabaseUnavailable


def test_amqp_url_lists_nodes_in_order() -> None:
    nodes = broker.node_urls("amqp://u:p@r1:5672/v, amqp://u:p@r2:5673/v,")
    assert [(n.host, n.port, n.path) for n in nodes] == [("r1", 5672, "/v"), ("r2", 5673, "/v")]


def test_amqp_url_must_name_a_node() -> None:
    with pytest.raises(ConfigError, match="names no node"):
        broker.node_urls(" , ")


def test_cluster_connection_takes_the_next_node_on_each_attempt() -> None:
    nodes = broker.node_urls("amqp://u:secret@r1/,amqp://u:secret@r2/,amqp://u:secret@r3/")
    connection = broker.ClusterConnection(nodes[0], nodes=nodes)
    assert [connection.url.host for _ in range(4)] == ["r1", "r2", "r3", "r1"]
    assert "secret" not in str(connection)


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.exceptions.ReadOnlySQLTransactionError("read-only transaction"),
        asyncpg.exceptions.TargetServerAttributeNotMatched("no primary"),
    ],
)
def test_failover_errors_pause_the_worker(error: Exception) -> None:
    assert isinstance(database.translate(error), DatabaseUnavailable)
