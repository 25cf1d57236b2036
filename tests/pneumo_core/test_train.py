"""One short real training run on real chest X-rays, and its guarantees."""

from __future__ import annotations

import json
import subprocess
import sys

import keras
import numpy as np
import pytest

from pneumo_core.data import DataConfig, prepare_data
from pneumo_core.data.pipeline import predict_batches
from pneumo_core.metrics import compute_metrics
from pneumo_core.models import WeightsConfig
from pneumo_core.train.config import ModelConfig, TrainConfig, TrainingConfig
from pneumo_core.train.loop import train_model
from tests.conftest import REPO, WEIGHTS

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def mini64(mini_root, tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache64")
    return prepare_data(DataConfig(root=str(mini_root), image_size=64, cache_dir=str(cache)))


def small_cnn(**training) -> TrainConfig:
    training.setdefault("epochs", 2)
    return TrainConfig(
        model=ModelConfig("cnn", {"num_blocks": 3, "filters": 8, "dense_units": [16]}),
        training=TrainingConfig(batch_size=32, **training),
        seed=1,
    )


def test_short_real_training_run_learns_and_restores_best(mini64):
    config = small_cnn(epochs=3, early_stopping_patience=0)
    result = train_model(config, mini64)
    assert result.status == "completed" and result.epochs_run == 3
    assert [row["epoch"] for row in result.history] == [1, 2, 3]
    for row in result.history:
        assert 0.0 <= row["val_rw_auc"] <= 1.0 and np.isfinite(row["loss"])
    best = max(result.history, key=lambda r: r["val_rw_auc"])
    assert result.best_epoch == best["epoch"]
    assert result.best_metrics["rw_auc"] == best["val_rw_auc"]
    assert result.best_metrics["auc"] > 0.75  # a real signal on real X-rays, not chance
    # The returned model carries the best epoch's weights: rescoring it gives the same.
    x, y = mini64.arrays("val")
    rescored = compute_metrics(y, predict_batches(result.model, x))
    assert rescored["rw_auc"] == pytest.approx(result.best_metrics["rw_auc"], abs=1e-6)


def test_nan_loss_stops_with_a_clear_status(mini64):
    class Poison(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 2:
                self.model.set_weights([w * np.nan for w in self.model.get_weights()])

    result = train_model(small_cnn(epochs=3), mini64, callbacks=[Poison()])
    assert result.status == "nan_loss"
    assert "loss became nan" in result.message
    assert result.epochs_run == 0 and result.best_metrics == {}


def test_an_epoch_past_the_time_limit_is_cut_scored_as_it_stands_and_ends_the_run(mini64):
    timed = []

    class BatchCounter(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            timed.append(batch)

    result = train_model(
        small_cnn(epochs=3), mini64, callbacks=[BatchCounter()], max_epoch_seconds=1e-3
    )
    assert result.status == "epoch_time_limit" and "per-epoch time limit" in result.message
    assert result.epochs_run == 1 and timed == [0]  # stopped after the batch that crossed it
    (row,) = result.history
    assert row["epoch_time_limit_s"] == pytest.approx(1e-3) and 0 <= row["val_rw_auc"] <= 1
    assert result.best_epoch == 1  # the cut epoch was scored
    unlimited = train_model(small_cnn(epochs=1), mini64, max_epoch_seconds=600)
    assert unlimited.status == "completed" and "epoch_time_limit_s" not in unlimited.history[0]


def test_a_robustness_objective_selects_on_the_shifted_validation_split(mini64):
    from pneumo_core.robustness import apply_shift, list_shifts
    from pneumo_core.train.config import ObjectiveConfig

    objective = ObjectiveConfig(robustness="worst", robustness_severity=3, robustness_seed=5)
    config = small_cnn(epochs=2, early_stopping_patience=0)
    result = train_model(TrainConfig(**{**config.__dict__, "objective": objective}), mini64)
    key = "suite_worst_rw_auc"
    assert objective.key == key and result.status == "completed"
    best = max(result.history, key=lambda r: r[f"val_{key}"])
    assert result.best_epoch == best["epoch"]
    assert result.best_metrics[key] <= result.best_metrics["suite_mean_rw_auc"]
    # the value is the worst shift's, rescored from the returned (best) model
    x, y = mini64.arrays("val")
    worst = min(
        compute_metrics(y, predict_batches(result.model, apply_shift(x, name, 3, 5)))["rw_auc"]
        for name in list_shifts()
    )
    assert result.best_metrics[key] == pytest.approx(worst, abs=1e-6)


@pytest.mark.parametrize("imbalance", ["oversample", "none"])
def test_imbalance_options_train(mini64, imbalance):
    result = train_model(small_cnn(epochs=1, imbalance=imbalance), mini64)
    assert result.epochs_run == 1 and result.status == "completed"


def test_transfer_learning_with_fine_tuning(mini_root, tmp_path):
    data = prepare_data(
        DataConfig(root=str(mini_root), image_size=64, cache_dir=str(tmp_path / "c"))
    )
    config = TrainConfig(
        model=ModelConfig("mobilenet", {"alpha": 0.25, "fine_tune_layers": 10, "warmup_epochs": 1}),
        training=TrainingConfig(epochs=2, batch_size=32, early_stopping_patience=0),
        weights=WeightsConfig(dirs=(str(WEIGHTS),)),
        seed=0,
    )
    result = train_model(config, data)
    assert result.epochs_run == 2
    backbone = result.model.get_layer("backbone")
    assert backbone.trainable
    trainable = [layer.name for layer in backbone.layers if layer.trainable_weights]
    assert 0 < len(trainable) <= 10
    assert result.history[1]["lr"] == pytest.approx(1e-4)  # lr x0.1 once fine-tuning starts


def test_cli_train_seed_preset_on_real_data(mini_root, tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run(
        [
            sys.executable, "-m", "search.cli", "train", str(REPO / "configs" / "seed_3conv.yaml"),
            "--data", str(mini_root), "--epochs", "1", "--set", "data.image_size=64",
            "--set", f"data.cache_dir={tmp_path / 'cache'}", "--out", str(out),
        ],
        capture_output=True, text=True, cwd=REPO, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    for name in ("rw_auc", "auc", "sensitivity", "specificity"):
        assert f"  {name}" in proc.stdout
    assert (out / "train_result.json").is_file() and (out / "model.keras").is_file()
    assert "oneDNN" not in proc.stderr and "Traceback" not in proc.stderr


def test_cli_errors_are_one_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("training:\n  epochz: 3\n")
    proc = subprocess.run(
        [sys.executable, "-m", "search.cli", "train", str(bad), "--data", str(tmp_path)],
        capture_output=True, text=True, cwd=REPO, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"pneumo-search: error: {bad}: training.epochz: unknown key; valid keys here: "
        "batch_size, early_stopping_patience, ema, epochs, imbalance, label_smoothing, "
        "learning_rate, lr_schedule, mixup, momentum, optimizer, threads, weight_decay"
    ]
    proc = subprocess.run(
        [sys.executable, "-m", "search.cli", "train", str(REPO / "configs" / "seed_3conv.yaml"),
         "--data", str(tmp_path / "missing")],
        capture_output=True, text=True, cwd=REPO, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2
    assert (
        proc.stderr.strip()
        == f"pneumo-search: error: data folder not found: {tmp_path / 'missing'}"
    )


def test_resume_from_an_epoch_checkpoint_trains_only_the_rest(mini64, tmp_path):
    from pneumo_core.train.loop import ResumeState

    saved = []

    def checkpoint(state):
        folder = tmp_path / f"epoch{state.epoch}"
        state.save(folder)
        saved.append((state.epoch, state.finished, folder))

    config = small_cnn(epochs=3, early_stopping_patience=0)
    full = train_model(config, mini64, on_epoch=checkpoint)
    assert [(e, f) for e, f, _ in saved] == [(1, False), (2, False), (3, True)]
    resume = ResumeState.load(saved[0][2])
    assert resume.epochs_done == 1 and resume.best_weights_path is not None
    resumed = train_model(config, mini64, resume=resume)
    assert [row["epoch"] for row in resumed.history] == [1, 2, 3]
    same = json.dumps(resumed.history[0], sort_keys=True) == json.dumps(
        full.history[0], sort_keys=True
    )
    assert same  # epoch 1 came from the checkpoint (NaN-aware comparison)
    assert resumed.epochs_run == 3 and resumed.best_epoch in (1, 2, 3)
    # A trial killed after its last epoch's checkpoint, before it returned: nothing left to
    # train, and the best epoch's weights come back from the checkpoint.
    done = ResumeState.load(saved[-1][2])
    finished = train_model(config, mini64, resume=done)
    assert finished.epochs_run == 3 and finished.best_epoch == full.best_epoch
    images, _ = mini64.arrays("val")
    np.testing.assert_allclose(
        finished.model.predict_on_batch(images[:16].astype("float32")),
        full.model.predict_on_batch(images[:16].astype("float32")),
        atol=1e-6,
    )


def test_mixup_blends_images_and_labels_within_a_batch(mini64):
    from pneumo_core.data import AugmentConfig
    from pneumo_core.data.pipeline import training_dataset

    index = np.sort(np.random.default_rng(0).choice(mini64.splits["train"], 64, replace=False))
    dataset, _ = training_dataset(
        mini64.images, mini64.labels, index, batch_size=32, seed=0,
        augment=AugmentConfig(), oversample=False, num_classes=2, mixup=0.4,
    )  # fmt: skip
    x, y = next(iter(dataset))
    x, y = np.asarray(x), np.asarray(y)
    assert x.dtype == np.float32 and x.min() >= 0.0 and x.max() <= 255.0
    assert np.any((y > 0.01) & (y < 0.99))  # soft labels: blends of both classes
    originals = np.asarray(mini64.images[index], dtype=np.float32)
    assert not any(np.array_equal(x[0], o) for o in originals)


def test_label_smoothing_and_mixup_train_and_refuse_more_than_two_classes(mini64, tmp_path):
    from pneumo_errors import ConfigError
    from tests.conftest import make_dataset

    result = train_model(small_cnn(epochs=1, label_smoothing=0.1, mixup=0.2), mini64)
    assert result.status == "completed" and 0.0 <= result.best_metrics["auc"] <= 1.0
    root = make_dataset(tmp_path / "d3", classes=("BACTERIA", "NORMAL", "VIRUS"))
    three = prepare_data(DataConfig(root=str(root), image_size=32, cache_dir=str(tmp_path / "c")))
    with pytest.raises(ConfigError, match="training.mixup"):
        train_model(small_cnn(epochs=1, mixup=0.2), three)


def test_weight_averaging_scores_and_keeps_the_averaged_weights(mini64):
    config = small_cnn(epochs=2, early_stopping_patience=0, ema=0.9)
    result = train_model(config, mini64)
    assert result.status == "completed" and result.epochs_run == 2
    x, y = mini64.arrays("val")
    # what was scored on validation is the model handed back: the averaged weights
    rescored = compute_metrics(y, predict_batches(result.model, x))
    assert rescored["rw_auc"] == pytest.approx(result.best_metrics["rw_auc"], abs=1e-6)
    plain = train_model(small_cnn(epochs=2, early_stopping_patience=0), mini64)
    assert plain.best_metrics["rw_auc"] != pytest.approx(result.best_metrics["rw_auc"], abs=1e-9)
