"""DICOM files for tests, made with pydicom from real images (no file is committed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

#: A distinctive value planted in each identifying tag of the DICOM PS3.15 basic profile
#: that ``make_dicom`` writes (dates and ages in their own formats, all unique).
PHI_VALUES = {
    "PatientName": "Zqxphi^Planted",
    "PatientID": "PHI-ID-739163",
    "OtherPatientIDs": "PHI-OTHERID-55102",
    "PatientBirthDate": "19020317",
    "PatientAddress": "PHI 17 Planted Street",
    "PatientTelephoneNumbers": "555-0199-PHI",
    "AccessionNumber": "PHIACC88421",
    "InstitutionName": "PHI Planted Hospital",
    "InstitutionAddress": "PHI 9 Hospital Road",
    "ReferringPhysicianName": "Phidoc^Referring",
    "PerformingPhysicianName": "Phidoc^Performing",
    "OperatorsName": "Phiop^Operator",
    "StudyID": "PHISTUDY77",
    "StudyDate": "19030411",
    "SeriesDate": "19030412",
    "ContentDate": "19030413",
    "StudyTime": "101112.131415",
    "StationName": "PHISTATION3",
    "DeviceSerialNumber": "PHISERIAL4471",
    "MedicalRecordLocator": "PHIMRL2231",
    "EthnicGroup": "PHIETHNIC",
    "Occupation": "PHIOCCUPATION",
    "AdditionalPatientHistory": "PHI history planted text",
    "RequestingPhysician": "Phidoc^Requesting",
}


def tf_pixels(path: Path) -> np.ndarray:
    """A JPEG's full-resolution gray pixels as TensorFlow decodes them (the one decoder)."""
    import tensorflow as tf

    image = tf.io.decode_image(tf.io.read_file(str(path)), channels=1, expand_animations=False)
    return image.numpy()[..., 0]


def make_dicom(
    path: Path,
    pixels: np.ndarray,
    *,
    photometric: str = "MONOCHROME2",
    bits_stored: int = 8,
    slope: float | None = None,
    intercept: float | None = None,
    window: tuple[float, float] | None = None,
    syntax: str = "explicit",
    modality: str = "DX",
    body_part: str = "CHEST",
    view: str = "PA",
    age: str = "005Y",
    phi: bool = True,
    preamble: bool = True,
) -> Path:
    """Writes ``pixels`` (stored values, uint8 or uint16) as a one-frame DICOM file.

    Args:
        syntax: ``explicit`` (Explicit VR Little Endian), ``rle`` (RLE Lossless, which
            pydicom encodes and decodes itself) or ``deflated``.
    """
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import (
        DeflatedExplicitVRLittleEndian,
        ExplicitVRLittleEndian,
        RLELossless,
        generate_uid,
    )

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"  # digital X-ray
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = (
        DeflatedExplicitVRLittleEndian if syntax == "deflated" else ExplicitVRLittleEndian
    )
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128 if preamble else None)
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.BodyPartExamined, ds.ViewPosition = modality, body_part, view
    ds.PatientAge = age
    if phi:
        for keyword, value in PHI_VALUES.items():
            setattr(ds, keyword, value)
    allocated = 8 if bits_stored <= 8 else 16
    stored = pixels.astype(np.uint8 if allocated == 8 else np.uint16)
    ds.Rows, ds.Columns = stored.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = allocated, bits_stored, bits_stored - 1
    ds.PixelRepresentation = 0
    if slope is not None:
        ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = slope, intercept or 0.0, "US"
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = [window[0], 40.0], [window[1], 400.0]
    ds.PixelData = stored.tobytes()
    if syntax == "rle":
        ds.compress(RLELossless, stored)
    ds.save_as(str(path), enforce_file_format=preamble)
    return path
