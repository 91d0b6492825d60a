"""Model fitting and evaluation as pure functions: CV LightGBM, calibration, threshold, metrics.

Conventions: ``y`` is a 0/1 numpy array (1 = default), ``p`` a probability of default, and a
client is *refused* when ``p >= threshold``. Business cost = ``cost_fn * FN + cost_fp * FP``,
where FN is a defaulter granted a loan and FP a good client refused.

LightGBM always runs with ``num_threads=1`` and ``deterministic=True``: on a small shared
machine extra threads are much slower, and one thread makes results reproducible.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.dummy import DummyClassifier
from sklearn.impute import SimpleImputer
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score
from sklearn.model_selection import StratifiedKFold, StratifiedShuffleSplit, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from serving_core.bundle import Calibrator, _logit

Fold = tuple[np.ndarray, np.ndarray]
Weighting = Literal["none", "scale_pos_weight"]
ProgressFn = Callable[[str], None]
# Per outer fold, from the fold's index and its training rows only: the LightGBM settings,
# the inputs its model uses and, when not None, its tree count (nested tuning and feature
# selection, training/tuning.py).
FoldSetup = Callable[[int, np.ndarray], tuple[dict[str, Any], list[str], int | None]]

PROTECTED_FEATURES: tuple[str, ...] = ("CODE_GENDER",)
# Not model inputs: on a few thousand applications they are noise (the building's
# statistics, which documents were handed in, contact flags), or carry no credit logic a
# lender could give as a reason (the hour and weekday of the application). Leaving them out
# raised the honest mean fold AUC on the real sample by ~0.01 (docs/decision-quality.md).
NOT_INPUTS = re.compile(
    r"^(.*_(AVG|MODE|MEDI)|FLAG_DOCUMENT_\d+|HOUR_APPR_PROCESS_START|WEEKDAY_APPR_PROCESS_START"
    r"|FLAG_(MOBIL|CONT_MOBILE|EMAIL))$"
)
# Seed bagging (models per fold, averaged in the served model) is off by default: on the
# real sample it moved the honest mean fold AUC by -0.001 to +0.002 and the cost by -66 to
# +39 over two fold splits, within noise, for 3 to 5 times the training time
# (docs/decision-quality.md). `credit train --bags N` turns it on.
FULL_BAGS = 1
AGE_BANDS: tuple[str, ...] = ("<30", "30-40", "40-50", "50-60", "60+")
# Smallest AUC difference ever treated as real when comparing options on the same folds.
AUC_TIE = 0.002
# Credit logic the model must respect whatever a few thousand rows suggest (LightGBM
# monotone constraints on the raw score). Decreasing: the external credit-bureau scores and
# their combinations score creditworthiness, so a higher one never raises the risk (their
# spread, EXT_SOURCE_STD, has no such logic). Increasing: being late more often or for
# longer, on any past credit (days overdue reported by other lenders, months late in the
# bureau balance, days past due on POS/cash and card loans, instalments paid late, and the
# shares of late months or instalments), never lowers the risk. Amounts, ratios and counts
# have no one-way logic (a larger credit can be a sign of trust) and stay free.
# Measured on the real sample (docs/decision-quality.md): +0.002 to +0.004 mean fold AUC.
MONOTONE_DECREASING = re.compile(r"^EXT_SOURCE_(\d+|MEAN|MIN|MAX|PROD)$")
MONOTONE_INCREASING = re.compile(
    r"^(BUREAU_CREDIT_DAY_OVERDUE_.*|BB_LATE_SHARE_.*|POS_SK_DPD.*|POS_LATE_SHARE"
    r"|INST_DPD_.*|INST_LATE_SHARE|CC_SK_DPD_.*)$"
)


def monotone_constraints(columns: Sequence[str]) -> list[int]:
    """LightGBM ``monotone_constraints`` for these inputs, in their order."""
    return [
        -1 if MONOTONE_DECREASING.match(c) else 1 if MONOTONE_INCREASING.match(c) else 0
        for c in columns
    ]


def make_folds(y: np.ndarray, n_folds: int, seed: int) -> list[Fold]:
    """Stratified folds, shared by the model, the imbalance comparison and all baselines."""
    splitter = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    return list(splitter.split(np.zeros(len(y)), y))


def lgb_params(
    *,
    seed: int,
    weighting: Weighting = "none",
    y: np.ndarray | None = None,
    quick: bool = False,
    columns: Sequence[str] | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """LightGBM settings; with ``columns`` (the inputs, in order) the credit-logic
    monotone constraints of ``monotone_constraints`` apply."""
    # Full mode: small, strongly regularised trees, each seeing 15% of the inputs. Chosen by
    # a fixed-budget search (30 draws) on the real 5,000-application sample, judged by the
    # honest CV, then confirmed on three other fold splits (docs/decision-quality.md):
    # +0.02 mean fold AUC over the former 31 leaves / 60% of the inputs.
    params: dict[str, Any] = {
        "objective": "binary",
        "metric": "auc",
        "learning_rate": 0.1 if quick else 0.02,
        "num_leaves": 15 if quick else 8,
        "min_child_samples": 40 if quick else 80,
        "feature_fraction": 0.6 if quick else 0.15,
        "bagging_fraction": 0.8 if quick else 0.7,
        "bagging_freq": 1,
        "lambda_l2": 5.0 if quick else 40.0,
        "num_threads": 1,
        "deterministic": True,
        "force_row_wise": True,
        "seed": seed,
        "verbose": -1,
    }
    if weighting == "scale_pos_weight":
        if y is None:
            raise ValueError("scale_pos_weight needs y to compute the negative/positive ratio")
        params["scale_pos_weight"] = float((y == 0).sum() / max((y == 1).sum(), 1))
    constraints = monotone_constraints([] if columns is None else list(columns))
    if any(constraints):
        params["monotone_constraints"] = constraints
    params.update(overrides)
    return params


@dataclass
class CVResult:
    """Out-of-fold results of one CV run.

    ``fold_auc``/``oof`` are honest: each fold's tree count was chosen on an inner split of
    its own training part, never on the rows it scores. ``optimistic_fold_auc`` is the same
    fold models' AUC at the tree count that suits the scored fold best (what early stopping
    on the scored fold reports): kept only to show how much that choice flatters.

    With seed bagging (``n_bags > 1``) every fold holds ``n_bags`` models, each with its own
    LightGBM seed and inner split (so its own tree count, ``bag_iterations[fold][bag]``);
    the fold's prediction is the mean of their log-odds. ``best_iterations`` is then the
    mean tree count of the fold's models.
    """

    oof: np.ndarray
    fold_auc: list[float]
    best_iterations: list[int]
    params: dict[str, Any]
    booster: lgb.Booster | None = None
    optimistic_fold_auc: list[float] = field(default_factory=list)
    bag_iterations: list[list[int]] = field(default_factory=list)
    # With a ``fold_setup``: each fold's own settings and inputs, chosen on its training part.
    fold_params: list[dict[str, Any]] = field(default_factory=list)
    fold_features: list[list[str]] = field(default_factory=list)

    @property
    def auc_mean(self) -> float:
        return float(np.mean(self.fold_auc))

    @property
    def auc_std(self) -> float:
        return float(np.std(self.fold_auc))

    @property
    def n_bags(self) -> int:
        return len(self.bag_iterations[0]) if self.bag_iterations else 1

    @property
    def bag_rounds(self) -> list[int]:
        """Tree count of each bag's final model: its mean over the folds."""
        if not self.bag_iterations:
            return [self.refit_rounds]
        per_bag = np.asarray(self.bag_iterations, dtype=np.float64).mean(axis=0)
        return [max(1, round(float(r))) for r in per_bag]

    @property
    def refit_rounds(self) -> int:
        return max(1, round(float(np.mean(self.best_iterations))))


