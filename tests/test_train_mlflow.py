"""run_training end to end on a small in-test feature set with a local SQLite MLflow store."""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from serving_core.bundle import ScoringModel
from training.train import CHAMPION, REQUIRED_METRICS, run_training

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "1")

MODEL = "credit-default"
N_TRAIN, N_TEST = 900, 100


def _feature(name: str, dtype: str, source: str, **extra: Any) -> dict[str, Any]:
    text = {"en": name, "fr": name}
    return {
        "name": name,
        "dtype": dtype,
        "source": source,
        "label": text,
        "description": text,
        **extra,
    }


def write_features(folder: Path, *, seed: int, informative: bool) -> Path:
    """Feature rows + schema in the pipeline's format; TARGET depends on x1, x2 and region."""
    rng = np.random.default_rng(seed)
    n = N_TRAIN + N_TEST
    x1, x2, x3 = rng.normal(size=(3, n))
    region = rng.choice(["north", "south", "east"], n)
    # A higher external score lowers the risk, as in the real data: the model's monotone
    # constraint (credit logic) would otherwise forbid it from using that signal.
    logit = -2.6 - 1.4 * x1 - 1.0 * x2 + np.where(region == "south", 0.8, 0.0)
    target = (rng.uniform(size=n) < 1 / (1 + np.exp(-logit))).astype(float)
    if not informative:
        target = rng.permutation(target)
    frame = pd.DataFrame(
        {
            "SK_ID_CURR": np.arange(100_000, 100_000 + n, dtype=np.int64),
            "TARGET": target,
            "split": ["train"] * N_TRAIN + ["test"] * N_TEST,
            "EXT_SOURCE_2": x1,
            "AMT_CREDIT": x2 * 1e5 + 5e5,
            "DAYS_BIRTH": -rng.uniform(20, 70, n) * 365.25,
            "BUREAU_DEBT": np.where(rng.uniform(size=n) < 0.3, np.nan, x3),
            "REGION": region,
            "CODE_GENDER": rng.choice(["F", "M"], n).astype(object),
        }
    )
    frame.loc[frame["split"] == "test", "TARGET"] = np.nan
    frame.loc[::37, "REGION"] = None
    schema = {
        "version": 1,
        "entity": "SK_ID_CURR",
        "features": [
            _feature("EXT_SOURCE_2", "float", "application"),
            _feature("AMT_CREDIT", "float", "application"),
            _feature("DAYS_BIRTH", "float", "application"),
            _feature("BUREAU_DEBT", "float", "bureau"),
            _feature("REGION", "category", "application", categories=["east", "north", "south"]),
            _feature(
                "CODE_GENDER", "category", "application", categories=["F", "M"], protected=True
            ),
        ],
    }
    folder.mkdir(parents=True)
    frame.to_parquet(folder / "features.parquet", index=False)
    (folder / "feature_schema.json").write_text(json.dumps(schema))
    return folder


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("train")
    uri = f"sqlite:///{root / 'mlruns' / 'mlflow.db'}"
    good = run_training(
        write_features(root / "good", seed=0, informative=True),
        root / "artifacts_good",
        tracking_uri=uri,
        model_name=MODEL,
        quick=True,
        progress=False,
    )
    bad = run_training(
        write_features(root / "bad", seed=1, informative=False),
        root / "artifacts_bad",
        tracking_uri=uri,
        model_name=MODEL,
        quick=True,
        progress=False,
    )
    return {"root": root, "uri": uri, "good": good, "bad": bad}


