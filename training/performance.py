"""Realised performance: what the decisions' outcomes say about each model version.

``run_performance`` joins the decision log (its table and its Parquet archive) with the
recorded outcomes and computes, per model version and per decision-month cohort (UTC month
of ``created_at``) and over all months: decisions, approval rate, outcomes known, realised
default rate among granted clients against the mean predicted probability (their ratio is
the calibration ratio), realised ROC AUC and Brier score when both classes are present,
calibration by probability band, and the PSI of the scores against the version's training
reference sample. Simulations (what-ifs) are not decisions and are left out.

Selection bias: outcomes exist only for granted loans (a refused client took no loan), so
every realised figure is about granted clients. Their AUC is lower than the model card's by
construction (the riskiest clients are cut off), so it is compared with the model card's
out-of-fold AUC restricted to the same band (probability below the threshold, training's
``oof_auc_granted``): ``reference_auc``. The realised AUC carries a bootstrap 95% interval
(``auc_ci95``): a few hundred outcomes hold a few dozen defaults at most. Outcomes reported
for refused decisions (a simulation with ``--include-refused``) are counted apart and never
mixed into the figures; decisions of the gateway's exploration share (would-be refusals
granted at random, ``decision_explorations``) are reported apart too (``exploration``).

Writes ``report.json``, ``report.html`` (the tables, plus Evidently's classification preset
per model version in ``evidently-v<version>.html``) and publishes the figures as Prometheus
metrics like the drift job: to a Pushgateway, else ``performance.prom`` (text format).
"""

from __future__ import annotations

import html
import itertools
import json
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

BANDS = (0.0, 0.02, 0.04, 0.06, 0.08, 0.10, 0.15, 0.20, 0.30, 0.50, 1.0)
PSI_BINS = 10
PSI_FLOOR = 1e-4  # an empty bin would make the PSI infinite
BOOTSTRAP = 1000  # resamples of the realised AUC's 95% interval
# Decisions granted by the exploration share (see services/gateway/decisions.py).
EXPLORATION_TABLE = "decision_explorations"
LOG_COLUMNS = [
    "decision_id",
    "created_at",
    "model_version",
    "probability",
    "decision",
    "threshold",
    "simulation",
]
SELECTION_BIAS = (
    "Outcomes exist only for granted loans: a refused client took no loan, so nobody knows "
    "whether they would have repaid. Every realised figure here (default rate, AUC, Brier, "
    "calibration) is computed on the policy's grants with a known outcome. Their AUC is lower "
    "than the model card's population AUC by construction (the riskiest clients are cut off), "
    "so it is compared with the model card's out-of-fold AUC of the same band, the clients "
    "below the threshold (reference_auc). The refusal side is watched through the approval "
    "rate and the score PSI and, when the gateway's exploration share is on "
    "(EXPLORATION_SHARE, off by default), through a small random share of would-be refusals "
    "granted and flagged 'exploration': their figures are shown apart, and with them an "
    "inverse-probability-weighted AUC over every applicant (auc_unbiased)."
)


