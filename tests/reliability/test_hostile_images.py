"""Hostile image files are normalized or skipped and counted, never a crash (issue 8, case 8)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageFile

from pneumo_core.data import DataConfig, prepare_data
from results.board.leaderboard import read_csv_rows
from search.runner import run_experiment
from tests.conftest import make_dataset
from tests.search.conftest import experiment_dict

FOLDER = "train/NORMAL"


def _gradient(mode: str) -> Image.Image:
    return Image.fromarray(np.tile(np.arange(40, dtype=np.uint8) * 6, (30, 1))).convert(mode)


def _png_bytes() -> bytes:
    buffer = io.BytesIO()
    _gradient("L").save(buffer, format="PNG")
    return buffer.getvalue()


#: file name -> (how it is written, expected outcome: "kept" or a fragment of the skip reason)
HOSTILE = {
    "IM-0901-0001.png": (lambda p: Image.new("L", (1500, 1500)).save(p), "decompression-bomb"),
    "IM-0902-0001.jpeg": (lambda p: p.write_bytes(_jpeg_bytes()[:400]), "corrupt image"),
    "IM-0903-0001.jpeg": (lambda p: p.write_bytes(b""), "empty file"),
    "IM-0904-0001.jpeg": (lambda p: p.write_bytes(_png_bytes()), "kept"),  # a PNG named .jpeg
    "IM-0905-0001.tiff": (lambda p: _gradient("CMYK").save(p, format="TIFF"), "kept"),
    "IM-0906-0001.png": (
        lambda p: Image.fromarray((np.arange(1200).reshape(30, 40) * 50).astype(np.uint16)).save(
            p, format="PNG"
        ),
        "kept",
    ),
    "IM-0907-0001.png": (lambda p: _gradient("RGBA").save(p, format="PNG"), "kept"),
    "IM-0908-0001.png": (lambda p: _gradient("RGB").convert("P").save(p, format="PNG"), "kept"),
}


def _jpeg_bytes() -> bytes:
    buffer = io.BytesIO()
    _gradient("L").resize((400, 300)).save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


@pytest.fixture
def hostile_root(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10**6)  # the bomb stays small on disk
    root = make_dataset(tmp_path / "data")
    for name, (write, _) in HOSTILE.items():
        write(root / FOLDER / name)
    return root


def test_each_hostile_file_is_normalized_or_skipped_and_counted(hostile_root):
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    data = prepare_data(DataConfig(root=str(hostile_root), image_size=24, max_bad_fraction=0.1))
    skipped = {s["path"]: s["reason"] for s in data.summary["problems"]["skipped_files"]}
    expected_skips = {f"{FOLDER}/{n}": o for n, (_, o) in HOSTILE.items() if o != "kept"}
    assert set(skipped) == set(expected_skips)
    for path, fragment in expected_skips.items():
        assert fragment in skipped[path], (path, skipped[path])
    assert data.summary["problems"]["skipped_count"] == 3
    for name, (_, outcome) in HOSTILE.items():
        if outcome == "kept":
            image = data.images[data.relpaths.index(f"{FOLDER}/{name}")]
            assert image.shape == (24, 24, 1) and image.dtype == np.uint8
            assert 0 < image.max() <= 255 and image.min() < image.max(), name
    modes = data.summary["source_images"]["modes"]
    assert modes["CMYK"] == 1 and modes["RGBA"] == 1 and modes["P"] == 1
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False  # never switched on globally


@pytest.mark.slow
def test_a_search_over_hostile_files_completes(hostile_root, tmp_path):
    from pneumo_core.configuration import from_dict
    from search.config import ExperimentConfig

    out = tmp_path / "runs" / "hostile"
    data = experiment_dict(hostile_root, out, num_samples=1, max_concurrent_trials=1)
    data["space"] = {"model.name": "cnn", "model.params.num_blocks": 2, "model.params.filters": 4}
    data["data"]["max_bad_fraction"] = 0.1
    data["training"]["epochs"] = 1
    summary = run_experiment(from_dict(ExperimentConfig, data))
    rows = read_csv_rows(out / "leaderboard.csv")
    assert [r["status"] for r in rows] == ["completed"], rows
    assert summary.counts == {"completed": 1}
    assert '"skipped_count": 3' in (out / "data_summary.json").read_text()
