"""Drift job on a real SQLite decision log filled from the reference sample."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Float,
    MetaData,
    String,
    Table,
    create_engine,
)

from training.drift import KEY_FEATURES, model_inputs, run_drift

REPO = Path(__file__).resolve().parents[1]
COLUMNS = [
    *KEY_FEATURES,
    "CNT_CHILDREN",
    "NAME_CONTRACT_TYPE",
    "CODE_GENDER",
    "REGION_POPULATION_RELATIVE",
    "DAYS_ID_PUBLISH",
]


def reference_sample(tmp_path: Path) -> Path:
    """A reference.parquet like training's: 2,000 rows of model inputs, TARGET, prediction."""
    rng = np.random.default_rng(3)
    n = 2_000
    frame = pd.DataFrame(
        {
            "SK_ID_CURR": np.arange(100_000, 100_000 + n),
            "EXT_SOURCE_1": rng.beta(5, 5, n),
            "EXT_SOURCE_2": rng.beta(6, 4, n),
            "EXT_SOURCE_3": rng.beta(5, 4, n),
            "AMT_INCOME_TOTAL": rng.lognormal(11.9, 0.5, n),
            "AMT_CREDIT": rng.lognormal(13.0, 0.6, n),
            "AMT_ANNUITY": rng.lognormal(10.1, 0.5, n),
            "AMT_GOODS_PRICE": rng.lognormal(12.9, 0.6, n),
            "DAYS_BIRTH": -rng.integers(7_000, 25_000, n).astype(float),
            "DAYS_EMPLOYED": -rng.integers(0, 12_000, n).astype(float),
            "CNT_CHILDREN": rng.poisson(0.4, n).astype(float),
            "NAME_CONTRACT_TYPE": pd.Categorical(
                rng.choice(["Cash loans", "Revolving loans"], n, p=[0.9, 0.1])
            ),
            "CODE_GENDER": pd.Categorical(rng.choice(["F", "M"], n, p=[0.65, 0.35])),
            "REGION_POPULATION_RELATIVE": rng.uniform(0.001, 0.07, n),
            "DAYS_ID_PUBLISH": -rng.integers(0, 6_000, n).astype(float),
            "TARGET": rng.binomial(1, 0.08, n),
        }
    )
    frame["prediction"] = 1 / (
        1 + np.exp(6 * frame["EXT_SOURCE_2"] + 2 * frame["EXT_SOURCE_3"] - 5.5)
    )
    path = tmp_path / "reference.parquet"
    frame.to_parquet(path, index=False)
    return path


def decision_log(path: Path, rows: pd.DataFrame, *, simulations: pd.DataFrame | None = None) -> str:
    """The gateway's `decisions` table (same columns) in SQLite, filled with ``rows``."""
    url = f"sqlite:///{path}"
    metadata = MetaData()
    table = Table(
        "decisions",
        metadata,
        Column("decision_id", String(36), primary_key=True),
        Column("created_at", DateTime(timezone=True)),
        Column("key_id", String(100)),
        Column("client_id", Float),
        Column("application_hash", String(64)),
        Column("model_version", String(64)),
        Column("probability", Float),
        Column("decision", String(16)),
        Column("threshold", Float),
        Column("simulation", Boolean),
        Column("features", JSON),
    )
    engine = create_engine(url)
    metadata.create_all(engine)
    now = datetime.now(UTC)
    records = []
    for sim, frame in ((False, rows), (True, simulations)):
        if frame is None:
            continue
        for i, row in enumerate(frame.to_dict("records")):
            numeric = {
                k: float(v)
                for k, v in row.items()
                if k not in ("SK_ID_CURR", "TARGET", "prediction") and not isinstance(v, str)
            }
            categorical = {k: v for k, v in row.items() if isinstance(v, str)}
            records.append(
                {
                    "decision_id": f"{sim}-{i}",
                    "created_at": now - timedelta(minutes=i),
                    "key_id": "test",
                    "client_id": row["SK_ID_CURR"],
                    "application_hash": None,
                    "model_version": "3",
                    "probability": float(row["prediction"]),
                    "decision": "granted" if row["prediction"] < 0.5 else "refused",
                    "threshold": 0.5,
                    "simulation": sim,
                    "features": {"numeric": numeric, "categorical": categorical},
                }
            )
    # An old decision outside the window must be ignored.
    records.append({**records[0], "decision_id": "old", "created_at": now - timedelta(days=60)})
    with engine.begin() as connection:
        connection.execute(table.insert(), records)
    engine.dispose()
    return url


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    return reference_sample(tmp_path_factory.mktemp("reference"))


