"""Temperature scaling: one parameter, fitted on validation, that calibrates probabilities.

``p' = sigmoid(logit(p) / T)``. ``T > 1`` softens overconfident probabilities, ``T < 1``
sharpens timid ones; the order of the images is unchanged, so AUC and every decision at a
correspondingly moved threshold stay the same. (Guo et al. 2017, "On Calibration of Modern
Neural Networks".) SciPy's bounded scalar minimizer fits it; scikit-learn has no
temperature scaling of its own.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["apply_temperature", "fit_temperature", "log_loss"]

_EPS = 1e-7


def _logit(probs: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(probs, dtype=np.float64), _EPS, 1 - _EPS)
    return np.log(p) - np.log1p(-p)


def apply_temperature(probs: Sequence[float], temperature: float) -> np.ndarray:
    """``sigmoid(logit(p) / temperature)`` for positive-class probabilities ``p``."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    return 1.0 / (1.0 + np.exp(-_logit(np.asarray(probs)) / temperature))


def log_loss(labels: Sequence[int], probs: Sequence[float]) -> float:
    """Mean binary cross-entropy of positive-class probabilities."""
    y = np.asarray(labels, dtype=np.float64)
    p = np.clip(np.asarray(probs, dtype=np.float64), _EPS, 1 - _EPS)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p)))


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