def read_log(database_url: str, archive_dir: Path | None = None) -> pd.DataFrame:
    """Every real decision (table and archive; no feature vectors) with its outcome
    (``defaulted`` NaN when unknown, ``outcome_source``). Counts what-ifs in ``attrs``."""
    from sqlalchemy import String, column, create_engine, inspect, select, table

    from services.gateway.decisions import DecisionRow, OutcomeRow, as_utc

    engine = create_engine(database_url)
    try:
        tables = set(inspect(engine).get_table_names())
        if "decisions" not in tables:
            raise ValueError(f"no decision log at {engine.url.render_as_string()}")
        columns = [getattr(DecisionRow, c) for c in LOG_COLUMNS]
        with engine.connect() as connection:
            rows = connection.execute(select(*columns)).all()
            outcomes = (
                connection.execute(
                    select(OutcomeRow.decision_id, OutcomeRow.defaulted, OutcomeRow.source)
                ).all()
                if "outcomes" in tables
                else []
            )
            explored: set[str] = set()
            if EXPLORATION_TABLE in tables:
                ids = column("decision_id", String)
                query = select(ids).select_from(table(EXPLORATION_TABLE, ids))
                explored = set(connection.execute(query).scalars())
    finally:
        engine.dispose()
    frame = pd.DataFrame(rows, columns=LOG_COLUMNS)
    frame["created_at"] = pd.to_datetime([as_utc(t) for t in frame["created_at"]], utc=True)
    if archive_dir is not None and Path(archive_dir).is_dir():
        files = sorted(Path(archive_dir).glob("decisions_*.parquet"))
        if files:
            archived = pd.concat([pd.read_parquet(f, columns=LOG_COLUMNS) for f in files])
            archived["created_at"] = pd.to_datetime(archived["created_at"], utc=True)
            frame = pd.concat([frame, archived], ignore_index=True)
    # A decision can sit in the table and an archive file at once (see archive.py).
    frame = frame.drop_duplicates("decision_id")
    frame["exploration"] = frame["decision_id"].isin(explored)
    simulations = int(frame["simulation"].astype(bool).sum())
    frame = frame[~frame["simulation"].astype(bool)].drop(columns="simulation")
    labels = pd.DataFrame(outcomes, columns=["decision_id", "defaulted", "outcome_source"])
    frame = frame.merge(labels, on="decision_id", how="left")
    frame["model_version"] = frame["model_version"].astype(str)
    frame["cohort"] = frame["created_at"].dt.strftime("%Y-%m")
    frame.attrs["simulations_excluded"] = simulations
    return frame.reset_index(drop=True)


def psi(current: np.ndarray, reference: np.ndarray, bins: int = PSI_BINS) -> float | None:
    """Population stability index of ``current`` scores against ``reference`` ones, on the
    reference's deciles (the usual reading: < 0.1 stable, 0.1-0.25 moderate, > 0.25 shift)."""
    if len(current) == 0 or len(reference) == 0:
        return None
    edges = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)))
    if len(edges) < 3:
        return None
    edges[0], edges[-1] = -np.inf, np.inf
    expected = np.histogram(reference, edges)[0] / len(reference)
    actual = np.histogram(current, edges)[0] / len(current)
    expected, actual = np.maximum(expected, PSI_FLOOR), np.maximum(actual, PSI_FLOOR)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def _auc_brier(y: np.ndarray, p: np.ndarray) -> tuple[float | None, float | None]:
    from sklearn.metrics import brier_score_loss, roc_auc_score

    if len(y) == 0 or y.min() == y.max():  # one class only: AUC undefined, Brier misleading
        return None, None
    return float(roc_auc_score(y, p)), float(brier_score_loss(y, p))


def granted_band_auc(y: np.ndarray, p: np.ndarray, threshold: float) -> float | None:
    """ROC AUC of the clients ``threshold`` grants (``p < threshold``): with out-of-fold
    predictions, the model card's figure that a realised AUC (granted loans only) compares
    with."""
    y, p = np.asarray(y, dtype=float), np.asarray(p, dtype=float)
    band = p < threshold
    return _auc_brier(y[band], p[band])[0]


def calibration_bands(y: np.ndarray, p: np.ndarray) -> list[dict[str, Any]]:
    """Per probability band: outcomes, mean predicted and observed default rate."""
    bands = []
    index = np.digitize(p, BANDS[1:-1], right=False)
    for band, (low, high) in enumerate(itertools.pairwise(BANDS)):
        mask = index == band
        n = int(mask.sum())
        if n == 0:
            continue
        bands.append(
            {
                "band": f"{low:.2f}-{high:.2f}",
                "low": low,
                "high": high,
                "outcomes": n,
                "predicted": float(p[mask].mean()),
                "observed": float(y[mask].mean()),
            }
        )
    return bands


