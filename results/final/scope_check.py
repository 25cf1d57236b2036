"""The pixel scope detector's fit and measurement in ``final`` (issue 38).

:func:`fit_and_measure` fits :class:`results.serving.pixel_scope.PixelScope` on the chosen
model's training split (threshold on validation) and measures it where it matters:

- **false alarms**: the share of the test split (and, with ``--site``, of the site sample)
  flagged, against the stated rate;
- **detection**: the share flagged of out-of-scope images made here, each kind decoded as
  the model's inputs are: inverted test radiographs, blank and noise frames, photographs
  (scikit-learn's two bundled sample photographs, in tiles), and CT and MR slices (the
  DICOM files bundled with pydicom, through the same DICOM conversion ``predict`` uses).
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from results.serving.pixel_scope import PixelScope, fit_pixel_scope

__all__ = ["fit_and_measure", "flag_rate", "out_of_scope_images"]

#: pydicom's bundled test files used as CT and MR slices (no download needed).
DICOM_SAMPLES = {"CT slice": ("CT_small.dcm",), "MR slice": ("MR_small.dcm", "MR_small_RLE.dcm")}


def out_of_scope_images(
    test_images: np.ndarray, spec: dict[str, Any], seed: int
) -> dict[str, np.ndarray]:
    """Out-of-scope images by kind, at the model's input size and colour mode.

    Args:
        test_images: In-scope test images ``(N, S, S, C)`` uint8 (inverted ones are made).
        spec: ``size``, ``color_mode``, ``aspect`` (the model card's ``input``).
        seed: Seed of the noise frames.
    """
    rng = np.random.default_rng(seed)
    shape = test_images.shape[1:]
    inverted = 255 - test_images[: min(50, len(test_images))]
    levels = [0, 32, 128, 200, 255]
    blank = np.stack([np.full(shape, v, np.uint8) for v in levels])
    noise = rng.integers(0, 256, size=(5, *shape), dtype=np.uint8)
    kinds = {
        "inverted radiograph": inverted,
        "blank frame": blank,
        "noise frame": noise,
        "photograph": _photographs(spec),
    }
    for kind, names in DICOM_SAMPLES.items():
        slices = [_decoded_dicom(name, spec) for name in names]
        slices = [s for s in slices if s is not None]
        if slices:
            kinds[kind] = np.stack(slices)
    return kinds


def _photographs(spec: dict[str, Any]) -> np.ndarray:
    """scikit-learn's two sample photographs: whole and in four overlapping tiles each."""
    from PIL import Image
    from sklearn.datasets import load_sample_images

    from pneumo_core.data.decode import decode_bytes

    out = []
    for photo in load_sample_images().images:
        h, w = photo.shape[:2]
        crops = [photo] + [
            photo[y : y + h * 2 // 3, x : x + w * 2 // 3] for y in (0, h // 3) for x in (0, w // 3)
        ]
        for crop in crops:
            buffer = io.BytesIO()
            Image.fromarray(crop).save(buffer, format="PNG")
            out.append(
                decode_bytes(buffer.getvalue(), spec["size"], spec["color_mode"], spec["aspect"])[0]
            )
    return np.stack(out)


def _decoded_dicom(name: str, spec: dict[str, Any]) -> np.ndarray | None:
    """One of pydicom's bundled files through the DICOM path, or None when absent."""
    from pydicom.data import get_testdata_file

    from pneumo_core.data.decode import BadImageError, decode_image

    path = get_testdata_file(name, download=False)
    if path is None:
        return None
    try:
        return decode_image(path, spec["size"], spec["color_mode"], spec["aspect"])[0]
    except BadImageError:
        return None


def fit_and_measure(
    data, spec: dict[str, Any], site_images: np.ndarray | None, seed: int
) -> tuple[PixelScope, dict[str, Any]]:
    """The fitted detector and the report's ``pixel_scope`` section.

    Args:
        data: The chosen model's prepared data (``arrays("train"|"val"|"test")``).
        spec: The model card's ``input`` (size, colour mode, aspect).
        site_images: The site sample's images (``--site``), or None.
        seed: Seed of the randomized SVD and the noise frames.

    Returns:
        ``(detector, section)``: the section holds the method, threshold, the false-alarm
        rates (validation's target, test's and the site's measured) and the detection rate
        per out-of-scope kind and overall.
    """
    train, _ = data.arrays("train")
    val, _ = data.arrays("val")
    test, _ = data.arrays("test")
    detector = fit_pixel_scope(train, val, seed=seed)
    kinds = out_of_scope_images(test, spec, seed)
    detection = {kind: flag_rate(detector, images) for kind, images in kinds.items()}
    flagged = sum(d["flagged"] for d in detection.values())
    total = sum(d["images"] for d in detection.values())
    section = {
        "method": (
            "squared Mahalanobis distance of 32x32 grey thumbnails under a 32-component "
            "probabilistic PCA of the training split; threshold at validation's "
            f"{1 - detector.false_alarm:.0%} quantile"
        ),
        "threshold": detector.threshold,
        "false_alarm_target": detector.false_alarm,
        "false_alarm": {"test": flag_rate(detector, test)},
        "detection": detection,
        "detection_rate": flagged / total if total else None,
    }
    if site_images is not None:
        section["false_alarm"]["site"] = flag_rate(detector, site_images)
    return detector, section


def flag_rate(detector: PixelScope, images: np.ndarray) -> dict[str, Any]:
    """How many of ``images`` the detector flags: ``images``, ``flagged``, ``rate``."""
    flags = detector.out_of_scope(images)[1]
    return {"images": len(flags), "flagged": int(flags.sum()), "rate": float(flags.mean())}
