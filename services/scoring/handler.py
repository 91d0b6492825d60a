"""Scoring logic, independent of the transport: features in, calibrated decision out.

Every request takes one snapshot of the served model and uses it throughout, so a champion
swapped in mid-request can never mix two models' features, probabilities or thresholds.

Decisions closer to the threshold than the review band (``SCORING_REVIEW_BAND``) are
``review``: an underwriter decides. When a challenger is registered (alias
``SCORING_CHALLENGER_ALIAS``), it scores the same inputs in shadow: its score travels with
the champion's for the decision log, and a failure of it never fails the request.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import structlog

from services.common.application import unseen_categories
from services.common.errors import InvalidArgument, NotReady, ServiceError
from services.common.features import FeatureSource
from services.common.metrics import SHADOW_SCORES
from services.common.registry import ChampionFollower
from serving_core.bundle import ScoringModel

log = structlog.get_logger(__name__)
# A client-number prefix as an advisor types it: ASCII digits only (str.isdigit also takes
# "²" and Arabic-Indic digits), at most 12 (ids have 6 in the Kaggle data, 19 at most).
SEARCH_PREFIX = re.compile(r"[0-9]{1,12}")
SEARCH_LIMIT_DEFAULT, SEARCH_LIMIT_MAX = 10, 20


@dataclass(frozen=True)
class ShadowScored:
    """The challenger's score of a request: logged, never returned to the partner."""

    model_version: str
    probability: float
    decision: str
    threshold: float


@dataclass(frozen=True)
class Scored:
    probability: float
    decision: str  # "granted" | "refused" | "review"
    threshold: float
    model_version: str
    client_id: int | None
    features: dict[str, Any]
    feature_names: tuple[str, ...]  # the model's inputs, in its order
    # A new application's valid category values unseen in training, scored as missing.
    treated_as_missing: tuple[str, ...] = ()
    review_band: float = 0.0
    shadow: ShadowScored | None = None

    @property
    def distance_to_threshold(self) -> float:
        return self.probability - self.threshold


class ScoringHandler:
    def __init__(
        self,
        models: ChampionFollower,
        features: FeatureSource,
        max_batch: int,
        review_band: float = 0.0,
        challengers: ChampionFollower | None = None,
    ) -> None:
        self.models = models
        self.features = features
        self.max_batch = max_batch
        self.review_band = review_band
        self.challengers = challengers

    def model(self) -> ScoringModel:
        model = self.models.model
        if model is None:
            raise NotReady("no champion model registered yet: run `make train`")
        return model

    def challenger(self, champion: ScoringModel) -> ScoringModel | None:
        """The challenger to score in shadow beside ``champion``, if any (one snapshot per
        request, like the champion's)."""
        model = self.challengers.model if self.challengers is not None else None
        if model is None or model.model_version == champion.model_version:
            return None
        return model

    def _scored(
        self,
        model: ScoringModel,
        features: dict[str, Any],
        client_id: int | None,
        treated_as_missing: tuple[str, ...] = (),
        shadow: ShadowScored | None = None,
    ) -> Scored:
        _, probability = model.predict_one(features)
        return Scored(
            probability=probability,
            decision=str(model.decide(probability, self.review_band)),
            threshold=model.threshold,
            model_version=model.model_version,
            client_id=client_id,
            features=features,
            feature_names=model.feature_names,
            treated_as_missing=treated_as_missing,
            review_band=self.review_band,
            shadow=shadow,
        )

    def _shadow(
        self,
        challenger: ScoringModel | None,
        features: dict[str, Any],
        client_id: int | None = None,
        raw: dict[str, Any] | None = None,
    ) -> ShadowScored | None:
        """The challenger's score of the inputs the champion used (read again for the
        challenger's own feature service only when it needs features the champion's lacks).
        Never raises: a failure is logged and counted, and the champion's answer goes out."""
        if challenger is None:
            return None
        try:
            names = challenger.feature_names
            if all(name in features for name in names):
                inputs = {name: features[name] for name in names}
            elif raw is not None:
                inputs = self.features.application(raw, challenger)
            else:
                assert client_id is not None
                inputs = self.features.client(client_id, challenger)
            if raw is not None:
                inputs, _ = unseen_categories(inputs, challenger.schema)
            _, probability = challenger.predict_one(inputs)
        except Exception as error:  # the shadow must never cost the partner an answer
            SHADOW_SCORES.labels("failed").inc()
            log.warning(
                "shadow_score_failed",
                challenger=challenger.model_version,
                error=f"{type(error).__name__}: {error}",
            )
            return None
        return ShadowScored(
            model_version=challenger.model_version,
            probability=probability,
            decision=str(challenger.decide(probability, self.review_band)),
            threshold=challenger.threshold,
        )

    def _count(self, scored: Scored) -> Scored:
        if scored.shadow is not None:
            agree = scored.shadow.decision == scored.decision
            SHADOW_SCORES.labels("agree" if agree else "disagree").inc()
        return scored

    def score_client(self, client_id: int) -> Scored:
        if client_id <= 0:
            raise InvalidArgument("client_id", "must be a positive SK_ID_CURR")
        model = self.model()
        challenger = self.challenger(model)
        features = self.features.client(client_id, model)
        shadow = self._shadow(challenger, features, client_id=client_id)
        return self._count(self._scored(model, features, client_id, shadow=shadow))

    def score_application(self, raw: dict[str, Any]) -> Scored:
        model = self.model()
        challenger = self.challenger(model)
        client_id = raw.get("SK_ID_CURR")
        computed = self.features.application(raw, model)
        features, unseen = unseen_categories(computed, model.schema)
        shadow = self._shadow(challenger, computed, raw=raw)
        return self._count(self._scored(model, features, client_id, tuple(unseen), shadow))

    def client_profile(self, client_id: int) -> tuple[str, dict[str, Any]]:
        if client_id <= 0:
            raise InvalidArgument("client_id", "must be a positive SK_ID_CURR")
        model = self.model()
        return model.model_version, self.features.client(client_id, model)

    def search_clients(self, prefix: str, limit: int) -> list[int]:
        """Ids of stored clients whose decimal form starts with ``prefix``, ascending, at
        most ``limit`` (0: the default, 10); an index read, no model needed."""
        if not SEARCH_PREFIX.fullmatch(prefix):
            raise InvalidArgument("prefix", "1 to 12 ASCII digits")
        limit = limit or SEARCH_LIMIT_DEFAULT
        if not 1 <= limit <= SEARCH_LIMIT_MAX:
            raise InvalidArgument("limit", f"between 1 and {SEARCH_LIMIT_MAX}")
        return self.features.search(prefix, limit)

    def score_batch(self, client_ids: list[int]) -> tuple[str, list[tuple[int, Scored | str]]]:
        if not client_ids:
            raise InvalidArgument("client_ids", "is empty")
        if len(client_ids) > self.max_batch:
            raise InvalidArgument("client_ids", f"at most {self.max_batch} clients per batch")
        model = self.model()  # one model for the whole batch
        challenger = self.challenger(model)  # and one challenger
        results: list[tuple[int, Scored | str]] = []
        for client_id in client_ids:
            try:
                if client_id <= 0:
                    raise InvalidArgument("client_id", "must be a positive SK_ID_CURR")
                features = self.features.client(client_id, model)
                shadow = self._shadow(challenger, features, client_id=client_id)
                scored = self._scored(model, features, client_id, shadow=shadow)
                results.append((client_id, self._count(scored)))
            except ServiceError as error:
                if error.code.name == "UNAVAILABLE":
                    raise  # the whole batch fails: the caller retries it
                results.append((client_id, error.message))
        return model.model_version, results