def auc_interval(
    y: np.ndarray, p: np.ndarray, n_boot: int = BOOTSTRAP, seed: int = 0
) -> list[float] | None:
    """Bootstrap 95% interval of the ROC AUC (clients resampled with replacement; resamples
    with one class only are skipped). None when the AUC itself is undefined."""
    from scipy.stats import rankdata

    y, p = np.asarray(y, dtype=float), np.asarray(p, dtype=float)
    if len(y) == 0 or y.min() == y.max():
        return None
    rng = np.random.default_rng(seed)
    index = rng.integers(0, len(y), (n_boot, len(y)))
    aucs = []
    for rows in index:
        yb, pb = y[rows], p[rows]
        positives = yb.sum()
        negatives = len(yb) - positives
        if positives == 0 or negatives == 0:
            continue
        ranks = rankdata(pb)  # ties share their mean rank, as roc_auc_score counts them
        aucs.append(
            (ranks[yb == 1].sum() - positives * (positives + 1) / 2) / (positives * negatives)
        )
    if len(aucs) < n_boot // 2:
        return None
    low, high = np.quantile(aucs, [0.025, 0.975])
    return [float(low), float(high)]


def exploration_figures(frame: pd.DataFrame) -> dict[str, Any] | None:
    """The exploration slice (would-be refusals granted at random, ``EXPLORATION_SHARE``):
    outcomes above the threshold, which the policy's own grants never give. With them,
    ``auc_unbiased`` estimates the AUC over every applicant (the model card's ``oof_auc``):
    policy grants and explorations weighted by the inverse of their chance of being granted
    (1, and refusals / explorations)."""
    explored = frame[frame["exploration"]]
    if explored.empty:
        return None
    refused = int((frame["decision"] == "refused").sum())
    share = len(explored) / (len(explored) + refused)
    labelled = explored[explored["defaulted"].notna()]
    y = labelled["defaulted"].astype(float).to_numpy()
    p = labelled["probability"].to_numpy(dtype=float)
    realised = float(y.mean()) if len(y) else None
    predicted = float(p.mean()) if len(p) else None
    policy = frame[(frame["decision"] == "granted") & ~frame["exploration"]]
    policy = policy[policy["defaulted"].notna()]
    both_y = np.concatenate([policy["defaulted"].astype(float).to_numpy(), y])
    both_p = np.concatenate([policy["probability"].to_numpy(dtype=float), p])
    weights = np.concatenate([np.ones(len(policy)), np.full(len(y), 1 / share)])
    auc_unbiased = None
    if len(y) and both_y.min() != both_y.max():
        from sklearn.metrics import roc_auc_score

        auc_unbiased = float(roc_auc_score(both_y, both_p, sample_weight=weights))
    return {
        "decisions": len(explored),
        "share_of_refusals": share,
        "outcomes_known": len(labelled),
        "defaults": int(y.sum()),
        "realised_default_rate": realised,
        "predicted_default_rate": predicted,
        "calibration_ratio": realised / predicted if realised is not None and predicted else None,
        "auc": _auc_brier(y, p)[0],
        "auc_unbiased": auc_unbiased,
    }


