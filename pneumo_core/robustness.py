"""The robustness suite: a split re-scored under realistic image shifts.

Scores on splits carved from the training data run well above what the same model reaches
on images taken elsewhere. The suite re-scores decoded images (uint8, ``(N, H, W, C)``)
under shifts that such images show (exposure, contrast, gamma, blur, noise, JPEG
re-compression, a lower source resolution, small rotations and shifts, a cropped border),
each at three severities, and reports how far the metrics move.

Every shift is deterministic given its seed: the same images, shift, severity and seed give
the same bytes. Nothing here imports TensorFlow: a model enters as a function from images
to probabilities.
"""

from __future__ import annotations

import hashlib
import os
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageFilter

from pneumo_core.metrics import (
    DEFAULT_TAU,
    DEFAULT_W,
    roc_auc,
    rw_auc,
    sensitivity,
    specificity,
)
from pneumo_errors import ConfigError

__all__ = [
    "SEVERITIES",
    "SHIFTS",
    "Shift",
    "apply_shift",
    "cached_shift",
    "get_shift",
    "images_digest",
    "list_shifts",
    "robustness_table",
    "suite_score",
]

#: Severity levels every shift has (1 mild ... 3 strong).
SEVERITIES = (1, 2, 3)

#: Bump when a shift's code or levels change, so cached shifted images are rebuilt.
SHIFTS_VERSION = 1

#: How a shift changes one image: ``(image HxWxC uint8, level, rng) -> image``.
ImageShift = Callable[[np.ndarray, float, np.random.Generator], np.ndarray]


@dataclass(frozen=True)
class Shift:
    """One shift of the suite.

    Attributes:
        name: Registry name.
        description: What it simulates, for the report.
        levels: The parameter at severities 1, 2 and 3 (its unit in ``description``).
        fn: Applies the shift at one level to one image.
    """

    name: str
    description: str
    levels: tuple[float, float, float]
    fn: ImageShift


def _as_float(image: np.ndarray) -> np.ndarray:
    return image.astype(np.float32)