def test_metrics_json_has_required_keys(trained: dict[str, Any]) -> None:
    artifacts = trained["root"] / "artifacts_good"
    metrics = json.loads((artifacts / "metrics.json").read_text())
    assert set(REQUIRED_METRICS) <= set(metrics)
    assert metrics["n_train"] == N_TRAIN  # application_test rows never used
    assert metrics["n_features"] == 5  # CODE_GENDER excluded
    assert metrics["auc_mean"] > 0.75
    assert set(metrics["baselines"]) == {"dummy_prior", "logreg_application", "lgbm_application"}
    assert metrics["baselines"]["dummy_prior"] == pytest.approx(0.5)
    assert {"CODE_GENDER=F", "CODE_GENDER=M"} <= set(metrics["fairness"])
    assert any(k.startswith("age_band=") for k in metrics["fairness"])
    assert 0 < metrics["threshold"] < 1
    assert metrics["calibration_method"] == "platt"  # smooth: what-ifs move the probability
    # Honest headline, optimistic figures labelled beside it, intervals around the headline.
    low, high = metrics["auc_mean_ci95"]
    assert low < metrics["auc_mean"] < high
    low, high = metrics["business_cost_ci95"]
    assert low < metrics["business_cost"] < high
    assert metrics["business_cost"] == sum(metrics["fold_business_cost"])
    assert metrics["optimistic"]["auc_mean"] >= metrics["auc_mean"]
    assert metrics["optimistic"]["business_cost"] <= metrics["business_cost"]
    assert "optimistic" in metrics["optimistic"]["note"]
    assert metrics["cost_baselines"]["approve_all"] == 10 * round(metrics["default_rate"] * N_TRAIN)
    differences = metrics["fairness_differences"]
    assert set(differences) == {"CODE_GENDER", "age_band"}
    for d in differences.values():
        assert 0 <= d["demographic_parity_difference"] <= 1
        low, high = d["equalized_odds_difference_ci95"]
        assert low <= high
    card = (artifacts / "model_card.md").read_text()
    assert "demographic parity difference" in card
    assert "honest" in card and "Optimistic, for comparison only" in card
    for name in (
        "cost_curve.png",
        "reliability.png",
        "importance.png",
        "importance.csv",
        "model_card.md",
        "population_stats.json",
        "reference.parquet",
        "drift_train_vs_test.html",
        "drift_train_vs_test.json",
    ):
        assert (artifacts / name).stat().st_size > 0, name
    stats = json.loads((artifacts / "population_stats.json").read_text())
    assert set(stats["features"]["REGION"]["counts"]) == {"0", "1"}
    assert len(stats["features"]["EXT_SOURCE_2"]["histogram"]["1"]) == 20
    reference = pd.read_parquet(artifacts / "reference.parquet")
    assert "prediction" in reference and "CODE_GENDER" not in reference
    # Out of fold too (the explainer's honest score distribution): each from a fold model.
    assert reference["oof_prediction"].between(0, 1).all()
    assert not np.allclose(reference["oof_prediction"], reference["prediction"])
    assert "v1" in (artifacts / "model_card.md").read_text()
    drift = metrics["train_vs_test_drift"]
    assert drift["n_reference"] == N_TRAIN and drift["n_current"] == N_TEST
    assert 0 <= drift["drift_share"] <= 1


def test_first_model_registered_and_champion(trained: dict[str, Any]) -> None:
    good = trained["good"]
    assert good["model_version"] == "1" and good["promoted"] is True
    client = MlflowClient(tracking_uri=trained["uri"], registry_uri=trained["uri"])
    assert str(client.get_model_version_by_alias(MODEL, CHAMPION).version) == "1"
    bundle = ScoringModel.load(trained["root"] / "artifacts_good" / "model")
    assert bundle.model_version == "1"
    assert "CODE_GENDER" not in bundle.feature_names


def test_champion_pyfunc_matches_bundle(trained: dict[str, Any]) -> None:
    mlflow.set_tracking_uri(trained["uri"])
    mlflow.set_registry_uri(trained["uri"])
    served = mlflow.pyfunc.load_model(f"models:/{MODEL}@{CHAMPION}")
    frame = pd.read_parquet(trained["root"] / "good" / "features.parquet")
    via_mlflow = np.asarray(served.predict(frame), dtype=np.float64)
    bundle = ScoringModel.load(trained["root"] / "artifacts_good" / "model")
    direct = bundle.predict_proba(frame)
    np.testing.assert_allclose(via_mlflow, direct, rtol=0, atol=1e-12)
    assert np.all((direct >= 0) & (direct <= 1)) and direct.std() > 0
    decisions = bundle.decide(direct)
    assert set(np.unique(decisions)) <= {"granted", "refused"}
    assert bundle.decide(bundle.threshold) == "refused"


