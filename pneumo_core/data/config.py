"""Configuration of the data pipeline: where images are, how they are split and decoded."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from pneumo_core.configuration import require
from pneumo_core.data.discovery import SPLITS

__all__ = ["DEFAULT_PATIENT_REGEX", "AugmentConfig", "DataConfig"]

#: Patient ids in Kermany file names: ``person12_bacteria_45`` -> ``person12``,
#: ``IM-0117-0001`` -> ``IM-0117``, ``NORMAL2-IM-0123-0001`` -> ``NORMAL2-IM-0123``.
DEFAULT_PATIENT_REGEX = r"^(?P<patient>person\d+|NORMAL2-IM-\d+|IM-\d+)(?=[_-])"


@dataclass(frozen=True)
class DataConfig:
    """Where the images are and how they become arrays.

    Attributes:
        root: Dataset folder: ``ROOT/{train,val,test}/CLASS/*`` or ``ROOT/CLASS/*``.
        image_size: Side of the square images fed to the model, in pixels.
        color_mode: ``grayscale`` (one channel; repeated to three inside models whose
            backbone needs RGB) or ``rgb``.
        aspect: ``squash`` resizes to a square; ``pad`` keeps the aspect ratio and pads
            with black.
        classes: Class folder names in label order; default: the folder names sorted.
            With two classes the second is the positive one (``PNEUMONIA``).
        given_val: What to do with a ``val`` folder: ``keep`` uses it, ``merge`` moves it
            into train and carves validation from the merged set, ``auto`` keeps it only
            when it holds at least ``min_given_val`` images (the public split has 16).
        min_given_val: Size under which ``auto`` merges a given val split.
        val_fraction: Share of train images carved out for validation (by patient).
        test_fraction: Share carved out for test when the data has no ``test`` folder.
        split_seed: Seed of the patient shuffle that carves splits.
        patient_regex: Regex with a ``patient`` group (or the whole match) giving the patient
            id from a file name's stem; a file with no match is its own patient.
        patient_overlap: ``error`` (default) when a patient is in two given splits, or
            ``drop`` to remove that patient's images from train (and val) instead.
        max_bad_fraction: Share of unreadable or corrupt files above which loading fails
            (below it they are skipped and listed in the summary).
        cache_dir: Folder of the decoded-image cache; default ``$PNEUMO_CACHE_DIR`` or
            ``~/.cache/pneumo-search``.
        decode_workers: Threads that decode images when the cache is built; 0 = one per
            CPU.
        external_root: A dataset folder (either layout) for an external check: the final
            stage scores the model on its images; ``None``: no external check.
        external_split: The split folder of ``external_root`` to use (``""``: all of it).
        exclude_external_patients: Remove every patient of the external set from this
            dataset before splitting, so the check never scores a patient seen in training.
        train_exclude: A file listing images to leave out of the **train** split (a CSV
            with a ``path`` column, such as ``final``'s ``label_issues.csv``, or one
            relative path per line); validation and test keep them, so scores stay
            comparable. ``None``: train on everything.
    """

    root: str = ""
    image_size: int = 128
    color_mode: Literal["grayscale", "rgb"] = "grayscale"
    aspect: Literal["squash", "pad"] = "squash"
    classes: tuple[str, ...] | None = None
    given_val: Literal["auto", "keep", "merge"] = "auto"
    min_given_val: int = 100
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    split_seed: int = 0
    patient_regex: str = DEFAULT_PATIENT_REGEX
    patient_overlap: Literal["error", "drop"] = "error"
    max_bad_fraction: float = 0.01
    cache_dir: str | None = None
    decode_workers: int = 0
    external_root: str | None = None
    external_split: str = "test"
    exclude_external_patients: bool = True
    train_exclude: str | None = None

    def __post_init__(self) -> None:
        require(16 <= self.image_size <= 1024, "image_size", "must be between 16 and 1024")
        require(0.0 < self.val_fraction < 0.9, "val_fraction", "must be in (0, 0.9)")
        require(0.0 < self.test_fraction < 0.9, "test_fraction", "must be in (0, 0.9)")
        require(
            self.val_fraction + self.test_fraction < 0.9,
            "val_fraction",
            "val_fraction + test_fraction must stay under 0.9",
        )
        require(0.0 <= self.max_bad_fraction <= 1.0, "max_bad_fraction", "must be in [0, 1]")
        require(self.min_given_val >= 0, "min_given_val", "must be >= 0")
        require(self.decode_workers >= 0, "decode_workers", "must be >= 0 (0 = one per CPU)")
        require(
            self.external_split in ("", *SPLITS),
            "external_split",
            "must be train, val, test or '' (the whole folder)",
        )
        if self.classes is not None:
            require(len(self.classes) >= 2, "classes", "needs at least two class names")
            require(len(set(self.classes)) == len(self.classes), "classes", "names repeat")
        try:
            re.compile(self.patient_regex)
        except re.error as exc:
            require(False, "patient_regex", f"not a valid regular expression: {exc}")

    @property
    def channels(self) -> int:
        """Channels of the decoded images (1 for grayscale, 3 for RGB)."""
        return 1 if self.color_mode == "grayscale" else 3


@dataclass(frozen=True)
class AugmentConfig:
    """Random training-time augmentation; every field can be searched.

    Attributes:
        zoom: Maximum zoom in or out, as a fraction (0.1 = up to 10%).
        rotation_deg: Maximum rotation either way, in degrees.
        translation: Maximum shift, as a fraction of the image side.
        contrast: Maximum contrast change factor.
        brightness: Maximum brightness change, as a fraction of the value range.
        horizontal_flip: Mirror images left-right. Off by default: it moves the heart to
            the wrong side, which real chest X-rays never show.
        crop_scale: Smallest image area a random resized crop keeps (aspect 3/4 to 4/3,
            resized back); 1 = off (``pneumo_core.data.shift_augment``).
        gamma: Gamma jitter: each image's exposure curve raised to ``exp(U(-g, g))``.
        degrade: Probability that an image is downsampled 2-4x and upsampled back.
        band_erase: Largest fraction of the side blanked at each border (each border with
            probability one half), so the framing carries no reliable signal; 0 = off.
    """

    zoom: float = 0.0
    rotation_deg: float = 0.0
    translation: float = 0.0
    contrast: float = 0.0
    brightness: float = 0.0
    horizontal_flip: bool = False
    crop_scale: float = 1.0
    gamma: float = 0.0
    degrade: float = 0.0
    band_erase: float = 0.0

    def __post_init__(self) -> None:
        require(0.0 <= self.zoom < 1.0, "zoom", "must be in [0, 1)")
        require(0.0 <= self.rotation_deg <= 180.0, "rotation_deg", "must be in [0, 180]")
        require(0.0 <= self.translation < 1.0, "translation", "must be in [0, 1)")
        require(0.0 <= self.contrast < 1.0, "contrast", "must be in [0, 1)")
        require(0.0 <= self.brightness < 1.0, "brightness", "must be in [0, 1)")
        require(0.05 <= self.crop_scale <= 1.0, "crop_scale", "must be in [0.05, 1]")
        require(0.0 <= self.gamma <= 1.0, "gamma", "must be in [0, 1]")
        require(0.0 <= self.degrade <= 1.0, "degrade", "must be in [0, 1]")
        require(0.0 <= self.band_erase <= 0.3, "band_erase", "must be in [0, 0.3]")

    @property
    def enabled(self) -> bool:
        """Whether any augmentation is switched on."""
        return (
            any((self.zoom, self.rotation_deg, self.translation, self.contrast, self.brightness))
            or any((self.gamma, self.degrade, self.band_erase))
            or self.crop_scale < 1.0
            or self.horizontal_flip
        )
