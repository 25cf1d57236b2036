from __future__ import annotations

import numpy as np
import pytest

from pneumo_core.models import WeightsConfig, create_model, get_model_spec, list_models
from pneumo_core.models.transfer import BACKBONES
from pneumo_errors import ConfigError, WeightsNotFoundError
from tests.conftest import WEIGHTS

MOBILENET_FILE = "mobilenet_2_5_224_tf_no_top.h5"


def tiny_params(name: str) -> dict:
    if name == "cnn":
        return {"num_blocks": 2, "filters": 4, "dense_units": [8]}
    return {"weights": "none"}


def input_size(name: str) -> int:
    return max(32, BACKBONES[name].min_size) if name in BACKBONES else 32


CASES = [(name, 2) for name in list_models()] + [("cnn", 3), ("mobilenet", 3)]


@pytest.mark.parametrize(("name", "num_classes"), CASES)
def test_every_model_trains_one_step(name, num_classes):
    import keras

    size = input_size(name)
    model = create_model(name, tiny_params(name), (size, size, 1), num_classes)
    loss = "binary_crossentropy" if num_classes == 2 else "sparse_categorical_crossentropy"
    model.compile(optimizer=keras.optimizers.SGD(0.001), loss=loss)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (4, size, size, 1)).astype("float32")
    y = np.array([0, 1, 0, 1], dtype="float32" if num_classes == 2 else "int64")
    before = [w.copy() for w in model.get_weights()]
    model.train_on_batch(x, y)
    out = model.predict_on_batch(x)
    assert out.shape == ((4, 1) if num_classes == 2 else (4, num_classes))
    assert np.all(np.isfinite(out))
    changed = [not np.array_equal(a, b) for a, b in zip(before, model.get_weights())]
    assert any(changed), "no weight moved after a training step"


def test_unknown_model_lists_valid_names():
    with pytest.raises(ConfigError, match="unknown model 'resnet9000'; valid: cnn, densenet121"):
        get_model_spec("resnet9000")


def test_unknown_param_names_the_key():
    with pytest.raises(ConfigError, match=r"model.params.alhpa: unknown key"):
        create_model("mobilenet", {"alhpa": 0.5}, (64, 64, 1), 2)


def test_seed_3conv_preset_structure():
    import keras

    model = create_model("cnn", {"preset": "seed_3conv"}, (128, 128, 1), 2)
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    pools = [layer for layer in model.layers if isinstance(layer, keras.layers.MaxPooling2D)]
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    drops = [layer for layer in model.layers if isinstance(layer, keras.layers.Dropout)]
    assert [c.filters for c in convs] == [32, 64, 64]
    assert len(pools) == 2
    assert [d.units for d in dense] == [128, 1]
    assert [d.rate for d in drops] == [0.5]


def test_seed_5conv_preset_and_explicit_override():
    import keras

    model = create_model("cnn", {"preset": "seed_5conv", "dropout": 0.3}, (128, 128, 1), 2)
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    assert [c.filters for c in convs] == [32, 64, 64, 128, 256]
    assert [d.units for d in dense] == [128, 64, 1]
    assert {layer.rate for layer in model.layers if isinstance(layer, keras.layers.Dropout)} == {
        0.3
    }


def test_too_small_input_is_a_config_error():
    with pytest.raises(ConfigError, match="too small"):
        create_model("cnn", {"preset": "seed_5conv"}, (32, 32, 1), 2)
    with pytest.raises(ConfigError, match="below xception's minimum of 71"):
        create_model("xception", {"weights": "none"}, (64, 64, 1), 2)


def test_mobilenet_loads_real_imagenet_weights_from_configured_folder():
    import h5py

    weights = WeightsConfig(dirs=(str(WEIGHTS),))
    model = create_model("mobilenet", {"alpha": 0.25}, (128, 128, 1), 2, weights=weights)
    backbone = model.get_layer("backbone")
    assert backbone.count_params() == 218_544
    assert not backbone.trainable
    with h5py.File(WEIGHTS / MOBILENET_FILE, "r") as f:
        expected = np.asarray(f["conv1"]["conv1"]["kernel:0"])
    np.testing.assert_array_equal(backbone.get_layer("conv1").get_weights()[0], expected)


