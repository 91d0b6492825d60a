"""Feature store on real SQLite and real Redis: what goes in comes out, exactly."""

from __future__ import annotations

import math
import random
import sqlite3
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import redis
from feast import FeatureStore, FeatureView
from feast.infra.key_encoding_utils import serialize_entity_key
from feast.infra.online_stores.helpers import _redis_key
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import Value as ValueProto

from serving_core.application import application_features
from serving_core.feature_store import client_index, completeness
from serving_core.feature_store.client_index import ClientIndex
from serving_core.feature_store.completeness import MarkerStore
from serving_core.feature_store.definitions import (
    APPLICATION_VIEW,
    HISTORY_VIEW,
    offline_frame,
)
from serving_core.feature_store.reader import (
    FeatureServiceMismatch,
    OnlineFeatureReader,
    StaleFeatures,
    UnknownClient,
    UnknownModelVersion,
    register_model_features,
)
from serving_core.feature_store.settings import (
    FeatureStoreSettings,
    feast_redis_connection,
    open_store,
)
from tests.conftest import missing_service, write_minimal_tables
from training.feature_store import sqlite_snapshot
from training.feature_store.bench import redis_listening
from training.feature_store.materialize import materialize, write_frame
from training.feature_store.redis_snapshot import (
    ChunkCrc,
    RestoreLayout,
    _write_length,
    send_chunks,
)
from training.features.pipeline import FEATURES_FILE, build_features, load_feature_schema
from training.loader import convert

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning", "ignore::DeprecationWarning")

REDIS = "127.0.0.1:6379,db=14"
CLIENT, NO_HISTORY = 100001, 100002
EMPTY = 300_000  # a client with no value at all (see tricky_features)
SYNTHETIC = 200


def random_clients(features: pl.DataFrame, schema: dict, rows: int, seed: int = 7) -> pl.DataFrame:
    """``rows`` extra clients with random values, ~20 % missing, in the pipeline's dtypes."""
    rng = np.random.default_rng(seed)
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
    random_clients(pl.read_parquet(out), schema, SYNTHETIC).write_parquet(out)
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
        left = redis.Redis(host="127.0.0.1", port=6379, db=14).keys(f"*{settings.project}".encode())
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
        {
            **template,
            "AMT_CREDIT": 250_000.0,
            "AMT_ANNUITY": 12_500,
            "CODE_GENDER": "F",
            "DAYS_BIRTH": -12_000,
            "DAYS_EMPLOYED": -3_000,
            "CNT_FAM_MEMBERS": 3,
        },
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


def _require_redis() -> None:
    if not redis_listening(REDIS):
        missing_service(f"no Redis listening on {REDIS.split(',')[0]}")


def _redis_client() -> redis.Redis:
    return redis.Redis.from_url(f"redis://{REDIS.split(',')[0]}/14")


@pytest.fixture
def tricky_features(features_dir: Path, tmp_path: Path) -> Path:
    """features_dir with the values a byte-level encoder could get wrong: signed zeros
    (a value cache keyed on equality merges them), NaN next to null, infinities, the
    smallest subnormal, a string longer than 63 bytes (RDB's 2-byte length; over 64 it
    also turns Redis' listpack into a hash table), and a client with no value at all."""
    frame = pl.read_parquet(features_dir / FEATURES_FILE)
    floats = [c for c, t in frame.schema.items() if t == pl.Float64 and c != "TARGET"]
    strings = [c for c, t in frame.schema.items() if t == pl.String and c != "split"]
    specials = [0.0, -0.0, float("nan"), float("inf"), float("-inf"), 5e-324, -1.8e308, None]
    row = pl.int_range(pl.len())
    frame = frame.with_columns(
        pl.when(row % 2 == 0).then(0.0).otherwise(-0.0).alias(floats[0]),
        pl.Series(floats[1], [specials[i % len(specials)] for i in range(frame.height)]),
        pl.when(row % 3 == 0)
        .then(pl.lit("é" * 40))
        .otherwise(pl.col(strings[0]))
        .alias(strings[0]),
    )
    empty = frame.head(1).with_columns(
        pl.lit(EMPTY, dtype=pl.Int64).alias("SK_ID_CURR"),
        *[pl.lit(None, dtype=frame.schema[c]).alias(c) for c in floats + strings],
    )
    pl.concat([frame, empty]).write_parquet(tmp_path / FEATURES_FILE)
    (tmp_path / "feature_schema.json").write_text(
        (features_dir / "feature_schema.json").read_text()
    )
    return tmp_path


