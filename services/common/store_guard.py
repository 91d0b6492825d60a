"""Whether the online store is complete for what a service serves, known without a store
round trip per request.

The markers (``serving_core.feature_store.completeness``) are read at start, every
``check_seconds`` on a thread of this guard's own, and whenever a read finds no client
(the store may have been emptied since the last check, and "unknown client" must never be
said about a store that lost its data). Between checks a request only looks up a dict. A
check also reads the run's probe clients (a few indexed reads), so a store that kept its
markers but lost clients (evictions, a partial copy) stops counting as complete too; the
marker-only check of a name seen for the first time probes only when the run changed.

A store that cannot be reached is not declared incomplete: the last known state stands (the
reads themselves answer UNAVAILABLE "unreachable", as before).
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import redis
import structlog

from services.common.metrics import (
    FEATURE_STORE_CHECKS,
    FEATURE_STORE_COMPLETE,
    FEATURE_STORE_MARKER_CLIENTS,
    FEATURE_STORE_MARKER_TIME,
)
from serving_core.feature_store.completeness import VIEWS, Marker, MarkerStore

log = structlog.get_logger(__name__)
# What "the store is down" looks like from the SQLite and Redis clients.
STORE_DOWN = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    sqlite3.OperationalError,
    OSError,
)


@dataclass(frozen=True)
class State:
    complete: bool
    why: str  # what an operator reads in a log line or an UNAVAILABLE message
    marker: Marker | None = None


class StoreGuard:
    def __init__(self, markers: MarkerStore, check_seconds: float = 3.0) -> None:
        if check_seconds <= 0:
            raise ValueError(f"check_seconds must be positive, got {check_seconds}")
        self.markers = markers
        self.check_seconds = check_seconds
        self.listeners: list[Callable[[], None]] = []  # called when a state changes
        self._states: dict[str, State] = {}
        self._watched: set[str] = {VIEWS}
        self._probed_run: str | None = None  # the run whose probe clients were found
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- what requests and readiness ask (no I/O once a name has been checked) ----------
    def state(self, name: str) -> State | None:
        """The last known state of ``name``; checked now if never checked (then None when
        the store could not be reached)."""
        state = self._states.get(name)
        if state is None:
            self.check([name], probe=False)
            state = self._states.get(name)
        return state

    def complete(self, name: str) -> bool:
        state = self.state(name)
        return state is not None and state.complete

    # -- checks ----------------------------------------------------------------------
    def check(self, names: Iterable[str] = (), *, probe: bool = True) -> bool:
        """Read the markers (and the probe clients when ``probe``, or when the run changed)
        and update the state of every watched name plus ``names``. False when the store
        could not be reached (states unchanged)."""
        with self._lock:
            self._watched.update(names)
            try:
                markers = self.markers.read()
                record = markers.get(VIEWS)
                missing = None
                if record is not None and (probe or record.run_id != self._probed_run):
                    missing = self.markers.missing(record.probes, record.views)
                    self._probed_run = None if missing is not None else record.run_id
            except STORE_DOWN as error:
                FEATURE_STORE_CHECKS.labels("unreachable").inc()
                log.warning("feature_store_check_failed", error=f"{type(error).__name__}: {error}")
                return False
            changed = []
            for name in sorted(self._watched):
                new = _judge(name, markers.get(name), record, missing)
                old = self._states.get(name)
                self._states[name] = new
                _export(name, new)
                if old is None or old.complete != new.complete:
                    changed.append((name, new))
            outcome = all(self._states[n].complete for n in self._watched)
            FEATURE_STORE_CHECKS.labels("complete" if outcome else "incomplete").inc()
        for name, new in changed:
            if new.complete and new.marker is not None:
                log.info(
                    "feature_store_complete",
                    feature_service=name,
                    run_id=new.marker.run_id,
                    clients=new.marker.clients,
                    completed_at=new.marker.completed_at.isoformat(),
                )
            else:
                log.error("feature_store_incomplete", feature_service=name, why=new.why)
        if changed:
            for listener in self.listeners:
                listener()
        return True

    def start(self) -> None:
        """Check now, then every ``check_seconds`` until ``stop``."""
        self.check()
        self._thread = threading.Thread(target=self._run, name="store-guard", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self.check_seconds):
            try:
                self.check()
            except Exception:  # a bug must not end the checks: the last state would stick
                log.exception("feature_store_check_crashed")
                time.sleep(self.check_seconds)


def _judge(name: str, marker: Marker | None, record: Marker | None, missing: int | None) -> State:
    if record is None:
        return State(False, "no complete materialisation in the online store (no marker)")
    if missing is not None:
        return State(
            False,
            f"the online store no longer matches its marker (run {record.run_id}, "
            f"{record.clients} clients): client {missing} is gone",
            marker,
        )
    if marker is None:
        return State(
            False,
            f"no marker for {name}: not registered, or not loaded by run {record.run_id} "
            "(run `credit materialize`)",
        )
    if marker.run_id != record.run_id:
        why = f"{name}'s marker is of run {marker.run_id}, the store of run {record.run_id}"
        return State(False, why, marker)
    return State(True, f"run {record.run_id}", marker)


def _export(name: str, state: State) -> None:
    FEATURE_STORE_COMPLETE.labels(name).set(1 if state.complete else 0)
    if state.marker is None:
        for gauge in (FEATURE_STORE_MARKER_TIME, FEATURE_STORE_MARKER_CLIENTS):
            # Feast's import sets PROMETHEUS_MULTIPROC_DIR, which makes remove() warn; the
            # services' metrics stay in memory all the same (test_services checks it).
            with contextlib.suppress(KeyError), warnings.catch_warnings():
                warnings.filterwarnings("ignore", "Removal of labels", UserWarning)
                gauge.remove(name)
        return
    FEATURE_STORE_MARKER_TIME.labels(name).set(state.marker.completed_at.timestamp())
    FEATURE_STORE_MARKER_CLIENTS.labels(name).set(state.marker.clients)
