"""Scale-out benchmarks (issue 21): Spark vs polars features, Redis Cluster materialisation,
and serving throughput with 1 and 2 scoring replicas behind the gateway's round robin.

Each runs on this machine only, with servers of its own on free loopback ports (never the
ports ``make up`` uses). ``BENCH_TABLES_DIR`` / ``BENCH_FEATURES_DIR`` reuse typed tables /
features built earlier (the full-scale set takes minutes to generate).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import numpy as np
import polars as pl

from credit.bench import run_measured
from credit.settings import PlatformSettings

MILLION = 1_000_000


def _tables(work: Path, clients: int) -> tuple[Path, dict[str, Any]]:
    """Typed tables of ``clients`` synthetic clients (or BENCH_TABLES_DIR's)."""
    given = os.environ.get("BENCH_TABLES_DIR")
    if given:
        return Path(given), {"reused": given}
    raw, tables = work / "raw", work / "tables"
    generation = run_measured(
        ["data", "generate", "--out", str(raw), "--clients", str(clients), "--seed", "1"]
    )
    conversion = run_measured(["data", "convert", str(raw), "--out", str(tables)])
    shutil.rmtree(raw)
    return tables, {"generation": generation, "conversion": conversion}


def compare_features(left: Path, right: Path) -> dict[str, Any]:
    """How far two features.parquet files are apart: features whose nulls or exact values
    differ, and the largest relative difference of the floats."""
    a, b = pl.read_parquet(left), pl.read_parquet(right)
    if a.columns != b.columns or a.height != b.height:
        return {"same_shape": False}
    differing, worst = [], 0.0
    for name in a.columns:
        x, y = a[name], b[name]
        if x.dtype != pl.Float64:
            if not x.equals(y):
                differing.append(name)
            continue
        if not x.is_null().equals(y.is_null()):
            differing.append(name)
            continue
        u, v = x.drop_nulls().to_numpy(), y.drop_nulls().to_numpy()
        scale = np.maximum(np.abs(u), np.abs(v))
        with np.errstate(invalid="ignore", divide="ignore"):
            relative = np.where(scale > 0, np.abs(u - v) / scale, 0.0)
        worst = max(worst, float(np.nanmax(relative)) if relative.size else 0.0)
    return {
        "same_shape": True,
        "differing_features": differing,
        "max_relative_difference": worst,
    }


def _load() -> float:
    """The machine's 1-minute load average: on a shared 2-core machine, wall times are only
    comparable between runs under similar load."""
    return round(os.getloadavg()[0], 1)


def bench_spark_features(settings: PlatformSettings, work: Path, clients: int) -> dict[str, Any]:
    """The feature pipeline with polars, then with Spark (local mode, every core), on the
    same typed tables; wall time, peak memory and whether they agree."""
    tables, prepared = _tables(work, clients)
    rows = int(
        pl.scan_parquet(tables / "application_train.parquet").select(pl.len()).collect().item()
        + pl.scan_parquet(tables / "application_test.parquet").select(pl.len()).collect().item()
    )
    out: dict[str, Any] = {"clients": rows, "tables": prepared}
    for engine in ("polars", "spark"):
        folder = work / f"features-{engine}"
        measured = run_measured(
            ["features", "build", "--engine", engine, "--tables", str(tables), "--out", str(folder)]
        )
        out[engine] = {
            **measured,
            "load_average_after": _load(),
            "seconds_per_million_clients": round(measured["seconds"] * MILLION / rows, 1),
        }
    out["spark_master"] = os.environ.get("SPARK_MASTER", "local[*]")
    out["spark_over_polars"] = round(out["spark"]["seconds"] / out["polars"]["seconds"], 2)
    out["agreement"] = compare_features(
        work / "features-polars" / "features.parquet", work / "features-spark" / "features.parquet"
    )
    return out


def _redis_memory(ports: list[int]) -> int:
    import redis

    return sum(int(cast(dict, redis.Redis(port=p).info("memory"))["used_memory"]) for p in ports)


def bench_redis_cluster(settings: PlatformSettings, work: Path, clients: int) -> dict[str, Any]:
    """Materialisation of the full features into a single Redis and into a local 3-master
    Redis Cluster (both this benchmark's own servers), RESTORE per client; the time, and
    the memory the online store takes per million clients."""
    from credit.local_redis import redis_cluster, redis_server
    from serving_core.feature_store.settings import FeatureStoreSettings
    from training.feature_store.materialize import materialize

    given = os.environ.get("BENCH_FEATURES_DIR")
    prepared: dict[str, Any]
    if given:
        features, prepared = Path(given), {"reused": given}
    else:  # features of freshly generated tables
        tables, prepared = _tables(work, clients)
        features = work / "features"
        prepared["features"] = run_measured(
            ["features", "build", "--tables", str(tables), "--out", str(features)]
        )
    results: dict[str, Any] = {"inputs": prepared}
    event_time = datetime.now(tz=UTC)
    with ExitStack() as stack:
        single, _ = stack.enter_context(redis_server(work / "redis-single"))
        cluster = stack.enter_context(redis_cluster(work / "redis-cluster", masters=3))
        targets = {
            "single": (
                [single],
                FeatureStoreSettings(
                    data_dir=work / "store-single",
                    online_store="redis",
                    redis_connection=f"127.0.0.1:{single}",
                    project="bench_scale",
                ),
            ),
            "cluster_3_masters": (
                cluster,
                FeatureStoreSettings(
                    data_dir=work / "store-cluster",
                    online_store="redis-cluster",
                    redis_connection=f"127.0.0.1:{cluster[0]}",
                    project="bench_scale",
                ),
            ),
        }
        for name, (ports, store) in targets.items():
            before = _redis_memory(ports)
            loaded = materialize(store, features, progress=False, event_time=event_time)
            used = _redis_memory(ports) - before
            results[name] = {
                "load_average_after": _load(),
                "clients": loaded["clients"],
                "write_seconds": loaded["write_seconds"],
                "clients_per_s": loaded["clients_per_s"],
                "memory_mb": round(used / 1e6, 1),
                "memory_gb_per_million_clients": round(used / loaded["clients"] * 1e6 / 1e9, 2),
                "write_seconds_per_million_clients": round(
                    loaded["write_seconds"] * MILLION / loaded["clients"], 1
                ),
            }
    return results


# --- serving scale-out -----------------------------------------------------------------------


def _free_port() -> int:
    from credit.local_redis import free_port

    return free_port()


def _wait_http(url: str, seconds: float = 180) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as reply:
                if reply.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url} not ready after {seconds} s")


