"""An external check: images from another folder, held out of every split of the dataset.

With ``data.external_root`` set, the final stage scores the model on that folder's images
(or on one of its split folders, ``data.external_split``), decoded like the training data,
at the threshold chosen on validation. With ``data.exclude_external_patients`` (the
default) every patient of the external set is removed from the dataset before it is
split, so no patient is seen in training and again in the check.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pneumo_core.data.cache import default_cache_dir, file_hashes, load_or_build
from pneumo_core.data.config import DataConfig
from pneumo_core.data.discovery import ImageRecord, list_images
from pneumo_errors import DataError

__all__ = ["ExternalSet", "external_patients", "prepare_external"]


@dataclass(frozen=True)
class ExternalSet:
    """The decoded images of an external check.

    Attributes:
        root: The external folder.
        split: The split folder used, or ``""`` for the whole folder.
        images: ``(N, size, size, channels)`` uint8.
        labels: Label of each image (the dataset's class order).
        relpaths: Paths relative to ``root``.
        summary: Counts per class, patients and skipped files; JSON-serializable.
    """

    root: str
    split: str
    images: np.ndarray
    labels: np.ndarray
    relpaths: tuple[str, ...]
    summary: dict[str, Any]


def _records(config: DataConfig) -> tuple[tuple[str, ...], list[ImageRecord]]:
    listing = list_images(
        config.external_root or "", classes=config.classes, patient_regex=config.patient_regex
    )
    records = list(listing.records)
    if config.external_split:
        records = [r for r in records if r.given_split == config.external_split]
        if not records:
            raise DataError(
                f"{listing.root}: no {config.external_split}/ split folder with images "
                "(data.external_split; set it to '' to use the whole folder)"
            )
    return listing.class_names, records


def external_patients(config: DataConfig) -> frozenset[str]:
    """Patient ids of the external set (empty when none is configured)."""
    if not config.external_root:
        return frozenset()
    return frozenset(r.patient for r in _records(config)[1])


def prepare_external(config: DataConfig, class_names: tuple[str, ...]) -> ExternalSet:
    """Lists and decodes (through the cache) the external set, like the dataset's images.

    Args:
        config: The dataset's configuration (with ``external_root`` set).
        class_names: The dataset's classes; the external folder must have the same ones.

    Raises:
        DataError: No external folder configured, other class names, a missing split
            folder, or more unreadable files than ``max_bad_fraction`` allows.
    """
    if not config.external_root:
        raise DataError("no external set: set data.external_root")
    names, records = _records(config)
    if names != tuple(class_names):
        raise DataError(
            f"{config.external_root}: classes {list(names)} differ from the dataset's "
            f"{list(class_names)}"
        )
    decoded = load_or_build(
        [r.path for r in records],
        [r.relpath for r in records],
        file_hashes([r.path for r in records]),
        size=config.image_size,
        color_mode=config.color_mode,
        aspect=config.aspect,
        cache_dir=Path(config.cache_dir).expanduser() if config.cache_dir else default_cache_dir(),
        workers=config.decode_workers,
    )
    good = [i for i, error in enumerate(decoded.errors) if error is None]
    skipped = [
        {"path": records[i].relpath, "reason": error}
        for i, error in enumerate(decoded.errors)
        if error is not None
    ]
    if len(skipped) > config.max_bad_fraction * len(records):
        raise DataError(
            f"{config.external_root}: {len(skipped)} of {len(records)} external files cannot "
            f"be read (first: {skipped[0]['path']}: {skipped[0]['reason']})"
        )
    labels = np.array([records[i].label for i in good], dtype=np.int64)
    for label, name in enumerate(class_names):
        if not np.any(labels == label):
            raise DataError(f"{config.external_root}: the external set has no usable {name} image")
    summary = {
        "root": str(config.external_root),
        "split": config.external_split,
        "images": len(good),
        "per_class": {name: int(np.sum(labels == k)) for k, name in enumerate(class_names)},
        "patients": len({records[i].patient for i in good}),
        "skipped": skipped,
    }
    return ExternalSet(
        root=str(config.external_root),
        split=config.external_split,
        images=np.asarray(decoded.images[good]),
        labels=labels,
        relpaths=tuple(records[i].relpath for i in good),
        summary=summary,
    )