class _StopOnInner:
    """Early stopping that watches only the ``inner`` validation set.

    LightGBM's own callback stops on whichever validation set stalls first; the scored fold
    is also evaluated (to record the optimistic curve), so it must never decide anything.
    """

    order = 30

    def __init__(self, rounds: int) -> None:
        self.rounds = rounds
        self.best_score = -np.inf
        self.best_iteration = 0
        self.best_results: list[Any] = []

    def __call__(self, env: Any) -> None:
        for data_name, metric, value, *_ in env.evaluation_result_list:
            if data_name != "inner" or metric != "auc":
                continue
            if value > self.best_score:
                self.best_score, self.best_iteration = value, env.iteration
                self.best_results = list(env.evaluation_result_list)
            elif env.iteration - self.best_iteration >= self.rounds:
                raise lgb.callback.EarlyStopException(self.best_iteration, self.best_results)


def bag_params(params: dict[str, Any], bag: int) -> dict[str, Any]:
    """Bag ``bag``'s parameters: the same settings, another seed (bag 0 keeps the seed)."""
    return {**params, "seed": int(params.get("seed", 0)) + 1000 * bag}


def _optimistic_auc(
    y: np.ndarray, boosters: Sequence[lgb.Booster], X_scored: pd.DataFrame, honest: float
) -> float:
    """The fold's ensemble AUC at the common tree count that suits the scored fold best.

    Every model of the fold is cut at the same count (or its own length if shorter), on a
    grid of at most 60 counts; the honest configuration is a candidate too, so the figure
    is never below the honest one. Scores are accumulated tree range by tree range, so each
    tree is evaluated once (cutting anew at each count cost ~30 times more at full size).
    """
    longest = max(b.current_iteration() for b in boosters)
    grid = np.unique(np.linspace(1, longest, num=min(longest, 60)).round().astype(int))
    totals = np.zeros((len(grid), len(X_scored)))
    for booster in boosters:
        length = booster.current_iteration()
        raw, done = np.zeros(len(X_scored)), 0
        for i, count in enumerate(grid):
            count = min(int(count), length)
            if count > done:
                raw = raw + booster.predict(
                    X_scored,
                    start_iteration=done,
                    num_iteration=count - done,
                    raw_score=True,
                    num_threads=1,
                )
                done = count
            totals[i] += raw
    return max(honest, *(float(roc_auc_score(y, total)) for total in totals))


