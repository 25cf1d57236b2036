"""A real exported model that needs no training: its probability follows the image's mean
grey level, ``sigmoid(20 * (grey / 255 - 0.6))``, at 32 px, written by the real export."""

from __future__ import annotations

from pathlib import Path


def grey_model(size: int = 32):
    import keras

    inputs = keras.Input((size, size, 1))
    identity = keras.layers.Conv2D(1, 1, kernel_initializer="ones", bias_initializer="zeros")
    scaled = identity(keras.layers.Rescaling(1 / 255)(inputs))  # a feature map for Grad-CAM
    pooled = keras.layers.GlobalAveragePooling2D()(scaled)
    dense = keras.layers.Dense(
        1,
        activation="sigmoid",
        kernel_initializer=keras.initializers.Constant(20.0),
        bias_initializer=keras.initializers.Constant(-12.0),
    )
    return keras.Model(inputs, dense(pooled))


def grey_export(folder: Path, size: int = 32) -> Path:
    """Exports :func:`grey_model` with a card whose threshold is 0.5."""
    from pneumo_core.data.decode import PREPROCESSING
    from pneumo_core.runtime import import_tensorflow
    from results.serving.export import export_model

    import_tensorflow()
    card = {
        "name": "grey",
        "class_names": ["NORMAL", "PNEUMONIA"],
        "positive_class": "PNEUMONIA",
        "input": {"size": size, "channels": 1, "color_mode": "grayscale", "aspect": "squash",
                  "dtype": "float32", "value_range": [0, 255], "preprocessing": PREPROCESSING},
        "threshold": {"value": 0.5, "chosen_by": "validation, sensitivity >= 0.95"},
    }  # fmt: skip
    return export_model(grey_model(size), folder, card)