def test_missing_weights_offline_name_file_and_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    weights = WeightsConfig(dirs=(str(tmp_path / "mine"),))
    with pytest.raises(WeightsNotFoundError) as info:
        create_model("mobilenet", {"alpha": 0.5}, (128, 128, 1), 2, weights=weights)
    message = str(info.value)
    assert "mobilenet_5_0_128_tf_no_top.h5" in message
    assert str(tmp_path / "mine") in message and str(tmp_path / "keras" / "models") in message


def test_weights_found_in_keras_cache(tmp_path, monkeypatch):
    cache = tmp_path / "keras" / "models"
    cache.mkdir(parents=True)
    (cache / MOBILENET_FILE).symlink_to(WEIGHTS / MOBILENET_FILE)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    model = create_model("mobilenet", {"alpha": 0.25}, (224, 224, 3), 2)
    assert model.get_layer("backbone").count_params() == 218_544


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_weight_file_names_follow_keras(name):
    spec = get_model_spec(name)
    params = spec.params_class()
    files = spec.weight_files(params, 224)
    assert files[0].endswith(".h5") and ("no_top" in files[0] or "notop" in files[0])


@pytest.mark.parametrize("normalization", ["unit", "tf", "per_image"])
def test_cnn_normalization_survives_a_safe_mode_round_trip(tmp_path, normalization):
    import keras

    params = {"num_blocks": 1, "filters": 4, "dense_units": [4], "normalization": normalization}
    model = create_model("cnn", params, (16, 16, 1), 2)
    x = np.random.default_rng(1).uniform(0, 255, (3, 16, 16, 1)).astype("float32")
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras", safe_mode=True)
    np.testing.assert_allclose(loaded.predict_on_batch(x), model.predict_on_batch(x), rtol=1e-5)
    normalized = model.get_layer("normalize")(x)
    if normalization == "per_image":
        np.testing.assert_allclose(np.mean(normalized, axis=(1, 2, 3)), 0.0, atol=1e-4)
    else:
        low = 0.0 if normalization == "unit" else -1.0
        assert float(np.min(normalized)) >= low - 1e-6 and float(np.max(normalized)) <= 1.0


@pytest.mark.parametrize("name", ["cnn", "mobilenet"])
def test_equalization_and_border_crop_survive_a_safe_mode_round_trip(tmp_path, name):
    import keras

    params = {**tiny_params(name), "equalize": True, "border_crop": 0.1}
    size = input_size(name)
    model = create_model(name, params, (size, size, 1), 2)
    rng = np.random.default_rng(2)
    x = rng.uniform(100, 120, (3, size, size, 1)).astype("float32")  # a low-contrast image
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras", safe_mode=True)
    np.testing.assert_allclose(loaded.predict_on_batch(x), model.predict_on_batch(x), rtol=1e-5)
    cropped = np.asarray(model.get_layer("border_crop")(x))
    assert cropped.shape == x.shape
    equalized = np.asarray(model.get_layer("equalize")(cropped))
    assert equalized.min() <= 10 and equalized.max() == pytest.approx(255, abs=1e-3)  # stretched
    order = np.argsort(cropped[0].ravel(), kind="stable")  # the grey-level order is kept
    assert np.all(np.diff(equalized[0].ravel()[order]) >= -1e-3)


def test_border_crop_zooms_into_the_centre():
    from pneumo_core.models.layers import BorderCrop

    x = np.zeros((1, 40, 40, 1), dtype="float32")
    x[:, 4:36, 4:36] = 255.0  # a black 4-px frame around a white square
    cropped = np.asarray(BorderCrop(0.1)(x))  # 4 px off each side: the frame is gone
    assert cropped.min() > 250