def _to_uint8(values: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def _pil_each_channel(image: np.ndarray, op: Callable[[Image.Image], Image.Image]) -> np.ndarray:
    channels = [np.asarray(op(Image.fromarray(image[..., c]))) for c in range(image.shape[-1])]
    return np.stack(channels, axis=-1)


def _scaled(level: float, image: np.ndarray) -> float:
    """A pixel length given for 128-px images, scaled to this image's size."""
    return level * image.shape[0] / 128


def _contrast(image: np.ndarray, factor: float, rng: np.random.Generator) -> np.ndarray:
    values = _as_float(image)
    mean = values.mean()
    return _to_uint8(mean + factor * (values - mean))


def _brightness(image: np.ndarray, delta: float, rng: np.random.Generator) -> np.ndarray:
    return _to_uint8(_as_float(image) + delta)


def _gamma(image: np.ndarray, gamma: float, rng: np.random.Generator) -> np.ndarray:
    return _to_uint8(255.0 * (_as_float(image) / 255.0) ** gamma)


def _blur(image: np.ndarray, radius: float, rng: np.random.Generator) -> np.ndarray:
    blur = ImageFilter.GaussianBlur(_scaled(radius, image))
    return _pil_each_channel(image, lambda im: im.filter(blur))


def _noise(image: np.ndarray, std: float, rng: np.random.Generator) -> np.ndarray:
    noise = rng.normal(0.0, std, size=(*image.shape[:2], 1))  # the same on every channel
    return _to_uint8(_as_float(image) + noise)


def _jpeg(image: np.ndarray, quality: float, rng: np.random.Generator) -> np.ndarray:
    def recompress(im: Image.Image) -> Image.Image:
        buffer = BytesIO()
        im.save(buffer, format="JPEG", quality=int(quality))
        return Image.open(BytesIO(buffer.getvalue())).convert(im.mode)

    return _pil_each_channel(image, recompress)


def _low_resolution(image: np.ndarray, factor: float, rng: np.random.Generator) -> np.ndarray:
    height, width = image.shape[:2]
    small = (max(1, round(width * factor)), max(1, round(height * factor)))
    return _pil_each_channel(
        image,
        lambda im: im.resize(small, Image.Resampling.BILINEAR).resize(
            (width, height), Image.Resampling.BILINEAR
        ),
    )


def _rotation(image: np.ndarray, degrees: float, rng: np.random.Generator) -> np.ndarray:
    angle = degrees * rng.choice((-1.0, 1.0))
    return _pil_each_channel(
        image, lambda im: im.rotate(angle, resample=Image.Resampling.BILINEAR, fillcolor=0)
    )


def _translation(image: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    height, width = image.shape[:2]
    direction = rng.uniform(0, 2 * np.pi)
    dx = round(fraction * width * np.cos(direction))
    dy = round(fraction * height * np.sin(direction))
    return _pil_each_channel(
        image, lambda im: im.transform(im.size, Image.Transform.AFFINE, (1, 0, -dx, 0, 1, -dy))
    )


def _border_crop(image: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    height, width = image.shape[:2]
    dy, dx = round(fraction * height), round(fraction * width)
    box = (dx, dy, width - dx, height - dy)
    return _pil_each_channel(
        image, lambda im: im.crop(box).resize((width, height), Image.Resampling.BILINEAR)
    )


SHIFTS: dict[str, Shift] = {
    s.name: s
    for s in (
        Shift(
            "contrast", "contrast scaled about the mean by a factor", (0.75, 0.55, 0.35), _contrast
        ),
        Shift("brightness", "grey levels added (exposure)", (20.0, 40.0, 60.0), _brightness),
        Shift("gamma", "gamma curve with exponent", (1.3, 1.7, 2.2), _gamma),
        Shift("blur", "Gaussian blur, radius in px at 128 px", (0.7, 1.4, 2.5), _blur),
        Shift("noise", "Gaussian noise, std in grey levels", (6.0, 12.0, 24.0), _noise),
        Shift("jpeg", "JPEG re-compression at quality", (40.0, 20.0, 8.0), _jpeg),
        Shift(
            "low_resolution",
            "downscaled by a factor, then back up (a lower source resolution)",
            (0.6, 0.4, 0.25),
            _low_resolution,
        ),
        Shift("rotation", "rotation in degrees, either way", (4.0, 8.0, 14.0), _rotation),
        Shift(
            "translation",
            "shift by a fraction of the size, any way",
            (0.04, 0.08, 0.14),
            _translation,
        ),
        Shift(
            "border_crop",
            "fraction cropped from every border, resized back",
            (0.04, 0.08, 0.14),
            _border_crop,
        ),
    )
}


def list_shifts() -> list[str]:
    """Names of the registered shifts."""
    return list(SHIFTS)


def get_shift(name: str) -> Shift:
    """Returns a registered shift.

    Raises:
        ConfigError: Unknown name; the message lists the valid ones.
    """
    if name not in SHIFTS:
        raise ConfigError(
            "robustness.shifts", f"unknown shift {name!r}; valid: {', '.join(SHIFTS)}"
        )
    return SHIFTS[name]


def apply_shift(images: np.ndarray, name: str, severity: int, seed: int) -> np.ndarray:
    """Applies one shift at one severity to every image; deterministic given ``seed``.

    Args:
        images: ``(N, H, W, C)`` uint8 images (grayscale or RGB).
        name: A registered shift.
        severity: 1, 2 or 3.
        seed: Seeds the random parts (noise, rotation direction, shift direction); each
            shift and severity draws from its own stream.

    Returns:
        The shifted images, same shape, uint8.

    Raises:
        ConfigError: Unknown shift or severity.
    """
    shift = get_shift(name)
    if severity not in SEVERITIES:
        raise ConfigError("robustness.severities", f"severity {severity!r} is not one of 1, 2, 3")
    images = np.asarray(images)
    if images.ndim != 4 or images.dtype != np.uint8:
        raise ValueError(f"expected (N, H, W, C) uint8 images, got {images.dtype} {images.shape}")
    rng = np.random.default_rng([seed, zlib.crc32(name.encode()), severity])
    level = shift.levels[severity - 1]
    out = np.empty_like(images)
    for i, image in enumerate(images):
        out[i] = shift.fn(image, level, rng)
    return out


def memoized_shift() -> Callable[[np.ndarray, str, int, int], np.ndarray]:
    """An :func:`apply_shift` that shifts each (shift, severity, seed) once.

    For several models scored on one split (pass it as ``robustness_table``'s ``shift``):
    it remembers the first images it was given per key, so use one per split.
    """
    views: dict[tuple[str, int, int], np.ndarray] = {}

    def shift(images: np.ndarray, name: str, severity: int, seed: int) -> np.ndarray:
        if (name, severity, seed) not in views:
            views[name, severity, seed] = apply_shift(images, name, severity, seed)
        return views[name, severity, seed]

    return shift


def images_digest(images: np.ndarray) -> str:
    """A content hash of uint8 images (shape and bytes): the cache key of their shifts."""
    images = np.ascontiguousarray(images)
    digest = hashlib.sha256(f"{images.shape}|{images.dtype}|".encode())
    digest.update(memoryview(images).cast("B"))
    return digest.hexdigest()[:24]


def cached_shift(
    images: np.ndarray,
    name: str,
    severity: int,
    seed: int,
    *,
    digest: str | None = None,
    cache_dir: str | Path | None = None,
) -> np.ndarray:
    """:func:`apply_shift` through the node's cache, like decoded images.

    The same images, shift, severity and seed are shifted once per node (the first trial
    that needs them) and memory-mapped by every later one. An entry is written to a
    temporary file and renamed into place, so concurrent trials never read half a file.

    Args:
        images: ``(N, H, W, C)`` uint8 images.
        name: A registered shift.
        severity: 1, 2 or 3.
        seed: The shift's seed.
        digest: :func:`images_digest` of ``images``, when already computed.
        cache_dir: Where entries go (default: the decoded-image cache's ``shifted/``).

    Returns:
        The shifted images (read-only when loaded from the cache).
    """
    if cache_dir is None:
        from pneumo_core.data.cache import default_cache_dir

        cache_dir = default_cache_dir() / "shifted"
    folder = Path(cache_dir)
    digest = digest or images_digest(images)
    path = folder / f"{digest}-v{SHIFTS_VERSION}-{name}-s{severity}-seed{seed}.npy"
    if path.is_file():
        try:
            cached = np.load(path, mmap_mode="r")
        except (OSError, ValueError):
            cached = None  # damaged: rebuilt below
        if cached is not None and cached.shape == np.shape(images):
            return cached
    shifted = apply_shift(images, name, severity, seed)
    folder.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.stem}.{os.getpid()}.partial.npy")
    np.save(partial, shifted)
    os.replace(partial, path)
    return shifted


def _scores(y: np.ndarray, p: np.ndarray, threshold: float, tau: float, w: float) -> dict:
    return {
        "auc": roc_auc(y, p),
        "rw_auc": rw_auc(y, p, tau=tau, w=w),
        "sensitivity": sensitivity(y, p, threshold=threshold),
        "specificity": specificity(y, p, threshold=threshold),
    }


def robustness_table(
    predict: Callable[[np.ndarray], np.ndarray],
    images: np.ndarray,
    labels: np.ndarray,
    *,
    threshold: float,
    seed: int,
    shifts: Sequence[str] | None = None,
    severities: Sequence[int] = SEVERITIES,
    tau: float = DEFAULT_TAU,
    w: float = DEFAULT_W,
    shift: Callable[[np.ndarray, str, int, int], np.ndarray] = apply_shift,
) -> dict[str, Any]:
    """Scores a model on a split as it is and under every shift and severity.

    Args:
        predict: Images -> probability of the positive class, ``(N,)``.
        images: The split's uint8 images.
        labels: Its binary labels.
        threshold: The operating threshold (sensitivity and specificity are read there).
        seed: Seed of the shifts.
        shifts: Shift names (default: all registered).
        severities: Severity levels to run.
        tau: rw_auc's sensitivity floor.
        w: rw_auc's weight.
        shift: ``(images, name, severity, seed) -> shifted``: :func:`apply_shift`, or one
            that reuses shifted images (several models scored on one split).

    Returns:
        ``{"seed", "threshold", "clean": scores, "rows": [{shift, severity, level,
        description, scores..., delta_sensitivity, delta_specificity}], "summary":
        {mean_rw_auc, worst_rw_auc, worst}}``.
    """
    labels = np.asarray(labels)
    clean = _scores(labels, np.asarray(predict(images)), threshold, tau, w)
    rows = []
    for name in shifts or list_shifts():
        registered = get_shift(name)
        for severity in severities:
            probs = np.asarray(predict(shift(images, name, severity, seed)))
            scores = _scores(labels, probs, threshold, tau, w)
            rows.append(
                {
                    "shift": name,
                    "severity": severity,
                    "level": registered.levels[severity - 1],
                    "description": registered.description,
                    **scores,
                    "delta_sensitivity": scores["sensitivity"] - clean["sensitivity"],
                    "delta_specificity": scores["specificity"] - clean["specificity"],
                }
            )
    return {
        "seed": seed,
        "threshold": threshold,
        "clean": clean,
        "rows": rows,
        "summary": suite_score(rows),
    }


def suite_score(rows: Sequence[dict[str, Any]], metric: str = "rw_auc") -> dict[str, Any]:
    """Mean and worst of ``metric`` over a suite's rows, and which shift was worst."""
    if not rows:
        return {f"mean_{metric}": None, f"worst_{metric}": None, "worst": None}
    worst = min(rows, key=lambda r: r[metric])
    return {
        f"mean_{metric}": float(np.mean([r[metric] for r in rows])),
        f"worst_{metric}": float(worst[metric]),
        "worst": f"{worst['shift']} {worst['severity']}",
    }
