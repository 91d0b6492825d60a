"""Concurrency-1 REST latency, run as its own process so the load is not the server's."""

from __future__ import annotations

import json
import os
import sys
import time

import httpx


def main() -> None:
    url, calls = sys.argv[1], int(sys.argv[2])
    ids = os.environ["BENCH_CLIENT_IDS"].split(",")
    headers = {"X-API-Key": os.environ["BENCH_API_KEY"]}
    timings = []
    with httpx.Client(base_url=url, headers=headers, timeout=10) as client:
        for i in range(calls + 50):
            started = time.perf_counter()
            response = client.post("/v1/scores", json={"client_id": int(ids[i % len(ids)])})
            elapsed = time.perf_counter() - started
            response.raise_for_status()
            if i >= 50:  # warm-up excluded
                timings.append(elapsed)
    timings.sort()
    print(json.dumps({
        "calls": calls,
        "p50_ms": round(timings[len(timings) // 2] * 1e3, 3),
        "p99_ms": round(timings[int(len(timings) * 0.99)] * 1e3, 3),
    }))


if __name__ == "__main__":
    main()
