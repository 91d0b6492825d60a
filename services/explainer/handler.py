"""Explanations, independent of the transport: exact TreeSHAP for a named model version.

LightGBM's ``pred_contrib`` is exact TreeSHAP (shap's TreeExplainer calls it for LightGBM
models): contributions on the log-odds scale that, with the base value, sum to the model's
raw score. Reasons are worded from the feature schema; the counterfactual hint searches
the applicant's actionable levers (credit amount, term) for the smallest change that
crosses the threshold, re-deriving the application features with the training code.
"""

from __future__ import annotations

import csv
import math
import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from services.common.application import RANGES, unseen_categories
from services.common.errors import InvalidArgument
from services.common.features import FeatureSource
from services.common.registry import VersionCache
from services.explainer import reasons, reference
from services.explainer.population import HIDDEN, Neighbourhood, Population
from services.explainer.reference import Direction, ScoreDistribution
from serving_core import wording
from serving_core.application import DERIVED, application_features, raw_columns
from serving_core.bundle import ScoringModel
from serving_core.ranges import kaggle_categories

CREDIT_FACTORS = (1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4)  # borrow less (same term)
TERM_FACTORS = (1.0, 1.25, 1.5, 2.0)  # repay over longer (same amount)
MAX_TERM_MONTHS = 360
ACTIONABLE_RAW = ("AMT_CREDIT", "AMT_ANNUITY", "AMT_GOODS_PRICE")


@dataclass(frozen=True)
class Contribution:
    feature: str
    label: str
    display_value: str
    value: float | None
    contribution: float


@dataclass(frozen=True)
class Change:
    feature: str
    label: str
    from_value: float
    to_value: float


@dataclass
class Counterfactual:
    applicable: bool
    found: bool = False
    changes: list[Change] = field(default_factory=list)
    new_probability: float = 0.0
    text: str = ""


@dataclass
class Explained:
    model_version: str
    base_value: float
    raw_score: float
    probability: float
    threshold: float
    decision: str
    contributions: list[Contribution]
    # Principal reasons (services.explainer.reasons), at most four a side: (leading feature
    # of the factor, sentence, the factor's net contribution, the factor).
    raising: list[tuple[str, str, float, str]]
    lowering: list[tuple[str, str, float, str]]
    counterfactual: Counterfactual
    other_contributions: float


@dataclass(frozen=True)
class Distribution:
    """A feature's distribution in the training population, by outcome (cells of at least
    ``population.MIN_CELL`` clients): histogram bins, or category counts."""

    model_version: str
    feature: str
    label: str
    dtype: str
    unit: str
    n: int
    default_rate: float
    missing_rate: float
    repaid: list[int]
    defaulted: list[int]
    hidden: list[int]  # per cell, clients whose outcome is not shown (too few to split)
    categories: list[str] = field(default_factory=list)
    bin_edges: list[float] = field(default_factory=list)
    quantiles: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Importance:
    feature: str
    label: str
    mean_abs_shap: float
    gain: float
    direction: Direction = "mixed"  # what higher values do to the risk (reference sample)


