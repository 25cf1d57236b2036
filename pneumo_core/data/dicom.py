"""DICOM files to the 8-bit image the one preprocessing takes (issue 38).

Clinical archives hold DICOM, and the conversion to 8 bits (modality and VOI LUTs,
``MONOCHROME1`` inversion, 10- to 16-bit depth, window choice) is exactly where intensities
drift. This module is the one conversion, used by the decoded-image cache (so ``run`` and
``train``), ``predict``, ``explain`` and ``final``'s external and site folders; users who
feed the SavedModel's ``serve_bytes`` signature call :func:`dicom_to_png` themselves:

1. the pixel data (decoded by pydicom; compressed transfer syntaxes through its installed
   plugins: RLE Lossless by pydicom itself, JPEG Baseline/Extended and JPEG 2000 through
   Pillow; others, such as JPEG-LS, get a one-line error naming the syntax);
2. the Modality LUT (``RescaleSlope``/``RescaleIntercept``, or a Modality LUT Sequence);
3. the VOI LUT, or the file's window (the **first** one when there are several:
   ``WindowCenter``/``WindowWidth`` values 0), by the DICOM linear function mapped straight
   to 0-255; without either, an 8-bit image is kept as it is and a deeper one is scaled
   linearly from its data minimum to its maximum;
4. ``MONOCHROME1`` (white is zero) inverted, so bone is bright as in the training images;
5. rounded to uint8 and encoded as a lossless PNG, which then takes the same TensorFlow
   decode and resize as any JPEG (:func:`pneumo_core.data.decode.encoded_to_pixels`).

Only the scope fields (``Modality``, ``BodyPartExamined``, ``ViewPosition``,
``PhotometricInterpretation``, patient age in years) are ever read out; nothing
identifying (names, ids, dates, institution) leaves this module, errors included.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "DICOM_FIELDS",
    "DicomError",
    "DicomScope",
    "dicom_to_png",
    "dicom_to_uint8",
    "looks_like_dicom",
]

#: The DICOM fields ``predict --csv`` reports (none of them identifies a patient).
DICOM_FIELDS = (
    "modality",
    "body_part",
    "view_position",
    "photometric_interpretation",
    "patient_age_years",
)
#: Largest pixel count converted (the same order as Pillow's decompression-bomb limit).
MAX_PIXELS = 178_956_970
#: Most bytes a deflated data set may inflate to.
MAX_INFLATED_BYTES = 512 * 1024 * 1024


class DicomError(Exception):
    """A DICOM file that cannot be converted; ``reason`` says why in one line (never PHI)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class DicomScope:
    """What a DICOM file says about its scope (no identifying field).

    Attributes:
        modality: ``Modality`` (``CR``, ``DX``, ``CT``...), ``""`` when absent.
        body_part: ``BodyPartExamined`` (``CHEST``...).
        view_position: ``ViewPosition`` (``PA``, ``AP``, ``LL``...).
        photometric_interpretation: ``MONOCHROME1``, ``MONOCHROME2``, ``RGB``...
        patient_age_years: ``PatientAge`` in years (``005Y`` -> 5, ``018M`` -> 1.5), None
            when absent or unreadable.
    """

    modality: str = ""
    body_part: str = ""
    view_position: str = ""
    photometric_interpretation: str = ""
    patient_age_years: float | None = None

    def as_row(self) -> dict[str, Any]:
        """The CSV columns :data:`DICOM_FIELDS`."""
        return {name: getattr(self, name) for name in DICOM_FIELDS}


def looks_like_dicom(data: bytes, name: str = "") -> bool:
    """A DICOM Part 10 file: ``DICM`` after the 128-byte preamble (any extension)."""
    return data[128:132] == b"DICM" or (name.lower().endswith(".dcm") and len(data) < 132)