def test_worse_model_does_not_take_the_alias(trained: dict[str, Any]) -> None:
    bad = trained["bad"]
    assert bad["model_version"] == "2"
    assert bad["auc_mean"] < trained["good"]["auc_mean"]
    assert bad["promoted"] is False
    client = MlflowClient(tracking_uri=trained["uri"], registry_uri=trained["uri"])
    assert str(client.get_model_version_by_alias(MODEL, CHAMPION).version) == "1"
    assert str(client.get_model_version(MODEL, "2").version) == "2"


def test_model_trained_on_other_data_takes_the_alias(trained: dict[str, Any]) -> None:
    """AUCs on different data sets do not compare: a model on new data is promoted."""
    other = run_training(
        write_features(trained["root"] / "other", seed=2, informative=False),
        trained["root"] / "artifacts_other",
        tracking_uri=trained["uri"],
        model_name=MODEL,
        quick=True,
        progress=False,
        data_source="kaggle:/elsewhere",
    )
    assert other["auc_mean"] < trained["good"]["auc_mean"]
    assert other["promoted"] is True and "other data" in other["promotion_reason"]
    client = MlflowClient(tracking_uri=trained["uri"], registry_uri=trained["uri"])
    assert str(client.get_model_version_by_alias(MODEL, CHAMPION).version) == other["model_version"]


def test_single_row_path_equals_frame_path(trained: dict[str, Any]) -> None:
    """The services' low-latency path (no pandas) gives the batch path's probabilities."""
    bundle = ScoringModel.load(trained["root"] / "artifacts_good" / "model")
    frame = pd.read_parquet(trained["root"] / "good" / "features.parquet")
    frame.loc[3, "REGION"] = "west"  # unseen category: missing on both paths
    batch = bundle.predict_proba(frame)
    rows = frame.astype(object).where(frame.notna(), None).to_dict("records")
    single = np.array([bundle.predict_one(row)[1] for row in rows])
    np.testing.assert_allclose(single, batch, rtol=0, atol=1e-12)


def test_feature_names_are_built_once(trained: dict[str, Any]) -> None:
    """The feature store checks a served model's names once per version, recognising them
    by identity: a fresh list per access made it compare 216 names on every request."""
    bundle = ScoringModel.load(trained["root"] / "artifacts_good" / "model")
    assert bundle.feature_names is bundle.feature_names
    assert isinstance(bundle.feature_names, tuple)  # shared, so not mutable
    assert bundle.feature_names == tuple(f["name"] for f in bundle.schema["features"])


def test_single_row_predictor_equals_booster_in_every_thread(trained: dict[str, Any]) -> None:
    """LightGBM's fast single-row API gives Booster.predict's raw probabilities exactly,
    missing values included, from several threads at once (one config per thread)."""
    bundle = ScoringModel.load(trained["root"] / "artifacts_good" / "model")
    frame = pd.read_parquet(trained["root"] / "good" / "features.parquet").head(200)
    rows = frame.astype(object).where(frame.notna(), None).to_dict("records")
    matrix = np.vstack([bundle.encoder.encode(row) for row in rows])
    matrix[::7, ::3] = np.nan
    expected = bundle.booster.predict(matrix, num_threads=1)

    def predict_all(_: int) -> np.ndarray:
        return np.array([bundle.single_row.predict(row) for row in matrix])

    with ThreadPoolExecutor(max_workers=3) as pool:
        for got in pool.map(predict_all, range(3)):
            np.testing.assert_array_equal(got, expected)
    with pytest.raises(ValueError, match="features"):
        bundle.single_row.predict(matrix[0, :-1])


