"""``train_model``: fit one configuration on prepared data and score it on validation."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from pneumo_contracts.status import TrialStatus
from pneumo_core.data.dataset import PreparedData
from pneumo_core.data.imbalance import balanced_class_weights
from pneumo_core.data.pipeline import training_dataset
from pneumo_core.metrics import METRICS
from pneumo_core.models import create_model, fine_tune_plan, model_params
from pneumo_core.train.callbacks import EpochTimeLimit, ValidationMetrics
from pneumo_core.train.checkpoint_files import (
    MANIFEST_FILE,
    checkpoint_index,
    sha256_file,
    verify_manifest,
)
from pneumo_core.train.config import EPOCH_TIME_LIMIT, TrainConfig, TrainingConfig
from pneumo_errors import CheckpointError, ConfigError, TrainingError

__all__ = [
    "EpochState",
    "ResumeState",
    "TrainResult",
    "best_epoch_metrics",
    "configure_threads",
    "train_model",
]

#: Status of a run that used all its epochs, stopped early, or diverged.
COMPLETED, EARLY_STOPPED, DIVERGED = (
    TrialStatus.COMPLETED,
    TrialStatus.STOPPED_EARLY,
    TrialStatus.NAN_LOSS,
)
#: Status of a run stopped because an epoch ran past ``max_epoch_seconds``.
TIME_LIMITED = EPOCH_TIME_LIMIT


@dataclass
class TrainResult:
    """The outcome of :func:`train_model`.

    Attributes:
        model: The trained model, with the best epoch's weights.
        status: A :class:`~pneumo_contracts.status.TrialStatus`: ``completed``,
            ``stopped_early``, ``nan_loss`` or ``epoch_time_limit``.
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


@dataclass
class ResumeState:
    """Where an interrupted run picks up (written by :meth:`EpochState.save`).

    Attributes:
        epochs_done: Epochs already trained.
        history: Their history rows.
        best_epoch: Best epoch so far (0 if none).
        best_value: Objective at the best epoch.
        weights_path: Weights after the last trained epoch.
        best_weights_path: Weights of the best epoch.
        folder: The checkpoint folder it was read from.
    """

    epochs_done: int
    history: list[dict[str, float]]
    best_epoch: int
    best_value: float | None
    weights_path: str
    best_weights_path: str | None
    folder: str | None = None

    @classmethod
    def load(cls, folder: str | Path) -> ResumeState:
        """Reads a state saved by :meth:`EpochState.save` from ``folder``.

        Raises:
            CheckpointError: The folder has no manifest (the save did not finish), or a
                file is missing or differs from the manifest's sha256.
        """
        folder = Path(folder)
        verify_manifest(folder)
        state = json.loads((folder / _STATE_FILE).read_text())
        best = folder / _BEST_FILE
        if not best.is_file() and state["best_epoch"] == state["epochs_done"]:
            best = folder / _WEIGHTS_FILE  # the last epoch was the best: one file for both
        return cls(
            epochs_done=int(state["epochs_done"]),
            history=list(state["history"]),
            best_epoch=int(state["best_epoch"]),
            best_value=state["best_value"],
            weights_path=str(folder / _WEIGHTS_FILE),
            best_weights_path=str(best) if best.is_file() else None,
            folder=str(folder),
        )

    @classmethod
    def load_latest_valid(cls, folder: str | Path) -> tuple[ResumeState | None, list[str]]:
        """Loads ``folder``, or else the newest valid older checkpoint.

        When the checkpoint asked for is damaged or incomplete, the copy of the one before
        it (its ``previous/``) is tried, then older ``checkpoint_NNNNNN`` folders beside it,
        newest first (never a newer one: its epochs were not recorded by the driver).

        Returns:
            ``(state, problems)``: the state (``None`` if no checkpoint is valid: train from
            the start) and one line per checkpoint passed over.
        """
        folder = Path(folder)
        candidates = [folder, folder / PREVIOUS_DIR]
        index = checkpoint_index(folder)
        if index is not None and folder.parent.is_dir():
            indexed = [(checkpoint_index(p), p) for p in folder.parent.iterdir()]
            older = [(i, p) for i, p in indexed if i is not None and i < index]
            candidates += [p for _, p in sorted(older, reverse=True)]
        problems = []
        for candidate in candidates:
            try:
                return cls.load(candidate), problems
            except (CheckpointError, OSError, ValueError, KeyError) as exc:
                problems.append(f"{candidate.name}: {exc}")
        return None, problems


