"""Train, evaluate, register: features -> ScoringModel bundle + reports + MLflow model version.

Only ``split == "train"`` rows (Kaggle's application_train) are used to fit or evaluate
anything; application_test rows have no TARGET and are never touched here.

Steps: stratified k-fold LightGBM (class weighting vs none compared on the same folds),
calibration on out-of-fold predictions, cost-minimising threshold, baselines, fairness,
importance, then artefacts in ``artifacts_dir`` and one MLflow run that logs them all and
registers the bundle (pyfunc model predicting calibrated probabilities) under ``model_name``.

Promotion rule: the new version gets the ``champion`` alias when the model has no champion
yet or when its cross-validated ``auc_mean`` is >= the champion run's ``auc_mean``
(ties promote, so re-training on the same data refreshes the served model), or when the
champion was trained on other data (the ``data_source`` run tag differs: AUCs measured on
different data sets do not compare, and the newest data wins). Otherwise it stays
registered without alias. ``metrics.json`` records ``promoted`` and why.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import mlflow
import numpy as np
import pandas as pd
import structlog
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from sklearn.calibration import calibration_curve

from credit.settings import DEFAULT_TRACKING_URI
from serving_core.bundle import ScoringModel, ScoringPyfunc
from serving_core.frame import model_columns, model_matrix
from training import modeling, tuning
from training.drift import training_drift_report
from training.performance import granted_band_auc

log = structlog.get_logger(__name__)

FEATURES_FILE = "features.parquet"
SCHEMA_FILE = "feature_schema.json"
EXPERIMENT = "credit-scoring"
CHAMPION = "champion"
DATA_SOURCE_TAG = "data_source"
# How auc_mean was measured; runs measured differently do not compare (see _champion_auc).
EVALUATION_TAG = "evaluation"
EVALUATION = "inner-split-early-stopping-v1"
# What a run logs under reports/ (not the whole artifacts folder: features live there too).
REPORT_FILES = (
    "metrics.json",
    "model_card.md",
    "cost_curve.png",
    "reliability.png",
    "importance.png",
    "importance.csv",
    "population_stats.json",
    "reference.parquet",
    "drift_train_vs_test.html",
    "drift_train_vs_test.json",
)
REFERENCE_ROWS = 5000
REQUIRED_METRICS = (
    "auc_mean",
    "auc_std",
    "pr_auc",
    "brier",
    "ece",
    "threshold",
    "business_cost",
    "baselines",
    "n_features",
    "n_train",
    "model_version",
    "fairness",
    "imbalance",
    "calibration_method",
    "approval_rate",
    "promoted",
    "evaluation",
    "oof_auc",
    "auc_mean_ci95",
    "oof_auc_ci95",
    "business_cost_ci95",
    "optimistic",
    "cost_baselines",
    "fairness_differences",
)


# A challenger whose demographic-parity or equalised-odds difference (per attribute) exceeds
# the champion's by more than this is not promoted, however good its AUC.
FAIRNESS_MARGIN = 0.05
# Carried in the served bundle (GetModel / `/v1/model`): the headline figures and the cost
# weights the threshold was chosen with.
BUNDLE_METRICS = (
    "auc_mean",
    "auc_std",
    "oof_auc",
    "pr_auc",
    "brier",
    "ece",
    "threshold",
    "business_cost",
    "business_cost_per_client",
    "approval_rate",
    "cost_fn",
    "cost_fp",
    "n_train",
)


# --- MLflow helpers ----------------------------------------------------------------------


def resolve_tracking_uri(tracking_uri: str | None) -> str:
    return tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def _artifact_location(tracking_uri: str) -> str | None:
    """Artefacts next to a local SQLite store (``<db dir>/artifacts``), never in the CWD."""
    prefix = "sqlite:///"
    if not tracking_uri.startswith(prefix):
        return None
    db = Path(tracking_uri[len(prefix) :]).resolve()
    db.parent.mkdir(parents=True, exist_ok=True)
    return (db.parent / "artifacts").as_uri()


def _experiment_id(client: MlflowClient, tracking_uri: str) -> str:
    existing = client.get_experiment_by_name(EXPERIMENT)
    if existing is not None:
        return existing.experiment_id
    return client.create_experiment(EXPERIMENT, artifact_location=_artifact_location(tracking_uri))


def _next_version(client: MlflowClient, name: str) -> str:
    # The bundle must carry its registry version before it is logged (logged artefacts are
    # immutable); a local single-writer store makes "max + 1" reliable, and it is checked.
    versions = client.search_model_versions(f"name='{name}'")
    return str(max((int(v.version) for v in versions), default=0) + 1)


def _champion_metrics(
    client: MlflowClient, name: str, data_source: str
) -> tuple[str | None, dict[str, float] | None]:
    """The champion's version and its run's metrics; the metrics are None (anything beats
    it) when it was trained on other data or evaluated another way: figures measured on
    different data sets, or differently, do not compare."""
    try:
        champion = client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None, None
    if champion.run_id is None:  # registered without a run: nothing to compare with
        return str(champion.version), None
    run = client.get_run(champion.run_id)
    if run.data.tags.get(DATA_SOURCE_TAG, "") != data_source:
        return str(champion.version), None
    if run.data.tags.get(EVALUATION_TAG, "") != EVALUATION:
        return str(champion.version), None
    return str(champion.version), dict(run.data.metrics)


def _fairness_regressions(
    new: dict[str, float], champion: dict[str, float], margin: float
) -> list[str]:
    """The group differences where the new model is worse than the champion by > margin."""
    return [
        f"{key} {new[key]:.3f} > champion {champion[key]:.3f} + {margin:g}"
        for key in sorted(new)
        if key in champion and new[key] > champion[key] + margin
    ]


# --- reports -----------------------------------------------------------------------------


def population_stats(
    frame: pd.DataFrame, y: np.ndarray, schema: dict[str, Any], bins: int = 20
) -> dict[str, Any]:
    """Per-feature distribution by outcome, so a dashboard can place a client without rows."""
    stats: dict[str, Any] = {"n": len(y), "default_rate": float(np.mean(y)), "features": {}}
    quantiles = [0.0, 0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 1.0]
    for spec in schema["features"]:
        name = spec["name"]
        values = frame[name]
        entry: dict[str, Any] = {
            "dtype": spec["dtype"],
            "missing_rate": float(values.isna().mean()),
        }
        if spec["dtype"] == "category":
            labels = values.astype(object).where(values.notna(), "__missing__")
            table = pd.crosstab(labels, y)
            entry["counts"] = {
                str(outcome): {str(k): int(v) for k, v in table[outcome].items()}
                for outcome in table.columns
            }
        else:
            numeric = values.to_numpy(dtype=np.float64)
            finite = np.isfinite(numeric)
            if finite.any():
                entry["quantiles"] = dict(
                    zip(
                        [str(q) for q in quantiles],
                        np.quantile(numeric[finite], quantiles).tolist(),
                        strict=True,
                    )
                )
                # Bins span the 1-99 % range so a few outliers don't squash the histogram.
                lo, hi = np.quantile(numeric[finite], [0.01, 0.99])
                edges = np.linspace(lo, hi if hi > lo else lo + 1.0, bins + 1)
                entry["bin_edges"] = edges.tolist()
                entry["histogram"] = {
                    str(outcome): np.histogram(
                        np.clip(numeric[finite & (y == outcome)], edges[0], edges[-1]), edges
                    )[0].tolist()
                    for outcome in (0, 1)
                }
        stats["features"][name] = entry
    return stats


def _plot_cost_curve(result: modeling.ThresholdResult, n: int, path: Path) -> None:
    finite = np.isfinite(result.thresholds)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(result.thresholds[finite], result.costs[finite] / n)
    ax.axvline(result.threshold, color="red", linestyle="--", label=f"t = {result.threshold:.3f}")
    right = min(1.0, 1.1 * float(result.thresholds[finite].max()))
    ax.set(xlabel="threshold (calibrated P(default))", ylabel="cost per client", xlim=(0, right))
    ax.set_title("Business cost vs threshold")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _plot_reliability(y: np.ndarray, p_raw: np.ndarray, p_cal: np.ndarray, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(5, 5))
    top = float(max(p_raw.max(), p_cal.max()))
    ax.plot([0, top], [0, top], color="grey", linestyle=":", label="perfect")
    for label, p in (("raw OOF", p_raw), ("calibrated", p_cal)):
        observed, predicted = calibration_curve(y, p, n_bins=10, strategy="quantile")
        ax.plot(predicted, observed, marker="o", label=label)
    ax.set(xlabel="mean predicted", ylabel="observed default rate")
    ax.set_title("Reliability (10 equal-frequency bins)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _plot_importance(table: pd.DataFrame, path: Path, top: int = 20) -> None:
    head = table.head(top).iloc[::-1]
    fig, ax = plt.subplots(figsize=(7, 0.3 * len(head) + 1.2))
    ax.barh(head["feature"], head["mean_abs_shap"])
    ax.set(xlabel="mean |SHAP| (log-odds)")
    ax.set_title(f"Top {len(head)} features")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _interval(bounds: list[float], decimals: int = 4) -> str:
    return f"[{bounds[0]:.{decimals}f}, {bounds[1]:.{decimals}f}]"


def _tuning_lines(record: dict[str, Any] | None) -> list[str]:
    """The model card's account of a nested search / selection (``--tune``, ``--select``)."""
    if not record:
        return []
    done = ["the tree count"]
    if record["trials"] > 1:
        done.append(f"a search of {record['trials']} settings (Optuna TPE, current ones first)")
    if record["select"]:
        done.append(f"inputs under {record['min_gain_share']:.1%} of the gain dropped")
    final = record["final"]
    tuned = ", ".join(f"{k} {v:.3g}" for k, v in final["tuned"].items())
    return [
        "- Nested choice of " + ", ".join(done) + f", each on {record['inner_folds']} inner "
        "folds of the outer fold's training part (the outer fold only scores; per-fold "
        "choices in metrics.json -> tuning). Served model, chosen the same way on all rows: "
        f"{final['n_features']} inputs" + (f", {tuned}" if tuned else "") + f", "
        f"{final['rounds']} trees.",
    ]