def _age_years(text: str) -> float | None:
    text = (text or "").strip().upper()
    if len(text) != 4 or not text[:3].isdigit() or text[3] not in "DWMY":
        return None
    per_year = {"D": 365.25, "W": 52.1775, "M": 12.0, "Y": 1.0}[text[3]]
    return round(int(text[:3]) / per_year, 2)


def _scope(ds) -> DicomScope:
    def text(keyword: str) -> str:
        value = ds.get(keyword, "")
        return str(value).strip() if value is not None else ""

    return DicomScope(
        modality=text("Modality"),
        body_part=text("BodyPartExamined"),
        view_position=text("ViewPosition"),
        photometric_interpretation=text("PhotometricInterpretation"),
        patient_age_years=_age_years(text("PatientAge")),
    )


def _read(data: bytes):
    import pydicom
    from pydicom.errors import InvalidDicomError

    if data[128:132] == b"DICM" and _deflated(data):
        _check_inflated_size(data)
    try:
        return pydicom.dcmread(io.BytesIO(data), force=False)
    except InvalidDicomError:
        raise DicomError("not a DICOM file pydicom can read") from None
    except Exception as exc:
        raise DicomError(f"corrupt DICOM header: {type(exc).__name__}") from None


def _deflated(data: bytes) -> bool:
    return b"1.2.840.10008.1.2.1.99" in data[:4096]


def _check_inflated_size(data: bytes) -> None:
    """Refuses a deflated data set that would inflate past :data:`MAX_INFLATED_BYTES`
    (a deflate bomb), reading its stream in chunks instead of all at once."""
    import zlib

    # the deflated part starts after the file meta group; inflate whatever follows it
    # chunk by chunk, from each plausible start, and stop past the limit
    start = _meta_end(data)
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    total, view = 0, data[start:]
    try:
        for offset in range(0, len(view), 65536):
            chunk = inflater.decompress(view[offset : offset + 65536], MAX_INFLATED_BYTES)
            total += len(chunk)
            while inflater.unconsumed_tail:
                chunk = inflater.decompress(inflater.unconsumed_tail, MAX_INFLATED_BYTES)
                total += len(chunk)
                if total > MAX_INFLATED_BYTES:
                    break
            if total > MAX_INFLATED_BYTES:
                raise DicomError(
                    f"deflated data set inflates past {MAX_INFLATED_BYTES // 2**20} MiB "
                    "(refused as a decompression bomb)"
                )
    except zlib.error:
        raise DicomError("corrupt deflated data set") from None


def _meta_end(data: bytes) -> int:
    """Byte offset where the file meta information group (0002) ends."""
    import struct

    position = 132
    while position + 8 <= len(data):
        group = struct.unpack_from("<H", data, position)[0]
        if group != 0x0002:
            return position
        vr = data[position + 4 : position + 6]
        if vr in (b"OB", b"OW", b"OF", b"SQ", b"UT", b"UN"):
            length = struct.unpack_from("<I", data, position + 8)[0]
            position += 12 + length
        else:
            length = struct.unpack_from("<H", data, position + 6)[0]
            position += 8 + length
    return position


def _pixels(ds) -> np.ndarray:
    from pydicom.pixels import get_decoder

    if "PixelData" not in ds:
        raise DicomError("no pixel data (PixelData is missing)")
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames > 1:
        raise DicomError(f"multi-frame file ({frames} frames); one image per file, please")
    rows, cols = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
    if rows * cols > MAX_PIXELS:
        raise DicomError(f"too many pixels ({rows} x {cols})")
    syntax = ds.file_meta.get("TransferSyntaxUID")
    if syntax is not None and syntax.is_compressed:
        decoder = get_decoder(syntax)
        if not decoder.is_available:
            raise DicomError(
                f"transfer syntax {syntax.name} ({syntax}) has no decoder installed "
                "(pydicom decodes RLE Lossless itself, JPEG and JPEG 2000 through Pillow)"
            )
    try:
        return np.asarray(ds.pixel_array)
    except Exception as exc:
        raise DicomError(f"cannot decode the pixel data: {_short(exc)}") from None


