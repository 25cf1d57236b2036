from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest
from PIL import Image

from pneumo_core.data import DataConfig, prepare_data
from pneumo_core.data.config import DEFAULT_PATIENT_REGEX
from pneumo_core.data.external import external_patients, prepare_external
from pneumo_core.data.patients import patient_id
from pneumo_core.data.splitting import carve_splits
from pneumo_errors import ConfigError, DataError
from tests.conftest import make_dataset, write_image


def cfg(root, **kw) -> DataConfig:
    kw.setdefault("image_size", 24)
    return DataConfig(root=str(root), **kw)


def patients_by_split(data):
    return {s: {data.patients[i] for i in idx} for s, idx in data.splits.items()}


# --- patient ids and splitting ---------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("person1430_bacteria_3695.jpeg", "person1430"),
        ("person7_virus_12.jpeg", "person7"),
        ("IM-0117-0001.jpeg", "IM-0117"),
        ("IM-0117-0001-0002.jpeg", "IM-0117"),
        ("NORMAL2-IM-0123-0001.jpeg", "NORMAL2-IM-0123"),
        ("scan_without_id.png", "scan_without_id"),
    ],
)
def test_kermany_patient_ids(name, expected):
    assert patient_id(name, re.compile(DEFAULT_PATIENT_REGEX)) == expected


def test_custom_patient_regex():
    pattern = re.compile(r"^(?P<patient>pt\d+)-")
    assert patient_id("pt17-scan3.png", pattern) == "pt17"
    assert patient_id("other.png", pattern) == "other"


def test_carve_splits_is_grouped_stratified_and_seeded():
    rng = np.random.default_rng(0)
    groups, labels = [], []
    for g in range(300):
        label = int(g % 4 == 0)  # 1 in 4 patients positive
        for _ in range(int(rng.integers(1, 4))):
            groups.append(f"p{g}")
            labels.append(label)
    split = carve_splits(labels, groups, {"val": 0.2, "test": 0.1}, seed=7)
    where = {}
    for g, s in zip(groups, split):
        assert where.setdefault(g, s) == s, "a patient is in two splits"
    labels_arr, split_arr = np.array(labels), np.array(split)
    for name, fraction in (("val", 0.2), ("test", 0.1)):
        for label in (0, 1):
            share = np.mean(split_arr[labels_arr == label] == name)
            assert abs(share - fraction) < 0.04, (name, label, share)
    assert carve_splits(labels, groups, {"val": 0.2, "test": 0.1}, seed=7) == split
    assert carve_splits(labels, groups, {"val": 0.2, "test": 0.1}, seed=8) != split


# --- layouts ---------------------------------------------------------------------------


def test_split_layout_keeps_given_splits_and_carves_nothing(tiny_splits):
    data = prepare_data(cfg(tiny_splits, given_val="keep"))
    assert data.class_names == ("NORMAL", "PNEUMONIA")
    assert {s: len(i) for s, i in data.splits.items()} == {"train": 48, "val": 48, "test": 48}
    assert data.images.shape == (144, 24, 24, 1)
    assert data.summary["splits"]["val"]["origin"] == "given"
    assert data.summary["splits"]["train"]["per_class"]["NORMAL"] == {"images": 24, "patients": 12}
    json.dumps(data.summary)  # serializable


def test_small_given_val_is_merged_and_carved_by_patient(tiny_splits):
    data = prepare_data(cfg(tiny_splits, min_given_val=100, val_fraction=0.25))
    assert "carved from train by patient" in data.summary["splits"]["val"]["origin"]
    assert "given val merged in" in data.summary["splits"]["val"]["origin"]
    by_split = patients_by_split(data)
    assert not by_split["train"] & by_split["val"]
    assert len(data.splits["train"]) + len(data.splits["val"]) == 96
    assert len(data.splits["test"]) == 48