class ExplainerHandler:
    def __init__(self, models: VersionCache, features: FeatureSource) -> None:
        self.models = models
        self.features = features
        self._populations: dict[str, Population] = {}
        # Per version, computed once from its reference sample (a predict, a pred_contrib):
        # versions are immutable, so is what they give.
        self._distributions: dict[str, ScoreDistribution] = {}
        self._directions: dict[str, dict[str, Direction]] = {}
        self._reference_lock = threading.Lock()  # one computation per version, not one per call

    def population(self, version: str) -> Population:
        model = self.model(version)
        if version not in self._populations:
            reports = self.models.registry.reports(model.model_version)
            self._populations[version] = Population(reports, model)
        return self._populations[version]

    def neighbours(
        self,
        version: str,
        k: int,
        client_id: int | None = None,
        raw: dict[str, Any] | None = None,
        values_of: tuple[str, ...] = (),
    ) -> tuple[Population, Neighbourhood]:
        model = self.model(version)
        if client_id is not None:
            features = self.features.client(client_id, model)
        else:
            features = self.features.application(raw or {}, model)
        population = self.population(version)
        return population, population.neighbours(
            features, k, exclude=client_id, values_of=values_of
        )

    def distribution(self, version: str, feature: str, lang: str) -> Distribution:
        lang = _check_lang(lang)
        if not feature:
            raise InvalidArgument("feature", "is required")
        population = self.population(version)
        model = self.model(version)
        stats = population.distribution(feature)  # NotFound for a feature it does not know
        spec = {f["name"]: f for f in model.schema["features"]}[feature]
        common = dict(
            model_version=model.model_version,
            feature=feature,
            label=wording.label(spec, lang),
            dtype=spec["dtype"],
            unit=spec.get("unit", ""),
            n=population.n,
            default_rate=population.default_rate,
            missing_rate=float(stats.get("missing_rate", 0.0)),
        )
        if spec["dtype"] == "category":
            counts = stats["counts"]
            categories = sorted(set().union(*(counts.get(k, {}) for k in ("0", "1", HIDDEN))))
            return Distribution(
                **common,
                categories=categories,
                repaid=[int(counts.get("0", {}).get(c, 0)) for c in categories],
                defaulted=[int(counts.get("1", {}).get(c, 0)) for c in categories],
                hidden=[int(counts.get(HIDDEN, {}).get(c, 0)) for c in categories],
            )
        histogram = stats.get("histogram", {})
        return Distribution(
            **common,
            bin_edges=list(stats.get("bin_edges", [])),
            repaid=[int(v) for v in histogram.get("0", [])],
            defaulted=[int(v) for v in histogram.get("1", [])],
            hidden=[int(v) for v in histogram.get(HIDDEN, [0] * len(histogram.get("0", [])))],
            quantiles={k: float(v) for k, v in stats.get("quantiles", {}).items() if v is not None},
        )

    def importance(self, version: str, lang: str, top_k: int) -> tuple[str, list[Importance]]:
        """The version's global importance (training's mean |SHAP| and gain), top first,
        with each feature's direction over the reference sample."""
        lang = _check_lang(lang)
        model = self.model(version)
        specs = {f["name"]: f for f in model.schema["features"]}
        rows = load_importance(self.models.registry.reports(model.model_version) / "importance.csv")
        directions = self.directions(model)
        return model.model_version, [
            Importance(
                feature=row["feature"],
                label=wording.label(specs[row["feature"]], lang),
                mean_abs_shap=row["mean_abs_shap"],
                gain=row["gain"],
                direction=directions.get(row["feature"], "mixed"),
            )
            for row in rows[: top_k or 20]
        ]

    def directions(self, model: ScoringModel) -> dict[str, Direction]:
        """Per feature, what higher values do to the risk (``reference.directions``)."""
        version = model.model_version
        with self._reference_lock:
            if version not in self._directions:
                sample = reference.load_reference(self.models.registry.reports(version))
                self._directions[version] = reference.directions(model, sample)
            return self._directions[version]

    def score_distribution(self, version: str) -> ScoreDistribution:
        """The reference sample's probabilities of default, binned by outcome, with the
        threshold (``reference.score_distribution``)."""
        model = self.model(version)
        with self._reference_lock:
            if version not in self._distributions:
                sample = reference.load_reference(self.models.registry.reports(version))
                self._distributions[version] = reference.score_distribution(model, sample)
            return self._distributions[version]

    def model(self, version: str) -> ScoringModel:
        if not version:
            raise InvalidArgument("model_version", "is required (the version that scored)")
        return self.models.get(version)

    def explain_client(self, client_id: int, version: str, lang: str, top_k: int) -> Explained:
        if client_id <= 0:
            raise InvalidArgument("client_id", "must be a positive SK_ID_CURR")
        model = self.model(version)
        return self.explain(model, self.features.client(client_id, model), lang, top_k)

    def explain_application(
        self, raw: dict[str, Any], version: str, lang: str, top_k: int
    ) -> Explained:
        model = self.model(version)
        # Valid values the model never saw are missing to it: shown so, as scoring logs them.
        features, _ = unseen_categories(self.features.application(raw, model), model.schema)
        return self.explain(model, features, lang, top_k)

    def explain_inputs(
        self,
        numeric: dict[str, float],
        categorical: dict[str, str],
        version: str,
        lang: str,
        top_k: int,
    ) -> Explained:
        """A logged decision's own inputs (missing values absent), explained as they were."""
        model = self.model(version)
        known = set(model.feature_names)
        unknown = sorted((numeric.keys() | categorical.keys()) - known)
        if unknown:
            names = ", ".join(name[:40] for name in unknown[:5])  # never a whole value
            raise InvalidArgument("inputs", f"not features of model version {version}: {names}")
        if numeric.keys() & categorical.keys():
            raise InvalidArgument("inputs", "a feature is given both as a number and a category")
        specs = {f["name"]: f for f in model.schema["features"]}
        for name, value in numeric.items():
            if specs[name]["dtype"] == "category":
                raise InvalidArgument(f"inputs.numeric[{name}]", "a categorical feature")
            if not math.isfinite(value):
                raise InvalidArgument(f"inputs.numeric[{name}]", "must be a finite number")
        for name, category in categorical.items():
            if specs[name]["dtype"] != "category":
                raise InvalidArgument(f"inputs.categorical[{name}]", "a numeric feature")
            # A value of Kaggle's data dictionary (or one the model knows, for derived ones).
            allowed = {*kaggle_categories().get(name, ()), *specs[name].get("categories", ())}
            if category not in allowed:
                raise InvalidArgument(
                    f"inputs.categorical[{name}]", f"unknown category {category[:20]!r}"
                )
        return self.explain(model, {**numeric, **categorical}, lang, top_k)

    def explain(
        self, model: ScoringModel, features: dict[str, Any], lang: str, top_k: int
    ) -> Explained:
        lang = _check_lang(lang)
        top_k = top_k or 10
        if top_k < 0:
            raise InvalidArgument("top_k", "must be positive")
        row = model.encoder.encode(features)
        contributions = model.booster.predict(row, pred_contrib=True, num_threads=1)[0]
        shap_values, base_value = contributions[:-1], float(contributions[-1])
        raw_score = base_value + float(shap_values.sum())
        probability = float(model.calibrator.predict(np.array([_sigmoid(raw_score)]))[0])
        specs = {f["name"]: f for f in model.schema["features"]}
        order = np.argsort(-np.abs(shap_values), kind="stable")
        listed = [
            Contribution(
                feature=name,
                label=wording.label(specs[name], lang),
                display_value=wording.format_value(specs[name], features.get(name), lang),
                value=_numeric(features.get(name)),
                contribution=float(shap_values[i]),
            )
            for i in order[:top_k]
            for name in [model.feature_names[i]]
        ]
        # Reasons come from every contribution (not only the top_k listed), grouped into the
        # factors a lender may cite (services.explainer.reasons).
        by_feature = dict(zip(model.feature_names, map(float, shap_values), strict=True))
        raising = reasons.principal_reasons(by_feature, features, specs, lang, raising=True)
        lowering = reasons.principal_reasons(by_feature, features, specs, lang, raising=False)
        decision = str(model.decide(probability))
        return Explained(
            model_version=model.model_version,
            base_value=base_value,
            raw_score=raw_score,
            probability=probability,
            threshold=model.threshold,
            decision=decision,
            contributions=listed,
            raising=[(r.feature, r.text, r.contribution, r.factor) for r in raising],
            lowering=[(r.feature, r.text, r.contribution, r.factor) for r in lowering],
            counterfactual=self.counterfactual(model, features, probability, decision, lang),
            other_contributions=float(shap_values[order[top_k:]].sum()),
        )

    def counterfactual(
        self,
        model: ScoringModel,
        features: dict[str, Any],
        probability: float,
        decision: str,
        lang: str,
    ) -> Counterfactual:
        if decision != "refused":
            return Counterfactual(applicable=False)
        credit, annuity = features.get("AMT_CREDIT"), features.get("AMT_ANNUITY")
        if not credit or not annuity:
            return Counterfactual(applicable=True, text=NO_LEVER[lang])
        term = credit / annuity
        plans = [
            (c, t)
            for c in CREDIT_FACTORS
            for t in TERM_FACTORS
            # a longer term is offered only up to MAX_TERM_MONTHS; a smaller loan always
            if (c, t) != (1.0, 1.0) and (t == 1.0 or term * t <= MAX_TERM_MONTHS)
        ]
        # Realistic changes only: amounts stay within the range an application may have
        # (serving_core.ranges), as a partner's own what-if would be checked.
        low_credit, low_annuity = RANGES["AMT_CREDIT"][0], RANGES["AMT_ANNUITY"][0]
        plans = [
            (c, t) for c, t in plans if credit * c >= low_credit and annuity * c / t >= low_annuity
        ]
        if not plans:  # already at the smallest amounts an application may have
            return Counterfactual(applicable=True, text=NOT_FOUND[lang])
        # Smallest effort first: a 10% smaller loan ~ a 25% longer term.
        plans.sort(key=lambda plan: (1 - plan[0]) + (plan[1] - 1) * 0.4)
        candidates: list[dict[str, Any]] = []
        base_raw: dict[str, Any] = {name: features.get(name) for name in raw_columns()}
        for c, t in plans:
            raw = dict(base_raw)
            raw["AMT_CREDIT"] = credit * c
            raw["AMT_ANNUITY"] = annuity * c / t
            if features.get("AMT_GOODS_PRICE"):
                raw["AMT_GOODS_PRICE"] = features["AMT_GOODS_PRICE"] * c
            candidates.append(raw)
        derived = application_features(pl.DataFrame(candidates, infer_schema_length=None))
        recomputed = [*ACTIONABLE_RAW, *(info.name for info, _ in DERIVED)]
        rows = np.vstack(
            [
                model.encoder.encode({**features, **{k: new[k] for k in recomputed}})
                for new in derived.select(recomputed).to_dicts()
            ]
        )
        raw_probability = np.asarray(model.booster.predict(rows, num_threads=1), dtype=np.float64)
        probabilities = model.calibrator.predict(raw_probability)
        for (c, t), raw, p in zip(plans, candidates, probabilities, strict=True):
            if p < model.threshold:
                specs = {f["name"]: f for f in model.schema["features"]}
                changes = [
                    Change(
                        name,
                        wording.label(specs[name], lang),
                        float(features[name]),
                        float(raw[name]),
                    )
                    for name in ("AMT_CREDIT", "AMT_ANNUITY")
                    if raw[name] != features[name]
                ]
                return Counterfactual(
                    applicable=True,
                    found=True,
                    changes=changes,
                    new_probability=float(p),
                    text=_plan_text(c, t, credit, term, float(p), model.threshold, lang),
                )
        return Counterfactual(applicable=True, text=NOT_FOUND[lang])