def _short(exc: BaseException) -> str:
    line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return line[:160]


def _to_uint8(ds, pixels: np.ndarray) -> np.ndarray:
    from pydicom.pixels import apply_modality_lut

    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip()
    if photometric not in ("MONOCHROME1", "MONOCHROME2"):
        if photometric == "RGB" and pixels.ndim == 3:
            return np.clip(pixels, 0, 255).astype(np.uint8)  # RGB: kept as it is
        raise DicomError(f"photometric interpretation {photometric} is not supported")
    values = np.asarray(apply_modality_lut(pixels, ds), dtype=np.float64)
    windowed = _voi(ds, values)
    if windowed is None:
        bits = int(ds.get("BitsStored", 8) or 8)
        has_rescale = "RescaleSlope" in ds or "ModalityLUTSequence" in ds
        if bits <= 8 and not has_rescale:
            windowed = np.clip(values, 0, 255)
        else:
            low, high = float(values.min()), float(values.max())
            windowed = (values - low) / (high - low) * 255.0 if high > low else values * 0
    if photometric == "MONOCHROME1":
        windowed = 255.0 - windowed
    return np.clip(np.round(windowed), 0, 255).astype(np.uint8)


def _voi(ds, values: np.ndarray) -> np.ndarray | None:
    """The VOI LUT or the first window mapped to 0-255; None when the file has neither."""
    from pydicom.pixels import apply_voi

    if "VOILUTSequence" in ds:
        lut = np.asarray(apply_voi(values, ds, index=0), dtype=np.float64)
        depth = int(ds.VOILUTSequence[0].LUTDescriptor[2]) or 16
        return lut / (2**depth - 1) * 255.0
    if "WindowCenter" not in ds or "WindowWidth" not in ds:
        return None
    center, width = _first(ds.WindowCenter), _first(ds.WindowWidth)
    if width < 1:
        raise DicomError(f"window width {width:g} is below 1")
    # DICOM PS3.3 C.11.2.1.2.1, the linear function, straight to 0-255
    scaled = ((values - (center - 0.5)) / (width - 1) + 0.5) * 255.0
    return np.clip(scaled, 0.0, 255.0)


def _first(value: Any) -> float:
    """The first of a multi-valued element (the first window when there are several)."""
    from pydicom.multival import MultiValue

    return float(value[0] if isinstance(value, (MultiValue, list, tuple)) else value)


def dicom_to_uint8(data: bytes) -> tuple[np.ndarray, DicomScope]:
    """The 8-bit image of a DICOM file's bytes (``(H, W)`` gray or ``(H, W, 3)`` RGB).

    Raises:
        DicomError: Not readable as DICOM, no or truncated pixel data, several frames, an
            undecodable transfer syntax, a deflate bomb, an unsupported photometric
            interpretation. The reason never quotes a data element's value.
    """
    ds = _read(data)
    pixels = _pixels(ds)
    if pixels.ndim == 3 and str(ds.get("PhotometricInterpretation", "")).strip() != "RGB":
        raise DicomError(f"unexpected pixel array of shape {pixels.shape}")
    return _to_uint8(ds, pixels), _scope(ds)


def dicom_to_png(source: str | Path | bytes) -> tuple[bytes, DicomScope]:
    """A DICOM file as lossless PNG bytes, ready for the model's ``serve_bytes`` signature.

    This is the exact conversion ``predict`` applies (its module docstring lists the steps),
    for users who serve the exported SavedModel themselves::

        from pneumo_core.data.dicom import dicom_to_png

        png, scope = dicom_to_png("image.dcm")
        served.signatures["serve_bytes"](image_bytes=tf.constant([png]))

    Raises:
        DicomError: See :func:`dicom_to_uint8`.
    """
    from PIL import Image

    data = Path(source).read_bytes() if isinstance(source, (str, Path)) else bytes(source)
    pixels, scope = dicom_to_uint8(data)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue(), scope
