"""Evaluation helpers of the final report on hand-checked numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from results.report.evaluation import (
    binary_evaluation,
    calibration,
    confusion_counts,
    subgroup_evaluation,
    subgroup_of,
    threshold_summary,
)

Y = np.array([0, 0, 0, 1, 1, 1, 1])
P = np.array([0.1, 0.6, 0.3, 0.4, 0.8, 0.9, 0.7])


def test_confusion_counts_use_p_at_or_above_the_threshold():
    assert confusion_counts(Y, P, 0.5) == {"tp": 3, "fp": 1, "fn": 1, "tn": 2}
    assert confusion_counts(Y, P, 0.4) == {"tp": 4, "fp": 1, "fn": 0, "tn": 2}


def test_binary_evaluation_values_and_per_class_mapping():
    result = binary_evaluation(Y, P, 0.5, class_names=("NORMAL", "PNEUMONIA"), seed=0, n_boot=100)
    m = result["metrics"]
    assert m["sensitivity"]["value"] == pytest.approx(3 / 4)
    assert m["specificity"]["value"] == pytest.approx(2 / 3)
    assert m["ppv"]["value"] == pytest.approx(3 / 4) and m["npv"]["value"] == pytest.approx(2 / 3)
    assert m["accuracy"]["count"] == "5/7"
    assert m["auc"]["value"] == pytest.approx(11 / 12)  # 11 of 12 pairs ordered
    normal, pneumonia = result["per_class"]["NORMAL"], result["per_class"]["PNEUMONIA"]
    assert normal["recall"] is m["specificity"] and normal["precision"] is m["npv"]
    assert pneumonia["recall"] is m["sensitivity"] and pneumonia["support"] == 4
    assert normal["f1"] == pytest.approx(2 * 2 / (2 * 2 + 1 + 1))
    assert result["confusion_matrix"]["matrix"] == [[2, 1], [1, 3]]
    for metric in m.values():
        if "low" in metric:
            assert metric["low"] <= metric["value"] <= metric["high"]


def test_a_proportion_with_no_denominator_is_nan_not_an_error():
    result = binary_evaluation(Y, P, 0.95, class_names=("N", "P"), seed=0, n_boot=60)
    assert math.isnan(result["metrics"]["ppv"]["value"])  # nothing predicted positive
    assert result["metrics"]["sensitivity"]["value"] == 0.0


def test_calibration_bins_cover_every_prediction_including_one():
    table = calibration([0, 1, 1, 0], [0.0, 1.0, 0.95, 0.05], bins=10)
    assert sum(b["count"] for b in table["bins"]) == 4
    assert table["bins"][-1]["high"] == 1.0 and table["bins"][-1]["count"] == 2
    assert table["brier"] == pytest.approx((0 + 0 + 0.05**2 + 0.05**2) / 4)


def test_subgroups_from_kermany_names():
    assert subgroup_of("test/PNEUMONIA/person1_bacteria_1.jpeg", 1) == "bacteria"
    assert subgroup_of("test/PNEUMONIA/person7_VIRUS_3.jpeg", 1) == "virus"
    assert subgroup_of("test/NORMAL/IM-0001-0001.jpeg", 0) == "negative"
    assert subgroup_of("x/img.png", 1) == "unnamed positive"
    groups = ["negative", "negative", "negative", "virus", "bacteria", "bacteria", "virus"]
    result = subgroup_evaluation(Y, P, groups, 0.5)
    assert result["bacteria"]["sensitivity"]["count"] == "2/2"
    assert result["virus"]["sensitivity"]["count"] == "1/2"
    assert result["virus"]["auc_vs_negatives"] == pytest.approx(5 / 6)
    plain = ["negative"] * 3 + ["unnamed positive"] * 4
    assert subgroup_evaluation(Y, P, plain, 0.5) == {}


def test_threshold_summary_rows():
    table = threshold_summary(Y, P, {"low": 0.35, "half": 0.5})
    assert table["low"]["sensitivity"] == 1.0 and table["low"]["specificity"] == pytest.approx(
        2 / 3
    )
    assert table["half"]["tp"] == 3


def test_calibration_has_ece_bin_counts_and_a_brier_interval():
    from results.report.evaluation import calibration

    y = [0, 0, 1, 1, 1, 0, 1, 0]
    p = [0.05, 0.05, 0.95, 0.95, 0.65, 0.65, 0.65, 0.65]
    result = calibration(y, p, seed=1, n_boot=100)
    assert [b["count"] for b in result["bins"]] == [2, 4, 2]
    # |0.05 - 0| * 2/8 + |0.65 - 0.5| * 4/8 + |0.95 - 1| * 2/8
    assert result["ece"] == pytest.approx(0.0125 + 0.075 + 0.0125)
    span = result["brier_interval"]
    assert span["low"] <= result["brier"] <= span["high"] and span["low"] < span["high"]


def test_ppv_and_npv_follow_prevalence():
    from results.report.model_card import ppv_npv

    low, high = ppv_npv(0.95, 0.9, 0.05), ppv_npv(0.95, 0.9, 0.5)
    assert low["ppv"] == pytest.approx(0.0475 / (0.0475 + 0.095))
    assert high["ppv"] > low["ppv"] and high["npv"] < low["npv"]
