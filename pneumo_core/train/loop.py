"""``train_model``: fit one configuration on prepared data and score it on validation."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import keras
import tensorflow as tf

from pneumo_core.data.dataset import PreparedData
from pneumo_core.data.imbalance import balanced_class_weights
from pneumo_core.data.pipeline import training_dataset
from pneumo_core.errors import ConfigError, TrainingError
from pneumo_core.metrics import METRICS
from pneumo_core.models import create_model, fine_tune_plan, model_params
from pneumo_core.train.callbacks import ValidationMetrics
from pneumo_core.train.config import TrainConfig, TrainingConfig

__all__ = ["TrainResult", "configure_threads", "train_model"]

#: Status of a run that used all its epochs, stopped early, or diverged.
COMPLETED, EARLY_STOPPED, DIVERGED = "completed", "early_stopped", "nan_loss"


@dataclass
class TrainResult:
    """The outcome of :func:`train_model`.

    Attributes:
        model: The trained model, with the best epoch's weights.
        status: ``completed``, ``early_stopped`` or ``nan_loss``.
        message: What happened, in one line (why it stopped, for ``nan_loss``).
        history: One row per epoch: ``epoch``, ``loss``, ``lr``, ``val_<metric>``...
        best_epoch: 1-based epoch with the best objective (0 if none was scored).
        best_metrics: Validation metrics at the best epoch (names without ``val_``).
        epochs_run: Epochs trained.
        param_count: Trainable and frozen parameters.
        seconds: Wall time of the run.
    """

    model: Any
    status: str
    message: str
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    best_metrics: dict[str, float] = field(default_factory=dict)
    epochs_run: int = 0
    param_count: int = 0
    seconds: float = 0.0


def configure_threads(threads: int) -> None:
    """Sets TensorFlow's intra-op threads (and inter-op to 2) once, before any op runs.

    Args:
        threads: Intra-op threads; 0 leaves TensorFlow's default.
    """
    if threads <= 0:
        return
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(min(2, threads))
    except RuntimeError:
        pass  # already initialized in this process: the first setting stays


def _optimizer(training: TrainingConfig, steps_per_epoch: int, lr_factor: float = 1.0):
    lr: Any = training.learning_rate * lr_factor
    total = max(1, training.epochs * steps_per_epoch)
    if training.lr_schedule == "cosine":
        lr = keras.optimizers.schedules.CosineDecay(lr, decay_steps=total, alpha=0.01)
    elif training.lr_schedule == "exponential":
        lr = keras.optimizers.schedules.ExponentialDecay(
            lr, decay_steps=5 * steps_per_epoch, decay_rate=0.5
        )
    if training.optimizer == "adam":
        return keras.optimizers.Adam(lr)
    if training.optimizer == "adamw":
        return keras.optimizers.AdamW(lr, weight_decay=training.weight_decay)
    return keras.optimizers.SGD(
        lr,
        momentum=training.momentum,
        nesterov=True,
        weight_decay=training.weight_decay or None,
    )


def _compile(model, config: TrainConfig, num_classes: int, steps: int, lr_factor: float = 1.0):
    loss = "binary_crossentropy" if num_classes == 2 else "sparse_categorical_crossentropy"
    model.compile(optimizer=_optimizer(config.training, steps, lr_factor), loss=loss)


def _unfreeze_top(model, layers: int) -> None:
    backbone = model.get_layer("backbone")
    backbone.trainable = True
    cutoff = max(0, len(backbone.layers) - layers)
    for i, layer in enumerate(backbone.layers):
        # BatchNorm statistics stay frozen: small batches would wreck them.
        frozen = i < cutoff or isinstance(layer, keras.layers.BatchNormalization)
        layer.trainable = not frozen


def train_model(
    config: TrainConfig,
    data: PreparedData,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    *,
    verbose: int = 0,
) -> TrainResult:
    """Trains one configuration on the train split, scoring validation every epoch.

    Seeds Keras (Python, NumPy and TensorFlow generators) with ``config.seed`` at the
    start, so a run is reproducible given its config. Early stopping follows
    ``config.objective`` on validation; the best epoch's weights are restored at the end.
    A NaN or infinite loss stops the run with status ``nan_loss`` instead of raising.

    Args:
        config: What to train and how.
        data: Prepared data (its ``train`` and ``val`` splits are used).
        callbacks: Extra Keras callbacks, run after the validation scoring (their epoch
            logs hold ``val_<metric>`` for every metric).
        verbose: Keras ``fit`` verbosity.

    Returns:
        The trained model and its history.

    Raises:
        ConfigError: The model does not fit the data (e.g. an image size too small).
        WeightsNotFoundError: Pretrained weights are missing offline.
        TrainingError: The train or validation split is empty.
    """
    start = time.perf_counter()
    configure_threads(config.training.threads)
    keras.utils.set_random_seed(config.seed)
    for split in ("train", "val"):
        if len(data.splits[split]) == 0:
            raise TrainingError(f"the {split} split of {data.config.root} is empty")
    params = model_params(config.model.name, config.model.params)
    model = create_model(
        config.model.name,
        params,
        data.input_shape,
        data.num_classes,
        weights=config.weights,
    )
    train_index = data.splits["train"]
    dataset, steps = training_dataset(
        data.images,
        data.labels,
        train_index,
        batch_size=config.training.batch_size,
        seed=config.seed,
        augment=config.augment,
        oversample=config.training.imbalance == "oversample",
        num_classes=data.num_classes,
    )
    class_weight = None
    if config.training.imbalance == "class_weight":
        class_weight = balanced_class_weights(data.labels[train_index], data.num_classes)
    val_images, val_labels = data.arrays("val")
    objective = config.objective
    scorer = ValidationMetrics(
        val_images,
        val_labels,
        objective=objective.metric,
        higher_is_better=METRICS[objective.metric].higher_is_better,
        tau=objective.tau,
        w=objective.w,
        batch_size=max(config.training.batch_size, 64),
    )

    def stopper() -> list[keras.callbacks.Callback]:
        patience = config.training.early_stopping_patience
        if patience <= 0:
            return []
        return [
            keras.callbacks.EarlyStopping(
                monitor=f"val_{objective.metric}", mode=objective.mode, patience=patience
            )
        ]

    plan = fine_tune_plan(params)
    epochs = config.training.epochs
    phases = [(0, epochs, 1.0)]
    if plan is not None and plan.after_epochs < epochs:
        phases = [(0, plan.after_epochs, 1.0), (plan.after_epochs, epochs, plan.lr_factor)]
    status = COMPLETED
    try:
        for phase, (first, last, lr_factor) in enumerate(phases):
            if phase > 0:
                _unfreeze_top(model, plan.layers)  # type: ignore[union-attr]
            if first >= last:
                continue
            _compile(model, config, data.num_classes, steps, lr_factor)
            early = stopper()
            history = model.fit(
                dataset,
                epochs=last,
                initial_epoch=first,
                steps_per_epoch=steps,
                class_weight=class_weight,
                shuffle=False,  # the generator shuffles, seeded
                callbacks=[scorer, *early, *callbacks],
                verbose=verbose,
            )
            ran = len(history.epoch)
            if scorer.diverged:
                status = DIVERGED
                break
            if early and ran < last - first:
                status = EARLY_STOPPED
                break
    except tf.errors.ResourceExhaustedError as exc:
        message = f"out of memory while training {config.model.name}: {exc.message}"
        raise TrainingError(message) from None
    except ValueError as exc:
        if "shape" in str(exc).lower() or "negative dimension" in str(exc).lower():
            raise ConfigError("model.params", f"model does not fit the input: {exc}") from None
        raise
    scorer.restore_best()
    best = next((row for row in scorer.history if row["epoch"] == scorer.best_epoch), {})
    best_metrics = {k[4:]: v for k, v in best.items() if k.startswith("val_")}
    if status == DIVERGED:
        message = scorer.diverged
    elif status == EARLY_STOPPED:
        message = f"early stopped after epoch {len(scorer.history)}, best epoch {scorer.best_epoch}"
    else:
        message = f"trained {len(scorer.history)} epochs, best epoch {scorer.best_epoch}"
    return TrainResult(
        model=model,
        status=status,
        message=message,
        history=scorer.history,
        best_epoch=scorer.best_epoch,
        best_metrics=best_metrics,
        epochs_run=len(scorer.history),
        param_count=int(model.count_params()),
        seconds=time.perf_counter() - start,
    )