def figures(frame: pd.DataFrame, reference_scores: np.ndarray | None) -> dict[str, Any]:
    """The figures of one group of decisions (a version's cohort, or all its months).
    Realised figures are on the policy's grants (explorations apart: they lie above the
    threshold, outside the band the reference describes)."""
    if "exploration" not in frame:
        frame = frame.assign(exploration=False)
    granted = frame[frame["decision"] == "granted"]
    policy = granted[~granted["exploration"]]
    labelled = policy[policy["defaulted"].notna()]
    y = labelled["defaulted"].astype(float).to_numpy()
    p = labelled["probability"].to_numpy(dtype=float)
    auc, brier = _auc_brier(y, p)
    realised = float(y.mean()) if len(y) else None
    predicted = float(p.mean()) if len(p) else None
    refused_outcomes = int(frame[frame["decision"] != "granted"]["defaulted"].notna().sum())
    auc_all = None
    if refused_outcomes:  # only a simulation labels the refused
        everyone = frame[frame["defaulted"].notna()]
        auc_all, _ = _auc_brier(
            everyone["defaulted"].astype(float).to_numpy(),
            everyone["probability"].to_numpy(dtype=float),
        )
    by_source = {}
    for source, group in labelled.groupby("outcome_source"):
        ys = group["defaulted"].astype(float).to_numpy()
        by_source[str(source)] = {
            "outcomes": len(group),
            "defaults": int(ys.sum()),
            "auc": _auc_brier(ys, group["probability"].to_numpy(dtype=float))[0],
        }
    return {
        "decisions": len(frame),
        "granted": len(granted),
        "approval_rate": len(granted) / len(frame) if len(frame) else None,
        "outcomes_known": len(labelled),
        "outcomes_share": len(labelled) / len(policy) if len(policy) else None,
        "defaults": int(y.sum()),
        "expected_defaults": float(p.sum()),
        "realised_default_rate": realised,
        "predicted_default_rate": predicted,
        "calibration_ratio": realised / predicted if realised is not None and predicted else None,
        "auc": auc,
        "auc_ci95": auc_interval(y, p),
        "brier": brier,
        "calibration": calibration_bands(y, p),
        "psi": None
        if reference_scores is None
        else psi(frame["probability"].to_numpy(dtype=float), reference_scores),
        "outcomes_on_refused": refused_outcomes,
        # Granted and refused together: comparable with the model card's AUC, but only ever
        # known in a simulation; never part of the realised figures above.
        "auc_all_outcomes": auc_all,
        "outcome_sources": {source: v["outcomes"] for source, v in by_source.items()},
        # Per source: "simulated" (held-out truth: out of sample) and "simulated-train"
        # (training clients: in sample, optimistic) must not be read as one figure.
        "by_source": by_source,
        "exploration": exploration_figures(frame),
    }


class VersionInfo:
    """What training recorded about a model version: its metrics (``metrics.json``: the model
    card's ``auc_mean``, ``oof_auc`` and ``oof_auc_granted``) and its reference sample
    (``artifacts/`` for the latest training, else the version's MLflow run)."""

    def __init__(
        self, artifacts_dir: Path | None, tracking_uri: str | None, model_name: str
    ) -> None:
        self.artifacts_dir, self.tracking_uri, self.model_name = (
            artifacts_dir,
            tracking_uri,
            model_name,
        )

    def _local(self, version: str) -> tuple[dict[str, Any], pd.DataFrame | None] | None:
        if self.artifacts_dir is None:
            return None
        metrics_file = self.artifacts_dir / "metrics.json"
        reference = self.artifacts_dir / "reference.parquet"
        if not metrics_file.is_file() or not reference.is_file():
            return None
        metrics = json.loads(metrics_file.read_text())
        if str(metrics.get("model_version")) != version:
            return None
        return metrics, pd.read_parquet(reference, columns=["TARGET", "prediction"])

    def _mlflow(self, version: str) -> tuple[dict[str, Any], pd.DataFrame | None] | None:
        if not self.tracking_uri:
            return None
        try:
            from mlflow import MlflowClient

            client = MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)
            found = client.get_model_version(self.model_name, version)
            auc = found.tags.get("auc_mean")
            path = client.download_artifacts(str(found.run_id), "reports/reference.parquet")
            reference = pd.read_parquet(path, columns=["TARGET", "prediction"])
        except Exception:  # an unknown version or an unreachable registry: no reference
            return None
        metrics: dict[str, Any] = {"auc_mean": float(auc) if auc else None}
        try:
            card = client.download_artifacts(str(found.run_id), "reports/metrics.json")
            metrics = {**json.loads(Path(card).read_text()), **metrics}
        except Exception:  # a run of a version older than the metrics artifact
            pass
        return metrics, reference

    def get(self, version: str) -> tuple[dict[str, Any], pd.DataFrame | None]:
        return self._local(version) or self._mlflow(version) or ({}, None)