@dataclass
class EpochState:
    """What the ``on_epoch`` hook of :func:`train_model` receives after each epoch.

    Attributes:
        epoch: 1-based epoch just finished.
        row: Its history row (``loss``, ``val_<metric>``...).
        history: All rows so far.
        best_epoch: Best epoch so far.
        best_value: Objective at the best epoch.
        model: The model (current weights).
        best_weights: The best epoch's weights.
        finished: Whether training ends after this epoch (budget used or early stopping).
    """

    epoch: int
    row: dict[str, float]
    history: list[dict[str, float]]
    best_epoch: int
    best_value: float | None
    model: Any
    best_weights: list[np.ndarray] | None
    finished: bool = False

    def save(self, folder: str | Path, previous: str | Path | None = None) -> None:
        """Writes weights, best weights and history so :class:`ResumeState` can resume.

        When this epoch is the best so far, one weights file stands for both.

        Args:
            folder: Where to write.
            previous: The previous epoch's checkpoint folder, copied into ``previous/`` (its
                own ``previous/`` left out): if this checkpoint is damaged later, training
                can resume from the one before.
        """
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        if previous is not None and (Path(previous) / MANIFEST_FILE).is_file():
            shutil.copytree(
                previous, folder / PREVIOUS_DIR, ignore=shutil.ignore_patterns(PREVIOUS_DIR)
            )
        self.model.save_weights(folder / _WEIGHTS_FILE)
        if self.best_weights is not None and self.best_epoch != self.epoch:
            current = self.model.get_weights()
            self.model.set_weights(self.best_weights)
            self.model.save_weights(folder / _BEST_FILE)
            self.model.set_weights(current)
        state = {
            "epochs_done": self.epoch,
            "history": self.history,
            "best_epoch": self.best_epoch,
            "best_value": self.best_value,
        }
        (folder / _STATE_FILE).write_text(json.dumps(state))
        # written last: a checkpoint without its manifest did not finish saving
        names = [n for n in (_STATE_FILE, _WEIGHTS_FILE, _BEST_FILE) if (folder / n).is_file()]
        manifest = {name: sha256_file(folder / name) for name in names}
        (folder / MANIFEST_FILE).write_text(json.dumps(manifest))


_STATE_FILE, _WEIGHTS_FILE, _BEST_FILE = "state.json", "last.weights.h5", "best.weights.h5"
#: Inside a checkpoint: a copy of the checkpoint of the epoch before.
PREVIOUS_DIR = "previous"


def best_epoch_metrics(history: Sequence[dict[str, float]], best_epoch: int) -> dict[str, float]:
    """The validation metrics of epoch ``best_epoch`` (names without ``val_``; {} if none)."""
    best = next((row for row in history if row["epoch"] == best_epoch), {})
    return {k[4:]: v for k, v in best.items() if k.startswith("val_")}


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
    ema: dict[str, Any] = {}
    if training.ema:
        ema = {"use_ema": True, "ema_momentum": training.ema}
    if training.optimizer == "adam":
        return keras.optimizers.Adam(lr, **ema)
    if training.optimizer == "adamw":
        return keras.optimizers.AdamW(lr, weight_decay=training.weight_decay, **ema)
    return keras.optimizers.SGD(
        lr,
        momentum=training.momentum,
        nesterov=True,
        weight_decay=training.weight_decay or None,
        **ema,
    )


def compile_model(
    model, config: TrainConfig, num_classes: int, steps: int, lr_factor: float = 1.0
) -> None:
    """Compiles ``model`` with the configured optimizer (and schedule) and the loss."""
    training = config.training
    if num_classes != 2 and (training.label_smoothing or training.mixup):
        raise ConfigError(
            "training.label_smoothing" if training.label_smoothing else "training.mixup",
            f"works with two classes; this dataset has {num_classes}",
        )
    loss: Any = "sparse_categorical_crossentropy"
    if num_classes == 2:
        loss = keras.losses.BinaryCrossentropy(label_smoothing=training.label_smoothing)
    model.compile(optimizer=_optimizer(config.training, steps, lr_factor), loss=loss)


def _unfreeze_top(model, layers: int) -> None:
    backbone = model.get_layer("backbone")
    backbone.trainable = True
    cutoff = max(0, len(backbone.layers) - layers)
    for i, layer in enumerate(backbone.layers):
        # BatchNorm statistics stay frozen: small batches would wreck them.
        frozen = i < cutoff or isinstance(layer, keras.layers.BatchNormalization)
        layer.trainable = not frozen


class _EpochHook(keras.callbacks.Callback):
    """Runs after every other callback, so it knows whether training stops now."""

    def __init__(self, on_epoch: Callable[[EpochState], None], scorer, epochs: int) -> None:
        super().__init__()
        self.on_epoch = on_epoch
        self.scorer = scorer
        self.epochs = epochs

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        scorer = self.scorer
        if scorer.diverged or not scorer.history or scorer.history[-1]["epoch"] != epoch + 1:
            return
        finished = bool(self.model.stop_training) or epoch + 1 >= self.epochs
        self.on_epoch(
            EpochState(
                epoch + 1,
                scorer.history[-1],
                scorer.history,
                scorer.best_epoch,
                scorer.best_value,
                self.model,
                scorer.best_weights,
                finished,
            )
        )


def _restore(model, scorer: ValidationMetrics, resume: ResumeState) -> None:
    # The scorer may not see a fit (every epoch was already trained): give it the model.
    scorer.set_model(model)
    if resume.best_weights_path:
        model.load_weights(resume.best_weights_path)
        scorer.best_weights = model.get_weights()
    model.load_weights(resume.weights_path)
    scorer.history = list(resume.history)
    scorer.best_epoch = resume.best_epoch
    scorer.best_value = resume.best_value


