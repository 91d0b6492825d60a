"""Feature store on real SQLite and real Redis: what goes in comes out, exactly."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import redis

from tests.conftest import missing_service, write_minimal_tables
from training.feature_store import (
    FeatureServiceMismatch,
    FeatureStoreSettings,
    OnlineFeatureReader,
    StaleFeatures,
    UnknownClient,
    UnknownModelVersion,
    materialize,
    open_store,
    register_model_features,
)
from training.feature_store.bench import redis_listening
from training.feature_store.definitions import (
    APPLICATION_VIEW,
    HISTORY_VIEW,
    offline_frame,
)
from training.feature_store.materialize import write_frame
from training.feature_store.settings import feast_redis_connection
from training.features import FEATURES_FILE, build_features, load_feature_schema
from training.features.application import application_features
from training.loader import convert

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning", "ignore::DeprecationWarning")

REDIS = "127.0.0.1:6379,db=14"
CLIENT, NO_HISTORY = 100001, 100002
SYNTHETIC = 200


def _synthetic(features: pl.DataFrame, schema: dict, rows: int) -> pl.DataFrame:
    """``rows`` extra clients with random values, ~20 % missing, in the pipeline's dtypes."""
    rng = np.random.default_rng(7)
    columns: dict[str, pl.Series] = {
        "SK_ID_CURR": pl.Series(np.arange(200_000, 200_000 + rows), dtype=pl.Int64),
        "TARGET": pl.Series(rng.integers(0, 2, rows).astype(float)),
        "split": pl.Series(["train"] * rows),
    }
    for spec in schema["features"]:
        missing = rng.random(rows) < 0.2
        if spec["dtype"] == "category":
            values = rng.choice(spec["categories"] or ["x"], rows).tolist()
        else:
            values = (rng.normal(size=rows) * 10.0 ** rng.integers(-3, 6, rows)).tolist()
        columns[spec["name"]] = pl.Series(
            [None if m else v for v, m in zip(values, missing, strict=True)],
            dtype=features.schema[spec["name"]],
        )
    return pl.concat([features, pl.DataFrame(columns)])


