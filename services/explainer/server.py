"""gRPC adapter of the explainer service: protos <-> ExplainerHandler, and the process main."""

from __future__ import annotations

from typing import Any

import grpc
import structlog

from credit.logging import configure_logging
from credit.v1 import common_pb2, explainer_pb2, explainer_pb2_grpc
from services.common.application import application_to_raw
from services.common.errors import InvalidArgument
from services.common.features import FeatureSource
from services.common.registry import ModelRegistry, VersionCache
from services.common.server import build_server, run_until_signal, set_serving
from services.explainer.handler import Explained, ExplainerHandler
from services.explainer.population import MIN_CELL
from services.explainer.reference import Direction
from services.explainer.settings import ExplainerSettings
from serving_core.feature_store.completeness import VIEWS

log = structlog.get_logger(__name__)
SERVICE = explainer_pb2.DESCRIPTOR.services_by_name["ExplainerService"].full_name
DECISIONS = {"granted": common_pb2.DECISION_GRANTED, "refused": common_pb2.DECISION_REFUSED}
DIRECTIONS: dict[Direction, int] = {
    "raises": explainer_pb2.DIRECTION_RAISES,
    "lowers": explainer_pb2.DIRECTION_LOWERS,
    "mixed": explainer_pb2.DIRECTION_MIXED,
}


def explanation(result: Explained) -> explainer_pb2.Explanation:
    counterfactual = result.counterfactual
    message = explainer_pb2.Explanation(
        model_version=result.model_version,
        base_value=result.base_value,
        raw_score=result.raw_score,
        probability=result.probability,
        threshold=result.threshold,
        decision=DECISIONS[result.decision],
        other_contributions=result.other_contributions,
        raising=[
            explainer_pb2.Reason(feature=f, text=t, contribution=c, factor=g)
            for f, t, c, g in result.raising
        ],
        lowering=[
            explainer_pb2.Reason(feature=f, text=t, contribution=c, factor=g)
            for f, t, c, g in result.lowering
        ],
        counterfactual=explainer_pb2.Counterfactual(
            applicable=counterfactual.applicable,
            found=counterfactual.found,
            new_probability=counterfactual.new_probability,
            text=counterfactual.text,
            changes=[
                explainer_pb2.Change(
                    feature=c.feature, label=c.label, from_value=c.from_value, to_value=c.to_value
                )
                for c in counterfactual.changes
            ],
        ),
    )
    for c in result.contributions:
        item = message.contributions.add(
            feature=c.feature,
            label=c.label,
            display_value=c.display_value,
            contribution=c.contribution,
        )
        if c.value is not None:
            item.value = c.value
    return message


class ExplainerServicer(explainer_pb2_grpc.ExplainerServiceServicer):
    def __init__(self, handler: ExplainerHandler) -> None:
        self.handler = handler

    def Explain(self, request: explainer_pb2.ExplainRequest, context: grpc.ServicerContext) -> Any:
        subject = request.WhichOneof("subject")
        if subject == "client_id":
            result = self.handler.explain_client(
                request.client_id, request.model_version, request.lang, request.top_k
            )
        elif subject == "application":
            raw = application_to_raw(request.application)
            result = self.handler.explain_application(
                raw, request.model_version, request.lang, request.top_k
            )
        elif subject == "inputs":
            result = self.handler.explain_inputs(
                dict(request.inputs.numeric),
                dict(request.inputs.categorical),
                request.model_version,
                request.lang,
                request.top_k,
            )
        else:
            raise InvalidArgument("subject", "give client_id, application or inputs")
        return explanation(result)

    def GetPopulation(
        self, request: explainer_pb2.PopulationRequest, context: grpc.ServicerContext
    ) -> Any:
        found = self.handler.distribution(request.model_version, request.feature, request.lang)
        return explainer_pb2.PopulationResponse(**vars(found), min_cell=MIN_CELL)

    def GetNeighbours(
        self, request: explainer_pb2.NeighboursRequest, context: grpc.ServicerContext
    ) -> Any:
        subject = request.WhichOneof("subject")
        values_of = tuple(request.features)
        if subject == "client_id":
            population, group = self.handler.neighbours(
                request.model_version,
                request.k,
                client_id=request.client_id,
                values_of=values_of,
            )
        elif subject == "application":
            population, group = self.handler.neighbours(
                request.model_version,
                request.k,
                raw=application_to_raw(request.application),
                values_of=values_of,
            )
        else:
            raise InvalidArgument("subject", "give client_id or application")
        # Anonymised: the deprecated client_id / defaulted / probability stay unset.
        return explainer_pb2.NeighboursResponse(
            model_version=request.model_version,
            neighbours=[
                explainer_pb2.Neighbour(distance=n.distance, values=n.values)
                for n in group.neighbours
            ],
            features_used=population.neighbour_features,
            default_rate=group.default_rate,
            k=group.k,
            defaulted_count=group.defaulted,
        )

    def GlobalImportance(
        self, request: explainer_pb2.GlobalImportanceRequest, context: grpc.ServicerContext
    ) -> Any:
        version, rows = self.handler.importance(request.model_version, request.lang, request.top_k)
        return explainer_pb2.GlobalImportanceResponse(
            model_version=version,
            features=[
                explainer_pb2.FeatureImportance(
                    **{**vars(row), "direction": DIRECTIONS[row.direction]}
                )
                for row in rows
            ],
        )

    def GetScoreDistribution(
        self, request: explainer_pb2.ScoreDistributionRequest, context: grpc.ServicerContext
    ) -> Any:
        found = self.handler.score_distribution(request.model_version)
        return explainer_pb2.ScoreDistributionResponse(
            model_version=found.model_version,
            threshold=found.threshold,
            n=found.n,
            source=found.source,
            out_of_fold=found.out_of_fold,
            min_cell=found.min_cell,
            bins=[explainer_pb2.ScoreBin(**vars(b)) for b in found.bins],
        )


def create_server(
    settings: ExplainerSettings, features: FeatureSource
) -> tuple[grpc.Server, Any, ModelRegistry]:
    registry = ModelRegistry(settings.registry_settings())
    handler = ExplainerHandler(VersionCache(registry, settings.cached_versions), features)
    server, health = build_server(
        service_names=[SERVICE],
        register=lambda s: explainer_pb2_grpc.add_ExplainerServiceServicer_to_server(
            ExplainerServicer(handler), s
        ),
        **settings.server_options(),
    )
    # It serves any registered version on demand: ready while the store holds a complete
    # run (each request still needs its version's marker, checked by FeatureSource).
    features.guard.listeners.append(
        lambda: set_serving(health, [SERVICE], features.guard.complete(VIEWS))
    )
    return server, health, registry


def serve(settings: ExplainerSettings | None = None) -> None:
    settings = settings or ExplainerSettings()
    configure_logging(settings.log_format)
    features = FeatureSource.open(settings.feature_store_check_seconds)
    server, health, _ = create_server(settings, features)
    features.start()  # checks the store, and so sets health, before it returns
    log.info("explainer_started", port=settings.port, metrics_port=settings.metrics_port)
    run_until_signal(
        server,
        health,
        [SERVICE],
        metrics_port=settings.metrics_port,
        host=settings.host,
        on_stop=features.stop,
    )
