"""The gateway spreads its scoring calls over every pod behind a headless Service, and over
pods added or removed later (issue 21; the chart's GATEWAY_SCORING_ADDRESS is
``dns:///scoring-headless.<namespace>.svc.cluster.local:50051``).

No cluster here, so its two parts are stood in for on loopback:

* the cluster DNS: a small DNS server of the test's own, which the gateway's target names
  as its resolver (``dns://127.0.0.1:<port>/scoring-headless...:<port>``, gRPC's own DNS
  resolver, the one the chart's ``dns:///`` uses). Like a headless Service it answers one A
  record per ready pod, and the test changes them as Kubernetes would on a scale-out;
* the pods: gRPC servers on 127.0.0.1, 127.0.0.2 and 127.0.0.3 (all loopback on Linux), one
  port as pods share the Service's port. Each is built by the services' real bootstrap
  (``build_server``: health, interceptor, connection age) with a stand-in ScoringService
  whose GetModel names the replica, so the gateway's answer tells which one it reached (a
  real scoring replica needs a model and a feature store; what is under test is the
  gateway's channel and the servers' connection age, not the scoring).

The gateway itself is a real ``python -m services.gateway`` process, called over HTTP.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import grpc
import httpx
import pytest

from credit.v1 import scoring_pb2, scoring_pb2_grpc
from services.common.server import build_server, set_serving
from services.gateway.backends import SCORING_SERVICE
from services.gateway.keys import add_key
from tests.redis_servers import free_port
from tests.test_shared_rate_limit import gateway_process

pytestmark = pytest.mark.slow
NAME = "scoring-headless.credit-scoring.svc.cluster.local"
PODS = {"a": "127.0.0.1", "b": "127.0.0.2", "c": "127.0.0.3"}
# The servers' connection age in this test (the services' default is 30 s): short, so that
# the gateway re-resolves within seconds.
AGE_SECONDS = 1.0


class HeadlessDns:
    """Answers A queries for ``NAME`` with ``addresses`` (TTL 0, as the pods change), and
    every other query with no record (NOERROR), over UDP on loopback."""

    def __init__(self) -> None:
        self.addresses: list[str] = []
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._socket.bind(("127.0.0.1", 0))
        self.port: int = self._socket.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                query, peer = self._socket.recvfrom(4096)
            except OSError:  # closed
                return
            self._socket.sendto(self.answer(query), peer)

    def answer(self, query: bytes) -> bytes:
        (query_id,) = struct.unpack("!H", query[:2])
        end = 12  # after the header: the question's name, label by label, then 0
        labels = []
        while query[end]:
            labels.append(query[end + 1 : end + 1 + query[end]].decode())
            end += query[end] + 1
        question_type = struct.unpack("!H", query[end + 1 : end + 3])[0]
        question = query[12 : end + 5]
        a_query = question_type == 1 and ".".join(labels).lower() == NAME
        records = list(self.addresses) if a_query else []
        # Flags: a response, authoritative, recursion desired and available, NOERROR.
        reply = struct.pack("!HHHHHH", query_id, 0x8580, 1, len(records), 0, 0) + question
        for address in records:  # name: a pointer to the question's; type A, class IN, TTL 0
            reply += struct.pack("!HHHIH", 0xC00C, 1, 1, 0, 4) + socket.inet_aton(address)
        return reply

    def close(self) -> None:
        self._socket.close()


class StandInScoring(scoring_pb2_grpc.ScoringServiceServicer):
    def __init__(self, replica: str) -> None:
        self.replica = replica

    def GetModel(
        self, request: scoring_pb2.GetModelRequest, context: grpc.ServicerContext
    ) -> scoring_pb2.ModelInfo:
        return scoring_pb2.ModelInfo(
            model_version=self.replica, model_name="credit-default", threshold=0.5
        )


@contextmanager
def replica(name: str, host: str, port: int) -> Iterator[grpc.Server]:
    server, health = build_server(
        address=f"{host}:{port}",
        service_names=[SCORING_SERVICE],
        register=lambda s: scoring_pb2_grpc.add_ScoringServiceServicer_to_server(
            StandInScoring(name), s
        ),
        max_connection_age_seconds=AGE_SECONDS,
    )
    set_serving(health, [SCORING_SERVICE], True)
    server.start()
    try:
        yield server
    finally:
        server.stop(grace=None)


def reached(client: httpx.Client, url: str, key: str, calls: int) -> list[str]:
    """The replica that answered each of ``calls`` GET /v1/model (the model card's
    version is the stand-in replica's name); every call must succeed."""
    names = []
    for _ in range(calls):
        reply = client.get(f"{url}/v1/model", headers={"X-API-Key": key})
        assert reply.status_code == 200, reply.text
        names.append(reply.json()["model_version"])
    return names


def test_calls_reach_every_pod_of_the_headless_service_as_pods_come_and_go(
    tmp_path: Path,
) -> None:
    keys = tmp_path / "keys.json"
    key = add_key(keys, "balancing", ["score"], rate_per_minute=100_000)
    port = free_port()
    with ExitStack() as stack:
        dns = HeadlessDns()
        stack.callback(dns.close)
        servers = {name: stack.enter_context(replica(name, PODS[name], port)) for name in PODS}
        dns.addresses = [PODS["a"], PODS["b"]]  # c runs, not ready yet: not in the DNS
        env = {
            "GATEWAY_SCORING_ADDRESS": f"dns://127.0.0.1:{dns.port}/{NAME}:{port}",
            # The model card asks the explainer for the importance; none runs (the card
            # comes without it), and the retries of that call need not wait.
            "GATEWAY_RETRIES": "2",
            "GATEWAY_RETRY_BACKOFF_SECONDS": "0.01",
            "GATEWAY_MODEL_CACHE_SECONDS": "0",  # every card is a GetModel call
        }
        url = stack.enter_context(gateway_process(tmp_path, keys, None, env))
        client = stack.enter_context(httpx.Client(timeout=30))

        # Two pods: round robin alternates between them; the third is never called.
        first = reached(client, url, key, 20)
        assert set(first) == {"a", "b"}, first
        assert abs(first.count("a") - first.count("b")) <= 2, first

        # Scale-out: c becomes ready, the DNS lists it. The gateway learns of it when a
        # connection ages out (a call keeps working meanwhile): without the servers'
        # connection age this loop ran out (gRPC re-resolves only when a connection ends).
        dns.addresses = [PODS["a"], PODS["b"], PODS["c"]]
        deadline = time.monotonic() + 120
        while "c" not in reached(client, url, key, 3):
            assert time.monotonic() < deadline, "the added pod was never called"
            time.sleep(0.2)
        spread = reached(client, url, key, 30)
        assert set(spread) == {"a", "b", "c"}, spread

        # Scale-in: a stops (its pod is deleted) and leaves the DNS; every call still
        # succeeds, on b and c only.
        dns.addresses = [PODS["b"], PODS["c"]]
        servers["a"].stop(grace=None).wait()
        after = reached(client, url, key, 20)
        assert set(after) == {"b", "c"}, after