@pytest.fixture(scope="module")
def features_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real pipeline on the minimal tables (client 100001 with history, 100002 without),
    plus synthetic clients so every feature sees many values and nulls."""
    root = tmp_path_factory.mktemp("feature_store")
    tables = root / "tables"
    convert(write_minimal_tables(root / "source"), tables, progress=False)
    out = build_features(tables, root / "features", progress=False)
    schema = load_feature_schema(root / "features")
    _synthetic(pl.read_parquet(out), schema, SYNTHETIC).write_parquet(out)
    (root / "tables_dir").write_text(str(tables))
    return root / "features"


def _settings(kind: str, root: Path) -> FeatureStoreSettings:
    if kind == "sqlite":
        return FeatureStoreSettings(data_dir=root / "sqlite", project="test_fs")
    return FeatureStoreSettings(
        data_dir=root / "redis",
        online_store="redis",
        redis_connection=REDIS,
        project=f"test_fs_{uuid.uuid4().hex[:8]}",
    )


@pytest.fixture(scope="module", params=["sqlite", "redis"])
def store_settings(
    request: pytest.FixtureRequest, features_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FeatureStoreSettings]:
    if request.param == "redis" and not redis_listening(REDIS):
        missing_service(f"no Redis listening on {REDIS.split(',')[0]}")
    settings = _settings(request.param, tmp_path_factory.mktemp(request.param))
    materialize(settings, features_dir, progress=False, event_time=datetime.now(tz=UTC))
    yield settings
    if settings.is_redis:
        open_store(settings).teardown()
        left = redis.Redis(host="127.0.0.1", port=6379, db=14).keys(
            f"*{settings.project}".encode()
        )
        assert not left, "teardown left keys behind"


@pytest.fixture(scope="module")
def offline(features_dir: Path) -> dict[int, dict]:
    frame = pl.read_parquet(features_dir / FEATURES_FILE).drop("TARGET", "split")
    # NaN and null are both "missing" for the store, which returns None.
    frame = frame.with_columns(pl.selectors.float().fill_nan(None))
    return {row.pop("SK_ID_CURR"): row for row in frame.to_dicts()}


ALL = "all"


@pytest.mark.parametrize("backend", ["sdk", "direct"])
def test_online_equals_offline(
    store_settings: FeatureStoreSettings, offline: dict[int, dict], backend: str
) -> None:
    store = open_store(store_settings)
    names = list(next(iter(offline.values())))
    register_model_features(store, ALL, names)
    reader = OnlineFeatureReader(store, backend)  # type: ignore[arg-type]
    for client_id, expected in offline.items():
        assert reader.get_client_features(client_id, ALL, names) == expected, client_id
    assert len(offline) == SYNTHETIC + 2


@pytest.mark.parametrize("backend", ["sdk", "direct"])
def test_unknown_client_and_client_without_history(
    store_settings: FeatureStoreSettings, features_dir: Path, backend: str
) -> None:
    store = open_store(store_settings)
    schema = load_feature_schema(features_dir)
    names = [f["name"] for f in schema["features"]]
    register_model_features(store, ALL, names)
    reader = OnlineFeatureReader(store, backend)  # type: ignore[arg-type]
    with pytest.raises(UnknownClient):
        reader.get_client_features(999_999_999, ALL)
    history = [f["name"] for f in schema["features"] if f["source"] != "application"]
    lonely = reader.get_client_features(NO_HISTORY, ALL)
    assert all(lonely[name] is None for name in history)
    assert lonely["AMT_CREDIT"] == 1.5
    assert reader.get_client_features(CLIENT, ALL)["BUREAU_COUNT"] == 1.0


def test_stale_history_is_refused(store_settings: FeatureStoreSettings) -> None:
    store = open_store(store_settings)
    views = [store.get_feature_view(APPLICATION_VIEW), store.get_feature_view(HISTORY_VIEW)]
    old = datetime.now(tz=UTC) - timedelta(days=31)
    row = {"SK_ID_CURR": 777, **{f.name: None for v in views for f in v.features}}
    frame = offline_frame(pl.DataFrame([row], infer_schema_length=None), old)
    write_frame(store, frame, views)
    register_model_features(store, "hist", [views[1].features[0].name])
    with pytest.raises(StaleFeatures):
        OnlineFeatureReader(store).get_client_features(777, "hist")


def test_feature_service_per_model_version(
    store_settings: FeatureStoreSettings, features_dir: Path
) -> None:
    store = open_store(store_settings)
    names = [f["name"] for f in load_feature_schema(features_dir)["features"]]
    v1, v2 = names[:50] + names[-5:], names[10:60]
    register_model_features(store, "1", v1)
    register_model_features(store, "2", v2)
    reader = OnlineFeatureReader(store)
    assert list(reader.get_client_features(CLIENT, "1", v1)) == v1
    assert set(reader.get_client_features(CLIENT, "2")) == set(v2)
    with pytest.raises(FeatureServiceMismatch, match="credit_model_v2"):
        reader.get_client_features(CLIENT, "2", v1)  # a v1 model served v2's features
    with pytest.raises(UnknownModelVersion, match="credit_model_v9"):
        reader.get_client_features(CLIENT, "9")
    with pytest.raises(FeatureServiceMismatch):
        register_model_features(store, "1", v2)  # versions are immutable
    with pytest.raises(FeatureServiceMismatch, match="NOT_A_FEATURE"):
        register_model_features(store, "3", ["NOT_A_FEATURE"])


def test_on_demand_features_equal_training_pipeline(
    store_settings: FeatureStoreSettings, features_dir: Path
) -> None:
    tables = Path((features_dir.parent / "tables_dir").read_text())
    raw = pl.read_parquet(tables / "application_train.parquet").drop("TARGET")
    template = raw.to_dicts()[0]
    requests = [
        template,
        {**template, "DAYS_EMPLOYED": 365243, "AMT_ANNUITY": 0, "EXT_SOURCE_2": None},
        {**template, "AMT_CREDIT": 250_000.0, "AMT_ANNUITY": 12_500, "CODE_GENDER": "F",
         "DAYS_BIRTH": -12_000, "DAYS_EMPLOYED": -3_000, "CNT_FAM_MEMBERS": 3},
        {"AMT_CREDIT": 1000.0, "AMT_ANNUITY": 50.0},  # a partner posting few fields
    ]
    reader = OnlineFeatureReader(open_store(store_settings))
    for request in requests:
        expected = application_features(
            pl.DataFrame([request], schema={k: raw.schema[k] for k in request})
        ).to_dicts()[0]
        expected.pop("SK_ID_CURR", None)
        assert reader.application_features_for(request) == expected


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ONLINE_STORE", "redis-cluster")
    monkeypatch.setenv("REDIS_URL", "rediss://:s3cret@redis-0:7000/2")
    config = FeatureStoreSettings().online_store_config()
    assert config["redis_type"] == "redis_cluster"
    assert config["connection_string"] == "redis-0:7000,password=s3cret,ssl=true"
    monkeypatch.setenv("ONLINE_STORE", "redis")
    monkeypatch.setenv("FEAST_REDIS_CONNECTION_STRING", "r:6379,db=3")
    assert FeatureStoreSettings().online_store_config()["connection_string"] == "r:6379,db=3"
    assert feast_redis_connection("redis://h:1/4") == "h:1,db=4"


def test_redis_snapshot_is_byte_identical_to_feasts_own_writes(
    features_dir: Path, tmp_path: Path
) -> None:
    """The fast snapshot path (one HSET per client, fields and values built once) stores
    exactly the hashes Feast's ``online_write_batch`` stores: same keys, fields, bytes —
    including signed zeros, which a value cache keyed on equality would merge."""
    import math
    import sys

    if not redis_listening(REDIS):
        missing_service(f"no Redis listening on {REDIS.split(',')[0]}")
    frame = pl.read_parquet(features_dir / "features.parquet")
    signed = next(c for c, t in frame.schema.items() if t == pl.Float64 and c != "TARGET")
    frame = frame.with_columns(
        pl.when(pl.int_range(pl.len()) % 2 == 0).then(0.0).otherwise(-0.0).alias(signed)
    )
    frame.write_parquet(tmp_path / "features.parquet")
    (tmp_path / "feature_schema.json").write_text(
        (features_dir / "feature_schema.json").read_text()
    )
    written = {}
    now = datetime.now(tz=UTC)
    module = sys.modules["training.feature_store.materialize"]
    for path in ("fast", "feast"):
        settings = _settings("redis", tmp_path / path)
        if path == "feast":  # Feast's generic path: the one for any other online store
            module_store, module.RedisOnlineStore = module.RedisOnlineStore, type("Other", (), {})
        try:
            materialize(settings, tmp_path, progress=False, event_time=now)
        finally:
            if path == "feast":
                module.RedisOnlineStore = module_store
        written[path] = settings
    client = redis.Redis.from_url(f"redis://{REDIS.split(',')[0]}/14")
    try:
        suffix = {p: s.project.encode() for p, s in written.items()}
        fast = [k for k in client.scan_iter(count=1000) if k.endswith(suffix["fast"])]
        assert len(fast) == frame.height
        for key in fast:
            twin = key[: -len(suffix["fast"])] + suffix["feast"]
            assert client.hgetall(key) == client.hgetall(twin)
        store = open_store(written["fast"])
        register_model_features(store, "signs", [signed])
        reader = OnlineFeatureReader(store)
        for row in frame.select("SK_ID_CURR", signed).head(4).iter_rows():
            served = reader.get_client_features(row[0], "signs")[signed]
            assert math.copysign(1.0, served) == math.copysign(1.0, row[1])
    finally:
        for settings in written.values():
            open_store(settings).teardown()
