"""From a dataset folder to split, decoded, leak-checked arrays: :func:`prepare_data`."""

from __future__ import annotations

import csv
import hashlib
import io
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pneumo_core.data.cache import default_cache_dir, file_hashes, load_or_build
from pneumo_core.data.config import DataConfig
from pneumo_core.data.discovery import SPLITS, ImageRecord, Listing, list_images
from pneumo_core.data.external import external_patients
from pneumo_core.data.splitting import carve_splits
from pneumo_errors import DataError

__all__ = ["PreparedData", "prepare_data", "problem_lines"]

_MAX_LISTED = 50


@dataclass(frozen=True)
class PreparedData:
    """A dataset ready for training: decoded images and the index of each split.

    Attributes:
        config: The data configuration it was prepared with.
        class_names: Class names in label order.
        images: All decoded images, ``(N, size, size, channels)`` uint8, memory-mapped.
        labels: Label of each image, ``(N,)``.
        relpaths: Path of each image relative to the dataset root.
        patients: Patient id of each image.
        splits: ``train``/``val``/``test`` -> sorted indices into ``images``.
        summary: Counts, sources, problems and leakage checks; JSON-serializable.
        fingerprint: Hash of the files' contents and the split assignment.
    """

    config: DataConfig
    class_names: tuple[str, ...]
    images: np.ndarray
    labels: np.ndarray
    relpaths: tuple[str, ...]
    patients: tuple[str, ...]
    splits: Mapping[str, np.ndarray]
    summary: dict[str, Any]
    fingerprint: str

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.class_names)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """Shape of one image: ``(size, size, channels)``."""
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    def arrays(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """Returns the images (an in-memory uint8 copy) and labels of one split."""
        index = self.splits[split]
        return np.asarray(self.images[index]), self.labels[index]


def problem_lines(summary: Mapping[str, Any], shown: int = 5) -> list[str]:
    """What was left out of a dataset, for the console: unreadable, ignored, hidden files.

    Args:
        summary: :attr:`PreparedData.summary`.
        shown: Unreadable files named one by one (the rest are counted).
    """
    problems = summary.get("problems", {})
    lines = []
    skipped, count = problems.get("skipped_files", []), problems.get("skipped_count", 0)
    if count:
        lines.append(f"skipped {count} unreadable file(s):")
        lines += [f"  {s['path']}: {s['reason']}" for s in skipped[:shown]]
        if count > shown:
            lines.append(f"  ... and {count - shown} more (data_summary.json lists them)")
    if problems.get("ignored_count"):
        lines.append(f"ignored {problems['ignored_count']} file(s) outside the class folders")
    if problems.get("hidden_count"):
        lines.append(f"skipped {problems['hidden_count']} hidden file(s) or folder(s)")
    return lines


def prepare_data(config: DataConfig) -> PreparedData:
    """Lists, splits, decodes (through the cache) and checks a dataset.

    Args:
        config: Where the data is and how to split and decode it.

    Returns:
        The prepared data, with a summary for the report.

    Raises:
        DataError: A structural problem (named by path), too many bad files, a class left
            with no usable image in a split, or a patient in two given splits while
            ``patient_overlap`` is ``error``.
    """
    listing = list_images(config.root, classes=config.classes, patient_regex=config.patient_regex)
    records = listing.records
    hashes = file_hashes([r.path for r in records])
    decoded = load_or_build(
        [r.path for r in records],
        [r.relpath for r in records],
        hashes,
        size=config.image_size,
        color_mode=config.color_mode,
        aspect=config.aspect,
        cache_dir=Path(config.cache_dir).expanduser() if config.cache_dir else default_cache_dir(),
        workers=config.decode_workers,
    )
    skipped = [
        {"path": r.relpath, "reason": error}
        for r, error in zip(records, decoded.errors)
        if error is not None
    ]
    _check_bad_fraction(listing, skipped, config.max_bad_fraction)
    good = [i for i, error in enumerate(decoded.errors) if error is None]
    held_out = external_patients(config) if config.exclude_external_patients else frozenset()
    external = [i for i in good if records[i].patient in held_out]
    good = [i for i in good if records[i].patient not in held_out]
    assignment, origin = _assign_splits(listing, good, config)
    overlap = _patient_overlap(records, assignment)
    dropped: list[str] = []
    if overlap:
        if config.patient_overlap == "error":
            first = sorted(overlap)[0]
            raise DataError(
                f"{listing.root}: {len(overlap)} patient id(s) appear in two given splits "
                f"(e.g. {first} in {' and '.join(overlap[first])}); set "
                "data.patient_overlap: drop to remove them from train/val, or fix the folders"
            )
        assignment, dropped = _drop_overlap(records, assignment, overlap)
    excluded = _train_exclusions(config, records, assignment)
    for i in excluded:
        del assignment[i]
    splits = {
        name: np.array(sorted(i for i, s in assignment.items() if s == name), dtype=np.int64)
        for name in SPLITS
    }
    labels = np.array([r.label for r in records], dtype=np.int64)
    _check_every_class_present(listing, splits, labels, origin)
    duplicates = _duplicates_across_splits(records, hashes, assignment)
    fingerprint = _fingerprint(decoded.key, assignment, records)
    summary = _summary(
        listing, config, decoded, splits, labels, origin, skipped, overlap, dropped, duplicates
    )
    summary["fingerprint"] = fingerprint
    if config.train_exclude:
        summary["train_excluded"] = {"file": config.train_exclude, "images": len(excluded)}
    if config.external_root:
        summary["external"] = {
            "root": config.external_root,
            "split": config.external_split,
            "patients_excluded": len({records[i].patient for i in external}),
            "images_excluded": len(external),
        }
    return PreparedData(
        config=config,
        class_names=listing.class_names,
        images=decoded.images,
        labels=labels,
        relpaths=tuple(r.relpath for r in records),
        patients=tuple(r.patient for r in records),
        splits=splits,
        summary=summary,
        fingerprint=fingerprint,
    )


def _train_exclusions(config: DataConfig, records, assignment: Mapping[int, str]) -> list[int]:
    """Indices of train-split images listed in ``data.train_exclude`` (none without one).

    Raises:
        DataError: The file cannot be read, or a CSV without a ``path`` column.
    """
    if not config.train_exclude:
        return []
    path = Path(config.train_exclude).expanduser()
    try:
        text = path.read_text()
    except OSError as exc:
        raise DataError(f"data.train_exclude: cannot read {path}: {exc.strerror}") from None
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    listed: set[str] = set()
    if lines and "," in lines[0]:
        rows = list(csv.DictReader(io.StringIO(text)))
        if not rows or "path" not in rows[0]:
            raise DataError(f"data.train_exclude: {path} is a CSV without a 'path' column")
        listed = {row["path"] for row in rows}
    else:
        listed = set(lines)
    return [
        i for i, split in assignment.items() if split == "train" and records[i].relpath in listed
    ]


def _check_bad_fraction(listing: Listing, skipped: list[dict], limit: float) -> None:
    if not skipped:
        return
    fraction = len(skipped) / len(listing.records)
    if fraction > limit:
        examples = "; ".join(f"{s['path']}: {s['reason']}" for s in skipped[:3])
        raise DataError(
            f"{listing.root}: {len(skipped)} of {len(listing.records)} files cannot be used "
            f"({fraction:.1%}, over data.max_bad_fraction={limit:g}); e.g. {examples}"
        )


def _assign_splits(
    listing: Listing, good: Sequence[int], config: DataConfig
) -> tuple[dict[int, str], dict[str, str]]:
    """Returns index -> split for every good record, and how each split was made."""
    records = listing.records
    given = Counter(records[i].given_split for i in good)
    origin: dict[str, str] = {}
    assignment: dict[int, str] = {}
    keep_val = given.get("val", 0) > 0 and (
        config.given_val == "keep"
        or (config.given_val == "auto" and given["val"] >= config.min_given_val)
    )
    pool: list[int] = []
    for i in good:
        split = records[i].given_split
        if split == "test" or (split == "val" and keep_val):
            assignment[i] = split
        else:
            pool.append(i)
    if given.get("test", 0):
        origin["test"] = "given"
    if keep_val:
        origin["val"] = "given"
    fractions: dict[str, float] = {}
    if "test" not in origin:
        fractions["test"] = config.test_fraction
    if "val" not in origin:
        fractions["val"] = config.val_fraction
    if fractions:
        carved = carve_splits(
            [records[i].label for i in pool],
            [records[i].patient for i in pool],
            fractions,
            seed=config.split_seed,
        )
        assignment.update(zip(pool, carved))
        merged = " (given val merged in)" if given.get("val", 0) and not keep_val else ""
        for name, fraction in fractions.items():
            origin[name] = f"carved from train by patient, {fraction:g} of images{merged}"
    else:
        assignment.update(dict.fromkeys(pool, "train"))
    if listing.layout == "classes":
        origin["train"] = "the rest of the pool"
    else:
        origin["train"] = "given, less the carved splits" if fractions else "given"
    return assignment, origin


def _patient_overlap(
    records: Sequence[ImageRecord], assignment: Mapping[int, str]
) -> dict[str, list[str]]:
    where: dict[str, set[str]] = defaultdict(set)
    for i, split in assignment.items():
        where[records[i].patient].add(split)
    return {p: sorted(s, key=SPLITS.index) for p, s in where.items() if len(s) > 1}


def _drop_overlap(
    records: Sequence[ImageRecord],
    assignment: dict[int, str],
    overlap: Mapping[str, list[str]],
) -> tuple[dict[int, str], list[str]]:
    """Keeps each overlapping patient only in its latest split (test > val > train)."""
    kept: dict[int, str] = {}
    dropped: list[str] = []
    for i, split in assignment.items():
        splits = overlap.get(records[i].patient)
        if splits and split != splits[-1]:
            dropped.append(records[i].relpath)
        else:
            kept[i] = split
    return kept, dropped


def _check_every_class_present(
    listing: Listing,
    splits: Mapping[str, np.ndarray],
    labels: np.ndarray,
    origin: Mapping[str, str],
) -> None:
    for split, index in splits.items():
        present = set(labels[index].tolist())
        for label, name in enumerate(listing.class_names):
            if label not in present:
                how = "" if origin.get(split) == "given" else " (too few patients to carve it)"
                raise DataError(
                    f"{listing.root}: the {split} split has no usable image of class {name}{how}"
                )


def _duplicates_across_splits(
    records: Sequence[ImageRecord],
    hashes: Sequence[str | None],
    assignment: Mapping[int, str],
) -> list[list[str]]:
    by_hash: dict[str, list[int]] = defaultdict(list)
    for i in assignment:
        if hashes[i] is not None:
            by_hash[hashes[i]].append(i)
    groups = []
    for members in by_hash.values():
        if len({assignment[i] for i in members}) > 1:
            groups.append(sorted(f"{assignment[i]}:{records[i].relpath}" for i in members))
    return sorted(groups)


def _fingerprint(key: str, assignment: Mapping[int, str], records) -> str:
    digest = hashlib.sha256(key.encode())
    for i in sorted(assignment):
        digest.update(f"{records[i].relpath}={assignment[i]}\n".encode())
    return digest.hexdigest()[:16]


def _stats(values: Sequence[int]) -> dict[str, float]:
    if not values:
        return {}
    array = np.asarray(values)
    return {"min": int(array.min()), "median": float(np.median(array)), "max": int(array.max())}


def _summary(
    listing: Listing,
    config: DataConfig,
    decoded,
    splits: Mapping[str, np.ndarray],
    labels: np.ndarray,
    origin: Mapping[str, str],
    skipped: list[dict],
    overlap: Mapping[str, list[str]],
    dropped: list[str],
    duplicates: list[list[str]],
) -> dict[str, Any]:
    records = listing.records
    split_summary: dict[str, Any] = {}
    for split, index in splits.items():
        per_class = {}
        for label, name in enumerate(listing.class_names):
            members = [i for i in index.tolist() if labels[i] == label]
            per_class[name] = {
                "images": len(members),
                "patients": len({records[i].patient for i in members}),
            }
        split_summary[split] = {
            "images": len(index),
            "patients": len({records[i].patient for i in index.tolist()}),
            "per_class": per_class,
            "origin": origin.get(split, ""),
        }
    used = [info for info in decoded.infos if info is not None]
    return {
        "root": str(listing.root),
        "layout": listing.layout,
        "classes": list(listing.class_names),
        "positive_class": listing.class_names[1] if len(listing.class_names) == 2 else None,
        "files_found": len(records),
        "image_size": config.image_size,
        "color_mode": config.color_mode,
        "aspect": config.aspect,
        "split_seed": config.split_seed,
        "splits": split_summary,
        "source_images": {
            "width": _stats([i[0] for i in used]),
            "height": _stats([i[1] for i in used]),
            "modes": dict(sorted(Counter(i[2] for i in used).items())),
            "formats": dict(sorted(Counter(i[3] for i in used).items())),
        },
        "problems": {
            "skipped_files": skipped[:_MAX_LISTED],
            "skipped_count": len(skipped),
            "ignored_paths": list(listing.ignored[:_MAX_LISTED]),
            "ignored_count": len(listing.ignored),
            "hidden_count": listing.hidden,
        },
        "leakage": {
            "patients_in_two_given_splits": len(overlap),
            "patient_overlap_examples": dict(sorted(overlap.items())[:_MAX_LISTED]),
            "images_dropped_for_overlap": len(dropped),
            "identical_images_across_splits": duplicates[:_MAX_LISTED],
            "identical_images_across_splits_count": len(duplicates),
        },
        "cache": {
            "key": decoded.key,
            "path": str(decoded.path),
            "hit": decoded.hit,
            "seconds": round(decoded.seconds, 3),
        },
    }
