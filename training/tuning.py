"""Nested hyperparameter search and feature selection, each run inside one training part.

``choose(X, y, rows, base)`` decides, from the rows ``rows`` only, which inputs to keep
(``select``) and which LightGBM settings to use (``trials`` of an Optuna TPE search over a
small space, the current settings tried first). Cross-validation calls it once per outer
fold with that fold's training part, so the fold it then scores takes part in no choice
(nested: the outer figure measures the whole procedure, search included); the served model
is what the same procedure chooses on all rows.

Every candidate is judged by an inner stratified k-fold CV of ``rows`` (``inner_cv``): its
mean AUC, with each inner model's tree count chosen by early stopping on its own inner
validation part. That inner figure is optimistic, but only for comparing candidates: the
outer fold gives the honest one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import lightgbm as lgb
import numpy as np
import optuna
import pandas as pd
from sklearn.model_selection import StratifiedKFold

from training import modeling

ProgressFn = Callable[[str], None]

# Inner folds per candidate: 3 keeps a trial to three fits; each inner validation part of a
# 4,000-row training part still holds ~100 defaults.
INNER_FOLDS = 3
# "Near-zero gain": an input whose share of the inner models' total gain is below this is
# dropped. On the real sample's 144 inputs the mean share is ~0.7 %.
MIN_GAIN_SHARE = 0.001
# The search space, small on purpose: the inner figure's noise (~0.01-0.02 AUC at a few
# thousand rows) is larger than the difference between nearby settings, so only the
# settings that shape the trees' size and regularisation are searched; the learning rate
# stays fixed (early stopping sets the tree count).
SPACE: dict[str, tuple[str, float, float]] = {
    "num_leaves": ("int_log", 4, 32),
    "min_child_samples": ("int_log", 20, 200),
    "feature_fraction": ("float", 0.05, 0.6),
    "bagging_fraction": ("float", 0.5, 1.0),
    "lambda_l2": ("float_log", 0.1, 100.0),
}


@dataclass
class InnerScore:
    auc: float  # mean AUC of the inner folds at ``iterations`` trees
    iterations: int  # the tree count where that mean peaks
    gain: pd.Series  # total gain per input over the inner models


@dataclass
class Choice:
    """What ``choose`` decided on one set of rows."""

    params: dict[str, Any]
    features: list[str]
    rounds: int  # tree count for a model fitted on all of ``rows`` (inner early stopping)
    inner_auc: float
    trials: int
    dropped: list[str] = field(default_factory=list)
    tuned: dict[str, float] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """JSON-ready record (metrics.json, MLflow)."""
        return {
            "tuned": self.tuned,
            "n_features": len(self.features),
            "dropped": self.dropped,
            "rounds": self.rounds,
            "inner_auc": self.inner_auc,
            "trials": self.trials,
        }


def for_columns(params: dict[str, Any], columns: Sequence[str]) -> dict[str, Any]:
    """``params`` with the credit-logic monotone constraints of ``columns`` (in order)."""
    out = {k: v for k, v in params.items() if k != "monotone_constraints"}
    constraints = modeling.monotone_constraints(list(columns))
    if any(constraints):
        out["monotone_constraints"] = constraints
    return out


def inner_cv(
    X: pd.DataFrame,
    y: np.ndarray,
    rows: np.ndarray,
    params: dict[str, Any],
    *,
    seed: int,
    n_folds: int = INNER_FOLDS,
    num_boost_round: int = 2000,
    early_stopping_rounds: int = 100,
) -> InnerScore:
    """Stratified k-fold CV of ``rows`` alone (positions in ``X``/``y``); nothing else is read."""
    rows = np.asarray(rows)
    X_rows, y_rows = X.iloc[rows], np.asarray(y)[rows]
    splitter = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    # One tree count for the inner models, where their mean AUC peaks (LightGBM's cv): one
    # early stop per inner fold would flatter each fold and give a noisier tree count.
    result = lgb.cv(
        {**for_columns(params, X.columns), "metric": "auc"},
        lgb.Dataset(X_rows, y_rows),
        num_boost_round=num_boost_round,
        folds=list(splitter.split(np.zeros(len(rows)), y_rows)),
        callbacks=[lgb.early_stopping(early_stopping_rounds, verbose=False)],
        return_cvbooster=True,
    )
    curve = np.asarray(cast(list[float], result["valid auc-mean"]))
    best = int(np.argmax(curve)) + 1
    gain = np.zeros(X.shape[1])
    for booster in cast(lgb.CVBooster, result["cvbooster"]).boosters:
        gain += booster.feature_importance(importance_type="gain", iteration=best)
    return InnerScore(
        auc=float(curve[best - 1]),
        iterations=best,
        gain=pd.Series(gain, index=X.columns),
    )


def _suggest(trial: optuna.Trial) -> dict[str, float]:
    values: dict[str, float] = {}
    for name, (kind, low, high) in SPACE.items():
        if kind.startswith("int"):
            values[name] = trial.suggest_int(name, int(low), int(high), log=kind.endswith("log"))
        else:
            values[name] = trial.suggest_float(name, low, high, log=kind.endswith("log"))
    return values


def choose(
    X: pd.DataFrame,
    y: np.ndarray,
    rows: np.ndarray,
    base: dict[str, Any],
    *,
    trials: int,
    select: bool,
    seed: int,
    min_gain_share: float = MIN_GAIN_SHARE,
    num_boost_round: int = 2000,
    early_stopping_rounds: int = 100,
    label: str = "",
    progress: ProgressFn | None = None,
) -> Choice:
    """Inputs and settings chosen on ``rows`` only: first the inputs (``select``: those with
    at least ``min_gain_share`` of the inner models' gain under ``base``), then ``trials``
    settings (the first is ``base``'s own), the best inner AUC kept."""
    rounds = {"num_boost_round": num_boost_round, "early_stopping_rounds": early_stopping_rounds}
    columns = list(X.columns)
    dropped: list[str] = []
    first = inner_cv(X, y, rows, base, seed=seed, **rounds)
    if select:
        share = first.gain / max(float(first.gain.sum()), 1e-12)
        keep = share >= min_gain_share
        columns = [c for c in columns if keep[c]]
        dropped = [c for c in X.columns if not keep[c]]
        if progress:
            progress(f"{label}selection: {len(columns)} inputs kept, {len(dropped)} dropped")
    Xs = X[columns]
    best_score = inner_cv(Xs, y, rows, base, seed=seed, **rounds) if dropped else first
    best_params, tuned = dict(base), {}
    if trials > 1:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(
            direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed)
        )
        # The current settings are the first trial (already scored above): the search can
        # only replace them with settings that did better on the same inner folds.
        study.enqueue_trial({k: base[k] for k in SPACE})
        scores: dict[int, InnerScore] = {}

        def objective(trial: optuna.Trial) -> float:
            values = _suggest(trial)
            if trial.number == 0:
                score = best_score
            else:
                score = inner_cv(Xs, y, rows, {**base, **values}, seed=seed, **rounds)
            scores[trial.number] = score
            return score.auc

        def report(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
            if progress:
                progress(
                    f"{label}trial {trial.number + 1}/{trials}: inner AUC {trial.value:.4f} "
                    f"(best {study.best_value:.4f})"
                )

        study.optimize(objective, n_trials=trials, callbacks=[report])
        tuned = {k: float(v) for k, v in study.best_params.items()}
        best_params = {**base, **study.best_params}
        best_score = scores[study.best_trial.number]
    return Choice(
        params=for_columns(best_params, columns),
        features=columns,
        rounds=best_score.iterations,
        inner_auc=best_score.auc,
        trials=max(trials, 1),
        dropped=dropped,
        tuned=tuned,
    )