def _refuse(*args: object, **kwargs: object) -> None:
    raise AssertionError("the RESTORE snapshot fell back to HSET")


@pytest.mark.parametrize("ttl", [None, 3600])
def test_redis_snapshot_is_byte_identical_to_feasts_own_writes(
    tricky_features: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ttl: int | None
) -> None:
    """The RESTORE snapshot, the HSET pipeline it falls back to (Redis Cluster, a server
    refusing RESTORE) and Feast's own ``online_write_batch`` store exactly the same
    hashes: same keys, fields and bytes, same Redis encoding (a listpack even DUMPs the
    same), same expiry."""
    _require_redis()
    frame = pl.read_parquet(tricky_features / FEATURES_FILE)
    module = sys.modules["training.feature_store.materialize"]
    patches: dict[str, tuple[str, object]] = {
        "restore": ("_write_redis_pipelined", _refuse),
        "pipelined": ("_every_view", lambda store, views: False),
        # Feast's generic path: the one for any other online store
        "feast": ("RedisOnlineStore", type("Other", (), {})),
    }
    written: dict[str, FeatureStoreSettings] = {}
    now = datetime.now(tz=UTC)
    client = _redis_client()
    try:
        for path, (name, replacement) in patches.items():
            written[path] = _settings("redis", tmp_path / path).model_copy(
                update={"redis_key_ttl_seconds": ttl}
            )
            with monkeypatch.context() as patch:
                patch.setattr(module, name, replacement)
                materialize(written[path], tricky_features, progress=False, event_time=now)
        suffix = {p: s.project.encode() for p, s in written.items()}
        restored = open_store(written["restore"])
        # Not clients: the completeness markers and the client index.
        others = {MarkerStore(restored).redis_key(), ClientIndex(restored).redis_key()}
        keys = [
            k
            for k in client.scan_iter(count=1000)
            if k.endswith(suffix["restore"]) and k not in others
        ]
        assert len(keys) == frame.height
        for key in keys:
            twins = [key[: -len(suffix["restore"])] + suffix[p] for p in ("pipelined", "feast")]
            stored = client.hgetall(key)
            assert all(client.hgetall(twin) == stored for twin in twins), key
            encoding = client.object("encoding", key)
            assert all(client.object("encoding", twin) == encoding for twin in twins)
            if encoding == b"listpack":  # even Redis' own serialisation is the same
                assert all(client.dump(twin) == client.dump(key) for twin in twins), key
            for twin in (key, *twins):
                assert (0 < client.ttl(twin) <= ttl) if ttl else client.ttl(twin) == -1
        _assert_reader_serves_signs(written["restore"], frame)
    finally:
        for settings in written.values():
            open_store(settings).teardown()


def _assert_reader_serves_signs(settings: FeatureStoreSettings, frame: pl.DataFrame) -> None:
    """The reader gives back a written float column's signs (-0.0 included) and all-missing
    for the client without values."""
    store = open_store(settings)
    signed = next(c for c, t in frame.schema.items() if t == pl.Float64 and c != "TARGET")
    register_model_features(store, "signs", [signed])
    reader = OnlineFeatureReader(store)
    for row in frame.select("SK_ID_CURR", signed).head(4).iter_rows():
        served = reader.get_client_features(row[0], "signs")[signed]
        assert math.copysign(1.0, served) == math.copysign(1.0, row[1])
    assert set(reader.get_client_features(EMPTY, "signs").values()) == {None}


SQLITE_COLUMNS = (
    "entity_key",
    "feature_name",
    "value",
    "value_text",
    "vector_value",
    "event_ts",
    "created_ts",
)


