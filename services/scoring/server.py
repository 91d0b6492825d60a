"""gRPC adapter of the scoring service: protos <-> ScoringHandler, and the process main."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import grpc
import structlog

from credit.logging import configure_logging
from credit.v1 import common_pb2, scoring_pb2, scoring_pb2_grpc
from services.common.application import application_to_raw
from services.common.errors import InvalidArgument
from services.common.features import FeatureSource
from services.common.registry import ChampionFollower, ModelRegistry
from services.common.server import build_server, run_until_signal, set_serving
from services.scoring.handler import Scored, ScoringHandler
from services.scoring.settings import ScoringSettings

log = structlog.get_logger(__name__)
SERVICE = scoring_pb2.DESCRIPTOR.services_by_name["ScoringService"].full_name
NAN = math.nan
DECISIONS = {
    "granted": common_pb2.DECISION_GRANTED,
    "refused": common_pb2.DECISION_REFUSED,
    "review": common_pb2.DECISION_REVIEW,
}


def fill_feature_vector(vector: common_pb2.FeatureVector, features: dict[str, Any]) -> None:
    """Numbers and strings into ``vector``'s maps; missing values (None, NaN) left out.
    Filled in place: a vector built apart is copied again into its message."""
    vector.numeric.update(
        {
            name: float(value)
            for name, value in features.items()
            if value is not None and not isinstance(value, str) and not math.isnan(value)
        }
    )
    vector.categorical.update(
        {name: value for name, value in features.items() if isinstance(value, str)}
    )


def fill_inputs(inputs: common_pb2.FeatureValues, scored: Scored, with_names: bool) -> None:
    """The scored features into ``inputs``: one number per model feature, in the model's
    order (NaN where missing or categorical), strings into the categorical map; the names
    only when the caller does not hold them."""
    numeric: list[float] = []
    categorical: dict[str, str] = {}
    features = scored.features
    for name in scored.feature_names:
        value = features.get(name)
        if value is None:
            numeric.append(NAN)
        elif isinstance(value, str):
            numeric.append(NAN)
            categorical[name] = value
        else:
            numeric.append(float(value))
    inputs.numeric.extend(numeric)
    inputs.categorical.update(categorical)
    if with_names:
        inputs.names.extend(scored.feature_names)


def score_response(
    scored: Scored, packed: bool, known_names_version: str = ""
) -> scoring_pb2.ScoreResponse:
    response = scoring_pb2.ScoreResponse(
        probability=scored.probability,
        decision=DECISIONS[scored.decision],
        threshold=scored.threshold,
        distance_to_threshold=scored.distance_to_threshold,
        model_version=scored.model_version,
        review_band=scored.review_band,
    )
    if scored.shadow is not None:
        response.shadow.model_version = scored.shadow.model_version
        response.shadow.probability = scored.shadow.probability
        response.shadow.decision = DECISIONS[scored.shadow.decision]
        response.shadow.threshold = scored.shadow.threshold
    if packed:
        fill_inputs(response.inputs, scored, with_names=known_names_version != scored.model_version)
    else:  # a caller older than `inputs`
        fill_feature_vector(response.features, scored.features)
    if scored.client_id is not None:
        response.client_id = int(scored.client_id)
    response.treated_as_missing.extend(scored.treated_as_missing)
    return response


class ScoringServicer(scoring_pb2_grpc.ScoringServiceServicer):
    def __init__(self, handler: ScoringHandler) -> None:
        self.handler = handler

    def Score(self, request: scoring_pb2.ScoreRequest, context: grpc.ServicerContext) -> Any:
        subject = request.WhichOneof("subject")
        packed, known = request.packed_inputs, request.known_names_version
        if subject == "client_id":
            return score_response(self.handler.score_client(request.client_id), packed, known)
        if subject == "application":
            raw = application_to_raw(request.application)
            return score_response(self.handler.score_application(raw), packed, known)
        raise InvalidArgument("subject", "give client_id or application")

    def ScoreBatch(
        self, request: scoring_pb2.ScoreBatchRequest, context: grpc.ServicerContext
    ) -> Any:
        version, results = self.handler.score_batch(list(request.client_ids))
        # One model scores the whole batch: its names are sent once, not once per item.
        items = [
            scoring_pb2.ScoreBatchItem(client_id=client_id, error=outcome)
            if isinstance(outcome, str)
            else scoring_pb2.ScoreBatchItem(
                client_id=client_id,
                score=score_response(outcome, request.packed_inputs, known_names_version=version),
            )
            for client_id, outcome in results
        ]
        scored = [outcome for _, outcome in results if not isinstance(outcome, str)]
        names = scored[0].feature_names if scored and request.packed_inputs else ()
        return scoring_pb2.ScoreBatchResponse(
            items=items, model_version=version, feature_names=names
        )

    def GetModel(self, request: scoring_pb2.GetModelRequest, context: grpc.ServicerContext) -> Any:
        model = self.handler.model()
        info = scoring_pb2.ModelInfo(
            model_version=model.model_version,
            model_name=self.handler.models.registry.settings.model_name,
            threshold=model.threshold,
            metrics={k: float(v) for k, v in model.metrics.items() if isinstance(v, int | float)},
            feature_names=model.feature_names,
            cost_false_negative=float(model.metrics.get("cost_fn", 10.0)),
            cost_false_positive=float(model.metrics.get("cost_fp", 1.0)),
        )
        for spec in model.schema["features"]:
            info.features.add(
                name=spec["name"],
                dtype=spec["dtype"],
                source=spec["source"],
                unit=spec.get("unit", ""),
                label_en=spec["label"]["en"],
                label_fr=spec["label"]["fr"],
                categories=spec.get("categories", []),
                actionable=bool(spec.get("actionable", False)),
            )
        if model.trained_at:
            info.trained_at.FromDatetime(datetime.fromisoformat(model.trained_at))
        return info

    def GetClient(
        self, request: scoring_pb2.GetClientRequest, context: grpc.ServicerContext
    ) -> Any:
        version, features = self.handler.client_profile(request.client_id)
        profile = scoring_pb2.ClientProfile(client_id=request.client_id, model_version=version)
        fill_feature_vector(profile.features, features)
        return profile

    def SearchClients(
        self, request: scoring_pb2.SearchClientsRequest, context: grpc.ServicerContext
    ) -> Any:
        found = self.handler.search_clients(request.prefix, request.limit)
        return scoring_pb2.SearchClientsResponse(client_ids=found)


def create_server(
    settings: ScoringSettings, features: FeatureSource
) -> tuple[grpc.Server, ChampionFollower, Any]:
    """The server, its model follower and its health servicer (not started). Health says
    SERVING while a champion is loaded and the online store is complete for its feature
    service; the follower and the store guard both update it when their state changes."""
    registry = ModelRegistry(settings.registry_settings(settings.model_alias))
    challenger = None
    if settings.challenger_alias and settings.challenger_alias != settings.model_alias:
        challenger = ChampionFollower(
            ModelRegistry(settings.registry_settings(settings.challenger_alias)),
            poll_seconds=settings.poll_seconds,
            shadow=True,
        )
    # The champion's follower refreshes the challenger's too (one thread, one poll).
    follower = ChampionFollower(registry, poll_seconds=settings.poll_seconds, challenger=challenger)
    handler = ScoringHandler(
        follower, features, settings.max_batch, settings.review_band, challengers=challenger
    )
    server, health = build_server(
        service_names=[SERVICE],
        register=lambda s: scoring_pb2_grpc.add_ScoringServiceServicer_to_server(
            ScoringServicer(handler), s
        ),
        **settings.server_options(),
    )

    def update_health() -> None:
        model = follower.model
        ready = model is not None and features.ready_for(model.model_version)
        set_serving(health, [SERVICE], ready)

    follower.on_change = update_health
    features.guard.listeners.append(update_health)
    return server, follower, health


def serve(settings: ScoringSettings | None = None) -> None:
    settings = settings or ScoringSettings()
    configure_logging(settings.log_format)
    features = FeatureSource.open(settings.feature_store_check_seconds)
    server, follower, health = create_server(settings, features)
    start_following(follower, features)
    log.info(
        "scoring_started",
        port=settings.port,
        metrics_port=settings.metrics_port,
        review_band=settings.review_band,
        challenger_alias=settings.challenger_alias or None,
    )

    def stop() -> None:
        follower.stop()
        features.stop()

    run_until_signal(
        server,
        health,
        [SERVICE],
        metrics_port=settings.metrics_port,
        host=settings.host,
        on_stop=stop,
    )


def start_following(follower: ChampionFollower, features: FeatureSource) -> None:
    """Load the champion and check the store now, then follow both in the background."""
    try:
        follower.refresh()
    except Exception as error:  # registry unreachable at start: the poller keeps trying
        log.error("registry_unreachable_at_start", error=str(error))
    features.start()  # checks the store (and updates health) before it returns
    if follower.on_change is not None:
        follower.on_change()
    follower.start()
