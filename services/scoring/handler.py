"""Scoring logic, independent of the transport: features in, calibrated decision out.

Every request takes one snapshot of the served model and uses it throughout, so a champion
swapped in mid-request can never mix two models' features, probabilities or thresholds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from services.common.application import unseen_categories
from services.common.errors import InvalidArgument, NotReady, ServiceError
from services.common.features import FeatureSource
from services.common.registry import ChampionFollower
from serving_core.bundle import ScoringModel


@dataclass(frozen=True)
class Scored:
    probability: float
    decision: str  # "granted" | "refused"
    threshold: float
    model_version: str
    client_id: int | None
    features: dict[str, Any]
    feature_names: tuple[str, ...]  # the model's inputs, in its order
    # A new application's valid category values unseen in training, scored as missing.
    treated_as_missing: tuple[str, ...] = ()

    @property
    def distance_to_threshold(self) -> float:
        return self.probability - self.threshold


class ScoringHandler:
    def __init__(self, models: ChampionFollower, features: FeatureSource, max_batch: int) -> None:
        self.models = models
        self.features = features
        self.max_batch = max_batch

    def model(self) -> ScoringModel:
        model = self.models.model
        if model is None:
            raise NotReady("no champion model registered yet: run `make train`")
        return model

    @staticmethod
    def _scored(
        model: ScoringModel,
        features: dict[str, Any],
        client_id: int | None,
        treated_as_missing: tuple[str, ...] = (),
    ) -> Scored:
        _, probability = model.predict_one(features)
        return Scored(
            probability=probability,
            decision=str(model.decide(probability)),
            threshold=model.threshold,
            model_version=model.model_version,
            client_id=client_id,
            features=features,
            feature_names=model.feature_names,
            treated_as_missing=treated_as_missing,
        )

    def score_client(self, client_id: int) -> Scored:
        if client_id <= 0:
            raise InvalidArgument("client_id", "must be a positive SK_ID_CURR")
        model = self.model()
        return self._scored(model, self.features.client(client_id, model), client_id)

    def score_application(self, raw: dict[str, Any]) -> Scored:
        model = self.model()
        client_id = raw.get("SK_ID_CURR")
        features, unseen = unseen_categories(self.features.application(raw, model), model.schema)
        return self._scored(model, features, client_id, tuple(unseen))

    def client_profile(self, client_id: int) -> tuple[str, dict[str, Any]]:
        if client_id <= 0:
            raise InvalidArgument("client_id", "must be a positive SK_ID_CURR")
        model = self.model()
        return model.model_version, self.features.client(client_id, model)

    def score_batch(self, client_ids: list[int]) -> tuple[str, list[tuple[int, Scored | str]]]:
        if not client_ids:
            raise InvalidArgument("client_ids", "is empty")
        if len(client_ids) > self.max_batch:
            raise InvalidArgument("client_ids", f"at most {self.max_batch} clients per batch")
        model = self.model()  # one model for the whole batch
        results: list[tuple[int, Scored | str]] = []
        for client_id in client_ids:
            try:
                if client_id <= 0:
                    raise InvalidArgument("client_id", "must be a positive SK_ID_CURR")
                features = self.features.client(client_id, model)
                results.append((client_id, self._scored(model, features, client_id)))
            except ServiceError as error:
                if error.code.name == "UNAVAILABLE":
                    raise  # the whole batch fails: the caller retries it
                results.append((client_id, error.message))
        return model.model_version, results
