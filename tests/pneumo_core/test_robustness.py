"""The robustness suite: determinism, each shift's direction, and the scoring table."""

from __future__ import annotations

import numpy as np
import pytest

from pneumo_core import robustness
from pneumo_core.robustness import (
    SEVERITIES,
    apply_shift,
    cached_shift,
    list_shifts,
    robustness_table,
)
from pneumo_errors import ConfigError


def _images(channels: int = 1, count: int = 6, size: int = 48) -> np.ndarray:
    """Chest-like test images: a bright body with two darker lung fields and some texture."""
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[:size, :size] / size
    body = 170 - 60 * ((np.abs(xx - 0.3) < 0.12) | (np.abs(xx - 0.7) < 0.12)) * (yy > 0.2)
    images = body[None] + rng.normal(0, 10, (count, size, size))
    images = np.repeat(images[..., None], channels, axis=-1)
    return np.clip(images, 0, 255).astype(np.uint8)


def _gradient(images: np.ndarray) -> float:
    values = images.astype(np.float32)
    return float(np.abs(np.diff(values, axis=1)).mean() + np.abs(np.diff(values, axis=2)).mean())


@pytest.mark.parametrize("name", list_shifts())
@pytest.mark.parametrize("channels", [1, 3])
def test_each_shift_is_deterministic_and_grows_with_severity(name, channels):
    images = _images(channels)
    moved = []
    for severity in SEVERITIES:
        once = apply_shift(images, name, severity, seed=3)
        again = apply_shift(images, name, severity, seed=3)
        assert once.dtype == np.uint8 and once.shape == images.shape
        np.testing.assert_array_equal(once, again)
        moved.append(np.abs(once.astype(float) - images).mean())
    assert 0 < moved[0] < moved[1] < moved[2], moved
    if channels == 3:  # a grey image stays grey
        shifted = apply_shift(images, name, 2, seed=3)
        np.testing.assert_array_equal(shifted[..., 0], shifted[..., 2])


@pytest.mark.parametrize("name", ["noise", "rotation", "translation"])
def test_random_shifts_follow_their_seed(name):
    images = _images()
    assert not np.array_equal(apply_shift(images, name, 2, 0), apply_shift(images, name, 2, 1))


def test_each_shift_moves_the_image_the_way_it_says():
    images = _images()
    mean, std, grad = images.mean(), images.astype(float).std(), _gradient(images)
    assert apply_shift(images, "brightness", 2, 0).mean() > mean + 30
    assert apply_shift(images, "gamma", 2, 0).mean() < mean - 20  # gamma > 1 darkens
    assert apply_shift(images, "contrast", 2, 0).astype(float).std() < 0.6 * std
    assert _gradient(apply_shift(images, "blur", 2, 0)) < 0.6 * grad
    assert _gradient(apply_shift(images, "low_resolution", 2, 0)) < 0.8 * grad
    assert _gradient(apply_shift(images, "noise", 3, 0)) > 1.5 * grad
    rotated = apply_shift(images, "rotation", 3, 0)
    assert (rotated[:, :2, :2] == 0).mean() > 0.5  # the corners rotate in as black
    cropped = apply_shift(images, "border_crop", 3, 0)  # the lung fields move outwards
    column = images[:, 24:, :, 0].mean(axis=(0, 1))
    assert np.argmin(cropped[:, 24:, :24, 0].mean(axis=(0, 1))) < np.argmin(column[:24])


def test_unknown_shift_or_severity_is_named():
    with pytest.raises(ConfigError, match="valid: contrast, brightness"):
        apply_shift(_images(), "fog", 1, 0)
    with pytest.raises(ConfigError, match="severity 4"):
        apply_shift(_images(), "blur", 4, 0)


def test_table_scores_each_shift_against_the_clean_split():
    # a "model" that reads the mean grey level: brightening makes everything positive
    images = np.concatenate([_images(count=20) - 40, _images(count=20)]).astype(np.uint8)
    labels = np.array([0] * 20 + [1] * 20)

    def predict(batch: np.ndarray) -> np.ndarray:
        return 1 / (1 + np.exp(-(batch.mean(axis=(1, 2, 3)) - 135) / 5))

    table = robustness_table(
        predict, images, labels, threshold=0.5, seed=0, shifts=["brightness", "blur"]
    )
    assert table["clean"]["auc"] == 1.0 and table["clean"]["specificity"] == 1.0
    assert [(r["shift"], r["severity"]) for r in table["rows"]] == [
        (s, v) for s in ("brightness", "blur") for v in SEVERITIES
    ]
    bright = {r["severity"]: r for r in table["rows"] if r["shift"] == "brightness"}
    assert bright[3]["specificity"] == 0.0 and bright[3]["delta_specificity"] == -1.0
    assert bright[3]["auc"] == 1.0  # the ranking survives; the threshold does not
    assert table["summary"]["worst"].startswith("brightness")
    assert table["summary"]["worst_rw_auc"] <= table["summary"]["mean_rw_auc"] <= 1.0


def test_shifted_images_are_cached_per_node_and_reused(tmp_path, monkeypatch):
    """The first call shifts and stores; later calls map the stored bytes, unshifted."""
    images = _images(count=4)
    first = cached_shift(images, "noise", 2, seed=3, cache_dir=tmp_path)
    np.testing.assert_array_equal(first, apply_shift(images, "noise", 2, 3))
    [entry] = tmp_path.glob("*.npy")  # one entry, no partial file left behind

    def no_shift(*args, **kwargs):
        raise AssertionError("shifted again instead of read from the cache")

    monkeypatch.setattr(robustness, "apply_shift", no_shift)
    again = cached_shift(images, "noise", 2, seed=3, cache_dir=tmp_path)
    assert isinstance(again, np.memmap)
    np.testing.assert_array_equal(again, first)
    with pytest.raises(AssertionError, match="shifted again"):  # another seed: another entry
        cached_shift(images, "noise", 2, seed=4, cache_dir=tmp_path)
    with pytest.raises(AssertionError, match="shifted again"):  # other images: another entry
        cached_shift(images[:3], "noise", 2, seed=3, cache_dir=tmp_path)
    monkeypatch.undo()
    entry.write_bytes(b"not an array")  # a damaged entry is rebuilt
    rebuilt = cached_shift(images, "noise", 2, seed=3, cache_dir=tmp_path)
    np.testing.assert_array_equal(rebuilt, first)


def test_a_memoized_shift_shifts_each_key_once_and_equals_apply_shift():
    from pneumo_core.robustness import apply_shift, memoized_shift

    images = np.random.default_rng(0).integers(0, 255, (4, 16, 16, 1), dtype=np.uint8)
    shift = memoized_shift()
    first = shift(images, "blur", 2, 7)
    assert shift(images, "blur", 2, 7) is first  # shifted once, then remembered
    np.testing.assert_array_equal(first, apply_shift(images, "blur", 2, 7))
    assert shift(images, "blur", 3, 7) is not first
