"""The `conekta-ingest` command: argument parsing and wiring only. Nothing imports this package.

`main` builds the parser and dispatches; `service` runs the long-lived processes (serve, work,
run, migrate); `tools` holds the one-shot commands on-call uses.
"""
