"""The exported model gives the same answer everywhere (issue 17).

On 50 real images of ../shared/data: ``predict``, ``model.keras`` with the model card's
documented recipe, the SavedModel's ``serve_bytes`` signature in a fresh process with plain
TensorFlow, and an exported ensemble's two paths agree to 1e-3 with no class flip.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

pytestmark = pytest.mark.slow

#: A fresh process that knows nothing of pneumo-search: plain TensorFlow and the files.
SERVE_BYTES = """
import json, sys
import tensorflow as tf
out = {}
for folder in sys.argv[2:]:
    served = tf.saved_model.load(folder + "/saved_model")
    files = [open(p, "rb").read() for p in json.loads(sys.argv[1])]
    probability = served.signatures["serve_bytes"](image_bytes=tf.constant(files))["probability"]
    out[folder] = probability.numpy()[:, 0].tolist()
print(json.dumps(out))
"""


def fifty_images(mini_root):
    files = []
    for split, label in (("test", "NORMAL"), ("test", "PNEUMONIA"), ("val", "NORMAL")):
        files += sorted((mini_root / split / label).iterdir())[:17]
    return [str(p) for p in files[:50]]


def card_recipe(card, path):
    """The model card's preprocessing, followed literally with TensorFlow ops."""
    import tensorflow as tf

    spec = card["input"]
    assert "tf.io.decode_image" in spec["preprocessing"]
    assert "antialias=True" in spec["preprocessing"]
    image = tf.io.decode_image(
        tf.io.read_file(path), channels=spec["channels"], expand_animations=False
    )
    image = tf.image.resize(image, [spec["size"]] * 2, method="bilinear", antialias=True)
    return tf.cast(tf.round(tf.clip_by_value(image, 0, 255)), tf.uint8).numpy().astype("float32")


def sensitive_model(card, files):
    """A model whose probability swings with small pixel changes, centred on these files.

    The final stage's quick model barely tells the test images apart (32 px, 2 epochs), so
    agreement on it alone would prove little: this one maps its pooled feature through a
    steep sigmoid whose midpoint is the files' median, so half of them sit on each side.
    """
    import keras

    size, channels = card["input"]["size"], card["input"]["channels"]
    inputs = keras.Input((size, size, channels))
    scaled = keras.layers.Rescaling(1.0 / 255.0)(inputs)
    conv = keras.layers.Conv2D(2, 5, kernel_initializer=keras.initializers.GlorotUniform(7))
    pooled = keras.layers.GlobalAveragePooling2D()(conv(scaled))
    feature = keras.layers.Dense(1, kernel_initializer="ones", use_bias=False)(pooled)
    features = keras.Model(inputs, feature).predict(
        np.stack([card_recipe(card, f) for f in files]), verbose=0
    )[:, 0]
    spread = float(np.std(features)) or 1.0
    steep = keras.layers.Dense(
        1,
        activation="sigmoid",
        kernel_initializer=keras.initializers.Constant(4.0 / spread),
        bias_initializer=keras.initializers.Constant(-4.0 * float(np.median(features)) / spread),
    )
    return keras.Model(inputs, steep(feature))


def test_predict_the_card_recipe_the_bytes_signature_and_an_ensemble_agree(
    final_outcome, mini_root, tmp_path
):
    import keras

    from results.final.ensemble import build_ensemble
    from results.serving.export import export_model, load_exported, read_card
    from results.serving.predict import predict_files

    files = fifty_images(mini_root)
    assert len(files) == 50
    final_dir = final_outcome.model_dir
    card = read_card(final_dir)
    assert card["input"]["aspect"] == "squash"
    final_model, _ = load_exported(final_dir)
    steep = sensitive_model(card, files)
    exported = {"final": final_dir}
    for name, model in (("steep", steep), ("ensemble", build_ensemble([final_model, steep]))):
        exported[name] = tmp_path / name
        kept = {k: v for k, v in card.items() if k not in ("card_version", "serving", "files")}
        export_model(model, exported[name], kept)

    proc = subprocess.run(
        [sys.executable, "-c", SERVE_BYTES, json.dumps(files), *map(str, exported.values())],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
        env={"TF_CPP_MIN_LOG_LEVEL": "2", "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    served = json.loads(proc.stdout.strip().splitlines()[-1])

    pixels = np.stack([card_recipe(card, f) for f in files])
    for name, folder in exported.items():
        predicted = np.array([r["prob_PNEUMONIA"] for r in predict_files(folder, files)], float)
        plain = keras.models.load_model(folder / "model.keras", safe_mode=True, compile=False)
        paths = {
            "card recipe + model.keras": plain.predict(pixels, verbose=0)[:, 0],
            "serve_bytes in a fresh process": np.array(served[str(folder)]),
        }
        threshold = float(np.median(predicted)) if name != "final" else card["threshold"]["value"]
        for path, probs in paths.items():
            gap = np.abs(probs - predicted).max()
            assert gap <= 1e-3, f"{name}: {path} differs from predict by {gap:.2e}"
            flips = int(((probs >= threshold) != (predicted >= threshold)).sum())
            assert flips == 0, f"{name}: {path} changes the class of {flips} images"
        if name == "steep":
            assert np.ptp(predicted) > 0.5  # probabilities across the range, flips possible


def test_the_card_documents_both_signatures_and_hashes_every_file(final_outcome):
    from results.serving.export import read_card, sha256_of, tree_sha256

    card = read_card(final_outcome.model_dir)
    saved = card["files"]["saved_model"]
    assert set(saved["signatures"]) == {"serve", "serve_bytes"}
    assert saved["sha256"] == tree_sha256(final_outcome.model_dir / "saved_model")
    for name, digest in saved["files"].items():
        assert sha256_of(final_outcome.model_dir / "saved_model" / name) == digest
    assert "serve_bytes" in card["serving"]["python"]
    assert (
        '\\"b64\\"' in card["serving"]["curl"]
        and "v1/models/pneumo:predict" in card["serving"]["curl"]
    )


def test_the_in_graph_decoder_is_what_the_cache_holds(final_outcome, mini_root):
    """Training pixels (the decoded-image cache) equal the decode of the same file."""
    from pneumo_core.configuration import from_dict
    from pneumo_core.data import prepare_data
    from pneumo_core.data.decode import decode_image
    from pneumo_core.train.config import TrainConfig

    config = from_dict(TrainConfig, final_outcome.report["config"]["final_model"])
    data = prepare_data(config.data)
    index = data.splits["test"][:5]
    for i in index:
        pixels, _ = decode_image(
            mini_root / data.relpaths[i], config.data.image_size, "grayscale", "squash"
        )
        np.testing.assert_array_equal(np.asarray(data.images[i]), pixels)
