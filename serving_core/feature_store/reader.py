"""Model feature services and the online read path.

One FeatureService per registered model version (``credit_model_v{version}``) lists exactly
that model's inputs; the scorer asks for the service of the version it serves, so a model is
never fed another version's feature set. A client the store has never seen raises
``UnknownClient`` rather than returning a vector of nulls that would be scored silently.

Two read backends behind one interface (see feature_repo/README.md for the measurements):

- ``sdk``: ``FeatureStore.get_online_features`` with the feature service (any online store).
- ``direct``: the same storage read without the SDK's per-request bookkeeping. On Redis all
  views of a client live in one hash (key = Feast's serialised entity key + project, fields =
  murmur3 of ``view:feature``), so one HGETALL fetches the whole vector; on SQLite one indexed
  SELECT per view on Feast's table (its primary key is ``(entity_key, feature_name)``), on a
  connection of our own that skips Feast's per-row timestamp conversion. Both decode
  Feast's ``Value`` bytes, with a shortcut for the doubles that make most of a vector.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Literal, cast

from feast import FeatureService, FeatureStore, FeatureView
from feast.errors import FeatureServiceNotFoundException
from feast.infra.key_encoding_utils import serialize_entity_key
from feast.infra.online_stores.helpers import _mmh3, _redis_key
from feast.infra.online_stores.redis import RedisOnlineStore, _versioned_fv_name
from feast.infra.online_stores.sqlite import SqliteOnlineStore, _quote_id, _table_id
from feast.protos.feast.serving.ServingService_pb2 import FieldStatus
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from google.protobuf.timestamp_pb2 import Timestamp

from serving_core.feature_store.completeness import mark_service
from serving_core.feature_store.definitions import (
    APPLICATION_VIEW,
    HISTORY_VIEW,
    JOIN_KEY,
    ON_DEMAND_VIEW,
    request_fields,
)
from serving_core.feature_store.value_bytes import DOUBLE, DOUBLE_SIZE, DOUBLE_TAG

Backend = Literal["sdk", "direct", "auto"]
SERVICE_PREFIX = "credit_model_v"
MODEL_VERSION_TAG = "model_version"
# SQLite page cache of each reading thread's connection, in KiB. The default (2 MiB, ~500
# pages) is smaller than what a few hundred clients' reads touch (~12 pages each), so every
# read went back to the OS for ~14 pages, and those pages were not always in its cache.
SQLITE_CACHE_KIB = 32 * 1024


class FeatureStoreError(Exception):
    """Base of the feature store's typed errors."""


class UnknownClient(FeatureStoreError, KeyError):
    def __init__(self, client_id: int) -> None:
        super().__init__(f"client {client_id} is not in the online store")
        self.client_id = client_id


class IncompleteClient(FeatureStoreError):
    """The store holds part of a client: a view missing, or views from two runs (their
    event times differ). Never served: half a vector is not the client."""

    def __init__(self, client_id: int, stamps: dict[str, datetime | None]) -> None:
        shown = {view: stamp and stamp.isoformat() for view, stamp in stamps.items()}
        super().__init__(f"client {client_id} is incomplete in the online store: {shown}")
        self.client_id = client_id


class StaleFeatures(FeatureStoreError):
    """The client's features are older than their view's TTL (materialisation stopped?)."""


class UnknownModelVersion(FeatureStoreError, KeyError):
    def __init__(self, model_version: str) -> None:
        super().__init__(
            f"no feature service {service_name(model_version)!r}: model version "
            f"{model_version} was never registered with register_model_features"
        )
        self.model_version = model_version


class FeatureServiceMismatch(FeatureStoreError, ValueError):
    def __init__(self, name: str, expected: Sequence[str], served: Sequence[str]) -> None:
        missing = sorted(set(expected) - set(served))
        extra = sorted(set(served) - set(expected))
        super().__init__(
            f"feature service {name!r} does not match the model's features: "
            f"missing {missing[:10]}{'...' if len(missing) > 10 else ''}, "
            f"unexpected {extra[:10]}{'...' if len(extra) > 10 else ''}"
        )
        self.missing, self.extra = missing, extra


def service_name(model_version: str | int) -> str:
    return f"{SERVICE_PREFIX}{model_version}"


def service_features(service: FeatureService) -> list[str]:
    return [f.name for p in service.feature_view_projections for f in p.features]