def _sqlite_contents(settings: FeatureStoreSettings) -> tuple[list[tuple], dict[str, list]]:
    """The file's schema, and every row of every table (each column with its storage
    class), in primary-key order; Feast's tables only (not the completeness markers nor the
    client index)."""
    typed = ", ".join(f"{c}, typeof({c})" for c in SQLITE_COLUMNS)
    with closing(sqlite3.connect(settings.sqlite_path)) as connection:
        schema = connection.execute(
            "SELECT type, name, tbl_name, sql FROM sqlite_master WHERE tbl_name NOT IN (?, ?) "
            "ORDER BY name",
            (completeness.SQLITE_TABLE, client_index.SQLITE_TABLE),
        ).fetchall()
        rows = {
            name: connection.execute(
                f'SELECT {typed} FROM "{name}" ORDER BY entity_key, feature_name'
            ).fetchall()
            for kind, name, _, _ in schema
            if kind == "table"
        }
        assert connection.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    return schema, rows


def _feast_ingest(
    store: FeatureStore, frame: pl.DataFrame, views: list, progress: object = None
) -> None:
    """Feast's own ``write_to_online_store``: its own conversion of a pandas frame."""
    for view in views:
        store.write_to_online_store(view.name, frame.to_pandas())


def _fell_back(*args: object, **kwargs: object) -> None:
    raise AssertionError("the SQLite snapshot fell back to Feast's writer")


def _changed(frame: pl.DataFrame) -> pl.DataFrame:
    """A later snapshot: other values for half the clients, the last client gone."""
    floats = [c for c, t in frame.schema.items() if t == pl.Float64]
    strings = [c for c, t in frame.schema.items() if t == pl.String]
    odd = pl.col("SK_ID_CURR") % 2 == 1
    return frame.head(frame.height - 1).with_columns(
        *[pl.when(odd).then(pl.col(c) * -3.0 + 0.1).otherwise(pl.col(c)).alias(c) for c in floats],
        *[
            pl.when(odd).then(pl.lit(None, pl.String)).otherwise(pl.col(c)).alias(c)
            for c in strings
        ],
    )


@pytest.fixture
def local_time_not_utc() -> Iterator[None]:
    """The process' local time zone is India's (UTC+5:30) for the test."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TZ", "Asia/Kolkata")
        time.tzset()
        assert time.localtime(0).tm_hour == 5
        yield
    time.tzset()


@pytest.mark.usefixtures("local_time_not_utc")
def test_sqlite_snapshot_is_byte_identical_to_feasts_own_writes(
    tricky_features: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The SQLite snapshot, Feast's ``online_write_batch`` (fed the materialiser's protos)
    and Feast's own ``write_to_online_store`` (its own conversion of a pandas frame) store
    the same rows, column by column and storage class (signed zeros, NaN next to null,
    infinities, subnormals, long strings, a client without history, one without any value);
    a second snapshot over the first upserts like Feast's writer (a client absent from it
    keeps its rows). In a local time zone other than UTC, where Feast's timestamps are not
    Unix seconds (its adapter takes the naive UTC time for local time), as Feast does."""
    frame = pl.read_parquet(tricky_features / FEATURES_FILE)
    module = sys.modules["training.feature_store.materialize"]
    patches: dict[str, tuple[str, object]] = {
        "snapshot": ("_rows", _fell_back),
        "batch": ("SqliteOnlineStore", type("Other", (), {})),
        "feast": ("write_frame", _feast_ingest),
    }
    now = datetime.now(tz=UTC)
    written: dict[str, FeatureStoreSettings] = {}
    for path, (name, replacement) in patches.items():
        written[path] = FeatureStoreSettings(data_dir=tmp_path / path, project="test_fs")
        with monkeypatch.context() as patch:
            patch.setattr(module, name, replacement)
            materialize(written[path], tricky_features, progress=False, event_time=now)
    schema, rows = _sqlite_contents(written["snapshot"])
    assert sum(len(r) for r in rows.values()) == frame.height * (frame.width - 3)
    for path in ("batch", "feast"):
        assert _sqlite_contents(written[path]) == (schema, rows), path

    later = offline_frame(_changed(frame).drop("TARGET", "split"), now + timedelta(hours=1))
    for path in ("snapshot", "batch"):
        store = open_store(written[path])
        views = [store.get_feature_view(APPLICATION_VIEW), store.get_feature_view(HISTORY_VIEW)]
        with monkeypatch.context() as patch:
            patch.setattr(module, *patches[path])
            write_frame(store, later, views)
    again = _sqlite_contents(written["snapshot"])
    assert again == _sqlite_contents(written["batch"])
    assert again != (schema, rows)

    _assert_reader_serves_signs(written["snapshot"], later)


