"""Completeness markers: what the online store holds, said by the store itself.

A store that lost its data (a Redis restarted without persistence, a fail-over to an empty
replica, a ``FLUSHALL``, an SQLite file replaced) or that a materialisation never finished
filling looks, client by client, exactly like a store that does not know the client. So
materialisation writes, once every client is in and as its very last write, one marker per
feature service into the online store itself: the run that filled it (its id, the features'
event time, the number of clients, when it finished) and a few of its clients ("probes").
Whatever empties the store takes the markers with it; the serving processes treat "no
marker", or probes the store no longer holds, as an incomplete store (UNAVAILABLE), and only
a client missing from a complete store as unknown.

- ``views``: the record of the run itself (the materialised feature views); a feature service
  registered after the run (a new model version) gets its marker from it.
- ``credit_model_v<N>``: one marker per feature service, the run's record and its version.

Where they live:

- Redis / Redis Cluster: one hash, a field per marker (JSON). Its key is Feast's key prefix
  of the ``client`` entity + a name + the project, so Feast's own ``teardown`` (which deletes
  ``prefix*project``) deletes it with the clients, and it can never be a client's key (those
  hold exactly 16 bytes between prefix and project). With ``key_ttl_seconds`` it expires
  before the first client written by the run does.
- SQLite: a table of its own in the online store's file, a row per marker.

A run does not remove the markers of the run before it while it writes: each client is
written whole (one RESTORE or HSET per client on Redis, one transaction per chunk of
clients covering every view on SQLite), so readers see every client either from the old
run or from the new one, and the old marker keeps describing a store that holds all its
clients. A run killed half-way therefore leaves the old marker (or none, on an empty store:
everything is UNAVAILABLE until a run completes); the marker's age shows that no run has
completed since.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
from collections.abc import Iterable, Sequence
from contextlib import closing
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, ClassVar

import polars as pl
from feast import FeatureStore, FeatureView
from feast.infra.key_encoding_utils import serialize_entity_key
from feast.infra.online_stores.helpers import _redis_key
from feast.infra.online_stores.redis import RedisOnlineStore, _versioned_fv_name
from feast.infra.online_stores.sqlite import _quote_id, _table_id
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import Value as ValueProto

from serving_core.feature_store.definitions import JOIN_KEY
from serving_core.feature_store.own_records import OwnRecords

VIEWS = "views"  # the run's own record
SQLITE_TABLE = "credit_feature_store_complete"
REDIS_NAME = b"credit_feature_store_complete:"
PROBES = 5
# A marker expires this long before the first client its run wrote (Redis key TTLs).
TTL_MARGIN_S = 60


class MarkerError(ValueError):
    """A stored marker that cannot be read (not JSON, fields missing): not a marker."""


@dataclass(frozen=True)
class Marker:
    """One complete materialisation, as seen by one feature service (or by the run)."""

    name: str  # VIEWS or a feature service's name
    run_id: str
    clients: int
    event_time: datetime  # the features' time: every client's ``_ts`` of this run
    completed_at: datetime
    model_version: str | None = None
    views: tuple[str, ...] = ()
    probes: tuple[int, ...] = ()  # clients the store must hold while this marker stands
    expires_at: float | None = None  # Unix time the run's first client expires (Redis TTL)

    def to_json(self) -> str:
        data: dict[str, Any] = asdict(self)
        data["event_time"] = self.event_time.isoformat()
        data["completed_at"] = self.completed_at.isoformat()
        data["views"], data["probes"] = list(self.views), list(self.probes)
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, name: str, text: str | bytes) -> Marker:
        try:
            data = json.loads(text)
            return cls(
                name=name,
                run_id=str(data["run_id"]),
                clients=int(data["clients"]),
                event_time=_utc(datetime.fromisoformat(data["event_time"])),
                completed_at=_utc(datetime.fromisoformat(data["completed_at"])),
                model_version=data.get("model_version"),
                views=tuple(str(v) for v in data.get("views", ())),
                probes=tuple(int(p) for p in data.get("probes", ())),
                expires_at=data.get("expires_at"),
            )
        except (ValueError, TypeError, KeyError) as error:
            raise MarkerError(f"marker {name!r} is unreadable: {error}") from error

    def for_service(self, name: str, model_version: str | None) -> Marker:
        return replace(self, name=name, model_version=model_version, probes=())


def _utc(stamp: datetime) -> datetime:
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)


def pick_probes(ids: Sequence[int], count: int = PROBES) -> tuple[int, ...]:
    """``count`` clients spread over the sorted ids (first and last among them)."""
    ordered = sorted(set(ids))
    if len(ordered) <= count:
        return tuple(ordered)
    return tuple(ordered[round(i * (len(ordered) - 1) / (count - 1))] for i in range(count))


@dataclass
class MarkerStore(OwnRecords):
    """Reads and writes the markers in a Feast online store (SQLite, Redis, Redis Cluster)."""

    REDIS_NAME: ClassVar[bytes] = REDIS_NAME
    SQLITE_TABLE: ClassVar[str] = SQLITE_TABLE
    WHAT: ClassVar[str] = "completeness markers"
    store: FeatureStore
    _sqlite_ready: bool = field(default=False, repr=False)

    # -- reading ---------------------------------------------------------------------
    def read(self) -> dict[str, Marker]:
        """Every marker, in one round trip; an unreadable one is left out (not a marker).

        Raises the store's own connection errors when it cannot be reached: "unreachable"
        is not "incomplete", and the caller keeps the two apart."""
        self._check_kind()
        if isinstance(self._online, RedisOnlineStore):
            raw = {k.decode(): v for k, v in self._redis().hgetall(self.redis_key()).items()}
        else:
            raw = self._read_sqlite()
        markers = {}
        for name, text in raw.items():
            try:
                markers[name] = Marker.from_json(name, text)
            except MarkerError:
                continue
        return markers

    def _read_sqlite(self) -> dict[str, str]:
        path = self._sqlite_path()
        if not os.path.exists(path):
            return {}  # nothing was ever loaded here (or the file was removed): no marker
        # Read-only: a reader never creates the file.
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            try:
                rows = db.execute(f"SELECT name, marker FROM {SQLITE_TABLE}").fetchall()
            except sqlite3.OperationalError as error:
                if "no such table" in str(error):
                    return {}  # never marked (or replaced by an empty file)
                raise
        return dict(rows)

    def holds(self, client_id: int, views: Iterable[str]) -> bool:
        """Whether the store holds ``client_id`` in every one of ``views``."""
        return self.missing([client_id], views) is None

    def missing(self, client_ids: Sequence[int], views: Iterable[str]) -> int | None:
        """The first of ``client_ids`` the store does not hold in every one of ``views``,
        or None: one pipelined round trip on Redis, one connection on SQLite."""
        config = self.store.config
        names = set(views)
        known = {v.name: v for v in self.store.list_feature_views(allow_cache=True)}
        wanted = [known[name] for name in sorted(names) if name in known]
        if not client_ids:
            return None
        if len(wanted) != len(names):
            return client_ids[0]  # a view of the run is no longer defined: none is held
        version = config.entity_key_serialization_version
        entities = [
            EntityKeyProto(join_keys=[JOIN_KEY], entity_values=[ValueProto(int64_val=i)])
            for i in client_ids
        ]
        if isinstance(self._online, RedisOnlineStore):
            fields = [f"_ts:{_versioned_fv_name(v, config)}".encode() for v in wanted]
            with self._redis().pipeline(transaction=False) as pipe:
                for entity in entities:
                    key = _redis_key(
                        config.project, entity, entity_key_serialization_version=version
                    )
                    pipe.hmget(key, fields)
                found = pipe.execute()
            for client_id, values in zip(client_ids, found, strict=True):
                if any(value is None for value in values):
                    return client_id
            return None
        versioning = config.registry.enable_online_feature_view_versioning
        tables = [_quote_id(_table_id(config.project, v, versioning)) for v in wanted]
        with closing(sqlite3.connect(f"file:{self._sqlite_path()}?mode=ro", uri=True)) as db:
            for client_id, entity in zip(client_ids, entities, strict=True):
                key = serialize_entity_key(entity, entity_key_serialization_version=version)
                for table in tables:
                    try:
                        row = db.execute(
                            f"SELECT 1 FROM {table} WHERE entity_key = ? LIMIT 1", (key,)
                        ).fetchone()
                    except sqlite3.OperationalError as error:
                        if "no such table" in str(error):
                            return client_id
                        raise
                    if row is None:
                        return client_id
        return None

    # -- writing ---------------------------------------------------------------------
    def write(self, markers: Sequence[Marker], remove: Sequence[str] = ()) -> None:
        """Write ``markers`` (replacing those of the same names) and remove ``remove``."""
        self._check_kind()
        if isinstance(self._online, RedisOnlineStore):
            client, key = self._redis(), self.redis_key()
            if markers:
                client.hset(key, mapping={m.name: m.to_json() for m in markers})
            if remove:
                client.hdel(key, *remove)
            expires = [m.expires_at for m in markers if m.expires_at is not None]
            if expires:
                client.expireat(key, math.floor(min(expires)))
            return
        with closing(sqlite3.connect(self._sqlite_path(), timeout=60.0)) as db, db:
            db.execute(
                f"CREATE TABLE IF NOT EXISTS {SQLITE_TABLE} "
                "(name TEXT PRIMARY KEY, marker TEXT NOT NULL)"
            )
            db.executemany(
                f"INSERT OR REPLACE INTO {SQLITE_TABLE} (name, marker) VALUES (?, ?)",
                [(m.name, m.to_json()) for m in markers],
            )
            db.executemany(f"DELETE FROM {SQLITE_TABLE} WHERE name = ?", [(n,) for n in remove])


def complete_run(
    store: FeatureStore,
    *,
    run_id: str,
    frame: pl.DataFrame,
    views: Sequence[FeatureView],
    event_time: datetime,
    started: float,
) -> Marker:
    """The run's last write: its record and a marker for every feature service whose
    features the run loaded; markers of services it could not serve are removed."""
    ttl = getattr(store.config.online_store, "key_ttl_seconds", None)
    ids = [int(i) for i in frame[JOIN_KEY].to_list()]
    record = Marker(
        name=VIEWS,
        run_id=run_id,
        clients=len(set(ids)),
        event_time=_utc(event_time),
        completed_at=datetime.now(tz=UTC),
        views=tuple(sorted(v.name for v in views)),
        probes=pick_probes(ids),
        # The first client written expires ttl after the run started.
        expires_at=started + ttl - TTL_MARGIN_S if ttl else None,
    )
    loaded = {f.name for v in views for f in v.features}
    loaded_views = {v.name for v in views}
    markers, remove = [record], []
    for service in store.list_feature_services():
        projections = service.feature_view_projections
        covered = all(
            p.name in loaded_views and {f.name for f in p.features} <= loaded for p in projections
        )
        if covered:
            version = service.tags.get("model_version")
            markers.append(record.for_service(service.name, version))
        else:
            remove.append(service.name)
    markers_store = MarkerStore(store)
    known = markers_store.read()
    markers_store.write(markers, remove=[n for n in remove if n in known])
    return record


def mark_service(store: FeatureStore, name: str, model_version: str | None) -> Marker | None:
    """A newly registered feature service gets the marker of the last complete run (its
    features are the run's: ``register_model_features`` checked them against the views);
    None when no run has completed, and the service stays incomplete until one does."""
    markers = MarkerStore(store)
    found = markers.read()
    record = found.get(VIEWS)
    if record is None:
        return None
    current = found.get(name)
    if current is not None and current.run_id == record.run_id:
        return current
    marker = record.for_service(name, model_version)
    markers.write([marker])
    return marker