def cross_validate_lgbm(
    X: pd.DataFrame,
    y: np.ndarray,
    folds: Sequence[Fold],
    params: dict[str, Any],
    *,
    num_boost_round: int = 2000,
    early_stopping_rounds: int = 100,
    inner_valid_share: float = 0.2,
    refit_folds: bool = True,
    refit: bool = True,
    n_bags: int = 1,
    fold_setup: FoldSetup | None = None,
    progress: ProgressFn | None = None,
) -> CVResult:
    """Stratified-CV LightGBM: honest out-of-fold predictions, fold AUCs, best iterations.

    Each outer fold's training part is split again (stratified, ``inner_valid_share`` held
    out); trees are added until the inner hold-out stops improving. With ``refit_folds`` a
    model of that many trees is then fitted on the whole training part (as the final model
    is fitted on all rows; measured on the real sample: +0.003 mean fold AUC, -100 cost),
    else the inner model is kept. That model scores the outer fold, which takes part in no
    choice. With ``n_bags`` > 1 this is repeated with other seeds and inner splits and the
    fold's models are averaged (log-odds). With ``refit`` a final booster is trained on all
    rows (``fit_final``). With ``fold_setup`` each fold's settings and inputs are what it
    returns for the fold's training rows (never the scored ones), recorded per fold.
    """
    if fold_setup and refit:
        raise ValueError("with a fold_setup the final model's settings are chosen by the caller")
    y = np.asarray(y)
    oof = np.full(len(y), np.nan)
    fold_auc: list[float] = []
    optimistic: list[float] = []
    best: list[int] = []
    bag_iterations: list[list[int]] = []
    seed = int(params.get("seed", 0))
    fold_params: list[dict[str, Any]] = []
    fold_features: list[list[str]] = []
    all_columns = list(X.columns)
    for k, (train_idx, valid_idx) in enumerate(folds):
        fold_base, columns, rounds = (
            fold_setup(k, np.asarray(train_idx)) if fold_setup else (params, all_columns, None)
        )
        Xk = X if columns == all_columns else X[columns]
        if fold_setup:
            fold_params.append(dict(fold_base))
            fold_features.append(list(columns))
        raw = np.zeros(len(valid_idx))
        boosters: list[lgb.Booster] = []
        iterations: list[int] = []
        for bag in range(n_bags):
            member = bag_params(fold_base, bag)
            if rounds is not None:
                # The tree count came with the settings (inner folds of the training part):
                # fitted on the whole training part, with the patience's extra trees grown
                # only for the optimistic figure's search, as below.
                booster = lgb.train(
                    member,
                    lgb.Dataset(Xk.iloc[train_idx], y[train_idx]),
                    num_boost_round=rounds + early_stopping_rounds,
                )
                raw += booster.predict(
                    Xk.iloc[valid_idx], num_iteration=rounds, raw_score=True, num_threads=1
                )
                boosters.append(booster)
                iterations.append(int(rounds))
                continue
            inner = StratifiedShuffleSplit(
                n_splits=1, test_size=inner_valid_share, random_state=seed + k + 1000 * bag
            )
            fit_pos, stop_pos = next(inner.split(np.zeros(len(train_idx)), y[train_idx]))
            fit_idx, stop_idx = train_idx[fit_pos], train_idx[stop_pos]
            train_set = lgb.Dataset(Xk.iloc[fit_idx], y[fit_idx], free_raw_data=False)
            stop_set = lgb.Dataset(Xk.iloc[stop_idx], y[stop_idx], reference=train_set)
            stopper = _StopOnInner(early_stopping_rounds)
            booster = lgb.train(
                {**member, "metric": "auc"},
                train_set,
                num_boost_round=num_boost_round,
                valid_sets=[stop_set],
                valid_names=["inner"],
                callbacks=[stopper],
            )
            iteration = stopper.best_iteration + 1
            if refit_folds:
                # The tree count is chosen; the fold's model is then fitted on its whole
                # training part (still never on the scored fold), as the final model will be.
                # It grows as many trees as the inner model did, so the optimistic figure's
                # search covers the same range.
                booster = lgb.train(
                    member,
                    lgb.Dataset(Xk.iloc[train_idx], y[train_idx]),
                    num_boost_round=booster.current_iteration(),
                )
            raw += booster.predict(
                Xk.iloc[valid_idx], num_iteration=iteration, raw_score=True, num_threads=1
            )
            boosters.append(booster)
            iterations.append(int(iteration))
        # The fold's prediction: the mean log-odds of its models, as the final averaged
        # booster computes it (fit_final).
        oof[valid_idx] = 1.0 / (1.0 + np.exp(-raw / n_bags))
        fold_auc.append(float(roc_auc_score(y[valid_idx], oof[valid_idx])))
        # Optimistic only: one tree count for all the fold's models, picked on the scored fold.
        optimistic.append(_optimistic_auc(y[valid_idx], boosters, Xk.iloc[valid_idx], fold_auc[-1]))
        best.append(max(1, round(float(np.mean(iterations)))))
        bag_iterations.append(iterations)
        if progress:
            trees = "/".join(str(i) for i in iterations)
            progress(
                f"fold {k + 1}/{len(folds)}: AUC {fold_auc[-1]:.4f} at {trees} trees"
                + (
                    " (chosen on the search's inner folds)"
                    if rounds is not None
                    else f" (chosen on the inner split{'s' if n_bags > 1 else ''})"
                )
            )
    result = CVResult(
        oof=oof,
        fold_auc=fold_auc,
        best_iterations=best,
        params=dict(params),
        optimistic_fold_auc=optimistic,
        bag_iterations=bag_iterations,
        fold_params=fold_params,
        fold_features=fold_features,
    )
    if refit:
        result.booster = fit_final(X, y, result)
    return result


