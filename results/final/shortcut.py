"""The shortcut audit: does the class signal sit at the image border, outside the lungs?

Train images of this dataset carry class signal in their framing (neck, clavicles, the
border bands) that another site's do not. Two measurements, both cheap:

- **Probes**: a logistic regression on 64x64 thumbnails that sees only one region (the
  top or bottom 8 rows, the left or right 8 columns, the central 32x32, or everything),
  fitted on the train split and scored on validation (other patients) and, with
  ``final --site``, on the site sample. A border probe that ranks validation well but the
  site poorly is the shortcut; the centre probe is the lungs.
- **Masking**: the exported model's test predictions with each border band (an eighth of
  the side) blanked, against the untouched ones: the mean change of probability and the
  share of decisions at the operating threshold that flip. A model that leans on the
  border moves a lot.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["REGIONS", "masked_bands", "probe_regions", "shortcut_audit", "thumbnails"]

#: Probe regions of a 64x64 thumbnail: ``(rows, columns)`` slices.
REGIONS: dict[str, tuple[slice, slice]] = {
    "top_8_rows": (slice(0, 8), slice(None)),
    "bottom_8_rows": (slice(56, 64), slice(None)),
    "left_8_columns": (slice(None), slice(0, 8)),
    "right_8_columns": (slice(None), slice(56, 64)),
    "centre_32x32": (slice(16, 48), slice(16, 48)),
    "whole_image": (slice(None), slice(None)),
}
_BAND = 1 / 8


def thumbnails(images: np.ndarray, size: int = 64) -> np.ndarray:
    """``(N, size, size)`` float32 grey thumbnails in [0, 1] (area-averaged)."""
    import tensorflow as tf

    out = []
    for start in range(0, len(images), 256):
        batch = np.asarray(images[start : start + 256], dtype=np.float32) / 255.0
        small = tf.image.resize(batch, (size, size), method="area").numpy()
        out.append(small.mean(axis=-1))
    return np.concatenate(out) if out else np.zeros((0, size, size), np.float32)


def probe_regions(
    train: tuple[np.ndarray, np.ndarray], scored: dict[str, tuple[np.ndarray, np.ndarray]]
) -> list[dict[str, Any]]:
    """Per region: a standardized logistic regression fitted on ``train``'s thumbnails,
    with its ROC AUC on each of ``scored`` (name -> thumbnails, labels)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x_train, y_train = train
    rows = []
    for region, (r, c) in REGIONS.items():
        probe = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=500))
        probe.fit(x_train[:, r, c].reshape(len(x_train), -1), y_train)
        row: dict[str, Any] = {"region": region}
        for name, (x, y) in scored.items():
            p = probe.predict_proba(x[:, r, c].reshape(len(x), -1))[:, 1]
            row[f"{name}_auc"] = float(roc_auc_score(y, p)) if len(set(y.tolist())) > 1 else None
        rows.append(row)
    return rows


def masked_bands(images: np.ndarray) -> np.ndarray:
    """The images with the four border bands (an eighth of each side) set to black."""
    out = np.array(images, copy=True)
    height, width = out.shape[1:3]
    rows, cols = max(1, round(height * _BAND)), max(1, round(width * _BAND))
    out[:, :rows], out[:, -rows:], out[:, :, :cols], out[:, :, -cols:] = 0, 0, 0, 0
    return out


def shortcut_audit(
    model, data, test_probs: np.ndarray, threshold: float, site=None
) -> dict[str, Any]:
    """The report's ``shortcut_audit`` section.

    Args:
        model: The exported Keras model.
        data: The prepared data (its train, val and test splits).
        test_probs: The model's test probabilities (untouched images), in test order.
        threshold: The operating threshold.
        site: The site sample's image set (:class:`pneumo_core.data.external.ExternalSet`),
            or None.

    Returns:
        ``probes`` (one row per region: validation AUC and, with a site, site AUC) and
        ``masking`` (mean absolute change of probability, decisions flipped, AUC before
        and after the bands are blanked).
    """
    from sklearn.metrics import roc_auc_score

    from pneumo_core.data.pipeline import predict_batches

    train_x, train_y = data.arrays("train")
    val_x, val_y = data.arrays("val")
    scored = {"validation": (thumbnails(val_x), val_y)}
    if site is not None:
        scored["site"] = (thumbnails(site.images), np.asarray(site.labels))
    probes = probe_regions((thumbnails(train_x), train_y), scored)
    test_x, test_y = data.arrays("test")
    masked = predict_batches(model, masked_bands(test_x))
    before = np.asarray(test_probs, dtype=np.float64)
    flipped = (before >= threshold) != (masked >= threshold)
    return {
        "probes": probes,
        "probe": "logistic regression (C 0.1, standardized) on 64x64 grey thumbnails, "
        "fitted on the train split",
        "masking": {
            "band_fraction": _BAND,
            "images": len(test_y),
            "mean_abs_change": float(np.mean(np.abs(masked - before))),
            "decisions_flipped": float(np.mean(flipped)),
            "auc_before": float(roc_auc_score(test_y, before)),
            "auc_masked": float(roc_auc_score(test_y, masked)),
        },
    }
