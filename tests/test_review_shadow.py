"""Issue 18: the human-review band and the champion/challenger shadow.

Real parts only: two models trained and registered in a real MLflow registry (aliases
``champion`` and ``challenger``), a real Feast store, a real scoring gRPC server with a review
band; the gateway and its decision log on SQLite and PostgreSQL; ``credit challenger report``
run as the command line runs it.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import grpc
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from prometheus_client import REGISTRY

from credit.v1 import common_pb2, scoring_pb2, scoring_pb2_grpc
from services.common.features import FeatureSource
from services.scoring.server import create_server, start_following
from services.scoring.settings import ScoringSettings
from serving_core.bundle import GRANTED, REFUSED, REVIEW, Calibrator, ScoringModel
from serving_core.feature_store.reader import OnlineFeatureReader, register_model_features
from serving_core.feature_store.settings import FeatureStoreSettings, open_store
from tests.stack import MODEL_NAME, Stack, free_port, train_model
from training.feature_store.materialize import materialize

pytestmark = pytest.mark.slow

T = TypeVar("T")
NAMES = {
    common_pb2.DECISION_GRANTED: GRANTED,
    common_pb2.DECISION_REFUSED: REFUSED,
    common_pb2.DECISION_REVIEW: REVIEW,
}


def wait_for(probe: Callable[[], T | None], timeout: float = 30.0) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout} s")
        time.sleep(0.05)


def sample(name: str, labels: dict[str, str]) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


# -- the serving core's rule -----------------------------------------------------------------
def test_decide_refers_what_is_within_the_band_to_review() -> None:
    # Only the threshold takes part in a decision.
    model = ScoringModel(booster=None, calibrator=Calibrator("identity"), threshold=0.30,
                         schema={"features": []})  # type: ignore[arg-type]  # fmt: skip
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


def register(root: Path, stack: Stack, uri: str, settings: FeatureStoreSettings) -> str:
    """Train and register one more version and its feature service, as `credit train` does."""
    artifacts = root / f"artifacts-{len(list(root.glob('artifacts-*')))}"
    metrics = train_model(root, stack.features_dir, uri, n_folds=2)
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
    challenger_version = register(root, stack, uri, settings)
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
        ScoringSettings(port=port, tracking_uri=uri, model_name=MODEL_NAME, poll_seconds=0.3,
                        cache_dir=root / "model-cache", review_band=band),
        features,
    )  # fmt: skip
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
        reply = scoring.Score(scoring_pb2.ScoreRequest(client_id=client_id, packed_inputs=True),
                              timeout=10)  # fmt: skip
        p = champion_p[client_id]
        assert reply.probability == pytest.approx(p, abs=1e-9)
        assert reply.review_band == served.band
        expected = served.champion.decide(p, served.band)
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
    counted = sample("credit_challenger_scores_total", {"outcome": "agree"}) - agree
    counted += sample("credit_challenger_scores_total", {"outcome": "disagree"}) - disagree
    assert counted == 120


def test_batch_and_applications_are_scored_in_shadow_too(served: Served) -> None:
    scoring = stub(served)
    ids = served.client_ids[120:150]
    batch = scoring.ScoreBatch(scoring_pb2.ScoreBatchRequest(client_ids=ids, packed_inputs=True),
                               timeout=10)  # fmt: skip
    challenger_p = offline(served, served.challenger)
    for item in batch.items:
        assert item.score.shadow.model_version == served.challenger.model_version
        assert item.score.shadow.probability == pytest.approx(
            challenger_p[item.client_id], abs=1e-9
        )
    application = common_pb2.Application(
        contract_type="Cash loans", amt_income_total=157_500.0, amt_credit=450_000.0,
        amt_annuity=22_500.0, amt_goods_price=405_000.0, days_birth=-12_000,
        days_employed=-2_000, name_income_type="Working", ext_source_2=0.55, ext_source_3=0.45,
        organization_type="Trade: type 5",  # a Kaggle value unseen in training: missing
    )  # fmt: skip
    reply = scoring.Score(scoring_pb2.ScoreRequest(application=application, packed_inputs=True),
                          timeout=10)  # fmt: skip
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
@pytest.mark.parametrize(("lang", "word"), [("en", "REFER TO AN UNDERWRITER"),
                                            ("fr", "À ÉTUDIER PAR UN ANALYSTE")])  # fmt: skip
def test_dashboard_shows_a_review_decision_in_words(lang: str, word: str) -> None:
    from services.ui import views

    shown = views.decision_html(lang, 0.101, 0.099, "review")
    assert word in shown and "?" in shown and "✓" not in shown and "✗" not in shown
    assert views.t(lang, "outcome_review")
