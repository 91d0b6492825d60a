"""Materialisation throughput and online read latency, SQLite and Redis (``make bench``)."""

from __future__ import annotations

import socket
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from serving_core.feature_store.reader import OnlineFeatureReader, register_model_features
from serving_core.feature_store.settings import FeatureStoreSettings, feast_redis_connection
from serving_core.frame import model_columns
from training.feature_store.materialize import materialize, open_store
from training.features.pipeline import FEATURES_FILE, load_feature_schema


def redis_listening(connection: str) -> bool:
    host, _, port = feast_redis_connection(connection).split(",")[0].partition(":")
    try:
        with socket.create_connection((host, int(port or 6379)), timeout=0.5):
            return True
    except OSError:
        return False


def _percentiles(seconds: list[float]) -> dict[str, float]:
    ordered = sorted(seconds)
    return {
        "p50_ms": round(ordered[len(ordered) // 2] * 1e3, 3),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1e3, 3),
    }


def _bench_one(
    settings: FeatureStoreSettings, features_dir: Path, reads: int, progress: bool
) -> dict[str, Any]:
    written = materialize(settings, features_dir, progress, event_time=datetime.now(tz=UTC))
    store = open_store(settings)
    names = model_columns(load_feature_schema(features_dir))
    register_model_features(store, "bench", names)
    ids = pl.read_parquet(Path(features_dir) / FEATURES_FILE, columns=["SK_ID_CURR"])
    sample = ids["SK_ID_CURR"].sample(min(reads, ids.height), seed=0).to_list()
    result: dict[str, Any] = {"materialize": written, "features": len(names)}
    for backend in ("sdk", "direct"):
        reader = OnlineFeatureReader(store, backend)
        reader.get_client_features(sample[0], "bench")  # warm caches and connections
        timings = []
        for client_id in sample:
            started = time.perf_counter()
            reader.get_client_features(client_id, "bench")
            timings.append(time.perf_counter() - started)
        result[f"read_{backend}"] = _percentiles(timings)
    if settings.is_redis:
        store.teardown()  # drops this project's keys
    return result


def bench_feature_store(
    features_dir: Path = Path("artifacts/features"),
    *,
    redis_connection: str = "127.0.0.1:6379,db=15",
    reads: int = 2_000,
    progress: bool = False,
    stores: tuple[str, ...] = ("sqlite", "redis"),
) -> dict[str, Any]:
    """Materialise ``features_dir`` into a scratch SQLite store and (if reachable) Redis, then
    time ``reads`` single-client reads with the SDK and the direct backend."""
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="feature-store-bench-") as scratch:
        if "sqlite" in stores:
            sqlite = FeatureStoreSettings(data_dir=Path(scratch) / "sqlite", project="bench")
            out["sqlite"] = _bench_one(sqlite, features_dir, reads, progress)
            sqlite_file = sqlite.sqlite_path
            out["sqlite"]["online_db_mb"] = round(sqlite_file.stat().st_size / 2**20, 1)
        if "redis" not in stores:
            pass
        elif redis_listening(redis_connection):
            redis = FeatureStoreSettings(
                data_dir=Path(scratch) / "redis",
                online_store="redis",
                redis_connection=redis_connection,
                project=f"bench_{int(time.time())}",
            )
            out["redis"] = _bench_one(redis, features_dir, reads, progress)
        else:
            out["redis"] = {"skipped": f"nothing listens on {redis_connection}"}
    return out


if __name__ == "__main__":
    import json

    print(json.dumps(bench_feature_store(progress=True), indent=1))