def traffic(reference: Path, n: int = 600, seed: int = 11) -> pd.DataFrame:
    frame = pd.read_parquet(reference)
    for column in ("NAME_CONTRACT_TYPE", "CODE_GENDER"):
        frame[column] = frame[column].astype(str)
    return frame.sample(n, random_state=seed, replace=False).reset_index(drop=True)


def parse_prom(text: str) -> dict[str, float]:
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }


def test_in_distribution_traffic_is_not_drift(reference: Path, tmp_path: Path):
    url = decision_log(tmp_path / "decisions.db", traffic(reference))
    result = run_drift(url, reference, tmp_path / "out", columns=COLUMNS)
    assert result["n_current"] == 600
    assert result["drift_detected"] is False, result["drifted_features"]
    assert result["drift_share"] < 0.2 and not result["key_features_drifted"]
    assert Path(result["report_html"]).stat().st_size > 10_000
    metrics = parse_prom((tmp_path / "out" / "drift.prom").read_text())
    assert metrics["credit_drift_detected"] == 0
    assert 'credit_feature_drift_score{feature="AMT_INCOME_TOTAL"' in "".join(metrics)
    assert any(
        k.startswith('credit_score_quantile{quantile="0.5",sample="current"}') for k in metrics
    )


def test_shifted_traffic_is_flagged(reference: Path, tmp_path: Path):
    shifted = traffic(reference)
    shifted["AMT_INCOME_TOTAL"] *= 3
    shifted["EXT_SOURCE_2"] = (shifted["EXT_SOURCE_2"] - 0.25).clip(0, 1)
    shifted["prediction"] = 1 / (
        1 + np.exp(6 * shifted["EXT_SOURCE_2"] + 2 * shifted["EXT_SOURCE_3"] - 5.5)
    )
    # Simulations are logged but never compared: in-distribution ones must not dilute.
    url = decision_log(tmp_path / "decisions.db", shifted, simulations=traffic(reference, 300, 5))
    result = run_drift(url, reference, tmp_path / "out", columns=COLUMNS)
    assert result["n_current"] == 600
    assert result["drift_detected"] is True
    assert {"AMT_INCOME_TOTAL", "EXT_SOURCE_2"} <= set(result["drifted_features"])
    assert result["score_drifted"] is True
    assert not {"CNT_CHILDREN", "CODE_GENDER", "DAYS_BIRTH"} & set(result["drifted_features"])
    metrics = parse_prom((tmp_path / "out" / "drift.prom").read_text())
    assert metrics["credit_drift_detected"] == 1
    saved = json.loads(next((tmp_path / "out").glob("drift-*.json")).read_text())
    assert saved["drift_detected"] is True


def test_too_few_decisions_is_an_error(reference: Path, tmp_path: Path):
    url = decision_log(tmp_path / "decisions.db", traffic(reference, 10))
    with pytest.raises(ValueError, match="only 10 real decisions"):
        run_drift(url, reference, tmp_path / "out", columns=COLUMNS)


def test_training_drift_report_on_the_project_features(tmp_path: Path):
    features = REPO / "artifacts" / "features"
    if not (features / "features.parquet").is_file():
        rng = np.random.default_rng(0)
        features = tmp_path / "features"
        features.mkdir()
        n = 400
        pd.DataFrame(
            {
                "SK_ID_CURR": range(n),
                "split": ["train"] * 300 + ["test"] * 100,
                "EXT_SOURCE_2": rng.uniform(0, 1, n),
                "AMT_CREDIT": rng.lognormal(13, 0.5, n),
            }
        ).to_parquet(features / "features.parquet")
    from training.drift import training_drift_report

    result = training_drift_report(
        features,
        tmp_path / "train_vs_test.html",
        columns=["EXT_SOURCE_2", "AMT_CREDIT"],
        sample=1000,
    )
    assert (tmp_path / "train_vs_test.html").stat().st_size > 10_000
    assert set(result["features"]) == {"EXT_SOURCE_2", "AMT_CREDIT"}
    assert result["current"] == "application_test"


def test_the_reference_samples_probabilities_are_not_inputs() -> None:
    """reference.parquet's in-sample and out-of-fold probabilities are scores, not features."""
    frame = pd.DataFrame(
        columns=["SK_ID_CURR", "AMT_CREDIT", "TARGET", "prediction", "oof_prediction"]
    )
    assert model_inputs(frame) == ["AMT_CREDIT"]