def test_single_row_predictor_frees_its_configs_without_module_globals(
    trained: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Configs are freed even when the module's globals are already gone, as at interpreter
    exit (a stopping service printed 'Exception ignored ... LGBM_FastConfigFree')."""
    import gc
    import sys

    import serving_core.bundle as bundle_module

    model = ScoringModel.load(trained["root"] / "artifacts_good" / "model")
    size = model.single_row._num_features
    predictor = bundle_module.SingleRowPredictor(model.booster, size)
    assert 0.0 <= predictor.predict(np.zeros(size)) <= 1.0  # a config now exists
    unraisable: list[Any] = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    monkeypatch.setattr(bundle_module, "_LIB", None)  # what module teardown does
    del predictor
    gc.collect()
    assert unraisable == []


def test_bagged_model_serves_the_average_and_respects_credit_logic(tmp_path: Path) -> None:
    """Full mode's seed bagging and monotone constraints, end to end: the served booster is
    the average of the bags (every tree of every bag), the single-row path gives the batch
    path's probabilities, and a higher external score never raises the served risk."""
    metrics = run_training(
        write_features(tmp_path / "features", seed=3, informative=True),
        tmp_path / "artifacts",
        tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
        model_name=MODEL,
        quick=True,
        progress=False,
        n_bags=2,
    )
    assert metrics["n_bags"] == 2
    assert all(len(fold) == 2 for fold in metrics["bag_iterations"])
    assert metrics["monotone"] == {"decreasing": ["EXT_SOURCE_2"], "increasing": []}
    bundle = ScoringModel.load(tmp_path / "artifacts" / "model")
    assert bundle.booster.num_trees() == metrics["n_trees"]
    assert metrics["n_trees"] > max(max(fold) for fold in metrics["bag_iterations"]) // 2
    frame = pd.read_parquet(tmp_path / "features" / "features.parquet").head(50)
    rows = frame.astype(object).where(frame.notna(), None).to_dict("records")
    single = np.array([bundle.predict_one(row)[1] for row in rows])
    np.testing.assert_allclose(single, bundle.predict_proba(frame), rtol=0, atol=1e-12)
    for value in frame.index[:10]:
        grid = pd.concat([frame.loc[[value]]] * 41, ignore_index=True)
        grid["EXT_SOURCE_2"] = np.linspace(-3, 3, 41)
        assert np.diff(bundle.predict_proba(grid)).max() <= 1e-12
    card = (tmp_path / "artifacts" / "model_card.md").read_text()
    assert "Seed bagging: 2 models per fold" in card
    assert "the risk never rises with EXT_SOURCE_2" in card


def test_real_sample_model_is_smooth_calibrated_and_honestly_evaluated(
    real_sample: Path, tmp_path: Path
) -> None:
    """The real 5,000-application sample: >= 1,000 distinct served probabilities, none 0 or
    1; Brier and ECE no worse than the isotonic step function measured beside it."""
    from training.features.pipeline import build_features
    from training.loader import convert

    convert(real_sample, tmp_path / "tables", progress=False)
    build_features(tmp_path / "tables", tmp_path / "features", progress=False)
    metrics = run_training(
        tmp_path / "features",
        tmp_path / "artifacts",
        tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
        model_name=MODEL,
        quick=True,
        progress=False,
    )
    bundle = ScoringModel.load(tmp_path / "artifacts" / "model")
    frame = pd.read_parquet(tmp_path / "features" / "features.parquet")
    probabilities = bundle.predict_proba(frame)
    assert len(np.unique(probabilities)) >= 1_000
    assert probabilities.min() > 0 and probabilities.max() < 1
    assert metrics["brier"] <= metrics["calibration_brier"]["isotonic"] * 1.01
    assert metrics["ece"] <= metrics["calibration_ece"]["isotonic"] + 0.005
    # Honest figures are the headline; the optimistic ones can only flatter.
    assert metrics["optimistic"]["auc_mean"] >= metrics["auc_mean"] > 0.7
    assert metrics["business_cost"] < metrics["cost_baselines"]["approve_all"]
    # Credit logic holds for real clients: a higher external score never raises the risk,
    # more instalment days late never lower it (the real data alone does not ensure it).
    assert {"EXT_SOURCE_1", "EXT_SOURCE_2", "EXT_SOURCE_3"} <= set(
        metrics["monotone"]["decreasing"]
    )
    assert "INST_DPD_MAX" in metrics["monotone"]["increasing"]
    clients = frame[frame["split"] == "train"].reset_index(drop=True)
    for i in range(0, 400, 20):
        for column, values, direction in (
            ("EXT_SOURCE_3", np.linspace(0, 1, 21), -1),
            ("INST_DPD_MAX", np.linspace(0, 120, 21), 1),
        ):
            grid = pd.concat([clients.iloc[[i]]] * len(values), ignore_index=True)
            grid[column] = values
            assert (direction * np.diff(bundle.predict_proba(grid))).min() >= -1e-12
