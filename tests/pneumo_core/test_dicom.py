"""DICOM in: the one conversion to 8 bits, then the one TensorFlow preprocessing (issue 38).

Each DICOM is made from a real chest_xray_mini JPEG's pixels (as TensorFlow decodes them),
so the DICOM path must give exactly the JPEG path's pixels: the conversion is lossless on
8-bit-equivalent data (tolerance 0 pixel levels, so predict's probabilities agree to well
under 1e-3).
"""

from __future__ import annotations

import numpy as np
import pytest

from pneumo_core.data.decode import BadImageError, decode_image
from tests.dicom_files import make_dicom, tf_pixels


@pytest.fixture(scope="module")
def source(mini_root):
    return sorted((mini_root / "test" / "NORMAL").iterdir())[0]


@pytest.fixture(scope="module")
def jpeg_pixels(source):
    return decode_image(source, 64, "grayscale", "squash")[0]


def variants(source, folder):
    v = tf_pixels(source)
    return {
        "monochrome2_8bit.dcm": make_dicom(folder / "monochrome2_8bit.dcm", v),
        "monochrome1_8bit.dcm": make_dicom(
            folder / "monochrome1_8bit.dcm", 255 - v, photometric="MONOCHROME1"
        ),
        # 12 bits stored as 4v, slope 2, intercept 10 -> 8v + 10; the first window maps
        # [10, 2050] back to [0, 255] exactly (a second, narrower window is ignored)
        "12bit_rescale_window.dcm": make_dicom(
            folder / "12bit_rescale_window.dcm",
            v.astype(np.uint16) * 4,
            bits_stored=12,
            slope=2.0,
            intercept=10.0,
            window=(1030.5, 2041.0),
        ),
        "rle_lossless.dcm": make_dicom(folder / "rle_lossless.dcm", v, syntax="rle"),
        "no_extension": make_dicom(folder / "no_extension", v),
    }


def test_every_dicom_variant_gives_the_jpegs_pixels(source, jpeg_pixels, tmp_path):
    for name, path in variants(source, tmp_path).items():
        pixels, info = decode_image(path, 64, "grayscale", "squash")
        assert info.format == "DICOM", name
        assert info.dicom.modality == "DX" and info.dicom.patient_age_years == 5.0
        difference = np.abs(pixels.astype(int) - jpeg_pixels.astype(int)).max()
        assert difference == 0, f"{name}: {difference} grey levels from the JPEG's pixels"


def test_dicom_to_png_is_the_documented_function_for_serve_bytes(source, jpeg_pixels, tmp_path):
    from pneumo_core.data.decode import decode_bytes
    from pneumo_core.data.dicom import dicom_to_png

    path = make_dicom(tmp_path / "a.dcm", tf_pixels(source), photometric="MONOCHROME2")
    png, scope = dicom_to_png(path)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and scope.body_part == "CHEST"
    pixels, info = decode_bytes(png, 64, "grayscale", "squash")
    assert info.format == "PNG" and np.array_equal(pixels, jpeg_pixels)


def test_an_undecodable_syntax_and_multiple_frames_are_one_line_errors(source, tmp_path):
    from pydicom import dcmread
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEGLSLossless

    path = make_dicom(tmp_path / "ls.dcm", tf_pixels(source))
    ds = dcmread(path)
    ds.PixelData = encapsulate([ds.PixelData])  # as if JPEG-LS coded: no decoder installed
    ds.file_meta.TransferSyntaxUID = JPEGLSLossless
    ds.save_as(tmp_path / "ls.dcm")
    with pytest.raises(BadImageError, match=r"DICOM: transfer syntax JPEG-LS .* no decoder"):
        decode_image(tmp_path / "ls.dcm", 32, "grayscale", "squash")
    ds = dcmread(make_dicom(tmp_path / "frames.dcm", tf_pixels(source)))
    ds.NumberOfFrames = 3
    ds.save_as(tmp_path / "frames.dcm")
    with pytest.raises(BadImageError, match=r"DICOM: multi-frame file \(3 frames\)"):
        decode_image(tmp_path / "frames.dcm", 32, "grayscale", "squash")


def test_patient_age_in_years_from_its_units():
    from pneumo_core.data.dicom import _age_years

    assert _age_years("005Y") == 5.0 and _age_years("018M") == 1.5
    assert _age_years("052W") == pytest.approx(1.0, abs=0.01) and _age_years("") is None
    assert _age_years("5 years") is None