@contextmanager
def _process(args: list[str], env: dict[str, str], log: Path) -> Any:
    with log.open("w") as out:
        process = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            yield process
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_serving(address: str, seconds: float = 600) -> None:
    """Until the replica's gRPC health says SERVING (its model and store are loaded)."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    deadline = time.monotonic() + seconds
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            try:
                reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=5)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.5)
    raise RuntimeError(f"scoring at {address} not SERVING after {seconds} s")


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def _handled(metrics_port: int) -> float:
    """Score RPCs a scoring replica has completed (its Prometheus counter; -1 unknown)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=30) as r:
            text = r.read().decode()
    except OSError:
        return -1.0
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("grpc_server_handled_total{") and 'grpc_method="Score"' in line
    )


def _wrk_parallel(gateways: list[str], connections: int, seconds: int, env: dict[str, str]):
    """One wrk per gateway at once (``connections`` each); requests/s summed."""
    runs = [
        subprocess.Popen(
            ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-s", "bench/score.lua", url],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        for url in gateways
    ]
    summaries = []
    for run in runs:
        stdout, _ = run.communicate()
        summaries.append(
            json.loads(next(x[5:] for x in stdout.splitlines() if x.startswith("JSON ")))
        )
    return {
        "requests_per_s": round(sum(s["requests"] / s["seconds"] for s in summaries), 1),
        "non2xx": sum(s["non2xx"] for s in summaries),
        "errors": sum(s["errors"] for s in summaries),
        "p50_ms": max(s["p50_ms"] for s in summaries),
        "p99_ms": max(s["p99_ms"] for s in summaries),
    }


def bench_scale_out(settings: PlatformSettings, work: Path, clients: int) -> dict[str, Any]:
    """POST /v1/scores throughput with 1 scoring replica and 1 gateway, then 2 and 2: the
    replicas are ``credit serve scoring`` processes, each gateway reaches them through one
    gRPC target listing both (``ipv4:a,b``) with round-robin balancing, as it would a
    headless Service's addresses; wrk drives each gateway with 8 connections."""
    from services.gateway.keys import SCOPES, add_key

    if shutil.which("wrk") is None:
        raise SystemExit("wrk is missing: `make bench` installs it (scripts/apt-install.sh wrk)")
    size = min(clients, 5_000)
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "TABLES_DIR": str(work / "tables-small"),
        "FEATURES_DIR": str(work / "features-small"),
        "ARTIFACTS_DIR": str(work / "artifacts"),
        "FEATURE_STORE_DIR": str(work / "store"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlruns' / 'mlflow.db'}",
        "ONLINE_STORE": "sqlite",
        "LOG_FORMAT": "json",
    }
    raw = work / "raw-small"
    for step in (
        ["data", "generate", "--out", str(raw), "--clients", str(size), "--seed", "2"],
        ["data", "convert", str(raw), "--out", env["TABLES_DIR"]],
        ["features", "build", "--tables", env["TABLES_DIR"], "--out", env["FEATURES_DIR"]],
        ["train", "--quick"],
        ["materialize"],
    ):
        subprocess.run([sys.executable, "-m", "credit.cli", *step], env=env, check=True)
    keys = work / "keys.json"
    key = add_key(keys, "bench", SCOPES, rate_per_minute=10**9, partner="bench")
    ids = pl.read_parquet(Path(env["FEATURES_DIR"]) / "features.parquet", columns=["SK_ID_CURR"])
    wrk_env = {
        **os.environ,
        "BENCH_API_KEY": key,
        "BENCH_CLIENT_IDS": ",".join(map(str, ids["SK_ID_CURR"].to_list()[:500])),
    }
    results: dict[str, Any] = {"clients_in_store": ids.height, "cpus": os.cpu_count()}
    try:
        _replica_runs(work, env, keys, wrk_env, results)
    finally:  # the services' logs outlive the work folder
        logs = Path(settings.artifacts_dir) / "bench-logs" / "scale_out"
        logs.mkdir(parents=True, exist_ok=True)
        for log_file in work.glob("*.log"):
            shutil.copy(log_file, logs / log_file.name)
    results["throughput_ratio_2_over_1"] = round(
        results["replicas_2"]["requests_per_s"] / results["replicas_1"]["requests_per_s"], 2
    )
    return results


def _replica_runs(
    work: Path, env: dict[str, str], keys: Path, wrk_env: dict[str, str], results: dict[str, Any]
) -> None:
    for replicas in (1, 2):
        with ExitStack() as stack:
            scoring, scoring_processes, gateway_processes = [], [], []
            for i in range(replicas):
                port, metrics = _free_port(), _free_port()
                scoring.append((port, metrics))
                scoring_processes.append(
                    stack.enter_context(
                        _process(
                            [sys.executable, "-m", "credit.cli", "serve", "scoring"],
                            {
                                **env,
                                "SCORING_PORT": str(port),
                                "SCORING_METRICS_PORT": str(metrics),
                                "SCORING_CACHE_DIR": str(work / "model-cache"),
                            },
                            work / f"scoring-{replicas}-{i}.log",
                        )
                    )
                )
            target = "ipv4:" + ",".join(f"127.0.0.1:{port}" for port, _ in scoring)
            gateways = []
            for i in range(replicas):
                port = _free_port()
                database = work / f"decisions-{replicas}-{i}.db"
                gateway_processes.append(
                    stack.enter_context(
                        _process(
                            [sys.executable, "-m", "services.gateway"],
                            {
                                **env,
                                "GATEWAY_PORT": str(port),
                                "GATEWAY_API_KEYS_FILE": str(keys),
                                "GATEWAY_SCORING_ADDRESS": target,
                                "GATEWAY_EXPLAINER_ADDRESS": f"127.0.0.1:{_free_port()}",
                                "GATEWAY_DATABASE_URL": f"sqlite:///{database}",
                                "GATEWAY_DECISION_ARCHIVE_DIR": str(work / "archive"),
                            },
                            work / f"gateway-{replicas}-{i}.log",
                        )
                    )
                )
                gateways.append(f"http://127.0.0.1:{port}")
            for port, _ in scoring:
                _wait_serving(f"127.0.0.1:{port}")
            for gateway in gateways:
                _wait_http(f"{gateway}/healthz")
            _wrk_parallel(gateways, 4, 5, wrk_env)  # warm-up: models loaded, connections up
            before = [_handled(m) for _, m in scoring]
            run = _wrk_parallel(gateways, 8, 20, wrk_env)
            after = [_handled(m) for _, m in scoring]
            run["load_average_after"] = _load()
            run["rss_mb"] = {
                "scoring": [_rss_mb(p.pid) for p in scoring_processes],
                "gateway": [_rss_mb(p.pid) for p in gateway_processes],
            }
            run["score_rpcs_per_replica"] = [int(b - a) for a, b in zip(before, after, strict=True)]
            results[f"replicas_{replicas}"] = run
