"""conekta-ingest: verified, durable intake of Conekta webhooks."""
