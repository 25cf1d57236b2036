"""Transfer learning from ImageNet backbones (Keras Applications).

Registered: ``mobilenet``, ``mobilenet_v2``, ``xception``, ``vgg16``, ``efficientnet_b0``,
``densenet121``, ``resnet50``. Each takes images in [0, 255], repeats a grayscale channel
to RGB inside the model, applies the backbone's own normalization, and ends in a
pooling + dropout + dense head. With ``weights: imagenet`` the backbone starts frozen and
``fine_tune_layers`` of its top layers are unfrozen after ``warmup_epochs`` (BatchNorm layers
stay frozen); with ``weights: none`` the whole network trains from scratch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from pneumo_core.configuration import require
from pneumo_core.models.registry import register_model

__all__ = ["BACKBONES", "BackboneParams", "FineTunePlan", "MobileNetParams", "fine_tune_plan"]


@dataclass(frozen=True)
class BackboneParams:
    """Hyperparameters shared by every pretrained backbone.

    Attributes:
        weights: ``imagenet`` (found offline first, see
            :mod:`pneumo_core.models.weights`) or ``none`` (random init, all trainable).
        pooling: ``avg`` or ``max`` global pooling of the backbone's features.
        dense_units: Hidden dense layers of the head.
        dropout: Dropout in the head.
        fine_tune_layers: Top backbone layers unfrozen after the warm-up (0 = frozen).
        warmup_epochs: Epochs with the backbone frozen before fine-tuning starts.
        fine_tune_lr_factor: Learning-rate multiplier once fine-tuning starts.
        equalize: Histogram-equalize each image inside the model, before normalization.
        border_crop: Fraction cropped from every border inside the model (0 = none).
    """

    weights: Literal["imagenet", "none"] = "imagenet"
    pooling: Literal["avg", "max"] = "avg"
    dense_units: tuple[int, ...] = ()
    dropout: float = 0.2
    fine_tune_layers: int = 0
    warmup_epochs: int = 1
    fine_tune_lr_factor: float = 0.1
    equalize: bool = False
    border_crop: float = 0.0

    def __post_init__(self) -> None:
        require(0.0 <= self.dropout < 1.0, "dropout", "must be in [0, 1)")
        require(self.fine_tune_layers >= 0, "fine_tune_layers", "must be >= 0")
        require(self.warmup_epochs >= 0, "warmup_epochs", "must be >= 0")
        require(0 < self.fine_tune_lr_factor <= 1, "fine_tune_lr_factor", "must be in (0, 1]")
        require(all(u >= 1 for u in self.dense_units), "dense_units", "must be >= 1")
        require(0.0 <= self.border_crop <= 0.2, "border_crop", "must be in [0, 0.2]")


@dataclass(frozen=True)
class MobileNetParams(BackboneParams):
    """MobileNet v1: adds the width multiplier ``alpha`` (0.25, 0.5, 0.75 or 1.0)."""

    alpha: float = 0.25

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.alpha in (0.25, 0.5, 0.75, 1.0), "alpha", "must be 0.25, 0.5, 0.75 or 1.0")


@dataclass(frozen=True)
class MobileNetV2Params(BackboneParams):
    """MobileNetV2: adds ``alpha`` (0.35, 0.5, 0.75, 1.0, 1.3 or 1.4)."""

    alpha: float = 0.35

    def __post_init__(self) -> None:
        super().__post_init__()
        valid = (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)
        require(self.alpha in valid, "alpha", "must be one of 0.35, 0.5, 0.75, 1.0, 1.3, 1.4")


@dataclass(frozen=True)
class FineTunePlan:
    """When and how much of a backbone to unfreeze.

    Attributes:
        layers: Top backbone layers to unfreeze.
        after_epochs: Frozen epochs before that.
        lr_factor: Learning-rate multiplier from then on.
    """

    layers: int
    after_epochs: int
    lr_factor: float


def fine_tune_plan(params: object) -> FineTunePlan | None:
    """Returns the fine-tuning plan of a model's params, or ``None`` if it has none."""
    if not isinstance(params, BackboneParams) or params.weights != "imagenet":
        return None
    if params.fine_tune_layers <= 0:
        return None
    return FineTunePlan(params.fine_tune_layers, params.warmup_epochs, params.fine_tune_lr_factor)


def _sizes(rows: int, supported: tuple[int, ...]) -> list[int]:
    # Keras picks the file trained nearest the input size; other sizes hold weights of the
    # same shapes, so they are fallbacks.
    first = rows if rows in supported else 224
    return [first, *sorted((s for s in supported if s != first), key=lambda s: abs(s - rows))]


