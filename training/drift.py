"""Data drift: training vs production-like population, and recent decisions vs reference.

* ``training_drift_report``: train clients vs ``application_test`` clients (the population the
  model will score) on the model inputs; training logs the HTML and the dict with the model
  version.
* ``run_drift``: the daily job. Recent real (non-simulation) decisions from the gateway's
  decision log (their ``features`` JSON) vs the version's ``reference.parquet``, inputs and
  score distribution; writes the Evidently HTML report, returns per-feature and overall
  results and publishes them as Prometheus metrics (Pushgateway, or ``drift.prom`` in the
  text format when no Pushgateway is given).

Evidently's DataDriftPreset picks the test per column (K-S / chi-squared on small samples,
Wasserstein / Jensen-Shannon on large ones). The dataset is flagged when the share of drifted
columns reaches ``drift_share`` or when one of the ``key_features`` (the strongest inputs of
the model) or the score itself drifted: a shift in two decisive inputs matters even if 200
weak ones are stable.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

KEY_FEATURES = (
    "EXT_SOURCE_1",
    "EXT_SOURCE_2",
    "EXT_SOURCE_3",
    "AMT_INCOME_TOTAL",
    "AMT_CREDIT",
    "AMT_ANNUITY",
    "AMT_GOODS_PRICE",
    "DAYS_BIRTH",
    "DAYS_EMPLOYED",
)
SCORE = "prediction"
NOT_INPUTS = {"SK_ID_CURR", "TARGET", "split", SCORE, "oof_prediction"}
QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)


def _evidently_drift(
    current: pd.DataFrame, reference: pd.DataFrame, columns: list[str], out_html: Path | None
) -> dict[str, dict[str, Any]]:
    """Per-column drift (score, method, threshold, drifted) with Evidently's preset."""
    from evidently import Dataset, Report
    from evidently.presets import DataDriftPreset

    snapshot = Report([DataDriftPreset(columns=columns)]).run(
        Dataset.from_pandas(current[columns]), Dataset.from_pandas(reference[columns])
    )
    if out_html is not None:
        out_html.parent.mkdir(parents=True, exist_ok=True)
        snapshot.save_html(str(out_html))
    results: dict[str, dict[str, Any]] = {}
    for metric in snapshot.dict()["metrics"]:
        config = metric.get("config", {})
        if not config.get("type", "").endswith("ValueDrift"):
            continue
        score, threshold, method = float(metric["value"]), config["threshold"], config["method"]
        # p-value tests drift when below the threshold, distances when above it.
        drifted = (
            score < threshold if "p_value" in method or "test" in method else score >= threshold
        )
        results[config["column"]] = {
            "score": score,
            "method": method,
            "threshold": threshold,
            "drifted": bool(drifted),
        }
    return results


def _summary(
    per_feature: dict[str, dict[str, Any]], drift_share: float, key_features: tuple[str, ...]
) -> dict[str, Any]:
    inputs = {k: v for k, v in per_feature.items() if k != SCORE}
    drifted = sorted(k for k, v in inputs.items() if v["drifted"])
    share = len(drifted) / max(len(inputs), 1)
    key_drifted = sorted(set(drifted) & set(key_features))
    score_drifted = bool(per_feature.get(SCORE, {}).get("drifted", False))
    return {
        "n_features": len(inputs),
        "drifted_features": drifted,
        "drift_share": share,
        "key_features_drifted": key_drifted,
        "score_drifted": score_drifted,
        "drift_detected": bool(share >= drift_share or key_drifted or score_drifted),
    }


def model_inputs(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if c not in NOT_INPUTS]


def training_drift_report(
    features_dir: Path,
    out_html: Path,
    *,
    columns: list[str] | None = None,
    drift_share: float = 0.5,
    sample: int = 5_000,
    seed: int = 42,
) -> dict[str, Any]:
    """Train clients vs application_test clients (features.parquet ``split``) on the model
    inputs; writes ``out_html`` and returns the summary plus per-feature results."""
    features = pd.read_parquet(Path(features_dir) / "features.parquet")
    train = features[features["split"] == "train"]
    test = features[features["split"] == "test"]
    if test.empty:
        raise ValueError("features.parquet has no test (application_test) clients")
    columns = columns or model_inputs(features)
    train = train.sample(min(sample, len(train)), random_state=seed)
    test = test.sample(min(sample, len(test)), random_state=seed)
    per_feature = _evidently_drift(test, train, columns, Path(out_html))
    summary = _summary(per_feature, drift_share, KEY_FEATURES)
    return {
        **summary,
        "reference": "train",
        "current": "application_test",
        "n_reference": len(train),
        "n_current": len(test),
        "features": per_feature,
    }


