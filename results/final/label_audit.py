"""The label-noise audit: train-split images whose label out-of-fold models doubt.

The dataset's train split was graded by two experts, its test split also by a third
(issue 16): some train labels may be wrong, and a model that fits them learns the noise.
Every train-split image is scored by a model that never saw its patient
(:func:`pneumo_core.train.out_of_fold.out_of_fold_probs`); cleanlab's
``find_label_issues`` (confident learning) flags the images whose given label is unlikely
under those scores, ranked by self-confidence (most suspicious first).

``final --label-audit K`` writes ``label_issues.csv`` (every flagged image) and thumbnails
of the most suspicious; ``data.train_exclude: RUN_DIR/final/label_issues.csv`` trains
without them.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["LABEL_ISSUES_FILE", "flag_label_issues", "label_audit"]

LABEL_ISSUES_FILE = "label_issues.csv"


def flag_label_issues(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Indices (into ``labels``) of likely label errors, most suspicious first.

    Args:
        labels: Given labels (0/1).
        probs: Out-of-fold positive-class probabilities.
    """
    from cleanlab.filter import find_label_issues

    probs = np.clip(np.asarray(probs, dtype=np.float64), 1e-6, 1 - 1e-6)
    pred_probs = np.stack([1.0 - probs, probs], axis=1)
    return np.asarray(
        find_label_issues(
            np.asarray(labels, dtype=np.int64),
            pred_probs,
            return_indices_ranked_by="self_confidence",
        ),
        dtype=np.int64,
    )


def label_audit(
    chosen, folds: int, folder: Path, shown: int, log: Callable[[str], None]
) -> dict[str, Any]:
    """Runs the audit for the chosen configuration; writes the CSV and thumbnails.

    Args:
        chosen: The chosen :class:`~results.final.candidates.Retrained` (config and data).
        folds: Out-of-fold parts (one retraining each).
        folder: The final stage's folder (``label_issues.csv``, ``label_issues/``).
        shown: Thumbnails written (the most suspicious).
        log: Where progress lines go.

    Returns:
        ``folds``, ``train_images``, ``flagged``, ``flagged_by_class``, ``file``,
        ``shown`` (path, class given, out-of-fold probability, thumbnail), ``seconds``.
    """
    from PIL import Image

    from pneumo_core.train.out_of_fold import out_of_fold_probs

    start = time.perf_counter()
    data = chosen.data
    log(f"label audit: {folds} out-of-fold retrainings over the train split")
    probs = out_of_fold_probs(chosen.config, data, folds, log=log)
    train = np.asarray(data.splits["train"])
    labels = data.labels[train]
    flagged = flag_label_issues(labels, probs)
    rows = [
        {
            "rank": rank + 1,
            "path": data.relpaths[train[j]],
            "patient": data.patients[train[j]],
            "label": int(labels[j]),
            "class": data.class_names[int(labels[j])],
            "out_of_fold_probability": float(probs[j]),
        }
        for rank, j in enumerate(flagged)
    ]
    buffer = io.StringIO()
    columns = ["rank", "path", "patient", "label", "class", "out_of_fold_probability"]
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    (folder / LABEL_ISSUES_FILE).write_text(buffer.getvalue())
    thumbs = folder / "label_issues"
    thumbs.mkdir(exist_ok=True)
    examples = []
    for row, j in zip(rows[:shown], flagged[:shown]):
        pixels = np.asarray(data.images[train[j]])
        image = Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)
        name = f"issue_{row['rank']}.png"
        image.resize((160, 160)).save(thumbs / name)
        examples.append({**row, "image": f"label_issues/{name}"})
    by_class = {name: int(sum(1 for r in rows if r["class"] == name)) for name in data.class_names}
    log(f"label audit: {len(rows)} of {train.size} train images flagged {by_class}")
    return {
        "folds": folds,
        "train_images": int(train.size),
        "flagged": len(rows),
        "flagged_by_class": by_class,
        "file": LABEL_ISSUES_FILE,
        "shown": examples,
        "seconds": round(time.perf_counter() - start, 1),
    }
