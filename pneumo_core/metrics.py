"""Classification metrics, the recall-weighted AUC objective, thresholds and intervals.

Every metric key used anywhere in pneumo-search is defined here, once (:data:`METRICS`).
Scores are probabilities: for two classes a ``(N,)`` array of the positive class's
probability (a ``(N, 2)`` array is accepted too); for N classes ``(N, K)``, and metrics are
macro one-vs-rest averages.

Recall-weighted AUC (the default tuning objective)::

    rw_auc = (1 - w) * AUC + w * HS_pAUC(tau)

where ``HS_pAUC(tau)`` is the McClish-standardized partial AUC over the high-sensitivity
region (sensitivity in ``[tau, 1]``), computed as
``sklearn.metrics.roc_auc_score(1 - y, -p, max_fpr=1 - tau)``: swapping the classes and
negating the scores turns "false positive rate <= 1 - tau" into "sensitivity >= tau". It is
0.5 for a random ranking and 1 for a perfect one, like the AUC. Defaults: tau = 0.9, w = 0.5.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
from sklearn import metrics as skm

from pneumo_errors import MetricError, UnknownNameError

__all__ = [
    "METRICS",
    "MetricSpec",
    "bootstrap_interval",
    "bootstrap_statistic",
    "compute_metrics",
    "get_metric",
    "hs_pauc",
    "list_metrics",
    "rw_auc",
    "specificity_at_sensitivity",
    "threshold_for_sensitivity",
    "wilson_interval",
    "youden_threshold",
]

DEFAULT_TAU = 0.9
DEFAULT_W = 0.5


@dataclass(frozen=True)
class MetricSpec:
    """A registered metric.

    Attributes:
        name: Its one spelling (``rw_auc``, ``auc``, ``sensitivity``, ...).
        fn: ``fn(y_true, scores, threshold=, tau=, w=) -> float``.
        higher_is_better: Direction for objectives and sorting.
        proportion: Whether it is a proportion of counts (Wilson intervals apply).
        description: One line for tables and the README.
    """

    name: str
    fn: Callable[..., float]
    higher_is_better: bool
    proportion: bool
    description: str


def _labels_and_scores(y_true, scores) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true).astype(np.int64).ravel()
    p = np.asarray(scores, dtype=np.float64)
    if p.ndim == 2 and p.shape[1] == 2:
        p = p[:, 1]
    if p.shape[0] != y.shape[0]:
        raise MetricError(f"{y.shape[0]} labels but {p.shape[0]} scores")
    if not np.all(np.isfinite(p)):
        raise MetricError("scores contain NaN or infinity (did training diverge?)")
    return y, p


def _num_classes(p: np.ndarray) -> int:
    return 2 if p.ndim == 1 else p.shape[1]


def _require_all_classes(y: np.ndarray, k: int) -> None:
    present = set(np.unique(y).tolist())
    missing = sorted(set(range(k)) - present)
    if missing:
        raise MetricError(
            f"needs every class in y_true; class index {missing[0]} is missing "
            f"(present: {sorted(present)})"
        )


def _binary_auc(y: np.ndarray, p: np.ndarray) -> float:
    return float(skm.roc_auc_score(y, p))


def _binary_hs_pauc(y: np.ndarray, p: np.ndarray, tau: float) -> float:
    if not 0.0 <= tau < 1.0:
        raise MetricError(f"tau must be in [0, 1), got {tau}")
    return float(skm.roc_auc_score(1 - y, -p, max_fpr=1.0 - tau))


def _one_vs_rest(y, scores, fn) -> float:
    y, p = _labels_and_scores(y, scores)
    k = _num_classes(p)
    _require_all_classes(y, k)
    if p.ndim == 1:
        return fn(y, p)
    return float(np.mean([fn((y == c).astype(np.int64), p[:, c]) for c in range(k)]))


def roc_auc(y_true, scores, **_: float) -> float:
    """ROC AUC (macro one-vs-rest for N classes)."""
    return _one_vs_rest(y_true, scores, _binary_auc)


def pr_auc(y_true, scores, **_: float) -> float:
    """Area under the precision-recall curve (average precision; macro for N classes)."""
    return _one_vs_rest(y_true, scores, lambda y, p: float(skm.average_precision_score(y, p)))


def hs_pauc(y_true, scores, tau: float = DEFAULT_TAU, **_: float) -> float:
    """McClish-standardized partial AUC over sensitivity in ``[tau, 1]``."""
    return _one_vs_rest(y_true, scores, lambda y, p: _binary_hs_pauc(y, p, tau))


def rw_auc(y_true, scores, tau: float = DEFAULT_TAU, w: float = DEFAULT_W, **_: float) -> float:
    """Recall-weighted AUC: ``(1 - w) * AUC + w * HS_pAUC(tau)``."""
    if not 0.0 <= w <= 1.0:
        raise MetricError(f"w must be in [0, 1], got {w}")

    def binary(y: np.ndarray, p: np.ndarray) -> float:
        return (1.0 - w) * _binary_auc(y, p) + w * _binary_hs_pauc(y, p, tau)

    return _one_vs_rest(y_true, scores, binary)


def _confusion(y_true, scores, threshold: float) -> tuple[np.ndarray, np.ndarray, int]:
    """Returns per-class (tp, fp, fn, tn) rows and the class count."""
    y, p = _labels_and_scores(y_true, scores)
    if p.ndim == 1:
        predicted = (p >= threshold).astype(np.int64)
        k = 2
    else:
        predicted = p.argmax(axis=1)
        k = p.shape[1]
    counts = np.zeros((k, 4), dtype=np.int64)
    for c in range(k):
        t, q = y == c, predicted == c
        counts[c] = [np.sum(t & q), np.sum(~t & q), np.sum(t & ~q), np.sum(~t & ~q)]
    return counts, y, k


def _ratio(a: float, b: float) -> float:
    return float(a / b) if b else float("nan")


def _per_class(counts: np.ndarray, k: int, fn) -> float:
    if k == 2:
        return fn(*counts[1])
    return float(np.nanmean([fn(*row) for row in counts]))


def sensitivity(y_true, scores, threshold: float = 0.5, **_: float) -> float:
    """Recall of the positive class (macro recall for N classes)."""
    counts, _, k = _confusion(y_true, scores, threshold)
    return _per_class(counts, k, lambda tp, fp, fn, tn: _ratio(tp, tp + fn))


def specificity(y_true, scores, threshold: float = 0.5, **_: float) -> float:
    """True negative rate (macro one-vs-rest for N classes)."""
    counts, _, k = _confusion(y_true, scores, threshold)
    return _per_class(counts, k, lambda tp, fp, fn, tn: _ratio(tn, tn + fp))


def precision(y_true, scores, threshold: float = 0.5, **_: float) -> float:
    """Positive predictive value (macro for N classes); NaN when nothing is predicted."""
    counts, _, k = _confusion(y_true, scores, threshold)
    return _per_class(counts, k, lambda tp, fp, fn, tn: _ratio(tp, tp + fp))


def f1(y_true, scores, threshold: float = 0.5, **_: float) -> float:
    """F1 of the positive class (macro for N classes)."""
    counts, _, k = _confusion(y_true, scores, threshold)
    return _per_class(counts, k, lambda tp, fp, fn, tn: _ratio(2 * tp, 2 * tp + fp + fn))


def accuracy(y_true, scores, threshold: float = 0.5, **_: float) -> float:
    """Share of correct predictions."""
    counts, y, k = _confusion(y_true, scores, threshold)
    correct = counts[1, 0] + counts[1, 3] if k == 2 else counts[:, 0].sum()
    return _ratio(correct, len(y))


def log_loss(y_true, scores, **_: float) -> float:
    """Cross-entropy of the predicted probabilities (lower is better)."""
    y, p = _labels_and_scores(y_true, scores)
    k = _num_classes(p)
    probs = np.stack([1 - p, p], axis=1) if p.ndim == 1 else p
    return float(skm.log_loss(y, np.clip(probs, 1e-7, 1 - 1e-7), labels=list(range(k))))


METRICS: dict[str, MetricSpec] = {
    spec.name: spec
    for spec in (
        MetricSpec("rw_auc", rw_auc, True, False, "recall-weighted AUC (tuning objective)"),
        MetricSpec("auc", roc_auc, True, False, "ROC AUC"),
        MetricSpec("hs_pauc", hs_pauc, True, False, "standardized partial AUC, sens >= tau"),
        MetricSpec("pr_auc", pr_auc, True, False, "precision-recall AUC"),
        MetricSpec("sensitivity", sensitivity, True, True, "recall of the positive class"),
        MetricSpec("specificity", specificity, True, True, "true negative rate"),
        MetricSpec("precision", precision, True, True, "positive predictive value"),
        MetricSpec("f1", f1, True, False, "F1 of the positive class"),
        MetricSpec("accuracy", accuracy, True, True, "share of correct predictions"),
        MetricSpec("log_loss", log_loss, False, False, "cross-entropy"),
    )
}


def list_metrics() -> list[str]:
    """Returns the registered metric names."""
    return list(METRICS)


def get_metric(name: str) -> MetricSpec:
    """Returns a registered metric.

    Raises:
        UnknownNameError: Unknown name (a ``ConfigError`` and a ``KeyError``); the message
            lists the valid ones.
    """
    try:
        return METRICS[name]
    except KeyError:
        raise UnknownNameError("metric", "metric", name, METRICS) from None


def compute_metrics(
    y_true,
    scores,
    *,
    threshold: float = 0.5,
    tau: float = DEFAULT_TAU,
    w: float = DEFAULT_W,
    names: list[str] | None = None,
) -> dict[str, float]:
    """Computes several metrics at once.

    Args:
        y_true: Integer labels.
        scores: Probabilities (see the module docstring for shapes).
        threshold: Decision threshold for two classes (ignored for N: argmax).
        tau: Sensitivity floor of the partial AUC.
        w: Weight of the partial AUC in ``rw_auc``.
        names: Metrics to compute; default all.

    Returns:
        Metric name -> value.

    Raises:
        MetricError: A class is missing from ``y_true``, shapes disagree or scores are
            not finite.
    """
    return {
        name: get_metric(name).fn(y_true, scores, threshold=threshold, tau=tau, w=w)
        for name in (names or list(METRICS))
    }


def threshold_for_sensitivity(y_true, scores, target: float) -> float:
    """Returns the highest threshold whose sensitivity (``p >= t``) reaches ``target``.

    Args:
        y_true: Binary labels (1 = positive).
        scores: Positive-class probabilities.
        target: Wanted sensitivity in ``(0, 1]``.

    Raises:
        MetricError: Not binary, or no positive example.
    """
    y, p = _labels_and_scores(y_true, scores)
    if p.ndim != 1:
        raise MetricError("threshold_for_sensitivity needs binary labels and scores")
    if not 0.0 < target <= 1.0:
        raise MetricError(f"target sensitivity must be in (0, 1], got {target}")
    positives = np.sort(p[y == 1])[::-1]
    if positives.size == 0:
        raise MetricError("no positive example to set a sensitivity threshold on")
    needed = math.ceil(target * positives.size - 1e-9)
    return float(positives[max(needed, 1) - 1])


def specificity_at_sensitivity(y: np.ndarray, p: np.ndarray, target: float) -> float:
    """Specificity at the highest threshold whose sensitivity reaches ``target``."""
    y, p = _labels_and_scores(y, p)
    positives = np.sort(p[y == 1])[::-1]
    negatives = p[y == 0]
    if positives.size == 0 or negatives.size == 0:
        return math.nan
    cut = positives[max(math.ceil(target * positives.size - 1e-9), 1) - 1]
    return float(np.mean(negatives < cut))


def youden_threshold(y_true, scores) -> float:
    """Returns the threshold maximizing sensitivity + specificity - 1 (binary)."""
    y, p = _labels_and_scores(y_true, scores)
    _require_all_classes(y, 2)
    fpr, tpr, thresholds = skm.roc_curve(y, p)
    best = int(np.argmax(tpr - fpr))
    return float(min(thresholds[best], 1.0))


def wilson_interval(successes: int, total: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion.

    Returns:
        ``(low, high)``; ``(nan, nan)`` when ``total`` is 0.
    """
    if total <= 0:
        return float("nan"), float("nan")
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    phat = successes / total
    denominator = 1 + z * z / total
    centre = (phat + z * z / (2 * total)) / denominator
    half = z * math.sqrt(phat * (1 - phat) / total + z * z / (4 * total * total)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def bootstrap_interval(
    metric: str,
    y_true,
    scores,
    *,
    seed: int,
    n_boot: int = 1000,
    confidence: float = 0.95,
    **kwargs: float,
) -> tuple[float, float]:
    """Percentile interval of any metric from a bootstrap stratified by class.

    Each resample draws, within every class, as many examples as that class has, so each
    resample keeps the class counts (and every metric stays defined).

    Args:
        metric: A registered metric name.
        y_true: Integer labels.
        scores: Probabilities.
        seed: Seed of the resampling.
        n_boot: Number of resamples.
        confidence: Interval coverage.
        **kwargs: ``threshold``, ``tau``, ``w`` passed to the metric.

    Returns:
        ``(low, high)``.
    """
    fn = get_metric(metric).fn
    return bootstrap_statistic(
        lambda y, p: fn(y, p, **kwargs),
        y_true,
        scores,
        seed=seed,
        n_boot=n_boot,
        confidence=confidence,
    )


def bootstrap_statistic(
    statistic: Callable[[np.ndarray, np.ndarray], float],
    y_true,
    scores,
    *,
    seed: int,
    n_boot: int = 1000,
    confidence: float = 0.95,
) -> tuple[float, float]:
    """Percentile interval of ``statistic(y, p)`` from a bootstrap stratified by class: the
    project's one bootstrap (:func:`bootstrap_interval` and the report use it).

    Each resample draws, within every class, as many examples as that class has, so each
    resample keeps the class counts. Resamples whose statistic is not finite are left out.

    Returns:
        ``(low, high)``; NaN for both when no resample gave a finite value.
    """
    y, p = _labels_and_scores(y_true, scores)
    rng = np.random.default_rng(seed)
    by_class = [np.flatnonzero(y == c) for c in np.unique(y)]
    values = []
    for _ in range(n_boot):
        index = np.concatenate([rng.choice(members, size=members.size) for members in by_class])
        values.append(statistic(y[index], p[index]))
    alpha = (1 - confidence) / 2
    finite = np.asarray(values)[np.isfinite(values)]
    if finite.size == 0:
        return float("nan"), float("nan")
    return float(np.quantile(finite, alpha)), float(np.quantile(finite, 1 - alpha))
