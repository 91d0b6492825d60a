"""The gRPC scoring and explainer services, end to end over loopback.

Real servers, real model, real MLflow registry and real Feast stores (SQLite, and a Redis
server started here): nothing is mocked. The session ``stack`` is shared and never mutated;
tests that change state (a Redis outage, alias moves, a broken model version, a registry
without any model) run against their own servers built by their own fixtures.
"""

from __future__ import annotations

import math
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pandas as pd
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)
from mlflow import MlflowClient
from mlflow.artifacts import download_artifacts
from prometheus_client import REGISTRY

from credit.local_redis import server_command
from credit.v1 import (
    common_pb2,
    explainer_pb2,
    explainer_pb2_grpc,
    scoring_pb2,
    scoring_pb2_grpc,
)
from services.common.application import RANGES
from services.common.errors import REASON_KEY
from services.explainer.reasons import MAX_REASONS, factor_of
from services.explainer.server import SERVICE as EXPLAINER_SERVICE
from services.gateway.converters import logged_features
from services.scoring.server import SERVICE as SCORING_SERVICE
from services.scoring.settings import ScoringSettings
from serving_core.application import raw_columns
from serving_core.bundle import ScoringModel
from serving_core.feature_store.reader import register_model_features
from serving_core.feature_store.settings import FeatureStoreSettings, open_store
from serving_core.fields import TYPED_FIELDS
from serving_core.schema import CATEGORY_MISSING, kaggle_schema
from tests.conftest import wait_for
from tests.stack import MODEL_NAME, Stack, free_port, start_servers, train_model
from training.feature_store.materialize import materialize

pytestmark = pytest.mark.slow

UNKNOWN_CLIENT = 987_654_321
GRANTED, REFUSED = common_pb2.DECISION_GRANTED, common_pb2.DECISION_REFUSED


# -- helpers -------------------------------------------------------------------------------


def rpc_error(call: Callable[[], Any]) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value


def sample(name: str, labels: dict[str, str]) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def logit(p: float) -> float:
    return math.log(p / (1.0 - p))


def scoring_stub(address: str) -> scoring_pb2_grpc.ScoringServiceStub:
    return scoring_pb2_grpc.ScoringServiceStub(grpc.insecure_channel(address))


def explainer_stub(address: str) -> explainer_pb2_grpc.ExplainerServiceStub:
    return explainer_pb2_grpc.ExplainerServiceStub(grpc.insecure_channel(address))


def health_status(address: str, service: str) -> int:
    stub = health_pb2_grpc.HealthStub(grpc.insecure_channel(address))
    return stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status


def score(stub: scoring_pb2_grpc.ScoringServiceStub, client_id: int) -> scoring_pb2.ScoreResponse:
    return stub.Score(scoring_pb2.ScoreRequest(client_id=client_id, packed_inputs=True), timeout=10)


def inputs(reply: scoring_pb2.ScoreResponse) -> dict[str, Any]:
    """A reply's inputs as the gateway logs them: numbers by name, then categories."""
    return logged_features(reply.inputs, reply.inputs.names)


def valid_application(**fields: Any) -> common_pb2.Application:
    values: dict[str, Any] = {
        "contract_type": "Cash loans",
        "amt_income_total": 157_500.0,
        "amt_credit": 450_000.0,
        "amt_annuity": 22_500.0,
        "amt_goods_price": 405_000.0,
        "days_birth": -12_000,
        "days_employed": -2_000,
        "name_income_type": "Working",
        "flag_own_car": "N",
        "ext_source_2": 0.55,
        "ext_source_3": 0.45,
    }
    values.update(fields)
    return common_pb2.Application(**values)


TYPED_BY_COLUMN = {column: name for name, column in TYPED_FIELDS.items()}
INT_FIELDS = {"days_birth", "days_employed", "cnt_children"}


def application_from_row(row: pd.Series, **overrides: float) -> common_pb2.Application:
    """A client's stored application fields, as a partner would post them (client_id set)."""
    table = kaggle_schema()["application_test"]
    application = common_pb2.Application(client_id=int(row["SK_ID_CURR"]))
    for column in raw_columns():
        value = overrides.get(column, row.get(column))
        if value is None or pd.isna(value) or value == CATEGORY_MISSING:
            continue
        field = TYPED_BY_COLUMN.get(column)
        category = table.column(column).kind == "category"
        if field is None and category:
            application.category_fields[column] = str(value)
        elif field is None:
            application.numeric_fields[column] = float(value)
        elif category:
            setattr(application, field, str(value))
        else:
            setattr(application, field, int(value) if field in INT_FIELDS else float(value))
    return application


class RedisServer:
    """A throw-away redis-server on its own port (no persistence), killable and restartable."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            server_command(self.port), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_for(self._answers, timeout=10)

    def _answers(self) -> bool:
        import redis

        try:
            return bool(redis.Redis(port=self.port, socket_timeout=0.5).ping())
        except redis.exceptions.ConnectionError:
            return False

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None


# -- fixtures ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def scoring(stack: Stack) -> scoring_pb2_grpc.ScoringServiceStub:
    return scoring_stub(stack.scoring_address)


@pytest.fixture(scope="module")
def explainer(stack: Stack) -> explainer_pb2_grpc.ExplainerServiceStub:
    return explainer_stub(stack.explainer_address)


@pytest.fixture(scope="module")
def version(stack: Stack) -> str:
    return stack.model.model_version


@pytest.fixture(scope="module")
def offline(stack: Stack) -> pd.DataFrame:
    """Every stored client with the offline model's calibrated and raw probabilities."""
    frame = stack.features.copy()
    frame["p"] = stack.model.predict_proba(frame)
    frame["p_raw"] = stack.model.raw_score(frame)
    return frame.set_index("SK_ID_CURR", drop=False)


@pytest.fixture(scope="module")
def mixed_ids(stack: Stack, offline: pd.DataFrame) -> list[int]:
    """25 refused and 25 granted clients (train and test splits alike)."""
    refused = offline.index[offline["p"] >= stack.model.threshold][:25].tolist()
    granted = offline.index[offline["p"] < stack.model.threshold][:25].tolist()
    assert len(refused) == len(granted) == 25
    return [int(i) for pair in zip(refused, granted, strict=True) for i in pair]