def fit_inputs(
    config: TrainConfig, data: PreparedData
) -> tuple[tf.data.Dataset, int, dict[int, float] | None, ValidationMetrics]:
    """What ``model.fit`` needs to train ``config`` as :func:`train_model` does.

    For tools that drive ``fit`` themselves (the KerasTuner arm of the search benchmark):
    the same training dataset, class weights and validation scoring as a trial.

    Returns:
        ``(dataset, steps_per_epoch, class_weight, scorer)``; put ``scorer`` first among
        the ``fit`` callbacks so the others see ``val_<metric>`` in the epoch logs.
    """
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
        mixup=config.training.mixup if data.num_classes == 2 else 0.0,
    )
    class_weight = None
    if config.training.imbalance == "class_weight":
        class_weight = balanced_class_weights(data.labels[train_index], data.num_classes)
    val_images, val_labels = data.arrays("val")
    objective = config.objective
    scorer = ValidationMetrics(
        val_images,
        val_labels,
        objective=objective.model_key,
        higher_is_better=METRICS[objective.metric].higher_is_better,
        tau=objective.tau,
        w=objective.w,
        batch_size=max(config.training.batch_size, 64),
        suite=(
            None
            if objective.robustness == "none"
            else (objective.robustness_severity, objective.robustness_seed, objective.metric)
        ),
    )
    return dataset, steps, class_weight, scorer


def train_model(
    config: TrainConfig,
    data: PreparedData,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    *,
    on_epoch: Callable[[EpochState], None] | None = None,
    resume: ResumeState | None = None,
    verbose: int = 0,
    max_epoch_seconds: float = 0.0,
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
        on_epoch: Called after each scored epoch, after every callback (so it knows if
            training stops there), e.g. to checkpoint and report to Ray Tune.
        resume: State of an interrupted run to continue from (its epochs are not
            trained again; the optimizer state starts afresh).
        verbose: Keras ``fit`` verbosity.
        max_epoch_seconds: Stop the run when an epoch takes longer (0 = no limit): that
            epoch ends after the batch that crossed the limit, is scored as it stands
            (its row gets ``epoch_time_limit_s``), and the status is ``epoch_time_limit``.

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
    dataset, steps, class_weight, scorer = fit_inputs(config, data)
    objective = config.objective
    hooks: list[keras.callbacks.Callback] = []
    limit = EpochTimeLimit(max_epoch_seconds, scorer) if max_epoch_seconds > 0 else None
    guard = [limit] if limit is not None else []
    if on_epoch is not None:
        hooks.append(_EpochHook(on_epoch, scorer, config.training.epochs))

    def stopper() -> list[keras.callbacks.Callback]:
        patience = config.training.early_stopping_patience
        if patience <= 0:
            return []
        return [
            keras.callbacks.EarlyStopping(
                monitor=f"val_{objective.model_key}", mode=objective.mode, patience=patience
            )
        ]

    plan = fine_tune_plan(params)
    epochs = config.training.epochs
    phases = [(0, epochs, 1.0)]
    if plan is not None and plan.after_epochs < epochs:
        phases = [(0, plan.after_epochs, 1.0), (plan.after_epochs, epochs, plan.lr_factor)]
    done = 0
    if resume is not None:
        done = resume.epochs_done
        if plan is not None and done >= plan.after_epochs:
            _unfreeze_top(model, plan.layers)
        _restore(model, scorer, resume)
    status = COMPLETED
    try:
        for phase, (first, last, lr_factor) in enumerate(phases):
            if phase > 0:
                _unfreeze_top(model, plan.layers)  # type: ignore[union-attr]
            first = max(first, done)
            if first >= last:
                continue
            compile_model(model, config, data.num_classes, steps, lr_factor)
            early = stopper()
            # EMA: the averaged weights are swapped in at each epoch end, so the scoring,
            # early stopping, best weights and checkpoints see them (swapped back after)
            averaged = (
                [keras.callbacks.SwapEMAWeights(swap_on_epoch=True)] if config.training.ema else []
            )
            history = model.fit(
                dataset,
                epochs=last,
                initial_epoch=first,
                steps_per_epoch=steps,
                class_weight=class_weight,
                shuffle=False,  # the generator shuffles, seeded
                callbacks=[*averaged, scorer, *guard, *early, *callbacks, *hooks],
                verbose=verbose,
            )
            ran = len(history.epoch)
            if scorer.diverged:
                status = DIVERGED
                break
            if limit is not None and limit.hit:
                status = TIME_LIMITED
                break
            if early and early[0].stopped_epoch > 0 and ran < last - first:
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
    best_metrics = best_epoch_metrics(scorer.history, scorer.best_epoch)
    if status == DIVERGED:
        message = scorer.diverged
    elif status == TIME_LIMITED:
        message = (
            f"stopped in epoch {len(scorer.history)}: it ran past {max_epoch_seconds:g} s "
            f"(the per-epoch time limit), best epoch {scorer.best_epoch}"
        )
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
