"""The fault run uses the integration tests' isolated services."""

from tests.integration.conftest import (  # noqa: F401 - fixtures
    amqp_url,
    broker,
    database_url,
    key_pair,
    settings,
    template_database,
)
