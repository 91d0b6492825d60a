"""grpc.aio clients of the scoring and explainer services: deadlines, bounded retries on
UNAVAILABLE only, timing per call, and the one translation of failures to ``ApiError``.

Retrying is safe because every backend RPC is a read (scoring has no side effect: the
gateway itself logs decisions, after the call).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from credit.v1 import explainer_pb2, explainer_pb2_grpc, scoring_pb2, scoring_pb2_grpc
from services.gateway.errors import ApiError, from_grpc
from services.gateway.metrics import BACKEND_CALLS
from services.gateway.settings import GatewaySettings

Reply = TypeVar("Reply")
SCORING_SERVICE = scoring_pb2.DESCRIPTOR.services_by_name["ScoringService"].full_name
EXPLAINER_SERVICE = explainer_pb2.DESCRIPTOR.services_by_name["ExplainerService"].full_name


@dataclass
class Backend:
    name: str  # "scoring" | "explainer": what a caller reads in a 503
    service: str  # the gRPC service name checked by /readyz
    channel: grpc.aio.Channel
    deadline: float
    retries: int
    backoff: float

    async def call(self, method: str, rpc: Callable[..., Awaitable[Reply]], request: Any) -> Reply:
        delay = self.backoff
        for attempt in range(self.retries + 1):
            started = time.perf_counter()
            code = grpc.StatusCode.OK
            try:
                return await rpc(request, timeout=self.deadline)
            except grpc.aio.AioRpcError as error:
                code = error.code()
                if code is not grpc.StatusCode.UNAVAILABLE or attempt == self.retries:
                    raise from_grpc(self.name, error) from error
            finally:
                BACKEND_CALLS.labels(self.name, method, code.name).observe(
                    time.perf_counter() - started
                )
            await asyncio.sleep(delay)
            delay *= 2
        raise AssertionError("unreachable")  # the loop returns or raises

    async def serving(self, deadline: float) -> tuple[bool, str]:
        """Whether the backend answers grpc.health.v1 with SERVING for its service."""
        stub = health_pb2_grpc.HealthStub(self.channel)
        try:
            reply = await stub.Check(
                health_pb2.HealthCheckRequest(service=self.service), timeout=deadline
            )
        except grpc.aio.AioRpcError as error:
            return False, error.code().name
        status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
        return reply.status == health_pb2.HealthCheckResponse.SERVING, status


# gRPC's default reconnect backoff grows to two minutes: after a backend restart the gateway
# answered 503 for ~40 s while the backend was already serving again. Backends are on the
# cluster network, so retrying the connection every second at most costs nothing. (Not
# grpc.min_reconnect_backoff_ms: it is also the connect timeout, which must stay long.)
#
# Calls go round robin over every address the target resolves to: a headless Service's
# dns:///scoring-headless.<namespace>.svc.cluster.local:50051 (one address per ready pod) or
# ipv4:10.0.0.1:50051,10.0.0.2:50051. gRPC's default (pick_first) sends every call of the
# gateway's one HTTP/2 connection to one pod, and so does a ClusterIP Service (one virtual
# address, balanced per connection, not per call).
#
# gRPC resolves the name again only when a connection ends: a pod that goes away ends its
# own; the servers end every connection after their max_connection_age_seconds (30 s) so
# that pods added by the HPA are found too. A re-resolution waits at least this long after
# the last one (gRPC's default: 30 s, which would add up to 30 s to each scale-out).
DNS_MIN_SECONDS_BETWEEN_RESOLUTIONS = 5
CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
    ("grpc.dns_min_time_between_resolutions_ms", DNS_MIN_SECONDS_BETWEEN_RESOLUTIONS * 1000),
    ("grpc.service_config", json.dumps({"loadBalancingConfig": [{"round_robin": {}}]})),
]


def _channel(address: str, settings: GatewaySettings) -> grpc.aio.Channel:
    """Plaintext, or mTLS when the settings name a CA, a client certificate and its key
    (the backends then refuse any caller without a certificate from that CA)."""
    if settings.grpc_tls_ca_file is None:
        return grpc.aio.insecure_channel(address, options=CHANNEL_OPTIONS)
    assert settings.grpc_tls_cert_file is not None and settings.grpc_tls_key_file is not None
    credentials = grpc.ssl_channel_credentials(
        root_certificates=settings.grpc_tls_ca_file.read_bytes(),
        private_key=settings.grpc_tls_key_file.read_bytes(),
        certificate_chain=settings.grpc_tls_cert_file.read_bytes(),
    )
    options = list(CHANNEL_OPTIONS)
    if settings.grpc_tls_server_name:
        options.append(("grpc.ssl_target_name_override", settings.grpc_tls_server_name))
    return grpc.aio.secure_channel(address, credentials, options=options)


class Backends:
    def __init__(self, settings: GatewaySettings) -> None:
        self.scoring = Backend(
            "scoring",
            SCORING_SERVICE,
            _channel(settings.scoring_address, settings),
            settings.scoring_deadline_seconds,
            settings.retries,
            settings.retry_backoff_seconds,
        )
        self.explainer = Backend(
            "explainer",
            EXPLAINER_SERVICE,
            _channel(settings.explainer_address, settings),
            settings.explainer_deadline_seconds,
            settings.retries,
            settings.retry_backoff_seconds,
        )
        self._scoring = scoring_pb2_grpc.ScoringServiceStub(self.scoring.channel)
        self._explainer = explainer_pb2_grpc.ExplainerServiceStub(self.explainer.channel)
        self._model_ttl = settings.model_cache_seconds
        self._champion: tuple[float, scoring_pb2.ModelInfo] | None = None
        self._by_version: dict[str, scoring_pb2.ModelInfo] = {}
        self._model_lock = asyncio.Lock()
        # (model version, its feature names): what Score replies of that version leave out.
        self._feature_names: tuple[str, tuple[str, ...]] | None = None

    async def close(self) -> None:
        await self.scoring.channel.close()
        await self.explainer.channel.close()

    # Scoring service.
    async def score(
        self, request: scoring_pb2.ScoreRequest
    ) -> tuple[scoring_pb2.ScoreResponse, tuple[str, ...]]:
        """The reply and the names of its ``inputs.numeric``. Names are asked for only
        until a reply brings them for the version being served: later replies of that
        version leave them out (~200 strings fewer per call)."""
        request.packed_inputs = True
        known = self._feature_names  # taken once: a concurrent call may replace it
        if known is not None:
            request.known_names_version = known[0]
        reply = await self.scoring.call("Score", self._scoring.Score, request)
        if reply.inputs.names:
            names = tuple(reply.inputs.names)
            self._feature_names = (reply.model_version, names)
            return reply, names
        if known is None or known[0] != reply.model_version:
            raise ApiError(
                502, "the scoring service left out the feature names", slug="backend-error"
            )
        return reply, known[1]

    async def score_batch(
        self, request: scoring_pb2.ScoreBatchRequest
    ) -> scoring_pb2.ScoreBatchResponse:
        request.packed_inputs = True
        return await self.scoring.call("ScoreBatch", self._scoring.ScoreBatch, request)

    async def client(self, client_id: int) -> scoring_pb2.ClientProfile:
        request = scoring_pb2.GetClientRequest(client_id=client_id)
        return await self.scoring.call("GetClient", self._scoring.GetClient, request)

    async def search_clients(
        self, request: scoring_pb2.SearchClientsRequest
    ) -> scoring_pb2.SearchClientsResponse:
        return await self.scoring.call("SearchClients", self._scoring.SearchClients, request)

    async def model(self) -> scoring_pb2.ModelInfo:
        """The champion's model info, reused for ``model_cache_seconds`` (the champion can
        move, so it is not cached forever; a version's info never changes and is kept)."""
        async with self._model_lock:
            now = time.monotonic()
            if self._champion is not None and now - self._champion[0] < self._model_ttl:
                return self._champion[1]
            info = await self.scoring.call(
                "GetModel", self._scoring.GetModel, scoring_pb2.GetModelRequest()
            )
            self._champion = (now, info)
            self._by_version[info.model_version] = info
            return info

    async def model_version_info(self, version: str) -> scoring_pb2.ModelInfo:
        """Feature specs for a given version: cached; else the champion's (the scoring
        service only describes its champion)."""
        if version in self._by_version:
            return self._by_version[version]
        return await self.model()

    # Explainer service.
    async def explain(self, request: explainer_pb2.ExplainRequest) -> explainer_pb2.Explanation:
        return await self.explainer.call("Explain", self._explainer.Explain, request)

    async def importance(
        self, request: explainer_pb2.GlobalImportanceRequest
    ) -> explainer_pb2.GlobalImportanceResponse:
        return await self.explainer.call(
            "GlobalImportance", self._explainer.GlobalImportance, request
        )

    async def population(
        self, request: explainer_pb2.PopulationRequest
    ) -> explainer_pb2.PopulationResponse:
        return await self.explainer.call("GetPopulation", self._explainer.GetPopulation, request)

    async def neighbours(
        self, request: explainer_pb2.NeighboursRequest
    ) -> explainer_pb2.NeighboursResponse:
        return await self.explainer.call("GetNeighbours", self._explainer.GetNeighbours, request)

    async def score_distribution(
        self, request: explainer_pb2.ScoreDistributionRequest
    ) -> explainer_pb2.ScoreDistributionResponse:
        return await self.explainer.call(
            "GetScoreDistribution", self._explainer.GetScoreDistribution, request
        )