def test_class_layout_carves_val_and_test(tmp_path):
    root = make_dataset(tmp_path / "pool", layout="classes", patients_per_class=20)
    data = prepare_data(cfg(root, val_fraction=0.2, test_fraction=0.2))
    by_split = patients_by_split(data)
    assert not (by_split["train"] & by_split["val"] or by_split["train"] & by_split["test"])
    assert not by_split["val"] & by_split["test"]
    sizes = {s: len(i) for s, i in data.splits.items()}
    assert sum(sizes.values()) == 80
    assert 12 <= sizes["val"] <= 20 and 12 <= sizes["test"] <= 20
    for split in ("val", "test"):
        assert set(data.labels[data.splits[split]].tolist()) == {0, 1}


def test_three_classes(tmp_path):
    root = make_dataset(tmp_path / "d3", classes=("BACTERIA", "NORMAL", "VIRUS"))
    data = prepare_data(cfg(root, given_val="keep"))
    assert data.num_classes == 3
    assert data.summary["positive_class"] is None
    assert set(data.labels[data.splits["test"]].tolist()) == {0, 1, 2}


def test_class_order_can_be_given(tiny_splits):
    data = prepare_data(cfg(tiny_splits, classes=("PNEUMONIA", "NORMAL"), given_val="keep"))
    assert data.class_names == ("PNEUMONIA", "NORMAL")
    first_normal = next(i for i, p in enumerate(data.relpaths) if "/NORMAL/" in p)
    assert data.labels[first_normal] == 1


# --- leakage -----------------------------------------------------------------------------


def test_patient_in_two_given_splits_is_an_error_or_dropped(tiny_splits):
    src = next((tiny_splits / "test" / "PNEUMONIA").iterdir())
    shutil.copy(src, tiny_splits / "train" / "PNEUMONIA" / src.name.replace("bacteria", "virus"))
    with pytest.raises(DataError, match="patient id.*appear in two given splits"):
        prepare_data(cfg(tiny_splits, given_val="keep"))
    data = prepare_data(cfg(tiny_splits, given_val="keep", patient_overlap="drop"))
    by_split = patients_by_split(data)
    assert not by_split["train"] & by_split["test"]
    assert data.summary["leakage"]["images_dropped_for_overlap"] == 1
    dup = data.summary["leakage"]["identical_images_across_splits"]
    assert dup == []  # the copy was dropped from train, so no cross-split duplicate is left


def test_identical_images_across_splits_are_reported(tiny_splits):
    src = next((tiny_splits / "test" / "NORMAL").iterdir())
    shutil.copy(src, tiny_splits / "train" / "NORMAL" / "IM-9999-0001.jpeg")
    data = prepare_data(cfg(tiny_splits, given_val="keep"))
    groups = data.summary["leakage"]["identical_images_across_splits"]
    assert groups == [
        sorted([f"test:test/NORMAL/{src.name}", "train:train/NORMAL/IM-9999-0001.jpeg"])
    ]


def test_real_mini_dataset_is_split_by_patient_without_leakage(mini_root):
    data = prepare_data(DataConfig(root=str(mini_root), image_size=32))
    sizes = {s: len(i) for s, i in data.splits.items()}
    assert sizes == {"train": 900, "val": 200, "test": 300}  # the README's table
    by_split = patients_by_split(data)
    assert not by_split["train"] & by_split["val"] and not by_split["train"] & by_split["test"]
    assert data.summary["source_images"]["modes"] == {"L": 1332, "RGB": 68}
    assert data.images.shape[1:] == (32, 32, 1)


# --- cache -------------------------------------------------------------------------------