def fit_booster(
    X: pd.DataFrame, y: np.ndarray, params: dict[str, Any], num_boost_round: int
) -> lgb.Booster:
    return lgb.train(params, lgb.Dataset(X, np.asarray(y)), num_boost_round=num_boost_round)


def fit_final(X: pd.DataFrame, y: np.ndarray, cv: CVResult) -> lgb.Booster:
    """The served model: each bag refitted on all rows with its mean tree count, averaged."""
    return average_boosters(
        [
            fit_booster(X, y, bag_params(cv.params, bag), rounds)
            for bag, rounds in enumerate(cv.bag_rounds)
        ]
    )


_VALUES_LINE = re.compile(r"^(leaf_value|internal_value)=(.*)$", re.MULTILINE)


def average_boosters(boosters: Sequence[lgb.Booster]) -> lgb.Booster:
    """One booster whose raw score is the mean of the boosters' raw scores (log-odds).

    A tree ensemble's raw score is the sum of its trees' outputs, so the mean of K ensembles
    is the union of their trees, each leaf's value divided by K. The result is an ordinary
    LightGBM model: the served bundle, the single-row predictor and TreeSHAP contributions
    (additive over trees) work on it unchanged.
    """
    if len(boosters) == 1:
        return boosters[0]
    scale = 1.0 / len(boosters)
    header: str | None = None
    trees: list[str] = []
    tail = ""
    for booster in boosters:
        text = booster.model_to_string(num_iteration=-1)
        body, marker, rest = text.partition("end of trees")
        head, *blocks = body.split("\nTree=")
        # Tree sizes are an optional index that no longer holds once trees are rescaled.
        head = "\n".join(line for line in head.split("\n") if not line.startswith("tree_sizes="))
        if header is None:
            header, tail = head, marker + rest
        elif head != header:
            raise ValueError("boosters to average must share their inputs and objective")
        for block in blocks:
            _, tree = block.split("\n", 1)

            def rescale(match: re.Match[str]) -> str:
                values = (float(v) * scale for v in match.group(2).split())
                return f"{match.group(1)}=" + " ".join(repr(v) for v in values)

            trees.append(_VALUES_LINE.sub(rescale, tree))
    assert header is not None
    numbered = "".join(f"\nTree={i}\n{tree}" for i, tree in enumerate(trees))
    return lgb.Booster(model_str=header + numbered + tail)


# --- business decision -------------------------------------------------------------------


@dataclass
class ThresholdResult:
    threshold: float
    cost: float
    cost_per_client: float
    thresholds: np.ndarray
    costs: np.ndarray


def choose_threshold(
    y: np.ndarray, p: np.ndarray, cost_fn: float = 10, cost_fp: float = 1
) -> ThresholdResult:
    """Threshold minimising ``cost_fn * FN + cost_fp * FP`` when refusing ``p >= threshold``.

    Candidates are every distinct predicted value (all other thresholds give one of these
    decisions) plus ``+inf`` (grant everyone). Ties go to the highest threshold: fewer refusals.
    """
    y = np.asarray(y, dtype=np.int64)
    p = np.asarray(p, dtype=np.float64)
    order = np.argsort(p, kind="stable")
    p_sorted, y_sorted = p[order], y[order]
    candidates = np.append(np.unique(p_sorted), np.inf)
    # Rows below the threshold are granted: count defaulters (FN) and good clients among them.
    granted = np.searchsorted(p_sorted, candidates, side="left")
    pos_below = np.concatenate([[0], np.cumsum(y_sorted)])[granted]
    neg_below = granted - pos_below
    fp = (len(y) - y.sum()) - neg_below
    costs = cost_fn * pos_below + cost_fp * fp
    best = int(np.flatnonzero(costs == costs.min())[-1])
    return ThresholdResult(
        threshold=float(candidates[best]),
        cost=float(costs[best]),
        cost_per_client=float(costs[best] / len(y)),
        thresholds=candidates,
        costs=costs.astype(np.float64),
    )