def _entity(client_id: int) -> EntityKeyProto:
    return EntityKeyProto(join_keys=["SK_ID_CURR"], entity_values=[ValueProto(int64_val=client_id)])


def _sqlite_key(client_id: int) -> bytes:
    """A client's ``entity_key`` column in Feast's SQLite tables."""
    return serialize_entity_key(_entity(client_id), entity_key_serialization_version=3)


def _sqlite_store_and_reload(
    features_dir: Path, tmp_path: Path
) -> tuple[FeatureStoreSettings, datetime, FeatureStore, list[FeatureView], pl.DataFrame]:
    """A SQLite store materialised at ``first``, its views, and changed features a day
    later to load over it."""
    settings = FeatureStoreSettings(data_dir=tmp_path, project="test_fs")
    first = datetime(2026, 1, 1, tzinfo=UTC)
    materialize(settings, features_dir, progress=False, event_time=first)
    store = open_store(settings)
    views = [store.get_feature_view(APPLICATION_VIEW), store.get_feature_view(HISTORY_VIEW)]
    frame = pl.read_parquet(settings.offline_dir / "client_features.parquet")
    later = offline_frame(_changed(frame), first + timedelta(days=1))
    return settings, first, store, views, later


def test_sqlite_readers_see_each_client_before_or_after_a_load(
    features_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Re-materialising while the services read: a read-only connection (as the reader's)
    never fails and never sees a client's views half written (each chunk of clients is one
    transaction over every view)."""
    settings, _, store, views, later = _sqlite_store_and_reload(features_dir, tmp_path)
    keys = {client: _sqlite_key(client) for client in later["SK_ID_CURR"].to_list()}
    both = " UNION ALL ".join(
        f'SELECT event_ts FROM "test_fs_{v.name}" WHERE entity_key = ?1' for v in views
    )
    seen: list[set[int]] = []
    errors: list[BaseException] = []
    done = threading.Event()

    def read() -> None:
        connection = sqlite3.connect(f"file:{settings.sqlite_path}?mode=ro", uri=True)
        try:
            while not done.is_set():
                key = keys[random.choice(list(keys))]
                seen.append({ts for (ts,) in connection.execute(both, (key,))})
        except BaseException as error:
            errors.append(error)
        finally:
            connection.close()

    monkeypatch.setattr(sqlite_snapshot, "CHUNK_CLIENTS", 7)
    reader = threading.Thread(target=read)
    reader.start()
    try:
        for _ in range(3):
            write_frame(store, later, views)
    finally:
        done.set()
        reader.join()
    assert not errors
    assert seen and all(len(stamps) == 1 for stamps in seen)


def test_sqlite_snapshot_failing_midway_keeps_whole_chunks(
    features_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A load that fails inside a chunk rolls that chunk back: the clients of the chunks
    before it have every view new, the others every view as before, and the file is sound."""
    settings, first, store, views, later = _sqlite_store_and_reload(features_dir, tmp_path)
    built = sqlite_snapshot._statements
    calls = []

    def broken(*args: object) -> list[tuple]:
        rows = built(*args)  # type: ignore[arg-type]
        calls.append(len(rows))
        # the third chunk's second view: one client with a parameter missing
        return [*rows[:-1], rows[-1][:-1]] if len(calls) == 6 else rows

    monkeypatch.setattr(sqlite_snapshot, "CHUNK_CLIENTS", 7)
    monkeypatch.setattr(sqlite_snapshot, "_statements", broken)
    with pytest.raises(sqlite3.ProgrammingError):
        write_frame(store, later, views)
    keys = sorted(_sqlite_key(c) for c in later["SK_ID_CURR"].to_list())
    _, rows = _sqlite_contents(settings)
    stamps: dict[bytes, set[int]] = {}
    for table in rows.values():
        for row in table:
            stamps.setdefault(row[0], set()).add(row[10])
    new, old = int((first + timedelta(days=1)).timestamp()), int(first.timestamp())
    assert [stamps[k] for k in keys[:14]] == [{new}] * 14
    assert [stamps[k] for k in keys[14:]] == [{old}] * (len(keys) - 14)
    assert not (tmp_path / "online.db-journal").exists()


def _client_key(settings: FeatureStoreSettings, client_id: int) -> bytes:
    return _redis_key(settings.project, _entity(client_id), entity_key_serialization_version=3)


def test_redis_snapshot_replaces_hashes_a_partial_write_merges(
    features_dir: Path, tmp_path: Path
) -> None:
    """A snapshot of every view replaces each client's hash (a field of a feature no longer
    defined goes); a write of some views only must keep the other views' fields."""
    _require_redis()
    settings = _settings("redis", tmp_path)
    client = _redis_client()
    key = _client_key(settings, CLIENT)
    try:
        materialize(settings, features_dir, progress=False)
        client.hset(key, b"gone", b"a feature dropped since")
        materialize(settings, features_dir, progress=False)
        assert client.hget(key, b"gone") is None
        client.hset(key, b"kept", b"another view's field")
        store = open_store(settings.model_copy(update={"redis_skip_dedup": True}))
        view = store.get_feature_view(APPLICATION_VIEW)
        row = {"SK_ID_CURR": CLIENT, **{f.name: None for f in view.features}}
        frame = offline_frame(pl.DataFrame([row], infer_schema_length=None), datetime.now(tz=UTC))
        write_frame(store, frame, [view])
        assert client.hget(key, b"kept") == b"another view's field"
    finally:
        open_store(settings).teardown()


def test_redis_refusing_restore_gets_the_hset_pipeline(features_dir: Path, tmp_path: Path) -> None:
    """A server that refuses RESTORE (here an ACL; some managed Redis do) still gets the
    snapshot, through HSETs."""
    _require_redis()
    client = _redis_client()
    user = f"fs_test_{uuid.uuid4().hex[:8]}"
    client.acl_setuser(
        user,
        enabled=True,
        passwords=["+pw"],
        keys=["*"],
        channels=["*"],
        commands=["+@all", "-restore"],
    )
    settings = _settings("redis", tmp_path)
    limited = settings.model_copy(
        update={"redis_connection": f"{REDIS},username={user},password=pw"}
    )
    try:
        materialize(limited, features_dir, progress=False)
        assert client.hgetall(_client_key(settings, CLIENT))
        store = open_store(settings)
        register_model_features(store, "acl", ["AMT_CREDIT"])
        assert OnlineFeatureReader(store).get_client_features(NO_HISTORY, "acl") == {
            "AMT_CREDIT": 1.5
        }
    finally:
        client.acl_deluser(user)
        open_store(settings).teardown()


def test_an_error_reply_raises_and_drops_the_connection() -> None:
    """Every reply is read; an error raises, and the connection, whose later replies were
    never read, is closed rather than handed back out of step."""
    _require_redis()
    client = _redis_client()
    commands = (
        b"*2\r\n$4\r\nECHO\r\n$1\r\na\r\n*1\r\n$7\r\nNOTACMD\r\n*2\r\n$4\r\nECHO\r\n$1\r\nb\r\n"
    )
    connection = client.connection_pool.get_connection()
    try:
        with pytest.raises(redis.ResponseError, match="unknown command"):
            send_chunks(connection, iter([(np.frombuffer(commands, dtype=np.uint8), 3)]))
        assert connection._sock is None
    finally:
        client.connection_pool.release(connection)
    assert client.echo("still fine") == b"still fine"


def test_chunk_crc_is_redis_checksum_over_the_kept_bytes() -> None:
    """Redis' CRC-64 check value, for a client whose bytes are contiguous and for one whose
    bytes skip a run the other keeps and end in a longer prefix: single-byte and pair
    steps, a run only some clients keep, prefixes of different lengths."""
    rows = np.full((2, 16), 0xAB, dtype=np.uint8)
    rows[0, 1:10] = np.frombuffer(b"123456789", dtype=np.uint8)
    rows[1, 1:4] = np.frombuffer(b"123", dtype=np.uint8)
    rows[1, 7:13] = np.frombuffer(b"456789", dtype=np.uint8)
    crc = ChunkCrc(rows)
    crc.kept(1, 4)
    crc.kept_by(4, 7, np.array([True, False]))
    crc.prefix(7, np.array([3, 6]))
    assert crc.crc.tolist() == [0xE9C6D914C4B8D9CA] * 2


def test_payload_length_has_no_leading_zeros() -> None:
    """RESP refuses ``$0100``: a payload length shorter than the widest drops its slots."""
    width, digits = 220, 3
    layout = RestoreLayout(
        template=np.zeros(width, dtype=np.uint8),
        id_offset=0,
        float_columns=[],
        float_offsets=[],
        coded=[],
        length_offset=1,
        length_digits=digits,
        payload=slice(10, width - 8),
    )
    out = np.zeros((3, width), dtype=np.uint8)
    keep = np.ones((3, width), dtype=bool)
    keep[0, 11:210] = False  # 3 payload bytes kept
    keep[1, 100:210] = False  # 92 kept
    _write_length(out, keep, layout)
    written = [
        bytes(row[1 : 1 + digits][k[1 : 1 + digits]]) for row, k in zip(out, keep, strict=True)
    ]
    assert written == [b"11", b"100", b"210"]


@pytest.mark.usefixtures("local_time_not_utc")
def test_direct_sqlite_read_gives_feasts_timestamps(features_dir: Path, tmp_path: Path) -> None:
    """Feast's SQLite store keeps local wall-clock seconds of the UTC time: the direct read
    must decode them as Feast does, or TTL checks are off by the UTC offset elsewhere."""
    settings = _settings("sqlite", tmp_path)
    written = datetime(2026, 11, 2, 8, 30, 15, tzinfo=UTC)
    materialize(settings, features_dir, progress=False, event_time=written)
    store = open_store(settings)
    reader = OnlineFeatureReader(store, "direct")
    names = [f.name for view in store.list_feature_views() for f in view.features]
    register_model_features(store, ALL, names)
    _, direct = reader._read_sqlite(CLIENT, ALL)
    _, feast = reader._read_store(CLIENT, ALL)
    assert direct == feast
    assert set(direct.values()) == {written}


def test_direct_sqlite_read_takes_all_views_in_one_read_transaction(
    features_dir: Path, tmp_path: Path
) -> None:
    """Between the views' SELECTs no materialisation can commit (the views of a client come
    from the same load), and the read lock is released once the read returns."""
    settings = _settings("sqlite", tmp_path)
    materialize(settings, features_dir, progress=False, event_time=datetime.now(tz=UTC))
    store = open_store(settings)
    reader = OnlineFeatureReader(store, "direct")
    names = [f.name for view in store.list_feature_views() for f in view.features]
    register_model_features(store, ALL, names)
    path = store._get_provider().online_store._get_db_path(store.config)
    selects: list[str] = []
    outcomes: list[str] = []

    def try_to_write() -> str:
        writer = sqlite3.connect(path, timeout=0, isolation_level=None)
        try:
            writer.execute("BEGIN IMMEDIATE")
            writer.execute("CREATE TABLE IF NOT EXISTS probe (x)")  # any write
            writer.execute("COMMIT")
            return "committed"
        except sqlite3.OperationalError as error:
            return str(error)
        finally:
            writer.close()

    def between_views(statement: str) -> None:
        if statement.startswith("SELECT feature_name"):
            selects.append(statement)
            if len(selects) == 2:  # the first view is read, the second not yet
                outcomes.append(try_to_write())

    connection = reader._sqlite_connection()
    connection.set_trace_callback(between_views)
    values = reader.get_client_features(CLIENT, ALL, names)
    connection.set_trace_callback(None)
    assert len(selects) == len(store.list_feature_views()) >= 2, selects
    assert outcomes == ["database is locked"]
    assert try_to_write() == "committed"  # nothing held after the read
    assert any(v is not None for v in values.values())
