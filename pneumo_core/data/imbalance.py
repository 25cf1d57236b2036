"""Class-imbalance handling: class weights or minority oversampling (no TensorFlow)."""

from __future__ import annotations

import numpy as np

__all__ = ["balanced_class_weights", "oversampled_indices"]


def balanced_class_weights(labels: np.ndarray, num_classes: int) -> dict[int, float]:
    """Returns ``n / (k * n_c)`` per class, so each class weighs the same in the loss."""
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    total = counts.sum()
    return {
        c: float(total / (num_classes * counts[c])) if counts[c] else 0.0
        for c in range(num_classes)
    }


def oversampled_indices(
    index: np.ndarray, labels: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Returns one shuffled epoch with every class drawn up to the largest class's size.

    Every image appears at least once; images of smaller classes are repeated (drawn with
    replacement beyond one full pass) until their class is as large as the largest.

    Args:
        index: Indices of the training images.
        labels: Labels of all images (indexed by ``index``).
        rng: Source of randomness (seeded by the caller).

    Returns:
        Shuffled indices for one epoch.
    """
    by_class = [index[labels[index] == c] for c in np.unique(labels[index])]
    target = max(len(members) for members in by_class)
    parts = []
    for members in by_class:
        extra = rng.choice(members, size=target - len(members), replace=True)
        parts.append(np.concatenate([members, extra]))
    epoch = np.concatenate(parts)
    rng.shuffle(epoch)
    return epoch