def test_cache_is_reused_and_invalidated_by_content(tiny_splits, tmp_path):
    config = cfg(tiny_splits, cache_dir=str(tmp_path / "cache"), given_val="keep")
    first = prepare_data(config)
    second = prepare_data(config)
    assert (first.summary["cache"]["hit"], second.summary["cache"]["hit"]) == (False, True)
    assert isinstance(second.images, np.memmap)
    np.testing.assert_array_equal(first.images, second.images)
    changed = next((tiny_splits / "train" / "NORMAL").iterdir())
    write_image(changed, 1, seed=999)
    third = prepare_data(config)
    assert not third.summary["cache"]["hit"]
    assert third.summary["cache"]["key"] != first.summary["cache"]["key"]
    other_size = prepare_data(cfg(tiny_splits, cache_dir=str(tmp_path / "cache"), image_size=32))
    assert other_size.summary["cache"]["key"] != third.summary["cache"]["key"]


def test_damaged_cache_entry_is_rebuilt(tiny_splits, tmp_path):
    config = cfg(tiny_splits, cache_dir=str(tmp_path / "cache"))
    first = prepare_data(config)
    (tmp_path / "cache" / first.summary["cache"]["key"] / "index.json").write_text("{broken")
    again = prepare_data(config)
    assert not again.summary["cache"]["hit"]
    np.testing.assert_array_equal(first.images, again.images)


# --- decoding ----------------------------------------------------------------------------


def test_grayscale_and_rgb_sources_mix(tmp_path):
    root = make_dataset(tmp_path / "mix")
    write_image(root / "train" / "NORMAL" / "IM-0555-0001.jpeg", 0, seed=1, mode="RGB")
    gray = prepare_data(cfg(root, given_val="keep"))
    assert gray.images.shape[-1] == 1
    assert gray.summary["source_images"]["modes"] == {"L": 144, "RGB": 1}
    rgb = prepare_data(cfg(root, given_val="keep", color_mode="rgb"))
    assert rgb.images.shape[-1] == 3
    i = gray.relpaths.index("train/NORMAL/IM-0555-0001.jpeg")
    assert np.abs(rgb.images[i].astype(int) - gray.images[i].astype(int)).max() <= 2


def test_pad_keeps_aspect_with_black_borders(tmp_path):
    root = make_dataset(tmp_path / "pad")
    write_image(root / "train" / "NORMAL" / "IM-0777-0001.png", 0, seed=3, size=(80, 20))
    data = prepare_data(cfg(root, aspect="pad", image_size=40))
    image = data.images[data.relpaths.index("train/NORMAL/IM-0777-0001.png")][:, :, 0]
    assert image[:14].max() == 0 and image[-14:].max() == 0  # 80x20 -> 40x10, centred
    assert image[15:25].max() > 0


@pytest.mark.parametrize(
    ("mode", "fmt"), [("I;16", "PNG"), ("RGBA", "PNG"), ("CMYK", "TIFF"), ("1", "PNG")]
)
def test_unusual_modes_are_normalized(tmp_path, mode, fmt):
    root = make_dataset(tmp_path / "modes")
    path = root / "train" / "NORMAL" / "IM-0888-0001.png"
    if mode == "I;16":
        source = Image.fromarray((np.arange(600).reshape(20, 30) * 100).astype(np.uint16))
    else:
        source = Image.fromarray(np.tile(np.arange(30, dtype=np.uint8) * 8, (20, 1))).convert(mode)
    assert source.mode == mode
    source.save(path, format=fmt)
    data = prepare_data(cfg(root))
    image = data.images[data.relpaths.index("train/NORMAL/IM-0888-0001.png")]
    assert image.shape == (24, 24, 1) and image.max() > 0
    assert data.summary["problems"]["skipped_count"] == 0


def test_palette_image(tmp_path):
    root = make_dataset(tmp_path / "palette")
    write_image(root / "train" / "NORMAL" / "IM-0889-0001.png", 0, seed=5, mode="P")
    data = prepare_data(cfg(root))
    assert data.summary["source_images"]["modes"]["P"] == 1


# --- bad input ---------------------------------------------------------------------------


def test_missing_root_names_the_path(tmp_path):
    with pytest.raises(DataError, match=f"data folder not found: {tmp_path / 'nope'}"):
        prepare_data(cfg(tmp_path / "nope"))
    with pytest.raises(DataError, match="no data folder given"):
        prepare_data(DataConfig())


