"""Apply the repo and load the pipeline's features into the online store.

Feast's ``materialize`` reads the offline Parquet through its offline store and converts
every value with the generic ``python_values_to_proto_values`` (~1.7 µs per value). Our
features are only float64 and strings, so we build the ``ValueProto``s column by column
and hand them, chunk by chunk, to the online store's own ``online_write_batch``: the keys,
hash fields and serialised values are exactly what Feast writes and reads (same code),
only the conversion is cheaper. Snapshots skip even that: into Redis one RESTORE per
client, built column-wise (see ``redis_snapshot``); into SQLite one statement per client
whose rows SQLite fans out itself (see ``sqlite_snapshot``). Both store Feast's exact bytes.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import polars as pl
import redis
import structlog
from feast import FeatureStore, FeatureView, utils
from feast.infra.online_stores.helpers import _mmh3, _redis_key
from feast.infra.online_stores.redis import RedisOnlineStore, RedisType, _versioned_fv_name
from feast.infra.online_stores.sqlite import SqliteOnlineStore
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from google.protobuf.timestamp_pb2 import Timestamp
from rich.progress import Progress

from serving_core.feature_store.client_index import ClientIndex
from serving_core.feature_store.completeness import TTL_MARGIN_S, complete_run
from serving_core.feature_store.definitions import (
    JOIN_KEY,
    OFFLINE_FILE,
    definitions,
    offline_frame,
)
from serving_core.feature_store.settings import FeatureStoreSettings, open_store
from training.feature_store import sqlite_snapshot
from training.feature_store.redis_cluster import restore_cluster
from training.feature_store.redis_snapshot import (
    restore_chunks,
    restore_layout,
    send,
    send_chunks,
)
from training.features.pipeline import FEATURES_FILE, load_feature_schema

log = structlog.get_logger(__name__)
CHUNK_ROWS = 2_000
_NULL = ValueProto()


def export_offline(
    settings: FeatureStoreSettings, features_dir: Path, event_time: datetime | None = None
) -> Path:
    """Copy features.parquet into the offline source with event/created timestamps.

    The event time defaults to when the features were built (the file's mtime): that is the
    moment the values describe, and what the reader's TTL check measures staleness from.
    """
    features_file = Path(features_dir) / FEATURES_FILE
    if event_time is None:
        event_time = datetime.fromtimestamp(features_file.stat().st_mtime, tz=UTC)
    settings.offline_dir.mkdir(parents=True, exist_ok=True)
    out = settings.offline_dir / OFFLINE_FILE
    staging = out.with_suffix(".tmp")
    offline_frame(pl.read_parquet(features_file), event_time).write_parquet(staging)
    staging.replace(out)
    return out


def apply_repo(store: FeatureStore, settings: FeatureStoreSettings, features_dir: Path) -> None:
    schema = load_feature_schema(features_dir)
    store.apply(definitions(schema, settings.offline_dir / OFFLINE_FILE))


def _protos(column: pl.Series) -> list[ValueProto]:
    # Building a upb message costs ~2 µs, most columns have few distinct values (flags,
    # counts, categories) and online stores only serialise the protos: build each distinct
    # value once and share it.
    cache: dict[Any, ValueProto] = {None: _NULL}
    field = "string_val" if column.dtype == pl.String else "double_val"
    out = []
    for value in column.to_list():
        # -0.0 == 0.0 as a dict key, but not as stored bytes: keep the sign apart.
        key = (value, math.copysign(1.0, value)) if value == 0 and field == "double_val" else value
        proto = cache.get(key)
        if proto is None:
            # NaN (never equal to itself, so never cached) is missing too, as Feast stores it.
            proto = _NULL if value != value else ValueProto(**{field: value})
            cache[key] = proto
        out.append(proto)
    return out


def _rows(
    frame: pl.DataFrame, view: FeatureView
) -> Iterator[tuple[EntityKeyProto, dict[str, ValueProto], datetime, datetime]]:
    names = [f.name for f in view.features]
    stamp = frame["event_timestamp"][0]
    created = frame["created"][0]
    columns = [_protos(frame[name]) for name in names]
    for client_id, *values in zip(frame[JOIN_KEY].to_list(), *columns, strict=True):
        key = EntityKeyProto(join_keys=[JOIN_KEY], entity_values=[ValueProto(int64_val=client_id)])
        yield key, dict(zip(names, values, strict=True)), stamp, created


def _serialised(column: pl.Series) -> list[bytes]:
    """Each value as the bytes Feast stores (``ValueProto.SerializeToString``; a missing
    value is the empty Value), each distinct value serialised once."""
    cache: dict[int, bytes] = {}
    out = []
    for proto in _protos(column):
        data = cache.get(id(proto))
        if data is None:
            data = cache[id(proto)] = proto.SerializeToString()
        out.append(data)
    return out


def _write_redis_snapshot(
    store: FeatureStore,
    frame: pl.DataFrame,
    views: list[FeatureView],
    progress: Any | None = None,
) -> None:
    """A snapshot straight into Redis in Feast's layout, one command per client.

    A frame carrying every view of the entity: one RESTORE per client, built column-wise
    and streamed on one connection (``redis_snapshot``: the server loads it ~10x faster than
    an HSET of ~218 fields); on a Redis Cluster, one such stream per master with the
    clients of its hash slots (``redis_cluster``). RESTORE replaces the client's hash
    (fields of features no longer defined go), so anything else gets redis-py's pipeline of
    HSETs (``_write_redis_pipelined``): a subset of the views (the others' fields must
    stay), a server refusing RESTORE (an ACL, some managed Redis). Both store Feast's exact
    bytes.
    """
    if frame.height == 0:
        return
    cluster = store.config.online_store.redis_type == RedisType.redis_cluster
    restore = _restore_cluster if cluster else _restore
    if not _every_view(store, views) or not restore(store, frame, views, progress):
        _write_redis_pipelined(store, frame, views, progress)


def _every_view(store: FeatureStore, views: list[FeatureView]) -> bool:
    """Whether ``views`` are all the online views of their entity: its whole Redis hash."""
    keys = {tuple(v.join_keys) for v in views}
    if len(keys) != 1:
        return False
    hashed = {v.name for v in store.list_feature_views() if tuple(v.join_keys) in keys}
    online = {v.name for v in store.list_feature_views() if v.online}
    return hashed & online <= {v.name for v in views}


def _restore(
    store: FeatureStore,
    frame: pl.DataFrame,
    views: list[FeatureView],
    progress: Any | None = None,
) -> bool:
    """Stream one RESTORE per client; False, with nothing written, if Redis refuses it."""
    config = store.config
    online_store = cast(RedisOnlineStore, store._get_provider().online_store)
    client = online_store._get_client(config.online_store)
    layout = restore_layout(config, frame, views, JOIN_KEY, config.online_store.key_ttl_seconds)
    per_client = sum(len(v.features) for v in views)
    advance = None if progress is None else lambda clients: progress(clients * per_client)
    chunks = restore_chunks(layout, frame, JOIN_KEY)
    connection = client.connection_pool.get_connection()
    try:
        probe, clients = next(chunks)  # one client: is RESTORE allowed at all?
        try:
            send(connection, probe, clients)
        except redis.ResponseError as refused:
            log.warning("redis_restore_refused", error=str(refused), fallback="HSET")
            return False
        if advance is not None:
            advance(clients)
        send_chunks(connection, chunks, advance)
        return True
    finally:
        client.connection_pool.release(connection)


def _restore_cluster(
    store: FeatureStore,
    frame: pl.DataFrame,
    views: list[FeatureView],
    progress: Any | None = None,
) -> bool:
    """One RESTORE per client on the master of its hash slot (``redis_cluster``); False,
    with nothing written, if the cluster refuses RESTORE."""
    config = store.config
    online_store = cast(RedisOnlineStore, store._get_provider().online_store)
    client = online_store._get_client(config.online_store)
    per_client = sum(len(v.features) for v in views)
    advance = None if progress is None else lambda clients: progress(clients * per_client)
    ttl = config.online_store.key_ttl_seconds
    return restore_cluster(client, config, frame, views, JOIN_KEY, ttl, advance)


def _write_redis_pipelined(
    store: FeatureStore,
    frame: pl.DataFrame,
    views: list[FeatureView],
    progress: Any | None = None,
) -> None:
    """The snapshot through a redis-py pipeline, one HSET per client (any Redis client).

    Feast's ``online_write_batch`` (skip_dedup) hashes every ``view:feature`` field name and
    serialises every value again for every client, and writes each view separately; the
    key, field names, value bytes and ``_ts:`` stamps here are built by Feast's own helpers,
    once per view and once per distinct value, so the stored hash is byte for byte the same.
    """
    config = store.config
    online_store = cast(RedisOnlineStore, store._get_provider().online_store)
    client = online_store._get_client(config.online_store)
    ttl = config.online_store.key_ttl_seconds
    stamp = Timestamp()
    stamp.FromDatetime(utils.make_tzaware(frame["event_timestamp"][0]))
    fields: dict[bytes, list[bytes]] = {}
    for view in views:
        name = _versioned_fv_name(view, config)
        fields[f"_ts:{name}".encode()] = [stamp.SerializeToString()] * frame.height
        for feature in view.features:
            fields[_mmh3(f"{name}:{feature.name}")] = _serialised(frame[feature.name])
    ids = frame[JOIN_KEY].to_list()
    per_client = sum(len(v.features) for v in views)
    for start in range(0, len(ids), CHUNK_ROWS):
        with client.pipeline(transaction=False) as pipe:
            for row in range(start, min(start + CHUNK_ROWS, len(ids))):
                key = _redis_key(
                    config.project,
                    EntityKeyProto(
                        join_keys=[JOIN_KEY], entity_values=[ValueProto(int64_val=ids[row])]
                    ),
                    entity_key_serialization_version=config.entity_key_serialization_version,
                )
                pipe.hset(key, mapping={f: values[row] for f, values in fields.items()})
                if ttl:
                    pipe.expire(name=key, time=ttl)
            pipe.execute()
        if progress is not None:
            progress((min(start + CHUNK_ROWS, len(ids)) - start) * per_client)


def write_frame(
    store: FeatureStore,
    frame: pl.DataFrame,
    views: list[FeatureView],
    progress: Any | None = None,
) -> None:
    """Write an offline-shaped frame (join key, timestamps, features) to the online store."""
    provider = store._get_provider()
    config = store.config.online_store
    if isinstance(provider.online_store, RedisOnlineStore) and config.skip_dedup:
        _write_redis_snapshot(store, frame, views, progress)
        return
    if isinstance(provider.online_store, SqliteOnlineStore) and sqlite_snapshot.supported(
        store.config, frame, views
    ):
        path = provider.online_store._get_db_path(store.config)
        sqlite_snapshot.write_snapshot(store.config, path, frame, views, JOIN_KEY, progress)
        return
    for view in views:
        for start in range(0, frame.height, CHUNK_ROWS):
            chunk = frame.slice(start, CHUNK_ROWS)
            provider.online_write_batch(store.config, view, list(_rows(chunk, view)), None)
            if progress is not None:
                progress(chunk.height * len(view.features))


def materialize(
    settings: FeatureStoreSettings | None = None,
    features_dir: Path = Path("artifacts/features"),
    progress: bool = True,
    *,
    event_time: datetime | None = None,
) -> dict[str, Any]:
    """Export, apply and load every client of ``features_dir`` into the online store, then,
    as the last write, mark it complete (``completeness``: what the services check)."""
    # A snapshot load is by construction the newest value: skip Redis' read-before-write.
    settings = (settings or FeatureStoreSettings()).model_copy(update={"redis_skip_dedup": True})
    run_id, run_started = uuid.uuid4().hex, time.time()
    started = time.perf_counter()
    offline = export_offline(settings, features_dir, event_time)
    store = open_store(settings)
    apply_repo(store, settings, features_dir)
    applied = time.perf_counter()
    frame = pl.read_parquet(offline)
    views = [v for v in store.list_feature_views() if v.online]
    total = frame.height * sum(len(v.features) for v in views)
    with Progress(disable=not progress) as bar:
        task = bar.add_task(f"materialise ({settings.online_store})", total=total)
        write_frame(store, frame, views, progress=lambda n: bar.update(task, advance=n))
    # The index of the run's client ids (prefix search), once every client is in and before
    # the marker; under a key TTL it expires with the marker, before the first client.
    ttl = getattr(store.config.online_store, "key_ttl_seconds", None)
    indexed = ClientIndex(store).write(
        frame[JOIN_KEY].to_list(), expires_at=run_started + ttl - TTL_MARGIN_S if ttl else None
    )
    # Only once every client is in: a run that dies before this leaves the previous marker
    # (each client is written whole, from one run) or, on an empty store, none.
    marker = complete_run(
        store,
        run_id=run_id,
        frame=frame,
        views=views,
        event_time=frame["event_timestamp"][0],
        started=run_started,
    )
    done = time.perf_counter()
    write_seconds = done - applied
    result = {
        "online_store": settings.online_store,
        "run_id": run_id,
        "clients": marker.clients,
        "indexed_clients": indexed,
        "values": total,
        "apply_seconds": round(applied - started, 3),
        "write_seconds": round(write_seconds, 3),
        "clients_per_s": round(frame.height / write_seconds, 1),
        "values_per_s": round(total / write_seconds, 1),
    }
    log.info("feature_store_materialized", **result)
    return result
