"""The report's figures, drawn with Matplotlib (Agg) into PNG bytes."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

__all__ = [
    "calibration_plot",
    "confusion_plot",
    "gradcam_figure",
    "importance_plot",
    "pr_plot",
    "robustness_plot",
    "roc_plot",
    "timeline_plot",
    "training_plot",
]

_SIZE = (4.6, 3.6)


def _png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    return buffer.getvalue()


def gradcam_figure(image, heatmap, title: str, explained: str) -> bytes:
    """The image and its Grad-CAM map side by side, with a colour bar for the map.

    Args:
        image: ``(H, W, C)`` pixels in ``[0, 255]``.
        heatmap: ``(H, W)`` Grad-CAM weights in ``[0, 1]``.
        title: The figure's title (prediction, probability, threshold).
        explained: The class the map explains (the colour bar's label).
    """
    import numpy as np

    pixels = np.asarray(image, dtype=float)
    gray = pixels[..., 0] if pixels.shape[-1] == 1 else pixels.mean(axis=-1)
    figure, (left, right) = plt.subplots(1, 2, figsize=(8.0, 4.0))
    left.imshow(gray, cmap="gray", vmin=0, vmax=255)
    left.set_title("input (as the model sees it)", fontsize=9)
    right.imshow(gray, cmap="gray", vmin=0, vmax=255)
    shown = right.imshow(heatmap, cmap="jet", alpha=0.45, vmin=0.0, vmax=1.0)
    right.set_title(f"Grad-CAM for {explained}", fontsize=9)
    for axis in (left, right):
        axis.set_xticks([])
        axis.set_yticks([])
    bar = figure.colorbar(shown, ax=right, fraction=0.046, pad=0.04)
    bar.set_label(f"contribution to {explained} (0 = none, 1 = most)", fontsize=8)
    figure.suptitle(title, fontsize=10)
    return _png(figure)


def roc_plot(roc: dict[str, list[float]], point: tuple[float, float], auc: float) -> bytes:
    """ROC curve with the operating point (false positive rate, sensitivity)."""
    figure, axis = plt.subplots(figsize=_SIZE)
    axis.plot(roc["fpr"], roc["tpr"], label=f"test ROC (AUC {auc:.3f})")
    axis.plot([0, 1], [0, 1], linestyle=":", color="grey", linewidth=1)
    axis.plot(*point, "o", color="crimson", label="operating point")
    axis.set(xlabel="1 - specificity", ylabel="sensitivity", xlim=(0, 1), ylim=(0, 1.02))
    axis.legend(loc="lower right")
    return _png(figure)


def operating_points_plot(
    roc: dict[str, list[float]], points: dict[str, tuple[float, float]], auc: float
) -> bytes:
    """ROC curve with several named operating points (false positive rate, sensitivity)."""
    figure, axis = plt.subplots(figsize=_SIZE)
    axis.plot(roc["fpr"], roc["tpr"], label=f"site ROC (AUC {auc:.3f})")
    axis.plot([0, 1], [0, 1], linestyle=":", color="grey", linewidth=1)
    for (name, point), marker in zip(points.items(), ("o", "s", "^", "D")):
        axis.plot(*point, marker, markersize=8, label=name)
    axis.set(xlabel="1 - specificity", ylabel="sensitivity", xlim=(0, 1), ylim=(0, 1.02))
    axis.legend(loc="lower right", fontsize=8)
    return _png(figure)


def pr_plot(pr: dict[str, Any], point: tuple[float, float]) -> bytes:
    """Precision-recall curve with the operating point (recall, precision)."""
    figure, axis = plt.subplots(figsize=_SIZE)
    axis.plot(pr["recall"], pr["precision"], label="test PR curve")
    axis.axhline(pr["prevalence"], linestyle=":", color="grey", linewidth=1, label="prevalence")
    axis.plot(*point, "o", color="crimson", label="operating point")
    axis.set(xlabel="recall (sensitivity)", ylabel="precision (PPV)", xlim=(0, 1), ylim=(0, 1.02))
    axis.legend(loc="lower left")
    return _png(figure)


def calibration_plot(
    bins: Sequence[dict[str, Any]],
    brier: float,
    ece: float | None = None,
    after: tuple[Sequence[dict[str, Any]], float, float] | None = None,
    *,
    label: str = "test",
    after_label: str | None = None,
) -> bytes:
    """Reliability diagram: mean predicted probability vs observed positive rate per bin,
    each point labelled with its image count; with ``after`` (bins, ECE, temperature),
    the same after temperature scaling beside it."""
    figure, axis = plt.subplots(figsize=_SIZE)
    axis.plot([0, 1], [0, 1], linestyle=":", color="grey", linewidth=1, label="perfect")
    xs = [b["mean_predicted"] for b in bins]
    ys = [b["observed_positive"] for b in bins]
    label = f"{label} (Brier {brier:.3f}" + (f", ECE {ece:.3f})" if ece is not None else ")")
    axis.plot(xs, ys, "o-", label=label)
    for x, y, b in zip(xs, ys, bins):
        axis.annotate(
            f"n={b['count']}", (x, y), textcoords="offset points", xytext=(4, -11), fontsize=7
        )
    if after is not None:
        after_bins, after_ece, temperature = after
        axis.plot(
            [b["mean_predicted"] for b in after_bins],
            [b["observed_positive"] for b in after_bins],
            "s--",
            label=(after_label or f"after temperature {temperature:.2f}")
            + f" (ECE {after_ece:.3f})",
        )
    axis.set(xlabel="mean predicted probability", ylabel="observed positive rate")
    axis.set(xlim=(0, 1), ylim=(0, 1.05))
    axis.legend(loc="upper left")
    return _png(figure)


def confusion_plot(matrix: Sequence[Sequence[int]], labels: Sequence[str]) -> bytes:
    """Confusion matrix (rows: true class, columns: predicted class)."""
    figure, axis = plt.subplots(figsize=(3.8, 3.4))
    axis.imshow(matrix, cmap="Blues")
    peak = max(max(row) for row in matrix) or 1
    for i, row in enumerate(matrix):
        for j, value in enumerate(row):
            colour = "white" if value > peak / 2 else "black"
            axis.text(j, i, str(value), ha="center", va="center", color=colour, fontsize=13)
    axis.set_xticks(range(len(labels)), labels)
    axis.set_yticks(range(len(labels)), labels)
    axis.set(xlabel="predicted", ylabel="true")
    return _png(figure)


def training_plot(history: Sequence[dict[str, Any]], objective: str) -> bytes:
    """Training and validation loss and the validation objective per epoch (integer epochs)."""
    from matplotlib.ticker import MaxNLocator

    figure, axis = plt.subplots(figsize=_SIZE)
    epochs = [int(row["epoch"]) for row in history]
    axis.plot(epochs, [row.get("loss", math.nan) for row in history], "o-", label="train loss")
    if any("val_log_loss" in row for row in history):
        axis.plot(
            epochs,
            [row.get("val_log_loss", math.nan) for row in history],
            "^--",
            color="tab:green",
            label="validation loss (log loss)",
        )
    axis.set(xlabel="epoch", ylabel="loss")
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    other = axis.twinx()
    key = f"val_{objective}"
    other.plot(
        epochs,
        [row.get(key, math.nan) for row in history],
        "s-",
        color="darkorange",
        label=f"validation {objective}",
    )
    other.set_ylabel(f"validation {objective}")
    lines = axis.get_legend_handles_labels()
    more = other.get_legend_handles_labels()
    axis.legend(lines[0] + more[0], lines[1] + more[1], loc="center right")
    return _png(figure)


def timeline_plot(timeline: Sequence[dict[str, Any]], mode: str) -> bytes:
    """Objective of each trial at the time it ended, and the best so far."""
    figure, axis = plt.subplots(figsize=(6.4, 3.6))
    points = [t for t in timeline if t["value"] is not None and t["minutes"] is not None]
    points.sort(key=lambda t: t["minutes"])
    for state, marker, colour in (("COMPLETE", "o", "tab:blue"), ("PRUNED", "x", "tab:grey")):
        chosen = [t for t in points if t["state"] == state]
        axis.plot(
            [t["minutes"] for t in chosen],
            [t["value"] for t in chosen],
            marker,
            color=colour,
            linestyle="none",
            label="completed" if state == "COMPLETE" else "stopped early (last value)",
        )
    best, xs, ys = None, [], []
    for t in (t for t in points if t["state"] == "COMPLETE"):
        if best is None or (t["value"] > best if mode == "max" else t["value"] < best):
            best = t["value"]
        xs.append(t["minutes"])
        ys.append(best)
    if xs:
        axis.step(xs, ys, where="post", color="crimson", label="best so far")
    axis.set(xlabel="minutes since the first trial started", ylabel="validation objective")
    axis.legend(loc="lower right")
    return _png(figure)


def importance_plot(values: dict[str, float]) -> bytes:
    """Horizontal bars of hyperparameter importances (largest on top)."""
    items = sorted(values.items(), key=lambda kv: kv[1])[-12:]
    figure, axis = plt.subplots(figsize=(6.4, 0.35 * len(items) + 1.2))
    axis.barh([name for name, _ in items], [value for _, value in items], color="tab:blue")
    axis.set(xlabel="importance (share of objective variance)")
    return _png(figure)


def robustness_plot(robustness: dict[str, Any]) -> bytes:
    """rw_auc and specificity per shift against severity; dashed lines: the clean split."""
    clean = robustness["clean"]
    figure, axes = plt.subplots(1, 2, figsize=(9.6, 3.8), sharex=True)
    shifts = list(dict.fromkeys(row["shift"] for row in robustness["rows"]))
    for metric, axis in zip(("rw_auc", "specificity"), axes):
        for index, name in enumerate(shifts):
            rows = [r for r in robustness["rows"] if r["shift"] == name]
            axis.plot(
                [0] + [r["severity"] for r in rows],
                [clean[metric]] + [r[metric] for r in rows],
                marker="o",
                color=plt.cm.tab10(index % 10),
                label=name,
            )
        axis.axhline(clean[metric], color="black", linestyle="--", linewidth=0.8)
        axis.set(xlabel="severity (0 = as is)", ylabel=f"test {metric}", xticks=[0, 1, 2, 3])
    axes[1].legend(fontsize=7, loc="lower left")
    return _png(figure)