def test_empty_root_and_missing_train(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no class folders"):
        prepare_data(cfg(tmp_path / "empty"))
    (tmp_path / "onlytest" / "test" / "NORMAL").mkdir(parents=True)
    with pytest.raises(DataError, match="no train/ folder"):
        prepare_data(cfg(tmp_path / "onlytest"))


def test_empty_class_folder_names_it(tiny_splits):
    folder = tiny_splits / "val" / "NORMAL"
    shutil.rmtree(folder)
    folder.mkdir()
    with pytest.raises(DataError, match=f"{folder}: class folder has no files"):
        prepare_data(cfg(tiny_splits))


def test_class_missing_from_a_split(tiny_splits):
    shutil.rmtree(tiny_splits / "test" / "PNEUMONIA")
    with pytest.raises(DataError, match="test/PNEUMONIA: class folder missing"):
        prepare_data(cfg(tiny_splits))


def test_single_class(tmp_path):
    write_image(tmp_path / "one" / "NORMAL" / "IM-0001-0001.jpeg", 0, seed=1)
    with pytest.raises(DataError, match="found one class"):
        prepare_data(cfg(tmp_path / "one"))


def _bad_files(root):
    folder = root / "train" / "PNEUMONIA"
    (folder / "person9001_bacteria_1.jpeg").write_bytes(b"")  # zero bytes
    (folder / "person9002_bacteria_2.jpeg").write_bytes(b"not an image at all")
    good = next(folder.glob("person*.jpeg")).read_bytes()
    (folder / "person9003_bacteria_3.jpeg").write_bytes(good[: len(good) // 2])  # truncated
    (folder / "notes.txt").write_text("a stray text file")
    (folder / "person9004_bacteria_4.jpeg").symlink_to(folder / "gone.jpeg")  # dangling
    return {
        "train/PNEUMONIA/person9001_bacteria_1.jpeg": "empty file",
        "train/PNEUMONIA/person9002_bacteria_2.jpeg": "not an image",
        "train/PNEUMONIA/person9003_bacteria_3.jpeg": "corrupt image",
        "train/PNEUMONIA/notes.txt": "not an image",
        "train/PNEUMONIA/person9004_bacteria_4.jpeg": "unreadable",
    }


def test_bad_files_are_skipped_and_listed(tiny_splits):
    expected = _bad_files(tiny_splits)
    data = prepare_data(cfg(tiny_splits, max_bad_fraction=0.1, given_val="keep"))
    skipped = {s["path"]: s["reason"] for s in data.summary["problems"]["skipped_files"]}
    assert set(skipped) == set(expected)
    for path, fragment in expected.items():
        assert fragment in skipped[path], (path, skipped[path])
    assert len(data.splits["train"]) == 48  # only the good ones
    for bad in expected:
        assert bad not in {data.relpaths[i] for i in data.splits["train"]}


def test_skipped_and_hidden_files_are_counted_and_said(tiny_splits):
    from pneumo_core.data import problem_lines

    _bad_files(tiny_splits)
    (tiny_splits / "train" / "NORMAL" / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (tiny_splits / "test" / "NORMAL" / ".thumbs").mkdir()
    data = prepare_data(cfg(tiny_splits, max_bad_fraction=0.1, given_val="keep"))
    assert data.summary["problems"]["hidden_count"] == 2
    lines = problem_lines(data.summary, shown=2)
    assert lines[0] == "skipped 5 unreadable file(s):"
    assert lines[1].startswith("  train/PNEUMONIA/") and len(lines[1].split(": ")) == 2
    assert lines[3] == "  ... and 3 more (data_summary.json lists them)"
    assert lines[-1] == "skipped 2 hidden file(s) or folder(s)"


def test_train_says_on_the_console_which_files_it_skipped(tiny_splits):
    """Skipped files are said where the user looks, also without --out."""
    from pneumo_core.configuration import from_dict
    from pneumo_core.train.config import TrainConfig
    from pneumo_core.train.standalone import train_and_report

    _bad_files(tiny_splits)
    config = from_dict(
        TrainConfig,
        {
            "data": {"root": str(tiny_splits), "image_size": 32, "max_bad_fraction": 0.1,
                     "given_val": "keep"},
            "model": {"name": "cnn", "params": {"num_blocks": 2, "filters": 4}},
            "training": {"epochs": 1},
        },
    )  # fmt: skip
    lines: list[str] = []
    train_and_report(config, log=lines.append)
    assert "skipped 5 unreadable file(s):" in lines
    assert "  train/PNEUMONIA/person9001_bacteria_1.jpeg: empty file" in lines


def test_too_many_bad_files_is_an_error(tiny_splits):
    _bad_files(tiny_splits)
    with pytest.raises(DataError, match=r"5 of 149 files cannot be used .*max_bad_fraction=0.01"):
        prepare_data(cfg(tiny_splits))


def test_decompression_bomb_is_skipped(tiny_splits, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10**6)
    big = tiny_splits / "train" / "NORMAL" / "IM-0999-0001.png"
    Image.new("L", (1500, 1500)).save(big)
    data = prepare_data(cfg(tiny_splits, max_bad_fraction=0.1))
    reasons = {s["path"]: s["reason"] for s in data.summary["problems"]["skipped_files"]}
    assert "decompression-bomb" in reasons["train/NORMAL/IM-0999-0001.png"]
    assert len(reasons) == 1


def test_class_left_without_images_in_a_split(tiny_splits):
    for path in (tiny_splits / "test" / "NORMAL").iterdir():
        path.write_bytes(b"garbage")
    with pytest.raises(DataError, match="test split has no usable image of class NORMAL"):
        prepare_data(cfg(tiny_splits, max_bad_fraction=0.5))


def test_bad_regex_is_a_config_error():
    with pytest.raises(ConfigError, match="patient_regex: not a valid regular expression"):
        DataConfig(patient_regex="(unclosed")


# --- external check ----------------------------------------------------------------------


def test_external_patients_are_held_out_and_decoded_like_the_data(tiny_splits, tmp_path):
    ext = make_dataset(tmp_path / "ext", layout="classes", patients_per_class=3)
    config = cfg(tiny_splits, given_val="keep", external_root=str(ext), external_split="")
    held_out = external_patients(config)
    assert len(held_out) == 6
    kept = prepare_data(config)
    assert not held_out & set(kept.patients[i] for i in np.concatenate(list(kept.splits.values())))
    assert kept.summary["external"]["patients_excluded"] == 6
    assert kept.summary["external"]["images_excluded"] == 12
    everything = prepare_data(cfg(tiny_splits, given_val="keep"))
    assert held_out <= set(everything.patients[i] for i in everything.splits["train"])
    assert kept.fingerprint != everything.fingerprint

    external = prepare_external(config, kept.class_names)
    assert external.images.shape == (12, *kept.input_shape)
    assert external.labels.tolist().count(0) == external.labels.tolist().count(1) == 6
    assert external.summary["patients"] == 6 and external.summary["skipped"] == []


def test_external_check_errors_name_the_folder(tiny_splits, tmp_path):
    ext = make_dataset(tmp_path / "ext", layout="classes", patients_per_class=2)
    with pytest.raises(DataError, match="no test/ split folder"):
        external_patients(cfg(tiny_splits, external_root=str(ext)))
    other = make_dataset(tmp_path / "other", layout="classes", classes=("A", "B"))
    with pytest.raises(DataError, match="differ from the dataset's"):
        prepare_external(
            cfg(tiny_splits, external_root=str(other), external_split=""), ("NORMAL", "PNEUMONIA")
        )
    with pytest.raises(ConfigError, match="external_split"):
        cfg(tiny_splits, external_root=str(ext), external_split="holdout")
