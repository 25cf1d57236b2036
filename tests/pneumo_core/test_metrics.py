from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from pneumo_core.metrics import (
    METRICS,
    bootstrap_interval,
    compute_metrics,
    get_metric,
    hs_pauc,
    rw_auc,
    threshold_for_sensitivity,
    wilson_interval,
    youden_threshold,
)
from pneumo_errors import MetricError

Y = np.array([0, 0, 0, 1, 1, 1])


def test_perfect_ranking_scores_one():
    p = np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.9])
    m = compute_metrics(Y, p)
    assert m["auc"] == m["hs_pauc"] == m["rw_auc"] == m["pr_auc"] == 1.0
    assert m["sensitivity"] == m["specificity"] == m["accuracy"] == m["f1"] == 1.0


def test_inverted_ranking_by_hand():
    p = np.array([0.9, 0.8, 0.7, 0.3, 0.2, 0.1])
    # Every positive below every negative: AUC 0. The partial AUC over FPR' <= 0.1 of the
    # swapped problem is 0; McClish: 0.5 * (1 + (0 - 0.005) / (0.1 - 0.005)) = 9/19.
    assert compute_metrics(Y, p)["auc"] == 0.0
    assert hs_pauc(Y, p, tau=0.9) == pytest.approx(9 / 19)
    assert rw_auc(Y, p, tau=0.9, w=0.5) == pytest.approx(0.5 * 0 + 0.5 * 9 / 19)
    assert compute_metrics(Y, p)["sensitivity"] == 0.0


def test_all_ties_is_chance():
    p = np.full(6, 0.5)
    assert compute_metrics(Y, p)["auc"] == 0.5
    assert hs_pauc(Y, p) == pytest.approx(0.5)
    assert rw_auc(Y, p) == pytest.approx(0.5)
    m = compute_metrics(Y, p, threshold=0.5)
    assert (m["sensitivity"], m["specificity"]) == (1.0, 0.0)


def test_rw_auc_matches_its_definition():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 200)
    p = np.clip(y * 0.3 + rng.normal(0.4, 0.2, 200), 0, 1)
    expected = 0.7 * roc_auc_score(y, p) + 0.3 * roc_auc_score(1 - y, -p, max_fpr=0.2)
    assert rw_auc(y, p, tau=0.8, w=0.3) == pytest.approx(expected)


def test_partial_auc_rewards_high_sensitivity_region():
    # Same AUC, different behaviour at high sensitivity: b ranks its lowest positive last.
    y = np.array([0] * 10 + [1] * 10)
    a = np.r_[np.linspace(0.0, 0.45, 10), np.linspace(0.3, 1.0, 10)]
    b = np.r_[np.linspace(0.2, 0.6, 10), [0.05], np.linspace(0.61, 1.0, 9)]
    assert hs_pauc(y, b) < hs_pauc(y, a)


def test_threshold_metrics_by_hand():
    p = np.array([0.1, 0.6, 0.4, 0.7, 0.3, 0.9])  # at 0.5: TN, FP, TN, TP, FN, TP
    m = compute_metrics(Y, p, threshold=0.5)
    assert m["sensitivity"] == pytest.approx(2 / 3)
    assert m["specificity"] == pytest.approx(2 / 3)
    assert m["precision"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(2 / 3)
    assert m["accuracy"] == pytest.approx(4 / 6)


def test_one_class_missing_is_a_clear_error():
    with pytest.raises(MetricError, match="class index 0 is missing"):
        compute_metrics(np.ones(4), np.array([0.1, 0.2, 0.3, 0.4]))


def test_nan_scores_are_a_clear_error():
    with pytest.raises(MetricError, match="NaN"):
        compute_metrics(Y, np.array([0.1, np.nan, 0.3, 0.7, 0.8, 0.9]))


def test_multiclass_macro_one_vs_rest():
    y = np.array([0, 1, 2, 0, 1, 2])
    perfect = np.eye(3)[y] * 0.8 + 0.1
    m = compute_metrics(y, perfect)
    assert m["auc"] == m["rw_auc"] == m["accuracy"] == m["sensitivity"] == 1.0
    wrong = np.eye(3)[(y + 1) % 3] * 0.8 + 0.1
    assert compute_metrics(y, wrong)["accuracy"] == 0.0


def test_threshold_for_sensitivity_and_youden():
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    p = np.array([0.1, 0.2, 0.35, 0.6, 0.3, 0.5, 0.8, 0.9])
    t = threshold_for_sensitivity(y, p, 0.75)
    assert t == 0.5  # the 3rd of 4 positives from the top
    assert compute_metrics(y, p, threshold=t)["sensitivity"] == 0.75
    assert threshold_for_sensitivity(y, p, 1.0) == 0.3
    assert youden_threshold(y, p) == pytest.approx(0.8)  # sens 0.5, spec 1.0 vs 0.75/0.75


def test_wilson_interval_known_value():
    low, high = wilson_interval(8, 10)
    assert low == pytest.approx(0.4902, abs=1e-4) and high == pytest.approx(0.9433, abs=1e-4)


def test_bootstrap_interval_contains_estimate_and_is_seeded():
    rng = np.random.default_rng(0)
    y = np.r_[np.zeros(60), np.ones(60)].astype(int)
    p = np.clip(y * 0.3 + rng.normal(0.35, 0.2, 120), 0, 1)
    low, high = bootstrap_interval("auc", y, p, seed=3, n_boot=300)
    assert low < compute_metrics(y, p)["auc"] < high
    assert (low, high) == bootstrap_interval("auc", y, p, seed=3, n_boot=300)


@pytest.mark.parametrize("name", list(METRICS))
def test_every_registered_metric_is_finite_on_a_normal_case(name):
    p = np.array([0.2, 0.6, 0.1, 0.9, 0.4, 0.7])
    assert np.isfinite(get_metric(name).fn(Y, p, threshold=0.5, tau=0.9, w=0.5))


def test_unknown_metric_lists_valid_names():
    with pytest.raises(KeyError, match="unknown metric 'aucc'; valid: rw_auc, auc"):
        get_metric("aucc")
