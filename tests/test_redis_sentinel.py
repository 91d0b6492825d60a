"""Sentinel failover: reads of the online store recover after its master is killed.

A master, a replica and three Sentinels of the test's own (Debian's redis-sentinel, or
redis-server in sentinel mode). Features are materialised through the Sentinels (RESTORE
on the master they name), the replica has them, the master is killed (SIGKILL, no
goodbye); the Sentinels promote the replica and the same reader, unchanged, serves every
client again with the same values.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest
import redis

from serving_core.feature_store.reader import OnlineFeatureReader, register_model_features
from serving_core.feature_store.settings import FeatureStoreSettings, open_store
from tests.conftest import write_minimal_tables
from tests.redis_servers import require_redis, sentinel_group
from tests.test_feature_store import random_clients
from training.feature_store.materialize import materialize
from training.features.pipeline import FEATURES_FILE, build_features, load_feature_schema
from training.loader import convert

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore::RuntimeWarning", "ignore::DeprecationWarning"),
]
MASTER = "credit"
ALL = "all"


@pytest.fixture(scope="module")
def features_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sentinel_features")
    convert(write_minimal_tables(root / "source"), root / "tables", progress=False)
    out = build_features(root / "tables", root / "features", progress=False)
    schema = load_feature_schema(root / "features")
    random_clients(pl.read_parquet(out), schema, 300, seed=11).write_parquet(out)
    return root / "features"


@pytest.fixture
def group(tmp_path: Path) -> Iterator[tuple[list[int], dict]]:
    require_redis()
    with sentinel_group(tmp_path / "redis", master_name=MASTER) as running:
        yield running


def test_reads_recover_after_the_master_is_killed(
    group: tuple[list[int], dict], features_dir: Path, tmp_path: Path
) -> None:
    sentinels, servers = group
    settings = FeatureStoreSettings(
        data_dir=tmp_path / "store",
        online_store="redis-sentinel",
        redis_connection=",".join(f"127.0.0.1:{p}" for p in sentinels),
        redis_sentinel_master=MASTER,
        project=f"sentinel_{uuid.uuid4().hex[:8]}",
    )
    materialize(settings, features_dir, progress=False, event_time=datetime.now(tz=UTC))
    master_port, master = servers["master"]
    replica_port, _ = servers["replica"]
    assert redis.Redis(port=master_port).wait(1, 10_000) == 1  # the replica has every write

    frame = pl.read_parquet(features_dir / FEATURES_FILE)
    names = [f["name"] for f in load_feature_schema(features_dir)["features"]]
    store = open_store(settings)
    register_model_features(store, ALL, names)
    reader = OnlineFeatureReader(store, "direct")
    ids = frame["SK_ID_CURR"].to_list()
    before = {i: reader.get_client_features(i, ALL, names) for i in ids}

    master.kill()
    master.wait()
    killed = time.monotonic()
    while True:
        try:
            after = reader.get_client_features(ids[0], ALL, names)
            break
        except (redis.ConnectionError, redis.TimeoutError, redis.ReadOnlyError):
            assert time.monotonic() - killed < 60, "reads did not recover within 60 s"
            time.sleep(0.2)
    recovered = time.monotonic() - killed
    assert after == before[ids[0]]
    # The replica is the master now, and every client reads as before.
    address = redis.Redis(port=sentinels[0]).sentinel_get_master_addr_by_name(MASTER)
    assert int(address[1]) == replica_port
    for client_id in ids:
        assert reader.get_client_features(client_id, ALL, names) == before[client_id]
    assert recovered < 60
