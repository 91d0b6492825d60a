"""Materialisation into a real local Redis Cluster (3 masters) by RESTORE per master.

The same features go into a single Redis of the test's own and into the cluster; every
client's hash must be byte for byte the same in both, the reader must serve the same
features from both, every master must hold its share, and the cluster path must not have
fallen back to HSET.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest
import redis
from feast.infra.online_stores.helpers import _redis_key
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from redis.cluster import RedisCluster

from serving_core.feature_store.client_index import ClientIndex
from serving_core.feature_store.reader import OnlineFeatureReader, register_model_features
from serving_core.feature_store.settings import FeatureStoreSettings, open_store
from tests.conftest import write_minimal_tables
from tests.redis_servers import redis_cluster, redis_server, require_redis
from tests.test_feature_store import random_clients
from training.feature_store import materialize as materialize_module
from training.feature_store.materialize import materialize
from training.feature_store.redis_cluster import rows_by_master
from training.features.pipeline import FEATURES_FILE, build_features, load_feature_schema
from training.loader import convert

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore::RuntimeWarning", "ignore::DeprecationWarning"),
]
CLIENTS = 3_000
ALL = "all"


@pytest.fixture(scope="module")
def features_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cluster_features")
    convert(write_minimal_tables(root / "source"), root / "tables", progress=False)
    out = build_features(root / "tables", root / "features", progress=False)
    schema = load_feature_schema(root / "features")
    random_clients(pl.read_parquet(out), schema, CLIENTS, seed=11).write_parquet(out)
    return root / "features"


@pytest.fixture(scope="module")
def stores(
    tmp_path_factory: pytest.TempPathFactory, features_dir: Path
) -> Iterator[dict[str, FeatureStoreSettings]]:
    require_redis()
    root = tmp_path_factory.mktemp("redis")
    project = f"cluster_{uuid.uuid4().hex[:8]}"
    with redis_server(root / "single") as (single, _), redis_cluster(root / "cluster") as ports:
        settings = {
            "single": FeatureStoreSettings(
                data_dir=root / "single_store",
                online_store="redis",
                redis_connection=f"127.0.0.1:{single}",
                project=project,
            ),
            "cluster": FeatureStoreSettings(
                data_dir=root / "cluster_store",
                online_store="redis-cluster",
                redis_connection=f"127.0.0.1:{ports[0]}",
                project=project,
            ),
        }
        yield settings


def _no_fallback(*args: object, **kwargs: object) -> None:
    raise AssertionError("fell back to HSET")


def test_cluster_reads_equal_single_node(
    stores: dict[str, FeatureStoreSettings], features_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(materialize_module, "_write_redis_pipelined", _no_fallback)
    event_time = datetime.now(tz=UTC)
    results = {
        kind: materialize(settings, features_dir, progress=False, event_time=event_time)
        for kind, settings in stores.items()
    }
    frame = pl.read_parquet(features_dir / FEATURES_FILE)
    assert results["cluster"]["clients"] == results["single"]["clients"] == frame.height

    cluster_store = open_store(stores["cluster"])
    cluster = RedisCluster.from_url(f"redis://{stores['cluster'].redis_connection}")
    single = redis.Redis.from_url(f"redis://{stores['single'].redis_connection}")
    # Every master holds the clients of its slots, and only those.
    groups = rows_by_master(cluster, cluster_store.config, frame, "SK_ID_CURR")
    assert len(groups) == 3
    for node, rows in groups.values():
        assert len(rows) > CLIENTS / 5
        keys = cluster.get_redis_connection(node).dbsize()
        assert keys >= len(rows), (node.name, keys, len(rows))
    # Byte for byte: every client's hash as the single node holds it.
    for client_id in frame["SK_ID_CURR"].to_list():
        entity = EntityKeyProto(
            join_keys=["SK_ID_CURR"], entity_values=[ValueProto(int64_val=client_id)]
        )
        key = _redis_key(stores["single"].project, entity, entity_key_serialization_version=3)
        expected = single.hgetall(key)
        assert expected, client_id
        assert cluster.hgetall(key) == expected, client_id

    # And through the reader, as the services read.
    names = [f["name"] for f in load_feature_schema(features_dir)["features"]]
    readers = {}
    for kind, settings in stores.items():
        store = open_store(settings)
        register_model_features(store, ALL, names)
        readers[kind] = OnlineFeatureReader(store, "direct")
    for client_id in frame["SK_ID_CURR"].to_list()[:: max(1, frame.height // 300)]:
        assert readers["cluster"].get_client_features(client_id, ALL, names) == readers[
            "single"
        ].get_client_features(client_id, ALL, names), client_id

    # The client index: one sorted set (one slot of the cluster), searched the same way.
    ids = sorted(frame["SK_ID_CURR"].to_list())
    for prefix in ("1", "100", str(ids[len(ids) // 2])[:4], str(ids[-1])):
        wanted = [i for i in ids if str(i).startswith(prefix)][:20]
        for kind, settings in stores.items():
            assert ClientIndex(open_store(settings)).search(prefix, 20) == wanted, (kind, prefix)
