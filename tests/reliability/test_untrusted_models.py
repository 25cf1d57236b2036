"""Untrusted model files are refused before any of their code runs (issue 8, case 7).

Each hostile model folder carries a model card whose sha256 matches its model file (the
attacker wrote both), so the hash check passes and Keras safe mode is what must refuse it.
"""

from __future__ import annotations

import ast
import json
import zipfile
from importlib.metadata import version
from pathlib import Path

import pytest

from pneumo_core.runtime import import_tensorflow
from pneumo_errors import PneumoError
from results.serving.export import CARD_FILE, MODEL_FILE, load_exported, sha256_of
from results.serving.predict import predict_files
from tests.conftest import REPO, write_image

tf = import_tensorflow()
import keras  # noqa: E402


def export_folder(folder: Path, model_file: Path) -> Path:
    """A model folder as `final` writes it, card hash matching the (hostile) model file."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / MODEL_FILE
    target.write_bytes(model_file.read_bytes())
    card = {
        "class_names": ["NORMAL", "PNEUMONIA"],
        "input": {"image_size": 8, "color_mode": "grayscale", "resize": "pad"},
        "threshold": 0.5,
        "files": {MODEL_FILE: {"sha256": sha256_of(target)}},
    }
    (folder / CARD_FILE).write_text(json.dumps(card))
    return folder


def lambda_model(path: Path, marker: Path) -> Path:
    """A .keras file whose Lambda layer writes ``marker`` when it runs."""
    code = f"lambda x: (open({str(marker)!r}, 'w').write('ran'), x)[1]"
    inputs = keras.Input((8, 8, 1))
    outputs = keras.layers.Dense(1, activation="sigmoid")(
        keras.layers.Flatten()(keras.layers.Lambda(eval(code))(inputs))
    )
    keras.Model(inputs, outputs).save(path)
    marker.unlink(missing_ok=True)  # building the model ran the lambda once
    return path


def test_keras_is_a_release_with_the_known_safe_mode_bypasses_fixed():
    major, minor, patch = (int(p) for p in version("keras").split(".")[:3])
    assert (major, minor, patch) >= (3, 13, 2)
    pins = (REPO / "pyproject.toml").read_text()
    assert f'"keras=={version("keras")}"' in pins


def test_no_code_path_turns_safe_mode_off():
    offenders = []
    for path in REPO.rglob("*.py"):
        if any(part in {".venv", "venv", "runs", "build"} for part in path.parts):
            continue
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            safe = (
                isinstance(getattr(node, "value", None), ast.Constant) and node.value.value is True
            )
            if isinstance(node, ast.keyword) and node.arg == "safe_mode" and not safe:
                offenders.append(f"{path}:{node.value.lineno}")
            if isinstance(node, ast.Attribute) and node.attr == "enable_unsafe_deserialization":
                offenders.append(f"{path}:{node.lineno}")
    assert offenders == []


def test_a_lambda_layer_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "lambda-ran"
    folder = export_folder(tmp_path / "model", lambda_model(tmp_path / "l.keras", marker))
    with pytest.raises(PneumoError, match=r"model\.keras: cannot load in safe mode: .*[Ll]ambda"):
        load_exported(folder)
    assert not marker.exists()
    # predict goes through the same loader: refused before any image is read
    image = write_image(tmp_path / "x.png", 0, 0)
    with pytest.raises(PneumoError, match="safe mode"):
        predict_files(folder, [image])
    assert not marker.exists()


def test_a_config_that_switches_safe_mode_off_is_refused_and_changes_nothing(tmp_path):
    marker = tmp_path / "lambda-ran"
    source = lambda_model(tmp_path / "l.keras", marker)
    # The known bypass: a "layer" whose class is keras.config.enable_unsafe_deserialization,
    # placed before the Lambda so it would flip safe mode off while the file loads.
    with zipfile.ZipFile(source) as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    config = json.loads(files["config.json"])
    switch = {
        "module": "keras.config",
        "class_name": "enable_unsafe_deserialization",
        "config": {},
        "registered_name": "enable_unsafe_deserialization",
    }
    config["config"]["layers"].insert(0, switch)
    files["config.json"] = json.dumps(config).encode()
    hostile = tmp_path / "switch.keras"
    with zipfile.ZipFile(hostile, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    folder = export_folder(tmp_path / "model", hostile)
    with pytest.raises(PneumoError, match="cannot load in safe mode"):
        load_exported(folder)
    assert not marker.exists()
    from keras.src.saving import serialization_lib

    assert serialization_lib.in_safe_mode() is not False  # global safe mode untouched
    with pytest.raises(PneumoError, match="[Ll]ambda"):  # and still refuses a Lambda
        load_exported(export_folder(tmp_path / "again", source))


def test_a_tfsm_layer_is_refused(tmp_path):
    module = tf.Module()
    module.serve = tf.function(
        lambda x: tf.reduce_mean(x, axis=[1, 2]),
        input_signature=[tf.TensorSpec((None, 8, 8, 1), tf.float32)],
    )
    tf.saved_model.save(module, str(tmp_path / "saved"), signatures={"serve": module.serve})
    inputs = keras.Input((8, 8, 1))
    outputs = keras.layers.TFSMLayer(str(tmp_path / "saved"), call_endpoint="serve")(inputs)
    keras.Model(inputs, outputs).save(tmp_path / "tfsm.keras")
    folder = export_folder(tmp_path / "model", tmp_path / "tfsm.keras")
    with pytest.raises(PneumoError, match=r"cannot load in safe mode: .*TFSMLayer"):
        load_exported(folder)