def version_report(
    frame: pd.DataFrame, metrics: dict[str, Any], reference: pd.DataFrame | None
) -> dict[str, Any]:
    """One version's figures and what its realised AUC compares with (``reference_auc``):
    the model card's out-of-fold AUC of the granted band (``oof_auc_granted``), else the
    reference sample's on that band (in-sample predictions of the served model: optimistic),
    else nothing."""
    scores = None if reference is None else reference["prediction"].to_numpy(dtype=float)
    sample_auc = None
    if reference is not None and len(frame):
        # The same band as the realised figures: reference clients this version would grant.
        threshold = float(frame["threshold"].median())
        sample_auc = granted_band_auc(
            reference["TARGET"].to_numpy(dtype=float),
            reference["prediction"].to_numpy(dtype=float),
            threshold,
        )
    card_granted = metrics.get("oof_auc_granted")
    if card_granted is not None:
        reference_auc, source = float(card_granted), "model card: out-of-fold, granted band"
    elif sample_auc is not None:
        reference_auc, source = sample_auc, "reference sample: in-sample, granted band"
    else:
        reference_auc, source = None, None
    return {
        "training_auc": metrics.get("auc_mean"),
        "training_oof_auc": metrics.get("oof_auc"),
        "reference_auc": reference_auc,
        "reference_auc_source": source,
        "reference_sample_auc": sample_auc,
        "reference_rows": None if reference is None else len(reference),
        "overall": figures(frame, scores),
        "cohorts": {
            cohort: figures(group, scores)
            for cohort, group in sorted(frame.groupby("cohort"), key=lambda item: str(item[0]))
        },
    }


def build_report(frame: pd.DataFrame, info: VersionInfo) -> dict[str, Any]:
    versions = {}
    for version in sorted(frame["model_version"].unique(), key=_version_key):
        metrics, reference = info.get(version)
        versions[version] = version_report(
            frame[frame["model_version"] == version], metrics, reference
        )
    return {
        "generated_at": datetime.now(UTC).isoformat(),
        "timestamp": time.time(),
        "selection_bias": SELECTION_BIAS,
        "decisions": len(frame),
        "simulations_excluded": frame.attrs.get("simulations_excluded", 0),
        "model_versions": versions,
    }


def _version_key(version: str) -> tuple[int, str]:
    return (int(version), "") if version.isdigit() else (1 << 62, version)


FIGURES = {
    "decisions": "Real decisions (simulations excluded).",
    "approval_rate": "Share of decisions granted.",
    "outcomes_known": "Granted decisions with a known outcome.",
    "defaults": "Granted decisions whose client defaulted.",
    "expected_defaults": "Sum of the predicted probabilities of the outcomes known.",
    "realised_default_rate": "Default rate of granted clients with a known outcome.",
    "predicted_default_rate": "Mean predicted probability of those same clients.",
    "calibration_ratio": "Realised over predicted default rate (1 = calibrated).",
    "auc": "Realised ROC AUC on granted clients with a known outcome.",
    "brier": "Realised Brier score on granted clients with a known outcome.",
    "psi": "Population stability index of the scores vs the training reference sample.",
}