def decision_metrics(
    y: np.ndarray, p: np.ndarray, threshold: float, cost_fn: float = 10, cost_fp: float = 1
) -> dict[str, float]:
    y = np.asarray(y, dtype=np.int64)
    refused = np.asarray(p) >= threshold
    tp = int((refused & (y == 1)).sum())
    fp = int((refused & (y == 0)).sum())
    fn = int((~refused & (y == 1)).sum())
    tn = int((~refused & (y == 0)).sum())
    approved = tn + fn
    cost = cost_fn * fn + cost_fp * fp
    return {
        "n": len(y),
        "approval_rate": approved / len(y) if len(y) else float("nan"),
        "default_rate_approved": fn / approved if approved else float("nan"),
        "recall": tp / (tp + fn) if tp + fn else float("nan"),
        "precision": tp / (tp + fp) if tp + fp else float("nan"),
        "tpr": tp / (tp + fn) if tp + fn else float("nan"),
        "fpr": fp / (fp + tn) if fp + tn else float("nan"),
        "business_cost": float(cost),
        "business_cost_per_client": cost / len(y) if len(y) else float("nan"),
    }


@dataclass
class HonestDecision:
    """Decisions where no row took part in choosing its own threshold."""

    refused: np.ndarray  # bool per row
    fold_thresholds: list[float]
    cost: float
    fold_costs: list[float]


def cross_fitted_threshold(
    y: np.ndarray,
    p: np.ndarray,
    folds: Sequence[Fold],
    cost_fn: float = 10,
    cost_fp: float = 1,
) -> HonestDecision:
    """Each fold is decided at the threshold that minimises cost on the *other* folds.

    Choosing the threshold on the rows it is then scored on picks the luckiest cut of those
    very rows; this measures what a threshold chosen on past clients costs on new ones.
    ``p`` may be raw or calibrated: a monotone calibration leaves the decisions unchanged.
    """
    y = np.asarray(y, dtype=np.int64)
    p = np.asarray(p, dtype=np.float64)
    refused = np.zeros(len(y), dtype=bool)
    thresholds: list[float] = []
    costs: list[float] = []
    for train_idx, valid_idx in folds:
        t = choose_threshold(y[train_idx], p[train_idx], cost_fn, cost_fp).threshold
        refused[valid_idx] = p[valid_idx] >= t
        thresholds.append(t)
        m = decision_metrics(y[valid_idx], p[valid_idx], t, cost_fn, cost_fp)
        costs.append(m["business_cost"])
    return HonestDecision(refused, thresholds, float(sum(costs)), costs)


def bootstrap_intervals(
    y: np.ndarray,
    p: np.ndarray,
    refused: np.ndarray,
    *,
    cost_fn: float = 10,
    cost_fp: float = 1,
    n_boot: int = 500,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, list[float]]:
    """Percentile bootstrap intervals (clients resampled) of the pooled OOF AUC and the cost.

    The cost interval is for a population of the same size as the training set.
    """
    y = np.asarray(y, dtype=np.int64)
    rng = np.random.default_rng(seed)
    refused = np.asarray(refused, dtype=bool)
    unit_cost = np.where(refused, cost_fp * (y == 0), cost_fn * (y == 1)).astype(np.float64)
    aucs, costs = [], []
    for _ in range(n_boot):
        idx = rng.integers(0, len(y), len(y))
        if 0 < y[idx].sum() < len(idx):
            aucs.append(roc_auc_score(y[idx], p[idx]))
        costs.append(unit_cost[idx].sum())
    lo, hi = (1 - level) / 2, 1 - (1 - level) / 2
    return {
        "oof_auc": np.quantile(aucs, [lo, hi]).tolist(),
        "business_cost": np.quantile(costs, [lo, hi]).tolist(),
    }


def fold_interval(values: Sequence[float], level: float = 0.95) -> list[float]:
    """t interval of a mean over folds (fold spread): mean ± t * std / sqrt(k)."""
    from scipy import stats

    v = np.asarray(values, dtype=np.float64)
    half = stats.t.ppf(0.5 + level / 2, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v))
    return [float(v.mean() - half), float(v.mean() + half)]


# --- calibration -------------------------------------------------------------------------


