"""Markers come from the folder: tests/unit is `unit` (no I/O), tests/integration `integration`."""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).parent
MARKERS = {
    "unit": pytest.mark.unit,
    "integration": pytest.mark.integration,
    "faults": pytest.mark.faults,
    "deploy": pytest.mark.deploy,
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        folder = Path(str(item.fspath)).relative_to(HERE).parts[0]
        if folder in MARKERS:
            item.add_marker(MARKERS[folder])
