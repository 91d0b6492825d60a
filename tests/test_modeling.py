"""Pure modelling functions: threshold, calibration, ECE, CV leakage, baselines, fairness."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_classification
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import brier_score_loss, roc_auc_score

from serving_core.bundle import Calibrator
from training import modeling

os.environ.setdefault("OMP_NUM_THREADS", "1")

FAST = {"num_boost_round": 200, "early_stopping_rounds": 20}


def _frame(n: int = 1200, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    X, y = make_classification(
        n_samples=n,
        n_features=6,
        n_informative=3,
        n_redundant=0,
        weights=[0.85],
        random_state=seed,
    )
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    frame["cat"] = pd.Categorical(np.where(X[:, 0] > 0, "a", "b"), categories=["a", "b", "c"])
    return frame, y


# --- threshold ---------------------------------------------------------------------------


def test_threshold_exact_small_case() -> None:
    y = np.array([0, 0, 0, 1, 0, 1, 1])
    p = np.array([0.05, 0.1, 0.2, 0.3, 0.4, 0.6, 0.9])
    result = modeling.choose_threshold(y, p, cost_fn=10, cost_fp=1)
    # Refusing from 0.3 up catches every defaulter at the price of one good client (0.4).
    assert result.threshold == pytest.approx(0.3)
    assert result.cost == 1
    assert result.cost_per_client == pytest.approx(1 / 7)
    # Granting everyone costs 3 missed defaulters.
    assert result.costs[np.isinf(result.thresholds)][0] == 30


def test_threshold_matches_bayes_optimum_on_calibrated_scores() -> None:
    # With calibrated p, refusing costs cost_fp*(1-p) and granting costs cost_fn*p, so the
    # optimum is p = cost_fp / (cost_fp + cost_fn) = 1/11.
    rng = np.random.default_rng(1)
    p = rng.uniform(0, 0.4, 200_000)
    y = (rng.uniform(size=p.size) < p).astype(int)
    result = modeling.choose_threshold(y, p, cost_fn=10, cost_fp=1)
    assert result.threshold == pytest.approx(1 / 11, abs=0.01)
    assert result.cost == result.costs.min()


def test_decision_metrics_hand_case() -> None:
    y = np.array([1, 1, 0, 0, 0])
    p = np.array([0.9, 0.1, 0.8, 0.2, 0.1])
    m = modeling.decision_metrics(y, p, threshold=0.5, cost_fn=10, cost_fp=1)
    assert m["approval_rate"] == pytest.approx(3 / 5)
    assert m["recall"] == pytest.approx(0.5)
    assert m["precision"] == pytest.approx(0.5)
    assert m["fpr"] == pytest.approx(1 / 3)
    assert m["default_rate_approved"] == pytest.approx(1 / 3)
    assert m["business_cost"] == 11


# --- calibration -------------------------------------------------------------------------


def test_ece_hand_case() -> None:
    y = np.array([0, 1, 1, 1])
    p = np.array([0.1, 0.1, 0.9, 0.9])
    # Bin 0.1: observed 0.5 -> 0.4 off; bin 0.9: observed 1.0 -> 0.1 off; each half the rows.
    assert modeling.expected_calibration_error(y, p, strategy="uniform") == pytest.approx(0.25)
    assert modeling.expected_calibration_error(y, p, strategy="quantile") == pytest.approx(0.25)
    assert modeling.expected_calibration_error(np.array([0, 1]), np.array([0.5, 0.5])) == 0


def test_calibration_improves_brier_on_miscalibrated_scores() -> None:
    rng = np.random.default_rng(0)
    p_true = rng.uniform(0, 0.3, 6000)
    y = (rng.uniform(size=p_true.size) < p_true).astype(int)
    p_raw = p_true**0.4  # same ranking, far too high
    folds = modeling.make_folds(y, 5, seed=0)
    result = modeling.fit_calibration(y, p_raw, folds)
    assert result.method in modeling.SMOOTH_METHODS
    assert result.brier_by_method[result.method] == min(
        result.brier_by_method[m] for m in modeling.SMOOTH_METHODS
    )
    assert brier_score_loss(y, result.crossfit) < 0.8 * result.brier_raw
    assert modeling.expected_calibration_error(y, result.crossfit) < 0.02
    assert modeling.expected_calibration_error(y, p_raw) > 0.2


def test_served_calibration_is_smooth_strictly_monotone_and_never_0_or_1() -> None:
    """What-ifs must move the probability: every distinct raw score keeps a distinct,
    ordered probability strictly between 0 and 1 (isotonic steps would merge them)."""
    rng = np.random.default_rng(2)
    p_raw = rng.beta(1, 9, 5000)
    y = (rng.uniform(size=p_raw.size) < p_raw).astype(int)
    result = modeling.fit_calibration(y, p_raw, modeling.make_folds(y, 5, seed=0))
    grid = np.sort(np.concatenate([p_raw, [0.0, 1e-9, 1 - 1e-9, 1.0]]))
    calibrated = result.calibrator.predict(grid)
    assert np.all(np.diff(calibrated)[np.diff(grid) > 0] > 0)
    assert calibrated.min() > 0 and calibrated.max() < 1
    assert len(np.unique(result.calibrator.predict(p_raw))) == len(np.unique(p_raw))
    # Isotonic is measured beside it, never served.
    assert set(result.brier_by_method) == {"platt", "isotonic"} == set(result.ece_by_method)
    assert result.method == "platt"


def test_isotonic_json_calibrator_reproduces_sklearn() -> None:
    rng = np.random.default_rng(3)
    p = rng.uniform(size=500)
    y = (rng.uniform(size=500) < p**2).astype(int)
    calibrator = modeling._fit_one("isotonic", y, p)
    restored = Calibrator.from_dict(calibrator.to_dict())
    grid = np.linspace(-0.1, 1.1, 301)
    expected = IsotonicRegression(out_of_bounds="clip", y_min=0, y_max=1).fit(p, y).predict(grid)
    np.testing.assert_allclose(restored.predict(grid), expected, atol=1e-12)


# --- cross-validation --------------------------------------------------------------------


def test_shuffled_target_gives_chance_auc() -> None:
    X, y = _frame(1500, seed=1)
    y = np.random.default_rng(0).permutation(y)
    folds = modeling.make_folds(y, 3, seed=0)
    cv = modeling.cross_validate_lgbm(
        X, y, folds, modeling.lgb_params(seed=0, quick=True), refit=False, **FAST
    )
    assert 0.4 < roc_auc_score(y, cv.oof) < 0.6


def test_oof_predictions_come_from_models_that_did_not_see_the_row() -> None:
    # A unique row key lets an overfitting model memorise labels: in-sample it ranks them
    # almost perfectly, while a genuine out-of-fold prediction can only guess.
    rng = np.random.default_rng(0)
    n = 600
    y = rng.integers(0, 2, n)
    X = pd.DataFrame({"key": rng.permutation(n).astype(float), "noise": rng.normal(size=n)})
    params = modeling.lgb_params(
        seed=0,
        num_leaves=64,
        min_child_samples=1,
        min_data_in_bin=1,
        lambda_l2=0.0,
        feature_fraction=1.0,
        bagging_freq=0,
        learning_rate=0.3,
    )
    folds = modeling.make_folds(y, 4, seed=0)
    cv = modeling.cross_validate_lgbm(
        X, y, folds, params, num_boost_round=300, early_stopping_rounds=300
    )
    assert not np.isnan(cv.oof).any()
    assert sorted(np.concatenate([v for _, v in folds]).tolist()) == list(range(n))
    assert roc_auc_score(y, cv.oof) < 0.6
    in_sample = modeling.fit_booster(X, y, params, 300).predict(X, num_threads=1)
    assert roc_auc_score(y, in_sample) > 0.95


def test_scored_fold_takes_no_part_in_choosing_the_tree_count() -> None:
    """Honest CV: shuffling the labels of one outer fold changes neither that fold's tree
    count nor its predictions (they were chosen and fitted without it); only its AUC."""
    X, y = _frame(1500, seed=4)
    folds = modeling.make_folds(y, 3, seed=0)
    params = modeling.lgb_params(seed=0, quick=True)
    cv = modeling.cross_validate_lgbm(X, y, folds, params, refit=False, **FAST)
    scored = folds[0][1]
    y_shuffled = y.copy()
    y_shuffled[scored] = np.random.default_rng(0).permutation(y[scored])
    again = modeling.cross_validate_lgbm(X, y_shuffled, folds, params, refit=False, **FAST)
    assert again.best_iterations[0] == cv.best_iterations[0]
    np.testing.assert_array_equal(again.oof[scored], cv.oof[scored])
    # The optimistic figure picks the scored fold's best tree count: never below the honest.
    assert all(o >= h - 1e-9 for o, h in zip(cv.optimistic_fold_auc, cv.fold_auc, strict=True))


def test_cross_fitted_threshold_never_sees_the_fold_it_decides() -> None:
    rng = np.random.default_rng(5)
    p = rng.beta(1, 9, 3000)
    y = (rng.uniform(size=p.size) < p).astype(int)
    folds = modeling.make_folds(y, 5, seed=0)
    honest = modeling.cross_fitted_threshold(y, p, folds, cost_fn=10, cost_fp=1)
    for (train_idx, valid_idx), t in zip(folds, honest.fold_thresholds, strict=True):
        assert t == modeling.choose_threshold(y[train_idx], p[train_idx]).threshold
        np.testing.assert_array_equal(honest.refused[valid_idx], p[valid_idx] >= t)
    total = modeling.decision_metrics(y, honest.refused.astype(float), 0.5)["business_cost"]
    assert honest.cost == total == sum(honest.fold_costs)
    # The threshold chosen on the very rows it is costed on can only look cheaper.
    assert modeling.choose_threshold(y, p).cost <= honest.cost
    intervals = modeling.bootstrap_intervals(y, p, honest.refused, n_boot=200, seed=0)
    low, high = intervals["business_cost"]
    assert low < honest.cost < high
    low, high = intervals["oof_auc"]
    assert low < roc_auc_score(y, p) < high


def test_cv_result_fields_and_refit() -> None:
    X, y = _frame()
    folds = modeling.make_folds(y, 3, seed=0)
    cv = modeling.cross_validate_lgbm(X, y, folds, modeling.lgb_params(seed=0, quick=True), **FAST)
    assert len(cv.fold_auc) == len(cv.best_iterations) == 3
    assert cv.auc_mean > 0.8
    assert cv.booster is not None
    assert cv.booster.current_iteration() == cv.refit_rounds
    again = modeling.cross_validate_lgbm(
        X, y, folds, modeling.lgb_params(seed=0, quick=True), refit=False, **FAST
    )
    np.testing.assert_array_equal(cv.oof, again.oof)  # deterministic


def test_compare_imbalance_records_both_and_a_reason() -> None:
    X, y = _frame()
    folds = modeling.make_folds(y, 3, seed=0)
    choice = modeling.compare_imbalance(X, y, folds, seed=0, quick=True, **FAST)
    assert set(choice.auc) == {"none", "scale_pos_weight"}
    assert choice.chosen in choice.auc
    assert choice.reason
    weighted = choice.results["scale_pos_weight"].params["scale_pos_weight"]
    assert weighted == pytest.approx((y == 0).sum() / (y == 1).sum())
    fold_gap = np.mean(
        np.subtract(choice.results["scale_pos_weight"].fold_auc, choice.results["none"].fold_auc)
    )
    assert choice.fold_auc_gap == pytest.approx(fold_gap)
    if abs(choice.fold_auc_gap) > choice.tolerance:
        better = "scale_pos_weight" if fold_gap > 0 else "none"
        assert choice.chosen == better
    else:
        assert choice.cost_per_client[choice.chosen] == min(choice.cost_per_client.values())


def test_baselines_use_the_same_folds() -> None:
    X, y = _frame()
    folds = modeling.make_folds(y, 3, seed=0)
    scores = modeling.baseline_scores(
        X, y, folds, application_features=["f0", "f1", "f2", "cat"], seed=0, quick=True, **FAST
    )
    assert scores["dummy_prior"]["auc_mean"] == pytest.approx(0.5)
    assert scores["logreg_application"]["auc_mean"] > 0.7
    assert scores["lgbm_application"]["auc_mean"] > 0.7


# --- fairness and importance -------------------------------------------------------------


def test_age_band_edges() -> None:
    days = pd.Series([-29.9 * 365.25, -30 * 365.25, -45 * 365.25, -60 * 365.25, np.nan])
    assert modeling.age_band(days).tolist() == ["<30", "30-40", "40-50", "60+", "unknown"]


def test_fairness_report_per_group() -> None:
    y = np.array([1, 0, 0, 1, 0, 0])
    p = np.array([0.9, 0.6, 0.1, 0.2, 0.1, 0.1])
    gender = pd.Series(["F", "F", "F", "M", "M", None])
    report = modeling.fairness_report(y, p, 0.5, {"CODE_GENDER": gender})
    assert set(report) == {"CODE_GENDER=F", "CODE_GENDER=M", "CODE_GENDER=missing"}
    f, m = report["CODE_GENDER=F"], report["CODE_GENDER=M"]
    assert f["approval_rate"] == pytest.approx(1 / 3)
    assert f["tpr"] == 1 and f["fpr"] == pytest.approx(0.5)
    assert m["approval_rate"] == 1 and m["tpr"] == 0
    assert m["default_rate_approved"] == pytest.approx(0.5)


def test_group_differences_follow_fairlearns_definitions() -> None:
    """Refusal is the selection: DP difference = largest refusal-rate gap; EO difference =
    the larger of the TPR and FPR gaps (fairlearn, method="between_groups")."""
    y = np.array([1, 0, 0, 1, 0, 0, 1])
    refused = np.array([1, 1, 0, 0, 0, 0, 1], dtype=bool)
    gender = pd.Series(["F", "F", "F", "M", "M", "M", None])
    d = modeling.group_differences(y, refused, gender)
    assert d["demographic_parity_difference"] == pytest.approx(2 / 3)
    assert d["equalized_odds_difference"] == pytest.approx(1.0)  # TPR 1 vs 0; FPR 0.5 vs 0
    same = modeling.group_differences(y, refused, pd.Series(["A"] * 7))
    assert same == {"demographic_parity_difference": 0.0, "equalized_odds_difference": 0.0}
    report = modeling.fairness_differences(y, refused, {"CODE_GENDER": gender}, n_boot=50)
    low, high = report["CODE_GENDER"]["demographic_parity_difference_ci95"]
    assert 0 <= low <= high <= 1


def test_fairness_gate_names_each_widened_difference() -> None:
    from training.train import _fairness_regressions

    champion = {"fairness_age_band_dp_diff": 0.20, "fairness_CODE_GENDER_dp_diff": 0.05}
    new = {"fairness_age_band_dp_diff": 0.26, "fairness_CODE_GENDER_dp_diff": 0.09}
    regressions = _fairness_regressions(new, champion, margin=0.05)
    assert len(regressions) == 1 and regressions[0].startswith("fairness_age_band_dp_diff")
    assert _fairness_regressions(new, {}, margin=0.05) == []  # nothing to compare with


def test_global_importance_ranks_the_signal_first() -> None:
    rng = np.random.default_rng(0)
    n = 2000
    X = pd.DataFrame({"signal": rng.normal(size=n), "noise": rng.normal(size=n)})
    y = (X["signal"] + 0.3 * rng.normal(size=n) > 1).astype(int).to_numpy()
    booster = modeling.fit_booster(X, y, modeling.lgb_params(seed=0, quick=True), 50)
    table = modeling.global_importance(booster, X, sample=500)
    assert table["feature"].iloc[0] == "signal"
    assert table["mean_abs_shap"].iloc[0] > 5 * table["mean_abs_shap"].iloc[1]
    assert table["gain_share"].sum() == pytest.approx(1.0)


# --- seed bagging and monotone constraints -----------------------------------------------


def test_average_boosters_serves_the_mean_log_odds_with_exact_contributions() -> None:
    """The averaged model is one ordinary booster: raw score = mean of the models' raw
    scores, probability = its sigmoid, TreeSHAP contributions = the mean contributions."""
    X, y = _frame(800, seed=6)
    boosters = [
        modeling.fit_booster(X, y, modeling.bag_params(modeling.lgb_params(seed=0), bag), n)
        for bag, n in enumerate((40, 25, 60))
    ]
    merged = modeling.average_boosters(boosters)
    assert merged.num_trees() == 125
    raws = np.mean([b.predict(X, raw_score=True) for b in boosters], axis=0)
    np.testing.assert_allclose(merged.predict(X, raw_score=True), raws, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(merged.predict(X), 1 / (1 + np.exp(-raws)), rtol=1e-9)
    contributions = np.mean([b.predict(X, pred_contrib=True) for b in boosters], axis=0)
    np.testing.assert_allclose(merged.predict(X, pred_contrib=True), contributions, atol=1e-9)
    # The bagged models differ (other seeds), so the mean is not any one of them.
    assert not np.allclose(boosters[0].predict(X, raw_score=True), raws)
    assert modeling.average_boosters(boosters[:1]) is boosters[0]


def test_bagged_cv_is_honest_and_serves_what_it_measured() -> None:
    X, y = _frame(1500, seed=4)
    folds = modeling.make_folds(y, 3, seed=0)
    params = modeling.lgb_params(seed=0, quick=True)
    cv = modeling.cross_validate_lgbm(X, y, folds, params, n_bags=3, **FAST)
    assert cv.n_bags == 3 and len(cv.bag_iterations) == 3
    assert all(len(fold) == 3 for fold in cv.bag_iterations)
    assert len(cv.bag_rounds) == 3
    assert cv.booster is not None and cv.booster.num_trees() == sum(cv.bag_rounds)
    single = modeling.cross_validate_lgbm(X, y, folds, params, refit=False, **FAST)
    # Bag 0 is the single model: same seed, same inner split, same tree count.
    assert [fold[0] for fold in cv.bag_iterations] == single.best_iterations
    assert not np.allclose(cv.oof, single.oof)
    # Shuffling the scored fold's labels changes none of its models or predictions.
    scored = folds[1][1]
    y_shuffled = y.copy()
    y_shuffled[scored] = np.random.default_rng(1).permutation(y[scored])
    again = modeling.cross_validate_lgbm(
        X, y_shuffled, folds, params, n_bags=3, refit=False, **FAST
    )
    assert again.bag_iterations[1] == cv.bag_iterations[1]
    np.testing.assert_array_equal(again.oof[scored], cv.oof[scored])
    assert all(o >= h - 1e-9 for o, h in zip(cv.optimistic_fold_auc, cv.fold_auc, strict=True))


def test_monotone_constraints_follow_credit_logic() -> None:
    columns = [
        "EXT_SOURCE_1",
        "EXT_SOURCE_STD",
        "EXT_SOURCE_MEAN",
        "EXT_SOURCE_PROD",
        "AMT_CREDIT",
        "DAYS_BIRTH",
        "INST_DPD_MEAN",
        "BB_LATE_SHARE_MAX",
        "POS_SK_DPD_DEF_MAX",
        "BUREAU_CREDIT_DAY_OVERDUE_MAX",
        "INST_PAID_SHARE_MEAN",
        "BUREAU_AMT_CREDIT_SUM_DEBT_SUM_ACTIVE",
    ]
    assert modeling.monotone_constraints(columns) == [-1, 0, -1, -1, 0, 0, 1, 1, 1, 1, 0, 0]
    assert "monotone_constraints" not in modeling.lgb_params(seed=0, columns=["AMT_CREDIT"])


def test_higher_external_score_never_raises_the_risk() -> None:
    """Data where the risk rises again at high external scores (a pocket of bad clients):
    unconstrained, the model follows it; constrained, the risk never rises with the score."""
    rng = np.random.default_rng(7)
    n = 4000
    score = rng.uniform(size=n)
    other = rng.normal(size=n)
    risk = 0.3 - 0.25 * score + np.where(score > 0.8, 0.3, 0.0)
    y = (rng.uniform(size=n) < risk).astype(int)
    X = pd.DataFrame({"EXT_SOURCE_3": score, "AMT_CREDIT": other})
    grid = pd.DataFrame({"EXT_SOURCE_3": np.linspace(0, 1, 201), "AMT_CREDIT": 0.0})

    def fitted(columns: list[str] | None) -> np.ndarray:
        params = modeling.lgb_params(seed=0, quick=True, columns=columns)
        return modeling.fit_booster(X, y, params, 100).predict(grid, num_threads=1)

    assert np.diff(fitted(None)).max() > 0.05  # the pocket is learnt without the constraint
    assert np.diff(fitted(list(X.columns))).max() <= 1e-12


def test_optimistic_auc_is_the_best_common_tree_count_on_the_scored_rows() -> None:
    X, y = _frame(900, seed=8)
    params = modeling.lgb_params(seed=0, quick=True)
    boosters = [
        modeling.fit_booster(X, y, modeling.bag_params(params, b), n)
        for b, n in enumerate((30, 45))
    ]
    expected = max(
        roc_auc_score(
            y,
            np.mean(
                [
                    b.predict(X, num_iteration=min(t, b.current_iteration()), raw_score=True)
                    for b in boosters
                ],
                axis=0,
            ),
        )
        for t in range(1, 46)
    )
    assert modeling._optimistic_auc(y, boosters, X, honest=0.0) == pytest.approx(expected)
    assert modeling._optimistic_auc(y, boosters, X, honest=1.0) == 1.0