def expected_calibration_error(
    y: np.ndarray, p: np.ndarray, n_bins: int = 10, strategy: str = "quantile"
) -> float:
    """ECE = sum over bins of (bin share) * |observed default rate - mean predicted|.

    ``quantile`` (default) uses equal-frequency bins: with an 8 % base rate, equal-width bins
    would put almost every client in the first one or two bins. ``uniform``: equal width.
    """
    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    if strategy == "quantile":
        edges = np.quantile(p, np.linspace(0, 1, n_bins + 1))
    elif strategy == "uniform":
        edges = np.linspace(0, 1, n_bins + 1)
    else:
        raise ValueError(f"unknown strategy {strategy!r}")
    bins = np.clip(np.searchsorted(edges[1:-1], p, side="right"), 0, n_bins - 1)
    ece = 0.0
    for b in np.unique(bins):
        mask = bins == b
        ece += mask.mean() * abs(y[mask].mean() - p[mask].mean())
    return float(ece)


def _fit_one(method: str, y: np.ndarray, p: np.ndarray) -> Calibrator:
    if method == "isotonic":
        iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(p, y)
        return Calibrator(
            method="isotonic",
            x=tuple(float(v) for v in iso.X_thresholds_),
            y=tuple(float(v) for v in iso.y_thresholds_),
        )
    if method == "platt":
        lr = LogisticRegression(C=1e6).fit(_logit(p).reshape(-1, 1), y)
        return Calibrator(
            method="platt", coef=float(lr.coef_[0, 0]), intercept=float(lr.intercept_[0])
        )
    raise ValueError(f"unknown calibration method {method!r}")


@dataclass
class CalibrationResult:
    calibrator: Calibrator
    method: str
    brier_raw: float
    brier_by_method: dict[str, float]
    ece_by_method: dict[str, float] = field(default_factory=dict)
    # Calibrated probabilities where each row's calibrator never saw that row.
    crossfit: np.ndarray = field(repr=False, default_factory=lambda: np.empty(0))


# Served calibrations must be smooth and strictly monotone: a what-if that changes the
# inputs must move the probability, and no client may be shown exactly 0 or 1. Isotonic
# regression is a step function (a dozen distinct probabilities on the synthetic model),
# so it is measured for comparison only.
SMOOTH_METHODS: tuple[str, ...] = ("platt",)
COMPARED_METHODS: tuple[str, ...] = ("isotonic",)


def fit_calibration(
    y: np.ndarray,
    p_raw: np.ndarray,
    folds: Sequence[Fold],
    methods: Sequence[str] = SMOOTH_METHODS,
    compared: Sequence[str] = COMPARED_METHODS,
) -> CalibrationResult:
    """Calibrate OOF probabilities; pick the eligible method with the lower *cross-fitted* Brier.

    Comparing on the rows a calibrator was fitted on would always favour isotonic (it can
    memorise), so each method is scored on folds it did not see, then refitted on all rows.
    ``compared`` methods are scored the same way but never chosen.
    """
    y = np.asarray(y, dtype=np.int64)
    crossfit: dict[str, np.ndarray] = {}
    for method in (*methods, *compared):
        pred = np.empty(len(y))
        for train_idx, valid_idx in folds:
            pred[valid_idx] = _fit_one(method, y[train_idx], p_raw[train_idx]).predict(
                p_raw[valid_idx]
            )
        crossfit[method] = pred
    briers = {m: float(brier_score_loss(y, crossfit[m])) for m in crossfit}
    eces = {m: expected_calibration_error(y, crossfit[m]) for m in crossfit}
    best = min(methods, key=lambda m: briers[m])
    return CalibrationResult(
        calibrator=_fit_one(best, y, p_raw),
        method=best,
        brier_raw=float(brier_score_loss(y, p_raw)),
        brier_by_method=briers,
        ece_by_method=eces,
        crossfit=crossfit[best],
    )


# --- class imbalance ---------------------------------------------------------------------


@dataclass
class ImbalanceChoice:
    chosen: Weighting
    results: dict[str, CVResult]
    auc: dict[str, float]
    cost_per_client: dict[str, float]
    reason: str
    fold_auc_gap: float  # mean per-fold AUC, weighted minus unweighted
    tolerance: float  # gaps within this are treated as noise