def prometheus_metrics(report: dict[str, Any]) -> Any:
    """credit_performance_* gauges by model_version and cohort ("all": every month)."""
    from prometheus_client import CollectorRegistry, Gauge

    registry = CollectorRegistry()
    gauges = {
        name: Gauge(
            f"credit_performance_{name}", doc, ["model_version", "cohort"], registry=registry
        )
        for name, doc in FIGURES.items()
    }
    training = Gauge(
        "credit_performance_training_auc",
        "The model card's ROC AUC (CV).",
        ["model_version"],
        registry=registry,
    )
    reference = Gauge(
        "credit_performance_reference_auc",
        "The model card's out-of-fold ROC AUC on the granted band (what the realised AUC "
        "should be).",
        ["model_version"],
        registry=registry,
    )
    # The realised AUC's bootstrap interval: an alert can wait until even its upper end is
    # below the reference, rather than fire on the noise of a few dozen defaults.
    interval = Gauge(
        "credit_performance_auc_ci95",
        "Bounds of the realised ROC AUC's bootstrap 95% interval.",
        ["model_version", "cohort", "bound"],
        registry=registry,
    )
    Gauge(
        "credit_performance_last_run_timestamp_seconds",
        "When the report last ran.",
        registry=registry,
    ).set(report["timestamp"])
    for version, result in report["model_versions"].items():
        if result["training_auc"] is not None:
            training.labels(version).set(result["training_auc"])
        if result["reference_auc"] is not None:
            reference.labels(version).set(result["reference_auc"])
        for cohort, values in [("all", result["overall"]), *result["cohorts"].items()]:
            for name, gauge in gauges.items():
                if values[name] is not None:  # no sample rather than a made-up value
                    gauge.labels(version, cohort).set(values[name])
            if values["auc_ci95"] is not None:
                low, high = values["auc_ci95"]
                interval.labels(version, cohort, "low").set(low)
                interval.labels(version, cohort, "high").set(high)
    return registry


def _evidently_html(frame: pd.DataFrame, out_html: Path) -> bool:
    """Evidently's classification preset on granted decisions with a known outcome."""
    from evidently import BinaryClassification, DataDefinition, Dataset, Report
    from evidently.presets import ClassificationPreset

    labelled = frame[(frame["decision"] == "granted") & frame["defaulted"].notna()]
    if labelled.empty or labelled["defaulted"].nunique() < 2:
        return False
    data = pd.DataFrame(
        {
            "target": labelled["defaulted"].astype(int).to_numpy(),
            "prediction": labelled["probability"].to_numpy(dtype=float),
        }
    )
    definition = DataDefinition(
        numerical_columns=["prediction"],
        classification=[BinaryClassification(target="target", prediction_probas="prediction")],
    )
    threshold = float(frame["threshold"].median())
    with warnings.catch_warnings():
        # Granted clients are all below the threshold: no predicted default, and sklearn
        # warns that precision is undefined; the AUC, log loss and curves are what count.
        warnings.simplefilter("ignore")
        snapshot = Report([ClassificationPreset(probas_threshold=threshold)]).run(
            Dataset.from_pandas(data, data_definition=definition)
        )
    snapshot.save_html(str(out_html))
    return True


def _cell(value: Any, percent: bool = False) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.2%}" if percent else f"{value:.4f}"
    return html.escape(str(value))


def _ci(bounds: list[float] | None) -> str:
    return "" if bounds is None else f" [{bounds[0]:.3f}, {bounds[1]:.3f}]"