NO_LEVER = {
    "en": "The credit amount or annuity is unknown: no change can be suggested.",
    "fr": "Montant ou annuité inconnus : aucune modification ne peut être proposée.",
}
NOT_FOUND = {
    "en": "No smaller amount (down to 40%) or longer term (up to twice, at most 30 years) "
    "brings the risk under the threshold.",
    "fr": "Aucun montant plus faible (jusqu'à 40 %) ni durée plus longue (jusqu'au double, "
    "30 ans au plus) ne ramène le risque sous le seuil.",
}


def _plan_text(
    c: float, t: float, credit: float, term: float, p: float, threshold: float, lang: str
) -> str:
    amount = wording.format_value({"unit": "money"}, credit * c, lang)
    months = wording.format_value({"unit": "count"}, round(term * t), lang)
    chance = wording.format_value({"unit": "share"}, p, lang)
    limit = wording.format_value({"unit": "share"}, threshold, lang)
    if lang == "fr":
        return (
            f"Avec un crédit de {amount} sur {months} mois, la probabilité de défaut "
            f"serait de {chance}, sous le seuil de {limit}."
        )
    return (
        f"With a credit of {amount} over {months} months, the probability of default "
        f"would be {chance}, under the {limit} threshold."
    )


def _sigmoid(x: float) -> float:
    return float(1.0 / (1.0 + np.exp(-x)))


def _numeric(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _check_lang(lang: str) -> str:
    lang = lang or "en"
    if lang not in wording.WORDS:
        raise InvalidArgument("lang", f"must be one of {sorted(wording.WORDS)}")
    return lang


def load_importance(path: Any) -> list[dict[str, Any]]:
    with open(path, newline="") as handle:
        return [
            {
                "feature": row["feature"],
                "mean_abs_shap": float(row["mean_abs_shap"]),
                "gain": float(row["gain"]),
            }
            for row in csv.DictReader(handle)
        ]
