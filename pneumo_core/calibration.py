"""Post-hoc calibration fitted on validation: temperature scaling and Platt scaling.

Temperature scaling, ``p' = sigmoid(logit(p) / T)``: ``T > 1`` softens overconfident
probabilities, ``T < 1`` sharpens timid ones (Guo et al. 2017, "On Calibration of Modern
Neural Networks"). SciPy's bounded scalar minimizer fits it; scikit-learn has no
temperature scaling of its own.

Platt scaling, ``p' = sigmoid(a * logit(p) + b)``: a temperature (``1 / a``) plus a bias.
The bias is what a model trained with class weights needs: the weights make it behave as
if the classes were balanced, so its probabilities sit off by the log prior odds, a shift
no temperature can undo. scikit-learn's logistic regression on the logit fits it.

Both keep the order of the images (for ``a > 0``), so AUC and every decision at a
correspondingly moved threshold stay the same.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pneumo_core.metrics import log_loss  # the one log loss (re-exported here)

__all__ = ["apply_platt", "apply_temperature", "fit_platt", "fit_temperature", "log_loss"]

_EPS = 1e-7


def _logit(probs: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(probs, dtype=np.float64), _EPS, 1 - _EPS)
    return np.log(p) - np.log1p(-p)


def apply_temperature(probs: Sequence[float], temperature: float) -> np.ndarray:
    """``sigmoid(logit(p) / temperature)`` for positive-class probabilities ``p``."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    return 1.0 / (1.0 + np.exp(-_logit(np.asarray(probs)) / temperature))


def fit_temperature(
    labels: Sequence[int], probs: Sequence[float], bounds: tuple[float, float] = (0.05, 20.0)
) -> float:
    """The temperature that minimizes the log loss of ``probs`` against ``labels``.

    Args:
        labels: 0/1 labels (validation).
        probs: The model's positive-class probabilities for them.
        bounds: The search interval of the temperature.

    Returns:
        The fitted temperature (1.0 when the labels hold one class only: nothing to fit).
    """
    from scipy.optimize import minimize_scalar

    y = np.asarray(labels, dtype=np.float64)
    if y.size == 0 or y.min() == y.max():
        return 1.0
    logits = _logit(np.asarray(probs))

    def loss(t: float) -> float:
        return log_loss(y, 1.0 / (1.0 + np.exp(-logits / t)))

    result = minimize_scalar(loss, bounds=bounds, method="bounded", options={"xatol": 1e-4})
    best = float(result.x)
    return best if loss(best) <= loss(1.0) else 1.0


def apply_platt(probs: Sequence[float], slope: float, intercept: float) -> np.ndarray:
    """``sigmoid(slope * logit(p) + intercept)`` for positive-class probabilities ``p``."""
    return 1.0 / (1.0 + np.exp(-(slope * _logit(np.asarray(probs)) + intercept)))


def fit_platt(labels: Sequence[int], probs: Sequence[float]) -> tuple[float, float]:
    """The ``(slope, intercept)`` on the logit that minimize the log loss of ``probs``.

    Args:
        labels: 0/1 labels (validation).
        probs: The model's positive-class probabilities for them.

    Returns:
        The fitted ``(slope, intercept)``; ``(1.0, 0.0)`` (no change) when the labels hold
        one class only, or when the fit would reverse the order of the images.
    """
    from sklearn.linear_model import LogisticRegression

    y = np.asarray(labels, dtype=np.int64)
    if y.size == 0 or y.min() == y.max():
        return 1.0, 0.0
    logits = _logit(np.asarray(probs)).reshape(-1, 1)
    fit = LogisticRegression(C=np.inf, max_iter=1000).fit(logits, y)
    slope, intercept = float(fit.coef_[0, 0]), float(fit.intercept_[0])
    if slope <= 0:
        return 1.0, 0.0
    return slope, intercept