def _model_card(m: dict[str, Any], schema: dict[str, Any], importance: pd.DataFrame) -> str:
    sources = pd.Series([f["source"] for f in schema["features"]]).value_counts()
    lines = [
        f"# Model card: {m['model_name']} v{m['model_version']}",
        "",
        f"Trained {m['trained_at']}. Promoted to `champion`: **{m['promoted']}** "
        f"({m['promotion_reason']}).",
        "",
        "## Data",
        f"- Home Credit Default Risk, application_train rows only: {m['n_train']} clients, "
        f"default rate {m['default_rate']:.2%}. application_test rows are never used.",
        f"- {m['n_folds']}-fold stratified cross-validation (seed {m['seed']}); every metric "
        "below is out-of-fold.",
        "",
        "## Features",
        f"- {m['n_features']} inputs; by source: "
        + ", ".join(f"{k} {v}" for k, v in sources.items()),
        "- Top features by mean |SHAP|: " + ", ".join(importance["feature"].head(10)),
        "",
        "## Performance (honest: what should hold on new clients)",
        f"- ROC AUC {m['auc_mean']:.4f} ± {m['auc_std']:.4f} (mean ± std over folds; 95% "
        f"interval of the mean {_interval(m['auc_mean_ci95'])}); pooled out-of-fold "
        f"{m['oof_auc']:.4f} (bootstrap 95% {_interval(m['oof_auc_ci95'])}); PR AUC "
        f"{m['pr_auc']:.4f}.",
        "- Each fold's tree count is chosen on an inner split of its training part "
        f"(best iterations {min(m['best_iterations'])} to {max(m['best_iterations'])}); the "
        "scored fold takes part in no choice."
        + (
            f" Seed bagging: {m['n_bags']} models per fold, each with its own seed and inner "
            f"split, averaged (log-odds); the served model averages {m['n_bags']} models "
            f"({m['n_trees']} trees in all)."
            if m["n_bags"] > 1
            else ""
        ),
        "- Monotone constraints (credit logic, not learnt): the risk never rises with "
        + (", ".join(m["monotone"]["decreasing"]) or "no input")
        + (
            "; never falls with " + ", ".join(m["monotone"]["increasing"])
            if m["monotone"]["increasing"]
            else ""
        )
        + ".",
        *_tuning_lines(m.get("tuning")),
        f"- Optimistic, for comparison only (tree count chosen on the scored fold): "
        f"{m['optimistic']['auc_mean']:.4f} ± {m['optimistic']['auc_std']:.4f}.",
        f"- Class weighting: `{m['imbalance']['chosen']}` — {m['imbalance']['reason']}. "
        f"OOF AUC none {m['imbalance']['auc']['none']:.4f}, scale_pos_weight "
        f"{m['imbalance']['auc']['scale_pos_weight']:.4f}.",
        "",
        "| baseline | AUC | full model margin |",
        "|---|---|---|",
    ]
    for name, auc in m["baselines"].items():
        lines.append(f"| {name} | {auc:.4f} | {m['auc_mean'] - auc:+.4f} |")
    lines += [
        "",
        "## Decision threshold and cost",
        f"- Refuse when calibrated P(default) >= **{m['threshold']:.4f}**, minimising "
        f"{m['cost_fn']:g} x FN + {m['cost_fp']:g} x FP on out-of-fold predictions.",
        f"- Honest cost {m['business_cost']:.0f} (bootstrap 95% "
        f"{_interval(m['business_cost_ci95'], 0)}; {m['business_cost_per_client']:.4f} per "
        "client): each fold decided at the threshold chosen on the other folds; approval "
        f"rate {m['approval_rate']:.2%}; recall {m['recall']:.2%}; precision "
        f"{m['precision']:.2%}.",
        f"- Optimistic, for comparison only (threshold chosen on the rows it is costed on): "
        f"{m['optimistic']['business_cost']:.0f}. Approve everyone: "
        f"{m['cost_baselines']['approve_all']:.0f}; refuse everyone: "
        f"{m['cost_baselines']['refuse_all']:.0f}.",
        "- Realised performance reference: out-of-fold ROC AUC of the clients this threshold "
        f"grants {_number(m.get('oof_auc_granted'))} (outcomes exist for granted loans only, so "
        "the realised AUC of `credit performance report` is compared with this figure, not "
        "with the population's).",
        "",
        "## Calibration",
        f"- Method `{m['calibration_method']}`, smooth and strictly monotone so what-ifs move "
        "the probability and none is exactly 0 or 1 (cross-fitted Brier / ECE: "
        + ", ".join(
            f"{k} {v:.5f} / {m['calibration_ece'][k]:.4f}"
            for k, v in m["calibration_brier"].items()
        )
        + "; isotonic, a step function, is measured for comparison only). Brier raw "
        f"{m['brier_raw']:.5f} -> calibrated {m['brier']:.5f}; ECE "
        f"(10 equal-frequency bins) raw {m['ece_raw']:.4f} -> calibrated {m['ece']:.4f}.",
        "",
        "## Fairness (honest decisions: out of fold, each fold at a threshold it did not set)",
        "",
        "| group | n | approval rate | default rate among approved | TPR | FPR |",
        "|---|---|---|---|---|---|",
    ]
    for group, g in m["fairness"].items():
        lines.append(
            f"| {group} | {g['n']} | {g['approval_rate']:.2%} | "
            f"{g['default_rate_approved']:.2%} | {g['tpr']:.2%} | {g['fpr']:.2%} |"
        )
    lines += [
        "",
        "Group differences of the honest decisions (fairlearn's definitions, refusal as the "
        "selection; bootstrap 95% intervals). A challenger that widens one by more than "
        f"{m['fairness_margin']:g} over the champion is not promoted.",
        "",
        "| attribute | demographic parity difference | equalised odds difference |",
        "|---|---|---|",
    ]
    for attribute, d in m["fairness_differences"].items():
        lines.append(
            f"| {attribute} | {d['demographic_parity_difference']:.3f} "
            f"{_interval(d['demographic_parity_difference_ci95'], 3)} | "
            f"{d['equalized_odds_difference']:.3f} "
            f"{_interval(d['equalized_odds_difference_ci95'], 3)} |"
        )
    used = m["protected_used"]
    lines += [
        "",
        "## Protected attributes",
        f"- Used as model inputs: {', '.join(used) if used else 'none'}. "
        "CODE_GENDER is excluded by default (`use_protected=False`): gender must not drive a "
        "credit decision; it is kept only to measure the group metrics above.",
        "- Age (DAYS_BIRTH) remains an input: it is a legitimate, strongly predictive credit "
        "factor here, so its effect is monitored with the age-band metrics above.",
        "",
        "## Limits",
        "- Trained on a small sample when run on the 5,000-client subset: fold AUCs vary by "
        "several points; treat differences under the fold std as noise.",
        "- Headline figures are out-of-fold and chosen without the scored rows; they still "
        "share one data set, so a new population (other years, channels) can score lower. "
        "The LightGBM settings were tuned on the real sample's folds, which flatters them "
        "slightly there (docs/decision-quality.md: other fold splits).",
        "- The threshold assumes the configured cost ratio and the training default rate; "
        "re-tune when either changes. Excluding gender does not remove proxies for it.",
        "",
    ]
    return "\n".join(lines)


