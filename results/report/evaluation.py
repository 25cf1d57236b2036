"""Evaluation of a binary classifier's probabilities: metrics with 95% intervals, curves.

Pure NumPy and scikit-learn: everything here can be recomputed from a saved predictions
file. Proportions (accuracy, sensitivity, specificity, PPV, NPV, per-class precision and
recall) get Wilson score intervals; AUC, rw_auc, PR AUC and F1 a bootstrap stratified by
class.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from sklearn import metrics as skm

from pneumo_core.metrics import (
    bootstrap_interval,
    bootstrap_statistic,
    compute_metrics,
    wilson_interval,
)

__all__ = [
    "SUBGROUP_PATTERN",
    "binary_evaluation",
    "calibration",
    "confusion_counts",
    "curves",
    "subgroup_evaluation",
    "subgroup_of",
]

#: Kermany file names carry the pneumonia kind: ``person1_bacteria_1.jpeg``.
SUBGROUP_PATTERN = re.compile(r"_(bacteria|virus)_", re.IGNORECASE)


def confusion_counts(y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, int]:
    """``tp``, ``fp``, ``fn``, ``tn`` with positive = ``p >= threshold``."""
    y = np.asarray(y).astype(int)
    predicted = np.asarray(p) >= threshold
    positive = y == 1
    return {
        "tp": int(np.sum(positive & predicted)),
        "fp": int(np.sum(~positive & predicted)),
        "fn": int(np.sum(positive & ~predicted)),
        "tn": int(np.sum(~positive & ~predicted)),
    }


def _proportion(successes: int, total: int) -> dict[str, Any]:
    low, high = wilson_interval(successes, total)
    value = successes / total if total else math.nan
    return {
        "value": value,
        "low": low,
        "high": high,
        "method": "wilson",
        "count": f"{successes}/{total}",
    }


def _bootstrapped(name: str, y, p, value: float, *, seed: int, n_boot: int, **kw) -> dict:
    low, high = bootstrap_interval(name, y, p, seed=seed, n_boot=n_boot, **kw)
    return {"value": value, "low": low, "high": high, "method": f"bootstrap ({n_boot})"}


def _brier(y: np.ndarray, p: np.ndarray) -> float:
    return float(np.mean((p - y) ** 2))


def binary_evaluation(
    y: Sequence[int],
    p: Sequence[float],
    threshold: float,
    *,
    class_names: Sequence[str],
    seed: int,
    n_boot: int = 1000,
    tau: float = 0.9,
    w: float = 0.5,
) -> dict[str, Any]:
    """Metrics of positive-class probabilities at one threshold, each with a 95% interval.

    Args:
        y: Labels (1 = positive, ``class_names[1]``).
        p: Positive-class probabilities.
        threshold: Decision threshold (positive when ``p >= threshold``).
        class_names: ``(negative, positive)`` names.
        seed: Seed of the bootstrap.
        n_boot: Bootstrap resamples.
        tau: Sensitivity floor of ``rw_auc``'s partial AUC.
        w: Weight of the partial AUC in ``rw_auc``.

    Returns:
        ``threshold``, ``counts`` (tp/fp/fn/tn), ``confusion_matrix`` (rows true, columns
        predicted, in class order), ``metrics`` (name -> value, low, high, method) and
        ``per_class`` (precision, recall, f1, support per class name).
    """
    y = np.asarray(y).astype(int)
    p = np.asarray(p, dtype=np.float64)
    c = confusion_counts(y, p, threshold)
    tp, fp, fn, tn = c["tp"], c["fp"], c["fn"], c["tn"]
    ranking = compute_metrics(y, p, threshold=threshold, tau=tau, w=w)
    boot = {"seed": seed, "n_boot": n_boot}
    metrics = {
        "accuracy": _proportion(tp + tn, len(y)),
        "sensitivity": _proportion(tp, tp + fn),
        "specificity": _proportion(tn, tn + fp),
        "ppv": _proportion(tp, tp + fp),
        "npv": _proportion(tn, tn + fn),
        "f1": _bootstrapped("f1", y, p, ranking["f1"], threshold=threshold, **boot),
        "auc": _bootstrapped("auc", y, p, ranking["auc"], **boot),
        "rw_auc": _bootstrapped("rw_auc", y, p, ranking["rw_auc"], tau=tau, w=w, **boot),
        "pr_auc": _bootstrapped("pr_auc", y, p, ranking["pr_auc"], **boot),
        "brier": {"value": float(np.mean((p - y) ** 2)), "method": "point estimate"},
    }
    negative, positive = class_names[0], class_names[1]
    f1_negative = 2 * tn / (2 * tn + fn + fp) if (2 * tn + fn + fp) else math.nan
    per_class = {
        negative: {
            "precision": metrics["npv"],
            "recall": metrics["specificity"],
            "f1": f1_negative,
            "support": tn + fp,
        },
        positive: {
            "precision": metrics["ppv"],
            "recall": metrics["sensitivity"],
            "f1": metrics["f1"]["value"],
            "support": tp + fn,
        },
    }
    return {
        "threshold": float(threshold),
        "n": len(y),
        "counts": c,
        "confusion_matrix": {"labels": list(class_names), "matrix": [[tn, fp], [fn, tp]]},
        "metrics": metrics,
        "per_class": per_class,
    }


def curves(y: Sequence[int], p: Sequence[float], max_points: int = 400) -> dict[str, Any]:
    """ROC and precision-recall curves (thinned to at most ``max_points`` each)."""
    y = np.asarray(y).astype(int)
    p = np.asarray(p, dtype=np.float64)
    fpr, tpr, roc_t = skm.roc_curve(y, p)
    precision, recall, _ = skm.precision_recall_curve(y, p)

    def thin(*arrays):
        step = max(1, math.ceil(len(arrays[0]) / max_points))
        return [np.asarray(a)[::step].round(6).tolist() for a in arrays]

    fpr_t, tpr_t, roc_thr = thin(fpr, tpr, np.minimum(roc_t, 1.0))
    prec_t, rec_t = thin(precision, recall)
    return {
        "roc": {"fpr": fpr_t, "tpr": tpr_t, "thresholds": roc_thr},
        "pr": {"precision": prec_t, "recall": rec_t, "prevalence": float(y.mean())},
    }


def calibration(
    y: Sequence[int], p: Sequence[float], bins: int = 10, *, seed: int = 0, n_boot: int = 200
) -> dict[str, Any]:
    """Reliability table over equal-width probability bins, ECE, and the Brier score.

    Returns:
        ``bins`` (each with its image count, mean predicted probability and observed
        positive rate), ``ece`` (expected calibration error: the count-weighted mean gap
        between predicted and observed over the bins), ``brier`` and ``brier_interval``
        (a 95% percentile bootstrap interval, ``n_boot`` resamples seeded by ``seed``).
    """
    y = np.asarray(y).astype(int)
    p = np.asarray(p, dtype=np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    table = []
    for b in range(bins):
        members = which == b
        if members.any():
            table.append(
                {
                    "low": float(edges[b]),
                    "high": float(edges[b + 1]),
                    "count": int(members.sum()),
                    "mean_predicted": float(p[members].mean()),
                    "observed_positive": float(y[members].mean()),
                }
            )
    n = max(len(p), 1)
    ece = sum(b["count"] / n * abs(b["mean_predicted"] - b["observed_positive"]) for b in table)
    squared = (p - y) ** 2
    low, high = (
        bootstrap_statistic(_brier, y, p, seed=seed, n_boot=n_boot)
        if len(p)
        else (math.nan, math.nan)
    )
    return {
        "bins": table,
        "ece": float(ece),
        "brier": float(np.mean(squared)) if len(p) else math.nan,
        "brier_interval": {"low": low, "high": high, "method": f"bootstrap ({n_boot})"},
    }


def subgroup_of(relpath: str, label: int) -> str:
    """The Kermany subgroup of a file: ``bacteria``/``virus`` for named positives."""
    match = SUBGROUP_PATTERN.search(relpath.rsplit("/", 1)[-1])
    if match:
        return match.group(1).lower()
    return "unnamed positive" if label == 1 else "negative"


def subgroup_evaluation(
    y: Sequence[int], p: Sequence[float], groups: Sequence[str], threshold: float
) -> dict[str, Any]:
    """Sensitivity (Wilson interval) and AUC against all negatives, per positive subgroup.

    Returns:
        Subgroup name -> ``images``, ``sensitivity``, ``auc_vs_negatives``; empty when no
        file name carries a subgroup.
    """
    y = np.asarray(y).astype(int)
    p = np.asarray(p, dtype=np.float64)
    groups = np.asarray(groups)
    negatives = y == 0
    out: dict[str, Any] = {}
    names = sorted({g for g, label in zip(groups, y) if label == 1})
    if names == ["unnamed positive"]:
        return out
    for name in names:
        members = (groups == name) & (y == 1)
        hits = int(np.sum(p[members] >= threshold))
        auc = math.nan
        if negatives.any():
            index = members | negatives
            auc = float(skm.roc_auc_score(y[index], p[index]))
        out[name] = {
            "images": int(members.sum()),
            "sensitivity": _proportion(hits, int(members.sum())),
            "auc_vs_negatives": auc,
        }
    return out


def threshold_summary(
    y: Sequence[int], p: Sequence[float], thresholds: Mapping[str, float]
) -> dict[str, Any]:
    """Sensitivity and specificity of each named threshold (no intervals; for tables)."""
    out = {}
    for name, t in thresholds.items():
        c = confusion_counts(np.asarray(y), np.asarray(p), t)
        out[name] = {
            "threshold": float(t),
            "sensitivity": c["tp"] / (c["tp"] + c["fn"]) if c["tp"] + c["fn"] else math.nan,
            "specificity": c["tn"] / (c["tn"] + c["fp"]) if c["tn"] + c["fp"] else math.nan,
            **c,
        }
    return out
