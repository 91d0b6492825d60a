"""The one mapping between the gRPC messages (credit.v1) and the REST schemas.

Every proto -> JSON shape the gateway answers with is built here, so a field added to a
proto has one place to reach the API. Functions are pure: no I/O, no authorisation.
A reply the schema cannot represent (an unknown decision, feature values that do not match
their names) is the backend's fault: ``ApiError(502)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from credit.v1 import common_pb2, explainer_pb2, scoring_pb2
from services.gateway import schemas
from services.gateway.decisions import Decision, Outcome, ShadowScore
from services.gateway.errors import ApiError

DecisionName = Literal["granted", "refused", "review"]
DECISION_NAMES: dict[int, DecisionName] = {
    common_pb2.DECISION_GRANTED: "granted",
    common_pb2.DECISION_REFUSED: "refused",
    common_pb2.DECISION_REVIEW: "review",  # within the scoring service's review band
}


def decision_name(value: int) -> DecisionName:
    if value not in DECISION_NAMES:
        raise ApiError(502, "the scoring service returned no decision", slug="backend-error")
    return DECISION_NAMES[value]


def explained_decision(value: int) -> Literal["granted", "refused"]:
    """An explanation's decision: the model's side of the threshold (the review band is the
    scoring service's policy, not the explainer's)."""
    name = decision_name(value)
    if name == "granted":
        return "granted"
    if name == "refused":
        return "refused"
    raise ApiError(502, "the explainer returned a review decision", slug="backend-error")


def shadow(reply: scoring_pb2.ScoreResponse) -> ShadowScore | None:
    """The challenger's shadow score of a reply, for the decision log only."""
    if not reply.HasField("shadow"):
        return None
    found = reply.shadow
    return ShadowScore(
        model_version=found.model_version,
        probability=found.probability,
        decision=decision_name(found.decision),
        threshold=found.threshold,
    )


def logged_features(inputs: common_pb2.FeatureValues, names: Sequence[str]) -> dict[str, Any]:
    """The decision log's form of a score's inputs: the numbers that have a value by name
    (NaN means missing), and the categories."""
    numeric = inputs.numeric
    if len(numeric) != len(names):
        raise ApiError(
            502,
            "the scoring service sent features that do not match their names",
            slug="backend-error",
        )
    present = {name: value for name, value in zip(names, numeric, strict=True) if value == value}
    return {"numeric": present, "categorical": dict(inputs.categorical.items())}


def feature_vector(features: Mapping[str, Any]) -> common_pb2.FeatureVector:
    """The logged inputs (``logged_features``' form) back as the explainer's input."""
    return common_pb2.FeatureVector(
        numeric=features.get("numeric", {}), categorical=features.get("categorical", {})
    )


def score(decision: Decision, reply: scoring_pb2.ScoreResponse) -> schemas.Score:
    return schemas.Score(
        probability=decision.probability,
        decision=decision.decision,
        threshold=decision.threshold,
        distance_to_threshold=reply.distance_to_threshold,
        model_version=decision.model_version,
        decision_id=decision.decision_id,
        client_id=decision.client_id,
        simulation=decision.simulation,
        treated_as_missing=list(reply.treated_as_missing),
        review_band=reply.review_band,
    )


def _reasons(reasons: Sequence[explainer_pb2.Reason]) -> list[schemas.Reason]:
    return [
        schemas.Reason(feature=r.feature, text=r.text, contribution=r.contribution, factor=r.factor)
        for r in reasons
    ]


def explanation(reply: explainer_pb2.Explanation) -> schemas.Explanation:
    cf = reply.counterfactual
    return schemas.Explanation(
        model_version=reply.model_version,
        probability=reply.probability,
        decision=explained_decision(reply.decision),
        threshold=reply.threshold,
        base_value=reply.base_value,
        raw_score=reply.raw_score,
        other_contributions=reply.other_contributions,
        contributions=[
            schemas.Contribution(
                feature=c.feature,
                label=c.label,
                display_value=c.display_value,
                value=c.value if c.HasField("value") else None,
                contribution=c.contribution,
            )
            for c in reply.contributions
        ],
        raising=_reasons(reply.raising),
        lowering=_reasons(reply.lowering),
        counterfactual=schemas.Counterfactual(
            applicable=cf.applicable,
            found=cf.found,
            new_probability=cf.new_probability,
            text=cf.text,
            changes=[
                schemas.Change(
                    feature=c.feature, label=c.label, from_value=c.from_value, to_value=c.to_value
                )
                for c in cf.changes
            ],
        ),
    )