def render_html(report: dict[str, Any], evidently: dict[str, str]) -> str:
    head = (
        "cohort",
        "decisions",
        "approval",
        "outcomes",
        "defaults",
        "realised DR",
        "predicted DR",
        "ratio",
        "AUC",
        "Brier",
        "PSI",
    )
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>Realised performance</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}</style></head><body>",
        "<h1>Realised performance</h1>",
        f"<p>Generated {html.escape(report['generated_at'])}: {report['decisions']:,} real "
        f"decisions; {report['simulations_excluded']:,} simulations (what-ifs) excluded.</p>",
        f"<p><strong>Selection bias.</strong> {html.escape(report['selection_bias'])}</p>",
    ]
    for version, result in report["model_versions"].items():
        parts.append(
            f"<h2>Model version {html.escape(version)}</h2><p>Model card AUC "
            f"{_cell(result['training_auc'])}; reference AUC on the granted band "
            f"{_cell(result['reference_auc'])} "
            f"({html.escape(result['reference_auc_source'] or 'unknown')})."
        )
        if version in evidently:
            parts.append(
                f" <a href='{html.escape(evidently[version])}'>Evidently classification report</a>"
            )
        parts.append("</p><table><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>")
        for cohort, v in [*result["cohorts"].items(), ("all", result["overall"])]:
            cells = [
                html.escape(cohort),
                f"{v['decisions']:,}",
                _cell(v["approval_rate"], True),
                f"{v['outcomes_known']:,}",
                f"{v['defaults']:,}",
                _cell(v["realised_default_rate"], True),
                _cell(v["predicted_default_rate"], True),
                _cell(v["calibration_ratio"]),
                _cell(v["auc"]) + _ci(v["auc_ci95"]),
                _cell(v["brier"]),
                _cell(v["psi"]),
            ]
            parts.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
        parts.append("</table>")
        overall = result["overall"]
        if len(overall["by_source"]) > 1:
            parts.append(
                "<p>By outcome source: "
                + "; ".join(
                    f"{html.escape(k)} {v['outcomes']:,} outcomes, {v['defaults']:,} defaults, "
                    f"AUC {_cell(v['auc'])}"
                    for k, v in overall["by_source"].items()
                )
                + " (simulated-train: training clients, in sample, optimistic).</p>"
            )
        explored = overall["exploration"]
        if explored is not None:
            parts.append(
                f"<p><strong>Exploration</strong> (would-be refusals granted at random, "
                f"{_cell(explored['share_of_refusals'], True)} of them; not in the figures "
                f"above): {explored['decisions']:,} decisions, {explored['outcomes_known']:,} "
                f"outcomes, {explored['defaults']:,} defaults, realised default rate "
                f"{_cell(explored['realised_default_rate'], True)} vs predicted "
                f"{_cell(explored['predicted_default_rate'], True)}, AUC in the slice "
                f"{_cell(explored['auc'])}; AUC over every applicant (inverse-probability "
                f"weighted) {_cell(explored['auc_unbiased'])} vs the model card's out-of-fold "
                f"{_cell(result['training_oof_auc'])}.</p>"
            )
        if overall["auc_all_outcomes"] is not None:
            parts.append(
                f"<p>{overall['outcomes_on_refused']:,} outcomes of refused decisions (only a "
                "simulation has them) are left out of the figures above; with them, the AUC "
                f"over every labelled decision is {_cell(overall['auc_all_outcomes'])} "
                "(comparable with the model card's).</p>"
            )
        parts.append(
            "<h3>Calibration by probability band (all months)</h3><table>"
            "<tr><th>band</th><th>outcomes</th><th>predicted</th><th>observed</th></tr>"
        )
        for band in result["overall"]["calibration"]:
            parts.append(
                f"<tr><td>{band['band']}</td><td>{band['outcomes']:,}</td>"
                f"<td>{band['predicted']:.2%}</td><td>{band['observed']:.2%}</td></tr>"
            )
        parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts)


def run_performance(
    database_url: str,
    out_dir: Path,
    *,
    archive_dir: Path | None = None,
    artifacts_dir: Path | None = Path("artifacts"),
    tracking_uri: str | None = None,
    model_name: str = "credit-default",
    pushgateway_url: str | None = None,
    job: str = "credit-performance",
) -> dict[str, Any]:
    """See the module docstring; returns the report with the paths written."""
    from training.metrics_export import publish

    frame = read_log(database_url, archive_dir)
    if frame.empty:
        raise ValueError("the decision log holds no real decision: nothing to report")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    report = build_report(frame, VersionInfo(artifacts_dir, tracking_uri, model_name))
    evidently = {}
    for version in report["model_versions"]:
        name = f"evidently-v{version}.html"
        if _evidently_html(frame[frame["model_version"] == version], out_dir / name):
            evidently[version] = name
    (out_dir / "report.html").write_text(render_html(report, evidently))
    report["report_html"] = str(out_dir / "report.html")
    report["report_json"] = str(out_dir / "report.json")
    report.update(
        publish(
            prometheus_metrics(report),
            job=job,
            pushgateway_url=pushgateway_url,
            textfile=out_dir / "performance.prom",
        )
    )
    (out_dir / "report.json").write_text(json.dumps(report, indent=2, default=str))
    return report