def compare_imbalance(
    X: pd.DataFrame,
    y: np.ndarray,
    folds: Sequence[Fold],
    *,
    seed: int,
    quick: bool = False,
    cost_fn: float = 10,
    cost_fp: float = 1,
    num_boost_round: int = 2000,
    early_stopping_rounds: int = 100,
    progress: ProgressFn | None = None,
) -> ImbalanceChoice:
    """CV with and without ``scale_pos_weight``: better AUC wins, business cost if within noise.

    Weighting only reshapes the scores; calibration maps both back to probabilities, so what
    matters is ranking quality (AUC) and the minimum reachable business cost. The minimum
    cost is measured on raw OOF scores: any monotone calibration leaves it unchanged.
    """
    results: dict[str, CVResult] = {}
    for weighting in ("none", "scale_pos_weight"):
        if progress:
            progress(f"class weighting: {weighting}")
        params = lgb_params(seed=seed, weighting=weighting, y=y, quick=quick, columns=X.columns)
        results[weighting] = cross_validate_lgbm(
            X,
            y,
            folds,
            params,
            num_boost_round=num_boost_round,
            early_stopping_rounds=early_stopping_rounds,
            refit=False,
            progress=progress,
        )
    auc = {w: float(roc_auc_score(y, r.oof)) for w, r in results.items()}
    cost = {
        w: choose_threshold(y, r.oof, cost_fn, cost_fp).cost_per_client for w, r in results.items()
    }
    # Paired fold differences (same folds): a gap within 2 standard errors is noise, and
    # then the business objective itself decides.
    diffs = np.subtract(results["scale_pos_weight"].fold_auc, results["none"].fold_auc)
    gap = float(diffs.mean())
    tolerance = max(AUC_TIE, 2 * float(diffs.std(ddof=1)) / np.sqrt(len(diffs)))
    if abs(gap) > tolerance:
        chosen: Weighting = "scale_pos_weight" if gap > 0 else "none"
        reason = (
            f"fold AUC higher by {abs(gap):.4f} (> 2 paired standard errors, {tolerance:.4f}); "
            f"OOF AUC {auc[chosen]:.4f} vs {min(auc.values()):.4f}"
        )
    else:
        chosen = "scale_pos_weight" if cost["scale_pos_weight"] < cost["none"] else "none"
        reason = (
            f"fold AUC gap {gap:+.4f} within noise ({tolerance:.4f}); lower or equal business "
            f"cost per client ({cost[chosen]:.4f} vs {max(cost.values()):.4f})"
        )
        if chosen == "none":
            reason += ": keep the simpler unweighted model"
    return ImbalanceChoice(chosen, results, auc, cost, reason, gap, tolerance)


# --- baselines ---------------------------------------------------------------------------


def _fold_aucs(y: np.ndarray, oof: np.ndarray, folds: Sequence[Fold]) -> list[float]:
    return [float(roc_auc_score(y[v], oof[v])) for _, v in folds]


def baseline_scores(
    X: pd.DataFrame,
    y: np.ndarray,
    folds: Sequence[Fold],
    *,
    application_features: Sequence[str],
    seed: int,
    quick: bool = False,
    num_boost_round: int = 2000,
    early_stopping_rounds: int = 100,
    progress: ProgressFn | None = None,
) -> dict[str, dict[str, float]]:
    """Mean/std fold AUC of simple models on the same folds as the full model."""
    y = np.asarray(y)
    out: dict[str, dict[str, float]] = {}

    def record(name: str, oof: np.ndarray) -> None:
        aucs = _fold_aucs(y, oof, folds)
        out[name] = {"auc_mean": float(np.mean(aucs)), "auc_std": float(np.std(aucs))}
        if progress:
            progress(f"baseline {name}: AUC {out[name]['auc_mean']:.4f}")

    dummy = cross_val_predict(
        DummyClassifier(strategy="prior"), X.iloc[:, :1], y, cv=folds, method="predict_proba"
    )
    record("dummy_prior", dummy[:, 1])

    app_cols = [c for c in application_features if c in X.columns]
    numeric = [c for c in app_cols if pd.api.types.is_float_dtype(X[c])]
    if numeric:
        # Stateless inf -> NaN before the pipeline; imputation/scaling are fitted per fold.
        values = X[numeric].to_numpy(dtype=np.float64)
        values[~np.isfinite(values)] = np.nan
        logreg = make_pipeline(
            SimpleImputer(strategy="median"),
            StandardScaler(),
            LogisticRegression(max_iter=2000),
        )
        proba = cross_val_predict(logreg, values, y, cv=folds, method="predict_proba")
        record("logreg_application", proba[:, 1])
    if app_cols:
        cv = cross_validate_lgbm(
            X[app_cols],
            y,
            folds,
            lgb_params(seed=seed, quick=quick),
            num_boost_round=num_boost_round,
            early_stopping_rounds=early_stopping_rounds,
            refit=False,
        )
        record("lgbm_application", cv.oof)
    return out


# --- fairness ----------------------------------------------------------------------------


def age_band(days_birth: pd.Series) -> pd.Series:
    """Age band from Kaggle's DAYS_BIRTH (negative days before the application)."""
    years = -pd.to_numeric(days_birth, errors="coerce") / 365.25
    bands = pd.cut(years, [-np.inf, 30, 40, 50, 60, np.inf], right=False, labels=AGE_BANDS)
    return bands.astype(object).where(bands.notna(), "unknown")


def fairness_report(
    y: np.ndarray,
    p: np.ndarray,
    threshold: float,
    groups: dict[str, pd.Series],
    cost_fn: float = 10,
    cost_fp: float = 1,
) -> dict[str, dict[str, float]]:
    """Decision metrics per group, keyed ``"<attribute>=<value>"``."""
    keys = ("n", "approval_rate", "default_rate_approved", "tpr", "fpr")
    report: dict[str, dict[str, float]] = {}
    for attribute, values in groups.items():
        labels = pd.Series(values).astype(object).where(pd.Series(values).notna(), "missing")
        labels = labels.to_numpy()
        # Age bands in age order, then anything else alphabetically.
        rank = {band: i for i, band in enumerate(AGE_BANDS)}
        for value in sorted(set(labels), key=lambda v: (rank.get(v, len(rank)), str(v))):
            mask = labels == value
            m = decision_metrics(y[mask], p[mask], threshold, cost_fn, cost_fp)
            report[f"{attribute}={value}"] = {k: m[k] for k in keys}
    return report


