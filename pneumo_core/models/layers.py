"""Custom Keras layers used inside models, registered so safe-mode loading finds them.

No ``Lambda`` layer is used anywhere: a saved model must load with ``safe_mode=True``.
"""

from __future__ import annotations

import keras

__all__ = ["FixedShift", "PerImageStandardization", "ReverseChannels", "input_normalization"]

_IMAGENET_MEAN_RGB = (0.485, 0.456, 0.406)
_IMAGENET_STD_RGB = (0.229, 0.224, 0.225)
_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)


@keras.saving.register_keras_serializable(package="pneumo_core")
class ReverseChannels(keras.layers.Layer):
    """RGB to BGR (for backbones trained with Caffe-style preprocessing)."""

    def call(self, inputs):
        return keras.ops.flip(inputs, axis=-1)


@keras.saving.register_keras_serializable(package="pneumo_core")
class PerImageStandardization(keras.layers.Layer):
    """Scales each image to zero mean and unit variance (evens out exposure differences)."""

    def call(self, inputs):
        mean = keras.ops.mean(inputs, axis=(1, 2, 3), keepdims=True)
        std = keras.ops.std(inputs, axis=(1, 2, 3), keepdims=True)
        return (inputs - mean) / keras.ops.maximum(std, 1e-3)


@keras.saving.register_keras_serializable(package="pneumo_core")
class FixedShift(keras.layers.Layer):
    """Shifts images by a fixed fraction of their size, filling with black (a TTA view).

    Args:
        dy: Vertical shift as a fraction of the height (positive: down).
        dx: Horizontal shift as a fraction of the width (positive: right).
    """

    def __init__(self, dy: float = 0.0, dx: float = 0.0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.dy, self.dx = float(dy), float(dx)

    def call(self, inputs):
        height, width = inputs.shape[1], inputs.shape[2]
        dy, dx = round(self.dy * height), round(self.dx * width)
        py, px = abs(dy), abs(dx)
        padded = keras.ops.pad(inputs, [[0, 0], [py, py], [px, px], [0, 0]])
        return padded[:, py - dy : py - dy + height, px - dx : px - dx + width, :]

    def get_config(self) -> dict:
        return {**super().get_config(), "dy": self.dy, "dx": self.dx}


def input_normalization(x, mode: str):
    """Applies a backbone's input normalization to images with values in [0, 255].

    Args:
        x: A Keras tensor.
        mode: ``unit`` ([0, 1]), ``tf`` ([-1, 1]), ``per_image`` (each image to zero mean
            and unit variance), ``torch`` (ImageNet mean/std), ``caffe`` (BGR, ImageNet
            mean subtracted) or ``none``.

    Returns:
        The normalized tensor.
    """
    if mode == "unit":
        return keras.layers.Rescaling(1.0 / 255.0, name="normalize")(x)
    if mode == "tf":
        return keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name="normalize")(x)
    if mode == "per_image":
        return PerImageStandardization(name="normalize")(x)
    if mode == "torch":
        x = keras.layers.Rescaling(1.0 / 255.0, name="to_unit")(x)
        variance = [s * s for s in _IMAGENET_STD_RGB]
        return keras.layers.Normalization(
            mean=list(_IMAGENET_MEAN_RGB), variance=variance, name="normalize"
        )(x)
    if mode == "caffe":
        x = ReverseChannels(name="rgb_to_bgr")(x)
        return keras.layers.Normalization(
            mean=list(_CAFFE_MEAN_BGR), variance=[1.0, 1.0, 1.0], name="normalize"
        )(x)
    if mode == "none":
        return x
    raise ValueError(f"unknown normalization {mode!r}")
