"""Decoding one image file into a fixed-size uint8 array.

This is the only place that turns files into pixels: the cache, ``predict`` and
``explain`` all call :func:`decode_image`, so training and inference see exactly the same
preprocessing. Pillow's ``LOAD_TRUNCATED_IMAGES`` is never switched on: a truncated file is
reported as bad instead of silently padded.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image, UnidentifiedImageError

__all__ = ["BadImageError", "ImageInfo", "decode_bytes", "decode_image"]

_HIGH_DEPTH_MODES = {"I", "I;16", "I;16B", "I;16L", "I;16N", "F"}


class BadImageError(Exception):
    """A file that cannot be used as an image; ``reason`` says why, in a few words."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


@dataclass(frozen=True)
class ImageInfo:
    """What the source file was before decoding.

    Attributes:
        width: Original width in pixels.
        height: Original height in pixels.
        mode: Pillow mode of the file (``L``, ``RGB``, ``I;16``, ...).
        format: File format as Pillow detected it (``JPEG``, ``PNG``, ...).
    """

    width: int
    height: int
    mode: str
    format: str


def decode_image(
    path: str | Path,
    size: int,
    color_mode: Literal["grayscale", "rgb"],
    aspect: Literal["squash", "pad"],
) -> tuple[np.ndarray, ImageInfo]:
    """Decodes an image file to a ``(size, size, channels)`` uint8 array.

    Args:
        path: The image file.
        size: Side of the output square.
        color_mode: ``grayscale`` (1 channel) or ``rgb`` (3 channels). Any source mode is
            converted: RGB to gray by luma, gray to RGB by repetition, alpha composited on
            black, palette and CMYK expanded, 16-bit and float images min-max scaled.
        aspect: ``squash`` to the square, or ``pad`` (keep the aspect ratio, black borders).

    Returns:
        The pixels and the source file's :class:`ImageInfo`.

    Raises:
        BadImageError: The file is empty, unreadable, not an image, truncated, corrupt or
            larger than Pillow's decompression-bomb limit.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise BadImageError(f"unreadable: {exc.strerror or exc}") from None
    return decode_bytes(data, size, color_mode, aspect)


def decode_bytes(
    data: bytes,
    size: int,
    color_mode: Literal["grayscale", "rgb"],
    aspect: Literal["squash", "pad"],
) -> tuple[np.ndarray, ImageInfo]:
    """Decodes the bytes of an image file; see :func:`decode_image`."""
    if not data:
        raise BadImageError("empty file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            info = ImageInfo(image.width, image.height, image.mode, image.format or "?")
            image.draft(None, (size, size))  # JPEG: decode at reduced scale, much faster
            image.load()
            pixels = _convert_mode(image, color_mode)
            pixels = _resize(pixels, size, aspect)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise BadImageError("too many pixels (over Pillow's decompression-bomb limit)") from None
    except UnidentifiedImageError:
        raise BadImageError("not an image file Pillow can read") from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise BadImageError(f"corrupt image: {message}") from None
    array = np.asarray(pixels, dtype=np.uint8)
    if array.ndim == 2:
        array = array[:, :, None]
    return array, info


def _convert_mode(image: Image.Image, color_mode: str) -> Image.Image:
    target = "L" if color_mode == "grayscale" else "RGB"
    if image.mode in _HIGH_DEPTH_MODES:
        values = np.asarray(image, dtype=np.float64)
        low, high = float(values.min()), float(values.max())
        scaled = (values - low) * (255.0 / (high - low)) if high > low else values * 0.0
        image = Image.fromarray(np.clip(scaled + 0.5, 0, 255).astype(np.uint8), mode="L")
    elif image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        image = Image.alpha_composite(background, rgba).convert("RGB")
    elif image.mode not in ("L", "RGB"):
        image = image.convert("RGB")
    return image.convert(target) if image.mode != target else image


def _resize(image: Image.Image, size: int, aspect: str) -> Image.Image:
    if aspect == "squash":
        return image.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=3.0)
    scale = size / max(image.width, image.height)
    width = max(1, round(image.width * scale))
    height = max(1, round(image.height * scale))
    resized = image.resize((width, height), Image.Resampling.BILINEAR, reducing_gap=3.0)
    canvas = Image.new(image.mode, (size, size), 0)
    canvas.paste(resized, ((size - width) // 2, (size - height) // 2))
    return canvas
