"""The services' start-up heap freeze: full collections skip what start-up allocated."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from prometheus_client import REGISTRY

from credit.heap import freeze_startup_objects


@pytest.fixture
def frozen() -> Iterator[None]:
    freeze_startup_objects()
    yield
    gc.unfreeze()  # the rest of the test session collects as usual


def _pauses(generation: str) -> float:
    labels = {"generation": generation}
    return REGISTRY.get_sample_value("python_gc_pause_seconds_count", labels) or 0.0


def test_startup_objects_are_frozen_and_pauses_are_measured(frozen: None) -> None:
    assert gc.get_freeze_count() > 10_000  # the test session's imports
    before = _pauses("2")
    cycle: list[object] = []
    cycle.append(cycle)
    del cycle
    assert gc.collect() >= 1  # later garbage is still found
    assert _pauses("2") == before + 1
