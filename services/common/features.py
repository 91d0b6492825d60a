"""The services' view of the feature store: a client's or a new application's model inputs.

Wraps the Feast read path and turns its failures into the service layer's typed errors:
an unknown client is NOT_FOUND; a store that cannot be reached is UNAVAILABLE (and the next
request tries again, so serving resumes when the store is back, without a restart); a store
that is not a complete materialisation for the model (no marker, probes gone, half a
client: see ``store_guard``) is UNAVAILABLE ``feature-store-incomplete``, never NOT_FOUND.
"""

from __future__ import annotations

import time
from typing import Any

import polars as pl
import structlog
from feast.infra.online_stores.redis import RedisOnlineStore
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from services.common.errors import FeatureStoreIncomplete, NotFound, Unavailable
from services.common.metrics import (
    FEATURE_READ_ERRORS,
    FEATURE_READ_LATENCY,
    hide_feast_server_metrics,
)
from services.common.store_guard import STORE_DOWN, StoreGuard
from serving_core.application import application_features
from serving_core.bundle import ScoringModel
from serving_core.feature_store.client_index import ClientIndex
from serving_core.feature_store.completeness import VIEWS, MarkerStore
from serving_core.feature_store.reader import (
    FeatureServiceMismatch,
    IncompleteClient,
    OnlineFeatureReader,
    StaleFeatures,
    UnknownClient,
    UnknownModelVersion,
    service_name,
)

log = structlog.get_logger(__name__)
hide_feast_server_metrics()  # Feast is imported by now; its metrics are not ours
__all__ = ["STORE_DOWN", "FeatureSource", "fail_fast"]


# redis-py retries a refused connection 3 times with a 1-10 s backoff and has no socket
# timeouts by default: a store that is down would hold every request (and a server worker)
# for seconds, and callers would see their deadline pass instead of a prompt UNAVAILABLE.
REDIS_RETRY = Retry(ExponentialBackoff(cap=0.05, base=0.01), retries=1)
REDIS_TIMEOUTS = {"socket_connect_timeout": 0.5, "socket_timeout": 1.0}


def fail_fast(reader: OnlineFeatureReader) -> None:
    """Short retries and socket timeouts on the reader's Redis client (timeouts given in
    the connection string win)."""
    online_store = reader.store._get_provider().online_store
    if not isinstance(online_store, RedisOnlineStore):
        return
    client = online_store._get_client(reader.store.config.online_store)
    client.set_retry(REDIS_RETRY)
    connection_kwargs = client.get_connection_kwargs()
    for name, seconds in REDIS_TIMEOUTS.items():
        if connection_kwargs.get(name) is None:
            connection_kwargs[name] = seconds


