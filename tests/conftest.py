"""Shared fixtures: tiny generated image folders, the real chest_xray_mini, a cache dir."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
MINI = SHARED / "data" / "chest_xray_mini"
WEIGHTS = SHARED / "weights"


#: Cheap CNNs that all build at 32 px.
SMALL_SPACE = {
    "model.name": "cnn",
    "model.params.num_blocks": {"choice": [2, 3]},
    "model.params.filters": {"choice": [4, 8]},
    "model.params.head": "global_avg",
    "model.params.dense_units": [8],
    "training.learning_rate": {"float": [1.0e-3, 1.0e-2], "log": True},
}


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Every test session uses its own decoded-image cache, never ~/.cache."""
    cache = tmp_path_factory.getbasetemp() / "image-cache"
    monkeypatch.setenv("PNEUMO_CACHE_DIR", str(cache))


@pytest.fixture(scope="session")
def mini_root() -> Path:
    """The real chest_xray_mini folder (../shared/data/chest_xray_mini)."""
    if not (MINI / "train").is_dir():
        pytest.fail(f"real test data missing: {MINI} (clone with shared/ beside the repo)")
    return MINI


def write_image(path: Path, label: int, seed: int, *, size=(40, 32), mode="L", fmt=None) -> Path:
    """Writes a small synthetic X-ray-like image whose brightness pattern depends on label."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 90, size=(size[1], size[0])).astype(np.uint8)
    if label == 1:
        base[size[1] // 4 : 3 * size[1] // 4, size[0] // 4 : 3 * size[0] // 4] += 120
    elif label == 2:
        base[:, : size[0] // 3] += 150
    image = Image.fromarray(base, mode="L")
    if mode != "L":
        image = image.convert(mode)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format=fmt or ("PNG" if path.suffix == ".png" else "JPEG"))
    return path


def make_dataset(
    root: Path,
    *,
    layout: str = "splits",
    classes: tuple[str, ...] = ("NORMAL", "PNEUMONIA"),
    patients_per_class: int = 12,
    images_per_patient: int = 2,
    splits: tuple[str, ...] = ("train", "val", "test"),
) -> Path:
    """Builds a tiny image-folder dataset with Kermany-style file names.

    Patients are numbered per class and split (so no patient is in two splits); each
    has ``images_per_patient`` images.
    """
    counter = 0
    for s_index, split in enumerate(splits if layout == "splits" else (None,)):
        for label, name in enumerate(classes):
            folder = root / split / name if split else root / name
            for p in range(patients_per_class):
                patient = 1000 * (s_index + 1) + 100 * label + p
                for k in range(images_per_patient):
                    counter += 1
                    if label == 0:
                        file = folder / f"IM-{patient:04d}-{k + 1:04d}.jpeg"
                    else:
                        file = folder / f"person{patient}_bacteria_{counter}.jpeg"
                    write_image(file, label, seed=counter)
    return root


@pytest.fixture
def tiny_splits(tmp_path) -> Path:
    """A tiny ``ROOT/{train,val,test}/{NORMAL,PNEUMONIA}`` dataset."""
    return make_dataset(tmp_path / "data")


@pytest.fixture(scope="session")
def searched_run(mini_root, tmp_path_factory) -> Path:
    """A finished 3-trial search on chest_xray_mini at 32 px (real Ray, Optuna, Keras),
    shared by the final-stage and warm-start tests (which only read it, or copy it)."""
    import ray

    from pneumo_core.configuration import from_dict
    from search.config import ExperimentConfig
    from search.runner import run_experiment
    from tests.search.conftest import experiment_dict

    def search(out: Path) -> None:
        raw = experiment_dict(mini_root, out, num_samples=3)
        raw["space"] = SMALL_SPACE
        raw["training"]["epochs"] = 2
        try:
            run_experiment(from_dict(ExperimentConfig, raw))
        finally:
            ray.shutdown()

    return built_once(tmp_path_factory, "small", search)


def built_once(tmp_path_factory, name: str, build) -> Path:
    """``build(folder)`` run once for every pytest-xdist worker of this test run (under a
    file lock; the others wait, then share the folder), or once per session without xdist.

    Only for folders the tests read or copy, never change.
    """
    from results.board.leaderboard import locked

    run_id = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    base = tmp_path_factory.getbasetemp()
    root = base.parent / f"built-once-{run_id}" if run_id else base / "built-once"
    root.mkdir(parents=True, exist_ok=True)
    folder, done = root / name, root / f"{name}.done"
    with locked(root / name):
        if not done.exists():
            if folder.exists():
                shutil.rmtree(folder)  # a worker's build that failed half way
            build(folder)
            done.touch()
    return folder