def read_decisions(database_url: str, since: datetime) -> pd.DataFrame:
    """Real (non-simulation) decisions since ``since``: one row per decision, the model
    inputs from the ``features`` JSON plus ``prediction`` (the probability)."""
    from sqlalchemy import Boolean, DateTime, bindparam, create_engine, text

    engine = create_engine(database_url)
    # Typed binds: SQLAlchemy formats the timestamp as it stored it (SQLite keeps text), so
    # no sqlite3 adapter registered by another library can change the comparison.
    query = text(
        "SELECT created_at, model_version, probability, features FROM decisions "
        "WHERE simulation = :sim AND created_at >= :since"
    ).bindparams(bindparam("sim", type_=Boolean()), bindparam("since", type_=DateTime()))
    if engine.dialect.name == "sqlite":  # stored naive, in UTC
        since = since.astimezone(UTC).replace(tzinfo=None)
    with engine.connect() as connection:
        rows = connection.execute(query, {"sim": False, "since": since}).all()
    engine.dispose()
    records = []
    for _created_at, model_version, probability, features in rows:
        features = json.loads(features) if isinstance(features, str) else (features or {})
        record: dict[str, Any] = {**features.get("numeric", {}), **features.get("categorical", {})}
        record[SCORE] = probability
        record["_model_version"] = model_version
        records.append(record)
    return pd.DataFrame.from_records(records)


def _align(current: pd.DataFrame, reference: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    out = pd.DataFrame(index=current.index)
    for column in columns:
        values = current[column] if column in current else pd.Series(np.nan, index=current.index)
        ref = reference[column]
        if isinstance(ref.dtype, pd.CategoricalDtype) or ref.dtype == object:
            out[column] = values.astype("string").astype(object)
        else:
            out[column] = pd.to_numeric(values, errors="coerce").astype(
                ref.dtype if ref.dtype.kind == "f" else "float64"
            )
    return out


def prometheus_metrics(result: dict[str, Any]) -> Any:
    """The results as a prometheus_client registry (credit_drift_*, credit_score_quantile)."""
    from prometheus_client import CollectorRegistry, Gauge

    registry = CollectorRegistry()
    Gauge(
        "credit_drift_share", "Share of model inputs whose distribution drifted.", registry=registry
    ).set(result["drift_share"])
    Gauge(
        "credit_drift_detected", "1 when the drift job flags the recent traffic.", registry=registry
    ).set(int(result["drift_detected"]))
    Gauge(
        "credit_drift_current_rows", "Decisions compared by the last drift run.", registry=registry
    ).set(result["n_current"])
    Gauge(
        "credit_drift_last_run_timestamp_seconds", "When the drift job last ran.", registry=registry
    ).set(result["timestamp"])
    feature = Gauge(
        "credit_feature_drift_score",
        "Drift score of one input (see method).",
        ["feature", "method"],
        registry=registry,
    )
    flag = Gauge(
        "credit_feature_drift_detected",
        "1 when this input drifted.",
        ["feature"],
        registry=registry,
    )
    for name, values in result["features"].items():
        feature.labels(name, values["method"]).set(values["score"])
        flag.labels(name).set(int(values["drifted"]))
    quantile = Gauge(
        "credit_score_quantile",
        "Quantiles of the default probability.",
        ["sample", "quantile"],
        registry=registry,
    )
    for sample in ("current", "reference"):
        for q, value in result["score_quantiles"][sample].items():
            quantile.labels(sample, q).set(value)
    return registry


def run_drift(
    database_url: str,
    reference_parquet: Path,
    out_dir: Path,
    *,
    since_hours: float = 24 * 7,
    pushgateway_url: str | None = None,
    columns: list[str] | None = None,
    drift_share: float = 0.5,
    key_features: tuple[str, ...] = KEY_FEATURES,
    min_rows: int = 30,
    job: str = "credit-drift",
) -> dict[str, Any]:
    """Compare recent real decisions with the reference sample; see the module docstring.

    Returns the summary (``drift_detected``, ``drift_share``, ``drifted_features``...), the
    per-feature results under ``features`` and the paths written.
    """
    from training.metrics_export import publish

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    reference = pd.read_parquet(reference_parquet)
    since = datetime.now(UTC) - timedelta(hours=since_hours)
    decisions = read_decisions(database_url, since)
    if len(decisions) < min_rows:
        raise ValueError(
            f"only {len(decisions)} real decisions since {since:%Y-%m-%d %H:%M} "
            f"(need {min_rows}): nothing to compare"
        )
    columns = [c for c in (columns or model_inputs(reference)) if c in reference.columns]
    current = _align(decisions, reference, [*columns, SCORE])
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    html = out_dir / f"drift-{stamp}.html"
    per_feature = _evidently_drift(current, reference, [*columns, SCORE], html)
    summary = _summary(per_feature, drift_share, key_features)
    result: dict[str, Any] = {
        **summary,
        "timestamp": time.time(),
        "since": since.isoformat(),
        "n_current": len(current),
        "n_reference": len(reference),
        "model_versions": sorted(decisions["_model_version"].astype(str).unique().tolist()),
        "score_quantiles": {
            "current": {str(q): float(current[SCORE].quantile(q)) for q in QUANTILES},
            "reference": {str(q): float(reference[SCORE].quantile(q)) for q in QUANTILES},
        },
        "features": per_feature,
        "report_html": str(html),
    }
    result.update(
        publish(
            prometheus_metrics(result),
            job=job,
            pushgateway_url=pushgateway_url,
            textfile=out_dir / "drift.prom",
        )
    )
    (out_dir / f"drift-{stamp}.json").write_text(json.dumps(result, indent=2, default=str))
    return result
