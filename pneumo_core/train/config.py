"""The configuration of one training run (``pneumo-search train CONFIG.yaml``).

A search trial builds the same :class:`TrainConfig`, with sampled values in place of the
defaults, so a trial and a plain training run take one code path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pneumo_contracts.status import TrialStatus
from pneumo_core.configuration import from_dict, load_config, require, to_dict
from pneumo_core.data.config import AugmentConfig, DataConfig
from pneumo_core.metrics import METRICS, get_metric
from pneumo_core.models.registry import get_model_spec
from pneumo_core.models.weights import WeightsConfig
from pneumo_errors import UnknownNameError

__all__ = [
    "ModelConfig",
    "ObjectiveConfig",
    "TrainConfig",
    "TrainSections",
    "TrainingConfig",
    "load_train_config",
]


#: The status (``TrainResult``) and stop reason (leaderboard) of a run stopped because an
#: epoch ran past its time limit (``search.max_epoch_s``).
EPOCH_TIME_LIMIT = TrialStatus.EPOCH_TIME_LIMIT
#: History-row key (the limit, in seconds) of the epoch a time limit cut short.
TIME_LIMIT_KEY = "epoch_time_limit_s"


@dataclass(frozen=True)
class ModelConfig:
    """Which registered model to build, and its hyperparameters.

    Attributes:
        name: A registry name (``pneumo-search models`` lists them).
        params: That model's hyperparameters; checked against its params dataclass.
    """

    name: str = "cnn"
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        try:
            spec = get_model_spec(self.name)
        except UnknownNameError as exc:
            raise UnknownNameError("name", exc.kind, exc.name, exc.valid) from None
        from_dict(spec.params_class, self.params, prefix="params")


@dataclass(frozen=True)
class TrainingConfig:
    """How to fit a model.

    Attributes:
        epochs: Maximum epochs.
        batch_size: Images per batch.
        optimizer: ``adam``, ``adamw`` or ``sgd`` (with Nesterov momentum).
        learning_rate: Initial learning rate.
        lr_schedule: ``constant``, ``cosine`` (decay to 1% over the run) or ``exponential``
            (x0.5 every 5 epochs).
        weight_decay: Decoupled weight decay (``adamw``, ``sgd``).
        momentum: Momentum for ``sgd``.
        imbalance: ``none``, ``class_weight`` (balanced loss weights) or ``oversample``
            (repeat smaller classes each epoch).
        early_stopping_patience: Epochs without improvement of the objective on validation
            before stopping; 0 turns early stopping off. Best weights are restored anyway.
        threads: TensorFlow intra-op threads; 0 leaves TensorFlow's default.
        label_smoothing: Binary cross-entropy label smoothing (two classes; 0 = none).
        mixup: Mixup's Beta(a, a) parameter: each training image is blended with another
            of its batch, labels alike (two classes; 0 = off; 0.2 is usual).
        ema: Momentum of an exponential moving average of the weights (Keras' optimizer
            ``use_ema``; 0 = off, 0.99 is usual): validation, early stopping and the kept
            model use the averaged weights.
    """

    epochs: int = 10
    batch_size: int = 32
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    learning_rate: float = 1e-3
    lr_schedule: Literal["constant", "cosine", "exponential"] = "constant"
    weight_decay: float = 0.0
    momentum: float = 0.9
    imbalance: Literal["none", "class_weight", "oversample"] = "class_weight"
    early_stopping_patience: int = 3
    threads: int = 0
    label_smoothing: float = 0.0
    mixup: float = 0.0
    ema: float = 0.0

    def __post_init__(self) -> None:
        require(1 <= self.epochs <= 1000, "epochs", "must be between 1 and 1000")
        require(1 <= self.batch_size <= 4096, "batch_size", "must be between 1 and 4096")
        require(0 < self.learning_rate <= 10, "learning_rate", "must be in (0, 10]")
        require(0 <= self.weight_decay < 1, "weight_decay", "must be in [0, 1)")
        require(0 <= self.momentum < 1, "momentum", "must be in [0, 1)")
        require(self.early_stopping_patience >= 0, "early_stopping_patience", "must be >= 0")
        require(self.threads >= 0, "threads", "must be >= 0")
        require(0.0 <= self.label_smoothing < 0.5, "label_smoothing", "must be in [0, 0.5)")
        require(0.0 <= self.mixup <= 2.0, "mixup", "must be in [0, 2] (0 = off)")
        require(0.0 <= self.ema < 1.0, "ema", "must be in [0, 1) (0 = off)")


@dataclass(frozen=True)
class ObjectiveConfig:
    """The validation metric that early stopping and model selection follow.

    Attributes:
        metric: A metric name from :data:`pneumo_core.metrics.METRICS`.
        tau: Sensitivity floor of the partial AUC in ``rw_auc``.
        w: Weight of the partial AUC in ``rw_auc``.
        robustness: ``none`` (default): ``metric`` on the validation split as it is;
            ``mean`` or ``worst``: ``metric`` over the robustness suite
            (:mod:`pneumo_core.robustness`: every shift at ``robustness_severity``) applied
            to the validation split, its mean or its worst value. Each epoch then predicts
            the validation split once more per shift (10 shifts).
        robustness_severity: The suite's severity (1-3) in the objective.
        robustness_seed: Seed of the suite's random shifts.
        family_out: ``none`` (default): one model trained on the train split, scored on
            validation; ``mean`` or ``worst``: the search scores a configuration by models
            that each hold one acquisition family out of training
            (:mod:`pneumo_core.train.family_out`), the mean or the worst of ``metric`` on
            the held-out families. A trial then trains one model per family (about 3x the
            cost). A single training run (``train``, ``final``'s retrains) still follows
            ``metric`` on validation.
    """

    metric: str = "rw_auc"
    tau: float = 0.9
    w: float = 0.5
    robustness: Literal["none", "mean", "worst"] = "none"
    robustness_severity: int = 2
    robustness_seed: int = 0
    family_out: Literal["none", "mean", "worst"] = "none"

    def __post_init__(self) -> None:
        get_metric(self.metric)  # an unknown name: UnknownNameError, like every registry
        require(0.0 <= self.tau < 1.0, "tau", "must be in [0, 1)")
        require(0.0 <= self.w <= 1.0, "w", "must be in [0, 1]")
        require(self.robustness_severity in (1, 2, 3), "robustness_severity", "must be 1, 2 or 3")
        require(
            self.robustness == "none" or self.family_out == "none",
            "family_out",
            "cannot be combined with robustness (choose one shift objective)",
        )

    @property
    def key(self) -> str:
        """The name a search trial reports the objective under (``val_<key>``):
        :attr:`model_key`, or ``family_mean_<metric>`` / ``family_worst_<metric>`` with a
        family-out objective."""
        if self.family_out != "none":
            return f"family_{self.family_out}_{self.metric}"
        return self.model_key

    @property
    def model_key(self) -> str:
        """What one trained model follows on validation (early stopping, best epoch):
        ``metric``, or ``suite_mean_<metric>`` / ``suite_worst_<metric>`` with a
        robustness objective."""
        return (
            self.metric if self.robustness == "none" else f"suite_{self.robustness}_{self.metric}"
        )

    @property
    def mode(self) -> str:
        """``max`` or ``min``, from the metric's direction."""
        return "max" if METRICS[self.metric].higher_is_better else "min"


@dataclass(frozen=True)
class TrainSections:
    """The six sections a training run is made of, declared once.

    :class:`TrainConfig` (one training run) and the search's ``ExperimentConfig`` are both
    made of these sections plus their own keys; neither re-declares them.

    Attributes:
        data: Dataset location, splits and decoding.
        model: Registered model and its hyperparameters.
        augment: Training-time augmentation.
        training: Optimizer, schedule, epochs, imbalance handling.
        objective: Metric followed on validation.
        weights: Where pretrained weights are found.
    """

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    weights: WeightsConfig = field(default_factory=WeightsConfig)

    def sections(self) -> dict[str, Any]:
        """The six sections by name (to build another configuration from them)."""
        return {name: getattr(self, name) for name in TRAIN_SECTIONS}


#: The section names of :class:`TrainSections`.
TRAIN_SECTIONS = ("data", "model", "augment", "training", "objective", "weights")


@dataclass(frozen=True)
class TrainConfig(TrainSections):
    """Everything one training run needs: the six :class:`TrainSections` and a seed.

    Attributes:
        seed: Seed for weight initialization, shuffling and augmentation.
    """

    seed: int = 0

    def with_values(self, values: dict[str, Any], seed: int) -> TrainConfig:
        """This configuration with sampled values in place (one search trial's).

        Args:
            values: Dotted configuration keys -> values (``training.learning_rate``).
            seed: The new configuration's seed.

        Raises:
            ConfigError: A value is invalid for its key.
        """
        raw = to_dict(self)
        for key, value in values.items():
            node = raw
            parts = key.split(".")
            for part in parts[:-1]:
                node = node.setdefault(part, {})
            node[parts[-1]] = value
        if "model.name" in values and raw["model"]["name"] != self.model.name:
            # a different model than the base one starts from that model's defaults
            raw["model"]["params"] = {
                k.split(".", 2)[2]: v for k, v in values.items() if k.startswith("model.params.")
            }
        raw["seed"] = seed
        return from_dict(TrainConfig, raw)


def load_train_config(path: str | Path, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """Reads a training configuration file.

    Args:
        path: YAML file.
        overrides: Nested values that replace the file's, e.g.
            ``{"data": {"root": "..."}}``.

    Returns:
        The validated configuration.

    Raises:
        ConfigError: Naming the file and the key at fault.
    """
    return load_config(TrainConfig, path, overrides)
