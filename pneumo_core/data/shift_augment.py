"""Augmentations aimed at the shift to another site (issue 36): framing and intensity.

The official test split's images are framed and exposed differently from train's: its
normals are darker and more variable, and train carries class signal at the image border
(neck, clavicles) that the test split does not. These batch-level TensorFlow functions run
in the training pipeline only (never in a model, so nothing changes at prediction time):

- a random resized crop (area scale down to ``crop_scale``, aspect 3/4 to 4/3), so no
  fixed framing is learnt;
- gamma jitter (``exp(U(-gamma, gamma))``), a change of exposure curve that brightness and
  contrast do not cover;
- down-then-up sampling by 2 to 4x with probability ``degrade`` (the suite's blur and
  downsampling shifts, which cost the most specificity);
- border-band erasing: each of the four borders is blanked, with probability one half, over
  up to ``band_erase`` of the side, so the border carries no reliable signal.
"""

from __future__ import annotations

import tensorflow as tf

from pneumo_core.data.config import AugmentConfig

__all__ = ["shift_augment", "uses_shift_augment"]


def uses_shift_augment(config: AugmentConfig) -> bool:
    """Whether any of this module's augmentations is switched on."""
    return config.crop_scale < 1.0 or bool(config.gamma or config.degrade or config.band_erase)


def _resized_crop(x: tf.Tensor, min_scale: float, seed: int) -> tf.Tensor:
    batch, height, width = tf.shape(x)[0], tf.shape(x)[1], tf.shape(x)[2]
    scale = tf.random.uniform([batch], min_scale, 1.0, seed=seed)
    log_ratio = tf.random.uniform([batch], tf.math.log(3 / 4), tf.math.log(4 / 3), seed=seed + 1)
    ratio = tf.exp(log_ratio)
    box_h = tf.minimum(tf.sqrt(scale / ratio), 1.0)
    box_w = tf.minimum(tf.sqrt(scale * ratio), 1.0)
    top = tf.random.uniform([batch], seed=seed + 2) * (1.0 - box_h)
    left = tf.random.uniform([batch], seed=seed + 3) * (1.0 - box_w)
    boxes = tf.stack([top, left, top + box_h, left + box_w], axis=1)
    return tf.image.crop_and_resize(
        x, boxes, tf.range(batch), tf.stack([height, width]), method="bilinear"
    )


def _gamma(x: tf.Tensor, strength: float, seed: int) -> tf.Tensor:
    gamma = tf.exp(tf.random.uniform([tf.shape(x)[0], 1, 1, 1], -strength, strength, seed=seed))
    return 255.0 * tf.pow(tf.clip_by_value(x / 255.0, 0.0, 1.0), gamma)


def _degrade(x: tf.Tensor, probability: float, seed: int) -> tf.Tensor:
    size = tf.shape(x)[1:3]
    factor = tf.random.uniform([], 2.0, 4.0, seed=seed)
    small = tf.maximum(tf.cast(tf.cast(size, tf.float32) / factor, tf.int32), 1)
    blurred = tf.image.resize(tf.image.resize(x, small, antialias=True), size)
    pick = tf.random.uniform([tf.shape(x)[0], 1, 1, 1], seed=seed + 1) < probability
    return tf.where(pick, blurred, x)


def _band_erase(x: tf.Tensor, fraction: float, seed: int) -> tf.Tensor:
    batch, height, width = tf.shape(x)[0], tf.shape(x)[1], tf.shape(x)[2]
    rows = tf.cast(tf.range(height), tf.float32)[None, :, None] / tf.cast(height, tf.float32)
    cols = tf.cast(tf.range(width), tf.float32)[None, None, :] / tf.cast(width, tf.float32)
    depth = tf.random.uniform([4, batch, 1, 1], 0.0, fraction, seed=seed)
    on = tf.cast(tf.random.uniform([4, batch, 1, 1], seed=seed + 1) < 0.5, tf.float32)
    depth = depth * on
    masked = (
        (rows < depth[0]) | (rows >= 1.0 - depth[1]) | (cols < depth[2]) | (cols >= 1.0 - depth[3])
    )
    return tf.where(masked[..., None], tf.zeros_like(x), x)


def shift_augment(x: tf.Tensor, config: AugmentConfig, seed: int) -> tf.Tensor:
    """Applies the switched-on site-shift augmentations to a float batch in [0, 255].

    Args:
        x: ``(B, H, W, C)`` float32 images in [0, 255].
        config: The augmentation settings (``crop_scale``, ``gamma``, ``degrade``,
            ``band_erase``).
        seed: Base seed of the random draws.

    Returns:
        The augmented batch, same shape, values in [0, 255].
    """
    if config.crop_scale < 1.0:
        x = _resized_crop(x, config.crop_scale, seed + 11)
    if config.gamma:
        x = _gamma(x, config.gamma, seed + 17)
    if config.degrade:
        x = _degrade(x, config.degrade, seed + 19)
    if config.band_erase:
        x = _band_erase(x, config.band_erase, seed + 23)
    return tf.clip_by_value(x, 0.0, 255.0)
