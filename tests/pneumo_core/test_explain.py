"""Grad-CAM on registry models: shapes, range, nested backbones, and that it localizes."""

from __future__ import annotations

import numpy as np

from pneumo_core.explain import feature_layer_name, grad_cam, overlay_heatmap
from pneumo_core.models import create_model, model_params


def test_gradcam_on_a_nested_backbone_uses_the_backbone_feature_map():
    model = create_model(
        "mobilenet", model_params("mobilenet", {"alpha": 0.25, "weights": "none"}), (32, 32, 1), 2
    )
    assert feature_layer_name(model) == "backbone"
    images = np.random.default_rng(0).uniform(0, 255, (3, 32, 32, 1))
    heat = grad_cam(model, images)
    assert heat.shape == (3, 32, 32) and heat.min() >= 0.0 and heat.max() <= 1.0


def test_gradcam_points_at_the_patch_a_trained_cnn_learned():
    import keras

    rng = np.random.default_rng(0)
    n = 256
    images = rng.uniform(0, 60, (n, 32, 32, 1)).astype(np.float32)
    labels = np.arange(n) % 2
    for i in np.flatnonzero(labels == 1):  # positives: a bright patch in the top-left quarter
        r, c = rng.integers(2, 8, size=2)
        images[i, r : r + 6, c : c + 6] = 230
    params = model_params(
        "cnn", {"num_blocks": 2, "filters": 8, "head": "global_avg", "dense_units": [8]}
    )
    keras.utils.set_random_seed(0)
    model = create_model("cnn", params, (32, 32, 1), 2)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="binary_crossentropy")
    model.fit(images, labels.astype(np.float32), epochs=8, batch_size=32, verbose=0)
    positives = images[labels == 1][:16]
    assert np.mean(model.predict_on_batch(positives)[:, 0] > 0.5) > 0.9
    heat = grad_cam(model, positives)
    top_left = heat[:, :16, :16].sum(axis=(1, 2))
    assert np.mean(top_left > heat.sum(axis=(1, 2)) - top_left) > 0.8


def test_overlay_is_rgb_at_the_requested_size():
    image = np.zeros((16, 16, 1), np.uint8)
    heat = np.linspace(0, 1, 256).reshape(16, 16)
    overlay = overlay_heatmap(image, heat, size=64)
    assert overlay.size == (64, 64) and overlay.mode == "RGB"
    pixels = np.asarray(overlay)
    assert pixels[0, 0, 2] > pixels[0, 0, 0] and pixels[-1, -1, 0] > pixels[-1, -1, 2]


def test_gradcam_of_a_calibrated_copy_is_the_wrapped_models_map():
    """The site-calibrated copy (the model, then a Platt layer) explains like the model."""
    import keras

    from pneumo_core.models.layers import PlattScaling

    model = create_model(
        "cnn", model_params("cnn", {"num_blocks": 2, "filters": 4}), (32, 32, 1), 2
    )
    inputs = keras.Input((32, 32, 1))
    copy = keras.Model(inputs, PlattScaling(2.0, -0.5)(model(inputs)))
    images = np.random.default_rng(1).uniform(0, 255, (2, 32, 32, 1))
    assert np.allclose(grad_cam(copy, images), grad_cam(model, images), atol=1e-5)
    flat_inputs = keras.Input((32, 32, 1))
    flat_output = keras.layers.Dense(1, activation="sigmoid")(keras.layers.Flatten()(flat_inputs))
    flat = keras.Model(flat_inputs, flat_output)
    import pytest

    with pytest.raises(ValueError, match="no spatial feature map"):
        grad_cam(flat, images)
