"""Grad-CAM: where in an X-ray the model looked for its positive-class score.

Works on any model of the registry, built or loaded from a ``.keras`` file (transfer models
nest their backbone as one layer; the backbone's feature map is used then).
"""

from __future__ import annotations

import io

import keras
import numpy as np
import tensorflow as tf
from PIL import Image

__all__ = ["feature_layer_name", "grad_cam", "overlay_heatmap", "overlay_png"]


def _spatial_outputs(model: keras.Model) -> list[tuple[str, object]]:
    """``(layer name, symbolic output)`` of each 4-D output in the model's own graph."""
    found = []
    for operation in model.operations:
        for index, node in enumerate(operation._inbound_nodes):
            # Only nodes of this model's graph (a nested backbone also has inner nodes).
            if f"{id(operation)}_ib-{index}" not in model._nodes:
                continue
            outputs = node.outputs
            if len(outputs) == 1 and len(outputs[0].shape) == 4:
                found.append((operation.name, outputs[0]))
    return found


def feature_layer_name(model: keras.Model) -> str:
    """The layer whose feature map Grad-CAM uses: the last one with a spatial output.

    Raises:
        ValueError: The model has no spatial layer after its input.
    """
    spatial = [item for item in _spatial_outputs(model) if item[1] is not model.inputs[0]]
    if not spatial:
        raise ValueError(f"model {model.name!r} has no spatial feature map for Grad-CAM")
    return spatial[-1][0]


def _wrapped_model(model: keras.Model) -> keras.Model | None:
    """The one model ``model`` wraps when its own graph has no spatial feature map (the
    site-calibrated copy: the exported model followed by a monotonic Platt layer, which
    leaves each image's normalized map unchanged), else None."""
    spatial = [item for item in _spatial_outputs(model) if item[1] is not model.inputs[0]]
    nested = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    return nested[0] if not spatial and len(nested) == 1 else None


def grad_cam(model: keras.Model, images: np.ndarray, class_index: int = 1) -> np.ndarray:
    """Grad-CAM heatmaps of ``class_index`` for a batch of images.

    Args:
        model: A classifier taking ``[0, 255]`` float images.
        images: ``(N, H, W, C)`` images (uint8 or float, ``[0, 255]``).
        class_index: The class explained; for a sigmoid model, 1 is the positive class and
            0 its complement.

    Returns:
        ``(N, H, W)`` heatmaps in ``[0, 1]`` at the input resolution (all zeros where no
        region raised the score). For a model wrapping member models (an ensemble), the
        mean of the members' heatmaps.
    """
    members = [
        layer
        for layer in model.layers
        if isinstance(layer, keras.Model) and layer.name.startswith("member_")
    ]
    if members:  # an ensemble or TTA wrapper (final): the mean of its members' maps
        return np.mean([grad_cam(m, images, class_index) for m in members], axis=0)
    inner = _wrapped_model(model)
    if inner is not None:  # e.g. the calibrated copy: the wrapped model's own map
        return grad_cam(inner, images, class_index)
    name = feature_layer_name(model)
    features = dict(_spatial_outputs(model))[name]
    probe = keras.Model(model.inputs, [features, model.outputs[0]])
    batch = tf.convert_to_tensor(np.asarray(images, dtype=np.float32))
    with tf.GradientTape() as tape:
        feature_map, probs = probe([batch], training=False)
        if probs.shape[-1] == 1:
            score = probs[:, 0] if class_index == 1 else 1.0 - probs[:, 0]
        else:
            score = probs[:, class_index]
    grads = tape.gradient(score, feature_map)
    weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
    cam = tf.nn.relu(tf.reduce_sum(weights * feature_map, axis=-1))
    cam = cam.numpy()
    peak = cam.reshape(len(cam), -1).max(axis=1).reshape(-1, 1, 1)
    cam = np.divide(cam, peak, out=np.zeros_like(cam), where=peak > 0)
    height, width = batch.shape[1], batch.shape[2]
    resized = tf.image.resize(cam[..., None], (height, width), method="bilinear")
    return np.clip(resized.numpy()[..., 0], 0.0, 1.0)


def _jet(values: np.ndarray) -> np.ndarray:
    """A blue-to-red colormap (no matplotlib needed): ``(H, W)`` in [0, 1] -> RGB uint8."""
    v = np.clip(values, 0.0, 1.0)
    red = np.clip(1.5 - np.abs(4 * v - 3), 0, 1)
    green = np.clip(1.5 - np.abs(4 * v - 2), 0, 1)
    blue = np.clip(1.5 - np.abs(4 * v - 1), 0, 1)
    return (np.stack([red, green, blue], axis=-1) * 255).astype(np.uint8)


def overlay_heatmap(
    image: np.ndarray, heatmap: np.ndarray, *, alpha: float = 0.4, size: int | None = None
) -> Image.Image:
    """Blends a heatmap over an image.

    Args:
        image: ``(H, W, C)`` uint8 image (1 or 3 channels).
        heatmap: ``(H, W)`` values in [0, 1].
        alpha: Opacity of the heatmap.
        size: Output side in pixels (default the image's).

    Returns:
        An RGB Pillow image.
    """
    pixels = np.asarray(image, dtype=np.uint8)
    if pixels.ndim == 3 and pixels.shape[-1] == 1:
        pixels = pixels[..., 0]
    base = Image.fromarray(pixels).convert("RGB")
    heat = Image.fromarray(_jet(heatmap)).resize(base.size, Image.Resampling.BILINEAR)
    blended = Image.blend(base, heat, alpha)
    if size and size != blended.width:
        blended = blended.resize((size, size), Image.Resampling.BILINEAR)
    return blended


def overlay_png(image: np.ndarray, heatmap: np.ndarray, *, size: int | None = None) -> bytes:
    """The overlay of :func:`overlay_heatmap` as PNG bytes."""
    buffer = io.BytesIO()
    overlay_heatmap(image, heatmap, size=size).save(buffer, format="PNG")
    return buffer.getvalue()