def _mobilenet_files(params: MobileNetParams, rows: int) -> list[str]:
    alpha = {1.0: "1_0", 0.75: "7_5", 0.5: "5_0", 0.25: "2_5"}[params.alpha]
    return [f"mobilenet_{alpha}_{r}_tf_no_top.h5" for r in _sizes(rows, (128, 160, 192, 224))]


def _mobilenet_v2_files(params: MobileNetV2Params, rows: int) -> list[str]:
    sizes = _sizes(rows, (96, 128, 160, 192, 224))
    return [
        f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{float(params.alpha)}_{r}_no_top.h5"
        for r in sizes
    ]


def _fixed(name: str) -> Callable[[object, int], list[str]]:
    return lambda params, rows: [name]


@dataclass(frozen=True)
class Backbone:
    """How to build one Keras application.

    Attributes:
        application: Attribute name in ``keras.applications``.
        normalization: Input normalization mode (see ``input_normalization``).
        min_size: Smallest input side Keras accepts.
        params_class: Hyperparameter dataclass.
        weight_files: Keras' file names for its no-top ImageNet weights.
    """

    application: str
    normalization: str
    min_size: int
    params_class: type
    weight_files: Callable[..., list[str]]


BACKBONES: dict[str, Backbone] = {
    "mobilenet": Backbone("MobileNet", "tf", 32, MobileNetParams, _mobilenet_files),
    "mobilenet_v2": Backbone("MobileNetV2", "tf", 32, MobileNetV2Params, _mobilenet_v2_files),
    "xception": Backbone(
        "Xception",
        "tf",
        71,
        BackboneParams,
        _fixed("xception_weights_tf_dim_ordering_tf_kernels_notop.h5"),
    ),
    "vgg16": Backbone(
        "VGG16",
        "caffe",
        32,
        BackboneParams,
        _fixed("vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"),
    ),
    "efficientnet_b0": Backbone(
        "EfficientNetB0", "none", 32, BackboneParams, _fixed("efficientnetb0_notop.h5")
    ),
    "densenet121": Backbone(
        "DenseNet121",
        "torch",
        32,
        BackboneParams,
        _fixed("densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5"),
    ),
    "resnet50": Backbone(
        "ResNet50",
        "caffe",
        32,
        BackboneParams,
        _fixed("resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"),
    ),
}


def _make_builder(name: str, backbone: Backbone):
    def build(params: BackboneParams, input_shape, num_classes: int, weights):
        import keras

        from pneumo_core.models.heads import classifier_head
        from pneumo_core.models.layers import input_normalization, input_preprocessing
        from pneumo_core.models.weights import resolve_weights
        from pneumo_errors import ConfigError

        size = input_shape[0]
        if size < backbone.min_size:
            raise ConfigError(
                "data.image_size", f"{size} px is below {name}'s minimum of {backbone.min_size}"
            )
        source = None
        if params.weights == "imagenet":
            source = resolve_weights(name, backbone.weight_files(params, size), weights)
        kwargs = {"alpha": params.alpha} if hasattr(params, "alpha") else {}
        base = getattr(keras.applications, backbone.application)(
            include_top=False,
            weights=source,
            input_shape=(size, size, 3),
            name="backbone",
            **kwargs,
        )
        base.trainable = params.weights == "none"
        inputs = keras.Input(shape=input_shape, name="image")
        x = input_preprocessing(inputs, equalize=params.equalize, border_crop=params.border_crop)
        if input_shape[-1] == 1:
            x = keras.layers.Concatenate(name="gray_to_rgb")([x, x, x])
        x = input_normalization(x, backbone.normalization)
        # training=False keeps BatchNorm in inference mode while the backbone is frozen.
        x = base(x, training=False) if params.weights == "imagenet" else base(x)
        pool = (
            keras.layers.GlobalAveragePooling2D
            if params.pooling == "avg"
            else (keras.layers.GlobalMaxPooling2D)
        )
        x = pool(name="global_pool")(x)
        outputs = classifier_head(
            x,
            num_classes=num_classes,
            dense_units=params.dense_units,
            dropout=params.dropout,
            activation="relu",
        )
        return keras.Model(inputs, outputs, name=name)

    build.__name__ = f"build_{name}"
    build.__doc__ = f"Builds {backbone.application} with a classifier head."
    return build


for _name, _backbone in BACKBONES.items():
    register_model(
        _name, _backbone.params_class, family="transfer", weight_files=_backbone.weight_files
    )(_make_builder(_name, _backbone))
