"""``predict`` and ``explain`` on DICOM files: the JPEG's probability, scope columns, and no
identifying field anywhere in what they write (issue 38)."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from tests.dicom_files import PHI_VALUES, make_dicom, tf_pixels
from tests.results.conftest import cli
from tests.tiny_export import grey_export

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    return grey_export(tmp_path_factory.mktemp("export") / "model")


@pytest.fixture(scope="module")
def dicoms(mini_root, tmp_path_factory):
    """Five JPEGs of chest_xray_mini and a DICOM of each (8-bit MONOCHROME2, MONOCHROME1,
    12-bit windowed, RLE, extension-less), every PHI tag planted; plus a CT, a lateral and an
    adult's radiograph."""
    folder = tmp_path_factory.mktemp("dicoms")
    (folder / "in").mkdir()
    jpegs = sorted((mini_root / "test" / "PNEUMONIA").iterdir())[:5]
    pairs = []
    for i, jpeg in enumerate(jpegs):
        v = tf_pixels(jpeg)
        kind = [
            {},
            {"photometric": "MONOCHROME1"},
            {"bits_stored": 12, "slope": 2.0, "intercept": 10.0, "window": (1030.5, 2041.0)},
            {"syntax": "rle"},
            {},
        ][i]
        stored = 255 - v if kind.get("photometric") else v
        stored = stored.astype(np.uint16) * 4 if kind.get("bits_stored") else stored
        name = f"image{i}.dcm" if i < 4 else "image4"
        pairs.append((jpeg, make_dicom(folder / "in" / name, stored, **kind)))
    v = tf_pixels(jpegs[0])
    make_dicom(folder / "in" / "ct.dcm", v, modality="CT")
    make_dicom(folder / "in" / "lateral.dcm", v, view="LL")
    make_dicom(folder / "in" / "adult.dcm", v, age="045Y")
    return folder, pairs


def test_predict_gives_each_dicom_its_jpegs_probability_and_scope(exported, dicoms):
    from results.serving.predict import predict_files

    folder, pairs = dicoms
    from_jpeg = predict_files(exported, [str(j) for j, _ in pairs])
    from_dicom = predict_files(exported, [str(d) for _, d in pairs])
    for jpeg_row, dicom_row in zip(from_jpeg, from_dicom):
        assert dicom_row["status"] == "ok", dicom_row
        gap = abs(jpeg_row["prob_PNEUMONIA"] - dicom_row["prob_PNEUMONIA"])
        assert gap <= 1e-6, f"{dicom_row['path']}: {gap:.2e} from its JPEG"
        assert dicom_row["modality"] == "DX" and dicom_row["in_scope"] is True
    assert "modality" not in from_jpeg[0]  # JPEG-only runs keep their columns
    rows = {r["path"].rsplit("/", 1)[-1]: r for r in predict_files(exported, [folder / "in"])}
    assert rows["ct.dcm"]["in_scope"] is False and "modality CT" in rows["ct.dcm"]["scope_reason"]
    assert (
        rows["lateral.dcm"]["in_scope"] is False
        and "lateral" in rows["lateral.dcm"]["scope_reason"]
    )
    adult = rows["adult.dcm"]
    assert adult["in_scope"] is True and adult["scope_reason"].startswith("warning: age 45")
    assert adult["prob_PNEUMONIA"] != ""  # a warning, not a refusal
    strict = {
        r["path"].rsplit("/", 1)[-1]: r
        for r in predict_files(exported, [folder / "in"], strict=True)
    }
    assert strict["ct.dcm"]["status"] == "out_of_scope" and strict["ct.dcm"]["prob_PNEUMONIA"] == ""
    assert strict["adult.dcm"]["status"] == "ok"


def test_no_identifying_value_reaches_any_output(exported, dicoms, tmp_path):
    """Every PHI tag of the basic profile holds a distinctive value; none may appear in the
    CSV, the console (stdout and stderr) of predict, strict predict and explain."""
    folder, pairs = dicoms
    broken = folder / "in" / "truncated.dcm"
    broken.write_bytes(pairs[0][1].read_bytes()[:-5000])  # an error row for a PHI file too
    outputs = []
    for args in (
        ["predict", str(exported), str(folder / "in"), "--csv", str(tmp_path / "p.csv")],
        ["predict", str(exported), str(folder / "in"), "--strict"],
        ["explain", str(exported), str(pairs[1][1]), "--out", str(tmp_path / "e.png")],
    ):
        proc = cli(*args)
        assert proc.returncode == 0, proc.stderr[-2000:]
        outputs += [proc.stdout, proc.stderr]
    outputs.append((tmp_path / "p.csv").read_text())
    with (tmp_path / "p.csv").open() as handle:
        header = next(csv.reader(handle))
    assert {"modality", "body_part", "view_position", "patient_age_years", "in_scope"} <= set(
        header
    )
    assert "scope: " in outputs[1] and "out of scope" in outputs[1]
    text = "\n".join(outputs)
    for keyword, value in PHI_VALUES.items():
        for token in {value, value.replace("^", " "), value.split("^")[0]}:
            assert token not in text, f"{keyword} leaked: {token!r}"
