"""Keras callbacks of a training run: validation metrics, best weights, NaN guard, and
the per-epoch time limit."""

from __future__ import annotations

import math
import time

import keras
import numpy as np

from pneumo_core.data.pipeline import predict_batches
from pneumo_core.metrics import METRICS, bootstrap_interval, compute_metrics
from pneumo_core.train.config import TIME_LIMIT_KEY
from pneumo_errors import MetricError

__all__ = ["EpochPrinter", "EpochTimeLimit", "ValidationMetrics"]

#: Bootstrap resamples of the validation interval computed at each new best epoch.
INTERVAL_RESAMPLES = 100

_LOWER_IS_BETTER = {name for name, spec in METRICS.items() if not spec.higher_is_better}


class ValidationMetrics(keras.callbacks.Callback):
    """Scores the validation split after each epoch and keeps the best weights.

    Adds ``val_<metric>`` for every metric of :mod:`pneumo_core.metrics` to the epoch's
    logs (callbacks after this one, such as EarlyStopping and the Ray Tune reporter, see
    them), records one history row per epoch, and remembers the weights of the best
    epoch by the objective, which :meth:`restore_best` puts back. At each new best epoch
    the row also gets ``val_<objective>_low`` and ``val_<objective>_high``: a 95% bootstrap
    interval of the objective over the validation images (stratified by class,
    :data:`INTERVAL_RESAMPLES` resamples), so trials that differ by less are seen as ties.

    Args:
        images: Validation images, uint8.
        labels: Validation labels.
        objective: Metric name followed.
        higher_is_better: Direction of the objective.
        tau: Partial-AUC sensitivity floor.
        w: Partial-AUC weight in ``rw_auc``.
        batch_size: Prediction batch size.
        suite: ``(severity, seed, metric)``: also score the validation split under every
            shift of the robustness suite at that severity, adding
            ``val_suite_mean_<metric>`` and ``val_suite_worst_<metric>``; ``None``: no suite.
    """

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        *,
        objective: str,
        higher_is_better: bool,
        tau: float,
        w: float,
        batch_size: int,
        suite: tuple[int, int, str] | None = None,
    ) -> None:
        super().__init__()
        self.shifted: list[np.ndarray] = []
        if suite is not None:  # shifted once per node (cached), scored every epoch
            from pneumo_core.robustness import cached_shift, images_digest, list_shifts

            severity, seed, self.suite_metric = suite
            digest = images_digest(images)
            self.shifted = [
                cached_shift(images, n, severity, seed, digest=digest) for n in list_shifts()
            ]
        self.images = images
        self.labels = labels
        self.objective = objective
        self.higher_is_better = higher_is_better
        self.tau = tau
        self.w = w
        self.batch_size = batch_size
        self.history: list[dict[str, float]] = []
        self.best_value: float | None = None
        self.best_epoch = 0
        self.best_weights: list[np.ndarray] | None = None
        self.diverged = ""
        self._epoch_start = 0.0

    def on_epoch_begin(self, epoch: int, logs=None) -> None:
        self._epoch_start = time.perf_counter()

    def on_train_batch_end(self, batch: int, logs=None) -> None:
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.diverged = f"loss became {float(loss)} in batch {batch + 1}"
            self.model.stop_training = True

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        logs = logs if logs is not None else {}
        if self.diverged:
            return
        probs = predict_batches(self.model, self.images, self.batch_size)
        try:
            scores = compute_metrics(self.labels, probs, tau=self.tau, w=self.w)
            if self.shifted:
                scores.update(self._suite_scores())
        except MetricError as exc:
            self.diverged = f"validation scores unusable after epoch {epoch + 1}: {exc}"
            self.model.stop_training = True
            return
        row: dict[str, float] = {"epoch": epoch + 1}
        if "loss" in logs:
            row["loss"] = float(logs["loss"])
        row["lr"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        for name, value in scores.items():
            logs[f"val_{name}"] = value
            row[f"val_{name}"] = value
        row["epoch_seconds"] = time.perf_counter() - self._epoch_start
        self.history.append(row)
        value = scores[self.objective]
        if self._improves(value):
            self.best_value = value
            self.best_epoch = epoch + 1
            self.best_weights = self.model.get_weights()
            if self.objective in METRICS:  # a new best: how far noise alone could move it
                low, high = bootstrap_interval(
                    self.objective,
                    self.labels,
                    probs,
                    seed=epoch,
                    n_boot=INTERVAL_RESAMPLES,
                    tau=self.tau,
                    w=self.w,
                )
                row[f"val_{self.objective}_low"], row[f"val_{self.objective}_high"] = low, high

    def _suite_scores(self) -> dict[str, float]:
        """Mean and worst of the suite's metric over the shifted validation splits."""
        name = self.suite_metric
        values = np.array(
            [
                compute_metrics(
                    self.labels,
                    predict_batches(self.model, images, self.batch_size),
                    tau=self.tau,
                    w=self.w,
                    names=[name],
                )[name]
                for images in self.shifted
            ],
            dtype=np.float64,
        )
        worst = values.max() if name in _LOWER_IS_BETTER else values.min()
        return {f"suite_mean_{name}": float(values.mean()), f"suite_worst_{name}": float(worst)}

    def restore_best(self) -> None:
        """Puts the best epoch's weights back into the model (if any epoch was scored)."""
        if self.best_weights is not None:
            self.model.set_weights(self.best_weights)

    def _improves(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        if self.best_value is None:
            return True
        return value > self.best_value if self.higher_is_better else value < self.best_value


class EpochTimeLimit(keras.callbacks.Callback):
    """Stops training when an epoch runs longer than ``seconds``.

    Checked after every batch, so no more than one batch past the limit is spent. Keras
    still ends the cut epoch (the scorer scores the model as it stands); that epoch's
    history row gets :data:`TIME_LIMIT_KEY` and training stops. Place it after the
    :class:`ValidationMetrics` it marks.

    Args:
        seconds: The limit (> 0).
        scorer: The run's validation scorer, whose history row of the cut epoch is marked.
    """

    def __init__(self, seconds: float, scorer: ValidationMetrics) -> None:
        super().__init__()
        self.seconds = float(seconds)
        self.scorer = scorer
        self.hit = False
        self._start = 0.0

    def on_epoch_begin(self, epoch: int, logs=None) -> None:
        self._start = time.perf_counter()

    def on_train_batch_end(self, batch: int, logs=None) -> None:
        if time.perf_counter() - self._start > self.seconds:
            self.hit = True
            self.model.stop_training = True

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        history = self.scorer.history
        if self.hit and history and history[-1]["epoch"] == epoch + 1:
            history[-1][TIME_LIMIT_KEY] = self.seconds


class EpochPrinter(keras.callbacks.Callback):
    """Prints one line per epoch: loss and the main validation metrics.

    Args:
        write: Where lines go (``print`` by default).
        total_epochs: Shown as ``epoch 3/10``.
    """

    KEYS = ("rw_auc", "auc", "sensitivity", "specificity")

    def __init__(self, total_epochs: int, write=print) -> None:
        super().__init__()
        self.total_epochs = total_epochs
        self.write = write

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        logs = logs or {}
        parts = [f"epoch {epoch + 1}/{self.total_epochs}"]
        if "loss" in logs:
            parts.append(f"loss {float(logs['loss']):.4f}")
        parts += [f"val_{k} {logs[f'val_{k}']:.4f}" for k in self.KEYS if f"val_{k}" in logs]
        self.write("  ".join(parts))
