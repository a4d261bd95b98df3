"""The process lifecycle's collector tuning."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from core import lifecycle

pytestmark = pytest.mark.unit


@pytest.fixture
def restored_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


def test_start_up_objects_are_frozen_and_collections_come_less_often(restored_gc: None) -> None:
    older = gc.get_threshold()[1:]
    lifecycle.tune_gc()
    assert gc.get_threshold() == (lifecycle.GC_THRESHOLD, *older)
    assert gc.get_freeze_count() > 0
    assert gc.isenabled()  # cycles are still collected, only less often
