"""Nested tuning and feature selection (training/tuning.py): chosen on training rows only."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from sklearn.datasets import make_classification
from typer.testing import CliRunner

from credit.cli import app as cli
from serving_core.bundle import ScoringModel
from tests.test_train_mlflow import MODEL, write_features
from training import modeling, tuning

os.environ.setdefault("OMP_NUM_THREADS", "1")

FAST = {"num_boost_round": 150, "early_stopping_rounds": 15}


def _frame() -> tuple[pd.DataFrame, np.ndarray]:
    X, y = make_classification(
        n_samples=900,
        n_features=12,
        n_informative=3,
        n_redundant=0,
        shuffle=False,
        weights=[0.8],
        random_state=5,
    )
    return pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])]), y


def _nested_cv(
    X: pd.DataFrame,
    y: np.ndarray,
    folds: list[modeling.Fold],
    seen: list[tuple[int, set[int]]],
    rounds: list[int] | None = None,
) -> modeling.CVResult:
    params = modeling.lgb_params(seed=0, quick=True)

    def setup(k: int, rows: np.ndarray) -> tuple[dict[str, Any], list[str], int | None]:
        seen.append((k, set()))
        chosen = tuning.choose(X, y, rows, params, trials=3, select=True, seed=k, **FAST)
        if rounds is not None:
            rounds.append(chosen.rounds)
        return chosen.params, chosen.features, chosen.rounds

    return modeling.cross_validate_lgbm(X, y, folds, params, refit=False, fold_setup=setup, **FAST)


def test_nested_search_never_sees_the_rows_it_scores(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every candidate of fold k (selection and trials) is judged on fold k's training rows
    and nothing else; shuffling the scored fold's labels changes none of its choices."""
    X, y = _frame()
    folds = modeling.make_folds(y, 3, seed=0)
    seen: list[tuple[int, set[int]]] = []
    real_inner_cv = tuning.inner_cv

    def spy(X_: pd.DataFrame, y_: np.ndarray, rows: np.ndarray, *a: Any, **kw: Any) -> Any:
        seen[-1][1].update(int(r) for r in rows)
        calls.append(len(rows))
        return real_inner_cv(X_, y_, rows, *a, **kw)

    calls: list[int] = []
    monkeypatch.setattr(tuning, "inner_cv", spy)
    rounds: list[int] = []
    cv = _nested_cv(X, y, folds, seen, rounds)

    assert [k for k, _ in seen] == [0, 1, 2]
    for k, rows in seen:
        train_idx, valid_idx = folds[k]
        assert rows == set(train_idx.tolist())
        assert rows.isdisjoint(valid_idx.tolist())
    # Per fold at least the selection's scoring (also trial 1's when nothing was dropped)
    # and the 2 other trials.
    assert len(calls) >= 3 * 3
    assert len(cv.fold_params) == len(cv.fold_features) == 3
    # Each fold's model has the tree count its own search chose.
    assert cv.best_iterations == rounds
    # The informative inputs (the first three) survive every fold's selection.
    assert all({"f0", "f1", "f2"} <= set(features) for features in cv.fold_features)

    scored = folds[1][1]
    y_shuffled = y.copy()
    y_shuffled[scored] = np.random.default_rng(1).permutation(y[scored])
    again = _nested_cv(X, y_shuffled, folds, [])
    assert again.fold_params[1] == cv.fold_params[1]
    assert again.fold_features[1] == cv.fold_features[1]
    np.testing.assert_array_equal(again.oof[scored], cv.oof[scored])


def test_tuned_training_records_each_folds_choice_and_serves_the_final_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`credit train --tune N --select` end to end on a tiny budget, through the CLI: each
    outer fold's chosen settings and inputs in metrics.json and MLflow, the served model on
    the final choice; `--if-stale` with the same options does not train again."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    features = write_features(tmp_path / "features", seed=3, informative=True)
    environment = {
        "FEATURES_DIR": features,
        "ARTIFACTS_DIR": tmp_path / "artifacts",
        "MLFLOW_TRACKING_URI": uri,
        "MODEL_NAME": MODEL,
        "FEATURE_STORE_DIR": tmp_path / "feature_store",  # none: no feature service to add
    }
    for name, value in environment.items():
        monkeypatch.setenv(name, str(value))
    command = ["train", "--quick", "--tune", "3", "--select"]
    result = CliRunner().invoke(cli, command)
    assert result.exit_code == 0, result.output
    assert "model v1 (champion)" in result.output
    metrics = json.loads((tmp_path / "artifacts" / "metrics.json").read_text())
    again = CliRunner().invoke(cli, [*command, "--if-stale"])
    assert again.exit_code == 0 and "not retraining" in again.output, again.output
    refused = CliRunner().invoke(cli, ["train", "--tune", "-1"])
    assert refused.exit_code == 2 and "greater than or equal to 0" in refused.output
    record = metrics["tuning"]
    assert record["trials"] == 3 and record["select"] is True
    assert len(record["folds"]) == metrics["n_folds"] == 3
    for fold in record["folds"]:
        assert set(fold["tuned"]) == set(tuning.SPACE)
        assert fold["n_features"] + len(fold["dropped"]) == 5  # the inputs it started from
    final = record["final"]
    bundle = ScoringModel.load(tmp_path / "artifacts" / "model")
    assert len(bundle.feature_names) == final["n_features"] == metrics["n_features"]
    assert bundle.booster.num_trees() == final["rounds"] == metrics["n_trees"]
    assert "EXT_SOURCE_2" in bundle.feature_names  # the strongest input is never dropped
    # The served booster's settings are the final search's.
    text = bundle.booster.model_to_string()
    assert f"[num_leaves: {int(final['tuned']['num_leaves'])}]" in text
    card = (tmp_path / "artifacts" / "model_card.md").read_text()
    assert "Nested choice of the tree count, a search of 3 settings" in card
    client = MlflowClient(tracking_uri=uri)
    run = client.get_run(metrics["run_id"])
    assert run.data.params["tune_trials"] == "3"
    logged = Path(client.download_artifacts(metrics["run_id"], "reports/tuning.json", tmp_path))
    assert json.loads(logged.read_text())["folds"] == json.loads(json.dumps(record["folds"]))