def register_model_features(
    store: FeatureStore, model_version: str | int, feature_names: Sequence[str]
) -> FeatureService:
    """Create ``credit_model_v{version}`` listing exactly ``feature_names``.

    Versions are immutable: registering an existing version with other features raises
    ``FeatureServiceMismatch`` instead of silently changing what a deployed model reads.
    """
    name = service_name(model_version)
    views = {v.name: v for v in store.list_feature_views()}
    owner = {f.name: view for view in views.values() for f in view.features}
    unknown = [n for n in feature_names if n not in owner]
    if unknown:
        raise FeatureServiceMismatch(name, feature_names, [n for n in feature_names if n in owner])
    try:
        existing = store.get_feature_service(name, allow_cache=False)
    except FeatureServiceNotFoundException:
        existing = None
    if existing is not None:
        if set(service_features(existing)) != set(feature_names):
            raise FeatureServiceMismatch(name, feature_names, service_features(existing))
        mark_service(store, name, str(model_version))
        return existing
    wanted = set(feature_names)
    projections = [
        view[[f.name for f in view.features if f.name in wanted]]
        for view in views.values()
        if any(f.name in wanted for f in view.features)
    ]
    service = FeatureService(
        name=name,
        features=projections,
        tags={MODEL_VERSION_TAG: str(model_version)},
        description=f"Inputs of credit model version {model_version}.",
    )
    store.apply([service])
    # Its marker comes from the last complete materialisation (none yet: not servable).
    mark_service(store, name, str(model_version))
    return service


def _python(value: ValueProto) -> Any:
    kind = value.WhichOneof("val")
    return None if kind is None else getattr(value, kind)


def _value(blob: bytes) -> Any:
    """The Python value of a serialised Feast ``Value`` (None when missing): doubles are
    unpacked directly (~0.2 µs instead of ~1.5 µs for a parsed message)."""
    if len(blob) == DOUBLE_SIZE and blob[0] == DOUBLE_TAG:
        return DOUBLE.unpack_from(blob, 1)[0]
    return _python(ValueProto.FromString(blob)) if blob else None