# --- importance --------------------------------------------------------------------------


def global_importance(
    booster: lgb.Booster, X: pd.DataFrame, *, sample: int = 2000, seed: int = 0
) -> pd.DataFrame:
    """Mean |SHAP| (LightGBM's TreeSHAP via ``pred_contrib``) on a sample, plus total gain."""
    rows = X.sample(min(sample, len(X)), random_state=seed) if len(X) > sample else X
    contrib = np.asarray(booster.predict(rows, pred_contrib=True, num_threads=1))
    mean_abs = np.abs(contrib[:, :-1]).mean(axis=0)  # last column is the expected value
    gain = booster.feature_importance(importance_type="gain")
    table = pd.DataFrame(
        {
            "feature": booster.feature_name(),
            "mean_abs_shap": mean_abs,
            "gain": gain,
            "gain_share": gain / gain.sum() if gain.sum() else gain,
        }
    )
    return table.sort_values("mean_abs_shap", ascending=False, ignore_index=True)


def summary_metrics(
    y: np.ndarray, p_raw: np.ndarray, p_cal: np.ndarray, fold_auc: Sequence[float]
) -> dict[str, float]:
    return {
        "auc_mean": float(np.mean(fold_auc)),
        "auc_std": float(np.std(fold_auc)),
        "oof_auc": float(roc_auc_score(y, p_raw)),
        "pr_auc": float(average_precision_score(y, p_raw)),
        "brier_raw": float(brier_score_loss(y, p_raw)),
        "brier": float(brier_score_loss(y, p_cal)),
        "ece_raw": expected_calibration_error(y, p_raw),
        "ece": expected_calibration_error(y, p_cal),
    }


# --- fairness: group differences ---------------------------------------------------------


def group_differences(
    y: np.ndarray, refused: np.ndarray, groups: pd.Series | np.ndarray
) -> dict[str, float]:
    """Demographic-parity and equalised-odds differences, as fairlearn defines them.

    The "selection" is a refusal (the adverse outcome). ``demographic_parity_difference`` is
    the largest gap in refusal rate between two groups; ``equalized_odds_difference`` the
    larger of the largest gaps in true-positive rate and in false-positive rate (fairlearn's
    ``demographic_parity_difference`` / ``equalized_odds_difference`` with the default
    ``method="between_groups"``). Rows whose group is missing are left out.
    """
    y = np.asarray(y, dtype=np.int64)
    refused = np.asarray(refused, dtype=bool)
    labels = pd.Series(np.asarray(groups, dtype=object))
    known = labels.notna().to_numpy() & (labels.astype(str) != "unknown").to_numpy()
    rates: dict[str, list[float]] = {"selection": [], "tpr": [], "fpr": []}
    for value in pd.unique(labels[known]):
        mask = known & (labels == value).to_numpy()
        rates["selection"].append(float(refused[mask].mean()))
        pos, neg = mask & (y == 1), mask & (y == 0)
        if pos.any():
            rates["tpr"].append(float(refused[pos].mean()))
        if neg.any():
            rates["fpr"].append(float(refused[neg].mean()))

    def spread(values: list[float]) -> float:
        return float(max(values) - min(values)) if len(values) > 1 else 0.0

    return {
        "demographic_parity_difference": spread(rates["selection"]),
        "equalized_odds_difference": max(spread(rates["tpr"]), spread(rates["fpr"])),
    }


def fairness_differences(
    y: np.ndarray,
    refused: np.ndarray,
    groups: dict[str, pd.Series],
    *,
    n_boot: int = 500,
    seed: int = 0,
) -> dict[str, dict[str, Any]]:
    """``group_differences`` per attribute, with percentile bootstrap 95% intervals."""
    rng = np.random.default_rng(seed)
    y = np.asarray(y)
    refused = np.asarray(refused, dtype=bool)
    out: dict[str, dict[str, Any]] = {}
    for attribute, values in groups.items():
        labels = pd.Series(values).reset_index(drop=True)
        point = group_differences(y, refused, labels)
        draws: dict[str, list[float]] = {k: [] for k in point}
        for _ in range(n_boot):
            idx = rng.integers(0, len(y), len(y))
            for k, v in group_differences(y[idx], refused[idx], labels.iloc[idx]).items():
                draws[k].append(v)
        out[attribute] = {
            **point,
            **{f"{k}_ci95": np.quantile(v, [0.025, 0.975]).tolist() for k, v in draws.items()},
        }
    return out