# --- orchestration -----------------------------------------------------------------------


@contextmanager
def _steps(enabled: bool, total: int) -> Iterator[Any]:
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        disable=not enabled,
        transient=False,
    )
    with progress:
        task = progress.add_task("training", total=total)

        def step(message: str, advance: bool = False) -> None:
            log.info("train.step", step=message)
            progress.update(task, description=message, advance=1 if advance else 0)

        yield step


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value)}")


def run_training(
    features_dir: Path,
    artifacts_dir: Path,
    *,
    tracking_uri: str | None = None,
    model_name: str = "credit-default",
    n_folds: int = 5,
    quick: bool = False,
    cost_fn: float = 10,
    cost_fp: float = 1,
    use_protected: bool = False,
    seed: int = 42,
    progress: bool = True,
    data_source: str = "",
    n_bags: int | None = None,
    tune_trials: int = 0,
    select_features: bool = False,
) -> dict[str, Any]:
    """Train and register a model; returns the metrics written to ``metrics.json``.

    ``n_bags``: LightGBM models per fold and in the served model, each with its own seed,
    averaged (default ``modeling.FULL_BAGS``, 1 in quick mode). ``tune_trials`` (> 0; 1: the current
    settings, only the tree count chosen on inner folds) and
    ``select_features``: nested search and feature selection (training/tuning.py), chosen
    inside each outer fold's training part and, for the served model, on all rows."""
    started = time.perf_counter()
    features_dir, artifacts_dir = Path(features_dir), Path(artifacts_dir)
    artifacts_dir.mkdir(parents=True, exist_ok=True)
    if quick:
        n_folds = min(n_folds, 3)
    if n_bags is None:
        n_bags = 1 if quick else modeling.FULL_BAGS
    rounds = {
        "num_boost_round": 300 if quick else 3000,
        "early_stopping_rounds": 20 if quick else 100,
    }

    schema = json.loads((features_dir / SCHEMA_FILE).read_text())
    frame = pd.read_parquet(features_dir / FEATURES_FILE)
    train = frame[frame["split"] == "train"].reset_index(drop=True)
    y = train["TARGET"].to_numpy().astype(np.int64)

    # Protected attributes leave the schema itself, so the bundle's model_matrix can't see them.
    columns = [
        c
        for c in model_columns(schema, use_protected=use_protected)
        if (use_protected or c not in modeling.PROTECTED_FEATURES)
        and not modeling.NOT_INPUTS.match(c)
    ]
    model_schema = {**schema, "features": [f for f in schema["features"] if f["name"] in columns]}
    X = model_matrix(train, model_schema)
    protected_used = [
        f["name"]
        for f in model_schema["features"]
        if f.get("protected") or f["name"] in modeling.PROTECTED_FEATURES
    ]
    log.info("train.data", n_train=len(y), n_features=X.shape[1], default_rate=float(y.mean()))

    X_inputs, inputs_schema = X, model_schema
    folds = modeling.make_folds(y, n_folds, seed)
    with _steps(progress, total=8) as step:
        step("class weighting comparison")
        choice = modeling.compare_imbalance(
            X,
            y,
            folds,
            seed=seed,
            quick=quick,
            cost_fn=cost_fn,
            cost_fp=cost_fp,
            progress=step,
            **rounds,
        )
        cv = choice.results[choice.chosen]
        served_params = cv.params
        tuning_record: dict[str, Any] | None = None
        step(f"seed bagging: {n_bags} models per fold", advance=True)
        if tune_trials > 0 or select_features:
            # Nested: every outer fold's inputs and settings are chosen on its training part
            # alone (inner folds), the fold only scores; the served model is what the same
            # procedure chooses on all rows. The weighting stays the one chosen above.
            base = cv.params
            fold_choices: list[tuning.Choice] = []

            def pick(rows: np.ndarray, seed: int, label: str) -> tuning.Choice:
                return tuning.choose(
                    X,
                    y,
                    rows,
                    base,
                    trials=tune_trials,
                    select=select_features,
                    seed=seed,
                    label=label,
                    progress=step,
                    num_boost_round=rounds["num_boost_round"],
                    early_stopping_rounds=rounds["early_stopping_rounds"],
                )

            def fold_setup(
                k: int, rows: np.ndarray
            ) -> tuple[dict[str, Any], list[str], int | None]:
                chosen = pick(rows, seed + k, f"fold {k + 1}/{n_folds}: ")
                fold_choices.append(chosen)
                # The tree count too: where the 3 inner folds' mean AUC peaks is
                # steadier than one 20 % split (which stopped some tuned folds at 13-42
                # trees on the real sample).
                return chosen.params, chosen.features, chosen.rounds

            step(f"nested search: {tune_trials} trials, selection {select_features}")
            cv = modeling.cross_validate_lgbm(
                X,
                y,
                folds,
                base,
                n_bags=n_bags,
                refit=False,
                fold_setup=fold_setup,
                progress=step,
                num_boost_round=rounds["num_boost_round"],
                early_stopping_rounds=rounds["early_stopping_rounds"],
            )
            final = pick(np.arange(len(y)), seed, "all rows: ")
            served_params = final.params
            tuning_record = {
                "trials": tune_trials,
                "select": select_features,
                "min_gain_share": tuning.MIN_GAIN_SHARE if select_features else None,
                "inner_folds": tuning.INNER_FOLDS,
                "space": {k: list(v) for k, v in tuning.SPACE.items()},
                "folds": [c.summary() for c in fold_choices],
                "final": final.summary(),
            }
            X = X[final.features]
            model_schema = {
                **model_schema,
                "features": [f for f in model_schema["features"] if f["name"] in final.features],
            }
            step(f"refit on all {len(y)} rows ({n_bags} x {final.rounds} trees)", advance=True)
            booster = modeling.average_boosters(
                [
                    modeling.fit_booster(X, y, modeling.bag_params(final.params, bag), final.rounds)
                    for bag in range(n_bags)
                ]
            )
            n_trees = n_bags * final.rounds
        elif n_bags > 1:
            # The weighting is chosen on single models; the chosen settings are then
            # measured again, honestly, as the averaged models that will be served.
            cv = modeling.cross_validate_lgbm(
                X,
                y,
                folds,
                cv.params,
                n_bags=n_bags,
                refit=False,
                progress=step,
                num_boost_round=rounds["num_boost_round"],
                early_stopping_rounds=rounds["early_stopping_rounds"],
            )
        if tuning_record is None:
            step(f"refit on all {len(y)} rows ({n_bags} x {cv.bag_rounds} trees)", advance=True)
            booster = modeling.fit_final(X, y, cv)
            n_trees = int(sum(cv.bag_rounds))

        constraints = served_params.get("monotone_constraints", [0] * X.shape[1])
        step("calibration", advance=True)
        calibration = modeling.fit_calibration(y, cv.oof, folds)
        p_cal = calibration.calibrator.predict(cv.oof)
        summary = modeling.summary_metrics(y, cv.oof, calibration.crossfit, cv.fold_auc)
        # The served threshold is chosen on all OOF rows, on the served calibrator's scale...
        decision = modeling.choose_threshold(y, p_cal, cost_fn, cost_fp)
        in_sample = modeling.decision_metrics(y, p_cal, decision.threshold, cost_fn, cost_fp)
        # ...but its cost on those same rows is flattering: the headline cost is measured
        # with each fold decided at a threshold chosen on the other folds.
        honest = modeling.cross_fitted_threshold(y, cv.oof, folds, cost_fn, cost_fp)
        at_threshold = modeling.decision_metrics(
            y, honest.refused.astype(np.float64), 0.5, cost_fn, cost_fp
        )
        intervals = modeling.bootstrap_intervals(
            y,
            cv.oof,
            honest.refused,
            cost_fn=cost_fn,
            cost_fp=cost_fp,
            n_boot=200 if quick else 1000,
            seed=seed,
        )

        step("baselines", advance=True)
        # On every input the selection started from: the baselines choose nothing.
        app_features = [
            f["name"] for f in inputs_schema["features"] if f["source"] == "application"
        ]
        baselines = modeling.baseline_scores(
            X_inputs,
            y,
            folds,
            application_features=app_features,
            seed=seed,
            quick=quick,
            progress=step,
            **rounds,
        )

        step("fairness and importance", advance=True)
        groups: dict[str, pd.Series] = {}
        if "CODE_GENDER" in train:
            groups["CODE_GENDER"] = train["CODE_GENDER"]
        if "DAYS_BIRTH" in train:
            groups["age_band"] = modeling.age_band(train["DAYS_BIRTH"])
        # Per-group rates of the honest decisions (each fold at a threshold it did not set).
        fairness = modeling.fairness_report(
            y, honest.refused.astype(np.float64), 0.5, groups, cost_fn, cost_fp
        )
        # Group differences of the honest decisions (each fold at a threshold it did not set).
        differences = modeling.fairness_differences(
            y, honest.refused, groups, n_boot=100 if quick else 500, seed=seed
        )
        fairness_metrics = {
            f"fairness_{attribute}_{short}": values[key]
            for attribute, values in differences.items()
            for key, short in (
                ("demographic_parity_difference", "dp_diff"),
                ("equalized_odds_difference", "eo_diff"),
            )
        }
        importance = modeling.global_importance(booster, X, seed=seed)

        step("reports", advance=True)
        trained_at = datetime.now(UTC).isoformat(timespec="seconds")
        metrics: dict[str, Any] = {
            "model_name": model_name,
            "trained_at": trained_at,
            "evaluation": (
                "honest: each fold's tree count chosen on an inner split of its training "
                "part, calibration cross-fitted, each fold decided at a threshold chosen on "
                "the other folds; intervals: t over folds (auc_mean), client bootstrap "
                "(oof_auc, business_cost)"
            ),
            **summary,
            "auc_mean_ci95": modeling.fold_interval(cv.fold_auc),
            "oof_auc_ci95": intervals["oof_auc"],
            "business_cost_ci95": intervals["business_cost"],
            "fold_business_cost": honest.fold_costs,
            "fold_thresholds": honest.fold_thresholds,
            "optimistic": {
                "note": (
                    "optimistic, for comparison only: tree count chosen on the scored fold; "
                    "threshold chosen on the rows it is costed on"
                ),
                "auc_mean": float(np.mean(cv.optimistic_fold_auc)),
                "auc_std": float(np.std(cv.optimistic_fold_auc)),
                "fold_auc": cv.optimistic_fold_auc,
                "business_cost": in_sample["business_cost"],
                "approval_rate": in_sample["approval_rate"],
            },
            "cost_baselines": {
                "approve_all": float(cost_fn * y.sum()),
                "refuse_all": float(cost_fp * (len(y) - y.sum())),
            },
            "fold_auc": cv.fold_auc,
            "best_iterations": cv.best_iterations,
            "bag_iterations": cv.bag_iterations,
            "n_bags": n_bags,
            "n_trees": n_trees,
            "tuning": tuning_record,
            "monotone": {
                "decreasing": [c for c, m in zip(X.columns, constraints, strict=True) if m < 0],
                "increasing": [c for c, m in zip(X.columns, constraints, strict=True) if m > 0],
            },
            "threshold": decision.threshold,
            # What realised performance (granted clients only) compares with: the out-of-fold
            # AUC of the clients this threshold grants (see training/performance.py).
            "oof_auc_granted": granted_band_auc(y, p_cal, decision.threshold),
            "cost_fn": cost_fn,
            "cost_fp": cost_fp,
            **at_threshold,
            "baselines": {k: v["auc_mean"] for k, v in baselines.items()},
            "baselines_std": {k: v["auc_std"] for k, v in baselines.items()},
            "imbalance": {
                "chosen": choice.chosen,
                "reason": choice.reason,
                "auc": choice.auc,
                "cost_per_client": choice.cost_per_client,
                "fold_auc_gap": choice.fold_auc_gap,
                "tolerance": choice.tolerance,
            },
            "calibration_method": calibration.method,
            "calibration_brier": calibration.brier_by_method,
            "calibration_ece": calibration.ece_by_method,
            "ece_bins": "10 equal-frequency (quantile) bins",
            "fairness": fairness,
            "fairness_differences": differences,
            "fairness_margin": FAIRNESS_MARGIN,
            "n_features": X.shape[1],
            "n_train": len(y),
            "default_rate": float(y.mean()),
            "n_folds": n_folds,
            "seed": seed,
            "quick": quick,
            "use_protected": use_protected,
            "protected_used": protected_used,
        }
        metrics["business_cost"] = at_threshold["business_cost"]

        importance.to_csv(artifacts_dir / "importance.csv", index=False)
        _plot_cost_curve(decision, len(y), artifacts_dir / "cost_curve.png")
        _plot_reliability(y, cv.oof, p_cal, artifacts_dir / "reliability.png")
        _plot_importance(importance, artifacts_dir / "importance.png")
        (artifacts_dir / "population_stats.json").write_text(
            json.dumps(population_stats(train, y, model_schema), default=_json_default)
        )

        step("MLflow logging and registration", advance=True)
        uri = resolve_tracking_uri(tracking_uri)
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        experiment_id = _experiment_id(client, uri)
        version = _next_version(client, model_name)
        champion_version, champion_metrics = _champion_metrics(client, model_name, data_source)
        champion_auc = None if champion_metrics is None else champion_metrics.get("auc_mean")

        bundle = ScoringModel(
            booster=booster,
            calibrator=calibration.calibrator,
            threshold=decision.threshold,
            schema=model_schema,
            model_version=version,
            trained_at=trained_at,
            # What /v1/model reports: the figures and cost weights this model was trained with.
            metrics={k: metrics[k] for k in BUNDLE_METRICS},
        )
        bundle_dir = bundle.save(artifacts_dir / "model")
        reference = X.sample(min(REFERENCE_ROWS, len(X)), random_state=seed)
        reference_out = reference.copy()
        reference_out.insert(0, "SK_ID_CURR", train.loc[reference.index, "SK_ID_CURR"])
        reference_out["TARGET"] = y[reference.index]
        reference_out["prediction"] = bundle.calibrator.predict(
            np.asarray(booster.predict(reference, num_threads=1), dtype=np.float64)
        )
        # Out of fold as well (each client's probability from the fold model not fitted on
        # it, through the served calibrator): the explainer's score distribution is honest.
        reference_out["oof_prediction"] = p_cal[reference.index.to_numpy()]
        reference_out.to_parquet(artifacts_dir / "reference.parquet", index=False)
        step("drift report: train vs application_test clients")
        # The production-like population (application_test) against the training one; in
        # quick mode on the 40 most important inputs (all ~200 take ~25 s).
        drift = training_drift_report(
            features_dir,
            artifacts_dir / "drift_train_vs_test.html",
            columns=importance["feature"].head(40).tolist() if quick else list(X.columns),
        )
        drift_summary = {k: v for k, v in drift.items() if k != "features"}
        (artifacts_dir / "drift_train_vs_test.json").write_text(
            json.dumps(drift, indent=2, default=_json_default)
        )
        metrics["train_vs_test_drift"] = drift_summary

        with mlflow.start_run(
            experiment_id=experiment_id,
            run_name=f"train-{trained_at}",
            tags={DATA_SOURCE_TAG: data_source, EVALUATION_TAG: EVALUATION},
        ) as run:
            mlflow.log_params(
                {
                    **{
                        k: v
                        for k, v in served_params.items()
                        if k not in ("metric", "monotone_constraints")
                    },
                    "tune_trials": tune_trials,
                    "select_features": select_features,
                    "n_bags": n_bags,
                    "monotone_decreasing": ",".join(metrics["monotone"]["decreasing"]) or "none",
                    "monotone_increasing": ",".join(metrics["monotone"]["increasing"]) or "none",
                    "n_folds": n_folds,
                    "quick": quick,
                    "class_weighting": choice.chosen,
                    "calibration": calibration.method,
                    "cost_fn": cost_fn,
                    "cost_fp": cost_fp,
                    "use_protected": use_protected,
                    "n_features": X.shape[1],
                    "n_train": len(y),
                }
            )
            mlflow.log_metrics(
                {
                    **{k: float(v) for k, v in summary.items()},
                    **{k: float(v) for k, v in at_threshold.items()},
                    "threshold": decision.threshold,
                    **{f"baseline_{k}": v["auc_mean"] for k, v in baselines.items()},
                    "optimistic_auc_mean": metrics["optimistic"]["auc_mean"],
                    **fairness_metrics,
                    "optimistic_business_cost": metrics["optimistic"]["business_cost"],
                    "train_vs_test_drift_share": float(drift_summary["drift_share"]),
                }
            )
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=ScoringPyfunc(),
                artifacts={ScoringPyfunc.BUNDLE_KEY: str(bundle_dir)},
                registered_model_name=model_name,
                # Explicit requirements: inferring them would re-load the model in a subprocess.
                pip_requirements=["lightgbm==4.7.0", "numpy", "pandas==2.3.3", "mlflow==3.17.2"],
            )
            registered = str(info.registered_model_version)
            if registered != version:
                log.warning("train.version_mismatch", expected=version, registered=registered)
                version = bundle.model_version = registered
                bundle.save(bundle_dir)

            # Fairness gate: a challenger as accurate as the champion still does not take its
            # place if it widens a group difference beyond the margin.
            regressions = _fairness_regressions(
                fairness_metrics, champion_metrics or {}, FAIRNESS_MARGIN
            )
            promoted = champion_auc is None or (
                summary["auc_mean"] >= champion_auc and not regressions
            )
            if promoted:
                client.set_registered_model_alias(model_name, CHAMPION, version)
                reason = (
                    "no previous champion"
                    if champion_version is None
                    else f"champion v{champion_version} was trained on other data or "
                    "evaluated another way"
                    if champion_auc is None
                    else f"auc_mean {summary['auc_mean']:.4f} >= champion v{champion_version} "
                    f"{champion_auc:.4f}"
                )
            elif summary["auc_mean"] < (champion_auc or 0.0):
                reason = (
                    f"auc_mean {summary['auc_mean']:.4f} < champion v{champion_version} "
                    f"{champion_auc:.4f}"
                )
            else:
                reason = f"fairness worse than champion v{champion_version}: " + "; ".join(
                    regressions
                )
            client.set_model_version_tag(model_name, version, "auc_mean", f"{summary['auc_mean']}")
            metrics.update(
                model_version=version,
                run_id=run.info.run_id,
                model_uri=f"models:/{model_name}/{version}",
                promoted=promoted,
                promotion_reason=reason,
                previous_champion=champion_version,
                tracking_uri=uri,
                duration_s=round(time.perf_counter() - started, 1),
            )
            (artifacts_dir / "metrics.json").write_text(
                json.dumps(metrics, indent=2, default=_json_default)
            )
            (artifacts_dir / "model_card.md").write_text(
                _model_card(metrics, model_schema, importance)
            )
            for name in REPORT_FILES:
                mlflow.log_artifact(str(artifacts_dir / name), artifact_path="reports")
            if tuning_record is not None:
                # Each outer fold's chosen settings and inputs, and the served model's.
                mlflow.log_dict(tuning_record, "reports/tuning.json")
        step("done", advance=True)

    log.info(
        "train.done",
        model_version=version,
        promoted=promoted,
        auc_mean=round(summary["auc_mean"], 4),
        threshold=round(decision.threshold, 4),
        duration_s=metrics["duration_s"],
    )
    return metrics
