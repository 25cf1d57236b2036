"""Hostile DICOM files are skipped with a one-line reason, never a crash (issue 38).

Truncated pixel data, a wrong ``BitsAllocated``, no ``PixelData``, and a deflate bomb in the
deflated transfer syntax (a 600 MiB data set in under a MiB) sit beside a valid DICOM in a
dataset and in ``predict``'s inputs: the valid one is used, each hostile one is skipped or
gets an error row naming what is wrong, and nothing identifying is quoted.
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from pneumo_core.data import DataConfig, prepare_data
from pneumo_core.data.dicom import MAX_INFLATED_BYTES, _meta_end
from tests.conftest import make_dataset
from tests.dicom_files import PHI_VALUES, make_dicom

FOLDER = "train/NORMAL"
PIXELS = np.tile(np.arange(40, dtype=np.uint8) * 6, (30, 1))


def truncated(path):
    make_dicom(path, PIXELS)
    path.write_bytes(path.read_bytes()[:-300])  # the pixel data ends early


def wrong_bits(path):
    from pydicom import dcmread

    make_dicom(path, PIXELS)
    ds = dcmread(path)
    ds.BitsAllocated = 16  # the data holds 8-bit values: half the bytes it needs
    ds.save_as(path)


def no_pixels(path):
    from pydicom import dcmread

    make_dicom(path, PIXELS)
    ds = dcmread(path)
    del ds.PixelData
    ds.save_as(path)


def deflate_bomb(path):
    make_dicom(path, PIXELS, syntax="deflated")
    data = path.read_bytes()
    header = data[: _meta_end(data)]
    packer = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    chunk = bytes(2**20)
    stream = [packer.compress(chunk) for _ in range(MAX_INFLATED_BYTES // 2**20 + 88)]
    path.write_bytes(header + b"".join(stream) + packer.flush())
    assert path.stat().st_size < 2**20


#: file name -> (how it is written, expected outcome: "kept" or a fragment of the skip reason)
HOSTILE = {
    "IM-0911-0001.dcm": (lambda p: make_dicom(p, PIXELS), "kept"),
    "IM-0912-0001.dcm": (truncated, "DICOM:"),
    "IM-0913-0001.dcm": (wrong_bits, "DICOM: cannot decode the pixel data"),
    "IM-0914-0001.dcm": (no_pixels, "DICOM: no pixel data"),
    "IM-0915-0001.dcm": (deflate_bomb, "DICOM: deflated data set inflates past 512 MiB"),
}


@pytest.fixture
def hostile_root(tmp_path):
    root = make_dataset(tmp_path / "data")
    for name, (write, _) in HOSTILE.items():
        write(root / FOLDER / name)
    return root


def test_each_hostile_dicom_is_skipped_with_its_reason(hostile_root):
    data = prepare_data(DataConfig(root=str(hostile_root), image_size=24, max_bad_fraction=0.2))
    skipped = {s["path"]: s["reason"] for s in data.summary["problems"]["skipped_files"]}
    expected = {f"{FOLDER}/{n}": o for n, (_, o) in HOSTILE.items() if o != "kept"}
    assert set(skipped) == set(expected)
    for path, fragment in expected.items():
        assert fragment in skipped[path], (path, skipped[path])
        assert "\n" not in skipped[path] and "Traceback" not in skipped[path]
        assert not any(value in skipped[path] for value in PHI_VALUES.values())
    kept = data.images[data.relpaths.index(f"{FOLDER}/IM-0911-0001.dcm")]
    assert kept.shape == (24, 24, 1) and kept.min() < kept.max()


@pytest.mark.slow
def test_predict_gives_hostile_dicoms_error_rows_and_goes_on(hostile_root, tmp_path):
    from results.serving.predict import predict_files
    from tests.tiny_export import grey_export

    model = grey_export(tmp_path / "model")
    rows = predict_files(model, [hostile_root / FOLDER / name for name in HOSTILE])
    by_name = {r["path"].rsplit("/", 1)[-1]: r for r in rows}
    for name, (_, outcome) in HOSTILE.items():
        row = by_name[name]
        if outcome == "kept":
            assert row["status"] == "ok" and 0.0 <= row["prob_PNEUMONIA"] <= 1.0
        else:
            assert row["status"] == "error" and outcome in row["error"], row