class OnlineFeatureReader:
    """Reads one client's model features (or a new application's) from the online store."""

    def __init__(self, store: FeatureStore, backend: Backend = "auto") -> None:
        self.store = store
        self.backend: Backend = "direct" if backend == "auto" else backend
        self._online_store = store._get_provider().online_store
        self._services: dict[str, tuple[FeatureService, list[str]]] = {}
        self._checked: dict[str, Sequence[str]] = {}
        # Per model version: [(view, [feature names], [redis hash fields])].
        self._plans: dict[str, list[tuple[FeatureView, list[str], list[bytes]]]] = {}
        self._request_fields = {f.name: f.dtype.to_value_type().name for f in request_fields()}
        self._sqlite = threading.local()  # sqlite3 connections are not shared across threads

    # -- feature services ------------------------------------------------------------
    def feature_service(
        self, model_version: str | int, feature_names: Sequence[str] | None = None
    ) -> tuple[FeatureService, list[str]]:
        """The version's service and its feature names; checked against the caller's model."""
        key = str(model_version)
        if key not in self._services:
            try:
                service = self.store.get_feature_service(service_name(key), allow_cache=False)
            except FeatureServiceNotFoundException as error:
                raise UnknownModelVersion(key) from error
            # Versions are immutable (register_model_features), so caching is safe.
            self._services[key] = (service, service_features(service))
        service, names = self._services[key]
        # A served model passes the same list on every call: checked once per version.
        if feature_names is not None and self._checked.get(key) is not feature_names:
            if set(feature_names) != set(names):
                raise FeatureServiceMismatch(service.name, feature_names, names)
            self._checked[key] = feature_names
        return service, names

    def _plan(self, model_version: str) -> list[tuple[FeatureView, list[str], list[bytes]]]:
        if model_version not in self._plans:
            service, _ = self.feature_service(model_version)
            plan = []
            for projection in service.feature_view_projections:
                view = self.store.get_feature_view(projection.name)
                names = [f.name for f in projection.features]
                fv_name = _versioned_fv_name(view, self.store.config)
                fields = [_mmh3(f"{fv_name}:{n}") for n in names]
                fields.append(f"_ts:{fv_name}".encode())
                plan.append((view, names, fields))
            self._plans[model_version] = plan
        return self._plans[model_version]

    # -- clients ---------------------------------------------------------------------
    def get_client_features(
        self,
        client_id: int,
        model_version: str | int,
        feature_names: Sequence[str] | None = None,
    ) -> dict[str, Any]:
        """{feature: value} of a known client, None where the client has no value.

        ``feature_names`` (the served model's inputs) must equal the version's service;
        the result follows their order when given.
        """
        _, names = self.feature_service(model_version, feature_names)
        if self.backend == "sdk":
            values, stamps = self._read_sdk(int(client_id), str(model_version))
        elif isinstance(self._online_store, RedisOnlineStore):
            values, stamps = self._read_redis(int(client_id), str(model_version))
        elif isinstance(self._online_store, SqliteOnlineStore):
            values, stamps = self._read_sqlite(int(client_id), str(model_version))
        else:
            values, stamps = self._read_store(int(client_id), str(model_version))
        if all(stamp is None for stamp in stamps.values()):
            raise UnknownClient(client_id)
        # Materialisation writes every view of a client at once with one event time: any
        # other shape is a write cut short or two runs' data, not a client to score.
        if None in stamps.values() or len(set(stamps.values())) > 1:
            raise IncompleteClient(client_id, {view.name: s for view, s in stamps.items()})
        self._check_fresh(client_id, stamps)
        return {n: values.get(n) for n in (feature_names or names)}

    def _check_fresh(self, client_id: int, stamps: dict[FeatureView, datetime | None]) -> None:
        # Feast's online read ignores TTLs; the views' TTLs are enforced here so a stopped
        # materialisation CronJob shows up as errors, not as scores on stale history.
        now = datetime.now(tz=UTC)
        for view, stamp in stamps.items():
            if stamp is not None and view.ttl and now - stamp > view.ttl:
                raise StaleFeatures(
                    f"client {client_id}: {view.name} written {stamp:%Y-%m-%d}, "
                    f"older than its TTL {view.ttl}"
                )

    def _entity_key(self, client_id: int) -> EntityKeyProto:
        return EntityKeyProto(join_keys=[JOIN_KEY], entity_values=[ValueProto(int64_val=client_id)])

    def _read_sdk(
        self, client_id: int, model_version: str
    ) -> tuple[dict[str, Any], dict[FeatureView, datetime | None]]:
        service, _ = self.feature_service(model_version)
        response = self.store.get_online_features(
            features=service, entity_rows=[{JOIN_KEY: client_id}]
        ).proto
        names = list(response.metadata.feature_names.val)
        values: dict[str, Any] = {}
        found: dict[str, datetime | None] = {}
        for name, vector in zip(names, response.results, strict=True):
            if name == JOIN_KEY:
                continue
            values[name] = _python(vector.values[0])
            stamp = vector.event_timestamps[0]
            # Redis reports an absent hash as PRESENT nulls with a zero timestamp.
            present = vector.statuses[0] != FieldStatus.NOT_FOUND and stamp.seconds > 0
            found[name] = stamp.ToDatetime(UTC) if present else None
        stamps = {
            view: next((found[n] for n in view_names if found.get(n)), None)
            for view, view_names, _ in self._plan(model_version)
        }
        return values, stamps

    def _read_redis(
        self, client_id: int, model_version: str
    ) -> tuple[dict[str, Any], dict[FeatureView, datetime | None]]:
        plan = self._plan(model_version)
        config = self.store.config
        client = cast(RedisOnlineStore, self._online_store)._get_client(config.online_store)
        key = _redis_key(
            config.project,
            self._entity_key(client_id),
            entity_key_serialization_version=config.entity_key_serialization_version,
        )
        # All views of one entity share its hash: one round trip. HGETALL, not HMGET: Redis
        # keeps a ~220-field hash as a listpack, where HMGET scans it once per field asked
        # (0.86 ms for a whole vector) and HGETALL walks it once (0.30 ms).
        stored = client.hgetall(key)
        values: dict[str, Any] = {}
        stamps: dict[FeatureView, datetime | None] = {}
        for view, names, fields in plan:
            for name, field in zip(names, fields, strict=False):  # fields end with _ts
                blob = stored.get(field)
                values[name] = None if blob is None else _value(blob)
            stamp = stored.get(fields[-1])
            stamps[view] = None if stamp is None else Timestamp.FromString(stamp).ToDatetime(UTC)
        return values, stamps

    def _sqlite_connection(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self._sqlite, "connection", None)
        if connection is None:
            path = cast(SqliteOnlineStore, self._online_store)._get_db_path(self.store.config)
            # Read-only, and without detect_types: Feast's connection converts the
            # timestamp of every row (one per feature); one per view is enough here.
            connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            connection.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
            self._sqlite.connection = connection
        return connection

    def _read_sqlite(
        self, client_id: int, model_version: str
    ) -> tuple[dict[str, Any], dict[FeatureView, datetime | None]]:
        config = self.store.config
        entity_key = serialize_entity_key(
            self._entity_key(client_id),
            entity_key_serialization_version=config.entity_key_serialization_version,
        )
        versioning = config.registry.enable_online_feature_view_versioning
        connection = self._sqlite_connection()
        unpack_double = DOUBLE.unpack_from
        values: dict[str, Any] = {}
        stamps: dict[FeatureView, datetime | None] = {}
        # One read transaction for all views: they come from the same materialisation
        # commit, and the file is locked and checked once instead of once per view.
        connection.execute("BEGIN")
        try:
            for view, _, _ in self._plan(model_version):
                table = _quote_id(_table_id(config.project, view, versioning))
                rows = connection.execute(
                    f"SELECT feature_name, value, event_ts FROM {table} WHERE entity_key = ?",
                    (entity_key,),
                ).fetchall()
                # Doubles (all but a few values) unpacked inline: a call per value is ~20 %
                # of the read. Names outside the view's projection are dropped by the caller.
                for name, blob, _ in rows:
                    if blob is not None and len(blob) == DOUBLE_SIZE and blob[0] == DOUBLE_TAG:
                        values[name] = unpack_double(blob, 1)[0]
                    else:
                        values[name] = _value(blob) if blob is not None else None
                stamps[view] = _sqlite_time(rows[0][2]) if rows else None
        finally:
            connection.rollback()  # ends the read transaction (a no-op when none is open)
        return values, stamps

    def _read_store(
        self, client_id: int, model_version: str
    ) -> tuple[dict[str, Any], dict[FeatureView, datetime | None]]:
        values: dict[str, Any] = {}
        stamps: dict[FeatureView, datetime | None] = {}
        key = self._entity_key(client_id)
        for view, names, _ in self._plan(model_version):
            [(stamp, row)] = self._online_store.online_read(
                self.store.config, view, [key], list(names)
            )
            stamps[view] = None if stamp is None else stamp.replace(tzinfo=stamp.tzinfo or UTC)
            for name in names:
                values[name] = None if not row or name not in row else _python(row[name])
        return values, stamps

    # -- new applications -------------------------------------------------------------
    def application_features_for(self, request: dict[str, Any]) -> dict[str, Any]:
        """Application features of a posted application (raw Kaggle fields, any subset)
        through the on-demand view, i.e. ``application_features`` itself."""
        row: dict[str, Any] = {}
        for name, kind in self._request_fields.items():
            value = request.get(name)
            if value is not None and kind == "DOUBLE":
                value = float(value)
            elif value is not None:
                value = str(value)
            row[name] = value
        odfv = self.store.get_on_demand_feature_view(ON_DEMAND_VIEW)
        refs = [f"{ON_DEMAND_VIEW}:{f.name}" for f in odfv.features]
        response = self.store.get_online_features(features=refs, entity_rows=[row]).to_dict()
        return {f.name: _clean(response[f.name][0]) for f in odfv.features}


def _sqlite_time(stored: int | str) -> datetime:
    """A timestamp as Feast's SQLite store keeps it (older stores: ISO text). Feast writes
    the UTC wall-clock time read as local time and converts it back the same way, so the
    integer is Unix seconds only where local time is UTC: decode it as Feast does."""
    if isinstance(stored, int):
        return datetime.fromtimestamp(stored).replace(tzinfo=UTC)
    stamp = datetime.fromisoformat(stored)
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)


def _clean(value: Any) -> Any:
    return None if isinstance(value, float) and value != value else value


__all__ = [
    "APPLICATION_VIEW",
    "HISTORY_VIEW",
    "FeatureServiceMismatch",
    "FeatureStoreError",
    "IncompleteClient",
    "OnlineFeatureReader",
    "StaleFeatures",
    "UnknownClient",
    "UnknownModelVersion",
    "register_model_features",
    "service_name",
]
