"""Decoding one image file into a fixed-size uint8 array: one preprocessing everywhere.

This is the only place that turns files into pixels. The pixels come from TensorFlow's own
decoder and resize (:func:`encoded_to_pixels`): ``tf.io.decode_image`` to the color mode,
``tf.image.resize`` (bilinear, antialiased; or ``resize_with_pad`` keeping the aspect
ratio), rounded to uint8. The decoded-image cache (so training), ``predict``, ``explain``
and the exported SavedModel's ``serve_bytes`` signature all run that same function, so a
model served from encoded files sees exactly what it was trained and evaluated on.

Pillow reads each file's header first (format, size, mode; its decompression-bomb limit).
DICOM files (recognized by their preamble) are first converted to an 8-bit PNG by
:mod:`pneumo_core.data.dicom`. JPEG and PNG files in 8-bit gray or RGB go to TensorFlow as
they are. Anything else (16-bit
or float images, alpha, palettes, CMYK, TIFF, BMP, GIF, WebP, ...) is first converted by
Pillow to an 8-bit gray or RGB PNG of the same size (alpha composited on black, 16-bit
min-max scaled), then takes the same path. Pillow's ``LOAD_TRUNCATED_IMAGES`` is never
switched on, and TensorFlow's decoder refuses truncated data: a truncated file is reported
as bad instead of silently padded.
"""

from __future__ import annotations

import io
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image, UnidentifiedImageError

from pneumo_core.data.dicom import DicomError, dicom_to_png, looks_like_dicom

__all__ = [
    "PREPROCESSING",
    "BadImageError",
    "ImageInfo",
    "decode_bytes",
    "decode_image",
    "encoded_to_pixels",
]

_HIGH_DEPTH_MODES = {"I", "I;16", "I;16B", "I;16L", "I;16N", "F"}
#: Files TensorFlow decodes as they are (others are normalized to PNG by Pillow first).
DIRECT_FORMATS = {"JPEG", "PNG"}
DIRECT_MODES = {"L", "RGB"}

#: The preprocessing in words (the model card quotes it).
PREPROCESSING = (
    "tf.io.decode_image(encoded, channels=C, expand_animations=False) (C = 1 grayscale, "
    "3 rgb); tf.image.resize(image, [size, size], method='bilinear', antialias=True) for "
    "aspect 'squash', or tf.image.resize_with_pad(image, size, size, method='bilinear', "
    "antialias=True) for 'pad'; then round and clip to uint8 and cast to float32 in "
    "[0, 255]. Files other than 8-bit gray/RGB JPEG or PNG are first converted with Pillow "
    "to an 8-bit PNG of the same size (alpha on black, 16-bit min-max scaled). The model "
    "normalizes inside. The SavedModel's serve_bytes signature does all of this in the graph."
)


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
        mode: Pillow mode of the file (``L``, ``RGB``, ``I;16``, ...; a DICOM file's
            after its conversion to 8 bits).
        format: File format as Pillow detected it (``JPEG``, ``PNG``, ...), or ``DICOM``.
        dicom: A DICOM file's scope fields (:class:`pneumo_core.data.dicom.DicomScope`),
            None for other formats.
    """

    width: int
    height: int
    mode: str
    format: str
    dicom: Any = None


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

    Imports TensorFlow (its decoder is the one preprocessing).
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
    """Decodes the bytes of an image file; see :func:`decode_image`.

    A DICOM file (``DICM`` after its preamble, any extension) is first converted to an
    8-bit PNG by :func:`pneumo_core.data.dicom.dicom_to_png` (the one conversion).
    """
    if not data:
        raise BadImageError("empty file")
    dicom = None
    if looks_like_dicom(data):
        try:
            data, dicom = dicom_to_png(data)
        except DicomError as exc:
            raise BadImageError(f"DICOM: {exc.reason}") from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            info = ImageInfo(
                image.width,
                image.height,
                image.mode,
                "DICOM" if dicom else image.format or "?",
                dicom,
            )
            if info.format not in DIRECT_FORMATS or info.mode not in DIRECT_MODES:
                image.load()
                data = _png_bytes(_convert_mode(image, color_mode))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise BadImageError("too many pixels (over Pillow's decompression-bomb limit)") from None
    except UnidentifiedImageError:
        raise BadImageError("not an image file Pillow can read") from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise BadImageError(f"corrupt image: {_first_line(exc)}") from None
    tf = _tensorflow()
    try:
        pixels = _pixels_function(size, _channels(color_mode), aspect)(tf.constant(data))
    except (tf.errors.InvalidArgumentError, tf.errors.UnknownError) as exc:
        raise BadImageError(f"corrupt image: {_first_line(exc.message)}") from None
    return pixels.numpy(), info


def encoded_to_pixels(encoded: Any, size: int, channels: int, aspect: str) -> Any:
    """TensorFlow ops: one encoded image (a scalar ``tf.string``) to ``(size, size, C)`` uint8.

    The one preprocessing of pneumo-search (:data:`PREPROCESSING`); usable inside a graph
    (the exported model's ``serve_bytes`` signature maps it over a batch).

    Args:
        encoded: The file's bytes (JPEG, PNG; BMP and GIF work too), a scalar string tensor.
        size: Side of the output square.
        channels: 1 (grayscale) or 3 (RGB).
        aspect: ``squash`` or ``pad``.
    """
    import tensorflow as tf  # imported already by whoever builds the graph

    image = tf.io.decode_image(encoded, channels=channels, expand_animations=False)
    image = tf.ensure_shape(image, [None, None, channels])
    if aspect == "pad":
        resized = tf.image.resize_with_pad(image, size, size, method="bilinear", antialias=True)
    else:
        resized = tf.image.resize(image, [size, size], method="bilinear", antialias=True)
    return tf.cast(tf.round(tf.clip_by_value(resized, 0.0, 255.0)), tf.uint8)


_LOCK = threading.Lock()
_FUNCTIONS: dict[tuple[int, int, str], Any] = {}


def _tensorflow():
    with _LOCK:  # the first import redirects stderr: once, not from several threads
        from pneumo_core.runtime import import_tensorflow

        return import_tensorflow()


def _pixels_function(size: int, channels: int, aspect: str):
    """:func:`encoded_to_pixels` as a traced ``tf.function`` (one per settings)."""
    key = (size, channels, aspect)
    with _LOCK:
        if key not in _FUNCTIONS:
            import tensorflow as tf

            _FUNCTIONS[key] = tf.function(
                lambda encoded: encoded_to_pixels(encoded, size, channels, aspect),
                input_signature=[tf.TensorSpec([], tf.string)],
                autograph=False,
            )
        return _FUNCTIONS[key]


def _channels(color_mode: str) -> int:
    return 1 if color_mode == "grayscale" else 3


def _first_line(exc: BaseException | str) -> str:
    text = str(exc)
    return text.splitlines()[0] if text.strip() else type(exc).__name__


def _png_bytes(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG", compress_level=1)
    return out.getvalue()


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