DirectionName = Literal["raises", "lowers", "mixed"]
# DIRECTION_UNSPECIFIED (an explainer older than the field) tells no direction: "mixed".
DIRECTION_NAMES: dict[int, DirectionName] = {
    explainer_pb2.DIRECTION_RAISES: "raises",
    explainer_pb2.DIRECTION_LOWERS: "lowers",
    explainer_pb2.DIRECTION_MIXED: "mixed",
}


def importance(reply: explainer_pb2.GlobalImportanceResponse) -> list[schemas.Importance]:
    return [
        schemas.Importance(
            feature=f.feature,
            label=f.label,
            mean_abs_shap=f.mean_abs_shap,
            gain=f.gain,
            direction=DIRECTION_NAMES.get(f.direction, "mixed"),
        )
        for f in reply.features
    ]


def model_card(
    info: scoring_pb2.ModelInfo, global_importance: list[schemas.Importance] | None
) -> schemas.ModelCard:
    return schemas.ModelCard(
        model_version=info.model_version,
        model_name=info.model_name,
        trained_at=info.trained_at.ToDatetime() if info.HasField("trained_at") else None,
        threshold=info.threshold,
        metrics=dict(info.metrics),
        cost_false_negative=info.cost_false_negative,
        cost_false_positive=info.cost_false_positive,
        n_features=len(info.feature_names),
        global_importance=global_importance,
    )


def population(reply: explainer_pb2.PopulationResponse) -> schemas.Population:
    return schemas.Population(
        model_version=reply.model_version,
        feature=reply.feature,
        label=reply.label,
        dtype=reply.dtype,
        unit=reply.unit,
        n=reply.n,
        default_rate=reply.default_rate,
        missing_rate=reply.missing_rate,
        bin_edges=list(reply.bin_edges),
        categories=list(reply.categories),
        repaid=list(reply.repaid),
        defaulted=list(reply.defaulted),
        hidden=list(reply.hidden) or [0] * len(reply.repaid),  # an older explainer: none
        quantiles=dict(reply.quantiles),
    )


def client_search(prefix: str, reply: scoring_pb2.SearchClientsResponse) -> schemas.ClientSearch:
    return schemas.ClientSearch(prefix=prefix, clients=list(reply.client_ids))


def score_distribution(
    reply: explainer_pb2.ScoreDistributionResponse,
) -> schemas.ScoreDistribution:
    return schemas.ScoreDistribution(
        model_version=reply.model_version,
        threshold=reply.threshold,
        n=reply.n,
        source=reply.source,
        out_of_fold=reply.out_of_fold,
        min_cell=reply.min_cell,
        bins=[
            schemas.ScoreBin(
                lower=b.lower,
                upper=b.upper,
                repaid=b.repaid,
                defaulted=b.defaulted,
                hidden=b.hidden,
            )
            for b in reply.bins
        ],
    )


def neighbours(
    client_id: int, version: str, reply: explainer_pb2.NeighboursResponse
) -> schemas.Neighbours:
    return schemas.Neighbours(
        client_id=client_id,
        model_version=version,
        k=reply.k,
        defaulted_count=reply.defaulted_count,
        default_rate=reply.default_rate,
        features_used=list(reply.features_used),
        neighbours=[
            schemas.Neighbour(distance=n.distance, values=dict(n.values)) for n in reply.neighbours
        ],
    )


def decision_record(decision: Decision) -> schemas.DecisionRecord:
    return schemas.DecisionRecord(**vars(decision))


def decision_summary(decision: Decision) -> schemas.DecisionSummary:
    fields = schemas.DecisionSummary.model_fields
    return schemas.DecisionSummary(**{k: v for k, v in vars(decision).items() if k in fields})


def outcome(recorded: Outcome, status: str) -> schemas.Outcome:
    return schemas.Outcome(
        decision_id=recorded.decision_id,
        defaulted=recorded.defaulted,
        observed_at=recorded.observed_at,
        reported_at=recorded.reported_at,
        status="new" if status == "new" else "unchanged",
    )
