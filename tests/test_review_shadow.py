"""Issue 18: the human-review band and the champion/challenger shadow.

Real parts only: two models trained and registered in a real MLflow registry (aliases
``champion`` and ``challenger``), a real Feast store, a real scoring gRPC server with a review
band; the gateway and its decision log on SQLite and PostgreSQL; ``credit challenger report``
run as the command line runs it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from prometheus_client import REGISTRY

from credit.v1 import common_pb2, scoring_pb2, scoring_pb2_grpc
from services.bench import sample_application
from services.common.features import FeatureSource
from services.scoring.server import create_server, start_following
from services.scoring.settings import ScoringSettings
from serving_core.bundle import GRANTED, REFUSED, REVIEW, Calibrator, ScoringModel
from serving_core.feature_store.reader import OnlineFeatureReader, register_model_features
from serving_core.feature_store.settings import FeatureStoreSettings, open_store
from tests.conftest import wait_for
from tests.stack import MODEL_NAME, Stack, free_port, train_model
from training.feature_store.materialize import materialize

pytestmark = pytest.mark.slow

NAMES = {
    common_pb2.DECISION_GRANTED: GRANTED,
    common_pb2.DECISION_REFUSED: REFUSED,
    common_pb2.DECISION_REVIEW: REVIEW,
}


def sample(name: str, labels: dict[str, str]) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


# -- the serving core's rule -----------------------------------------------------------------
def test_decide_refers_what_is_within_the_band_to_review() -> None:
    # Only the threshold takes part in a decision.
    model = ScoringModel(
        booster=None,  # type: ignore[arg-type]
        calibrator=Calibrator("identity"),
        threshold=0.30,
        schema={"features": []},
    )
    assert model.decide(0.30) == REFUSED and model.decide(0.2999) == GRANTED  # band off
    assert model.decide(0.30, 0.02) == REVIEW
    assert model.decide(0.2801, 0.02) == REVIEW and model.decide(0.3199, 0.02) == REVIEW
    assert model.decide(0.279, 0.02) == GRANTED  # outside the band: decided as before
    assert model.decide(0.321, 0.02) == REFUSED
    many = np.array([0.10, 0.2801, 0.30, 0.3199, 0.50])
    assert list(model.decide(many, 0.02)) == [GRANTED, REVIEW, REVIEW, REVIEW, REFUSED]
    assert list(model.decide(many)) == [GRANTED, GRANTED, REFUSED, REFUSED, REFUSED]
    with pytest.raises(ValueError):
        model.decide(0.3, -0.01)


# -- a champion and a challenger, served with a review band ---------------------------------
@dataclasses.dataclass
class Served:
    stack: Stack
    address: str
    champion: ScoringModel
    challenger: ScoringModel
    band: float
    client_ids: list[int]
    client: MlflowClient


def register(
    root: Path, stack: Stack, uri: str, settings: FeatureStoreSettings, **training: Any
) -> str:
    """Train and register one more version and its feature service, as `credit train` does."""
    artifacts = root / f"artifacts-{len(list(root.glob('artifacts-*')))}"
    metrics = train_model(root, stack.features_dir, uri, n_folds=2, **training)
    model = ScoringModel.load(artifacts / "model")
    register_model_features(open_store(settings), model.model_version, model.feature_names)
    return str(metrics["model_version"])


@pytest.fixture(scope="module")
def served(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("review-shadow")
    uri = f"sqlite:///{root / 'mlruns' / 'mlflow.db'}"
    (root / "mlruns").mkdir()
    settings = FeatureStoreSettings(data_dir=root / "feature_store", project="test_shadow")
    materialize(settings, stack.features_dir, progress=False)
    champion_version = register(root, stack, uri, settings)
    # Another seed and cost weights: a challenger that really differs (the same settings
    # would train the same model again).
    challenger_version = register(root, stack, uri, settings, seed=7, cost_fn=8)
    client = MlflowClient(uri, registry_uri=uri)
    client.set_registered_model_alias(MODEL_NAME, "champion", champion_version)
    client.set_registered_model_alias(MODEL_NAME, "challenger", challenger_version)
    champion = ScoringModel.load(root / "artifacts-0" / "model")
    challenger = ScoringModel.load(root / "artifacts-1" / "model")
    client_ids = stack.train_ids[:300]
    rows = stack.features.set_index("SK_ID_CURR").loc[client_ids].reset_index()
    distance = np.abs(champion.predict_proba(rows) - champion.threshold)
    band = float(np.quantile(distance, 0.3))  # about a third of these clients in review
    port = free_port()
    features = FeatureSource(OnlineFeatureReader(open_store(settings)), check_seconds=0.5)
    server, follower, _ = create_server(
        ScoringSettings(
            port=port,
            tracking_uri=uri,
            model_name=MODEL_NAME,
            poll_seconds=0.3,
            cache_dir=root / "model-cache",
            review_band=band,
        ),
        features,
    )
    server.start()
    start_following(follower, features)
    yield Served(stack, f"127.0.0.1:{port}", champion, challenger, band, client_ids, client)
    follower.stop()
    features.stop()
    server.stop(grace=None)


def stub(served: Served) -> scoring_pb2_grpc.ScoringServiceStub:
    return scoring_pb2_grpc.ScoringServiceStub(grpc.insecure_channel(served.address))


def offline(served: Served, model: ScoringModel) -> pd.Series:
    rows = served.stack.features.set_index("SK_ID_CURR").loc[served.client_ids]
    return pd.Series(model.predict_proba(rows.reset_index()), index=served.client_ids)


def test_review_band_and_shadow_scores_over_grpc(served: Served) -> None:
    scoring = stub(served)
    champion_p, challenger_p = offline(served, served.champion), offline(served, served.challenger)
    agree = sample("credit_challenger_scores_total", {"outcome": "agree"})
    disagree = sample("credit_challenger_scores_total", {"outcome": "disagree"})
    seen: dict[str, int] = {}
    for client_id in served.client_ids[:120]:
        reply = scoring.Score(
            scoring_pb2.ScoreRequest(client_id=client_id, packed_inputs=True), timeout=10
        )
        p = champion_p[client_id]
        assert reply.probability == pytest.approx(p, abs=1e-9)
        assert reply.review_band == served.band
        expected = str(served.champion.decide(p, served.band))
        assert NAMES[reply.decision] == expected
        if abs(p - served.champion.threshold) < served.band:
            assert reply.decision == common_pb2.DECISION_REVIEW
        seen[expected] = seen.get(expected, 0) + 1
        # The challenger's own probability, threshold and decision, of the same inputs.
        assert reply.HasField("shadow")
        assert reply.shadow.model_version == served.challenger.model_version
        assert reply.shadow.model_version != reply.model_version
        assert reply.shadow.probability == pytest.approx(challenger_p[client_id], abs=1e-9)
        assert reply.shadow.threshold == served.challenger.threshold
        assert NAMES[reply.shadow.decision] == served.challenger.decide(
            challenger_p[client_id], served.band
        )
    assert seen.get(REVIEW, 0) >= 10 and seen.get(GRANTED, 0) >= 10, seen
    assert (champion_p != challenger_p).mean() > 0.9  # two different models
    counted = sample("credit_challenger_scores_total", {"outcome": "agree"}) - agree
    counted += sample("credit_challenger_scores_total", {"outcome": "disagree"}) - disagree
    assert counted == 120


def test_batch_and_applications_are_scored_in_shadow_too(served: Served) -> None:
    scoring = stub(served)
    ids = served.client_ids[120:150]
    batch = scoring.ScoreBatch(
        scoring_pb2.ScoreBatchRequest(client_ids=ids, packed_inputs=True), timeout=10
    )
    challenger_p = offline(served, served.challenger)
    for item in batch.items:
        assert item.score.shadow.model_version == served.challenger.model_version
        assert item.score.shadow.probability == pytest.approx(
            challenger_p[item.client_id], abs=1e-9
        )
    application = sample_application()
    application.organization_type = "Trade: type 5"  # a Kaggle value unseen in training: missing
    reply = scoring.Score(
        scoring_pb2.ScoreRequest(application=application, packed_inputs=True), timeout=10
    )
    assert reply.shadow.model_version == served.challenger.model_version
    assert 0.0 < reply.shadow.probability < 1.0
    assert NAMES[reply.shadow.decision] == served.challenger.decide(
        reply.shadow.probability, served.band
    )


def test_removing_the_challenger_alias_stops_the_shadow(served: Served) -> None:
    scoring = stub(served)
    client_id = served.client_ids[0]

    def shadow() -> str:
        reply = scoring.Score(scoring_pb2.ScoreRequest(client_id=client_id), timeout=10)
        return reply.shadow.model_version if reply.HasField("shadow") else ""

    assert shadow() == served.challenger.model_version
    served.client.delete_registered_model_alias(MODEL_NAME, "challenger")
    wait_for(lambda: shadow() == "")
    served.client.set_registered_model_alias(
        MODEL_NAME, "challenger", served.challenger.model_version
    )
    wait_for(lambda: shadow() == served.challenger.model_version)
    # The champion holding both aliases is no challenger of itself.
    served.client.set_registered_model_alias(
        MODEL_NAME, "challenger", served.champion.model_version
    )
    wait_for(lambda: shadow() == "")
    served.client.set_registered_model_alias(
        MODEL_NAME, "challenger", served.challenger.model_version
    )
    wait_for(lambda: shadow() == served.challenger.model_version)


# -- the advisor dashboard -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("lang", "word"), [("en", "REFER TO AN UNDERWRITER"), ("fr", "À ÉTUDIER PAR UN ANALYSTE")]
)
def test_dashboard_shows_a_review_decision_in_words(lang: str, word: str) -> None:
    from services.ui import views

    shown = views.decision_html(lang, 0.101, 0.099, "review")
    assert word in shown and "?" in shown and "✓" not in shown and "✗" not in shown
    assert views.t(lang, "outcome_review")


# -- the gateway: review in the API, the shadow in the decision log only, the report ---------
def test_gateway_logs_review_and_shadow_and_the_report_compares_them(
    served: Served, database_url: str, tmp_path: Path
) -> None:
    import asyncio
    import json

    from typer.testing import CliRunner

    from credit.cli import app as cli
    from services.gateway.decisions import DecisionLog
    from services.gateway.schemas import Score
    from tests.test_gateway_decisions import metric
    from tests.test_gateway_support import APPLICATION, running, settings_for, write_keys

    plain = write_keys(tmp_path / "keys.json")
    headers = {"X-API-Key": plain["all"]}
    settings = settings_for(
        tmp_path / "keys.json", database_url, served.address, served.stack.explainer_address
    )
    champion_p, challenger_p = offline(served, served.champion), offline(served, served.challenger)
    ids = served.client_ids[150:210]
    with running(settings) as client:
        before = {
            d: metric(client, f'credit_decisions_total{{decision="{d}"}}')
            for d in (GRANTED, REFUSED, REVIEW)
        }
        singles = [
            client.post("/v1/scores", json={"client_id": i}, headers=headers) for i in ids[:40]
        ]
        batch = client.post("/v1/scores/batch", json={"client_ids": ids[40:]}, headers=headers)
        by_app = client.post("/v1/scores", json={"application": APPLICATION}, headers=headers)
        what_if = client.post(
            "/v1/scores", headers=headers, json={"client_id": ids[0], "simulation": True}
        )
        assert all(r.status_code == 200 for r in [*singles, batch, by_app, what_if])
        scores = [r.json() for r in singles] + [i["score"] for i in batch.json()["items"]]
        for body in [*scores, by_app.json()]:
            # The challenger is never shown: the score's own fields only, none of its values.
            assert set(body) == set(Score.model_fields) and body["review_band"] == served.band
            assert body["model_version"] == served.champion.model_version
        for s in scores:
            assert float(challenger_p[s["client_id"]]) not in s.values()
        real = [*scores, by_app.json()]
        counted = {d: sum(s["decision"] == d for s in real) for d in (GRANTED, REFUSED, REVIEW)}
        assert counted[REVIEW] >= 5 and counted[GRANTED] >= 5, counted
        for name, n in counted.items():
            now = metric(client, f'credit_decisions_total{{decision="{name}"}}')
            assert now - before[name] == n, name
        record = client.get(f"/v1/decisions/{scores[0]['decision_id']}", headers=headers).json()
        assert "shadow" not in record and record["decision"] == scores[0]["decision"]
        # Outcomes of some granted and some review decisions (an underwriter granted them).
        labelled = [s for s in scores if s["decision"] != REFUSED][:12]
        for n, s in enumerate(labelled):
            put = client.put(
                f"/v1/decisions/{s['decision_id']}/outcome",
                headers=headers,
                json={"defaulted": n % 3 == 0, "observed_at": "2026-11-30"},
            )
            assert put.status_code == 201

    log = DecisionLog(database_url)
    try:
        for s in scores:
            shadow = asyncio.run(log.shadow(s["decision_id"]))
            assert shadow is not None
            assert shadow.model_version == served.challenger.model_version
            p = challenger_p[s["client_id"]]
            assert shadow.probability == pytest.approx(p, abs=1e-9)
            assert shadow.decision == served.challenger.decide(p, served.band)
            assert shadow.threshold == served.challenger.threshold
            assert s["probability"] == pytest.approx(champion_p[s["client_id"]], abs=1e-9)
        assert asyncio.run(log.shadow(what_if.json()["decision_id"])) is not None
        app_shadow = asyncio.run(log.shadow(by_app.json()["decision_id"]))
        assert app_shadow is not None
    finally:
        log.close()

    result = CliRunner().invoke(
        cli,
        [
            "challenger",
            "report",
            "--database-url",
            database_url,
            "--out-dir",
            str(tmp_path / "report"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert f"challenger v{served.challenger.model_version}" in result.output
    report = json.loads((tmp_path / "report" / "challenger.json").read_text())
    (pair,) = report["pairs"]
    assert (pair["champion"], pair["challenger"]) == (
        served.champion.model_version,
        served.challenger.model_version,
    )
    assert report["simulations_excluded"] == 1
    # Expected from the models themselves: known clients' shadow decisions offline, the
    # application's as logged.
    mine = [
        (
            s["decision"],
            served.challenger.decide(challenger_p[s["client_id"]], served.band),
            challenger_p[s["client_id"]] - s["probability"],
        )
        for s in scores
    ]
    mine.append(
        (
            by_app.json()["decision"],
            app_shadow.decision,
            app_shadow.probability - by_app.json()["probability"],
        )
    )
    assert pair["decisions"] == len(mine)
    assert pair["agreement_rate"] == pytest.approx(sum(a == b for a, b, _ in mine) / len(mine))
    flips: dict[str, int] = {}
    for a, b, _ in mine:
        if a != b:
            flips[f"{a}->{b}"] = flips.get(f"{a}->{b}", 0) + 1
    assert pair["flips"] == flips and pair["flipped"] == sum(flips.values())
    diffs = np.array([d for _, _, d in mine])
    assert pair["probability_difference"]["mean"] == pytest.approx(diffs.mean(), abs=1e-12)
    assert pair["probability_difference"]["max_abs"] == pytest.approx(np.abs(diffs).max())
    review_share = sum(a == REVIEW for a, _, _ in mine) / len(mine)
    assert pair["review_rate"]["champion"] == pytest.approx(review_share)
    outcomes = pair["outcomes"]
    assert outcomes["known"] == len(labelled)
    assert outcomes["defaults"] == sum(n % 3 == 0 for n in range(len(labelled)))
    cost = {"champion": 0.0, "challenger": 0.0}
    for n, s in enumerate(labelled):
        defaulted = n % 3 == 0
        for side, p, threshold in (
            ("champion", s["probability"], served.champion.threshold),
            ("challenger", challenger_p[s["client_id"]], served.challenger.threshold),
        ):
            refused = p >= threshold
            cost[side] += 10.0 * (not refused and defaulted) + 1.0 * (refused and not defaulted)
    assert outcomes["cost_champion"] == cost["champion"]
    assert outcomes["cost_challenger"] == cost["challenger"]
