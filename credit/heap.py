"""Garbage-collector settings every long-running service applies once it is ready.

A service's heap after start-up is mostly imports (feast, mlflow, pandas, the model):
~400,000 tracked objects in the scoring service, ~100,000 in the gateway. CPython's full
collection walks all of them: 60 to 230 ms with the GIL held, i.e. every request in flight
stalls that long whenever the collector decides a full pass is due (seen as ~100 ms
outliers in the REST p99). ``gc.freeze()`` moves everything alive at that point into a
permanent generation the collector skips; objects created afterwards are collected as
usual. A histogram of collection pauses makes any remaining stall visible to SREs.
"""

from __future__ import annotations

import gc
import time
from typing import Any

import structlog
from prometheus_client import Histogram

log = structlog.get_logger(__name__)
GC_PAUSES = Histogram(
    "python_gc_pause_seconds",
    "Garbage-collection pauses (GIL held), by generation.",
    ["generation"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
)
_started: list[float] = []


def _time_collection(phase: str, info: dict[str, Any]) -> None:
    if phase == "start":
        _started[:] = [time.perf_counter()]
    elif _started:
        GC_PAUSES.labels(str(info["generation"])).observe(time.perf_counter() - _started[0])


def freeze_startup_objects() -> None:
    """Call once start-up is done (modules imported, model loaded), before serving."""
    gc.collect()  # start-up garbage is freed now rather than frozen for good
    gc.freeze()
    if _time_collection not in gc.callbacks:
        gc.callbacks.append(_time_collection)
    log.info("heap_frozen", objects=gc.get_freeze_count())
