"""How the final model does on each acquisition family: test split, and families held out.

Two views of the shift the public test split shows (issue 16):

- **On the test split, per family** (always; no training): the exported model at its
  operating threshold, specificity on each normal family, sensitivity on each pneumonia
  family, with Wilson intervals. A model that only learned one collection shows it here.
- **Families held out of training** (``final --family-check``; one retraining per family):
  the chosen configuration retrained once per family with that family and its patients
  left out (:func:`pneumo_core.train.family_out.train_family_folds`), scored on the family
  it never saw. Threshold-free scores (AUC, rw_auc) are the comparison; sensitivity and
  specificity are at 0.5, as no held-out threshold is chosen.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from pneumo_core.data.families import FAMILIES, acquisition_family
from pneumo_core.metrics import wilson_interval

__all__ = ["families_on_test", "family_rates", "held_out_families"]


def families_on_test(data, test_probs: np.ndarray, threshold: float) -> list[dict[str, Any]]:
    """Per family of the test split: images and the rate of correct calls at ``threshold``.

    Args:
        data: The prepared data (its ``test`` split, relpaths and labels).
        test_probs: The exported model's test probabilities, in test-split order.
        threshold: The operating threshold (chosen on validation).

    Returns:
        :func:`family_rates`' rows.
    """
    index = data.splits["test"]
    relpaths = [data.relpaths[i] for i in index]
    return family_rates(relpaths, data.labels[index], test_probs, threshold, data.class_names)


def family_rates(
    relpaths, labels: np.ndarray, probs: np.ndarray, threshold: float, class_names
) -> list[dict[str, Any]]:
    """Per acquisition family and class: images and the rate of correct calls.

    Args:
        relpaths: Each image's path (its file name names the family).
        labels: Each image's label.
        probs: Positive-class probabilities, in the same order.
        threshold: The decision threshold.
        class_names: ``(negative, positive)``.

    Returns:
        One row per family present: ``family``, ``class``, ``images``, ``metric``
        (``specificity`` for the negative class, ``sensitivity`` for the positive),
        ``value``, ``low``, ``high`` (Wilson), ``count``.
    """
    labels = np.asarray(labels)
    families = np.array([acquisition_family(r) for r in relpaths])
    calls = np.asarray(probs) >= threshold
    rows = []
    for family in (*FAMILIES, "other"):
        for label in (0, 1):
            mask = (families == family) & (labels == label)
            n = int(mask.sum())
            if n == 0:
                continue
            correct = int((calls[mask] == bool(label)).sum())
            low, high = wilson_interval(correct, n)
            rows.append(
                {
                    "family": family,
                    "class": class_names[label],
                    "images": n,
                    "metric": "sensitivity" if label else "specificity",
                    "value": correct / n,
                    "low": low,
                    "high": high,
                    "count": f"{correct}/{n}",
                }
            )
    return rows


def held_out_families(chosen, log: Callable[[str], None]) -> dict[str, Any]:
    """Retrains the chosen configuration once per family held out; scores each on it.

    Args:
        chosen: The chosen :class:`~results.final.candidates.Retrained` (its config and data).
        log: Where progress lines go.

    Returns:
        ``folds`` (per family: held-out images, ``auc``, ``rw_auc``, ``sensitivity`` and
        ``specificity`` at 0.5, best epoch), ``worst_rw_auc``, ``mean_rw_auc``, ``seconds``.
    """
    from pneumo_core.train.family_out import family_fold_data, train_family_folds

    start = time.perf_counter()
    sizes = {family: len(d.splits["val"]) for family, d in family_fold_data(chosen.data)}
    log(f"family-out check: one retraining per family held out ({', '.join(sizes)})")
    result = train_family_folds(chosen.config, chosen.data)
    folds = []
    for family, fold in result.results.items():
        scores = fold.best_metrics
        folds.append(
            {
                "family": family,
                "images": sizes[family],
                "best_epoch": fold.best_epoch,
                **{k: scores.get(k) for k in ("auc", "rw_auc", "sensitivity", "specificity")},
            }
        )
        log(f"  held out {family}: auc {scores.get('auc', float('nan')):.4f}, "
            f"rw_auc {scores.get('rw_auc', float('nan')):.4f}")  # fmt: skip
    values = [f["rw_auc"] for f in folds if f["rw_auc"] is not None]
    return {
        "folds": folds,
        "worst_rw_auc": min(values) if values else None,
        "mean_rw_auc": float(np.mean(values)) if values else None,
        "seconds": round(time.perf_counter() - start, 1),
    }