class FeatureSource:
    def __init__(self, reader: OnlineFeatureReader, check_seconds: float = 3.0) -> None:
        self.reader = reader
        fail_fast(reader)
        # Shares the reader's store, hence its Redis client and fail-fast settings.
        self.guard = StoreGuard(MarkerStore(reader.store), check_seconds)
        self.index = ClientIndex(reader.store)
        self._no_index_logged = False

    @classmethod
    def open(cls, check_seconds: float) -> FeatureSource:
        """The online store the feature-store settings (environment) name, guarded."""
        from serving_core.feature_store.settings import open_store

        return cls(OnlineFeatureReader(open_store()), check_seconds=check_seconds)

    def start(self) -> None:
        """Check the store's completeness now, then periodically (``stop`` ends it)."""
        self.guard.start()

    def stop(self) -> None:
        self.guard.stop()

    def ready_for(self, model_version: str) -> bool:
        """Whether the store is complete for this model version's feature service."""
        return self.guard.complete(service_name(model_version))

    def _incomplete(self, name: str) -> FeatureStoreIncomplete:
        state = self.guard.state(name)
        why = state.why if state is not None else "its completeness could not be checked"
        return FeatureStoreIncomplete(f"feature store incomplete for {name}: {why}")

    def client(self, client_id: int, model: ScoringModel) -> dict[str, Any]:
        """The stored features of a known client, for the model's own feature service."""
        name = service_name(model.model_version)
        state = self.guard.state(name)  # in memory once known: no store round trip
        if state is None:  # never checked: the store did not answer the first check
            FEATURE_READ_ERRORS.labels("unreachable").inc()
            raise Unavailable("feature store unreachable")
        if not state.complete:
            FEATURE_READ_ERRORS.labels("incomplete").inc()
            raise self._incomplete(name)
        started = time.perf_counter()
        try:
            return self.reader.get_client_features(
                client_id, model.model_version, model.feature_names
            )
        except UnknownClient as error:
            # Emptied since the last check? The markers and probe clients are read again
            # (a few reads, on this path only) before "unknown" is said.
            if not self.guard.check([name]):
                FEATURE_READ_ERRORS.labels("unreachable").inc()
                raise Unavailable("feature store unreachable") from error
            if self.guard.complete(name):
                raise NotFound(f"unknown client {client_id}") from error
            FEATURE_READ_ERRORS.labels("incomplete").inc()
            raise self._incomplete(name) from error
        except IncompleteClient as error:
            FEATURE_READ_ERRORS.labels("incomplete").inc()
            log.error("feature_store_incomplete_client", error=str(error))
            raise FeatureStoreIncomplete(f"feature store incomplete: {error}") from error
        except (UnknownModelVersion, FeatureServiceMismatch) as error:
            FEATURE_READ_ERRORS.labels("feature_service").inc()
            # The store was not materialised for this model: an operator must act.
            raise Unavailable(f"feature store not ready for this model: {error}") from error
        except StaleFeatures as error:
            FEATURE_READ_ERRORS.labels("stale").inc()
            raise Unavailable(str(error)) from error
        except STORE_DOWN as error:
            FEATURE_READ_ERRORS.labels("unreachable").inc()
            log.warning("feature_store_unreachable", error=type(error).__name__)
            raise Unavailable("feature store unreachable") from error
        finally:
            FEATURE_READ_LATENCY.observe(time.perf_counter() - started)

    def search(self, prefix: str, limit: int) -> list[int]:
        """Up to ``limit`` ids of stored clients starting with ``prefix``, ascending, from
        the index the materialisation writes (one indexed read, never a key scan). A store
        that is not a complete materialisation is UNAVAILABLE, as a client read is; a
        complete one without an index (materialised before it existed) finds nothing."""
        state = self.guard.state(VIEWS)  # in memory once known
        if state is None:
            FEATURE_READ_ERRORS.labels("unreachable").inc()
            raise Unavailable("feature store unreachable")
        if not state.complete:
            FEATURE_READ_ERRORS.labels("incomplete").inc()
            raise FeatureStoreIncomplete(f"feature store incomplete: {state.why}")
        try:
            found = self.index.search(prefix, limit)
        except STORE_DOWN as error:
            FEATURE_READ_ERRORS.labels("unreachable").inc()
            log.warning("feature_store_unreachable", error=type(error).__name__)
            raise Unavailable("feature store unreachable") from error
        if found is None:
            if not self._no_index_logged:  # once per process: every search would say it
                self._no_index_logged = True
                log.warning(
                    "client_index_missing",
                    why="the online store was materialised before the client index existed",
                    effect="client searches find nothing",
                    hint="run `credit materialize` to write it",
                )
            return []
        self._no_index_logged = False  # written since: say it again if it goes
        return found

    def application(self, raw: dict[str, Any], model: ScoringModel) -> dict[str, Any]:
        """Features of a new application: computed by the training pipeline's own functions;
        a known client's history comes from the store."""
        features: dict[str, Any] = {}
        if "SK_ID_CURR" in raw:
            features.update(self.client(int(raw["SK_ID_CURR"]), model))
        # The on-demand view's own function, called in-process: Feast's on-demand read path
        # gives the same values (tested) but costs ~60 ms against ~2 ms.
        frame = pl.DataFrame([raw], infer_schema_length=None)
        features.update(application_features(frame).row(0, named=True))
        return {name: features.get(name) for name in model.feature_names}
