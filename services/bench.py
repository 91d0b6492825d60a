"""Latency and throughput of the gRPC scoring and explainer services, seen by a caller.

Everything is measured from the calling process over real channels (loopback when the
servers are local): serialisation, HTTP/2, the server's thread pool, the feature-store read
and the model. Two regimes:

* one caller (concurrency 1): p50 and p99 of ``Score`` and ``Explain`` for stored clients,
  and p50 of ``Score`` for a new application (no store read, features computed in-process);
* ``concurrency`` callers at once: throughput (calls/s) and p99 under load. Each caller is a
  thread with its **own channel** (its own HTTP/2 connection), like independent clients or
  gateway replicas; one shared channel would multiplex every call over one connection and
  measure that connection's limits as much as the server.

The run is bounded in calls and in time: each phase stops at ``calls`` calls or after its
share of ``max_seconds``, whichever comes first, and reports how many calls it made.

    python -m services.bench --scoring 127.0.0.1:50051 --explainer 127.0.0.1:50052 \\
        --features artifacts/features/features.parquet
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import numpy as np

from credit.v1 import common_pb2, explainer_pb2, explainer_pb2_grpc, scoring_pb2, scoring_pb2_grpc

PHASES = 5  # score, explain, new application, concurrent score, concurrent explain
WARMUP_CALLS = 20
TIMEOUT_S = 10.0


def sample_application() -> common_pb2.Application:
    """A plausible new application (the typed fields a partner always sends, and a few more)."""
    return common_pb2.Application(
        contract_type="Cash loans",
        amt_income_total=157_500.0,
        amt_credit=450_000.0,
        amt_annuity=22_500.0,
        amt_goods_price=405_000.0,
        days_birth=-12_000,
        days_employed=-2_000,
        name_income_type="Working",
        flag_own_car="N",
        ext_source_2=0.55,
        ext_source_3=0.45,
    )


def _stubs(
    scoring_address: str, explainer_address: str
) -> tuple[
    list[grpc.Channel], scoring_pb2_grpc.ScoringServiceStub, explainer_pb2_grpc.ExplainerServiceStub
]:
    scoring_channel = grpc.insecure_channel(scoring_address)
    explainer_channel = grpc.insecure_channel(explainer_address)
    grpc.channel_ready_future(scoring_channel).result(timeout=TIMEOUT_S)
    grpc.channel_ready_future(explainer_channel).result(timeout=TIMEOUT_S)
    return (
        [scoring_channel, explainer_channel],
        scoring_pb2_grpc.ScoringServiceStub(scoring_channel),
        explainer_pb2_grpc.ExplainerServiceStub(explainer_channel),
    )


def percentiles(latencies: list[float]) -> dict[str, float]:
    values = np.asarray(latencies) * 1000.0
    return {
        "p50_ms": round(float(np.percentile(values, 50)), 3),
        "p99_ms": round(float(np.percentile(values, 99)), 3),
        "calls": len(latencies),
    }


def sequential(call: Callable[[int], Any], calls: int, budget_s: float) -> list[float]:
    latencies: list[float] = []
    stop_at = time.perf_counter() + budget_s
    for i in range(calls):
        started = time.perf_counter()
        call(i)
        latencies.append(time.perf_counter() - started)
        if started > stop_at:
            break
    return latencies


def _concurrent(
    make_call: Callable[[], Callable[[int], Any]], calls: int, concurrency: int, budget_s: float
) -> dict[str, float]:
    """``concurrency`` threads, each with its own channel, share ``calls`` calls."""
    per_thread = max(1, calls // concurrency)
    results: list[list[float]] = [[] for _ in range(concurrency)]
    errors: list[BaseException] = []
    callers = [make_call() for _ in range(concurrency)]  # channels opened before timing
    start = threading.Barrier(concurrency + 1)

    def run(index: int) -> None:
        try:
            start.wait()
            results[index] = sequential(
                lambda i: callers[index](index * per_thread + i), per_thread, budget_s
            )
        except BaseException as error:  # reported below, never swallowed
            errors.append(error)

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join(timeout=budget_s + 30)
    elapsed = time.perf_counter() - began
    if errors:
        raise errors[0]
    latencies = [value for chunk in results for value in chunk]
    return {
        **percentiles(latencies),
        "throughput_per_s": round(len(latencies) / elapsed, 1),
        "concurrency": concurrency,
    }


def bench_grpc(
    scoring_address: str,
    explainer_address: str,
    client_ids: list[int],
    model_version: str,
    *,
    calls: int = 2000,
    concurrency: int = 8,
    max_seconds: float = 60.0,
) -> dict[str, Any]:
    """Score / Explain latency at concurrency 1, throughput and p99 with ``concurrency``
    callers, and new-application Score p50; each phase bounded by ``calls`` and time."""
    if not client_ids:
        raise ValueError("client_ids is empty")
    budget = max_seconds / PHASES
    channels, scoring, explainer = _stubs(scoring_address, explainer_address)
    application_request = scoring_pb2.ScoreRequest(
        application=sample_application(), packed_inputs=True
    )

    def score_call(stub: scoring_pb2_grpc.ScoringServiceStub) -> Callable[[int], Any]:
        # As the gateway calls it: holding the served version's feature names.
        return lambda i: stub.Score(
            scoring_pb2.ScoreRequest(
                client_id=client_ids[i % len(client_ids)],
                packed_inputs=True,
                known_names_version=model_version,
            ),
            timeout=TIMEOUT_S,
        )

    def explain_call(stub: explainer_pb2_grpc.ExplainerServiceStub) -> Callable[[int], Any]:
        return lambda i: stub.Explain(
            explainer_pb2.ExplainRequest(
                client_id=client_ids[i % len(client_ids)], model_version=model_version
            ),
            timeout=TIMEOUT_S,
        )

    opened: list[grpc.Channel] = list(channels)

    def own_channel(address: str, stub_class: Any, wrap: Callable[[Any], Any]) -> Any:
        channel = grpc.insecure_channel(address)
        grpc.channel_ready_future(channel).result(timeout=TIMEOUT_S)
        opened.append(channel)
        return wrap(stub_class(channel))

    try:
        for i in range(WARMUP_CALLS):  # connections, caches, the explainer's model load
            score_call(scoring)(i)
            explain_call(explainer)(i)
            scoring.Score(application_request, timeout=TIMEOUT_S)
        result: dict[str, Any] = {
            "score": percentiles(sequential(score_call(scoring), calls, budget)),
            "explain": percentiles(sequential(explain_call(explainer), calls, budget)),
            "score_application": percentiles(
                sequential(
                    lambda _: scoring.Score(application_request, timeout=TIMEOUT_S),
                    calls,
                    budget,
                )
            ),
            "score_concurrent": _concurrent(
                lambda: own_channel(
                    scoring_address, scoring_pb2_grpc.ScoringServiceStub, score_call
                ),
                calls,
                concurrency,
                budget,
            ),
            "explain_concurrent": _concurrent(
                lambda: own_channel(
                    explainer_address, explainer_pb2_grpc.ExplainerServiceStub, explain_call
                ),
                calls,
                concurrency,
                budget,
            ),
        }
    finally:
        for channel in opened:
            channel.close()
    result["clients"] = len(client_ids)
    result["model_version"] = model_version
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scoring", default="127.0.0.1:50051")
    parser.add_argument("--explainer", default="127.0.0.1:50052")
    parser.add_argument(
        "--features",
        type=Path,
        default=Path("artifacts/features/features.parquet"),
        help="features.parquet whose SK_ID_CURR are stored clients",
    )
    parser.add_argument("--clients", type=int, default=500, help="distinct clients called")
    parser.add_argument("--model-version", default="", help="default: the scoring champion")
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--max-seconds", type=float, default=60.0)
    args = parser.parse_args(argv)
    import pandas as pd

    ids = pd.read_parquet(args.features, columns=["SK_ID_CURR"])["SK_ID_CURR"]
    client_ids = [int(i) for i in ids.sample(min(args.clients, len(ids)), random_state=0)]
    version = args.model_version
    if not version:
        with grpc.insecure_channel(args.scoring) as channel:
            version = (
                scoring_pb2_grpc.ScoringServiceStub(channel)
                .GetModel(scoring_pb2.GetModelRequest(), timeout=TIMEOUT_S)
                .model_version
            )
    print(
        json.dumps(
            bench_grpc(
                args.scoring,
                args.explainer,
                client_ids,
                version,
                calls=args.calls,
                concurrency=args.concurrency,
                max_seconds=args.max_seconds,
            ),
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
