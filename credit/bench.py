"""``make bench``: speed and memory of the platform's heavy steps, measured for real.

Each benchmark runs its step as a separate process (``credit ...``) so the peak resident
memory reported is that step's own (``wait4`` rusage), not the harness's. Results are
merged into ``artifacts/bench.json`` (a later run of one benchmark keeps the others) and
rendered to ``artifacts/bench.md``.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import structlog

from credit.settings import KAGGLE_CLIENTS, PlatformSettings

log = structlog.get_logger(__name__)
Benchmark = Callable[[PlatformSettings, Path, int], dict[str, Any]]
SPEED_LOOP = 10_000_000


def python_speed() -> float:
    """Seconds for a fixed pure-Python loop, recorded around every benchmark: this VM's
    speed drifts (this loop took 0.39-0.60 s within a few minutes) and the figures of the
    same code move with it, so each result says how fast the machine was."""
    started = time.perf_counter()
    total = 0
    for i in range(SPEED_LOOP):
        total += i
    return round(time.perf_counter() - started, 3)


def run_measured(args: list[str], env: dict[str, str] | None = None) -> dict[str, float]:
    """Run ``credit <args>`` in a child process; its wall time and peak RSS."""
    started = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, "-m", "credit.cli", *args],
        env={
            **os.environ,
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
            **(env or {}),
        },
    )
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"benchmark step failed: credit {' '.join(args)}")
    return {"seconds": round(seconds, 1), "peak_rss_mb": round(usage.ru_maxrss / 1024, 1)}


def bench_full_scale(settings: PlatformSettings, work: Path, clients: int) -> dict[str, Any]:
    """Full-scale synthetic generation, conversion to typed Parquet, features, quick training."""
    raw, tables, features = work / "raw", work / "tables", work / "features"
    generation = run_measured(
        ["data", "generate", "--out", str(raw), "--clients", str(clients), "--seed", "1"]
    )
    csv_bytes = sum(p.stat().st_size for p in raw.glob("*.csv"))
    conversion = run_measured(["data", "convert", str(raw), "--out", str(tables)])
    shutil.rmtree(raw)  # several GB of CSV, no longer needed
    feature_building = run_measured(
        ["features", "build", "--tables", str(tables), "--out", str(features)]
    )
    training = run_measured(
        ["train", "--quick"],
        env={
            "FEATURES_DIR": str(features),
            "ARTIFACTS_DIR": str(work / "artifacts"),
            "MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlruns' / 'mlflow.db'}",
        },
    )
    trained = json.loads((work / "artifacts" / "metrics.json").read_text())
    from training.feature_store.bench import bench_feature_store

    # SQLite at this size would take ~14 GB: full scale is Redis' job.
    store = bench_feature_store(features, stores=("redis",), reads=2_000)["redis"]
    rows = {
        p.stem: pq.ParquetFile(p).metadata.num_rows
        for p in sorted(tables.glob("*.parquet"))
        if p.stem != "column_descriptions"
    }
    return {
        "clients": clients,
        "generation": generation,
        "conversion": conversion,
        "features": feature_building,
        "training_quick": {
            **training,
            "folds": trained["n_folds"],
            "n_train": trained["n_train"],
            "n_features": trained["n_features"],
            "auc_mean": round(trained["auc_mean"], 4),
            "baselines": {k: round(v, 4) for k, v in trained["baselines"].items()},
        },
        "feature_store_redis": store,
        "csv_gb": round(csv_bytes / 1e9, 2),
        "rows": rows,
    }


def bench_feature_store_default(
    settings: PlatformSettings, work: Path, clients: int
) -> dict[str, Any]:
    """Online reads of one client with every model feature, SQLite and Redis, on the
    features `make data` / `make features` built (the default size)."""
    from training.feature_store.bench import bench_feature_store

    features = settings.features_dir
    if not (features / "features.parquet").is_file():
        raise SystemExit(f"no features in {features}: run `make features` first")
    return bench_feature_store(features, reads=2_000)


def _running_stack_inputs(settings: PlatformSettings) -> tuple[str, str, list[int]]:
    """The gateway `make up` runs, its development key and known client ids."""
    import urllib.request

    gateway = f"http://127.0.0.1:{os.environ.get('GATEWAY_PORT', '8000')}"
    try:
        with urllib.request.urlopen(f"{gateway}/readyz", timeout=2) as response:
            ready = response.status == 200
    except OSError:
        ready = False
    key_file = Path(".dev/api-key")
    if not ready or not key_file.is_file():
        raise SystemExit(f"no ready stack at {gateway}: run `make up` first")
    ids = pq.read_table(settings.features_dir / "features.parquet", columns=["SK_ID_CURR"])
    return gateway, key_file.read_text().strip(), ids.column(0).to_pylist()[:500]


def _service_cpu_seconds() -> dict[str, tuple[float, float]]:
    """(user, system) CPU seconds so far of the gateway and scoring processes `make up`
    started (their pid files), from /proc; empty where unknown."""
    from credit.stack import RUN_DIR

    ticks = os.sysconf("SC_CLK_TCK")
    seconds = {}
    for service in ("gateway", "scoring"):
        try:
            pid = (RUN_DIR / f"{service}.pid").read_text().strip()
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        seconds[service] = (int(fields[11]) / ticks, int(fields[12]) / ticks)  # utime, stime
    return seconds


def _wrk(gateway: str, connections: int, seconds: int, env: dict[str, str]) -> dict[str, Any]:
    """POST /v1/scores from wrk (a C load generator in its own process) for ``seconds``;
    with the CPU time each service spent per request meanwhile, which shows how fast the
    machine was better than ``python_loop_s`` (in a slow stretch of this VM the loop kept
    its speed while the services' CPU per request rose ~1.7x)."""
    cpu_before = _service_cpu_seconds()
    loaded = subprocess.run(
        [
            "wrk",
            "-t1" if connections == 1 else "-t2",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            "-s",
            "bench/score.lua",
            gateway,
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    summary: dict[str, Any] = json.loads(
        next(line[5:] for line in loaded.stdout.splitlines() if line.startswith("JSON "))
    )
    summary["requests_per_s"] = round(summary["requests"] / summary["seconds"], 1)
    cpu_after = _service_cpu_seconds()
    per_request = 1000 / max(summary["requests"], 1)
    summary["cpu_ms_per_request"] = {
        service: {
            kind: round((after - before) * per_request, 2)
            for kind, before, after in zip(
                ("user", "system"), cpu_before[service], cpu_after[service], strict=True
            )
        }
        for service in sorted(cpu_before.keys() & cpu_after.keys())
    }
    return summary


def bench_rest(settings: PlatformSettings, work: Path, clients: int) -> dict[str, Any]:
    """End-to-end POST /v1/scores through the gateway `make up` runs (decision log
    included), the load generated by wrk in a separate process: one connection for the
    latency at concurrency 1, then 16 for throughput. wrk rather than a Python client: a
    Python HTTP client adds ~1 ms of its own per request to what it measures."""
    gateway, key, ids = _running_stack_inputs(settings)
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is missing: `make bench` installs it (scripts/apt-install.sh wrk)")
    env = {**os.environ, "BENCH_API_KEY": key, "BENCH_CLIENT_IDS": ",".join(map(str, ids))}
    _wrk(gateway, 4, 3, env)  # warm-up: connections, caches, the champion's model info
    return {
        "concurrency_1": _wrk(gateway, 1, 20, env),
        "concurrency_16": _wrk(gateway, 16, 20, env),
    }


def bench_grpc_services(settings: PlatformSettings, work: Path, clients: int) -> dict[str, Any]:
    """Score and Explain over loopback against the services `make up` runs, from a
    separate process (this one), at concurrency 1 and 8."""
    from services.bench import bench_grpc

    _, _, ids = _running_stack_inputs(settings)
    scoring = f"127.0.0.1:{os.environ.get('SCORING_PORT', '50051')}"
    explainer = f"127.0.0.1:{os.environ.get('EXPLAINER_PORT', '50052')}"
    import grpc

    from credit.v1 import scoring_pb2, scoring_pb2_grpc

    with grpc.insecure_channel(scoring) as channel:  # the version being served
        model = scoring_pb2_grpc.ScoringServiceStub(channel).GetModel(
            scoring_pb2.GetModelRequest(), timeout=5
        )
    return bench_grpc(scoring, explainer, ids, model.model_version, calls=2000, concurrency=8)


def bench_decision_archive(settings: PlatformSettings, work: Path, clients: int) -> dict[str, Any]:
    """Decision-log retention: a SQLite log of 50,000 decisions (216 feature values each,
    like the gateway's) moved into Parquet by `credit decisions archive`, then audit
    lookups of archived decisions."""
    import asyncio
    import random

    from services.bench import percentiles, sequential
    from services.gateway.archive import find_archived
    from services.gateway.decisions import Decision, DecisionLog

    decisions, database = 50_000, work / "decisions.db"
    url, archive_dir = f"sqlite:///{database}", work / "archive"
    generator = random.Random(7)
    names = [f"FEATURE_{i:03d}" for i in range(216)]
    decision_log = DecisionLog(url)
    decision_log.open()
    ids: list[str] = []
    for start in range(0, decisions, 1_000):
        batch = [
            Decision.new(
                key_id="bench",
                client_id=100_001 + start + i,
                application_hash=None,
                model_version="1",
                probability=generator.random(),
                decision="granted",
                threshold=0.3,
                simulation=False,
                features={
                    "numeric": {n: generator.gauss(0, 1e5) for n in names},
                    "categorical": {"NAME_CONTRACT_TYPE": "Cash loans"},
                },
            )
            for i in range(1_000)
        ]
        asyncio.run(decision_log.write(batch))
        ids += [d.decision_id for d in batch]
    decision_log.close()
    database_mb = database.stat().st_size / 1e6
    archiving = run_measured(
        [
            "decisions",
            "archive",
            "--older-than-days",
            "0",
            "--database-url",
            url,
            "--archive-dir",
            str(archive_dir),
        ]
    )
    audited = generator.sample(ids, 200)

    def lookup(i: int) -> None:
        if find_archived(archive_dir, audited[i]) is None:
            raise RuntimeError(f"archived decision {audited[i]} not found")

    return {
        "decisions": decisions,
        "archive": {**archiving, "decisions_per_s": round(decisions / archiving["seconds"])},
        "sqlite_mb": round(database_mb, 1),
        "parquet_mb": round(sum(p.stat().st_size for p in archive_dir.iterdir()) / 1e6, 1),
        "lookup": percentiles(sequential(lookup, len(audited), budget_s=120)),
    }


def _scale_out(name: str) -> Benchmark:
    """A benchmark of ``credit.scale_bench`` (issue 21), imported when it runs."""

    def run(settings: PlatformSettings, work: Path, clients: int) -> dict[str, Any]:
        from credit import scale_bench

        result: dict[str, Any] = getattr(scale_bench, name)(settings, work, clients)
        return result

    return run


BENCHMARKS: dict[str, Benchmark] = {
    "rest": bench_rest,
    "grpc": bench_grpc_services,
    "full_scale": bench_full_scale,
    "feature_store": bench_feature_store_default,
    "decision_archive": bench_decision_archive,
    # Spark vs polars features, Redis Cluster materialisation, 1 vs 2 scoring replicas.
    "spark_features": _scale_out("bench_spark_features"),
    "redis_cluster": _scale_out("bench_redis_cluster"),
    "scale_out": _scale_out("bench_scale_out"),
}


def _machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
    }


def render_markdown(report: dict[str, Any]) -> str:
    lines = ["# Benchmarks", "", f"Machine: {report['machine']}", ""]
    for name, result in report["results"].items():
        lines += [f"## {name}", "", f"Measured {result.get('measured_at', '?')}", ""]
        lines += ["| measure | value |", "|---|---|"]
        for key, value in _flatten(result).items():
            if key != "measured_at":
                lines.append(f"| {key} | {value} |")
        lines.append("")
    return "\n".join(lines)


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = f"{value:,}" if isinstance(value, int) else value
    return flat


def run_benchmarks(
    settings: PlatformSettings, *, only: list[str] | None = None, clients: int | None = None
) -> dict[str, Any]:
    unknown = set(only or ()) - set(BENCHMARKS)
    if unknown:
        raise SystemExit(f"unknown benchmark(s) {sorted(unknown)}; known: {sorted(BENCHMARKS)}")
    artifacts = Path(settings.artifacts_dir)
    report: dict[str, Any] = {"results": {}}
    for name, benchmark in BENCHMARKS.items():
        if only and name not in only:
            continue
        work = artifacts / "bench-work" / name
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        log.info("benchmark_started", benchmark=name)
        speed_before = python_speed()
        try:
            result = benchmark(settings, work, clients or KAGGLE_CLIENTS)
        finally:
            shutil.rmtree(work, ignore_errors=True)  # full-scale inputs are several GB
        result["python_loop_s"] = {"before": speed_before, "after": python_speed()}
        report = record_result(artifacts, name, result)
        log.info("benchmark_done", benchmark=name, result=result)
    return report


def record_result(artifacts: Path, name: str, result: dict[str, Any]) -> dict[str, Any]:
    """Merge one benchmark's result into ``bench.json`` (the others' results stay) and
    render ``bench.md``; also used by ``credit images build`` for image sizes and times."""
    artifacts.mkdir(parents=True, exist_ok=True)
    json_path = artifacts / "bench.json"
    report = json.loads(json_path.read_text()) if json_path.is_file() else {"results": {}}
    report["machine"] = _machine()
    result["measured_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    report["results"][name] = result
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    (artifacts / "bench.md").write_text(render_markdown(report))
    return report