@pytest.fixture(scope="module")
def redis_stack(
    stack: Stack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Stack, RedisServer]]:
    """Both servers again, reading a Redis online store on a redis-server of their own
    (same registry and model as the shared stack, which this never touches)."""
    root = tmp_path_factory.mktemp("redis-stack")
    server = RedisServer(free_port())
    server.start()
    settings = FeatureStoreSettings(
        online_store="redis",
        data_dir=root / "feature_store",
        project="test_redis_outage",
        redis_connection=f"127.0.0.1:{server.port}",
    )
    materialize(settings, stack.features_dir, progress=False)
    register_model_features(
        open_store(settings), stack.model.model_version, stack.model.feature_names
    )
    served = Stack(
        root=root,
        features_dir=stack.features_dir,
        tracking_uri=stack.tracking_uri,
        store_settings=settings,
        metrics=stack.metrics,
        model=stack.model,
        features=stack.features,
    )
    start_servers(served)
    yield served, server
    served.stop()
    server.kill()


@pytest.fixture(scope="module")
def empty_registry(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Servers whose MLflow registry holds no model yet (features reused, read-only; the
    store materialised, so that only the missing champion keeps them from serving)."""
    root = tmp_path_factory.mktemp("empty-registry")
    settings = FeatureStoreSettings(data_dir=root / "feature_store", project="test_empty")
    materialize(settings, stack.features_dir, progress=False)
    served = Stack(
        root=root,
        features_dir=stack.features_dir,
        tracking_uri=f"sqlite:///{root / 'mlruns' / 'mlflow.db'}",
        store_settings=settings,
        metrics={},
        model=stack.model,
        features=stack.features,
    )
    (root / "mlruns").mkdir()
    start_servers(served)
    yield served
    served.stop()


def served_version(address: str) -> str | None:
    try:
        return str(
            scoring_stub(address).GetModel(scoring_pb2.GetModelRequest(), timeout=5).model_version
        )
    except grpc.RpcError:
        return None


def promote_new_version(served: Stack) -> str:
    """Train and register one more version (and its feature service, as `credit train`
    does) and give it the champion alias."""
    artifacts = served.root / f"artifacts-{len(list(served.root.glob('artifacts-*')))}"
    metrics = train_model(served.root, served.features_dir, served.tracking_uri, n_folds=2)
    version = str(metrics["model_version"])
    model = ScoringModel.load(artifacts / "model")
    register_model_features(open_store(served.store_settings), version, model.feature_names)
    MlflowClient(served.tracking_uri).set_registered_model_alias(MODEL_NAME, "champion", version)
    return version


# -- scoring -------------------------------------------------------------------------------
def test_scores_equal_offline_calibrated_predictions(
    stack: Stack, scoring: Any, offline: pd.DataFrame, mixed_ids: list[int], version: str
) -> None:
    threshold = stack.model.threshold
    for client_id in mixed_ids:
        response = score(scoring, client_id)
        expected = float(offline.at[client_id, "p"])
        assert response.probability == pytest.approx(expected, abs=1e-9)
        assert response.client_id == client_id
        assert response.model_version == version
        assert response.threshold == threshold
        assert response.decision == (REFUSED if response.probability >= threshold else GRANTED)
        assert response.distance_to_threshold == pytest.approx(
            response.probability - threshold, abs=1e-12
        )
        assert tuple(response.inputs.names) == stack.model.feature_names
        assert len(response.inputs.numeric) == len(stack.model.feature_names)
        assert set(response.inputs.categorical) <= set(stack.model.feature_names)
    decisions = {score(scoring, i).decision for i in mixed_ids}
    assert decisions == {GRANTED, REFUSED}


def test_score_batch_equals_score_and_reports_unknown_ids(
    stack: Stack, scoring: Any, mixed_ids: list[int], version: str
) -> None:
    ids = [*mixed_ids[:20], UNKNOWN_CLIENT, *mixed_ids[20:30]]
    batch = scoring.ScoreBatch(
        scoring_pb2.ScoreBatchRequest(client_ids=ids, packed_inputs=True), timeout=10
    )
    assert batch.model_version == version
    assert tuple(batch.feature_names) == stack.model.feature_names  # once for all items
    assert [item.client_id for item in batch.items] == ids
    for item in batch.items:
        if item.client_id == UNKNOWN_CLIENT:
            assert item.WhichOneof("outcome") == "error"
            assert str(UNKNOWN_CLIENT) in item.error
        else:
            assert item.WhichOneof("outcome") == "score"
            single = score(scoring, item.client_id)
            single.inputs.ClearField("names")
            assert item.score == single


def test_score_leaves_out_the_feature_names_the_caller_holds(
    stack: Stack, scoring: Any, mixed_ids: list[int], version: str
) -> None:
    client_id = mixed_ids[0]
    full = score(scoring, client_id)
    assert tuple(full.inputs.names) == stack.model.feature_names
    request = scoring_pb2.ScoreRequest(
        client_id=client_id, packed_inputs=True, known_names_version=version
    )
    short = scoring.Score(request, timeout=10)
    assert not short.inputs.names
    assert list(short.inputs.numeric) == pytest.approx(list(full.inputs.numeric), nan_ok=True)
    assert short.inputs.categorical == full.inputs.categorical
    # Names held for another version (the champion moved on): the reply brings them again.
    request.known_names_version = f"{version}-old"
    assert tuple(scoring.Score(request, timeout=10).inputs.names) == stack.model.feature_names


def test_callers_older_than_packed_inputs_still_get_the_feature_maps(
    scoring: Any, mixed_ids: list[int]
) -> None:
    """A gateway built before `inputs` (during a rolling upgrade) must not log decisions
    without features: it gets them in the old maps."""
    old_style = scoring.Score(scoring_pb2.ScoreRequest(client_id=mixed_ids[0]), timeout=10)
    assert not old_style.inputs.numeric and not old_style.inputs.names
    expected = inputs(score(scoring, mixed_ids[0]))
    assert dict(old_style.features.numeric) == expected["numeric"]
    assert dict(old_style.features.categorical) == expected["categorical"]
    batch = scoring.ScoreBatch(scoring_pb2.ScoreBatchRequest(client_ids=mixed_ids[:3]), timeout=10)
    assert not batch.feature_names
    assert [dict(item.score.features.numeric) for item in batch.items] == [
        inputs(score(scoring, client_id))["numeric"] for client_id in mixed_ids[:3]
    ]


def test_score_batch_limits(stack: Stack, scoring: Any) -> None:
    limit = ScoringSettings().max_batch
    # A full batch fits in what a default gRPC client accepts (4 MB).
    full = scoring_pb2.ScoreBatchRequest(client_ids=stack.features["SK_ID_CURR"][:limit])
    response = scoring.ScoreBatch(full, timeout=30)
    assert len(response.items) == limit and all(i.HasField("score") for i in response.items)
    assert response.ByteSize() < 4 * 1024 * 1024 * 0.8
    too_many = scoring_pb2.ScoreBatchRequest(client_ids=list(range(1, limit + 2)))
    error = rpc_error(lambda: scoring.ScoreBatch(too_many, timeout=10))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == f"client_ids: at most {limit} clients per batch"
    error = rpc_error(lambda: scoring.ScoreBatch(scoring_pb2.ScoreBatchRequest(), timeout=10))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith("client_ids:")


def test_new_application_is_scored_and_uses_a_known_clients_history(
    stack: Stack, scoring: Any
) -> None:
    anonymous = scoring.Score(
        scoring_pb2.ScoreRequest(application=valid_application(), packed_inputs=True)
    )
    assert 0.0 < anonymous.probability < 1.0
    assert not anonymous.HasField("client_id")
    assert anonymous.decision in (GRANTED, REFUSED)
    numeric = inputs(anonymous)["numeric"]
    assert numeric["AMT_CREDIT"] == 450_000.0
    assert numeric["CREDIT_TERM_MONTHS"] == pytest.approx(20.0)
    history = [f["name"] for f in stack.model.schema["features"] if f["source"] != "application"]
    assert history, "the model uses no history feature"
    known = stack.features.dropna(subset=history, how="all")["SK_ID_CURR"].iloc[0]
    with_history = scoring.Score(
        scoring_pb2.ScoreRequest(
            application=valid_application(client_id=int(known)), packed_inputs=True
        )
    )
    assert with_history.client_id == known
    used = inputs(with_history)
    stored = stack.features.set_index("SK_ID_CURR").loc[known]
    present = [name for name in history if pd.notna(stored[name])]
    assert present
    for name in present:
        assert (
            used["numeric"][name] == pytest.approx(stored[name])
            if name in used["numeric"]
            else used["categorical"][name] == stored[name]
        )
    # The application's own fields win over the stored application of the client.
    assert used["numeric"]["AMT_CREDIT"] == 450_000.0
    assert with_history.probability != anonymous.probability


def test_application_with_the_stored_fields_scores_like_the_client(
    stack: Stack, scoring: Any, offline: pd.DataFrame, mixed_ids: list[int]
) -> None:
    for client_id in mixed_ids[:10]:
        application = application_from_row(offline.loc[client_id])
        response = scoring.Score(scoring_pb2.ScoreRequest(application=application))
        assert response.probability == pytest.approx(offline.at[client_id, "p"], abs=1e-9)


@pytest.mark.parametrize(
    ("application", "field"),
    [
        (valid_application(amt_credit=0.0), "amt_credit"),
        (valid_application(contract_type="Mortgage"), "contract_type"),
        (valid_application(name_income_type="Astronaut"), "name_income_type"),
        (valid_application(amt_annuity=500_000.0), "amt_annuity"),
        (valid_application(days_birth=-1_000), "days_birth"),
        (valid_application(ext_source_2=1.5), "ext_source_2"),
        (valid_application(amt_income_total=float("nan")), "amt_income_total"),
        (valid_application(numeric_fields={"NOT_A_FIELD": 1.0}), "numeric_fields[NOT_A_FIELD]"),
        (valid_application(numeric_fields={"AMT_CREDIT": 1.0}), "numeric_fields[AMT_CREDIT]"),
        (valid_application(category_fields={"AMT_CREDIT": "x"}), "category_fields[AMT_CREDIT]"),
        (valid_application(client_id=-4), "client_id"),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_invalid_application_names_the_field(
    scoring: Any, explainer: Any, version: str, application: common_pb2.Application, field: str
) -> None:
    for call in (
        lambda: scoring.Score(scoring_pb2.ScoreRequest(application=application), timeout=10),
        lambda: explainer.Explain(
            explainer_pb2.ExplainRequest(application=application, model_version=version), timeout=10
        ),
    ):
        error = rpc_error(call)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert error.details().startswith(f"{field}:"), error.details()


def test_score_without_subject_is_invalid(scoring: Any) -> None:
    error = rpc_error(lambda: scoring.Score(scoring_pb2.ScoreRequest(), timeout=10))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith("subject")


# -- explanations --------------------------------------------------------------------------
def test_explanations_add_up_to_the_models_raw_score(
    stack: Stack,
    scoring: Any,
    explainer: Any,
    offline: pd.DataFrame,
    mixed_ids: list[int],
    version: str,
) -> None:
    n_features = len(stack.model.feature_names)
    for client_id in mixed_ids[:12]:
        shown = explainer.Explain(
            explainer_pb2.ExplainRequest(client_id=client_id, model_version=version), timeout=10
        )
        full = explainer.Explain(
            explainer_pb2.ExplainRequest(
                client_id=client_id, model_version=version, top_k=n_features
            ),
            timeout=10,
        )
        assert len(shown.contributions) == 10
        assert len(full.contributions) == n_features and full.other_contributions == 0.0
        expected_raw = logit(float(offline.at[client_id, "p_raw"]))
        for explanation in (shown, full):
            listed = sum(c.contribution for c in explanation.contributions)
            total = explanation.base_value + listed + explanation.other_contributions
            assert total == pytest.approx(explanation.raw_score, abs=1e-9)
            assert explanation.raw_score == pytest.approx(expected_raw, abs=1e-9)
            assert explanation.probability == pytest.approx(offline.at[client_id, "p"], abs=1e-9)
            assert explanation.model_version == version
            magnitudes = [abs(c.contribution) for c in explanation.contributions]
            assert magnitudes == sorted(magnitudes, reverse=True)
        assert shown.decision == score(scoring, client_id).decision
        assert [c.feature for c in shown.contributions] == [
            c.feature for c in full.contributions[:10]
        ]
        # Principal reasons: at most four a side, one per citable factor, largest first,
        # each the net contribution of its factor's features (from every contribution).
        every = {c.feature: c.contribution for c in full.contributions}
        for reasons, sign in ((shown.raising, 1.0), (shown.lowering, -1.0)):
            values = [r.contribution * sign for r in reasons]
            assert all(v > 0 for v in values) and values == sorted(values, reverse=True)
            assert len(reasons) <= MAX_REASONS
            factors = [factor_of(r.feature) for r in reasons]
            assert None not in factors and len({f.id for f in factors if f}) == len(reasons)
            for reason, factor in zip(reasons, factors, strict=True):
                assert factor is not None
                net = sum(v for name, v in every.items() if factor_of(name) == factor)
                assert reason.contribution == pytest.approx(net, abs=1e-9)


def test_explanation_wording_follows_the_language(
    explainer: Any, mixed_ids: list[int], version: str
) -> None:
    def explain(lang: str) -> explainer_pb2.Explanation:
        return explainer.Explain(
            explainer_pb2.ExplainRequest(client_id=mixed_ids[0], model_version=version, lang=lang),
            timeout=10,
        )

    en, fr, default = explain("en"), explain("fr"), explain("")
    assert default == en
    reasons = [*en.raising, *en.lowering]
    assert reasons and all(
        r.text.endswith(("raises the risk.", "lowers the risk.")) for r in reasons
    )
    french = [*fr.raising, *fr.lowering]
    assert all(r.text.endswith(("augmente le risque.", "diminue le risque.")) for r in french)
    assert [r.text for r in reasons] != [r.text for r in french]
    assert [c.label for c in en.contributions] != [c.label for c in fr.contributions]
    assert [c.contribution for c in en.contributions] == [c.contribution for c in fr.contributions]


def test_explain_errors(explainer: Any, mixed_ids: list[int], version: str) -> None:
    cases = [
        (
            explainer_pb2.ExplainRequest(client_id=mixed_ids[0], model_version="999"),
            grpc.StatusCode.NOT_FOUND,
            "999",
        ),
        (
            explainer_pb2.ExplainRequest(client_id=mixed_ids[0]),
            grpc.StatusCode.INVALID_ARGUMENT,
            "model_version:",
        ),
        (
            explainer_pb2.ExplainRequest(client_id=mixed_ids[0], model_version=version, lang="de"),
            grpc.StatusCode.INVALID_ARGUMENT,
            "lang:",
        ),
        (
            explainer_pb2.ExplainRequest(client_id=mixed_ids[0], model_version=version, top_k=-1),
            grpc.StatusCode.INVALID_ARGUMENT,
            "top_k:",
        ),
        (
            explainer_pb2.ExplainRequest(client_id=UNKNOWN_CLIENT, model_version=version),
            grpc.StatusCode.NOT_FOUND,
            str(UNKNOWN_CLIENT),
        ),
        (
            explainer_pb2.ExplainRequest(model_version=version),
            grpc.StatusCode.INVALID_ARGUMENT,
            "subject:",
        ),
    ]
    for request, code, text in cases:
        error = rpc_error(lambda request=request: explainer.Explain(request, timeout=10))
        assert error.code() == code, request
        assert text in error.details()


def test_counterfactual_for_granted_clients_is_not_applicable(
    stack: Stack, explainer: Any, offline: pd.DataFrame, version: str
) -> None:
    granted = offline.index[offline["p"] < stack.model.threshold][:3]
    for client_id in granted:
        explanation = explainer.Explain(
            explainer_pb2.ExplainRequest(client_id=int(client_id), model_version=version),
            timeout=10,
        )
        assert explanation.decision == GRANTED
        assert not explanation.counterfactual.applicable
        assert not explanation.counterfactual.found


def test_counterfactual_changes_really_cross_the_threshold(
    stack: Stack, scoring: Any, explainer: Any, offline: pd.DataFrame, version: str
) -> None:
    threshold = stack.model.threshold
    refused = offline[offline["p"] >= threshold].sort_values("p")  # nearest the threshold first
    found = not_found = 0
    for client_id in refused.index[:40]:
        explanation = explainer.Explain(
            explainer_pb2.ExplainRequest(client_id=int(client_id), model_version=version),
            timeout=10,
        )
        counterfactual = explanation.counterfactual
        assert explanation.decision == REFUSED and counterfactual.applicable
        assert counterfactual.text
        if not counterfactual.found:
            not_found += 1
            assert not counterfactual.changes
            assert "threshold" in counterfactual.text
            continue
        found += 1
        assert counterfactual.new_probability < threshold
        changes = {c.feature: c for c in counterfactual.changes}
        assert set(changes) <= {"AMT_CREDIT", "AMT_ANNUITY"} and changes
        row = offline.loc[client_id]
        for name, change in changes.items():
            assert change.from_value == pytest.approx(row[name])
            assert change.to_value != change.from_value
        # The same client applying for the suggested amounts is granted by the scoring service.
        factor = (
            changes["AMT_CREDIT"].to_value / row["AMT_CREDIT"] if "AMT_CREDIT" in changes else 1.0
        )
        amounts = {name: change.to_value for name, change in changes.items()}
        if pd.notna(row["AMT_GOODS_PRICE"]) and row["AMT_GOODS_PRICE"]:
            amounts["AMT_GOODS_PRICE"] = row["AMT_GOODS_PRICE"] * factor
        changed = scoring.Score(
            scoring_pb2.ScoreRequest(application=application_from_row(row, **amounts)), timeout=10
        )
        assert changed.probability == pytest.approx(counterfactual.new_probability, abs=1e-9)
        assert changed.decision == GRANTED
    assert found >= 1, "no refused client near the threshold has a counterfactual"
    assert found + not_found == 40


def test_refused_decisions_give_at_most_four_citable_reasons(
    stack: Stack, explainer: Any, offline: pd.DataFrame, version: str
) -> None:
    """What a refused applicant is told: at most four principal reasons, no two from one
    correlated family, none outside the allow-list (never the hour or weekday of the
    application, gender, age or family status), in both languages; a counterfactual that
    changes only actionable amounts, within the ranges an application may have."""
    refused = offline[offline["p"] >= stack.model.threshold].sort_values("p", ascending=False)
    assert len(refused) >= 20
    actionable = {f["name"] for f in stack.model.schema["features"] if f.get("actionable")}
    for client_id in refused.index[:20]:
        for lang in ("en", "fr"):
            request = explainer_pb2.ExplainRequest(
                client_id=int(client_id), model_version=version, lang=lang
            )
            explanation = explainer.Explain(request, timeout=10)
            assert explanation.decision == REFUSED
            reasons = explanation.raising
            assert 1 <= len(reasons) <= MAX_REASONS
            factors = [factor_of(r.feature) for r in reasons]
            assert None not in factors
            assert len({f.id for f in factors if f}) == len(reasons)
            assert [r.factor for r in reasons] == [f.id for f in factors if f]
            assert not {r.feature for r in reasons} & {
                "HOUR_APPR_PROCESS_START",
                "WEEKDAY_APPR_PROCESS_START",
                "CODE_GENDER",
                "DAYS_BIRTH",
                "NAME_FAMILY_STATUS",
            }
            suffix = "augmente le risque." if lang == "fr" else "raises the risk."
            assert all(r.text.endswith(suffix) for r in reasons)
            for change in explanation.counterfactual.changes:
                assert change.feature in actionable
                low, high = RANGES[change.feature]
                assert low <= change.to_value <= high


# -- model, clients, population ------------------------------------------------------------
def test_get_model_describes_the_served_version(stack: Stack, scoring: Any, version: str) -> None:
    info = scoring.GetModel(scoring_pb2.GetModelRequest(), timeout=10)
    model = stack.model
    assert info.model_version == version and info.model_name == MODEL_NAME
    assert info.threshold == model.threshold
    assert tuple(info.feature_names) == model.feature_names
    assert tuple(f.name for f in info.features) == model.feature_names
    assert info.metrics["auc_mean"] == pytest.approx(stack.metrics["auc_mean"])
    assert info.cost_false_negative == stack.metrics["cost_fn"]
    assert info.cost_false_positive == stack.metrics["cost_fp"]
    for name in ("pr_auc", "ece", "business_cost"):  # promised by scoring.proto
        assert info.metrics[name] == pytest.approx(stack.metrics[name]), name
    assert info.trained_at.seconds > 0
    specs = {f.name: f for f in info.features}
    assert specs["AMT_CREDIT"].unit == "money" and specs["AMT_CREDIT"].actionable
    assert specs["AMT_CREDIT"].label_en != specs["AMT_CREDIT"].label_fr
    category = next(f for f in info.features if f.dtype == "category")
    assert category.categories


def test_get_client_returns_the_stored_features(
    stack: Stack, scoring: Any, offline: pd.DataFrame, mixed_ids: list[int], version: str
) -> None:
    client_id = mixed_ids[1]
    profile = scoring.GetClient(scoring_pb2.GetClientRequest(client_id=client_id), timeout=10)
    assert profile.client_id == client_id and profile.model_version == version
    scored = inputs(score(scoring, client_id))
    assert dict(profile.features.numeric) == scored["numeric"]
    assert dict(profile.features.categorical) == scored["categorical"]
    row = offline.loc[client_id]
    for name in stack.model.feature_names:
        if pd.isna(row[name]):
            assert name not in profile.features.numeric
            assert name not in profile.features.categorical
        elif name in profile.features.categorical:
            assert profile.features.categorical[name] == row[name]
        else:
            assert profile.features.numeric[name] == pytest.approx(float(row[name]), rel=1e-6)


def test_global_importance(stack: Stack, explainer: Any, version: str) -> None:
    en = explainer.GlobalImportance(
        explainer_pb2.GlobalImportanceRequest(model_version=version, top_k=5), timeout=10
    )
    fr = explainer.GlobalImportance(
        explainer_pb2.GlobalImportanceRequest(model_version=version, top_k=5, lang="fr"),
        timeout=10,
    )
    assert en.model_version == version and len(en.features) == 5
    saved = pd.read_csv(stack.root / "artifacts-0" / "importance.csv").head(5)
    assert [f.feature for f in en.features] == saved["feature"].tolist()
    assert [f.mean_abs_shap for f in en.features] == pytest.approx(saved["mean_abs_shap"])
    shap = [f.mean_abs_shap for f in en.features]
    assert shap == sorted(shap, reverse=True) and shap[0] > 0
    assert [f.label for f in en.features] != [f.label for f in fr.features]
    default = explainer.GlobalImportance(
        explainer_pb2.GlobalImportanceRequest(model_version=version), timeout=10
    )
    assert len(default.features) == 20
    error = rpc_error(
        lambda: explainer.GlobalImportance(
            explainer_pb2.GlobalImportanceRequest(model_version="999"), timeout=10
        )
    )
    assert error.code() == grpc.StatusCode.NOT_FOUND


def test_population_of_a_categorical_feature(stack: Stack, explainer: Any, version: str) -> None:
    train = stack.features[stack.features["split"] == "train"]
    response = explainer.GetPopulation(
        explainer_pb2.PopulationRequest(
            model_version=version, feature="NAME_CONTRACT_TYPE", lang="fr"
        ),
        timeout=10,
    )
    assert response.dtype == "category" and response.n == len(train)
    assert response.default_rate == pytest.approx(train["TARGET"].mean())
    assert len(response.categories) == len(response.repaid) == len(response.defaulted)
    assert sum(response.repaid) + sum(response.defaulted) == response.n
    expected = train.groupby("NAME_CONTRACT_TYPE", observed=True)["TARGET"].agg(["size", "sum"])
    for category, repaid, defaulted in zip(
        response.categories, response.repaid, response.defaulted, strict=True
    ):
        assert repaid + defaulted == expected.at[category, "size"]
        assert defaulted == expected.at[category, "sum"]
    assert (
        response.label
        != explainer.GetPopulation(
            explainer_pb2.PopulationRequest(model_version=version, feature="NAME_CONTRACT_TYPE"),
            timeout=10,
        ).label
    )


def test_population_of_a_numeric_feature(stack: Stack, explainer: Any, version: str) -> None:
    train = stack.features[stack.features["split"] == "train"]
    response = explainer.GetPopulation(
        explainer_pb2.PopulationRequest(model_version=version, feature="AMT_CREDIT"), timeout=10
    )
    assert response.dtype == "float" and response.unit == "money"
    assert len(response.bin_edges) == len(response.repaid) + 1 == len(response.defaulted) + 1
    assert list(response.bin_edges) == sorted(response.bin_edges)
    present = train["AMT_CREDIT"].notna()
    assert response.missing_rate == pytest.approx(1 - present.mean())
    # Values outside the 1-99 % bins are clipped into the end bins: every client counts.
    assert sum(response.repaid) + sum(response.defaulted) == present.sum()
    assert sum(response.defaulted) == train.loc[present, "TARGET"].sum()
    assert response.quantiles["0.5"] == pytest.approx(train["AMT_CREDIT"].median())
    for feature, code in (
        ("NOT_A_FEATURE", grpc.StatusCode.NOT_FOUND),
        ("", grpc.StatusCode.INVALID_ARGUMENT),
    ):
        error = rpc_error(
            lambda feature=feature: explainer.GetPopulation(
                explainer_pb2.PopulationRequest(model_version=version, feature=feature), timeout=10
            )
        )
        assert error.code() == code


def test_neighbours(stack: Stack, explainer: Any, version: str) -> None:
    """An aggregate over a fixed group of 30 and anonymous, outcome-free points: no other
    client's id, outcome or probability is on the wire (issue 17)."""
    reference = pd.read_parquet(stack.root / "artifacts-0" / "reference.parquet")
    client_id = int(reference["SK_ID_CURR"].iloc[0])
    response = explainer.GetNeighbours(
        explainer_pb2.NeighboursRequest(
            client_id=client_id, model_version=version, features=["AMT_CREDIT", "EXT_SOURCE_2"]
        ),
        timeout=10,
    )
    assert response.k == 30 == len(response.neighbours) and response.features_used
    distances = [n.distance for n in response.neighbours]
    # The client is in the reference sample at distance 0: it must have been excluded.
    assert distances == sorted(distances) and distances[0] > 0
    for neighbour in response.neighbours:
        assert neighbour.client_id == 0
        assert neighbour.defaulted is False and neighbour.probability == 0.0
        assert set(neighbour.values) <= {"AMT_CREDIT", "EXT_SOURCE_2"}
    assert 0 <= response.defaulted_count <= 30
    assert response.default_rate == pytest.approx(response.defaulted_count / 30)
    # Nothing in the serialised answer names a reference client.
    wire = response.SerializeToString()
    ids = set(reference["SK_ID_CURR"].astype(int)) - {client_id}
    assert not any(str(i).encode() in wire for i in list(ids)[:2000])
    assert (
        response.k
        == explainer.GetNeighbours(
            explainer_pb2.NeighboursRequest(
                application=valid_application(), model_version=version, k=30
            ),
            timeout=10,
        ).k
    )
    for request, code in (
        # Another group size would let two answers differ by one client's outcome.
        (
            explainer_pb2.NeighboursRequest(client_id=client_id, model_version=version, k=29),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        (
            explainer_pb2.NeighboursRequest(client_id=client_id, model_version=version, k=51),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        (
            explainer_pb2.NeighboursRequest(
                client_id=client_id, model_version=version, features=["TARGET"]
            ),
            grpc.StatusCode.NOT_FOUND,
        ),
        (
            explainer_pb2.NeighboursRequest(client_id=UNKNOWN_CLIENT, model_version=version),
            grpc.StatusCode.NOT_FOUND,
        ),
    ):
        error = rpc_error(lambda request=request: explainer.GetNeighbours(request, timeout=10))
        assert error.code() == code


def test_population_cells_are_never_small(explainer: Any, version: str) -> None:
    """Every bin or category holds at least min_cell clients (or none): nobody's outcome
    can be read from a cell that holds them almost alone."""
    model = explainer.GlobalImportance(
        explainer_pb2.GlobalImportanceRequest(model_version=version, top_k=200), timeout=10
    )
    checked = 0
    for feature in [f.feature for f in model.features][:60]:
        reply = explainer.GetPopulation(
            explainer_pb2.PopulationRequest(model_version=version, feature=feature), timeout=10
        )
        assert reply.min_cell >= 20
        totals = [r + d for r, d in zip(reply.repaid, reply.defaulted, strict=True)]
        assert all(t == 0 or t >= reply.min_cell for t in totals), (feature, totals)
        if not reply.categories:
            assert len(reply.bin_edges) == len(reply.repaid) + 1
        checked += 1
    assert checked > 10


# -- errors, deadlines, health, reflection -------------------------------------------------
def test_unknown_client_is_not_found_and_counted(scoring: Any) -> None:
    labels = {"grpc_service": SCORING_SERVICE, "grpc_method": "Score", "grpc_code": "NOT_FOUND"}
    before = sample("grpc_server_handled_total", labels)
    for call in (
        lambda: score(scoring, UNKNOWN_CLIENT),
        lambda: scoring.GetClient(
            scoring_pb2.GetClientRequest(client_id=UNKNOWN_CLIENT), timeout=10
        ),
    ):
        error = rpc_error(call)
        assert error.code() == grpc.StatusCode.NOT_FOUND
        assert str(UNKNOWN_CLIENT) in error.details()
    assert sample("grpc_server_handled_total", labels) == before + 1
    for call in (
        lambda: score(scoring, 0),
        lambda: scoring.GetClient(scoring_pb2.GetClientRequest(client_id=-3), timeout=10),
    ):
        error = rpc_error(call)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert error.details().startswith("client_id:")


def test_deadlines_are_honoured(stack: Stack, scoring: Any, mixed_ids: list[int]) -> None:
    # gRPC rounds sub-millisecond deadlines up, and a Score takes under a millisecond, so
    # the slow call here is a full batch: the caller gets DEADLINE_EXCEEDED when its
    # deadline passes, not when the server is done.
    limit = ScoringSettings().max_batch
    batch = scoring_pb2.ScoreBatchRequest(client_ids=stack.features["SK_ID_CURR"][:limit])
    started = time.perf_counter()
    scoring.ScoreBatch(batch, timeout=30)
    full = time.perf_counter() - started
    assert full > 0.1, f"a {limit}-client batch took {full:.3f} s: too fast to test deadlines"
    started = time.perf_counter()
    error = rpc_error(lambda: scoring.ScoreBatch(batch, timeout=full / 20))
    assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert time.perf_counter() - started < full / 2
    assert score(scoring, mixed_ids[0]).probability > 0  # the server is still fine


@pytest.mark.parametrize("service", ["services.scoring.server", "services.explainer.server"])
def test_service_metrics_stay_in_memory_and_ours_although_feast_is_imported(service: str) -> None:
    """Importing Feast turns on prometheus_client's multiprocess mode (an mmap'd file per
    metric) unless prometheus_client was imported first: each service must import it first.
    It also registers its feature server's metrics, which the services take out again."""
    import os
    import sys

    env = {k: v for k, v in os.environ.items() if "PROMETHEUS_MULTIPROC" not in k}
    probe = (
        f"import sys, {service}, prometheus_client as client; "
        "import prometheus_client.values as values; "
        "exported = client.generate_latest().decode(); "
        "print('feast' in sys.modules, values.ValueClass.__name__, "
        "'feast_' in exported, 'credit_feature_store_read_seconds' in exported)"
    )
    shown = subprocess.run(
        [sys.executable, "-c", probe],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout.split()
    # In memory, and without Feast's feature-server series (zeros that are not ours).
    assert shown == ["True", "MutexValue", "False", "True"]


def test_health_serving_with_a_champion(stack: Stack) -> None:
    assert (
        health_status(stack.scoring_address, SCORING_SERVICE)
        == health_pb2.HealthCheckResponse.SERVING
    )
    assert health_status(stack.scoring_address, "") == health_pb2.HealthCheckResponse.SERVING
    assert (
        health_status(stack.explainer_address, EXPLAINER_SERVICE)
        == health_pb2.HealthCheckResponse.SERVING
    )
    error = rpc_error(lambda: health_status(stack.scoring_address, "no.such.Service"))
    assert error.code() == grpc.StatusCode.NOT_FOUND


def test_reflection_lists_the_services(stack: Stack) -> None:
    for address, service in (
        (stack.scoring_address, SCORING_SERVICE),
        (stack.explainer_address, EXPLAINER_SERVICE),
    ):
        database = ProtoReflectionDescriptorDatabase(grpc.insecure_channel(address))
        services = set(database.get_services())
        assert {service, "grpc.health.v1.Health"} <= services
        assert database.FindFileContainingSymbol(service).name.startswith("credit/v1/")
    assert SCORING_SERVICE == "credit.v1.ScoringService"
    assert EXPLAINER_SERVICE == "credit.v1.ExplainerService"


# -- Redis: the production store, and an outage ---------------------------------------------
def test_redis_store_serves_the_same_scores(
    redis_stack: tuple[Stack, RedisServer],
    scoring: Any,
    explainer: Any,
    mixed_ids: list[int],
    version: str,
) -> None:
    served, _ = redis_stack
    over_redis = scoring_stub(served.scoring_address)
    for client_id in mixed_ids[:20]:
        assert score(over_redis, client_id) == score(scoring, client_id)
    application = valid_application(client_id=mixed_ids[0])
    assert over_redis.Score(scoring_pb2.ScoreRequest(application=application)) == scoring.Score(
        scoring_pb2.ScoreRequest(application=application)
    )
    request = explainer_pb2.ExplainRequest(client_id=mixed_ids[0], model_version=version)
    assert explainer_stub(served.explainer_address).Explain(request) == explainer.Explain(request)
    assert rpc_error(lambda: score(over_redis, UNKNOWN_CLIENT)).code() == grpc.StatusCode.NOT_FOUND


def test_feature_store_outage_is_unavailable_and_recovers_without_restart(
    redis_stack: tuple[Stack, RedisServer], offline: pd.DataFrame, mixed_ids: list[int]
) -> None:
    served, redis_server = redis_stack
    stub = scoring_stub(served.scoring_address)
    explain = explainer_stub(served.explainer_address)
    client_id = mixed_ids[2]
    request = explainer_pb2.ExplainRequest(
        client_id=client_id, model_version=served.model.model_version
    )
    assert score(stub, client_id).probability == pytest.approx(offline.at[client_id, "p"])
    before = sample("credit_feature_store_errors_total", {"reason": "unreachable"})
    redis_server.kill()
    try:
        for call in (
            lambda: score(stub, client_id),
            lambda: stub.ScoreBatch(
                scoring_pb2.ScoreBatchRequest(client_ids=mixed_ids[:3]), timeout=10
            ),
            lambda: stub.GetClient(scoring_pb2.GetClientRequest(client_id=client_id), timeout=10),
            lambda: explain.Explain(request, timeout=10),
        ):
            error = rpc_error(call)
            assert error.code() == grpc.StatusCode.UNAVAILABLE, error.details()
            assert "feature store" in error.details()
        assert sample("credit_feature_store_errors_total", {"reason": "unreachable"}) > before
        # New applications without a client id need no store: still served.
        assert stub.Score(scoring_pb2.ScoreRequest(application=valid_application())).probability
    finally:
        redis_server.start()  # same port, empty (no persistence)
    # Back, but empty: the servers reconnect by themselves, and a store that lost its data
    # is not "unknown client" but UNAVAILABLE feature-store-incomplete until materialised.
    error = rpc_error(lambda: score(stub, client_id))
    assert error.code() == grpc.StatusCode.UNAVAILABLE, error.details()
    assert dict(error.trailing_metadata())[REASON_KEY] == "feature-store-incomplete"
    materialize(served.store_settings, served.features_dir, progress=False)
    for address, service in (
        (served.scoring_address, SCORING_SERVICE),
        (served.explainer_address, EXPLAINER_SERVICE),
    ):
        wait_for(
            lambda a=address, s=service: (
                health_status(a, s) == health_pb2.HealthCheckResponse.SERVING
            )
        )
    assert score(stub, client_id).probability == pytest.approx(offline.at[client_id, "p"], abs=1e-9)
    assert explain.Explain(request, timeout=10).probability == pytest.approx(
        offline.at[client_id, "p"], abs=1e-9
    )


# -- registry: no champion yet, alias moves, a broken version --------------------------------
def test_health_not_serving_until_a_champion_is_registered(empty_registry: Stack) -> None:
    address = empty_registry.scoring_address
    not_serving = health_pb2.HealthCheckResponse.NOT_SERVING
    assert health_status(address, SCORING_SERVICE) == not_serving
    assert health_status(address, "") == not_serving
    error = rpc_error(lambda: scoring_stub(address).GetModel(scoring_pb2.GetModelRequest()))
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert "champion" in error.details()
    version = promote_new_version(empty_registry)
    wait_for(
        lambda: health_status(address, SCORING_SERVICE) == health_pb2.HealthCheckResponse.SERVING
    )
    assert served_version(address) == version


def test_alias_move_reloads_without_restart(empty_registry: Stack) -> None:
    address = empty_registry.scoring_address
    before = served_version(address) or promote_new_version(empty_registry)
    wait_for(lambda: served_version(address) == before)
    successes = sample("credit_model_reloads_total", {"outcome": "success"})
    version = promote_new_version(empty_registry)
    assert version != before
    wait_for(lambda: served_version(address) == version)
    assert sample("credit_model_reloads_total", {"outcome": "success"}) >= successes + 1
    assert health_status(address, SCORING_SERVICE) == health_pb2.HealthCheckResponse.SERVING


def test_failed_reload_keeps_serving_the_old_version(empty_registry: Stack) -> None:
    address, uri = empty_registry.scoring_address, empty_registry.tracking_uri
    current = served_version(address) or promote_new_version(empty_registry)
    wait_for(lambda: served_version(address) == current)
    client = MlflowClient(uri, registry_uri=uri)
    good = client.get_model_version(MODEL_NAME, current)
    source = Path(
        download_artifacts(
            artifact_uri=f"models:/{MODEL_NAME}/{current}",
            tracking_uri=uri,
            registry_uri=uri,
            dst_path=str(empty_registry.root / "download"),
        )
    )
    # Two broken versions: a corrupted LightGBM model file, and artefacts deleted from disk.
    corrupted, deleted = empty_registry.root / "corrupted", empty_registry.root / "deleted"
    shutil.copytree(source, corrupted)
    shutil.copytree(source, deleted)
    model_files = list(corrupted.rglob("model.txt"))
    assert model_files
    for path in model_files:
        path.write_text("this is not a LightGBM model\n")
    versions = [
        client.create_model_version(MODEL_NAME, folder.resolve().as_uri(), run_id=good.run_id)
        for folder in (corrupted, deleted)
    ]
    shutil.rmtree(deleted)
    for broken in versions:
        failures = sample("credit_model_reloads_total", {"outcome": "failure"})
        client.set_registered_model_alias(MODEL_NAME, "champion", str(broken.version))
        wait_for(
            lambda f=failures: sample("credit_model_reloads_total", {"outcome": "failure"}) > f
        )
        assert served_version(address) == current
        assert health_status(address, SCORING_SERVICE) == health_pb2.HealthCheckResponse.SERVING


def test_served_probabilities_move_with_the_inputs(stack: Stack) -> None:
    """A smooth calibration: at least 1,000 distinct probabilities over the clients (an
    isotonic step function served about a dozen), none exactly 0 or 1."""
    probabilities = stack.model.predict_proba(stack.features)
    assert stack.model.calibrator.method == "platt"
    assert len(np.unique(probabilities)) >= 1_000
    assert probabilities.min() > 0 and probabilities.max() < 1


def test_get_model_reports_the_cost_weights_and_figures_training_used(
    empty_registry: Stack,
) -> None:
    """A model trained with other cost weights reports those (GetModel used to send 10/1
    whatever the training used), and the headline figures metrics.json holds."""
    served = empty_registry
    metrics = train_model(
        served.root, served.features_dir, served.tracking_uri, n_folds=2, cost_fn=5.0, cost_fp=2.0
    )
    version = str(metrics["model_version"])
    MlflowClient(served.tracking_uri).set_registered_model_alias(MODEL_NAME, "champion", version)
    wait_for(lambda: served_version(served.scoring_address) == version)
    info = scoring_stub(served.scoring_address).GetModel(scoring_pb2.GetModelRequest(), timeout=10)
    assert (info.cost_false_negative, info.cost_false_positive) == (5.0, 2.0)
    for name in ("auc_mean", "pr_auc", "ece", "brier", "business_cost", "oof_auc"):
        assert info.metrics[name] == pytest.approx(metrics[name]), name
    assert info.threshold == pytest.approx(metrics["threshold"])


def test_a_what_if_on_income_moves_the_probability(stack: Stack, scoring: Any) -> None:
    """Changing a real applicant's income (a third, three times, ten times) changes the
    probability shown for most clients (with the former isotonic calibration, a dozen
    steps, it changed nothing for most). A tree model is flat between its split points, and
    the credit-logic monotone constraints leave fewer of them, so one multiple alone may not
    cross any for a given client; three multiples must, for most."""
    rows = stack.features[stack.features["split"] == "train"].head(20)
    moved = 0
    for _, row in rows.iterrows():
        base = scoring.Score(scoring_pb2.ScoreRequest(application=application_from_row(row)))
        shown = set()
        low, high = RANGES["AMT_INCOME_TOTAL"]  # what the service accepts
        for multiple in (1 / 3, 3, 10):
            income = min(max(row["AMT_INCOME_TOTAL"] * multiple, low), high)
            changed = application_from_row(row, AMT_INCOME_TOTAL=income)
            what_if = scoring.Score(scoring_pb2.ScoreRequest(application=changed), timeout=10)
            shown.add(what_if.probability)
        moved += shown != {base.probability}
    assert moved >= 0.75 * len(rows), f"the income what-ifs moved {moved} of {len(rows)}"
