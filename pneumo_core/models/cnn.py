"""``cnn``: a configurable plain convolutional network, with the seed architectures as presets."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

from pneumo_core.configuration import require
from pneumo_core.models.registry import register_model

__all__ = ["SEED_PRESETS", "CNNParams"]

#: The seed architectures the search starts from and must beat.
SEED_PRESETS: dict[str, dict] = {
    # conv 32 -> pool -> conv 64 -> pool -> conv 64 -> flatten -> dense 128 -> dropout 0.5
    "seed_3conv": {
        "block_filters": (32, 64, 64),
        "pool_blocks": (0, 1),
        "padding": "valid",
        "head": "flatten",
        "dense_units": (128,),
        "dropout": 0.5,
    },
    # five conv blocks (32, 64, 64, 128, 256), each pooled, dense 128 then 64
    "seed_5conv": {
        "block_filters": (32, 64, 64, 128, 256),
        "padding": "valid",
        "head": "flatten",
        "dense_units": (128, 64),
        "dropout": 0.5,
    },
}


@dataclass(frozen=True)
class CNNParams:
    """Hyperparameters of ``cnn``.

    Attributes:
        preset: A name from :data:`SEED_PRESETS`; its values replace the defaults, and any
            other key given explicitly replaces the preset's.
        num_blocks: Conv blocks (ignored when ``block_filters`` is set).
        filters: Filters of the first block.
        growth: Filter multiplier from one block to the next.
        block_filters: Explicit filters per block.
        convs_per_block: Convolutions in each block.
        kernel_size: Convolution kernel side.
        padding: ``same`` or ``valid``.
        batch_norm: Batch normalization after each convolution.
        pooling: ``max`` or ``avg`` pooling after a block.
        pool_blocks: Indices of the blocks followed by pooling; default every block.
        head: ``flatten``, ``global_avg`` or ``global_max`` before the dense layers.
        dense_units: Hidden dense layers.
        dropout: Dropout after each hidden dense layer.
        activation: Activation of convolutions and dense layers.
        l2: L2 weight decay on every kernel.
        normalization: Input scaling inside the model: ``unit`` ([0, 1]), ``tf``
            ([-1, 1]) or ``per_image`` (each image to zero mean, unit variance).
        equalize: Histogram-equalize each image inside the model, before normalization.
        border_crop: Fraction cropped from every border inside the model (0 = none).
    """

    preset: str | None = None
    num_blocks: int = 3
    filters: int = 32
    growth: float = 2.0
    block_filters: tuple[int, ...] | None = None
    convs_per_block: int = 1
    kernel_size: int = 3
    padding: Literal["same", "valid"] = "same"
    batch_norm: bool = False
    pooling: Literal["max", "avg"] = "max"
    pool_blocks: tuple[int, ...] | None = None
    head: Literal["flatten", "global_avg", "global_max"] = "global_avg"
    dense_units: tuple[int, ...] = (128,)
    dropout: float = 0.5
    activation: Literal["relu", "elu", "swish", "gelu"] = "relu"
    l2: float = 0.0
    normalization: Literal["unit", "tf", "per_image"] = "unit"
    equalize: bool = False
    border_crop: float = 0.0

    def __post_init__(self) -> None:
        require(0.0 <= self.border_crop <= 0.2, "border_crop", "must be in [0, 0.2]")
        require(
            self.preset is None or self.preset in SEED_PRESETS,
            "preset",
            f"unknown preset {self.preset!r}; valid: {', '.join(SEED_PRESETS)}",
        )
        require(1 <= self.num_blocks <= 8, "num_blocks", "must be between 1 and 8")
        require(1 <= self.filters <= 1024, "filters", "must be between 1 and 1024")
        require(0.5 <= self.growth <= 4.0, "growth", "must be between 0.5 and 4")
        if self.block_filters is not None:
            require(len(self.block_filters) >= 1, "block_filters", "needs at least one block")
            require(all(f >= 1 for f in self.block_filters), "block_filters", "must be >= 1")
        require(1 <= self.convs_per_block <= 4, "convs_per_block", "must be between 1 and 4")
        require(self.kernel_size in (1, 3, 5, 7), "kernel_size", "must be 1, 3, 5 or 7")
        require(0.0 <= self.dropout < 1.0, "dropout", "must be in [0, 1)")
        require(self.l2 >= 0.0, "l2", "must be >= 0")
        require(all(u >= 1 for u in self.dense_units), "dense_units", "must be >= 1")

    def resolved(self) -> CNNParams:
        """Returns the parameters with the preset applied (explicit values win)."""
        if self.preset is None:
            return self
        defaults = CNNParams()
        explicit = {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if getattr(self, f.name) != getattr(defaults, f.name)
        }
        return dataclasses.replace(defaults, **{**SEED_PRESETS[self.preset], **explicit})

    def filters_per_block(self) -> tuple[int, ...]:
        """Returns the filters of each block."""
        if self.block_filters is not None:
            return self.block_filters
        return tuple(
            max(1, min(1024, round(self.filters * self.growth**i))) for i in range(self.num_blocks)
        )


@register_model("cnn", CNNParams, family="cnn")
def build_cnn(params: CNNParams, input_shape, num_classes: int, weights=None):
    """Builds the plain CNN (``weights`` is unused: it trains from scratch)."""
    import keras

    from pneumo_core.models.heads import classifier_head
    from pneumo_core.models.layers import input_normalization, input_preprocessing

    p = params.resolved()
    blocks = p.filters_per_block()
    pooled = set(range(len(blocks)) if p.pool_blocks is None else p.pool_blocks)
    regularizer = keras.regularizers.L2(p.l2) if p.l2 > 0 else None
    inputs = keras.Input(shape=input_shape, name="image")
    x = input_preprocessing(inputs, equalize=p.equalize, border_crop=p.border_crop)
    x = input_normalization(x, p.normalization)
    for b, filters in enumerate(blocks):
        for c in range(p.convs_per_block):
            if p.padding == "valid" and min(x.shape[1], x.shape[2]) < p.kernel_size:
                raise _too_small(input_shape)
            x = keras.layers.Conv2D(
                filters,
                p.kernel_size,
                padding=p.padding,
                use_bias=not p.batch_norm,
                kernel_regularizer=regularizer,
                name=f"block{b}_conv{c}",
            )(x)
            if p.batch_norm:
                x = keras.layers.BatchNormalization(name=f"block{b}_bn{c}")(x)
            x = keras.layers.Activation(p.activation, name=f"block{b}_act{c}")(x)
        if b in pooled:
            if min(x.shape[1], x.shape[2]) < 2:
                raise _too_small(input_shape)
            pool = (
                keras.layers.MaxPooling2D if p.pooling == "max" else keras.layers.AveragePooling2D
            )
            x = pool(2, name=f"block{b}_pool")(x)
    if min(x.shape[1], x.shape[2]) < 1:
        raise _too_small(input_shape)
    if p.head == "flatten":
        x = keras.layers.Flatten(name="flatten")(x)
    elif p.head == "global_avg":
        x = keras.layers.GlobalAveragePooling2D(name="global_pool")(x)
    else:
        x = keras.layers.GlobalMaxPooling2D(name="global_pool")(x)
    outputs = classifier_head(
        x,
        num_classes=num_classes,
        dense_units=p.dense_units,
        dropout=p.dropout,
        activation=p.activation,
        l2=p.l2,
    )
    return keras.Model(inputs, outputs, name="cnn")


def _too_small(input_shape) -> Exception:
    from pneumo_errors import ConfigError

    return ConfigError(
        "data.image_size",
        f"{input_shape[0]} px is too small for this many conv blocks and pools",
    )
