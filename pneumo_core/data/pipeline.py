"""tf.data pipelines over the memory-mapped image cache.

Batches are gathered from the shared memory map (no per-trial copy of the dataset), cast to
float32 in [0, 255] and, for training, augmented with Keras preprocessing layers. Models
normalize their own inputs.
"""

from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf

from pneumo_core.data.config import AugmentConfig
from pneumo_core.data.imbalance import oversampled_indices
from pneumo_core.data.shift_augment import shift_augment, uses_shift_augment

__all__ = ["build_augmenter", "predict_batches", "training_dataset"]


def build_augmenter(config: AugmentConfig, seed: int) -> keras.Sequential | None:
    """Returns a Sequential of random augmentation layers, or ``None`` if all are off.

    Args:
        config: Augmentation strengths.
        seed: Base seed; each layer gets its own seed derived from it.
    """
    layers: list[keras.layers.Layer] = []
    if config.horizontal_flip:
        layers.append(keras.layers.RandomFlip("horizontal", seed=seed))
    if config.rotation_deg:
        layers.append(
            keras.layers.RandomRotation(
                config.rotation_deg / 360.0, fill_mode="constant", seed=seed + 1
            )
        )
    if config.zoom:
        layers.append(keras.layers.RandomZoom(config.zoom, fill_mode="constant", seed=seed + 2))
    if config.translation:
        layers.append(
            keras.layers.RandomTranslation(
                config.translation, config.translation, fill_mode="constant", seed=seed + 3
            )
        )
    if config.contrast:
        layers.append(
            keras.layers.RandomContrast(config.contrast, value_range=(0, 255), seed=seed + 4)
        )
    if config.brightness:
        layers.append(
            keras.layers.RandomBrightness(config.brightness, value_range=(0, 255), seed=seed + 5)
        )
    return keras.Sequential(layers, name="augment") if layers else None


def training_dataset(
    images: np.ndarray,
    labels: np.ndarray,
    index: np.ndarray,
    *,
    batch_size: int,
    seed: int,
    augment: AugmentConfig,
    oversample: bool,
    num_classes: int,
    mixup: float = 0.0,
) -> tuple[tf.data.Dataset, int]:
    """Returns an endless-per-epoch training dataset and its steps per epoch.

    Each pass over the dataset is one epoch, reshuffled (and, with ``oversample``,
    re-drawn) from a generator seeded once with ``seed``.

    Args:
        images: All images, uint8 (usually the memory map).
        labels: All labels.
        index: Indices of the training images.
        batch_size: Images per batch.
        seed: Seed for shuffling, oversampling and augmentation.
        augment: Augmentation settings.
        oversample: Repeat smaller classes up to the largest one each epoch.
        num_classes: Number of classes (sets the label dtype/shape).
        mixup: Beta(a, a) parameter of mixup (two classes): each image and label is
            blended with another of its batch; 0 = off.

    Returns:
        ``(dataset, steps_per_epoch)``.
    """
    rng = np.random.default_rng(seed)
    size = len(index)
    if oversample:
        counts = np.bincount(labels[index])
        size = int(counts.max()) * int((counts > 0).sum())
    steps = math.ceil(size / batch_size)
    label_dtype = np.float32 if num_classes == 2 else np.int64

    def batches():
        order = oversampled_indices(index, labels, rng) if oversample else rng.permutation(index)
        for start in range(0, len(order), batch_size):
            chunk = np.sort(order[start : start + batch_size])  # sorted reads from the map
            x, y = images[chunk], labels[chunk].astype(label_dtype)
            if mixup > 0:
                lam = rng.beta(mixup, mixup, size=len(chunk)).astype(np.float32)
                partner = rng.permutation(len(chunk))
                x = lam[:, None, None, None] * x + (1 - lam[:, None, None, None]) * x[partner]
                y = lam * y + (1 - lam) * y[partner]
            yield x, y

    shape = (None, *images.shape[1:])
    dataset = tf.data.Dataset.from_generator(
        batches,
        output_signature=(
            tf.TensorSpec(shape, tf.float32 if mixup > 0 else tf.uint8),
            tf.TensorSpec((None,), tf.as_dtype(label_dtype)),
        ),
    )
    dataset = dataset.map(lambda x, y: (tf.cast(x, tf.float32), y))
    augmenter = build_augmenter(augment, seed)
    if augmenter is not None:
        dataset = dataset.map(
            lambda x, y: (augmenter(x, training=True), y), num_parallel_calls=tf.data.AUTOTUNE
        )
    if uses_shift_augment(augment):
        dataset = dataset.map(
            lambda x, y: (shift_augment(x, augment, seed), y), num_parallel_calls=tf.data.AUTOTUNE
        )
    # repeat(): Keras keeps one iterator across epochs when steps_per_epoch is given;
    # each pass of the generator is exactly one epoch of `steps` batches.
    return dataset.repeat().prefetch(2), steps


def predict_batches(model: keras.Model, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """Predicts probabilities for uint8 images, a batch at a time.

    Returns:
        ``(N,)`` positive-class probabilities for a sigmoid model, ``(N, K)`` otherwise.
    """
    outputs = []
    for start in range(0, len(images), batch_size):
        batch = np.asarray(images[start : start + batch_size], dtype=np.float32)
        outputs.append(np.asarray(model.predict_on_batch(batch)))
    probs = np.concatenate(outputs) if outputs else np.zeros((0, 1), np.float32)
    return probs[:, 0] if probs.shape[1] == 1 else probs
