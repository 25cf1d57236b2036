"""The classifier head shared by every model: dense layers, dropout, output."""

from __future__ import annotations

import keras

__all__ = ["classifier_head"]


def classifier_head(
    x,
    *,
    num_classes: int,
    dense_units: tuple[int, ...],
    dropout: float,
    activation: str,
    l2: float = 0.0,
):
    """Adds dense layers and the output layer to a flat feature tensor.

    Args:
        x: Flat features.
        num_classes: 2 gives one sigmoid unit; more give a softmax.
        dense_units: Units of each hidden dense layer, in order.
        dropout: Dropout rate after each hidden dense layer (or on the features when
            there is none).
        activation: Activation of the hidden layers.
        l2: L2 weight decay on dense kernels.

    Returns:
        The output tensor, in float32 (also under mixed precision).
    """
    regularizer = keras.regularizers.L2(l2) if l2 > 0 else None
    for i, units in enumerate(dense_units):
        x = keras.layers.Dense(
            units, activation=activation, kernel_regularizer=regularizer, name=f"head_dense_{i}"
        )(x)
        if dropout > 0:
            x = keras.layers.Dropout(dropout, name=f"head_dropout_{i}")(x)
    if not dense_units and dropout > 0:
        x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    units, final = (1, "sigmoid") if num_classes == 2 else (num_classes, "softmax")
    return keras.layers.Dense(
        units, activation=final, kernel_regularizer=regularizer, dtype="float32", name="output"
    )(x)
