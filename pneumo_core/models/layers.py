"""Custom Keras layers used inside models, registered so safe-mode loading finds them.

No ``Lambda`` layer is used anywhere: a saved model must load with ``safe_mode=True``.
"""

from __future__ import annotations

import keras

__all__ = [
    "BorderCrop",
    "FixedShift",
    "HistogramEqualization",
    "PerImageStandardization",
    "PlattScaling",
    "ReverseChannels",
    "input_normalization",
    "input_preprocessing",
]

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
class PlattScaling(keras.layers.Layer):
    """``sigmoid(slope * logit(p) + intercept)`` of a probability (site calibration).

    Appended to an exported model by ``pneumo-search calibrate``, so ``predict``, ``explain``
    and the SavedModel's signatures all give the calibrated probability.

    Args:
        slope: Multiplies the logit (> 0 keeps the images' order).
        intercept: Added to the scaled logit.
    """

    def __init__(self, slope: float = 1.0, intercept: float = 0.0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.slope, self.intercept = float(slope), float(intercept)

    def call(self, inputs):
        p = keras.ops.clip(inputs, 1e-7, 1.0 - 1e-7)
        logit = keras.ops.log(p) - keras.ops.log1p(-p)
        return keras.ops.sigmoid(self.slope * logit + self.intercept)

    def get_config(self) -> dict:
        return {**super().get_config(), "slope": self.slope, "intercept": self.intercept}


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


@keras.saving.register_keras_serializable(package="pneumo_core")
class HistogramEqualization(keras.layers.Layer):
    """Global histogram equalization of each image and channel (values stay in [0, 255]).

    Evens out exposure and contrast between sources: each pixel becomes the share of the
    image's pixels at or below its grey level.
    """

    def call(self, inputs):
        import tensorflow as tf

        shape = tf.shape(inputs)
        channels_first = tf.transpose(inputs, [0, 3, 1, 2])
        flat = tf.reshape(channels_first, [shape[0] * shape[3], -1])
        levels = tf.cast(tf.clip_by_value(tf.round(flat), 0, 255), tf.int32)
        hist = tf.math.bincount(levels, minlength=256, maxlength=256, axis=-1)
        cdf = tf.cast(tf.cumsum(hist, axis=-1), inputs.dtype)
        first = tf.reduce_min(tf.where(cdf > 0, cdf, tf.reduce_max(cdf)), axis=-1, keepdims=True)
        total = cdf[:, -1:]
        lut = 255.0 * (cdf - first) / tf.maximum(total - first, 1.0)
        equalized = tf.gather(tf.maximum(lut, 0.0), levels, batch_dims=1)
        out = tf.reshape(equalized, [shape[0], shape[3], shape[1], shape[2]])
        return tf.transpose(out, [0, 2, 3, 1])


@keras.saving.register_keras_serializable(package="pneumo_core")
class BorderCrop(keras.layers.Layer):
    """Crops a fraction of every border and resizes back (drops labels, rulers, collimation).

    Args:
        fraction: Share of the height and width removed on each side.
    """

    def __init__(self, fraction: float = 0.0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.fraction = float(fraction)

    def call(self, inputs):
        height, width = inputs.shape[1], inputs.shape[2]
        dy, dx = round(self.fraction * height), round(self.fraction * width)
        cropped = inputs[:, dy : height - dy, dx : width - dx, :]
        return keras.ops.image.resize(cropped, (height, width), interpolation="bilinear")

    def get_config(self) -> dict:
        return {**super().get_config(), "fraction": self.fraction}


def input_preprocessing(x, *, equalize: bool = False, border_crop: float = 0.0):
    """Optional preprocessing inside the model, before its normalization.

    Args:
        x: A Keras tensor of images in [0, 255].
        equalize: Histogram-equalize each image.
        border_crop: Fraction cropped from every border (then resized back); 0 = none.
    """
    if border_crop > 0:
        x = BorderCrop(border_crop, name="border_crop")(x)
    if equalize:
        x = HistogramEqualization(name="equalize")(x)
    return x


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
